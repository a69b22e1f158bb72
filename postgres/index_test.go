package postgres_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/postgres"
	"github.com/guichet/guichet/postgres/pgtest"
	"github.com/guichet/guichet/rag"
	"github.com/guichet/guichet/ragtest"
)

// hasVector is whether the server of pgtest.DSN has pgvector.
func hasVector(t *testing.T, db *postgres.DB) bool {
	t.Helper()
	ok, err := db.HasVector(t.Context())
	if err != nil {
		t.Fatalf("HasVector: %v", err)
	}
	return ok
}

// TestIndex runs the suite on the PostgreSQL server of the other tests
// (PostgreSQL 15 without pgvector in CI): lexical search only, and
// semantic search must fail with ErrNoVector. A server with pgvector gets
// the whole suite.
func TestIndex(t *testing.T) {
	probe := open(t, pgtest.DSN(t))
	defer probe.Close()
	var opts []ragtest.Option
	if !hasVector(t, probe) {
		opts = append(opts, ragtest.LexicalOnly)
	}
	ragtest.Index(t, func(t *testing.T) guichet.Index {
		db := open(t, pgtest.DSN(t))
		t.Cleanup(func() { db.Close() })
		return db.Index()
	}, opts...)
}

// TestIndexNoVector checks the error without pgvector: it says what to do.
func TestIndexNoVector(t *testing.T) {
	db := open(t, pgtest.DSN(t))
	defer db.Close()
	if hasVector(t, db) {
		t.Skip("SKIPPING: this server has pgvector") // CI's PostgreSQL 15 has none
	}
	x := db.Index()
	q := guichet.IndexQuery{Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Limit: 10}
	if _, err := x.Semantic(t.Context(), q); !errors.Is(err, postgres.ErrNoVector) {
		t.Errorf("Semantic: %v, want ErrNoVector", err)
	}
	err := x.Add(t.Context(), []guichet.Chunk{{CollectionID: 1, DocumentID: 1, Content: "a", Embedding: []float32{1, 0}}})
	if !errors.Is(err, postgres.ErrNoVector) {
		t.Errorf("Add with an embedding: %v, want ErrNoVector", err)
	}
}

