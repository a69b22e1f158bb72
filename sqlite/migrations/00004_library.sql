-- RAG library: collections of documents, owned by users. Deleting a user
-- deletes their collections, and deleting a collection its documents
-- (ON DELETE CASCADE); their chunks live in the index (00003), which the
-- RAG service empties itself. Times are unix microseconds (UTC). Ids are
-- never reused (AUTOINCREMENT): chunks name their document and collection
-- without a foreign key, and must never point at a newcomer.
-- name_lower is name lower-cased by the store, for case-insensitive name
-- filters beyond ASCII (SQLite's lower() folds ASCII only).

-- +goose Up
CREATE TABLE collections (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    name_lower  TEXT    NOT NULL,
    description TEXT    NOT NULL,
    owner_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    visibility  TEXT    NOT NULL CHECK (visibility IN ('private', 'public')),
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
);
CREATE INDEX collections_owner_id ON collections (owner_id);

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    name_lower    TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    error         TEXT    NOT NULL,
    hash          BLOB    CHECK (length(hash) = 32), -- SHA-256 of the content; NULL: no content
    parser        TEXT    NOT NULL,
    pages         INTEGER NOT NULL,
    chunks        INTEGER NOT NULL,
    metadata      TEXT, -- JSON object; NULL: none
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    -- One document per content in a collection; NULLs never collide. Its
    -- index also serves counting and listing a collection's documents.
    UNIQUE (collection_id, hash)
);

-- +goose Down
DROP TABLE documents;
DROP TABLE collections;
