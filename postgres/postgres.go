// Package postgres keeps guichet's data in PostgreSQL, for cluster mode
// (several replicas share the database). *DB implements
// guichet.IdentityStore and guichet.Ledger.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/guichet/guichet"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a guichet database in PostgreSQL.
type DB struct {
	pool *pgxpool.Pool
	// partitions remembers the usage_lines month partitions known to
	// exist (keys: their names), so recording skips the DDL.
	partitions sync.Map
}

var _ guichet.IdentityStore = (*DB)(nil)

// Open connects to the database at dsn (a URL or key=value string;
// search_path selects the schema) and migrates it to the latest schema.
// Replicas starting together migrate one at a time.
func Open(ctx context.Context, dsn string) (*DB, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &DB{pool: pool}, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool) // closing it leaves the pool open
	defer db.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(migrationLock{}))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// migrationLock makes replicas migrate one at a time: a session advisory
// lock keyed by the schema, so databases shared by several schemas (as
// tests do) do not wait on each other. Unlike goose's own session locker
// it blocks instead of polling every few seconds.
type migrationLock struct{}

const migrationLockKey = `hashtextextended('guichet migrations ' || coalesce(current_schema(), ''), 0)`

func (migrationLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+migrationLockKey+`)`)
	return err
}

func (migrationLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+migrationLockKey+`)`)
	return err
}

// Pool is the underlying connection pool, for features that keep tables
// of their own.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Version returns the identity version counter.
func (db *DB) Version(ctx context.Context) (int64, error) {
	var v int64
	err := db.pool.QueryRow(ctx, `SELECT value FROM identity_version`).Scan(&v)
	return v, err
}

// change runs fn in a transaction that also advances the version.
func (db *DB) change(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE identity_version SET value = value + 1`)
		return err
	})
}

// storeErr maps constraint violations to the store's errors. A foreign
// key violation means a missing referenced row when inserting or
// updating (pass ErrNotFound) and a row still referenced when deleting
// (pass ErrConflict).
func storeErr(err, foreignKey error) error {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		switch e.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", guichet.ErrConflict, err)
		case "23503": // foreign_key_violation
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
func affected(tag pgconn.CommandTag, what string, id int64) error {
	if tag.RowsAffected() == 0 {
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

// now is the store's clock: UTC, to the microsecond (what PostgreSQL
// keeps).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// utcPtr returns t in UTC (pgx reads timestamptz in the local zone).
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func nullAmount(a *guichet.Amount) any {
	if a == nil {
		return nil
	}
	return int64(*a)
}

func amountPtr(n *int64) *guichet.Amount {
	if n == nil {
		return nil
	}
	a := guichet.Amount(*n)
	return &a
}

// nullID stores id 0 (none) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
