package sqlite_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/ragtest"
	"github.com/guichet/guichet/sqlite"
)

func TestIndex(t *testing.T) {
	ragtest.Index(t, func(t *testing.T) guichet.Index {
		db := open(t, filepath.Join(t.TempDir(), "guichet.db"))
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return db.Index()
	})
}

// TestIndexCacheSharedFile checks that an index sees the writes another
// index (another process, for instance) makes to the same file.
func TestIndexCacheSharedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guichet.db")
	db1, db2 := open(t, path), open(t, path)
	defer db1.Close()
	defer db2.Close()
	x1, x2 := db1.Index(), db2.Index()
	ctx := t.Context()
	q := guichet.IndexQuery{Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Limit: 10}
	a := []guichet.Chunk{{CollectionID: 1, DocumentID: 1, Content: "a", Embedding: []float32{1, 0}}}
	if err := x1.Add(ctx, a); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		hits, err := x2.Semantic(ctx, q)
		if err != nil || len(hits) != 1 {
			t.Fatalf("Semantic: %v, %v; want 1 hit", hits, err)
		}
	}
	if err := x1.DeleteDocument(ctx, 1); err != nil {
		t.Fatal(err)
	}
	hits, err := x2.Semantic(ctx, q)
	if err != nil || len(hits) != 0 {
		t.Fatalf("Semantic after delete elsewhere: %v, %v; want none", hits, err)
	}
}

const benchChunks = 10_000

// frenchWords is a vocabulary for lexical benchmarks.
var frenchWords = strings.Fields(`école mairie marché congés salarié contrat
	travail durée période essai démission licenciement préavis indemnité
	rémunération salaire prime heures supplémentaires repos hebdomadaire
	jours fériés formation professionnelle médecin arrêt maladie accident
	retraite mutuelle prévoyance télétravail règlement intérieur sanction
	entretien annuel évaluation objectifs mobilité mutation promotion
	ancienneté convention collective accord entreprise syndicat délégué
	comité social économique élection représentant sécurité santé hygiène`)

var stop = strings.Fields("le la les de des du un une et en à pour par sur dans que qui est")

func frenchText(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		if r.IntN(3) == 0 {
			w[i] = stop[r.IntN(len(stop))]
		} else {
			w[i] = frenchWords[r.IntN(len(frenchWords))]
		}
	}
	return strings.Join(w, " ")
}

func fill(b *testing.B, x guichet.Index, dims int) {
	r := rand.New(rand.NewPCG(1, 2))
	for start := 0; start < benchChunks; start += 1000 {
		chunks := make([]guichet.Chunk, 1000)
		for i := range chunks {
			var v []float32
			if dims > 0 {
				v = make([]float32, dims)
				for j := range v {
					v[j] = float32(r.NormFloat64())
				}
			}
			chunks[i] = guichet.Chunk{
				CollectionID: 1,
				DocumentID:   int64(start+i)/20 + 1,
				Content:      frenchText(r, 200),
				Metadata:     map[string]any{"source": fmt.Sprintf("doc-%d.pdf", (start+i)/20), "page": i % 20},
				Embedding:    v,
			}
		}
		if err := x.Add(b.Context(), chunks); err != nil {
			b.Fatal(err)
		}
	}
}

func report(b *testing.B, start time.Time) {
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/query")
}

func BenchmarkSemantic(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "guichet.db"))
	defer db.Close()
	x := db.Index()
	fill(b, x, 384)
	r := rand.New(rand.NewPCG(3, 4))
	q := guichet.IndexQuery{Vector: make([]float32, 384), CollectionIDs: []int64{1}, Limit: 10}
	if _, err := x.Semantic(b.Context(), q); err != nil { // fills the cache
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		for j := range q.Vector {
			q.Vector[j] = float32(r.NormFloat64())
		}
		hits, err := x.Semantic(b.Context(), q)
		if err != nil || len(hits) != 10 {
			b.Fatalf("%d hits, %v", len(hits), err)
		}
	}
	report(b, start)
}

func BenchmarkLexical(b *testing.B) {
	db := open(b, filepath.Join(b.TempDir(), "guichet.db"))
	defer db.Close()
	x := db.Index()
	fill(b, x, 0)
	r := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		q := guichet.IndexQuery{Text: frenchText(r, 4), CollectionIDs: []int64{1}, Limit: 10}
		if _, err := x.Lexical(b.Context(), q); err != nil {
			b.Fatal(err)
		}
	}
	report(b, start)
}

// TestIndexGraph runs the conformance suite with every collection
// searched through an HNSW graph.
func TestIndexGraph(t *testing.T) {
	ragtest.Index(t, func(t *testing.T) guichet.Index {
		db := open(t, filepath.Join(t.TempDir(), "guichet.db"))
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return db.IndexWith(sqlite.IndexOptions{GraphThreshold: 1, SyncGraphs: true})
	})
}

