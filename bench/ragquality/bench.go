package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag"
	"github.com/guichet/guichet/rag/chunk"
	"github.com/guichet/guichet/sim"
	"github.com/guichet/guichet/sqlite"
)

// Config is one benchmark run.
type Config struct {
	Root      string // repository root
	ChunkSize int    // characters
	Overlap   int    // characters
	Dim       int    // embedding dimensions
	TempDir   string // where the index database goes
}

// Ks are the cut-offs of recall@k; the last one is also MRR's.
var Ks = []int{1, 3, 5, 10}

const (
	collectionID = 1
	embedBatch   = 32
	simModel     = "sim-embed"
)

// Methods, in report order.
var methods = []guichet.SearchMethod{guichet.Lexical, guichet.Semantic, guichet.Hybrid}

// Scores are the metrics of one method over a set of queries.
type Scores struct {
	Queries int
	Recall  map[int]float64 // by k
	MRR     float64         // @10
}

// MarshalJSON writes recall@k in order of k (a map's keys would sort as
// strings: 1, 10, 3, 5).
func (s Scores) MarshalJSON() ([]byte, error) {
	b := []byte(`{"queries":` + strconv.Itoa(s.Queries))
	for _, k := range Ks {
		b = append(b, `,"recall@`+strconv.Itoa(k)+`":`...)
		b = strconv.AppendFloat(b, s.Recall[k], 'f', 4, 64)
	}
	b = append(b, `,"mrr@10":`...)
	b = strconv.AppendFloat(b, s.MRR, 'f', 4, 64)
	return append(b, '}'), nil
}

// Outcome is where one query's answer was found by one method.
type Outcome struct {
	Rank int      `json:"rank"` // 1-based rank of the first relevant chunk; 0 when not in the top 10
	Top  []string `json:"top"`  // documents of the top hits, for -v
}

// Report is a benchmark's result.
type Report struct {
	Docs         int                                         `json:"documents"`
	Chunks       int                                         `json:"chunks"`
	ChunkSize    int                                         `json:"chunk_size"`
	Overlap      int                                         `json:"chunk_overlap"`
	Dim          int                                         `json:"embedding_dim"`
	Parsers      map[string]string                           `json:"parsers"` // by document
	Queries      []Query                                     `json:"-"`
	Unreachable  []string                                    `json:"unreachable,omitempty"` // query ids whose answer no single chunk holds
	Methods      map[guichet.SearchMethod]Scores             `json:"methods"`
	ByKind       map[string]map[guichet.SearchMethod]Scores  `json:"by_kind"`
	PerQuery     map[string]map[guichet.SearchMethod]Outcome `json:"per_query"`
	EmbeddingsBy string                                      `json:"embeddings"`
	Note         string                                      `json:"note"`
}

// embeddingsNote goes with every report: without it the semantic and
// hybrid rows read as if a real model had been measured.
const embeddingsNote = "Embeddings come from guichet-sim: feature hashes of words and character trigrams, " +
	"so semantic search here is lexical-ish (shared word pieces partly forgive word endings; accents are not folded, synonyms unknown). " +
	"Its numbers say nothing about a real embedding model; only the lexical row measures a real component end to end."

