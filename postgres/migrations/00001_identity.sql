-- Identity: organizations, roles, users and API keys.
-- Money is bigint nano-units. Names and emails use the "C" collation so
-- uniqueness and ordering are bytewise, as in SQLite.

-- +goose Up
CREATE TABLE organizations (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text COLLATE "C" NOT NULL UNIQUE,
    budget  bigint,
    created timestamptz NOT NULL,
    updated timestamptz NOT NULL
);

CREATE TABLE roles (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    text COLLATE "C" NOT NULL UNIQUE,
    created timestamptz NOT NULL,
    updated timestamptz NOT NULL
);

-- position keeps a role's permissions and limits in the order given.
CREATE TABLE role_permissions (
    role_id    bigint NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    permission text NOT NULL,
    PRIMARY KEY (role_id, position),
    UNIQUE (role_id, permission)
);

CREATE TABLE role_limits (
    role_id  bigint NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    position integer NOT NULL,
    model    text NOT NULL,
    type     text NOT NULL,
    value    bigint, -- NULL: unlimited
    PRIMARY KEY (role_id, position),
    UNIQUE (role_id, model, type)
);

CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text COLLATE "C" NOT NULL UNIQUE, -- lower-cased
    name            text COLLATE "C" NOT NULL,
    role_id         bigint NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    organization_id bigint REFERENCES organizations (id) ON DELETE RESTRICT,
    budget          bigint,
    expires         timestamptz,
    priority        integer NOT NULL,
    created         timestamptz NOT NULL,
    updated         timestamptz NOT NULL
);
CREATE INDEX users_role_id ON users (role_id);
CREATE INDEX users_organization_id ON users (organization_id);

CREATE TABLE api_keys (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name    text COLLATE "C" NOT NULL,
    prefix  text NOT NULL,
    hash    bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32), -- SHA-256 of the key
    expires timestamptz,
    created timestamptz NOT NULL
);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

-- One row, advanced by every identity change (but spending), so replicas
-- know when to drop their cached identities.
CREATE TABLE identity_version (
    id    integer PRIMARY KEY CHECK (id = 1),
    value bigint NOT NULL
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
