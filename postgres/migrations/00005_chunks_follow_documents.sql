-- A document's chunks go with it, whoever deletes it: the RAG service,
-- its collection's deletion, or its owner's (ON DELETE CASCADE from
-- users to collections to documents, e.g. `guichet admin user delete`).
-- The chunks table has no foreign key (it came first, and the index is
-- usable on its own), so a trigger does it.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION delete_document_chunks() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM chunks WHERE document_id = OLD.id;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER documents_after_delete AFTER DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION delete_document_chunks();

-- +goose Down
DROP TRIGGER documents_after_delete ON documents;
DROP FUNCTION delete_document_chunks();