// TestIndexSchemas migrates two schemas of one database at once: the
// unaccent extension is made once for the database, outside both (so
// that dropping one does not drop it under the other), and both find it:
// accents fold in both.
func TestIndexSchemas(t *testing.T) {
	dsns := []string{pgtest.DSN(t), pgtest.DSN(t)}
	dbs := make([]*postgres.DB, len(dsns))
	errs := make([]error, len(dsns))
	var wg sync.WaitGroup
	for i, dsn := range dsns {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("schema %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	for i, db := range dbs {
		var schema, ext string
		err := db.Pool().QueryRow(t.Context(), `SELECT current_schema(),
			(SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent')`).Scan(&schema, &ext)
		if err != nil {
			t.Fatal(err)
		}
		if ext == schema {
			t.Errorf("unaccent is in %s, which the test drops", schema)
		}
		x := db.Index()
		c := []guichet.Chunk{{CollectionID: 1, DocumentID: 1, Content: fmt.Sprint("L'École numéro ", i)}}
		if err := x.Add(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		hits, err := x.Lexical(t.Context(), guichet.IndexQuery{Text: "ecoles", CollectionIDs: []int64{1}, Limit: 10})
		if err != nil || len(hits) != 1 || hits[0].Chunk.ID != c[0].ID {
			t.Errorf("schema %d: Lexical ecoles: %v, %v; want chunk %d", i, hits, err, c[0].ID)
		}
	}
}

// TestIndexPgvector runs the whole suite, semantic search included, on
// the pgvector server (PGlite in CI), then a hybrid search.
//
// PGlite gives one database to every connection, so the suite runs one
// case at a time there (see pgtest.VectorDSN): slower, not weaker. Its
// unaccent and pgvector are loaded by tools/pglite (pglite-server -e), so
// every lexical case runs too.
func TestIndexPgvector(t *testing.T) {
	pgtest.VectorServer(t)
	ragtest.Index(t, func(t *testing.T) guichet.Index {
		db := open(t, pgtest.VectorDSN(t))
		t.Cleanup(func() { db.Close() })
		return db.Index()
	})
	t.Run("Hybrid", testHybrid)
	t.Run("ManySizes", testManySizes)
	t.Run("FilteredHNSW", testFilteredHNSW)
}

// testHybrid fuses lexical and semantic hits: the chunk both find ranks
// first, though neither search ranks it first.
func testHybrid(t *testing.T) {
	db := open(t, pgtest.VectorDSN(t))
	defer db.Close()
	if !hasVector(t, db) {
		t.Fatal("HasVector: false on the pgvector server")
	}
	x := db.Index()
	cs := []guichet.Chunk{
		{CollectionID: 1, DocumentID: 1, Content: "congés congés congés payés", Embedding: []float32{0, 1, 0}},
		{CollectionID: 1, DocumentID: 1, Content: "les congés du personnel", Embedding: []float32{1, 0.5, 0}},
		{CollectionID: 1, DocumentID: 1, Content: "la cantine de l'école", Embedding: []float32{1, 0, 0}},
		{CollectionID: 1, DocumentID: 1, Content: "le parking", Embedding: []float32{0, 0, 1}},
	}
	if err := x.Add(t.Context(), cs); err != nil {
		t.Fatal(err)
	}
	q := guichet.IndexQuery{Text: "congés", Vector: []float32{1, 0, 0}, CollectionIDs: []int64{1}, Limit: 2}
	lex, err := x.Lexical(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	sem, err := x.Semantic(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(hits []guichet.SearchHit) []int64 {
		var out []int64
		for _, h := range hits {
			out = append(out, h.Chunk.ID)
		}
		return out
	}
	if got, want := ids(lex), []int64{cs[0].ID, cs[1].ID}; !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("Lexical: %v, want %v in any order", got, want)
	}
	if want := []int64{cs[2].ID, cs[1].ID}; !slices.Equal(ids(sem), want) {
		t.Fatalf("Semantic: %v, want %v", ids(sem), want)
	}
	fused := rag.Fuse(rag.DefaultRRFK, 3, lex, sem)
	if len(fused) != 3 || fused[0].Chunk.ID != cs[1].ID || fused[0].Method != guichet.Hybrid {
		t.Errorf("Fuse: %+v, want chunk %d first", fused, cs[1].ID)
	}
}

// testManySizes stores embeddings of many sizes side by side, each size
// with its own partial HNSW index, and finds each by its size only.
func testManySizes(t *testing.T) {
	db := open(t, pgtest.VectorDSN(t))
	defer db.Close()
	x := db.Index()
	var want []int64
	for dims := 1; dims <= 5; dims++ {
		v := make([]float32, dims)
		v[0] = 1
		c := []guichet.Chunk{{CollectionID: 1, DocumentID: int64(dims), Content: "x", Embedding: v}}
		if err := x.Add(t.Context(), c); err != nil {
			t.Fatalf("Add %d dimensions: %v", dims, err)
		}
		want = append(want, c[0].ID)
	}
	var n int
	if err := db.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_indexes WHERE tablename = 'chunks' AND indexdef LIKE '%USING hnsw%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("%d HNSW indexes, want 5", n)
	}
	for dims := 1; dims <= 5; dims++ {
		v := make([]float32, dims)
		v[0] = 2
		hits, err := x.Semantic(t.Context(), guichet.IndexQuery{Vector: v, CollectionIDs: []int64{1}, Limit: 10})
		if err != nil || len(hits) != 1 || hits[0].Chunk.ID != want[dims-1] || hits[0].Score < 0.99999 {
			t.Errorf("Semantic %d dimensions: %+v, %v; want chunk %d, score 1", dims, hits, err, want[dims-1])
		}
	}
}

// testFilteredHNSW searches enough chunks for the planner to take the
// HNSW index, with a filter that only 1 chunk in 50 passes: the iterative
// scan still finds the Limit best that pass, as an exact scan would.
func testFilteredHNSW(t *testing.T) {
	db := open(t, pgtest.VectorDSN(t))
	defer db.Close()
	x := db.Index()
	r := rand.New(rand.NewPCG(1, 2))
	vec := func() []float32 {
		return []float32{float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())}
	}
	cs := make([]guichet.Chunk, 3000)
	for i := range cs {
		cs[i] = guichet.Chunk{CollectionID: 1, DocumentID: 1, Content: "x", Embedding: vec(),
			Metadata: map[string]any{"keep": i%50 == 0}}
	}
	if err := x.Add(t.Context(), cs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(t.Context(), `ANALYZE chunks`); err != nil {
		t.Fatal(err)
	}
	cosine := func(a, b []float32) float64 {
		var dot, na, nb float64
		for i := range a {
			dot += float64(a[i]) * float64(b[i])
			na += float64(a[i]) * float64(a[i])
			nb += float64(b[i]) * float64(b[i])
		}
		return dot / math.Sqrt(na*nb)
	}
	for range 5 {
		q := vec()
		var kept []guichet.Chunk
		for i, c := range cs {
			if i%50 == 0 {
				kept = append(kept, c)
			}
		}
		slices.SortFunc(kept, func(a, b guichet.Chunk) int { return -cmpFloat(cosine(q, a.Embedding), cosine(q, b.Embedding)) })
		var want []int64
		for _, c := range kept[:10] {
			want = append(want, c.ID)
		}
		f := guichet.MetadataFilter{Key: "keep", Op: "eq", Value: true}
		hits, err := x.Semantic(t.Context(), guichet.IndexQuery{Vector: q, CollectionIDs: []int64{1}, Filter: &f, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, h := range hits {
			got = append(got, h.Chunk.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Semantic %v: %v, want %v", q, got, want)
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
