package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/guichet/guichet"
	"github.com/jackc/pgx/v5"
)

// ErrNoVector is the error of semantic search, and of adding chunks with
// embeddings, on a server without pgvector.
var ErrNoVector = errors.New("the PostgreSQL server has no pgvector extension: install pgvector " +
	"(the PGDG package postgresql-<major version>-pgvector, or build it from github.com/pgvector/pgvector) " +
	"and run CREATE EXTENSION vector as a superuser, or use the embedded SQLite store")

// Index returns the RAG index kept in this database (migration 00003),
// one table of chunks for every collection:
//
//   - Lexical search is PostgreSQL full-text search with fr_unaccent, the
//     french configuration (stop words, Snowball stemmer) with accents
//     folded by unaccent: "ecole" finds "École" and "écoles". The user's
//     text is cut into words here (runs of letters, digits and combining
//     marks), each word goes through plainto_tsquery and the words are
//     ORed: no character of the text is query syntax. The words are
//     matched through a GIN index on a generated tsvector column. Score is
//     ts_rank with length normalisation 1 (a repeated word counts less and
//     less, a longer chunk less), positive, comparable only within one
//     query.
//   - Semantic search needs pgvector: the embedding column (of type
//     vector, no fixed size, so that embeddings of several sizes coexist)
//     and the extension are added on first use when the server offers
//     pgvector (see ErrNoVector). Each size N gets an HNSW cosine index on
//     embedding::vector(N), partial to the embeddings of that size, made
//     the first time Add stores one (up to 2000 dimensions, pgvector's
//     limit; bigger ones are scanned exactly). Searches run with
//     hnsw.iterative_scan = relaxed_order (pgvector 0.8 and later) and an
//     ef_search of at least 4×Limit, so that filters do not starve the
//     index scan, and the hits are re-sorted exactly. HNSW is approximate:
//     on large collections a hit may be missed, which the embedded exact
//     scan never does. Score is the cosine similarity, 1 - pgvector's
//     cosine distance; a zero vector (whose distance is NaN) scores 0, but
//     is not in the HNSW index, so only a scan that does not use it finds
//     it.
//   - Metadata filters are SQL on the jsonb column, applied before Limit.
//
// Keep the returned Index rather than calling Index for every query: it
// remembers whether pgvector is there and which sizes are indexed.
func (db *DB) Index() guichet.Index {
	return &index{db: db, indexed: map[int]bool{}}
}

type index struct {
	db *DB

	mu      sync.Mutex
	vec     *vectorInfo  // nil until the embedding column is known to exist
	checked time.Time    // when vec was last found missing
	noVec   error        // why, then
	indexed map[int]bool // sizes known to have their HNSW index
}

var _ guichet.Index = (*index)(nil)

// vectorInfo says where pgvector is: its objects are named with their
// schema, as the search_path of a session may not hold it (tests give
// each a schema of its own, and the extension is in public).
type vectorInfo struct {
	schema    string // quoted identifier
	iterative bool   // hnsw.iterative_scan exists (pgvector >= 0.8)
}

func (v *vectorInfo) typ(dims int) string {
	if dims == 0 {
		return v.schema + ".vector"
	}
	return v.schema + ".vector(" + strconv.Itoa(dims) + ")"
}

// recheckVector is how long a missing pgvector is remembered before the
// catalog is read again.
const recheckVector = 30 * time.Second

// extensionLock serialises the creation of extensions, which are per
// database, by the migrations and the index of every schema.
const extensionLock = `SELECT pg_advisory_xact_lock(hashtextextended('guichet extensions', 0))`

// HasVector reports whether the server can search by meaning. It installs
// the vector extension and adds the embedding column when pgvector is
// available but not yet used. It returns false and no error when the
// server has no pgvector (errors.Is(err, ErrNoVector) says why otherwise,
// as when CREATE EXTENSION is not allowed): start-up can then refuse with
// ErrNoVector's advice.
func (db *DB) HasVector(ctx context.Context) (bool, error) {
	v, err := ensureVector(ctx, db)
	if v != nil {
		return true, nil
	}
	if errors.Is(err, errNoPgvector) {
		return false, nil
	}
	return false, err
}

// errNoPgvector is ErrNoVector when the server does not offer pgvector at
// all.
var errNoPgvector = fmt.Errorf("%w", ErrNoVector)

