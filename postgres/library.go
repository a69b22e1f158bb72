package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/guichet/guichet"
	"github.com/jackc/pgx/v5"
)

// The library: collections and documents of the RAG service (migration
// 00004). Its writes are single statements, outside the identity
// version: replicas cache identities, not collections.

var _ guichet.Library = (*DB)(nil)

// The names a page may order collections and documents by, and their
// columns.
var (
	collectionOrder = map[string]string{"id": "id", "name": "name", "created": "created", "updated": "updated"}
	documentOrder   = collectionOrder
)

// conditions builds a WHERE clause with numbered parameters.
type conditions struct {
	conds []string
	args  []any
}

// add appends a condition in which each "?" is the next parameter, arg.
func (c *conditions) add(cond string, arg any) {
	c.args = append(c.args, arg)
	c.conds = append(c.conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(c.args))))
}

func (c *conditions) where() string {
	if len(c.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.conds, " AND ")
}

// Collections

const collectionColumns = `id, name, description, owner_id, visibility,
	(SELECT count(*) FROM documents WHERE documents.collection_id = collections.id), created, updated`

func scanCollection(row pgx.Row) (*guichet.Collection, error) {
	var c guichet.Collection
	var visibility string
	if err := row.Scan(&c.ID, &c.Name, &c.Description, &c.OwnerID, &visibility, &c.Documents, &c.Created, &c.Updated); err != nil {
		return nil, err
	}
	c.Visibility = guichet.Visibility(visibility)
	c.Created, c.Updated = c.Created.UTC(), c.Updated.UTC()
	return &c, nil
}

// CreateCollection fails with ErrNotFound when the owner is missing.
func (db *DB) CreateCollection(ctx context.Context, c *guichet.Collection) error {
	t := now()
	var id int64
	err := db.pool.QueryRow(ctx, `INSERT INTO collections
		(name, name_lower, description, owner_id, visibility, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`,
		c.Name, strings.ToLower(c.Name), c.Description, c.OwnerID, string(c.Visibility), t).Scan(&id)
	if err != nil {
		return fmt.Errorf("create collection %q: %w", c.Name, storeErr(err, guichet.ErrNotFound))
	}
	c.ID, c.Documents, c.Created, c.Updated = id, 0, t, t
	return nil
}

func (db *DB) Collection(ctx context.Context, id int64) (*guichet.Collection, error) {
	c, err := scanCollection(db.pool.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("collection", id)
	}
	return c, err
}

func (db *DB) Collections(ctx context.Context, f guichet.CollectionFilter, p guichet.Page) ([]*guichet.Collection, error) {
	page, err := pageClause(p, collectionOrder)
	if err != nil {
		return nil, err
	}
	var c conditions
	if f.ReaderID != 0 {
		c.add("(owner_id = ? OR visibility = 'public')", f.ReaderID)
	}
	if f.Name != "" {
		c.add("strpos(name_lower, ?) > 0", strings.ToLower(f.Name))
	}
	if f.Visibility != "" {
		c.add("visibility = ?", string(f.Visibility))
	}
	return list(ctx, db.pool, `SELECT `+collectionColumns+` FROM collections`+c.where()+page, c.args, scanCollection)
}

