// Package ragtest holds the conformance suite every guichet.Index passes,
// whatever keeps its chunks (SQLite FTS5 and an in-process vector scan,
// PostgreSQL full-text search and pgvector…).
//
// What the suite pins down, beyond the comments of guichet.Index:
//
//   - Add sets ID and Created on the chunks it stores; IDs increase from
//     one Add to the next, across documents and collections, and are never
//     reused. Metadata comes back as JSON decodes it (numbers are
//     float64); a nil and an empty Metadata are the same.
//   - Chunks with limit <= 0 lists every chunk from offset.
//   - Chunk and DeleteChunk return ErrNotFound for a missing chunk;
//     DeleteDocument and DeleteCollection of nothing succeed.
//   - A search with no CollectionIDs, or a Limit <= 0, is an error.
//   - Lexical matches words whatever their case and accents ("ecole"
//     finds "École"), ranks better matches first, and takes the text as
//     user text: no character of it is query syntax, so it never fails.
//     Its Score is positive, bigger is better, and only comparable within
//     one query.
//   - Semantic's Score is the cosine similarity of the query vector and
//     the chunk's embedding, in [-1, 1]; ScoreThreshold keeps hits with
//     Score >= *ScoreThreshold. Chunks with no embedding, or one of
//     another size than the query, are not returned. A query with no
//     vector is an error.
//   - Metadata filters apply to both searches before Limit. Key names a
//     top-level key (a missing key never matches); eq compares strings,
//     bools and numbers (by value: 3 equals 3.0); sw, ew and co compare
//     strings, case-sensitively, and never match a value that is not a
//     string. A compound joins Filters with Operator "and" or "or". A
//     malformed filter (unknown op or operator, no key) is an error.
//   - Ties are broken by chunk ID, ascending.
//
// With LexicalOnly, the suite is for an index that cannot search by
// meaning (PostgreSQL without pgvector): its chunks carry no embeddings,
// the cases of semantic search are left out, and Semantic, and Add of
// chunks with embeddings, must fail.
package ragtest

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
)

// Option changes what the suite runs.
type Option int

const (
	// LexicalOnly runs the cases of lexical search only (those that also
	// search by meaning run without embeddings and without their semantic
	// checks), and checks that semantic search fails.
	LexicalOnly Option = iota + 1
)

// suite is the suite's options, for the cases that mix both searches.
type suite struct {
	lexicalOnly bool
}