// Run parses, chunks, embeds and indexes the corpus, then runs every query
// with each method and scores the rankings.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	files, err := corpusFiles(cfg.Root)
	if err != nil {
		return nil, err
	}
	queries, err := loadQueries(cfg.Root)
	if err != nil {
		return nil, err
	}
	opts := chunk.Options{Size: cfg.ChunkSize, Overlap: cfg.Overlap}
	docs := map[string]*Doc{}
	var order []*Doc
	for i, f := range files {
		d, err := loadDoc(ctx, f, int64(i+1), opts)
		if err != nil {
			return nil, err
		}
		if docs[d.Name] != nil {
			return nil, fmt.Errorf("two documents named %s", d.Name)
		}
		docs[d.Name] = d
		order = append(order, d)
	}
	// A label that is not in its document is a typo in the set, not a
	// retrieval failure: refuse to score it.
	for _, q := range queries {
		d := docs[q.Doc]
		if d == nil {
			return nil, fmt.Errorf("query %s: no document %s", q.ID, q.Doc)
		}
		if !strings.Contains(d.Text, fold(q.Answer)) {
			return nil, fmt.Errorf("query %s: %q is not in %s", q.ID, q.Answer, q.Doc)
		}
	}

	// The simulator, in process: its /v1/embeddings is the same code the
	// gateway's tests talk to over HTTP.
	srv := httptest.NewServer(sim.New(sim.Config{Models: []string{simModel}, EmbeddingDim: cfg.Dim, MaxModelLen: 1 << 20}))
	defer srv.Close()
	emb := &embedder{url: srv.URL + "/v1/embeddings", client: srv.Client()}

	db, err := sqlite.Open(ctx, filepath.Join(cfg.TempDir, "ragquality.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	x := db.Index()
	if c, ok := x.(io.Closer); ok {
		defer c.Close()
	}

	rep := &Report{
		Docs: len(order), ChunkSize: cfg.ChunkSize, Overlap: cfg.Overlap, Dim: cfg.Dim,
		Parsers: map[string]string{}, Queries: queries,
		Methods:      map[guichet.SearchMethod]Scores{},
		ByKind:       map[string]map[guichet.SearchMethod]Scores{},
		PerQuery:     map[string]map[guichet.SearchMethod]Outcome{},
		EmbeddingsBy: "guichet-sim feature hashing (words and character trigrams), " + fmt.Sprint(cfg.Dim) + " dimensions",
		Note:         embeddingsNote,
	}
	for _, d := range order {
		rep.Parsers[d.Name] = d.Parser
		texts := make([]string, len(d.Chunks))
		for i, c := range d.Chunks {
			texts[i] = c.Text
		}
		vecs, err := emb.embed(ctx, texts)
		if err != nil {
			return nil, fmt.Errorf("embed %s: %w", d.Name, err)
		}
		batch := make([]guichet.Chunk, len(d.Chunks))
		for i, c := range d.Chunks {
			batch[i] = guichet.Chunk{
				CollectionID: collectionID, DocumentID: d.ID, Content: c.Text,
				Metadata:  map[string]any{"document_name": d.Name, "chunk_index": c.Index, "page": c.Page},
				Embedding: vecs[i],
			}
		}
		if err := x.Add(ctx, batch); err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Name, err)
		}
		rep.Chunks += len(batch)
	}

	texts := make([]string, len(queries))
	for i, q := range queries {
		texts[i] = q.Text
	}
	qvecs, err := emb.embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("embed queries: %w", err)
	}
	limit := Ks[len(Ks)-1]
	byID := map[int64]*Doc{}
	for _, d := range order {
		byID[d.ID] = d
	}
	for i, q := range queries {
		if !reachable(docs[q.Doc], q.Answer) {
			rep.Unreachable = append(rep.Unreachable, q.ID)
		}
		// As rag.Service.Search: single methods fetch limit hits, hybrid
		// fuses lists of twice that.
		iq := guichet.IndexQuery{Text: q.Text, Vector: qvecs[i], CollectionIDs: []int64{collectionID}}
		lex2, err := x.Lexical(ctx, with(iq, 2*limit))
		if err != nil {
			return nil, fmt.Errorf("lexical %s: %w", q.ID, err)
		}
		sem2, err := x.Semantic(ctx, with(iq, 2*limit))
		if err != nil {
			return nil, fmt.Errorf("semantic %s: %w", q.ID, err)
		}
		lex, err := x.Lexical(ctx, with(iq, limit))
		if err != nil {
			return nil, fmt.Errorf("lexical %s: %w", q.ID, err)
		}
		sem, err := x.Semantic(ctx, with(iq, limit))
		if err != nil {
			return nil, fmt.Errorf("semantic %s: %w", q.ID, err)
		}
		rep.PerQuery[q.ID] = map[guichet.SearchMethod]Outcome{
			guichet.Lexical:  outcome(lex, q, byID),
			guichet.Semantic: outcome(sem, q, byID),
			guichet.Hybrid:   outcome(rag.Fuse(rag.DefaultRRFK, limit, lex2, sem2), q, byID),
		}
	}
	for _, m := range methods {
		rep.Methods[m] = score(rep, m, "")
	}
	for _, k := range kinds {
		rep.ByKind[k] = map[guichet.SearchMethod]Scores{}
		for _, m := range methods {
			rep.ByKind[k][m] = score(rep, m, k)
		}
	}
	return rep, nil
}