// UpdateCollection changes name, description and visibility; the owner
// stays.
func (db *DB) UpdateCollection(ctx context.Context, c *guichet.Collection) error {
	t := now()
	tag, err := db.pool.Exec(ctx, `UPDATE collections SET name = $1, name_lower = $2, description = $3, visibility = $4,
		updated = $5 WHERE id = $6`, c.Name, strings.ToLower(c.Name), c.Description, string(c.Visibility), t, c.ID)
	if err == nil {
		err = affected(tag, "collection", c.ID)
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
	tag, err := db.pool.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1`, id)
	if err == nil {
		err = affected(tag, what, id)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	return nil
}

// Documents

const documentColumns = `id, collection_id, name, status, error, hash, parser, pages, chunks, metadata, created, updated`

func scanDocument(row pgx.Row) (*guichet.Document, error) {
	var d guichet.Document
	var status string
	var hash []byte
	if err := row.Scan(&d.ID, &d.CollectionID, &d.Name, &status, &d.Error, &hash, &d.Parser, &d.Pages, &d.Chunks,
		&d.Metadata, &d.Created, &d.Updated); err != nil {
		return nil, err
	}
	switch len(hash) {
	case 0: // no content: the zero hash
	case len(d.Hash):
		copy(d.Hash[:], hash)
	default:
		return nil, fmt.Errorf("document %d: hash has %d bytes", d.ID, len(hash))
	}
	d.Status = guichet.DocumentStatus(status)
	d.Created, d.Updated = d.Created.UTC(), d.Updated.UTC()
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

// nullMetadata stores no metadata as NULL rather than a JSON null or {}.
// It is JSON text cast to jsonb in the SQL, which works with the simple
// protocol too (PGlite, PgBouncer), where pgx cannot tell a map's type.
func nullMetadata(m map[string]any) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return string(b), nil
}

// CreateDocument fails with ErrNotFound when the collection is missing
// and with ErrConflict when it holds a document of the same non-zero
// hash.
func (db *DB) CreateDocument(ctx context.Context, d *guichet.Document) error {
	t := now()
	meta, err := nullMetadata(d.Metadata)
	if err != nil {
		return err
	}
	var id int64
	err = db.pool.QueryRow(ctx, `INSERT INTO documents
		(collection_id, name, name_lower, status, error, hash, parser, pages, chunks, metadata, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $11) RETURNING id`,
		d.CollectionID, d.Name, strings.ToLower(d.Name), string(d.Status), d.Error, nullHash(d.Hash), d.Parser, d.Pages,
		d.Chunks, meta, t).Scan(&id)
	if err != nil {
		return fmt.Errorf("create document %q: %w", d.Name, storeErr(err, guichet.ErrNotFound))
	}
	d.ID, d.Created, d.Updated = id, t, t
	return nil
}

func (db *DB) Document(ctx context.Context, id int64) (*guichet.Document, error) {
	d, err := scanDocument(db.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("document", id)
	}
	return d, err
}

// DocumentByHash never finds the zero hash: no content is no match.
func (db *DB) DocumentByHash(ctx context.Context, collectionID int64, hash [32]byte) (*guichet.Document, error) {
	d, err := scanDocument(db.pool.QueryRow(ctx,
		`SELECT `+documentColumns+` FROM documents WHERE collection_id = $1 AND hash = $2`, collectionID, hash[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("document", fmt.Sprintf("with this hash in collection %d", collectionID))
	}
	return d, err
}

func (db *DB) Documents(ctx context.Context, f guichet.DocumentFilter, p guichet.Page) ([]*guichet.Document, error) {
	page, err := pageClause(p, documentOrder)
	if err != nil {
		return nil, err
	}
	var c conditions
	if f.ReaderID != 0 {
		c.add("collection_id IN (SELECT id FROM collections WHERE owner_id = ? OR visibility = 'public')", f.ReaderID)
	}
	if f.CollectionID != 0 {
		c.add("collection_id = ?", f.CollectionID)
	}
	if f.Name != "" {
		c.add("strpos(name_lower, ?) > 0", strings.ToLower(f.Name))
	}
	if f.Status != "" {
		c.add("status = ?", string(f.Status))
	}
	return list(ctx, db.pool, `SELECT `+documentColumns+` FROM documents`+c.where()+page, c.args, scanDocument)
}

// UpdateDocument saves what ingestion changes; the collection, the hash
// and Created stay.
func (db *DB) UpdateDocument(ctx context.Context, d *guichet.Document) error {
	t := now()
	meta, err := nullMetadata(d.Metadata)
	if err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx, `UPDATE documents SET name = $1, name_lower = $2, status = $3, error = $4, parser = $5,
		pages = $6, chunks = $7, metadata = $8::jsonb, updated = $9 WHERE id = $10`,
		d.Name, strings.ToLower(d.Name), string(d.Status), d.Error, d.Parser, d.Pages, d.Chunks, meta, t, d.ID)
	if err == nil {
		err = affected(tag, "document", d.ID)
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
	tag, err := db.pool.Exec(ctx, `UPDATE documents SET status = 'failed', error = $1, updated = $2
		WHERE status IN ('queued', 'processing') AND updated < $3`, reason, now(), updatedBefore.UTC())
	if err != nil {
		return 0, fmt.Errorf("fail unfinished documents: %w", err)
	}
	return tag.RowsAffected(), nil
}