// Index runs the guichet.Index conformance suite. open must return a new,
// empty index on each call (subtests run in parallel); the suite closes it
// if it is an io.Closer, else open should register its own cleanup.
func Index(t *testing.T, open func(t *testing.T) guichet.Index, opts ...Option) {
	var s suite
	for _, o := range opts {
		switch o {
		case LexicalOnly:
			s.lexicalOnly = true
		default:
			t.Fatalf("ragtest: unknown option %d", o)
		}
	}
	const (
		both        = iota
		full        // only when the index searches by meaning
		lexicalOnly // only with LexicalOnly
	)
	tests := []struct {
		name string
		run  func(t *testing.T, x guichet.Index)
		when int
	}{
		{"IDs", testIDs, both},
		{"RoundTrip", s.testRoundTrip, both},
		{"AddAtomic", s.testAddAtomic, both},
		{"ChunksPages", testChunksPages, both},
		{"DeleteChunk", s.testDeleteChunk, both},
		{"DeleteDocument", s.testDeleteDocument, both},
		{"DeleteCollection", s.testDeleteCollection, both},
		{"BadQueries", s.testBadQueries, both},
		{"LexicalAccents", testLexicalAccents, both},
		{"LexicalRanking", testLexicalRanking, both},
		{"LexicalScope", testLexicalScope, both},
		{"LexicalSyntax", testLexicalSyntax, both},
		{"SemanticRanking", testSemanticRanking, full},
		{"SemanticScope", testSemanticScope, full},
		{"SemanticSkipped", testSemanticSkipped, full},
		{"SemanticUnsupported", testSemanticUnsupported, lexicalOnly},
		{"Filters", s.testFilters, both},
		{"FilterBeforeLimit", s.testFilterBeforeLimit, both},
	}
	for _, tc := range tests {
		if (tc.when == full && s.lexicalOnly) || (tc.when == lexicalOnly && !s.lexicalOnly) {
			continue // selected, not skipped: such cases cannot pass here
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			x := open(t)
			if c, ok := x.(interface{ Close() error }); ok {
				t.Cleanup(func() {
					if err := c.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
			tc.run(t, x)
		})
	}
}

// missingID is an id no test creates.
const missingID = 987_654_321

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func add(t *testing.T, x guichet.Index, chunks ...guichet.Chunk) []guichet.Chunk {
	t.Helper()
	must(t, x.Add(t.Context(), chunks))
	return chunks
}

// chunk is a chunk of document doc in collection coll.
func chunk(coll, doc int64, content string, vec ...float32) guichet.Chunk {
	return guichet.Chunk{CollectionID: coll, DocumentID: doc, Content: content, Embedding: vec}
}

// chunk is a chunk with its embedding, but none with LexicalOnly.
func (s suite) chunk(coll, doc int64, content string, vec ...float32) guichet.Chunk {
	if s.lexicalOnly {
		vec = nil
	}
	return chunk(coll, doc, content, vec...)
}

func ids(chunks []guichet.Chunk) []int64 {
	out := make([]int64, len(chunks))
	for i, c := range chunks {
		out[i] = c.ID
	}
	return out
}

func hitIDs(hits []guichet.SearchHit) []int64 {
	out := make([]int64, len(hits))
	for i, h := range hits {
		out[i] = h.Chunk.ID
	}
	return out
}

func sameIDs(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: ids %v, want %v", what, got, want)
	}
}

// sameChunk compares chunks, metadata as JSON sees it.
func sameChunk(t *testing.T, what string, got, want guichet.Chunk) {
	t.Helper()
	if got.ID != want.ID || got.CollectionID != want.CollectionID || got.DocumentID != want.DocumentID ||
		got.Content != want.Content || !got.Created.Equal(want.Created) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
	if !slices.Equal(got.Embedding, want.Embedding) {
		t.Errorf("%s: embedding %v, want %v", what, got.Embedding, want.Embedding)
	}
	if (len(got.Metadata) != 0 || len(want.Metadata) != 0) && !reflect.DeepEqual(got.Metadata, want.Metadata) {
		t.Errorf("%s: metadata %#v, want %#v", what, got.Metadata, want.Metadata)
	}
}

func lexical(t *testing.T, x guichet.Index, q guichet.IndexQuery) []guichet.SearchHit {
	t.Helper()
	hits, err := x.Lexical(t.Context(), q)
	if err != nil {
		t.Fatalf("Lexical %q: %v", q.Text, err)
	}
	checkHits(t, "Lexical "+q.Text, hits, q, guichet.Lexical)
	return hits
}

func semantic(t *testing.T, x guichet.Index, q guichet.IndexQuery) []guichet.SearchHit {
	t.Helper()
	hits, err := x.Semantic(t.Context(), q)
	if err != nil {
		t.Fatalf("Semantic %v: %v", q.Vector, err)
	}
	checkHits(t, fmt.Sprint("Semantic ", q.Vector), hits, q, guichet.Semantic)
	return hits
}

// checkHits checks what every search returns: at most Limit hits of the
// method, in the collections and documents asked, best first.
func checkHits(t *testing.T, what string, hits []guichet.SearchHit, q guichet.IndexQuery, m guichet.SearchMethod) {
	t.Helper()
	if len(hits) > q.Limit {
		t.Errorf("%s: %d hits, limit %d", what, len(hits), q.Limit)
	}
	for i, h := range hits {
		if h.Method != m {
			t.Errorf("%s: hit %d method %q, want %q", what, i, h.Method, m)
		}
		if !slices.Contains(q.CollectionIDs, h.Chunk.CollectionID) {
			t.Errorf("%s: hit %d in collection %d, not in %v", what, i, h.Chunk.CollectionID, q.CollectionIDs)
		}
		if len(q.DocumentIDs) > 0 && !slices.Contains(q.DocumentIDs, h.Chunk.DocumentID) {
			t.Errorf("%s: hit %d in document %d, not in %v", what, i, h.Chunk.DocumentID, q.DocumentIDs)
		}
		if i > 0 && h.Score > hits[i-1].Score {
			t.Errorf("%s: hit %d score %v above hit %d's %v", what, i, h.Score, i-1, hits[i-1].Score)
		}
		switch m {
		case guichet.Lexical:
			if !(h.Score > 0) {
				t.Errorf("%s: hit %d score %v, want > 0", what, i, h.Score)
			}
		case guichet.Semantic:
			if !(h.Score >= -1 && h.Score <= 1) {
				t.Errorf("%s: hit %d score %v, want a cosine in [-1, 1]", what, i, h.Score)
			}
		}
	}
}

func testIDs(t *testing.T, x guichet.Index) {
	var all []int64
	for _, batch := range [][]guichet.Chunk{
		{chunk(1, 10, "a"), chunk(1, 10, "b")},
		{chunk(2, 20, "c")},
		{chunk(1, 11, "d"), chunk(2, 21, "e"), chunk(3, 30, "f")},
		{chunk(1, 10, "g")},
	} {
		add(t, x, batch...)
		all = append(all, ids(batch)...)
	}
	for i, id := range all {
		if id <= 0 || (i > 0 && id <= all[i-1]) {
			t.Fatalf("ids %v: not positive and increasing", all)
		}
	}
	// Ids are never reused, even after every chunk is gone.
	for _, c := range []int64{1, 2, 3} {
		must(t, x.DeleteCollection(t.Context(), c))
	}
	again := add(t, x, chunk(1, 10, "h"))
	if again[0].ID <= all[len(all)-1] {
		t.Errorf("id %d after deleting ids up to %d: reused", again[0].ID, all[len(all)-1])
	}
}

func (s suite) testRoundTrip(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	c := guichet.Chunk{
		CollectionID: 7,
		DocumentID:   70,
		Content:      "Société Générale ☃ — « guillemets » et \"quotes\" ' ; DROP TABLE chunks; --",
		Metadata: map[string]any{
			"source":   "guide-rh.pdf",
			"page":     3,
			"ratio":    0.25,
			"draft":    false,
			"headings": []any{"Congés", "Jours fériés"},
			"nested":   map[string]any{"a": []any{1, "deux", true, nil}},
		},
		Embedding: []float32{0.1, -2.5, 3e-8, 1e9},
	}
	if s.lexicalOnly {
		c.Embedding = nil
	}
	// Every chunk of one Add has an embedding, or none has.
	stored := append(add(t, x, c), add(t, x, chunk(7, 70, ""))...)
	after := time.Now().Add(time.Second)
	for _, s := range stored {
		if s.Created.Before(before) || s.Created.After(after) {
			t.Errorf("Created %v, not between %v and %v", s.Created, before, after)
		}
	}
	want := stored[0]
	// JSON numbers come back as float64.
	want.Metadata = map[string]any{
		"source":   "guide-rh.pdf",
		"page":     3.0,
		"ratio":    0.25,
		"draft":    false,
		"headings": []any{"Congés", "Jours fériés"},
		"nested":   map[string]any{"a": []any{1.0, "deux", true, nil}},
	}
	got, err := x.Chunk(ctx, want.ID)
	must(t, err)
	sameChunk(t, "Chunk", got, want)
	got, err = x.Chunk(ctx, stored[1].ID)
	must(t, err)
	sameChunk(t, "Chunk with nothing", got, stored[1])
	list, err := x.Chunks(ctx, 70, 0, 0)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("Chunks: %d chunks, want 2", len(list))
	}
	sameChunk(t, "Chunks[0]", list[0], want)
	sameChunk(t, "Chunks[1]", list[1], stored[1])
	// Search hits carry the chunk too.
	hits := lexical(t, x, guichet.IndexQuery{Text: "société", CollectionIDs: []int64{7}, Limit: 5})
	if len(hits) != 1 || hits[0].Chunk.Content != c.Content || !reflect.DeepEqual(hits[0].Chunk.Metadata, want.Metadata) {
		t.Errorf("Lexical hit %+v, want the chunk", hits)
	}
	if s.lexicalOnly {
		return
	}
	hits = semantic(t, x, guichet.IndexQuery{Vector: c.Embedding, CollectionIDs: []int64{7}, Limit: 5})
	if len(hits) != 1 || hits[0].Chunk.ID != want.ID || !reflect.DeepEqual(hits[0].Chunk.Metadata, want.Metadata) {
		t.Errorf("Semantic hit %+v, want the chunk", hits)
	}
}

