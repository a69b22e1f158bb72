package lexical

import (
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"modernc.org/libc"
	_ "modernc.org/sqlite"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"École", []string{"ecole"}},
		{"l'été", []string{"l", "ete"}},
		{"L’ÉTÉ dernier", []string{"l", "ete", "dernier"}},
		{"Œuvre, cœur; façade", []string{"œuvre", "cœur", "facade"}},
		{"Straße ØRE", []string{"straße", "øre"}},
		{"e\u0301cole", []string{"ecole"}}, // decomposed: the mark is dropped
		{"art. L1234-5 du code", []string{"art", "l1234", "5", "du", "code"}},
		{"x_y x-y x.y", []string{"x", "y", "x", "y", "x", "y"}},
		{"  ", nil},
		{"Ελληνικά Кириллица", []string{"ελληνικά", "кириллица"}}, // only Latin letters lose their accents},
	} {
		if got := Tokenize(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestQueryWords(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"Le congé de l'École", []string{"congé", "école"}},
		{"le la les", []string{"le", "la", "les"}}, // nothing else: kept
		{"école ÉCOLE ecole", []string{"école", "ecole"}},
		{`"a" OR b* NEAR(c)`, []string{"or", "b", "near"}},
		{"", nil},
	} {
		if got := QueryWords(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("QueryWords(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

var vocab = strings.Fields(`école ecole écoles mairie marché congé congés salarié contrat
	travail durée période essai démission préavis indemnité le la les de des du et à
	un une salaire prime heures repos jours fériés formation médecin arrêt maladie
	Cœur L'été l’ÉTÉ x2 2024 art. L1234-5`)

// corpus returns n random texts; a few are long, to exercise large
// frequencies and lengths.
func corpus(r *rand.Rand, n int) []string {
	texts := make([]string, n)
	for i := range texts {
		words := 1 + r.IntN(40)
		if r.IntN(50) == 0 {
			words = 300 + r.IntN(400)
		}
		w := make([]string, words)
		for j := range w {
			if r.IntN(3) == 0 {
				w[j] = vocab[r.IntN(8)] // skewed: frequent terms
			} else {
				w[j] = vocab[r.IntN(len(vocab))]
			}
		}
		texts[i] = strings.Join(w, " ")
	}
	return texts
}

// brute is a corpus tokenized once, for bruteForce.
type brute struct {
	toks  []map[string]int // frequencies by document
	lens  []int
	df    map[string]int
	avgdl float64
}

func newBrute(texts []string) *brute {
	bf := &brute{df: map[string]int{}}
	total := 0
	for _, s := range texts {
		toks := Tokenize(s)
		m := map[string]int{}
		for _, t := range toks {
			if m[t] == 0 {
				bf.df[t]++
			}
			m[t]++
		}
		bf.toks = append(bf.toks, m)
		bf.lens = append(bf.lens, len(toks))
		total += len(toks)
	}
	bf.avgdl = float64(total) / float64(len(texts))
	return bf
}

// search scores every document with the FTS5 formula, written out
// independently of the index.
func (bf *brute) search(words []string, k int, keep func(int32) bool) []Hit {
	N := len(bf.toks)
	var hits []Hit
	for d, m := range bf.toks {
		score, any := 0.0, false
		for _, w := range words {
			q := Tokenize(w)[0]
			f := m[q]
			if f == 0 {
				continue
			}
			any = true
			n := bf.df[q]
			idf := libc.Xlog(nil, (float64(N-n)+0.5)/(float64(n)+0.5))
			if idf <= 0 {
				idf = 1e-6
			}
			D := float64(bf.lens[d])
			score += idf * (float64(f) * (k1 + 1) / (float64(f) + k1*(1-b+b*D/bf.avgdl)))
		}
		if any && (keep == nil || keep(int32(d))) {
			hits = append(hits, Hit{int32(d), score})
		}
	}
	slices.SortStableFunc(hits, func(a, b Hit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return int(a.Doc - b.Doc)
	})
	return hits[:min(k, len(hits))]
}

func build(texts []string) *Index {
	bd := NewBuilder()
	for _, s := range texts {
		bd.Add(s)
	}
	return bd.Build()
}

func randomQuery(r *rand.Rand) []string {
	var text []string
	for range 1 + r.IntN(5) {
		text = append(text, vocab[r.IntN(len(vocab))])
	}
	return QueryWords(strings.Join(text, " "))
}

func TestSearchBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	texts := corpus(r, 1500)
	x := build(texts)
	bf := newBrute(texts)
	filters := map[string]func(int32) bool{
		"none":      nil,
		"even":      func(d int32) bool { return d%2 == 0 },
		"selective": func(d int32) bool { return d%97 == 5 },
		"nothing":   func(int32) bool { return false },
	}
	for i := range 120 {
		words := randomQuery(r)
		k := []int{1, 3, 10, 50, 5000}[i%5]
		for name, keep := range filters {
			got, ok := x.Search(words, k, keep)
			if !ok {
				// Words of several tokens are not searched here.
				if !slices.ContainsFunc(words, func(w string) bool { return len(Tokenize(w)) != 1 }) {
					t.Fatalf("%q: not ok", words)
				}
				continue
			}
			want := bf.search(words, k, keep)
			if len(got) != len(want) {
				t.Fatalf("%q k %d filter %s: %d hits, want %d", words, k, name, len(got), len(want))
			}
			for j := range got {
				if got[j].Doc != want[j].Doc || math.Abs(got[j].Score-want[j].Score) > 1e-9 {
					t.Fatalf("%q k %d filter %s: hit %d = %+v, want %+v", words, k, name, j, got[j], want[j])
				}
			}
		}
	}
}

// TestSearchFTS5 checks the scores against SQLite FTS5's bm25() itself,
// over the same documents: the same hits, with the same scores to the
// last bit.
func TestSearchFTS5(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	texts := corpus(r, 600)
	x := build(texts)
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE VIRTUAL TABLE t USING fts5 (content, tokenize = 'unicode61 remove_diacritics 2')`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		if _, err := tx.Exec(`INSERT INTO t (rowid, content) VALUES (?, ?)`, i, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	exact := 0
	for range 100 {
		words := randomQuery(r)
		got, ok := x.Search(words, 20, nil)
		if !ok {
			continue
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = `"` + w + `"`
		}
		rows, err := db.Query(`SELECT rowid, -bm25(t) FROM t WHERE t MATCH ? ORDER BY bm25(t), rowid LIMIT 20`, strings.Join(quoted, " OR "))
		if err != nil {
			t.Fatal(err)
		}
		var want []Hit
		for rows.Next() {
			var h Hit
			if err := rows.Scan(&h.Doc, &h.Score); err != nil {
				t.Fatal(err)
			}
			want = append(want, h)
		}
		rows.Close()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q:\n got %v\nwant %v", words, got, want)
		}
		exact++
	}
	if exact < 70 {
		t.Errorf("only %d queries compared", exact)
	}
}

// TestTokensFTS5 checks the tokenizer against FTS5's on texts mixing
// scripts, separators and marks.
func TestTokensFTS5(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range []string{
		`CREATE VIRTUAL TABLE t USING fts5 (content, tokenize = 'unicode61 remove_diacritics 2')`,
		`CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []rune("aZé É'’-_.,;: \t\n0123456789ŒœßØñÑçÇ\u0301\u0308ﬁ½²Ωωάİıǅ€\u00a0\u2009😀𐐀\U000F0000")
	texts := make([]string, 500)
	for i := range texts {
		rs := make([]rune, 1+r.IntN(30))
		for j := range rs {
			rs[j] = alphabet[r.IntN(len(alphabet))]
		}
		texts[i] = string(rs)
		if _, err := db.Exec(`INSERT INTO t (rowid, content) VALUES (?, ?)`, i, texts[i]); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]string, len(texts))
	rows, err := db.Query(`SELECT doc, term FROM v ORDER BY doc, "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var doc int
		var term string
		if err := rows.Scan(&doc, &term); err != nil {
			t.Fatal(err)
		}
		got[doc] = append(got[doc], term)
	}
	rows.Close()
	for i, s := range texts {
		if want := Tokenize(s); !slices.Equal(got[i], want) {
			t.Errorf("%q: FTS5 %q, Tokenize %q", s, got[i], want)
		}
	}
}

// BenchmarkSearch builds an index of LEXICAL_BENCH_DOCS (default 100,000)
// documents shaped like bench/rag's (120 words: a third French stop
// words, a third from the document's 8 topic words, a third from a
// 150-word vocabulary) and reports the search time and the memory per
// document.
func BenchmarkSearch(b *testing.B) {
	n := 100_000
	if s := os.Getenv("LEXICAL_BENCH_DOCS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	stop := strings.Fields("le la les de des du un une et en à pour par sur dans que qui est au aux ce il elle")
	words := make([]string, 150)
	for i := range words {
		words[i] = fmt.Sprintf("mot%dé", i)
	}
	topics := make([][]string, min(max(n/100, 10), 3000))
	for i := range topics {
		for range 8 {
			topics[i] = append(topics[i], words[r.IntN(len(words))])
		}
	}
	text := func(k, m int) string {
		w := make([]string, m)
		for i := range w {
			switch x := r.IntN(6); {
			case x < 2:
				w[i] = stop[r.IntN(len(stop))]
			case x < 4:
				w[i] = topics[k][r.IntN(8)]
			default:
				w[i] = words[r.IntN(len(words))]
			}
		}
		return strings.Join(w, " ")
	}
	bd := NewBuilder()
	for range n {
		bd.Add(text(r.IntN(len(topics)), 120))
	}
	x := bd.Build()
	queries := make([][]string, 100)
	for i := range queries {
		queries[i] = QueryWords(text(r.IntN(len(topics)), 5))
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		x.Search(queries[i%len(queries)], 10, nil)
		i++
	}
	b.ReportMetric(float64(x.Bytes())/float64(n), "bytes/doc")
}