func with(q guichet.IndexQuery, limit int) guichet.IndexQuery {
	q.Limit = limit
	return q
}

// relevant: the chunk is in the labelled document and holds the answer.
// Matching on content, not on chunk numbers, keeps the labels valid when
// the chunking changes.
func relevant(c guichet.Chunk, q Query, byID map[int64]*Doc) bool {
	d := byID[c.DocumentID]
	return d != nil && d.Name == q.Doc && strings.Contains(fold(c.Content), fold(q.Answer))
}

// reachable: some chunk of the document holds the whole answer (a chunk
// boundary may cut a label; then no method can find it).
func reachable(d *Doc, answer string) bool {
	for _, c := range d.Chunks {
		if strings.Contains(fold(c.Text), fold(answer)) {
			return true
		}
	}
	return false
}

func outcome(hits []guichet.SearchHit, q Query, byID map[int64]*Doc) Outcome {
	var o Outcome
	for i, h := range hits {
		if o.Rank == 0 && relevant(h.Chunk, q, byID) {
			o.Rank = i + 1
		}
		if d := byID[h.Chunk.DocumentID]; d != nil && len(o.Top) < 3 {
			o.Top = append(o.Top, d.Name)
		}
	}
	return o
}

// score averages recall@k and MRR@10 over the queries of one kind ("" for
// all). With one relevant passage per query, recall@k is the share of
// queries whose passage ranks k or better.
func score(rep *Report, m guichet.SearchMethod, kind string) Scores {
	s := Scores{Recall: map[int]float64{}}
	for _, q := range rep.Queries {
		if kind != "" && q.Kind != kind {
			continue
		}
		s.Queries++
		r := rep.PerQuery[q.ID][m].Rank
		if r == 0 {
			continue
		}
		s.MRR += 1 / float64(r)
		for _, k := range Ks {
			if r <= k {
				s.Recall[k]++
			}
		}
	}
	if s.Queries > 0 {
		s.MRR /= float64(s.Queries)
		for _, k := range Ks {
			s.Recall[k] /= float64(s.Queries)
		}
	}
	return s
}

// embedder calls the simulator's OpenAI-compatible /v1/embeddings.
type embedder struct {
	url    string
	client *http.Client
}

func (e *embedder) embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += embedBatch {
		batch := texts[start:min(start+embedBatch, len(texts))]
		body, err := json.Marshal(map[string]any{"model": simModel, "input": batch})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("embeddings: %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		var r struct {
			Data []struct {
				Index     int       `json:"index"`
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("embeddings: %w", err)
		}
		if len(r.Data) != len(batch) {
			return nil, fmt.Errorf("embeddings: %d vectors for %d texts", len(r.Data), len(batch))
		}
		vecs := make([][]float32, len(batch))
		for _, d := range r.Data {
			if d.Index < 0 || d.Index >= len(batch) || vecs[d.Index] != nil {
				return nil, fmt.Errorf("embeddings: bad index %d", d.Index)
			}
			vecs[d.Index] = d.Embedding
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// tempDir makes the index's directory when the caller gives none.
func tempDir() (string, func(), error) {
	dir, err := os.MkdirTemp("", "ragquality-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