func (s suite) testAddAtomic(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	must(t, x.Add(ctx, nil)) // nothing to add
	for name, batch := range map[string][]guichet.Chunk{
		"mixed sizes": {
			chunk(1, 10, "école un", 1, 0, 0, 0),
			chunk(1, 10, "école deux", 0, 1, 0, 0),
			chunk(1, 10, "école trois", 0, 1, 0),
		},
		"some without embedding": {
			chunk(1, 10, "école un", 1, 0, 0, 0),
			chunk(1, 10, "école deux"),
		},
	} {
		if err := x.Add(ctx, batch); err == nil {
			t.Errorf("Add %s: no error", name)
		}
		list, err := x.Chunks(ctx, 10, 0, 0)
		must(t, err)
		if len(list) != 0 {
			t.Errorf("Add %s failed but stored %d chunks", name, len(list))
		}
		hits := lexical(t, x, guichet.IndexQuery{Text: "école", CollectionIDs: []int64{1}, Limit: 10})
		sameIDs(t, "Lexical after failed Add "+name, hitIDs(hits), nil)
		if s.lexicalOnly {
			continue
		}
		hits = semantic(t, x, guichet.IndexQuery{Vector: []float32{1, 0, 0, 0}, CollectionIDs: []int64{1}, Limit: 10})
		sameIDs(t, "Semantic after failed Add "+name, hitIDs(hits), nil)
	}
	// The index still works.
	ok := add(t, x, s.chunk(1, 10, "école", 1, 0, 0, 0))
	hits := lexical(t, x, guichet.IndexQuery{Text: "école", CollectionIDs: []int64{1}, Limit: 10})
	sameIDs(t, "Lexical after Add", hitIDs(hits), ids(ok))
}

func testChunksPages(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	var doc []int64
	for i := range 5 {
		// Interleaved with another document's chunks.
		doc = append(doc, add(t, x, chunk(1, 10, fmt.Sprint("part ", i)))[0].ID)
		add(t, x, chunk(1, 11, fmt.Sprint("other ", i)))
	}
	for _, tc := range []struct {
		offset, limit int
		want          []int64
	}{
		{0, 0, doc},
		{0, 100, doc},
		{0, 2, doc[:2]},
		{1, 2, doc[1:3]},
		{4, 2, doc[4:]},
		{3, 0, doc[3:]},
		{5, 2, nil},
		{50, 2, nil},
	} {
		list, err := x.Chunks(ctx, 10, tc.offset, tc.limit)
		must(t, err)
		sameIDs(t, fmt.Sprintf("Chunks offset %d limit %d", tc.offset, tc.limit), ids(list), tc.want)
		for _, c := range list {
			if c.DocumentID != 10 {
				t.Errorf("Chunks of document 10: chunk %d of document %d", c.ID, c.DocumentID)
			}
		}
	}
	list, err := x.Chunks(ctx, missingID, 0, 0)
	must(t, err)
	sameIDs(t, "Chunks of a missing document", ids(list), nil)
}

