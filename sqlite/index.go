package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag/hnsw"
	"github.com/guichet/guichet/rag/lexical"
	"github.com/viterin/vek/vek32"
)

// Index returns the RAG index kept in this database (migration 00003),
// with the default IndexOptions:
//
//   - Lexical search is SQLite FTS5 with the unicode61 tokenizer and
//     remove_diacritics 2, so accents and case are folded ("ecole" finds
//     "École"); there is no stemming ("ecole" does not find "écoles").
//     The user's text is cut into words here, French stop words are
//     dropped (all of them are kept when nothing else is left), each word
//     is quoted as an FTS5 string and the words are joined with OR: no
//     character of the text is FTS5 syntax. Hits are ranked by bm25();
//     Score is -bm25, positive, bigger is better, comparable only within
//     one query.
//   - FTS5 scores every chunk holding one of the words: hundreds of
//     milliseconds at 100,000 chunks of frequent words. A collection of
//     at least IndexOptions.LexicalThreshold chunks is therefore searched
//     in memory (package rag/lexical): an inverted index with the same
//     tokenizer and the same BM25 arithmetic, pruned by MaxScore, so the
//     hits and scores are FTS5's, to the bit, for a database holding that
//     collection only. BM25's statistics (chunk count, average length,
//     chunks per word) are the collection's, where FTS5's are the whole
//     table's: with several collections scores differ a little from
//     FTS5's, and hits of several collections are merged by score, which
//     is comparable within a query only. A word that FTS5 would split
//     into a phrase (a combining mark it does not fold) sends the
//     collection back to FTS5. Like the vector cache, the index of a
//     collection is rebuilt, in the background (unless SyncGraphs),
//     when its chunk_versions counter moved; until then FTS5 answers.
//     It holds about 5 bytes per distinct word of each chunk, plus the
//     chunks' ids, document ids and decoded metadata.
//   - Semantic search compares the query with the embeddings of the
//     requested collections. Score is the cosine similarity, in [-1, 1]
//     (0 when either vector is zero); chunks whose embedding has another
//     size than the query, or none, are skipped. Normalised embeddings
//     are cached in memory per collection; the cache of a collection is
//     reloaded when its counter in chunk_versions, advanced by triggers on
//     every write, has moved (so writes by other processes are seen too).
//     Keep the returned Index rather than calling Index for every query:
//     each value has its own cache.
//   - The comparison is an exact scan of the cache, except in a
//     collection holding at least IndexOptions.GraphThreshold embeddings
//     of the query's size and a query with no DocumentIDs: there an HNSW
//     graph (package rag/hnsw) finds about the Limit nearest chunks,
//     which are then scored exactly like the scan does (so Score is the
//     same, and ScoreThreshold applies to it); recall is about 0.99, not
//     1. Metadata filters are applied inside the graph search, which
//     walks on until it holds enough chunks that pass: a very selective
//     filter makes it visit most of the graph, slower than a scan, but it
//     still returns the best passing chunks. Document-scoped queries scan:
//     they skip other documents before any arithmetic.
//   - A graph is built, or brought up to date after writes, in the
//     background (unless IndexOptions.SyncGraphs); until it matches the
//     collection's version, searches scan exactly. Graphs are saved next
//     to the database, in <file>.hnsw/<collection>-<dims>.bin (not for an
//     in-memory database), after a build, when a tenth of a graph changed
//     and by Close. A saved graph is only a head start: on load every node
//     is checked against the database (ids present, vectors equal),
//     missing chunks are added and vanished or changed ones removed, and
//     a graph that cannot be read, or that is more than a quarter stale,
//     is rebuilt. A crash loses nothing but build time. Close the index
//     (it is an io.Closer) to wait for background work and save graphs.
//   - Metadata filters are evaluated in Go on the decoded metadata, after
//     the SQL restriction to collections and documents and before the
//     limit: lexical hits are read in rank order until Limit of them pass
//     (in memory, the pruned search goes on until Limit chunks pass).
func (db *DB) Index() guichet.Index {
	return db.IndexWith(IndexOptions{})
}

// DefaultGraphThreshold is IndexOptions.GraphThreshold's default: below
// it an exact scan takes under about 15 ms per query.
const DefaultGraphThreshold = 100_000

