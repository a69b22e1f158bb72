package sqlite_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/ragtest"
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
