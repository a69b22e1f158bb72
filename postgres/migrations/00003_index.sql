-- RAG index: chunks of documents, searched by words (full-text search)
-- and by meaning (pgvector). One table holds every collection's chunks.
-- Ids are never reused (an identity, not reset on delete).
-- collection_id and document_id carry no foreign keys: chunks are kept
-- by the index, their collections and documents by the library (00004),
-- which deletes them through the index.
--
-- The embedding column is not created here: it needs the vector
-- extension, which many servers lack (and CREATE EXTENSION vector needs a
-- superuser). postgres/index.go adds it (and the extension) when the
-- server offers pgvector, the first time the index needs it, so that
-- installing pgvector later needs no new migration; without it the index
-- searches by words only.

-- +goose Up

-- fr_unaccent: the french configuration (stop words, Snowball stemmer)
-- with accents folded first, so that "ecole" finds "École" and "écoles".
-- Text search configurations belong to a schema (this one), extensions to
-- the whole database: unaccent is created once, in public when it exists
-- (so that dropping one schema of a database shared by several does not
-- drop it under the others), and its dictionary is named with whatever
-- schema it is in. The lock serialises migrations of several schemas of
-- one database, which would otherwise race to create the extension.
-- Without the unaccent module (a server without contrib), fr_unaccent is
-- plain french: accents then have to match.
-- +goose StatementBegin
DO $$
DECLARE
    ext_schema text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('guichet extensions', 0));
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent') THEN
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
            CREATE EXTENSION unaccent SCHEMA public;
        ELSE
            CREATE EXTENSION unaccent;
        END IF;
    END IF;
    SELECT n.nspname INTO ext_schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'unaccent';
    CREATE TEXT SEARCH CONFIGURATION fr_unaccent (COPY = french);
    IF ext_schema IS NULL THEN
        RAISE WARNING 'no unaccent extension: lexical search will not fold accents';
    ELSE
        EXECUTE format('ALTER TEXT SEARCH CONFIGURATION fr_unaccent
            ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part
            WITH %I.unaccent, french_stem', ext_schema);
    END IF;
END
$$;
-- +goose StatementEnd

CREATE TABLE chunks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id bigint NOT NULL,
    document_id   bigint NOT NULL,
    content       text NOT NULL,
    metadata      jsonb, -- an object; NULL: none
    created       timestamptz NOT NULL,
    -- The configuration is stored by OID: the column does not depend on
    -- the search_path of later sessions.
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector('fr_unaccent', content)) STORED
);
CREATE INDEX chunks_document_id_id ON chunks (document_id, id);
CREATE INDEX chunks_collection_id ON chunks (collection_id);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);

-- +goose Down
DROP TABLE chunks;
DROP TEXT SEARCH CONFIGURATION fr_unaccent;