// IndexOptions tune the index IndexWith returns.
type IndexOptions struct {
	// GraphThreshold is how many embeddings of one size a collection
	// holds before it is searched through an HNSW graph rather than
	// scanned; 0 means DefaultGraphThreshold, < 0 never.
	GraphThreshold int
	// SyncGraphs builds or updates a stale graph, or in-memory lexical
	// index, within the search that needs it, rather than in the
	// background while searches scan (or use FTS5). For tests and
	// benchmarks.
	SyncGraphs bool
	// GraphWorkers is the number of goroutines building a graph; 0 means
	// GOMAXPROCS.
	GraphWorkers int
	// Graph tunes the graphs (M, ef...); zero fields take the defaults
	// of package hnsw.
	Graph hnsw.Options
	// LexicalThreshold is how many chunks a collection holds before it
	// is searched by words through an in-memory index (package
	// rag/lexical) rather than FTS5; 0 means DefaultLexicalThreshold,
	// < 0 never. SyncGraphs applies to these indexes too.
	LexicalThreshold int
}

// DefaultLexicalThreshold is IndexOptions.LexicalThreshold's default:
// FTS5 scores every chunk holding a word of the query, tens of
// milliseconds from about this size on (all words frequent), while the
// in-memory index costs about 10 bytes per token of the collection.
const DefaultLexicalThreshold = 10_000

// IndexWith is Index with options.
func (db *DB) IndexWith(o IndexOptions) guichet.Index {
	if o.GraphThreshold == 0 {
		o.GraphThreshold = DefaultGraphThreshold
	}
	if o.GraphWorkers <= 0 {
		o.GraphWorkers = runtime.GOMAXPROCS(0)
	}
	if o.LexicalThreshold == 0 {
		o.LexicalThreshold = DefaultLexicalThreshold
	}
	return &index{db: db, opts: o, cache: map[int64]*collectionVectors{}, graphs: map[graphKey]*graphEntry{},
		lex: map[int64]*lexEntry{}}
}

type index struct {
	db    *DB
	opts  IndexOptions
	mu    sync.Mutex
	cache map[int64]*collectionVectors // by collection id

	graphsMu sync.Mutex
	graphs   map[graphKey]*graphEntry
	closed   bool
	work     sync.WaitGroup // background updates and saves
	dirOnce  sync.Once
	dir      string // where graphs are saved; "" for none

	lexMu sync.Mutex
	lex   map[int64]*lexEntry // in-memory lexical indexes, by collection
}

// collectionVectors is the cached embeddings of one collection, never
// modified once built.
type collectionVectors struct {
	version int64
	ids     []int64
	docs    []int64
	dims    []int
	vecs    [][]float32 // normalised; nil for a zero vector
	meta    []map[string]any
	perDims map[int]int // how many embeddings of each size

	posOnce sync.Once
	pos     map[int64]int32 // index by chunk id, built for graph searches
}

// positions returns the index of each chunk id, built on first use.
func (cv *collectionVectors) positions() map[int64]int32 {
	cv.posOnce.Do(func() {
		cv.pos = make(map[int64]int32, len(cv.ids))
		for i, id := range cv.ids {
			cv.pos[id] = int32(i)
		}
	})
	return cv.pos
}

var _ guichet.Index = (*index)(nil)

const chunkColumns = `id, collection_id, document_id, content, metadata, embedding, created`