func (s suite) testDeleteChunk(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	cs := add(t, x, s.chunk(1, 10, "école une", 1, 0), s.chunk(1, 10, "école deux", 1, 0.1))
	must(t, x.DeleteChunk(ctx, cs[0].ID))
	if _, err := x.Chunk(ctx, cs[0].ID); !errors.Is(err, guichet.ErrNotFound) {
		t.Errorf("Chunk after DeleteChunk: %v, want ErrNotFound", err)
	}
	if err := x.DeleteChunk(ctx, cs[0].ID); !errors.Is(err, guichet.ErrNotFound) {
		t.Errorf("DeleteChunk again: %v, want ErrNotFound", err)
	}
	if _, err := x.Chunk(ctx, missingID); !errors.Is(err, guichet.ErrNotFound) {
		t.Errorf("Chunk missing: %v, want ErrNotFound", err)
	}
	if err := x.DeleteChunk(ctx, missingID); !errors.Is(err, guichet.ErrNotFound) {
		t.Errorf("DeleteChunk missing: %v, want ErrNotFound", err)
	}
	q := guichet.IndexQuery{Text: "école", Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Limit: 10}
	sameIDs(t, "Lexical after DeleteChunk", hitIDs(lexical(t, x, q)), []int64{cs[1].ID})
	if s.lexicalOnly {
		return
	}
	sameIDs(t, "Semantic after DeleteChunk", hitIDs(semantic(t, x, q)), []int64{cs[1].ID})
}

// gone checks that searches of every collection find only want.
func (s suite) gone(t *testing.T, x guichet.Index, what string, want []int64) {
	t.Helper()
	q := guichet.IndexQuery{Text: "école", Vector: []float32{1, 1}, CollectionIDs: []int64{1, 2}, Limit: 100}
	got := hitIDs(lexical(t, x, q))
	slices.Sort(got)
	sameIDs(t, "Lexical after "+what, got, want)
	if s.lexicalOnly {
		return
	}
	got = hitIDs(semantic(t, x, q))
	slices.Sort(got)
	sameIDs(t, "Semantic after "+what, got, want)
}

func (s suite) testDeleteDocument(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	// Search first, so that whatever an index caches is filled.
	s.gone(t, x, "nothing", nil)
	a := add(t, x, s.chunk(1, 10, "école a", 1, 0), s.chunk(1, 10, "école b", 0, 1))
	b := add(t, x, s.chunk(1, 11, "école c", 1, 1), s.chunk(2, 20, "école d", 1, 2))
	s.gone(t, x, "Add", append(ids(a), ids(b)...))
	must(t, x.DeleteDocument(ctx, 10))
	s.gone(t, x, "DeleteDocument", ids(b))
	list, err := x.Chunks(ctx, 10, 0, 0)
	must(t, err)
	sameIDs(t, "Chunks after DeleteDocument", ids(list), nil)
	for _, c := range a {
		if _, err := x.Chunk(ctx, c.ID); !errors.Is(err, guichet.ErrNotFound) {
			t.Errorf("Chunk %d after DeleteDocument: %v, want ErrNotFound", c.ID, err)
		}
	}
	must(t, x.DeleteDocument(ctx, 10)) // nothing left: no error
	must(t, x.DeleteDocument(ctx, missingID))
}

func (s suite) testDeleteCollection(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	s.gone(t, x, "nothing", nil)
	a := add(t, x, s.chunk(1, 10, "école a", 1, 0), s.chunk(1, 11, "école b", 0, 1))
	b := add(t, x, s.chunk(2, 20, "école c", 1, 1))
	s.gone(t, x, "Add", append(ids(a), ids(b)...))
	must(t, x.DeleteCollection(ctx, 1))
	s.gone(t, x, "DeleteCollection", ids(b))
	for _, doc := range []int64{10, 11} {
		list, err := x.Chunks(ctx, doc, 0, 0)
		must(t, err)
		sameIDs(t, "Chunks after DeleteCollection", ids(list), nil)
	}
	must(t, x.DeleteCollection(ctx, 1))
	must(t, x.DeleteCollection(ctx, missingID))
	// The collection can be filled again.
	c := add(t, x, s.chunk(1, 12, "école e", 1, 0))
	s.gone(t, x, "Add again", append(ids(b), ids(c)...))
}