// ensureVector finds pgvector and the embedding column, creating either
// when missing and possible.
func ensureVector(ctx context.Context, db *DB) (*vectorInfo, error) {
	var v *vectorInfo
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var (
			schema, version *string
			column          bool
		)
		find := func() error {
			return tx.QueryRow(ctx, `SELECT
				(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'),
				(SELECT extversion FROM pg_extension WHERE extname = 'vector'),
				EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'chunks'::regclass AND attname = 'embedding' AND NOT attisdropped)`).
				Scan(&schema, &version, &column)
		}
		if err := find(); err != nil {
			return err
		}
		if schema == nil || !column {
			var available bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')`).Scan(&available); err != nil {
				return err
			}
			if !available {
				return errNoPgvector
			}
			// Under the lock, read again: another replica may have done it.
			if _, err := tx.Exec(ctx, extensionLock); err != nil {
				return err
			}
			if err := find(); err != nil {
				return err
			}
			if schema == nil {
				// In public when there is one, as unaccent (00003).
				create := `CREATE EXTENSION vector`
				var public bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public')`).Scan(&public); err != nil {
					return err
				}
				if public {
					create += ` SCHEMA public`
				}
				if _, err := tx.Exec(ctx, create); err != nil {
					return fmt.Errorf("%w (%w)", ErrNoVector, err)
				}
				if err := find(); err != nil {
					return err
				}
			}
			if !column {
				q := pgx.Identifier{*schema}.Sanitize()
				if _, err := tx.Exec(ctx, `ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedding `+q+`.vector`); err != nil {
					return err
				}
			}
		}
		v = &vectorInfo{schema: pgx.Identifier{*schema}.Sanitize(), iterative: atLeast(*version, 0, 8)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// atLeast reports whether version ("0.8.1") is at least major.minor.
func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// vector returns where pgvector is, or an error wrapping ErrNoVector.
func (x *index) vector(ctx context.Context) (*vectorInfo, error) {
	x.mu.Lock()
	v, noVec, checked := x.vec, x.noVec, x.checked
	x.mu.Unlock()
	if v != nil {
		return v, nil
	}
	if noVec != nil && time.Since(checked) < recheckVector {
		return nil, noVec
	}
	v, err := ensureVector(ctx, x.db)
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case v != nil:
		x.vec = v
	case errors.Is(err, ErrNoVector):
		x.noVec, x.checked = err, time.Now()
	}
	return v, err
}

// columns is what scanChunk reads, embedding as text ('[1,2,3]') when
// there is the column.
func (x *index) columns(ctx context.Context) (string, error) {
	cols := `c.id, c.collection_id, c.document_id, c.content, c.metadata, c.created, `
	_, err := x.vector(ctx)
	switch {
	case err == nil:
		return cols + `c.embedding::text`, nil
	case errors.Is(err, ErrNoVector):
		return cols + `NULL::text`, nil
	}
	return "", err
}

// maxIndexedDims is the largest vector HNSW indexes.
const maxIndexedDims = 2000

func (x *index) Add(ctx context.Context, chunks []guichet.Chunk) error {
	if len(chunks) == 0 {
		return nil
	}
	dims := len(chunks[0].Embedding)
	metas := make([]any, len(chunks))
	vecs := make([]any, len(chunks))
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
		if dims > 0 {
			vecs[i] = encodeVector(c.Embedding)
		}
	}
	insert := `INSERT INTO chunks (collection_id, document_id, content, metadata, created) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id`
	if dims > 0 {
		v, err := x.vector(ctx)
		if err != nil {
			return err
		}
		if err := x.indexSize(ctx, v, dims); err != nil {
			return err
		}
		insert = `INSERT INTO chunks (collection_id, document_id, content, metadata, created, embedding)
			VALUES ($1, $2, $3, $4::jsonb, $5, $6::text::` + v.typ(0) + `) RETURNING id`
	}
	created := now()
	ids := make([]int64, len(chunks))
	err := pgx.BeginFunc(ctx, x.db.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i, c := range chunks {
			args := []any{c.CollectionID, c.DocumentID, c.Content, metas[i], created}
			if dims > 0 {
				args = append(args, vecs[i])
			}
			b.Queue(insert, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&ids[i]) })
		}
		return tx.SendBatch(ctx, b).Close()
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

