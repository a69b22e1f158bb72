package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/guichet/guichet"
)

// The library: collections and documents of the RAG service (migration
// 00004). Its writes are single statements, outside the identity
// version: replicas cache identities, not collections. Reads take no
// transaction (BEGIN takes the write lock).

var _ guichet.Library = (*DB)(nil)

// The names a page may order collections and documents by, and their
// columns.
var (
	collectionOrder = map[string]string{"id": "id", "name": "name", "created": "created", "updated": "updated"}
	documentOrder   = collectionOrder
)

// Collections

const collectionColumns = `id, name, description, owner_id, visibility,
	(SELECT count(*) FROM documents WHERE documents.collection_id = collections.id), created, updated`

func scanCollection(row scanner) (*guichet.Collection, error) {
	var c guichet.Collection
	var visibility string
	var created, updated int64
	if err := row.Scan(&c.ID, &c.Name, &c.Description, &c.OwnerID, &visibility, &c.Documents, &created, &updated); err != nil {
		return nil, err
	}
	c.Visibility = guichet.Visibility(visibility)
	c.Created, c.Updated = fromMicros(created), fromMicros(updated)
	return &c, nil
}

// CreateCollection fails with ErrNotFound when the owner is missing.
func (db *DB) CreateCollection(ctx context.Context, c *guichet.Collection) error {
	t := now()
	var id int64
	err := db.db.QueryRowContext(ctx, `INSERT INTO collections
		(name, name_lower, description, owner_id, visibility, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		c.Name, strings.ToLower(c.Name), c.Description, c.OwnerID, string(c.Visibility), micros(t), micros(t)).Scan(&id)
	if err != nil {
		return fmt.Errorf("create collection %q: %w", c.Name, storeErr(err, guichet.ErrNotFound))
	}
	c.ID, c.Documents, c.Created, c.Updated = id, 0, t, t
	return nil
}

func (db *DB) Collection(ctx context.Context, id int64) (*guichet.Collection, error) {
	c, err := scanCollection(db.db.QueryRowContext(ctx, `SELECT `+collectionColumns+` FROM collections WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("collection", id)
	}
	return c, err
}

func (db *DB) Collections(ctx context.Context, f guichet.CollectionFilter, p guichet.Page) ([]*guichet.Collection, error) {
	page, err := pageClause(p, collectionOrder)
	if err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	if f.ReaderID != 0 {
		conds, args = append(conds, "(owner_id = ? OR visibility = 'public')"), append(args, f.ReaderID)
	}
	if f.Name != "" {
		conds, args = append(conds, "instr(name_lower, ?) > 0"), append(args, strings.ToLower(f.Name))
	}
	if f.Visibility != "" {
		conds, args = append(conds, "visibility = ?"), append(args, string(f.Visibility))
	}
	return list(ctx, db.db, `SELECT `+collectionColumns+` FROM collections`+where(conds)+page, args, scanCollection)
}

// UpdateCollection changes name, description and visibility; the owner
// stays.
func (db *DB) UpdateCollection(ctx context.Context, c *guichet.Collection) error {
	t := now()
	res, err := db.db.ExecContext(ctx, `UPDATE collections SET name = ?, name_lower = ?, description = ?, visibility = ?, updated = ?
		WHERE id = ?`, c.Name, strings.ToLower(c.Name), c.Description, string(c.Visibility), micros(t), c.ID)
	if err == nil {
		err = affected(res, "collection", c.ID)
	}
	if err != nil {
		return fmt.Errorf("update collection: %w", err)
	}
	c.Updated = t
	return nil
}

// DeleteCollection deletes the collection and (by cascade) its documents.
func (db *DB) DeleteCollection(ctx context.Context, id int64) error {
	return db.deleteLibraryRow(ctx, "collections", "collection", id)
}