func (s suite) testBadQueries(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	add(t, x, s.chunk(1, 10, "école", 1, 0))
	ok := guichet.IndexQuery{Text: "école", Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Limit: 10}
	for name, change := range map[string]func(q *guichet.IndexQuery){
		"no collection":  func(q *guichet.IndexQuery) { q.CollectionIDs = nil },
		"zero limit":     func(q *guichet.IndexQuery) { q.Limit = 0 },
		"negative limit": func(q *guichet.IndexQuery) { q.Limit = -1 },
		"unknown op": func(q *guichet.IndexQuery) {
			q.Filter = &guichet.MetadataFilter{Key: "a", Op: "like", Value: "x"}
		},
		"no key": func(q *guichet.IndexQuery) {
			q.Filter = &guichet.MetadataFilter{Op: "eq", Value: "x"}
		},
		"unknown operator": func(q *guichet.IndexQuery) {
			q.Filter = &guichet.MetadataFilter{Operator: "xor", Filters: []guichet.MetadataFilter{{Key: "a", Op: "eq", Value: "x"}}}
		},
		"bad nested filter": func(q *guichet.IndexQuery) {
			q.Filter = &guichet.MetadataFilter{Operator: "or", Filters: []guichet.MetadataFilter{{Key: "a", Op: "eq", Value: "x"}, {Key: "b", Op: "??"}}}
		},
	} {
		q := ok
		change(&q)
		if _, err := x.Lexical(ctx, q); err == nil {
			t.Errorf("Lexical with %s: no error", name)
		}
		if _, err := x.Semantic(ctx, q); err == nil {
			t.Errorf("Semantic with %s: no error", name)
		}
	}
	q := ok
	q.Vector = nil
	if _, err := x.Semantic(ctx, q); err == nil {
		t.Error("Semantic with no vector: no error")
	}
}

// french is a small French corpus for lexical search, in collection 1,
// documents 10 and 11.
func french(t *testing.T, x guichet.Index) []guichet.Chunk {
	return add(t, x,
		chunk(1, 10, "L'école primaire du village ouvre ses portes en septembre."),
		chunk(1, 10, "Le marché de Noël s'installe sur la place de la mairie."),
		chunk(1, 10, "ÉCOLE NATIONALE DES PONTS ET CHAUSSÉES"),
		chunk(1, 11, "Ecole de musique : inscriptions au conservatoire."),
		chunk(1, 11, "Les élèves déjeunent à la cantine après la récréation."),
		chunk(1, 11, "Le théâtre municipal propose des cours d'été pour les enfants."),
	)
}

func testLexicalAccents(t *testing.T, x guichet.Index) {
	cs := french(t, x)
	all := []int64{1}
	for _, tc := range []struct {
		text string
		want []int64 // in any order
	}{
		{"ecole", []int64{cs[0].ID, cs[2].ID, cs[3].ID}},
		{"ÉCOLE", []int64{cs[0].ID, cs[2].ID, cs[3].ID}},
		{"École", []int64{cs[0].ID, cs[2].ID, cs[3].ID}},
		{"eleves cantine", []int64{cs[4].ID}},
		{"theatre", []int64{cs[5].ID}},
		{"CHAUSSEES", []int64{cs[2].ID}},
		{"noel", []int64{cs[1].ID}},
		{"été", []int64{cs[5].ID}},
		{"recreation", []int64{cs[4].ID}},
		{"piscine", nil},
	} {
		hits := lexical(t, x, guichet.IndexQuery{Text: tc.text, CollectionIDs: all, Limit: 10})
		got := hitIDs(hits)
		slices.Sort(got)
		sameIDs(t, "Lexical "+tc.text, got, tc.want)
	}
}

func testLexicalRanking(t *testing.T, x guichet.Index) {
	cs := add(t, x,
		chunk(1, 10, "Une école dans un long texte qui parle de bien d'autres choses : la mairie, le marché, la gare et le port."),
		chunk(1, 10, "École, écoles et école : l'école encore."),
		chunk(1, 10, "La piscine municipale."),
		chunk(1, 10, "École de musique et de danse."),
	)
	q := guichet.IndexQuery{Text: "école", CollectionIDs: []int64{1}, Limit: 10}
	hits := lexical(t, x, q)
	got := hitIDs(hits)
	if len(got) == 0 || got[0] != cs[1].ID {
		t.Errorf("Lexical école: %v, want %d (three times école) first", got, cs[1].ID)
	}
	slices.Sort(got)
	sameIDs(t, "Lexical école", got, []int64{cs[0].ID, cs[1].ID, cs[3].ID})

	// A chunk with more of the words comes first; stop words do not count.
	q.Text = "l'école de la musique"
	hits = lexical(t, x, q)
	if len(hits) < 1 || hits[0].Chunk.ID != cs[3].ID {
		t.Errorf("Lexical %q: %v, want %d first", q.Text, hitIDs(hits), cs[3].ID)
	}
	q.Text = "la piscine de la ville"
	hits = lexical(t, x, q)
	sameIDs(t, "Lexical "+q.Text, hitIDs(hits), []int64{cs[2].ID})

	// Limit keeps the best.
	q.Text, q.Limit = "école", 2
	hits = lexical(t, x, q)
	if len(hits) != 2 || hits[0].Chunk.ID != cs[1].ID {
		t.Errorf("Lexical école limit 2: %v, want 2 hits, %d first", hitIDs(hits), cs[1].ID)
	}
	q.Limit = 1
	hits = lexical(t, x, q)
	sameIDs(t, "Lexical école limit 1", hitIDs(hits), []int64{cs[1].ID})
}