// indexSize makes the HNSW index of the embeddings of a size, once: a
// partial index on an expression, as pgvector's documentation does for
// columns of mixed sizes. It is built outside Add's transaction, under a
// lock of the schema, so replicas do not race to build it.
func (x *index) indexSize(ctx context.Context, v *vectorInfo, dims int) error {
	if dims > maxIndexedDims {
		return nil
	}
	x.mu.Lock()
	done := x.indexed[dims]
	x.mu.Unlock()
	if done {
		return nil
	}
	n := strconv.Itoa(dims)
	err := pgx.BeginFunc(ctx, x.db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('guichet hnsw ' || coalesce(current_schema(), ''), 0))`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE INDEX IF NOT EXISTS chunks_embedding_`+n+` ON chunks
			USING hnsw ((embedding::`+v.typ(dims)+`) `+v.schema+`.vector_cosine_ops)
			WHERE `+v.schema+`.vector_dims(embedding) = `+n)
		return err
	})
	if err != nil {
		return fmt.Errorf("index embeddings of %d dimensions: %w", dims, err)
	}
	x.mu.Lock()
	x.indexed[dims] = true
	x.mu.Unlock()
	return nil
}

func (x *index) Chunks(ctx context.Context, documentID int64, offset, limit int) ([]guichet.Chunk, error) {
	if offset < 0 {
		return nil, fmt.Errorf("negative offset %d", offset)
	}
	cols, err := x.columns(ctx)
	if err != nil {
		return nil, err
	}
	query := `SELECT ` + cols + ` FROM chunks c WHERE c.document_id = $1 ORDER BY c.id OFFSET $2`
	args := []any{documentID, offset}
	if limit > 0 {
		query += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := x.db.pool.Query(ctx, query, args...)
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
	cols, err := x.columns(ctx)
	if err != nil {
		return guichet.Chunk{}, err
	}
	c, err := scanChunk(x.db.pool.QueryRow(ctx, `SELECT `+cols+` FROM chunks c WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return guichet.Chunk{}, notFound("chunk", id)
	}
	return c, err
}

func (x *index) DeleteChunk(ctx context.Context, id int64) error {
	tag, err := x.db.pool.Exec(ctx, `DELETE FROM chunks WHERE id = $1`, id)
	if err != nil {
		return err
	}
	return affected(tag, "chunk", id)
}

func (x *index) DeleteDocument(ctx context.Context, documentID int64) error {
	_, err := x.db.pool.Exec(ctx, `DELETE FROM chunks WHERE document_id = $1`, documentID)
	return err
}

func (x *index) DeleteCollection(ctx context.Context, collectionID int64) error {
	_, err := x.db.pool.Exec(ctx, `DELETE FROM chunks WHERE collection_id = $1`, collectionID)
	return err
}

// where is the restriction of a search to its collections, documents and
// filter, its arguments appended to args.
func where(q guichet.IndexQuery, args *[]any) (string, error) {
	if len(q.CollectionIDs) == 0 {
		return "", errors.New("search: no collection")
	}
	if q.Limit <= 0 {
		return "", fmt.Errorf("search: limit %d, want > 0", q.Limit)
	}
	*args = append(*args, q.CollectionIDs)
	w := `c.collection_id = ANY($` + strconv.Itoa(len(*args)) + `::bigint[])`
	if len(q.DocumentIDs) > 0 {
		*args = append(*args, q.DocumentIDs)
		w += ` AND c.document_id = ANY($` + strconv.Itoa(len(*args)) + `::bigint[])`
	}
	if q.Filter != nil {
		if err := q.Filter.Check(); err != nil {
			return "", fmt.Errorf("metadata filter: %w", err)
		}
		f, err := filterSQL(*q.Filter, args)
		if err != nil {
			return "", err
		}
		w += ` AND ` + f
	}
	return w, nil
}

// maxQueryWords bounds the words of a lexical query.
const maxQueryWords = 64

// queryWords cuts user text into words: runs of letters, digits and
// combining marks, lower-cased, each once.
func queryWords(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Mn, r)
	}) {
		w = strings.ToLower(w)
		if !seen[w] && len(out) < maxQueryWords {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func (x *index) Lexical(ctx context.Context, q guichet.IndexQuery) ([]guichet.SearchHit, error) {
	var args []any
	w, err := where(q, &args)
	if err != nil {
		return nil, err
	}
	words := queryWords(q.Text)
	if len(words) == 0 {
		return nil, nil
	}
	// One plainto_tsquery per word, ORed: stop words give an empty query,
	// which || ignores.
	tsq := make([]string, len(words))
	for i, word := range words {
		args = append(args, word)
		tsq[i] = `plainto_tsquery('fr_unaccent', $` + strconv.Itoa(len(args)) + `::text)`
	}
	cols, err := x.columns(ctx)
	if err != nil {
		return nil, err
	}
	args = append(args, q.Limit)
	rows, err := x.db.pool.Query(ctx, `SELECT `+cols+`, ts_rank(c.tsv, s.q, 1)::float8 AS rank
		FROM chunks c, (SELECT `+strings.Join(tsq, ` || `)+` AS q) s
		WHERE c.tsv @@ s.q AND `+w+`
		ORDER BY rank DESC, c.id
		LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hits []guichet.SearchHit
	for rows.Next() {
		var rank float64
		c, err := scanChunk(rows, &rank)
		if err != nil {
			return nil, err
		}
		hits = append(hits, guichet.SearchHit{Chunk: c, Score: rank, Method: guichet.Lexical})
	}
	return hits, rows.Err()
}

// efSearch is the HNSW candidate list of a search of limit hits: at least
// 4×limit (and pgvector's 100 default), at most pgvector's 1000.
func efSearch(limit int) int {
	return min(max(4*limit, 100), 1000)
}

func (x *index) Semantic(ctx context.Context, q guichet.IndexQuery) ([]guichet.SearchHit, error) {
	var args []any
	w, err := where(q, &args)
	if err != nil {
		return nil, err
	}
	if len(q.Vector) == 0 {
		return nil, errors.New("semantic search: no vector")
	}
	v, err := x.vector(ctx)
	if err != nil {
		return nil, err
	}
	cols, err := x.columns(ctx)
	if err != nil {
		return nil, err
	}
	dims := len(q.Vector)
	n := strconv.Itoa(dims)
	// Only embeddings of the query's size: the same predicate as the
	// partial index of that size, with the size written out so that the
	// planner can match them. The cast is evaluated after it (in the
	// select list), so other sizes never reach it.
	w += ` AND ` + v.schema + `.vector_dims(c.embedding) = ` + n
	if zero(q.Vector) {
		// Every cosine is 0 (NaN for pgvector): the first ids win.
		args = append(args, q.Limit)
		return x.semantic(ctx, v, q, `SELECT `+cols+`, 0::float8 FROM chunks c WHERE `+w+` ORDER BY c.id LIMIT $`+strconv.Itoa(len(args)), args)
	}
	args = append(args, encodeVector(q.Vector))
	vec := `$` + strconv.Itoa(len(args)) + `::text::` + v.typ(dims)
	args = append(args, q.Limit)
	// The index gives candidates by distance (in a relaxed order with
	// iterative scans, hence the materialized CTE, as pgvector's
	// documentation does; ", c.id" is an incremental sort that keeps the
	// index and settles ties at the limit); the outer query sorts them
	// exactly, ties by id.
	// A zero vector's distance is NaN: it scores 0.
	query := `WITH hits AS MATERIALIZED (
			SELECT c.id, c.embedding::` + v.typ(dims) + ` OPERATOR(` + v.schema + `.<=>) ` + vec + ` AS distance
			FROM chunks c
			WHERE ` + w + `
			ORDER BY distance, c.id
			LIMIT $` + strconv.Itoa(len(args)) + `
		)
		SELECT ` + cols + `, s.score FROM (
			SELECT id, CASE WHEN distance = 'NaN' THEN 0 ELSE 1 - distance END AS score FROM hits
		) s JOIN chunks c ON c.id = s.id
		ORDER BY s.score DESC, c.id`
	return x.semantic(ctx, v, q, query, args)
}

// semantic runs a semantic search's query, which returns the chunk
// columns and the score, best first.
func (x *index) semantic(ctx context.Context, v *vectorInfo, q guichet.IndexQuery, query string, args []any) ([]guichet.SearchHit, error) {
	var hits []guichet.SearchHit
	err := pgx.BeginFunc(ctx, x.db.pool, func(tx pgx.Tx) error {
		// SET LOCAL: these last for this search's transaction only.
		set := `SELECT set_config('hnsw.ef_search', $1, true)`
		if v.iterative {
			set += `, set_config('hnsw.iterative_scan', 'relaxed_order', true)`
		}
		if _, err := tx.Exec(ctx, set, strconv.Itoa(efSearch(q.Limit))); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var score float64
			c, err := scanChunk(rows, &score)
			if err != nil {
				return err
			}
			score = min(max(score, -1), 1)
			// Hits come best first: the threshold cuts the tail, which
			// is the same as filtering before the limit.
			if q.ScoreThreshold != nil && score < *q.ScoreThreshold {
				break
			}
			hits = append(hits, guichet.SearchHit{Chunk: c, Score: score, Method: guichet.Semantic})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return hits, nil
}

func zero(v []float32) bool {
	for _, f := range v {
		if f != 0 {
			return false
		}
	}
	return true
}

// scanChunk reads the columns, then extra.
func scanChunk(row pgx.Row, extra ...any) (guichet.Chunk, error) {
	var (
		c        guichet.Chunk
		metadata []byte
		emb      *string
	)
	if err := row.Scan(append([]any{&c.ID, &c.CollectionID, &c.DocumentID, &c.Content, &metadata, &c.Created, &emb}, extra...)...); err != nil {
		return c, err
	}
	c.Created = c.Created.UTC()
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &c.Metadata); err != nil {
			return c, fmt.Errorf("chunk %d: metadata: %w", c.ID, err)
		}
	}
	if emb != nil {
		v, err := decodeVector(*emb)
		if err != nil {
			return c, fmt.Errorf("chunk %d: %w", c.ID, err)
		}
		c.Embedding = v
	}
	return c, nil
}

// encodeMetadata is m as JSON text; nil (NULL) when empty.
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

// encodeVector is v in pgvector's text form, each float32 written
// exactly ('[1,0.5,-2]').
func encodeVector(v []float32) string {
	b := make([]byte, 0, 2+10*len(v))
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return string(append(b, ']'))
}

// decodeVector reads pgvector's text form.
func decodeVector(s string) ([]float32, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("embedding %.20q: not a vector", s)
	}
	s = s[1 : len(s)-1]
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	v := make([]float32, len(parts))
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, fmt.Errorf("embedding: %w", err)
		}
		v[i] = float32(f)
	}
	return v, nil
}