// deleteLibraryRow deletes a row by id, without advancing the identity
// version (as deleteRow does).
func (db *DB) deleteLibraryRow(ctx context.Context, table, what string, id int64) error {
	res, err := db.db.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ?`, id)
	if err == nil {
		err = affected(res, what, id)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	return nil
}

// Documents

const documentColumns = `id, collection_id, name, status, error, hash, parser, pages, chunks, metadata, created, updated`

func scanDocument(row scanner) (*guichet.Document, error) {
	var d guichet.Document
	var status string
	var hash []byte
	var metadata sql.NullString
	var created, updated int64
	if err := row.Scan(&d.ID, &d.CollectionID, &d.Name, &status, &d.Error, &hash, &d.Parser, &d.Pages, &d.Chunks,
		&metadata, &created, &updated); err != nil {
		return nil, err
	}
	switch len(hash) {
	case 0: // no content: the zero hash
	case len(d.Hash):
		copy(d.Hash[:], hash)
	default:
		return nil, fmt.Errorf("document %d: hash has %d bytes", d.ID, len(hash))
	}
	m, err := decodeMetadata(metadata)
	if err != nil {
		return nil, fmt.Errorf("document %d: %w", d.ID, err)
	}
	d.Status, d.Metadata = guichet.DocumentStatus(status), m
	d.Created, d.Updated = fromMicros(created), fromMicros(updated)
	return &d, nil
}

// nullHash stores the zero hash (no content) as NULL, which the unique
// constraint on (collection_id, hash) lets repeat.
func nullHash(h [32]byte) any {
	if h == [32]byte{} {
		return nil
	}
	return h[:]
}

// CreateDocument fails with ErrNotFound when the collection is missing
// and with ErrConflict when it holds a document of the same non-zero
// hash.
func (db *DB) CreateDocument(ctx context.Context, d *guichet.Document) error {
	metadata, err := encodeMetadata(d.Metadata)
	if err != nil {
		return fmt.Errorf("create document %q: %w", d.Name, err)
	}
	t := now()
	var id int64
	err = db.db.QueryRowContext(ctx, `INSERT INTO documents
		(collection_id, name, name_lower, status, error, hash, parser, pages, chunks, metadata, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		d.CollectionID, d.Name, strings.ToLower(d.Name), string(d.Status), d.Error, nullHash(d.Hash), d.Parser, d.Pages,
		d.Chunks, metadata, micros(t), micros(t)).Scan(&id)
	if err != nil {
		return fmt.Errorf("create document %q: %w", d.Name, storeErr(err, guichet.ErrNotFound))
	}
	d.ID, d.Created, d.Updated = id, t, t
	return nil
}

func (db *DB) Document(ctx context.Context, id int64) (*guichet.Document, error) {
	d, err := scanDocument(db.db.QueryRowContext(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("document", id)
	}
	return d, err
}

// DocumentByHash never finds the zero hash: no content is no match.
func (db *DB) DocumentByHash(ctx context.Context, collectionID int64, hash [32]byte) (*guichet.Document, error) {
	d, err := scanDocument(db.db.QueryRowContext(ctx,
		`SELECT `+documentColumns+` FROM documents WHERE collection_id = ? AND hash = ?`, collectionID, hash[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("document", fmt.Sprintf("with this hash in collection %d", collectionID))
	}
	return d, err
}

func (db *DB) Documents(ctx context.Context, f guichet.DocumentFilter, p guichet.Page) ([]*guichet.Document, error) {
	page, err := pageClause(p, documentOrder)
	if err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	if f.ReaderID != 0 {
		conds = append(conds, "collection_id IN (SELECT id FROM collections WHERE owner_id = ? OR visibility = 'public')")
		args = append(args, f.ReaderID)
	}
	if f.CollectionID != 0 {
		conds, args = append(conds, "collection_id = ?"), append(args, f.CollectionID)
	}
	if f.Name != "" {
		conds, args = append(conds, "instr(name_lower, ?) > 0"), append(args, strings.ToLower(f.Name))
	}
	if f.Status != "" {
		conds, args = append(conds, "status = ?"), append(args, string(f.Status))
	}
	return list(ctx, db.db, `SELECT `+documentColumns+` FROM documents`+where(conds)+page, args, scanDocument)
}

// UpdateDocument saves what ingestion changes; the collection, the hash
// and Created stay.
func (db *DB) UpdateDocument(ctx context.Context, d *guichet.Document) error {
	metadata, err := encodeMetadata(d.Metadata)
	if err != nil {
		return fmt.Errorf("update document %d: %w", d.ID, err)
	}
	t := now()
	res, err := db.db.ExecContext(ctx, `UPDATE documents SET name = ?, name_lower = ?, status = ?, error = ?, parser = ?,
		pages = ?, chunks = ?, metadata = ?, updated = ? WHERE id = ?`,
		d.Name, strings.ToLower(d.Name), string(d.Status), d.Error, d.Parser, d.Pages, d.Chunks, metadata, micros(t), d.ID)
	if err == nil {
		err = affected(res, "document", d.ID)
	}
	if err != nil {
		return fmt.Errorf("update document: %w", err)
	}
	d.Updated = t
	return nil
}

func (db *DB) DeleteDocument(ctx context.Context, id int64) error {
	return db.deleteLibraryRow(ctx, "documents", "document", id)
}

func (db *DB) FailUnfinished(ctx context.Context, reason string, updatedBefore time.Time) (int64, error) {
	res, err := db.db.ExecContext(ctx, `UPDATE documents SET status = 'failed', error = ?, updated = ?
		WHERE status IN ('queued', 'processing') AND updated < ?`, reason, micros(now()), micros(updatedBefore))
	if err != nil {
		return 0, fmt.Errorf("fail unfinished documents: %w", err)
	}
	return res.RowsAffected()
}

// where joins conditions with AND into a WHERE clause ("" for none).
func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}