func testLexicalScope(t *testing.T, x guichet.Index) {
	a := add(t, x, chunk(1, 10, "école a"), chunk(1, 11, "école b"))
	b := add(t, x, chunk(2, 20, "école c"), chunk(2, 21, "école d"))
	c := add(t, x, chunk(3, 30, "école e"))
	for _, tc := range []struct {
		colls, docs []int64
		want        []int64
	}{
		{[]int64{1}, nil, ids(a)},
		{[]int64{2}, nil, ids(b)},
		{[]int64{1, 3}, nil, append(ids(a), ids(c)...)},
		{[]int64{1, 2, 3}, []int64{11, 20}, []int64{a[1].ID, b[0].ID}},
		{[]int64{1}, []int64{20}, nil}, // the document is in another collection
		{[]int64{missingID}, nil, nil},
	} {
		hits := lexical(t, x, guichet.IndexQuery{Text: "ecole", CollectionIDs: tc.colls, DocumentIDs: tc.docs, Limit: 10})
		got := hitIDs(hits)
		slices.Sort(got)
		sameIDs(t, fmt.Sprintf("Lexical in %v %v", tc.colls, tc.docs), got, tc.want)
	}
}

func testLexicalSyntax(t *testing.T, x guichet.Index) {
	cs := add(t, x,
		chunk(1, 10, "L'école et la mairie"),
		chunk(1, 10, "Paris NEAR Lyon: content AND more"),
	)
	for _, text := range []string{
		`"école`, `école"`, `"école"`, `(école`, `école)`, `école AND`, `AND école`,
		`école OR`, `NOT école`, `école NOT`, `école*`, `*école`, `content:école`,
		`-école`, `^école`, `école +`, `NEAR(école mairie)`, `{école}`, `école'`,
		`l'école`, `l’école`, `école; DROP TABLE chunks; --`, `école\`, `école %_`,
		`école ` + "\x00", `école @ # $ & | ~ ? !`,
	} {
		hits, err := x.Lexical(t.Context(), guichet.IndexQuery{Text: text, CollectionIDs: []int64{1}, Limit: 10})
		if err != nil {
			t.Errorf("Lexical %q: %v", text, err)
			continue
		}
		if !slices.Contains(hitIDs(hits), cs[0].ID) {
			t.Errorf("Lexical %q: %v, want %d among them", text, hitIDs(hits), cs[0].ID)
		}
	}
	// Operators are words like any other.
	for _, text := range []string{"AND", "near", "Content"} {
		hits := lexical(t, x, guichet.IndexQuery{Text: text, CollectionIDs: []int64{1}, Limit: 10})
		sameIDs(t, "Lexical "+text, hitIDs(hits), []int64{cs[1].ID})
	}
	for _, text := range []string{"", "   ", `"`, `""`, "()", "*", ":", "-", "AND OR NOT", "' ’ « »"} {
		if _, err := x.Lexical(t.Context(), guichet.IndexQuery{Text: text, CollectionIDs: []int64{1}, Limit: 10}); err != nil {
			t.Errorf("Lexical %q: %v", text, err)
		}
	}
}

// vectors is a small set of 4-dimension embeddings with known cosines to
// [1, 0, 0, 0].
var vectors = []struct {
	vec    []float32
	cosine float64
}{
	{[]float32{0, 1, 0, 0}, 0},
	{[]float32{1, 1, 0, 0}, 1 / math.Sqrt2},
	{[]float32{-1, 0, 0, 0}, -1},
	{[]float32{2, 0, 0, 0}, 1},
	{[]float32{3, 1, 0, 0}, 3 / math.Sqrt(10)},
	{[]float32{1, 2, 2, 0}, 1.0 / 3},
	{[]float32{-1, 1, 1, 1}, -0.5},
}

// byCosine is the indexes of vectors, best first.
var byCosine = []int{3, 4, 1, 5, 0, 6, 2}

