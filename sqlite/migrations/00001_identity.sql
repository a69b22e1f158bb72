-- Identity: organizations, roles, users and API keys.
-- Times are unix microseconds (UTC); money is int64 nano-units.
-- AUTOINCREMENT keeps ids from being reused after a delete, as
-- PostgreSQL identities are never reused. Users block deleting their
-- role and organization with the default NO ACTION (RESTRICT would fail
-- with a trigger error code rather than a foreign key one).

-- +goose Up
CREATE TABLE organizations (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT    NOT NULL UNIQUE,
    budget  INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE roles (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT    NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);

-- position keeps a role's permissions and limits in the order given.
CREATE TABLE role_permissions (
    role_id    INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    permission TEXT    NOT NULL,
    PRIMARY KEY (role_id, position),
    UNIQUE (role_id, permission)
);

CREATE TABLE role_limits (
    role_id  INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    model    TEXT    NOT NULL,
    type     TEXT    NOT NULL,
    value    INTEGER, -- NULL: unlimited
    PRIMARY KEY (role_id, position),
    UNIQUE (role_id, model, type)
);

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT    NOT NULL UNIQUE, -- lower-cased
    name            TEXT    NOT NULL,
    role_id         INTEGER NOT NULL REFERENCES roles (id),
    organization_id INTEGER REFERENCES organizations (id),
    budget          INTEGER,
    expires         INTEGER,
    priority        INTEGER NOT NULL,
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL
);
CREATE INDEX users_role_id ON users (role_id);
CREATE INDEX users_organization_id ON users (organization_id);

CREATE TABLE api_keys (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    prefix  TEXT    NOT NULL,
    hash    BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32), -- SHA-256 of the key
    expires INTEGER,
    created INTEGER NOT NULL
);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

-- One row, advanced by every identity change (but spending), so replicas
-- know when to drop their cached identities.
CREATE TABLE identity_version (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO identity_version (id, value) VALUES (1, 0);

-- +goose Down
DROP TABLE identity_version;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE role_limits;
DROP TABLE role_permissions;
DROP TABLE roles;
DROP TABLE organizations;