// Metadata filters.

// filterSQL is f as a condition on c.metadata, its arguments appended to
// args. A missing key gives NULL, which no condition (only AND and OR)
// turns true.
func filterSQL(f guichet.MetadataFilter, args *[]any) (string, error) {
	if len(f.Filters) > 0 {
		if f.Key != "" || f.Op != "" {
			return "", errors.New("metadata filter: both a comparison and a compound")
		}
		join := ` AND `
		switch f.Operator {
		case "and":
		case "or":
			join = ` OR `
		default:
			return "", fmt.Errorf("metadata filter: operator %q, want and or or", f.Operator)
		}
		parts := make([]string, len(f.Filters))
		for i, g := range f.Filters {
			p, err := filterSQL(g, args)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return `(` + strings.Join(parts, join) + `)`, nil
	}
	if f.Key == "" {
		return "", errors.New("metadata filter: no key and no filters")
	}
	param := func(v any) string {
		*args = append(*args, v)
		return `$` + strconv.Itoa(len(*args)) + `::text`
	}
	switch f.Op {
	case "eq":
		// jsonb equality: strings and bools exactly, numbers by value
		// (3 = 3.0), never across types.
		want, ok := jsonValue(f.Value)
		if !ok {
			return `FALSE`, nil
		}
		return `(c.metadata -> ` + param(f.Key) + `) = ` + param(want) + `::jsonb`, nil
	case "sw", "ew", "co":
		want, ok := f.Value.(string)
		if !ok {
			return "", fmt.Errorf("metadata filter %s: value %v is not a string", f.Op, f.Value)
		}
		key := param(f.Key)
		s := `(c.metadata ->> ` + key + `)`
		cond := `jsonb_typeof(c.metadata -> ` + key + `) = 'string' AND `
		switch f.Op {
		case "sw":
			cond += `starts_with(` + s + `, ` + param(want) + `)`
		case "ew":
			p := param(want)
			cond += `right(` + s + `, char_length(` + p + `)) = ` + p
		default:
			cond += `strpos(` + s + `, ` + param(want) + `) > 0`
		}
		return `(` + cond + `)`, nil
	}
	return "", fmt.Errorf("metadata filter: op %q, want eq, sw, ew or co", f.Op)
}

// jsonValue is a filter's value as JSON, for a string, a bool or a
// number; false for any other value, which eq never matches.
func jsonValue(v any) (string, bool) {
	switch v.(type) {
	case string, bool:
		b, err := json.Marshal(v)
		return string(b), err == nil
	}
	n, ok := guichet.MetadataNumber(v)
	if !ok || math.IsNaN(n) || math.IsInf(n, 0) {
		return "", false
	}
	return strconv.FormatFloat(n, 'g', -1, 64), true
}
