package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag"
	"github.com/guichet/guichet/rag/chunk"
	"github.com/guichet/guichet/rag/parse"
	"github.com/guichet/guichet/sqlite"
)

// Config is what to measure.
type Config struct {
	Sizes   []int
	Dims    []int
	Queries int
	PDFGlob string    // ingestion speed; "" to skip
	Dir     string    // for the databases
	Log     io.Writer // progress; nil for none

	// LexicalOnly loads chunks without embeddings and measures lexical
	// search only (no graph build, no semantic nor hybrid search).
	LexicalOnly bool
}

// Latency is in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
}

// Measure is one size × dims.
type Measure struct {
	Chunks            int     `json:"chunks"`
	Dims              int     `json:"dims"`
	LoadSeconds       float64 `json:"load_s"`
	GraphBuildSeconds float64 `json:"graph_build_s"`
	Exact             Latency `json:"semantic_exact"`
	HNSW              Latency `json:"semantic_hnsw"`
	Recall10          float64 `json:"recall_at_10"`
	Lexical           Latency `json:"lexical"`
	Hybrid            Latency `json:"hybrid"`
}

// Ingestion is the parse + chunk speed.
type Ingestion struct {
	Glob           string  `json:"glob"`
	Parser         string  `json:"parser"`
	Files          int     `json:"files"`
	Pages          int     `json:"pages"`
	Chunks         int     `json:"chunks"`
	Seconds        float64 `json:"seconds"`
	PagesPerSecond float64 `json:"pages_per_s"`
}

// Report is the result of Run.
type Report struct {
	Machine   string     `json:"machine"`
	Queries   int        `json:"queries"`
	RRFK      int        `json:"rrf_k"`
	Runs      []Measure  `json:"runs"`
	Ingestion *Ingestion `json:"ingestion,omitempty"`
}

const (
	limit    = 10
	batch    = 2000
	docChunk = 20 // chunks per document
)

// Run measures every size × dims.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	rep := &Report{
		Machine: fmt.Sprintf("%s/%s, %d cores, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Queries: cfg.Queries,
		RRFK:    rag.DefaultRRFK,
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	for _, dims := range cfg.Dims {
		for _, n := range cfg.Sizes {
			m, err := measure(ctx, cfg, n, dims, logf)
			if err != nil {
				return nil, fmt.Errorf("%d × %d: %w", n, dims, err)
			}
			rep.Runs = append(rep.Runs, *m)
		}
	}
	if cfg.PDFGlob != "" {
		in, err := ingestion(ctx, cfg.PDFGlob)
		if err != nil {
			return nil, fmt.Errorf("ingestion: %w", err)
		}
		rep.Ingestion = in
	}
	return rep, nil
}

// corpus generates seeded chunks: embeddings around `clusters` Gaussian
// centres (a topic each), and text drawn mostly from the topic's words.
type corpus struct {
	r        *rand.Rand
	dims     int
	centres  [][]float32
	topics   [][]string // words of each cluster
	clusters int
}

func newCorpus(n, dims int) *corpus {
	r := rand.New(rand.NewPCG(uint64(n), uint64(dims)))
	// About 100 chunks per cluster, at most 3000 clusters.
	clusters := min(max(n/100, 10), 3000)
	c := &corpus{r: r, dims: dims, clusters: clusters}
	c.centres = make([][]float32, clusters)
	c.topics = make([][]string, clusters)
	for i := range c.centres {
		v := make([]float32, dims)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		c.centres[i] = v
		for range 8 {
			c.topics[i] = append(c.topics[i], vocabulary[r.IntN(len(vocabulary))])
		}
	}
	return c
}

// noise is the per-dimension standard deviation around a centre (of
// norm about sqrt(dims)): neighbours within a topic are close, but not
// trivially so.
const noise = 0.5

// vector returns a vector of cluster k.
func (c *corpus) vector(k int) []float32 {
	v := make([]float32, c.dims)
	for j := range v {
		v[j] = c.centres[k][j] + float32(noise*c.r.NormFloat64())
	}
	return v
}

