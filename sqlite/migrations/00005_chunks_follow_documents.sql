-- A document's chunks go with it, whoever deletes it: the RAG service,
-- its collection's deletion, or its owner's (ON DELETE CASCADE from
-- users to collections to documents, e.g. `guichet admin user delete`).
-- The chunks table has no foreign key (it came first, and the index is
-- usable on its own), so a trigger does it.

-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER documents_after_delete AFTER DELETE ON documents BEGIN
    DELETE FROM chunks WHERE document_id = old.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER documents_after_delete;
