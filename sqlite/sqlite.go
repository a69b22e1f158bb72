// Package sqlite keeps guichet's data in one SQLite file, for embedded
// mode. *DB implements guichet.IdentityStore and guichet.Ledger.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a guichet database in a SQLite file.
type DB struct {
	db *sql.DB
}

var _ guichet.IdentityStore = (*DB)(nil)

// Open opens (creating it if needed) the database file at path and
// migrates it to the latest schema.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)") // durable enough with WAL, and much faster
	q.Add("_pragma", "foreign_keys(1)")
	// Take the write lock at BEGIN, so a transaction never fails to
	// upgrade a read lock when another process writes.
	q.Set("_txlock", "immediate")
	// A file: URI, its path escaped, so no character of path reads as
	// part of the query.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// SQLite has one writer anyway; one connection makes every
	// transaction serial in this process and never SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// SQL is the underlying database, for features that keep tables of their
// own. It has a single connection: release it (close rows, end
// transactions) before calling the store again.
func (db *DB) SQL() *sql.DB { return db.db }

// Close closes the database.
func (db *DB) Close() error { return db.db.Close() }

// Version returns the identity version counter.
func (db *DB) Version(ctx context.Context) (int64, error) {
	var v int64
	err := db.db.QueryRowContext(ctx, `SELECT value FROM identity_version`).Scan(&v)
	return v, err
}

// change runs fn in a transaction that also advances the version.
func (db *DB) change(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return db.inTx(ctx, false, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE identity_version SET value = value + 1`)
		return err
	})
}

// inTx runs fn in a transaction, committed if fn succeeds.
func (db *DB) inTx(ctx context.Context, readOnly bool, fn func(tx *sql.Tx) error) error {
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// storeErr maps constraint failures to the store's errors. A foreign key
// failure means a missing referenced row when inserting or updating
// (pass ErrNotFound) and a row still referenced when deleting (pass
// ErrConflict).
func storeErr(err, foreignKey error) error {
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", guichet.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", foreignKey, err)
		}
	}
	return err
}

// notFound is the error for a missing object.
func notFound(what string, id any) error {
	return fmt.Errorf("%s %v: %w", what, id, guichet.ErrNotFound)
}

// affected returns notFound unless the statement changed a row.
func affected(res sql.Result, what string, id int64) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(what, id)
	}
	return nil
}

// pageClause is the ORDER BY, LIMIT and OFFSET of a page; columns maps
// the names a page may order by to columns (a whitelist: OrderBy never
// reaches the SQL).
func pageClause(p guichet.Page, columns map[string]string) (string, error) {
	name := p.OrderBy
	if name == "" {
		name = "id"
	}
	column, ok := columns[name]
	if !ok {
		return "", fmt.Errorf("cannot order by %q", p.OrderBy)
	}
	offset, limit, err := p.Window()
	if err != nil {
		return "", err
	}
	dir := " ASC"
	if p.Desc {
		dir = " DESC"
	}
	order := column + dir
	if column != "id" {
		order += ", id" + dir // ties in a stable order
	}
	return " ORDER BY " + order + " LIMIT " + strconv.Itoa(limit) + " OFFSET " + strconv.Itoa(offset), nil
}

// now is the store's clock: UTC, to the microsecond (what both stores
// keep exactly).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func timePtr(us sql.NullInt64) *time.Time {
	if !us.Valid {
		return nil
	}
	t := fromMicros(us.Int64)
	return &t
}

func nullAmount(a *guichet.Amount) any {
	if a == nil {
		return nil
	}
	return int64(*a)
}

func amountPtr(n sql.NullInt64) *guichet.Amount {
	if !n.Valid {
		return nil
	}
	a := guichet.Amount(n.Int64)
	return &a
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func intPtr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	v := n.Int64
	return &v
}

// nullID stores id 0 (none) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

type scanner interface{ Scan(dest ...any) error }
