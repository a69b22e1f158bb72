-- RAG library: collections of documents, owned by users. Deleting a user
-- deletes their collections, and deleting a collection its documents
-- (ON DELETE CASCADE); their chunks live in the index (00003), which the
-- RAG service empties itself. Names use the "C" collation so ordering is
-- bytewise, as in SQLite. name_lower is name lower-cased by the store, so
-- case-insensitive name filters do not depend on the server's locale.

-- +goose Up
CREATE TABLE collections (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text COLLATE "C" NOT NULL,
    name_lower  text NOT NULL,
    description text NOT NULL,
    owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    visibility  text NOT NULL CHECK (visibility IN ('private', 'public')),
    created     timestamptz NOT NULL,
    updated     timestamptz NOT NULL
);
CREATE INDEX collections_owner_id ON collections (owner_id);

CREATE TABLE documents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    name          text COLLATE "C" NOT NULL,
    name_lower    text NOT NULL,
    status        text NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    error         text NOT NULL,
    hash          bytea CHECK (octet_length(hash) = 32), -- SHA-256 of the content; NULL: no content
    parser        text NOT NULL,
    pages         integer NOT NULL,
    chunks        bigint NOT NULL,
    metadata      jsonb CHECK (jsonb_typeof(metadata) = 'object'), -- NULL: none
    created       timestamptz NOT NULL,
    updated       timestamptz NOT NULL,
    -- One document per content in a collection; NULLs never collide. Its
    -- index also serves counting and listing a collection's documents.
    UNIQUE (collection_id, hash)
);

-- +goose Down
DROP TABLE documents;
DROP TABLE collections;