// text is n words, French-looking, half of them from the topic.
func (c *corpus) text(k, n int) string {
	w := make([]string, n)
	for i := range w {
		switch x := c.r.IntN(6); {
		case x < 2:
			w[i] = stopWords[c.r.IntN(len(stopWords))]
		case x < 4:
			w[i] = c.topics[k][c.r.IntN(len(c.topics[k]))]
		default:
			w[i] = vocabulary[c.r.IntN(len(vocabulary))]
		}
	}
	return strings.Join(w, " ")
}

func measure(ctx context.Context, cfg Config, n, dims int, logf func(string, ...any)) (*Measure, error) {
	m := &Measure{Chunks: n, Dims: dims}
	path := filepath.Join(cfg.Dir, fmt.Sprintf("rag-%d-%d.db", n, dims))
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer func() {
		db.Close()
		os.RemoveAll(path + ".hnsw")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
	}()
	c := newCorpus(n, dims)
	x := db.Index()
	start := time.Now()
	for done := 0; done < n; done += batch {
		chunks := make([]guichet.Chunk, min(batch, n-done))
		for i := range chunks {
			k := c.r.IntN(c.clusters)
			id := done + i
			chunks[i] = guichet.Chunk{
				CollectionID: 1,
				DocumentID:   int64(id/docChunk + 1),
				Content:      c.text(k, 120),
				Metadata:     map[string]any{"source": fmt.Sprintf("doc-%d.pdf", id/docChunk), "page": id % docChunk},
				Embedding:    c.vector(k),
			}
			if cfg.LexicalOnly {
				chunks[i].Embedding = nil
			}
		}
		if err := x.Add(ctx, chunks); err != nil {
			return nil, err
		}
	}
	m.LoadSeconds = time.Since(start).Seconds()
	logf("%d × %d: loaded in %.1f s", n, dims, m.LoadSeconds)

	// Queries from the same topics as the corpus, as real questions are.
	type query struct {
		vec  []float32
		text string
	}
	qs := make([]query, cfg.Queries)
	for i := range qs {
		k := c.r.IntN(c.clusters)
		qs[i] = query{c.vector(k), c.text(k, 5)}
	}
	iq := func(q query) guichet.IndexQuery {
		return guichet.IndexQuery{Text: q.text, Vector: q.vec, CollectionIDs: []int64{1}, Limit: limit}
	}

	if cfg.LexicalOnly {
		// The first search builds the in-memory index (SyncGraphs).
		lex := db.IndexWith(sqlite.IndexOptions{GraphThreshold: -1, SyncGraphs: true})
		start = time.Now()
		if _, err := lex.Lexical(ctx, iq(qs[0])); err != nil {
			return nil, err
		}
		logf("%d: lexical index built in %.1f s", n, time.Since(start).Seconds())
		var err error
		m.Lexical, err = timeIt(qs, func(q query) error {
			_, err := lex.Lexical(ctx, iq(q))
			return err
		})
		if err != nil {
			return nil, err
		}
		logf("%d × %d: %+v", n, dims, *m)
		return m, nil
	}
	exact := db.IndexWith(sqlite.IndexOptions{GraphThreshold: -1})
	graph := db.IndexWith(sqlite.IndexOptions{GraphThreshold: 1, SyncGraphs: true})
	defer graph.(io.Closer).Close()
	// The first search fills the caches: the exact scan's vectors, and
	// the graph, built within that search (SyncGraphs).
	if _, err := exact.Semantic(ctx, iq(qs[0])); err != nil {
		return nil, err
	}
	start = time.Now()
	if _, err := graph.Semantic(ctx, iq(qs[0])); err != nil {
		return nil, err
	}
	m.GraphBuildSeconds = time.Since(start).Seconds()
	logf("%d × %d: graph built in %.1f s", n, dims, m.GraphBuildSeconds)

	var exactHits [][]guichet.SearchHit
	var found, total int
	var err2 error
	m.Exact, err2 = timeIt(qs, func(q query) error {
		hits, err := exact.Semantic(ctx, iq(q))
		exactHits = append(exactHits, hits)
		return err
	})
	if err2 != nil {
		return nil, err2
	}
	i := 0
	m.HNSW, err2 = timeIt(qs, func(q query) error {
		hits, err := graph.Semantic(ctx, iq(q))
		want := map[int64]bool{}
		for _, h := range exactHits[i] {
			want[h.Chunk.ID] = true
		}
		for _, h := range hits {
			if want[h.Chunk.ID] {
				found++
			}
		}
		total += len(want)
		i++
		return err
	})
	if err2 != nil {
		return nil, err2
	}
	if total > 0 {
		m.Recall10 = float64(found) / float64(total)
	}
	m.Lexical, err2 = timeIt(qs, func(q query) error {
		_, err := graph.Lexical(ctx, iq(q))
		return err
	})
	if err2 != nil {
		return nil, err2
	}
	// Hybrid as the RAG service does it: both searches, then fusion.
	// The embedded index is the one a deployment uses: HNSW above the
	// default threshold.
	// Like rag.Service.Search: twice the candidates from each side, the
	// two searches at once.
	m.Hybrid, err2 = timeIt(qs, func(q query) error {
		wide := iq(q)
		wide.Limit *= 2
		var lex []guichet.SearchHit
		var lexErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			lex, lexErr = graph.Lexical(ctx, wide)
		}()
		sem, err := graph.Semantic(ctx, wide)
		<-done
		if err != nil {
			return err
		}
		if lexErr != nil {
			return lexErr
		}
		rag.Fuse(rag.DefaultRRFK, limit, lex, sem)
		return nil
	})
	if err2 != nil {
		return nil, err2
	}
	logf("%d × %d: %+v", n, dims, *m)
	return m, nil
}

