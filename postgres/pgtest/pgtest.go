// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the server named by GUICHET_TEST_POSTGRES, or the whole
// database of the pgvector server named by GUICHET_TEST_PGVECTOR.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the server tests use when GUICHET_TEST_POSTGRES is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN creates a fresh schema, dropped when the test ends, and returns a
// DSN whose search_path selects it. It skips the test when the server is
// unreachable, or fails it if GUICHET_REQUIRE_ALL=1 (as CI sets).
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GUICHET_TEST_POSTGRES")
	if base == "" {
		base = DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := "PostgreSQL unreachable (set GUICHET_TEST_POSTGRES; GUICHET_REQUIRE_ALL=1 makes this fatal): " + err.Error()
		if os.Getenv("GUICHET_REQUIRE_ALL") == "1" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	defer conn.Close(ctx)

	schema := "g_" + randomHex(8)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(base, schema)
}

// VectorDSN returns the DSN of an empty database on a server with
// pgvector, named by GUICHET_TEST_PGVECTOR (CI serves PGlite, PostgreSQL
// in WASM with pgvector, from tools/pglite). It skips the test when that
// is unset, or fails it if GUICHET_REQUIRE_ALL=1.
//
// PGlite is one PostgreSQL backend that every connection shares: it
// ignores the search_path of the DSN and a SET made on one connection is
// seen by all, so the fresh schemas of DSN cannot work there, and neither
// can pgx's named prepared statements (two connections would prepare the
// same name). So tests that call VectorDSN run one at a time (it waits
// for the previous one to end), each on the public schema emptied
// (dropped and made again, extensions and all), and the DSN uses the
// simple protocol and a small pool.
func VectorDSN(t testing.TB) string {
	t.Helper()
	base := VectorServer(t)
	vectorMu.Lock()
	t.Cleanup(vectorMu.Unlock)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, withParams(base, map[string]string{"default_query_exec_mode": "simple_protocol"}))
	if err != nil {
		t.Fatalf("pgvector server (GUICHET_TEST_PGVECTOR) unreachable: %v", err)
	}
	defer conn.Close(ctx)
	// RESET ALL too: a SET left by an earlier test would still be there.
	for _, sql := range []string{"RESET ALL", "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("empty the pgvector database: %s: %v", sql, err)
		}
	}
	return withParams(base, map[string]string{"default_query_exec_mode": "simple_protocol", "pool_max_conns": "2"})
}

// VectorServer returns GUICHET_TEST_PGVECTOR, skipping the test when it
// is unset, or failing it if GUICHET_REQUIRE_ALL=1. A test whose subtests
// call VectorDSN calls it first, to skip once.
func VectorServer(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GUICHET_TEST_PGVECTOR")
	if base == "" {
		msg := "no PostgreSQL server with pgvector (set GUICHET_TEST_PGVECTOR to a DSN, as .ci/run does with PGlite; GUICHET_REQUIRE_ALL=1 makes this fatal)"
		if os.Getenv("GUICHET_REQUIRE_ALL") == "1" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	return base
}

// vectorMu makes the tests of the pgvector server run one at a time.
var vectorMu sync.Mutex

// withParams adds parameters to a URL or key=value DSN.
func withParams(dsn string, params map[string]string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			for k, v := range params {
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	for k, v := range params {
		dsn += " " + k + "=" + v
	}
	return dsn
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(dsn, schema string) string {
	return withParams(dsn, map[string]string{"search_path": schema})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
