package postgres_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/postgres"
	"github.com/guichet/guichet/postgres/pgtest"
	"github.com/guichet/guichet/storetest"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

func open(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestIdentity(t *testing.T) {
	storetest.Identity(t, func(t *testing.T) guichet.IdentityStore {
		return open(t, pgtest.DSN(t))
	})
}

func TestLedger(t *testing.T) {
	storetest.Ledger(t, func(t *testing.T) guichet.Ledger {
		return open(t, pgtest.DSN(t))
	})
}

// TestConcurrentOpen starts replicas together on a new schema: they
// migrate it once, one at a time, and then share it.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	dbs := make([]*postgres.DB, 8)
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer dbs[i].Close()
	}

	r := &guichet.Role{Name: "user"}
	if err := dbs[0].CreateRole(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := dbs[1].RoleByName(t.Context(), "user"); err != nil {
		t.Errorf("a role created by one replica is not seen by another: %v", err)
	}
	if v, err := dbs[2].Version(t.Context()); err != nil || v != 1 {
		t.Errorf("Version seen by another replica: %d, %v; want 1", v, err)
	}
}

// TestMigrationsDown checks that every migration can be undone and
// redone.
func TestMigrationsDown(t *testing.T) {
	db := open(t, pgtest.DSN(t))
	defer db.Close()
	sqlDB := stdlib.OpenDBFromPool(db.Pool())
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, os.DirFS("migrations"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(t.Context(), 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	var tables int
	err = db.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE 'goose%'`).Scan(&tables)
	if err != nil || tables != 0 {
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
	db := open(b, pgtest.DSN(b))
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
	db := open(b, pgtest.DSN(b))
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