func timeIt[Q any](qs []Q, f func(Q) error) (Latency, error) {
	d := make([]time.Duration, len(qs))
	for i, q := range qs {
		start := time.Now()
		if err := f(q); err != nil {
			return Latency{}, err
		}
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	ms := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	return Latency{P50: ms(0.50), P95: ms(0.95)}, nil
}

// ingestion parses and chunks every file of glob (default chunk
// options), after one untimed parse that warms PDFium up.
func ingestion(ctx context.Context, glob string) (*Ingestion, error) {
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no file matches %s (%v)", glob, err)
	}
	in := &Ingestion{Glob: glob, Files: len(files)}
	data := make([][]byte, len(files))
	for i, f := range files {
		if data[i], err = os.ReadFile(f); err != nil {
			return nil, err
		}
	}
	if _, err := parse.Parse(ctx, filepath.Base(files[0]), "", data[0], parse.Limits{}); err != nil {
		return nil, err
	}
	// Repeat small sets so the time is measurable.
	rounds := 0
	start := time.Now()
	for time.Since(start) < 2*time.Second || rounds == 0 {
		for i, f := range files {
			doc, err := parse.Parse(ctx, filepath.Base(f), "", data[i], parse.Limits{})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			in.Parser = doc.Parser
			pages := make([]chunk.Page, len(doc.Pages))
			for j, p := range doc.Pages {
				pages[j] = chunk.Page{Number: p.Number, Text: p.Text}
			}
			cs, err := chunk.Split(pages, chunk.Options{})
			if err != nil {
				return nil, err
			}
			in.Pages += len(doc.Pages)
			in.Chunks += len(cs)
		}
		rounds++
	}
	in.Seconds = time.Since(start).Seconds()
	in.PagesPerSecond = float64(in.Pages) / in.Seconds
	return in, nil
}

var stopWords = strings.Fields("le la les de des du un une et en à pour par sur dans que qui est au aux ce il elle")

var vocabulary = strings.Fields(`école mairie marché congés salarié contrat
	travail durée période essai démission licenciement préavis indemnité
	rémunération salaire prime heures supplémentaires repos hebdomadaire
	jours fériés formation professionnelle médecin arrêt maladie accident
	retraite mutuelle prévoyance télétravail règlement intérieur sanction
	entretien annuel évaluation objectifs mobilité mutation promotion
	ancienneté convention collective accord entreprise syndicat délégué
	comité social économique élection représentant sécurité santé hygiène
	budget subvention marché public appel offres délibération conseil
	municipal préfecture arrêté décret circulaire instruction dossier
	demande usager guichet permis construire urbanisme cadastre parcelle
	voirie assainissement eau potable déchets collecte tri recyclage
	transport scolaire cantine périscolaire crèche enfance jeunesse sport
	culture bibliothèque musée patrimoine tourisme associatif bénévole`)
