-- RAG index: chunks of documents, searched by words (FTS5) and by
-- meaning (embeddings, scanned in Go). Ids are never reused
-- (AUTOINCREMENT). collection_id and document_id carry no foreign keys
-- yet: the collections and documents tables come with the RAG service.
-- created is unix microseconds (UTC).

-- +goose Up
CREATE TABLE chunks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    document_id   INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    metadata      TEXT,                       -- JSON object; NULL: none
    embedding     BLOB,                       -- float32 little-endian; NULL: none
    dims          INTEGER NOT NULL DEFAULT 0, -- len(embedding)/4
    created       INTEGER NOT NULL
);
CREATE INDEX chunks_document_id_id ON chunks (document_id, id);
CREATE INDEX chunks_collection_id ON chunks (collection_id);

-- Full-text index over content, an external-content FTS5 table kept in
-- sync by the triggers below. remove_diacritics 2 folds accents: "ecole"
-- matches "école" and "École".
CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    content,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- One counter per collection, advanced by every write to its chunks: the
-- in-memory vector cache of a collection is valid while it is unchanged.
CREATE TABLE chunk_versions (
    collection_id INTEGER PRIMARY KEY,
    version       INTEGER NOT NULL
);

-- +goose StatementBegin
CREATE TRIGGER chunks_after_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, content) VALUES (new.id, new.content);
    INSERT INTO chunk_versions (collection_id, version) VALUES (new.collection_id, 1)
        ON CONFLICT (collection_id) DO UPDATE SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER chunks_after_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO chunk_versions (collection_id, version) VALUES (old.collection_id, 1)
        ON CONFLICT (collection_id) DO UPDATE SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER chunks_after_update AFTER UPDATE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO chunks_fts (rowid, content) VALUES (new.id, new.content);
    INSERT INTO chunk_versions (collection_id, version) VALUES (old.collection_id, 1)
        ON CONFLICT (collection_id) DO UPDATE SET version = version + 1;
    INSERT INTO chunk_versions (collection_id, version) VALUES (new.collection_id, 1)
        ON CONFLICT (collection_id) DO UPDATE SET version = version + 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER chunks_after_update;
DROP TRIGGER chunks_after_delete;
DROP TRIGGER chunks_after_insert;
DROP TABLE chunk_versions;
DROP TABLE chunks_fts;
DROP TABLE chunks;