// clusteredChunks returns n chunks of collection 1 with embeddings
// around a few centres.
func clusteredChunks(r *rand.Rand, n, dims int) []guichet.Chunk {
	centres := make([][]float64, 20)
	for i := range centres {
		centres[i] = make([]float64, dims)
		for j := range centres[i] {
			centres[i][j] = r.NormFloat64()
		}
	}
	out := make([]guichet.Chunk, n)
	for i := range out {
		c := centres[r.IntN(len(centres))]
		v := make([]float32, dims)
		for j := range v {
			v[j] = float32(c[j] + 0.3*r.NormFloat64())
		}
		out[i] = guichet.Chunk{CollectionID: 1, DocumentID: int64(i/10 + 1), Content: "x", Embedding: v,
			Metadata: map[string]any{"even": i%2 == 0}}
	}
	return out
}

// TestIndexGraphPersisted checks that graphs are saved next to the
// database, brought up to date on load, and that a corrupt file is
// rebuilt: the results always match an exact scan.
func TestIndexGraphPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guichet.db")
	db := open(t, path)
	defer db.Close()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	chunks := clusteredChunks(r, 600, 16)
	opts := sqlite.IndexOptions{GraphThreshold: 100, SyncGraphs: true}
	exact := db.IndexWith(sqlite.IndexOptions{GraphThreshold: -1})
	x := db.IndexWith(opts)
	if err := x.Add(ctx, chunks); err != nil {
		t.Fatal(err)
	}
	queries := clusteredChunks(r, 20, 16)
	check := func(what string, x guichet.Index) {
		t.Helper()
		even := guichet.MetadataFilter{Key: "even", Op: "eq", Value: true}
		var found, total int
		for i, qc := range queries {
			q := guichet.IndexQuery{Vector: qc.Embedding, CollectionIDs: []int64{1}, Limit: 10}
			if i%2 == 1 {
				q.Filter = &even
			}
			want, err := exact.Semantic(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := x.Semantic(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d hits, want %d", what, len(got), len(want))
			}
			scores := map[int64]float64{}
			for _, h := range want {
				scores[h.Chunk.ID] = h.Score
			}
			for _, h := range got {
				if s, ok := scores[h.Chunk.ID]; ok {
					found++
					if s != h.Score {
						t.Errorf("%s: chunk %d score %v, exact %v", what, h.Chunk.ID, h.Score, s)
					}
				}
			}
			total += len(want)
		}
		if rec := float64(found) / float64(total); rec < 0.9 {
			t.Errorf("%s: recall@10 %.3f", what, rec)
		}
	}
	check("built", x)
	if err := x.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	file := path + ".hnsw/1-16.bin"
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("graph not saved: %v", err)
	}
	// Writes while no index holds the graph: the saved one is stale.
	if err := exact.DeleteDocument(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := exact.Add(ctx, clusteredChunks(r, 50, 16)); err != nil {
		t.Fatal(err)
	}
	x = db.IndexWith(opts)
	check("loaded and updated", x)
	x.(io.Closer).Close()
	// A corrupt file is rebuilt.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	x = db.IndexWith(opts)
	check("corrupt file", x)
	x.(io.Closer).Close()
	// Deleting the collection removes its graphs.
	if err := x.DeleteCollection(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("graph file after DeleteCollection: %v", err)
	}
}

