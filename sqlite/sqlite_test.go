package sqlite_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/sqlite"
	"github.com/guichet/guichet/storetest"
	"github.com/pressly/goose/v3"
)

func open(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestIdentity(t *testing.T) {
	storetest.Identity(t, func(t *testing.T) guichet.IdentityStore {
		return open(t, filepath.Join(t.TempDir(), "guichet.db"))
	})
}

func TestLedger(t *testing.T) {
	storetest.Ledger(t, func(t *testing.T) guichet.Ledger {
		return open(t, filepath.Join(t.TempDir(), "guichet.db"))
	})
}

// TestReopen checks that data survives closing, and that migrating an
// up-to-date database is a no-op.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guichet.db")
	db := open(t, path)
	r := &guichet.Role{Name: "user"}
	if err := db.CreateRole(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open(t, path)
	defer db.Close()
	if _, err := db.Role(t.Context(), r.ID); err != nil {
		t.Fatalf("role lost on reopening: %v", err)
	}
	if v, err := db.Version(t.Context()); err != nil || v != 1 {
		t.Errorf("Version after reopening: %d, %v; want 1", v, err)
	}
	var journal string
	var foreignKeys int
	if err := db.SQL().QueryRow(`PRAGMA journal_mode`).Scan(&journal); err != nil || journal != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", journal, err)
	}
	if err := db.SQL().QueryRow(`PRAGMA foreign_keys`).Scan(&foreignKeys); err != nil || foreignKeys != 1 {
		t.Errorf("foreign_keys %d, %v; want 1", foreignKeys, err)
	}
}

// TestMigrationsDown checks that every migration can be undone and
// redone.
func TestMigrationsDown(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "guichet.db"))
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db.SQL(), os.DirFS("migrations"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(t.Context(), 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	var tables int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'goose%' AND name NOT LIKE 'sqlite%'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("%d tables left after migrating down (%v)", tables, err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if _, err := db.Version(t.Context()); err != nil {
		t.Error(err)
	}
}

func BenchmarkKeyByHash(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "guichet.db"))
	defer db.Close()
	hashes := makeKeys(b, db, 1000)
	for i := 0; b.Loop(); i++ {
		if _, err := db.KeyByHash(b.Context(), hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
	}
}

// makeKeys creates n keys and returns their hashes.
func makeKeys(b *testing.B, s guichet.IdentityStore, n int) []guichet.KeyHash {
	ctx := b.Context()
	r := &guichet.Role{Name: "user"}
	if err := s.CreateRole(ctx, r); err != nil {
		b.Fatal(err)
	}
	u := &guichet.User{Email: "u@example.com", RoleID: r.ID}
	if err := s.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	hashes := make([]guichet.KeyHash, n)
	for i := range hashes {
		hashes[i] = sha256.Sum256(fmt.Appendf(nil, "sk-%d", i))
		if err := s.CreateKey(ctx, &guichet.Key{UserID: u.ID, Name: "k", Hash: hashes[i]}); err != nil {
			b.Fatal(err)
		}
	}
	return hashes
}

// BenchmarkLedgerRecord records batches of 500 new lines.
func BenchmarkLedgerRecord(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "guichet.db"))
	defer db.Close()
	lines := 0
	for i := 0; b.Loop(); i++ {
		batch := storetest.UsageLines(fmt.Sprintf("b%d", i), 500)
		if err := db.Record(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		lines += len(batch)
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