func testSemanticRanking(t *testing.T, x guichet.Index) {
	var cs []guichet.Chunk
	for i, v := range vectors {
		cs = append(cs, chunk(1, 10+int64(i%2), fmt.Sprint("v", i), v.vec...))
	}
	add(t, x, cs...)
	query := []float32{1, 0, 0, 0}
	for _, tc := range []struct {
		limit     int
		threshold *float64
		want      []int // indexes of vectors
	}{
		{10, nil, byCosine},
		{7, nil, byCosine},
		{3, nil, byCosine[:3]},
		{1, nil, byCosine[:1]},
		{10, ptr(0.5), byCosine[:3]},
		{2, ptr(0.5), byCosine[:2]},
		{10, ptr(0.3), byCosine[:4]},
		{10, ptr(-0.6), byCosine[:6]},
		{10, ptr(-1.5), byCosine},
		{10, ptr(1.5), nil},
	} {
		what := fmt.Sprintf("Semantic limit %d threshold %v", tc.limit, tc.threshold)
		if tc.threshold != nil {
			what = fmt.Sprintf("Semantic limit %d threshold %v", tc.limit, *tc.threshold)
		}
		hits := semantic(t, x, guichet.IndexQuery{Vector: query, CollectionIDs: []int64{1}, Limit: tc.limit, ScoreThreshold: tc.threshold})
		var want []int64
		for _, i := range tc.want {
			want = append(want, cs[i].ID)
		}
		sameIDs(t, what, hitIDs(hits), want)
		for _, h := range hits {
			i := slices.Index(ids(cs), h.Chunk.ID)
			if i >= 0 && math.Abs(h.Score-vectors[i].cosine) > 1e-5 {
				t.Errorf("%s: chunk %d score %v, want cosine %v", what, i, h.Score, vectors[i].cosine)
			}
		}
	}
	// The query's length does not matter.
	hits := semantic(t, x, guichet.IndexQuery{Vector: []float32{0.001, 0, 0, 0}, CollectionIDs: []int64{1}, Limit: 1})
	if len(hits) != 1 || hits[0].Chunk.ID != cs[3].ID || math.Abs(hits[0].Score-1) > 1e-5 {
		t.Errorf("Semantic with a short query: %+v", hits)
	}
}

func ptr[T any](v T) *T { return &v }

func testSemanticScope(t *testing.T, x guichet.Index) {
	a := add(t, x, chunk(1, 10, "a", 1, 0), chunk(1, 11, "b", 1, 0.1))
	b := add(t, x, chunk(2, 20, "c", 1, 0.2), chunk(2, 21, "d", 1, 0.3))
	c := add(t, x, chunk(3, 30, "e", 1, 0.4))
	for _, tc := range []struct {
		colls, docs []int64
		want        []int64 // best first
	}{
		{[]int64{1}, nil, ids(a)},
		{[]int64{2}, nil, ids(b)},
		{[]int64{3, 1}, nil, append(ids(a), ids(c)...)},
		{[]int64{1, 2, 3}, []int64{21, 11}, []int64{a[1].ID, b[1].ID}},
		{[]int64{1}, []int64{20}, nil},
		{[]int64{missingID}, nil, nil},
	} {
		hits := semantic(t, x, guichet.IndexQuery{Vector: []float32{1, 0}, CollectionIDs: tc.colls, DocumentIDs: tc.docs, Limit: 10})
		sameIDs(t, fmt.Sprintf("Semantic in %v %v", tc.colls, tc.docs), hitIDs(hits), tc.want)
	}
	// Limit across collections.
	hits := semantic(t, x, guichet.IndexQuery{Vector: []float32{1, 0}, CollectionIDs: []int64{3, 2}, Limit: 2})
	sameIDs(t, "Semantic in 3, 2 limit 2", hitIDs(hits), ids(b))
}

func testSemanticSkipped(t *testing.T, x guichet.Index) {
	four := add(t, x, chunk(1, 10, "four", 1, 0, 0, 0))
	add(t, x, chunk(1, 11, "three", 1, 0, 0))
	add(t, x, chunk(1, 12, "none"))
	hits := semantic(t, x, guichet.IndexQuery{Vector: []float32{1, 0, 0, 0}, CollectionIDs: []int64{1}, Limit: 10})
	sameIDs(t, "Semantic with 4 dimensions", hitIDs(hits), ids(four))
	hits = semantic(t, x, guichet.IndexQuery{Vector: []float32{1, 1, 1, 1, 1}, CollectionIDs: []int64{1}, Limit: 10})
	sameIDs(t, "Semantic with 5 dimensions", hitIDs(hits), nil)
}

// filtered is a corpus with metadata, every chunk matching the lexical
// query "congés" and the vector [1, 0], ranked in the order added by both.
func (s suite) filtered(t *testing.T, x guichet.Index) []guichet.Chunk {
	meta := []map[string]any{
		{"source": "guide-rh.pdf", "page": 3, "lang": "fr", "draft": false},
		{"source": "guide-rh.docx", "page": 4.0, "lang": "fr", "draft": true},
		{"source": "notes/rh.md", "page": 3, "lang": "en", "tags": []any{"rh"}},
		{"source": "FAQ-congés.pdf", "lang": "fr", "page": "3"},
		nil,
	}
	var cs []guichet.Chunk
	for i, m := range meta {
		// Fewer other words, and a vector closer to [1, 0], rank higher.
		content := "congés congés " + strings.Join(filler[:i+1], " ")
		c := s.chunk(1, 10, content, 1, float32(i)/10)
		c.Metadata = m
		cs = append(cs, c)
	}
	return add(t, x, cs...)
}

var filler = []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}