// TestIndexGraphBackground checks that, without SyncGraphs, searches scan
// until the graph is built in the background, then use it.
func TestIndexGraphBackground(t *testing.T) {
	db := open(t, ":memory:")
	defer db.Close()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(3, 4))
	x := db.IndexWith(sqlite.IndexOptions{GraphThreshold: 100})
	if err := x.Add(ctx, clusteredChunks(r, 300, 8)); err != nil {
		t.Fatal(err)
	}
	q := guichet.IndexQuery{Vector: clusteredChunks(r, 1, 8)[0].Embedding, CollectionIDs: []int64{1}, Limit: 5}
	for range 50 {
		hits, err := x.Semantic(ctx, q)
		if err != nil || len(hits) != 5 {
			t.Fatalf("Semantic: %d hits, %v", len(hits), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := x.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestIndexLexicalMemory runs the conformance suite with every
// collection searched by words through the in-memory index.
func TestIndexLexicalMemory(t *testing.T) {
	ragtest.Index(t, func(t *testing.T) guichet.Index {
		db := open(t, filepath.Join(t.TempDir(), "guichet.db"))
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return db.IndexWith(sqlite.IndexOptions{LexicalThreshold: 1, SyncGraphs: true})
	})
}

// TestIndexLexicalMemoryMatchesFTS5 checks that the in-memory index
// returns what FTS5 does on one collection: the same chunks in the same
// order with the same scores, to the bit (package lexical computes
// bm25() as FTS5 does, with the same log), with filters and document
// scopes too.
func TestIndexLexicalMemoryMatchesFTS5(t *testing.T) {
	db := open(t, ":memory:")
	defer db.Close()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(7, 8))
	fts := db.IndexWith(sqlite.IndexOptions{LexicalThreshold: -1})
	mem := db.IndexWith(sqlite.IndexOptions{LexicalThreshold: 100, SyncGraphs: true})
	chunks := make([]guichet.Chunk, 3000)
	for i := range chunks {
		chunks[i] = guichet.Chunk{
			CollectionID: 1,
			DocumentID:   int64(i/20 + 1),
			Content:      frenchText(r, 20+r.IntN(200)),
			Metadata:     map[string]any{"source": fmt.Sprintf("doc-%d.pdf", i/20), "page": i % 20},
		}
	}
	if err := fts.Add(ctx, chunks); err != nil {
		t.Fatal(err)
	}
	page3 := guichet.MetadataFilter{Key: "page", Op: "eq", Value: 3}
	doc7 := guichet.MetadataFilter{Key: "source", Op: "sw", Value: "doc-7"}
	for i := range 100 {
		q := guichet.IndexQuery{Text: frenchText(r, 1+r.IntN(6)), CollectionIDs: []int64{1}, Limit: []int{1, 10, 50}[i%3]}
		switch i % 5 {
		case 1:
			q.Filter = &page3
		case 2:
			q.Filter = &doc7 // a few documents only
		case 3:
			q.DocumentIDs = []int64{3, 50, 149}
		}
		want, err := fts.Lexical(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := mem.Lexical(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d hits, FTS5 %d", q.Text, len(got), len(want))
		}
		for j := range got {
			if got[j].Chunk.ID != want[j].Chunk.ID || got[j].Score != want[j].Score {
				t.Fatalf("%q hit %d: chunk %d score %v, FTS5 chunk %d score %v", q.Text, j,
					got[j].Chunk.ID, got[j].Score, want[j].Chunk.ID, want[j].Score)
			}
			if got[j].Chunk.Content != want[j].Chunk.Content || got[j].Method != guichet.Lexical {
				t.Fatalf("%q hit %d: chunk %+v", q.Text, j, got[j])
			}
		}
	}
	// A write makes the index stale: the next search rebuilds it (here,
	// SyncGraphs) and sees the new chunk.
	extra := []guichet.Chunk{{CollectionID: 1, DocumentID: 999, Content: "zygomatique zygomatique"}}
	if err := fts.Add(ctx, extra); err != nil {
		t.Fatal(err)
	}
	q := guichet.IndexQuery{Text: "Zygomatique", CollectionIDs: []int64{1}, Limit: 5}
	got, err := mem.Lexical(ctx, q)
	if err != nil || len(got) != 1 || got[0].Chunk.ID != extra[0].ID {
		t.Fatalf("after a write: %v, %v", got, err)
	}
}

// TestIndexLexicalMemoryBackground checks that, without SyncGraphs, FTS5
// answers until the in-memory index is built in the background, and
// that both answers are the same; and that several collections, some in
// memory, some not, are merged.
func TestIndexLexicalMemoryBackground(t *testing.T) {
	db := open(t, ":memory:")
	defer db.Close()
	ctx := t.Context()
	r := rand.New(rand.NewPCG(9, 10))
	x := db.IndexWith(sqlite.IndexOptions{LexicalThreshold: 200})
	var chunks []guichet.Chunk
	for i := range 400 {
		coll := int64(1)
		if i%10 == 0 {
			coll = 2 // 40 chunks: below the threshold, FTS5
		}
		chunks = append(chunks, guichet.Chunk{CollectionID: coll, DocumentID: int64(i/20 + 1), Content: frenchText(r, 50)})
	}
	if err := x.Add(ctx, chunks); err != nil {
		t.Fatal(err)
	}
	q := guichet.IndexQuery{Text: "contrat de travail", CollectionIDs: []int64{1, 2}, Limit: 10}
	first, err := x.Lexical(ctx, q)
	if err != nil || len(first) != 10 {
		t.Fatalf("Lexical: %d hits, %v", len(first), err)
	}
	colls := map[int64]bool{}
	for range 50 {
		hits, err := x.Lexical(ctx, q)
		if err != nil || len(hits) != 10 {
			t.Fatalf("Lexical: %d hits, %v", len(hits), err)
		}
		for i, h := range hits {
			colls[h.Chunk.CollectionID] = true
			if i > 0 && (h.Score > hits[i-1].Score || h.Score == hits[i-1].Score && h.Chunk.ID < hits[i-1].Chunk.ID) {
				t.Fatalf("hits out of order: %v", hits)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !colls[1] || !colls[2] {
		t.Errorf("hits from collections %v, want 1 and 2", colls)
	}
	if err := x.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
}
