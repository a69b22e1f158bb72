package postgres_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/postgres/pgtest"
)

// BenchmarkLexical measures French full-text search (ts_rank over a GIN
// index) on GUICHET_BENCH_CHUNKS chunks (default 10,000) of 200 words
// drawn from a small vocabulary, with 4-word queries, as the embedded
// index's benchmark does:
//
//	GUICHET_BENCH_CHUNKS=100000 go test -run '^$' -bench Lexical ./postgres/
func BenchmarkLexical(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("GUICHET_BENCH_CHUNKS")); err == nil && v > 0 {
		n = v
	}
	db := open(b, pgtest.DSN(b))
	x := db.Index()
	words := strings.Fields(`école mairie marché congés salarié contrat travail durée période
		essai démission licenciement préavis indemnité rémunération salaire prime heures
		supplémentaires repos hebdomadaire jours fériés formation professionnelle médecin arrêt
		maladie accident retraite mutuelle prévoyance télétravail règlement intérieur sanction
		entretien annuel évaluation objectifs mobilité mutation promotion ancienneté convention
		collective accord entreprise syndicat délégué comité social économique élection
		représentant sécurité santé hygiène le la les de des du un une et en à pour par sur dans`)
	r := rand.New(rand.NewPCG(1, 2))
	text := func(k int) string {
		w := make([]string, k)
		for i := range w {
			w[i] = words[r.IntN(len(words))]
		}
		return strings.Join(w, " ")
	}
	for start := 0; start < n; start += 1000 {
		chunks := make([]guichet.Chunk, min(1000, n-start))
		for i := range chunks {
			chunks[i] = guichet.Chunk{CollectionID: 1, DocumentID: int64(start+i)/20 + 1, Content: text(200)}
		}
		if err := x.Add(b.Context(), chunks); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := x.Lexical(b.Context(), guichet.IndexQuery{Text: text(4), CollectionIDs: []int64{1}, Limit: 10}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/query")
}