func (s suite) testFilters(t *testing.T, x guichet.Index) {
	cs := s.filtered(t, x)
	eq := func(k string, v any) guichet.MetadataFilter {
		return guichet.MetadataFilter{Key: k, Op: "eq", Value: v}
	}
	op := func(k, op string, v any) guichet.MetadataFilter {
		return guichet.MetadataFilter{Key: k, Op: op, Value: v}
	}
	and := func(f ...guichet.MetadataFilter) guichet.MetadataFilter {
		return guichet.MetadataFilter{Operator: "and", Filters: f}
	}
	or := func(f ...guichet.MetadataFilter) guichet.MetadataFilter {
		return guichet.MetadataFilter{Operator: "or", Filters: f}
	}
	for _, tc := range []struct {
		name   string
		filter guichet.MetadataFilter
		want   []int // indexes of cs, best first
	}{
		{"eq string", eq("lang", "fr"), []int{0, 1, 3}},
		{"eq number", eq("page", 3), []int{0, 2}},
		{"eq float", eq("page", 4.0), []int{1}},
		{"eq int64", eq("page", int64(4)), []int{1}},
		{"eq string not number", eq("page", "3"), []int{3}},
		{"eq bool", eq("draft", false), []int{0}},
		{"eq bool true", eq("draft", true), []int{1}},
		{"eq missing key", eq("author", "x"), nil},
		{"eq case-sensitive", eq("lang", "FR"), nil},
		{"sw", op("source", "sw", "guide-"), []int{0, 1}},
		{"ew", op("source", "ew", ".pdf"), []int{0, 3}},
		{"co", op("source", "co", "rh"), []int{0, 1, 2}},
		{"co accents", op("source", "co", "congés"), []int{3}},
		{"co on a number", op("page", "co", "3"), []int{3}},
		{"and", and(eq("lang", "fr"), op("source", "ew", ".pdf")), []int{0, 3}},
		{"or", or(eq("lang", "en"), eq("draft", true)), []int{1, 2}},
		{"nested", or(and(op("source", "sw", "guide"), eq("page", 4)), op("source", "sw", "FAQ")), []int{1, 3}},
		{"and of one", and(eq("lang", "en")), []int{2}},
		{"or nothing", or(eq("lang", "de"), eq("page", 99)), nil},
	} {
		var want []int64
		for _, i := range tc.want {
			want = append(want, cs[i].ID)
		}
		f := tc.filter
		q := guichet.IndexQuery{Text: "conges", Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Filter: &f, Limit: 10}
		sameIDs(t, "Lexical filter "+tc.name, hitIDs(lexical(t, x, q)), want)
		if !s.lexicalOnly {
			sameIDs(t, "Semantic filter "+tc.name, hitIDs(semantic(t, x, q)), want)
		}
	}
	// Unfiltered, both searches rank the chunks in the order added.
	q := guichet.IndexQuery{Text: "conges", Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Limit: 10}
	sameIDs(t, "Lexical unfiltered", hitIDs(lexical(t, x, q)), ids(cs))
	if !s.lexicalOnly {
		sameIDs(t, "Semantic unfiltered", hitIDs(semantic(t, x, q)), ids(cs))
	}
}

// testFilterBeforeLimit checks that the filter is applied before the
// limit: the best chunks that pass are returned, even if many better ones
// do not.
func (s suite) testFilterBeforeLimit(t *testing.T, x guichet.Index) {
	var cs []guichet.Chunk
	for i := range 60 {
		c := s.chunk(1, 10, "rapport annuel "+fmt.Sprint("mot", i), 1, float32(i)/100)
		c.Metadata = map[string]any{"keep": i >= 55}
		cs = append(cs, c)
	}
	add(t, x, cs...)
	f := guichet.MetadataFilter{Key: "keep", Op: "eq", Value: true}
	q := guichet.IndexQuery{Text: "rapport", Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Filter: &f, Limit: 2}
	if !s.lexicalOnly {
		sameIDs(t, "Semantic filter then limit", hitIDs(semantic(t, x, q)), []int64{cs[55].ID, cs[56].ID})
	}
	hits := lexical(t, x, q)
	if len(hits) != 2 {
		t.Fatalf("Lexical filter then limit: %d hits, want 2", len(hits))
	}
	for _, h := range hits {
		if h.Chunk.Metadata["keep"] != true {
			t.Errorf("Lexical filter then limit: chunk %d does not pass", h.Chunk.ID)
		}
	}
}

// testSemanticUnsupported checks, with LexicalOnly, that semantic search
// fails rather than finding nothing, and that chunks with embeddings are
// refused whole, not stored without them.
func testSemanticUnsupported(t *testing.T, x guichet.Index) {
	ctx := t.Context()
	plain := add(t, x, chunk(1, 10, "école"))
	q := guichet.IndexQuery{Text: "école", Vector: []float32{1, 0}, CollectionIDs: []int64{1}, Limit: 10}
	if hits, err := x.Semantic(ctx, q); err == nil {
		t.Errorf("Semantic: %v, no error", hitIDs(hits))
	}
	if err := x.Add(ctx, []guichet.Chunk{chunk(1, 11, "école une", 1, 0), chunk(1, 11, "école deux", 0, 1)}); err == nil {
		t.Error("Add with embeddings: no error")
	}
	list, err := x.Chunks(ctx, 11, 0, 0)
	must(t, err)
	sameIDs(t, "Chunks after Add with embeddings", ids(list), nil)
	sameIDs(t, "Lexical after Add with embeddings", hitIDs(lexical(t, x, q)), ids(plain))
}
