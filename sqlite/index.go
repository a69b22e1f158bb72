package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/guichet/guichet"
)

// Index returns the RAG index kept in this database (migration 00003):
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
//   - Semantic search is exact: every embedding of the requested
//     collections is compared to the query. Score is the cosine
//     similarity, in [-1, 1] (0 when either vector is zero); chunks whose
//     embedding has another size than the query, or none, are skipped.
//     Normalised embeddings are cached in memory per collection; the cache
//     of a collection is reloaded when its counter in chunk_versions,
//     advanced by triggers on every write, has moved (so writes by other
//     processes are seen too). Keep the returned Index rather than calling
//     Index for every query: each value has its own cache.
//   - Metadata filters are evaluated in Go on the decoded metadata, after
//     the SQL restriction to collections and documents and before the
//     limit: lexical hits are read in rank order until Limit of them pass.
func (db *DB) Index() guichet.Index {
	return &index{db: db, cache: map[int64]*collectionVectors{}}
}

type index struct {
	db    *DB
	mu    sync.Mutex
	cache map[int64]*collectionVectors // by collection id
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
		return checkFilter(*q.Filter)
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
	match := ftsQuery(q.Text)
	if match == "" {
		return nil, nil
	}
	query := `SELECT c.id, c.collection_id, c.document_id, c.content, c.metadata, c.embedding, c.created, bm25(chunks_fts)
		FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid
		WHERE chunks_fts MATCH ? AND c.collection_id IN (` + idList(q.CollectionIDs) + `)`
	if len(q.DocumentIDs) > 0 {
		query += ` AND c.document_id IN (` + idList(q.DocumentIDs) + `)`
	}
	query += ` ORDER BY bm25(chunks_fts), c.id`
	if q.Filter == nil {
		query += ` LIMIT ` + strconv.Itoa(q.Limit)
	}
	rows, err := x.db.db.QueryContext(ctx, query, match)
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
		if q.Filter != nil && !matchFilter(*q.Filter, c.Metadata) {
			continue
		}
		hits = append(hits, guichet.SearchHit{Chunk: c, Score: -bm25, Method: guichet.Lexical})
	}
	return hits, rows.Err()
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
				if q.Filter != nil && !matchFilter(*q.Filter, cv.meta[i]) {
					continue
				}
				top.add(scored{cv.ids[i], score})
			}
		}
		if len(top.items) == 0 {
			return nil
		}
		ids := make([]int64, len(top.items))
		for i, s := range top.items {
			ids[i] = s.id
		}
		rows, err := conn.QueryContext(ctx, `SELECT `+chunkColumns+` FROM chunks WHERE id IN (`+idList(ids)+`)`)
		if err != nil {
			return err
		}
		defer rows.Close()
		byID := make(map[int64]guichet.Chunk, len(ids))
		for rows.Next() {
			c, err := scanChunk(rows)
			if err != nil {
				return err
			}
			byID[c.ID] = c
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, s := range top.items {
			if c, ok := byID[s.id]; ok {
				hits = append(hits, guichet.SearchHit{Chunk: c, Score: s.score, Method: guichet.Semantic})
			}
		}
		return nil
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
	cv = &collectionVectors{version: version}
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

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// maxQueryWords bounds the words of a lexical query.
const maxQueryWords = 64

// ftsQuery turns user text into an FTS5 query: its words (runs of letters,
// digits and combining marks), French stop words dropped unless nothing
// else is left, each quoted as an FTS5 string, joined with OR. It is ""
// when the text has no word.
func ftsQuery(text string) string {
	words := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Mn, r)
	})
	var kept, all []string
	seen := map[string]bool{}
	for _, w := range words {
		w = strings.ToLower(w)
		if seen[w] {
			continue
		}
		seen[w] = true
		all = append(all, w)
		if !frenchStopWords[w] {
			kept = append(kept, w)
		}
	}
	if len(kept) == 0 {
		kept = all
	}
	if len(kept) > maxQueryWords {
		kept = kept[:maxQueryWords]
	}
	for i, w := range kept {
		kept[i] = `"` + w + `"` // w has no quote: it is letters and digits
	}
	return strings.Join(kept, " OR ")
}

var frenchStopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
		a à au aux avec c ce ces cet cette d dans de des du elle elles en est et
		il ils j je l la le les leur leurs lui m ma mais me mes n ne nous on ou où
		par pas plus pour qu que qui s sa se ses son sont sur t ta te tes toi ton
		tu un une vos votre vous y`) {
		m[w] = true
	}
	return m
}()

// Metadata filters.

func checkFilter(f guichet.MetadataFilter) error {
	if len(f.Filters) > 0 {
		if f.Key != "" || f.Op != "" {
			return errors.New("metadata filter: both a comparison and a compound")
		}
		if f.Operator != "and" && f.Operator != "or" {
			return fmt.Errorf("metadata filter: operator %q, want and or or", f.Operator)
		}
		for _, g := range f.Filters {
			if err := checkFilter(g); err != nil {
				return err
			}
		}
		return nil
	}
	if f.Key == "" {
		return errors.New("metadata filter: no key and no filters")
	}
	switch f.Op {
	case "eq":
	case "sw", "ew", "co":
		if _, ok := f.Value.(string); !ok {
			return fmt.Errorf("metadata filter %s: value %v is not a string", f.Op, f.Value)
		}
	default:
		return fmt.Errorf("metadata filter: op %q, want eq, sw, ew or co", f.Op)
	}
	return nil
}

// matchFilter reports whether metadata m passes f, checked by checkFilter.
func matchFilter(f guichet.MetadataFilter, m map[string]any) bool {
	if len(f.Filters) > 0 {
		and := f.Operator == "and"
		for _, g := range f.Filters {
			if matchFilter(g, m) != and {
				return !and
			}
		}
		return and
	}
	v, ok := m[f.Key]
	if !ok {
		return false
	}
	if f.Op == "eq" {
		return sameValue(v, f.Value)
	}
	s, ok := v.(string)
	if !ok {
		return false
	}
	want := f.Value.(string)
	switch f.Op {
	case "sw":
		return strings.HasPrefix(s, want)
	case "ew":
		return strings.HasSuffix(s, want)
	default:
		return strings.Contains(s, want)
	}
}

// sameValue compares a decoded JSON value with a filter's value: numbers
// by value whatever their Go type, strings and bools exactly.
func sameValue(got, want any) bool {
	if g, ok := got.(float64); ok {
		w, ok := number(want)
		return ok && g == w
	}
	switch g := got.(type) {
	case string:
		w, ok := want.(string)
		return ok && g == w
	case bool:
		w, ok := want.(bool)
		return ok && g == w
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