func (x *index) Add(ctx context.Context, chunks []guichet.Chunk) error {
	if len(chunks) == 0 {
		return nil
	}
	dims := len(chunks[0].Embedding)
	metas := make([]any, len(chunks))
	for i, c := range chunks {
		if len(c.Embedding) != dims {
			return fmt.Errorf("chunk %d: embedding of %d dimensions, chunk 0 has %d", i, len(c.Embedding), dims)
		}
		if c.CollectionID <= 0 || c.DocumentID <= 0 {
			return fmt.Errorf("chunk %d: no collection or document", i)
		}
		m, err := encodeMetadata(c.Metadata)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		metas[i] = m
	}
	created := now()
	ids := make([]int64, len(chunks))
	err := x.db.inTx(ctx, false, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO chunks (collection_id, document_id, content, metadata, embedding, dims, created)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, c := range chunks {
			if err := stmt.QueryRowContext(ctx, c.CollectionID, c.DocumentID, c.Content, metas[i],
				encodeVector(c.Embedding), dims, micros(created)).Scan(&ids[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range chunks {
		chunks[i].ID = ids[i]
		chunks[i].Created = created
	}
	return nil
}

func (x *index) Chunks(ctx context.Context, documentID int64, offset, limit int) ([]guichet.Chunk, error) {
	if offset < 0 {
		return nil, fmt.Errorf("negative offset %d", offset)
	}
	if limit <= 0 {
		limit = -1 // every chunk
	}
	rows, err := x.db.db.QueryContext(ctx, `SELECT `+chunkColumns+` FROM chunks WHERE document_id = ? ORDER BY id LIMIT ? OFFSET ?`,
		documentID, limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []guichet.Chunk
	for rows.Next() {
		c, err := scanChunk(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (x *index) Chunk(ctx context.Context, id int64) (guichet.Chunk, error) {
	c, err := scanChunk(x.db.db.QueryRowContext(ctx, `SELECT `+chunkColumns+` FROM chunks WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return guichet.Chunk{}, notFound("chunk", id)
	}
	return c, err
}

func (x *index) DeleteChunk(ctx context.Context, id int64) error {
	res, err := x.db.db.ExecContext(ctx, `DELETE FROM chunks WHERE id = ?`, id)
	if err != nil {
		return err
	}
	return affected(res, "chunk", id)
}

func (x *index) DeleteDocument(ctx context.Context, documentID int64) error {
	_, err := x.db.db.ExecContext(ctx, `DELETE FROM chunks WHERE document_id = ?`, documentID)
	return err
}

func (x *index) DeleteCollection(ctx context.Context, collectionID int64) error {
	_, err := x.db.db.ExecContext(ctx, `DELETE FROM chunks WHERE collection_id = ?`, collectionID)
	if err == nil {
		x.mu.Lock()
		delete(x.cache, collectionID)
		x.mu.Unlock()
		x.dropGraphs(collectionID)
		x.lexMu.Lock()
		delete(x.lex, collectionID)
		x.lexMu.Unlock()
	}
	return err
}

// checkQuery returns the error of a query no search may run.
func checkQuery(q guichet.IndexQuery) error {
	if len(q.CollectionIDs) == 0 {
		return errors.New("search: no collection")
	}
	if q.Limit <= 0 {
		return fmt.Errorf("search: limit %d, want > 0", q.Limit)
	}
	if q.Filter != nil {
		return q.Filter.Check()
	}
	return nil
}

// idList is ids as an SQL list of integers (they are int64: no injection).
func idList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

func (x *index) Lexical(ctx context.Context, q guichet.IndexQuery) ([]guichet.SearchHit, error) {
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	words := lexical.QueryWords(q.Text)
	if len(words) == 0 {
		return nil, nil
	}
	// Collections with an up-to-date in-memory index are searched there,
	// the others through FTS5; the hits are merged by score.
	var docs map[int64]bool
	if len(q.DocumentIDs) > 0 {
		docs = make(map[int64]bool, len(q.DocumentIDs))
		for _, d := range q.DocumentIDs {
			docs[d] = true
		}
	}
	var fts []int64
	top := topK{k: q.Limit}
	for _, coll := range uniq(q.CollectionIDs) {
		lc, err := x.lexicalIndex(ctx, coll)
		if err != nil {
			return nil, err
		}
		if lc == nil || !lc.search(words, q, docs, &top) {
			fts = append(fts, coll)
		}
	}
	hits, err := x.fetchHits(ctx, top.items, guichet.Lexical)
	if err != nil || len(fts) == 0 {
		return hits, err
	}
	more, err := x.ftsLexical(ctx, q, words, fts)
	if err != nil {
		return nil, err
	}
	if len(hits) == 0 {
		return more, nil
	}
	hits = append(hits, more...)
	slices.SortStableFunc(hits, func(a, b guichet.SearchHit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Chunk.ID, b.Chunk.ID)
	})
	return hits[:min(len(hits), q.Limit)], nil
}

// ftsLexical is the lexical search of colls through FTS5.
func (x *index) ftsLexical(ctx context.Context, q guichet.IndexQuery, words []string, colls []int64) ([]guichet.SearchHit, error) {
	query := `SELECT c.id, c.collection_id, c.document_id, c.content, c.metadata, c.embedding, c.created, bm25(chunks_fts)
		FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid
		WHERE chunks_fts MATCH ? AND c.collection_id IN (` + idList(colls) + `)`
	if len(q.DocumentIDs) > 0 {
		query += ` AND c.document_id IN (` + idList(q.DocumentIDs) + `)`
	}
	query += ` ORDER BY bm25(chunks_fts), c.id`
	if q.Filter == nil {
		query += ` LIMIT ` + strconv.Itoa(q.Limit)
	}
	rows, err := x.db.db.QueryContext(ctx, query, ftsQuery(words))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hits []guichet.SearchHit
	for rows.Next() && len(hits) < q.Limit {
		var bm25 float64
		c, err := scanChunk(rows, &bm25)
		if err != nil {
			return nil, err
		}
		if q.Filter != nil && !q.Filter.Match(c.Metadata) {
			continue
		}
		hits = append(hits, guichet.SearchHit{Chunk: c, Score: -bm25, Method: guichet.Lexical})
	}
	return hits, rows.Err()
}

// fetchHits reads the chunks of items, in order, as hits of method;
// chunks deleted meanwhile are left out.
func (x *index) fetchHits(ctx context.Context, items []scored, method guichet.SearchMethod) ([]guichet.SearchHit, error) {
	if len(items) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(items))
	for i, s := range items {
		ids[i] = s.id
	}
	rows, err := x.db.db.QueryContext(ctx, `SELECT `+chunkColumns+` FROM chunks WHERE id IN (`+idList(ids)+`)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := make(map[int64]guichet.Chunk, len(ids))
	for rows.Next() {
		c, err := scanChunk(rows)
		if err != nil {
			return nil, err
		}
		byID[c.ID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var hits []guichet.SearchHit
	for _, s := range items {
		if c, ok := byID[s.id]; ok {
			hits = append(hits, guichet.SearchHit{Chunk: c, Score: s.score, Method: method})
		}
	}
	return hits, nil
}

func (x *index) Semantic(ctx context.Context, q guichet.IndexQuery) ([]guichet.SearchHit, error) {
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	if len(q.Vector) == 0 {
		return nil, errors.New("semantic search: no vector")
	}
	query, _ := normalize(q.Vector)
	var docs map[int64]bool
	if len(q.DocumentIDs) > 0 {
		docs = make(map[int64]bool, len(q.DocumentIDs))
		for _, d := range q.DocumentIDs {
			docs[d] = true
		}
	}
	var hits []guichet.SearchHit
	// Read outside a transaction: BEGIN takes the write lock here
	// (_txlock=immediate) and would queue searches behind the ledger.
	// The version is read before the rows, so a write in between only
	// makes the next search reload.
	conn := x.db.db
	err := func() error {
		var top topK
		top.k = q.Limit
		for _, coll := range uniq(q.CollectionIDs) {
			cv, err := x.vectors(ctx, conn, coll)
			if err != nil {
				return err
			}
			if docs == nil && query != nil && x.opts.GraphThreshold > 0 && cv.perDims[len(query)] >= x.opts.GraphThreshold {
				g, err := x.graph(ctx, coll, len(query), cv)
				if err != nil {
					return err
				}
				if g != nil {
					searchGraph(g, cv, query, q, &top)
					continue
				}
			}
			for i, v := range cv.vecs {
				if cv.dims[i] != len(query) || (docs != nil && !docs[cv.docs[i]]) {
					continue
				}
				score := 0.0
				if v != nil && query != nil {
					score = min(max(float64(dot(query, v)), -1), 1)
				}
				if q.ScoreThreshold != nil && score < *q.ScoreThreshold {
					continue
				}
				if !top.better(score, cv.ids[i]) {
					continue
				}
				if q.Filter != nil && !q.Filter.Match(cv.meta[i]) {
					continue
				}
				top.add(scored{cv.ids[i], score})
			}
		}
		var err error
		hits, err = x.fetchHits(ctx, top.items, guichet.Semantic)
		return err
	}()
	return hits, err
}

// vectors returns the cached embeddings of a collection, loading them
// when the collection changed since.
func (x *index) vectors(ctx context.Context, conn *sql.DB, collectionID int64) (*collectionVectors, error) {
	var version int64
	err := conn.QueryRowContext(ctx, `SELECT version FROM chunk_versions WHERE collection_id = ?`, collectionID).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	x.mu.Lock()
	cv := x.cache[collectionID]
	x.mu.Unlock()
	if cv != nil && cv.version == version {
		return cv, nil
	}
	cv = &collectionVectors{version: version, perDims: map[int]int{}}
	rows, err := conn.QueryContext(ctx, `SELECT id, document_id, dims, embedding, metadata FROM chunks
		WHERE collection_id = ? AND dims > 0 ORDER BY id`, collectionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, doc  int64
			dims     int
			emb      []byte
			metadata sql.NullString
		)
		if err := rows.Scan(&id, &doc, &dims, &emb, &metadata); err != nil {
			return nil, err
		}
		v, _ := normalize(decodeVector(emb))
		m, err := decodeMetadata(metadata)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", id, err)
		}
		cv.perDims[dims]++
		cv.ids = append(cv.ids, id)
		cv.docs = append(cv.docs, doc)
		cv.dims = append(cv.dims, dims)
		cv.vecs = append(cv.vecs, v)
		cv.meta = append(cv.meta, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	x.mu.Lock()
	if old := x.cache[collectionID]; old == nil || old.version <= version {
		x.cache[collectionID] = cv
	}
	x.mu.Unlock()
	return cv, nil
}

type scored struct {
	id    int64
	score float64
}

// topK keeps the k best (score descending, then id ascending), sorted.
type topK struct {
	k     int
	items []scored
}

func before(a, b scored) bool { return a.score > b.score || (a.score == b.score && a.id < b.id) }

// better reports whether (score, id) would enter the top.
func (t *topK) better(score float64, id int64) bool {
	return len(t.items) < t.k || before(scored{id, score}, t.items[len(t.items)-1])
}

func (t *topK) add(s scored) {
	i, _ := slices.BinarySearchFunc(t.items, s, func(e, s scored) int {
		if before(e, s) {
			return -1
		}
		return 1
	})
	t.items = slices.Insert(t.items, i, s)
	if len(t.items) > t.k {
		t.items = t.items[:t.k]
	}
}

func uniq(ids []int64) []int64 {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// scanChunk reads the chunkColumns, then extra.
func scanChunk(s scanner, extra ...any) (guichet.Chunk, error) {
	var (
		c        guichet.Chunk
		metadata sql.NullString
		emb      []byte
		created  int64
	)
	if err := s.Scan(append([]any{&c.ID, &c.CollectionID, &c.DocumentID, &c.Content, &metadata, &emb, &created}, extra...)...); err != nil {
		return c, err
	}
	m, err := decodeMetadata(metadata)
	if err != nil {
		return c, fmt.Errorf("chunk %d: %w", c.ID, err)
	}
	c.Metadata = m
	c.Embedding = decodeVector(emb)
	c.Created = fromMicros(created)
	return c, nil
}

func encodeMetadata(m map[string]any) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return string(b), nil
}

func decodeMetadata(s sql.NullString) (map[string]any, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return m, nil
}

// encodeVector is v as float32 little-endian; NULL when empty.
func encodeVector(v []float32) any {
	if len(v) == 0 {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// normalize returns v scaled to unit length (a copy), and false with nil
// for a zero vector. The norm is summed in float64.
func normalize(v []float32) ([]float32, bool) {
	var sum float64
	for _, f := range v {
		sum += float64(f) * float64(f)
	}
	if sum == 0 || math.IsNaN(sum) || math.IsInf(sum, 0) {
		return nil, false
	}
	n := math.Sqrt(sum)
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = float32(float64(f) / n)
	}
	return out, true
}

// dot uses AVX2 when the CPU has it (vek32, pure Go assembly, no cgo):
// about 4 times the plain loop on a scan.
func dot(a, b []float32) float32 { return vek32.Dot(a, b[:len(a)]) }

// ftsQuery turns the words of a query (lexical.QueryWords: letters,
// digits and combining marks only) into an FTS5 query: each quoted as an
// FTS5 string, joined with OR. It is "" when there is no word.
func ftsQuery(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = `"` + w + `"` // w has no quote: it is letters and digits
	}
	return strings.Join(quoted, " OR ")
}

// HNSW graphs of large collections.

type graphKey struct {
	collection int64
	dims       int
}

// graphEntry is the graph of one collection and embedding size.
type graphEntry struct {
	update sync.Mutex // held while bringing g up to date or saving it

	mu      sync.Mutex // guards the fields below
	g       *hnsw.Graph
	version int64 // chunk_versions version g reflects
	pending bool  // a background update is queued or running
	tried   bool  // the saved file was tried
	dirty   int   // nodes added or removed since the last save
}

// searchGraph adds to top the chunks the graph finds, scored exactly
// as the scan does.
// efSearch is the HNSW candidate list for a search of limit hits in a
// graph of n nodes: recall falls as graphs grow at a fixed ef (measured
// with bench/rag on clustered 384-d data: 1.000 at 100k, 0.892 at 1M with
// ef 64), so big graphs search wider.
func efSearch(n, limit int) int {
	ef := hnsw.DefaultEfSearch
	if n > 250_000 {
		ef = 160
	}
	return max(ef, 4*limit)
}

func searchGraph(g *hnsw.Graph, cv *collectionVectors, query []float32, q guichet.IndexQuery, top *topK) {
	pos := cv.positions()
	keep := func(id int64) bool {
		// The graph may be ahead of cv (a concurrent update): ids cv
		// does not hold are skipped.
		i, ok := pos[id]
		return ok && cv.dims[i] == len(query) && (q.Filter == nil || q.Filter.Match(cv.meta[i]))
	}
	for _, r := range g.Search(query, q.Limit, efSearch(g.Len(), q.Limit), keep) {
		i := pos[r.ID]
		score := 0.0
		if v := cv.vecs[i]; v != nil {
			score = min(max(float64(dot(query, v)), -1), 1)
		}
		if q.ScoreThreshold != nil && score < *q.ScoreThreshold {
			continue
		}
		if top.better(score, r.ID) {
			top.add(scored{r.ID, score})
		}
	}
}

// goWork runs f in the background unless the index is closed.
func (x *index) goWork(f func()) bool {
	x.graphsMu.Lock()
	defer x.graphsMu.Unlock()
	if x.closed {
		return false
	}
	x.work.Add(1)
	go func() {
		defer x.work.Done()
		f()
	}()
	return true
}

// graph returns the graph of a collection's embeddings of dims when it
// matches cv, and otherwise nil (the caller scans) after starting its
// update in the background; with SyncGraphs it updates it first.
func (x *index) graph(ctx context.Context, coll int64, dims int, cv *collectionVectors) (*hnsw.Graph, error) {
	key := graphKey{coll, dims}
	x.graphsMu.Lock()
	e := x.graphs[key]
	if e == nil {
		e = &graphEntry{}
		x.graphs[key] = e
	}
	x.graphsMu.Unlock()
	e.mu.Lock()
	if e.g != nil && e.version == cv.version {
		defer e.mu.Unlock()
		return e.g, nil
	}
	if x.opts.SyncGraphs {
		e.mu.Unlock()
		return x.update(key, e, cv), nil
	}
	defer e.mu.Unlock()
	if !e.pending {
		e.pending = x.goWork(func() {
			defer func() {
				e.mu.Lock()
				e.pending = false
				e.mu.Unlock()
			}()
			// The latest version, not the one of the search that asked.
			if cv, err := x.vectors(context.Background(), x.db.db, coll); err == nil {
				x.update(key, e, cv)
			}
		})
	}
	return nil, nil
}

// update brings e's graph up to date with cv and returns it: the graph
// in memory or, the first time, the saved one, checked node by node
// against cv; or a new one when there is neither or it is too stale.
func (x *index) update(key graphKey, e *graphEntry, cv *collectionVectors) *hnsw.Graph {
	e.update.Lock()
	defer e.update.Unlock()
	e.mu.Lock()
	g, version, tried := e.g, e.version, e.tried
	e.tried = true
	e.mu.Unlock()
	if g != nil && version == cv.version {
		return g
	}
	if g == nil && !tried {
		g = x.load(key)
	}
	changes := 0
	if g != nil {
		// Rebind also makes the graph share cv's vectors, so a reload of
		// the cache does not leave two copies in memory.
		pos := cv.positions()
		for _, id := range g.IDs() {
			i, ok := pos[id]
			if !ok || cv.dims[i] != key.dims || !g.Rebind(id, cv.vecs[i]) {
				g.Delete(id)
				changes++
			}
		}
		if 4*g.Deleted() > g.Len()+g.Deleted() {
			g = nil // too many tombstones: rebuild
		}
	}
	fresh := g == nil
	if fresh {
		g = hnsw.New(key.dims, x.opts.Graph)
	}
	var ids []int64
	var vecs [][]float32
	for i, id := range cv.ids {
		if cv.dims[i] == key.dims && (fresh || !g.Has(id)) {
			ids = append(ids, id)
			vecs = append(vecs, cv.vecs[i])
		}
	}
	g.AddBatch(ids, vecs, x.opts.GraphWorkers)
	changes += len(ids)
	e.mu.Lock()
	e.g, e.version = g, cv.version
	if fresh {
		e.dirty = max(e.dirty, 1) // whatever the file holds is outdated
	}
	e.dirty += changes
	save := e.dirty > 0 && (fresh || 10*e.dirty >= g.Len())
	e.mu.Unlock()
	if save && x.graphDir() != "" {
		x.goWork(func() { x.save(key, e) })
	}
	return g
}

// dropGraphs forgets the graphs of a deleted collection and their files.
func (x *index) dropGraphs(coll int64) {
	x.graphsMu.Lock()
	for key := range x.graphs {
		if key.collection == coll {
			delete(x.graphs, key)
		}
	}
	x.graphsMu.Unlock()
	if dir := x.graphDir(); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%d-*.bin", coll)))
		for _, f := range files {
			os.Remove(f)
		}
	}
}

// graphDir is where graphs are saved, next to the database file; "" for
// an in-memory database.
func (x *index) graphDir() string {
	x.dirOnce.Do(func() {
		var file string
		err := x.db.db.QueryRowContext(context.Background(), `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file)
		if err == nil && file != "" {
			x.dir = file + ".hnsw"
		}
	})
	return x.dir
}

func (x *index) graphFile(key graphKey) string {
	return filepath.Join(x.graphDir(), fmt.Sprintf("%d-%d.bin", key.collection, key.dims))
}

// graphFileMagic starts a saved graph, followed by the collection id,
// the embedding size and the chunk_versions version (int64
// little-endian each), then the graph in package hnsw's format.
const graphFileMagic = "GCHGRAPH"

// load reads a saved graph; nil when there is none or it cannot be read
// (it is then rebuilt, and the file overwritten).
func (x *index) load(key graphKey) *hnsw.Graph {
	if x.graphDir() == "" {
		return nil
	}
	f, err := os.Open(x.graphFile(key))
	if err != nil {
		return nil
	}
	defer f.Close()
	var header [len(graphFileMagic) + 24]byte
	if _, err := io.ReadFull(f, header[:]); err != nil || string(header[:8]) != graphFileMagic ||
		int64(binary.LittleEndian.Uint64(header[8:])) != key.collection ||
		int64(binary.LittleEndian.Uint64(header[16:])) != int64(key.dims) {
		return nil
	}
	g, err := hnsw.Read(f)
	if err != nil || g.Dims() != key.dims {
		return nil
	}
	return g
}

// save writes e's graph if it changed: to a temporary file, synced, then
// renamed, so a crash leaves the old file or the new one.
func (x *index) save(key graphKey, e *graphEntry) error {
	e.update.Lock()
	defer e.update.Unlock()
	e.mu.Lock()
	g, version, dirty := e.g, e.version, e.dirty
	e.mu.Unlock()
	if g == nil || dirty == 0 || x.graphDir() == "" {
		return nil
	}
	if err := os.MkdirAll(x.graphDir(), 0o755); err != nil {
		return err
	}
	final := x.graphFile(key)
	tmp, err := os.CreateTemp(x.graphDir(), filepath.Base(final)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	header := []byte(graphFileMagic)
	header = binary.LittleEndian.AppendUint64(header, uint64(key.collection))
	header = binary.LittleEndian.AppendUint64(header, uint64(key.dims))
	header = binary.LittleEndian.AppendUint64(header, uint64(version))
	_, err = tmp.Write(header)
	if err == nil {
		_, err = g.WriteTo(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		return fmt.Errorf("save graph of collection %d: %w", key.collection, err)
	}
	e.mu.Lock()
	e.dirty = 0 // update waits for e.update: nothing changed meanwhile
	e.mu.Unlock()
	return nil
}

// Close waits for background graph work and saves the graphs that
// changed since they were last saved. The database stays open.
func (x *index) Close() error {
	x.graphsMu.Lock()
	x.closed = true
	keys := make([]graphKey, 0, len(x.graphs))
	entries := make([]*graphEntry, 0, len(x.graphs))
	for k, e := range x.graphs {
		keys = append(keys, k)
		entries = append(entries, e)
	}
	x.graphsMu.Unlock()
	x.work.Wait()
	var errs []error
	for i, e := range entries {
		errs = append(errs, x.save(keys[i], e))
	}
	return errors.Join(errs...)
}

// In-memory lexical indexes of large collections.

// lexEntry is the in-memory lexical index of one collection.
type lexEntry struct {
	build sync.Mutex // held while building

	mu      sync.Mutex // guards the fields below
	lc      *lexCollection
	small   int64 // a version at which the collection was below the threshold; -1 none
	pending bool  // a background build is queued or running
}

// lexCollection is a collection's chunks indexed by words, never
// modified once built: position i of the index is chunk ids[i].
type lexCollection struct {
	version int64
	ids     []int64
	docs    []int64
	meta    []map[string]any
	idx     *lexical.Index
}

// search adds lc's best hits for q to top; false when the index cannot
// search these words (FTS5 must).
func (lc *lexCollection) search(words []string, q guichet.IndexQuery, docs map[int64]bool, top *topK) bool {
	var keep func(int32) bool
	if docs != nil || q.Filter != nil {
		keep = func(i int32) bool {
			return (docs == nil || docs[lc.docs[i]]) && (q.Filter == nil || q.Filter.Match(lc.meta[i]))
		}
	}
	hits, ok := lc.idx.Search(words, q.Limit, keep)
	for _, h := range hits {
		if top.better(h.Score, lc.ids[h.Doc]) {
			top.add(scored{lc.ids[h.Doc], h.Score})
		}
	}
	return ok
}

// lexicalIndex returns the in-memory index of a collection when it
// matches the collection's version, and otherwise nil (the caller
// searches through FTS5) after starting its build in the background;
// with SyncGraphs it builds it first. It is nil for a collection below
// the threshold.
func (x *index) lexicalIndex(ctx context.Context, coll int64) (*lexCollection, error) {
	if x.opts.LexicalThreshold < 0 {
		return nil, nil
	}
	version, err := x.version(ctx, coll)
	if err != nil {
		return nil, err
	}
	x.lexMu.Lock()
	e := x.lex[coll]
	if e == nil {
		e = &lexEntry{small: -1}
		x.lex[coll] = e
	}
	x.lexMu.Unlock()
	e.mu.Lock()
	if lc := e.lc; lc != nil && lc.version == version {
		e.mu.Unlock()
		return lc, nil
	}
	if e.small == version {
		e.mu.Unlock()
		return nil, nil
	}
	if x.opts.SyncGraphs {
		e.mu.Unlock()
		return x.buildLexical(ctx, coll, e)
	}
	if !e.pending {
		e.pending = x.goWork(func() {
			defer func() {
				e.mu.Lock()
				e.pending = false
				e.mu.Unlock()
			}()
			x.buildLexical(context.Background(), coll, e)
		})
	}
	e.mu.Unlock()
	return nil, nil
}

func (x *index) version(ctx context.Context, coll int64) (int64, error) {
	var version int64
	err := x.db.db.QueryRowContext(ctx, `SELECT version FROM chunk_versions WHERE collection_id = ?`, coll).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return version, err
}

// buildLexical indexes the chunks of a collection, unless it is below
// the threshold or e is already up to date, and stores the index in e.
// The version is read before the rows: a write in between makes the
// next search rebuild. A stale index is dropped rather than updated: a
// rebuild costs seconds per million chunks, in the background.
func (x *index) buildLexical(ctx context.Context, coll int64, e *lexEntry) (*lexCollection, error) {
	e.build.Lock()
	defer e.build.Unlock()
	version, err := x.version(ctx, coll)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	lc := e.lc
	e.mu.Unlock()
	if lc != nil && lc.version == version {
		return lc, nil
	}
	var n int
	if err := x.db.db.QueryRowContext(ctx, `SELECT count(*) FROM chunks WHERE collection_id = ?`, coll).Scan(&n); err != nil {
		return nil, err
	}
	if n < x.opts.LexicalThreshold {
		e.mu.Lock()
		e.lc, e.small = nil, version
		e.mu.Unlock()
		return nil, nil
	}
	rows, err := x.db.db.QueryContext(ctx, `SELECT id, document_id, content, metadata FROM chunks WHERE collection_id = ? ORDER BY id`, coll)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lc = &lexCollection{version: version, ids: make([]int64, 0, n), docs: make([]int64, 0, n), meta: make([]map[string]any, 0, n)}
	bd := lexical.NewBuilder()
	for rows.Next() {
		var (
			id, doc  int64
			content  string
			metadata sql.NullString
		)
		if err := rows.Scan(&id, &doc, &content, &metadata); err != nil {
			return nil, err
		}
		m, err := decodeMetadata(metadata)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", id, err)
		}
		bd.Add(content)
		lc.ids = append(lc.ids, id)
		lc.docs = append(lc.docs, doc)
		lc.meta = append(lc.meta, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	lc.idx = bd.Build()
	e.mu.Lock()
	if e.lc == nil || e.lc.version <= version {
		e.lc, e.small = lc, -1
	}
	e.mu.Unlock()
	return lc, nil
}
