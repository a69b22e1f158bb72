package rag

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/guichet/guichet"
)

// Search limits (as OpenGateLLM 0.4).
const (
	MaxSearchCollections = 100
	MaxSearchDocuments   = 100
	MaxSearchLimit       = 100
	DefaultSearchLimit   = 10
	MaxRRFK              = 16384
	MaxQueryLen          = 8192 // characters
	MaxFilterDepth       = 3
	MaxFilters           = 16
)

// Query is one search, as POST /v1/search and the chat search tool take it.
type Query struct {
	Text           string
	CollectionIDs  []int64
	DocumentIDs    []int64
	Filter         *guichet.MetadataFilter
	Limit          int // 0: DefaultSearchLimit
	Offset         int
	Method         guichet.SearchMethod // "": hybrid with an embedding model, lexical without
	RRFK           *int                 // nil: DefaultRRFK
	ScoreThreshold *float64             // semantic hits below are dropped (hybrid: before fusion)
}

// Results is what a search found, and the tokens its query's embedding
// cost.
type Results struct {
	Hits        []guichet.SearchHit
	InputTokens int64
}

// Search finds chunks in the collections and documents the caller may
// read. Documents named without their collection are searched within
// their own collections.
func (s *Service) Search(ctx context.Context, c *guichet.Principal, q Query) (*Results, *guichet.Error) {
	q.Text = strings.TrimSpace(q.Text)
	if q.Text == "" {
		return nil, errorf(http.StatusUnprocessableEntity, "missing_field", "query must hold some text").WithParam("query")
	}
	if utf8.RuneCountInString(q.Text) > MaxQueryLen {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "query must be at most %d characters", MaxQueryLen).WithParam("query")
	}
	if len(q.CollectionIDs) > MaxSearchCollections {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "collection_ids may name at most %d collections", MaxSearchCollections).WithParam("collection_ids")
	}
	if len(q.DocumentIDs) > MaxSearchDocuments {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "document_ids may name at most %d documents", MaxSearchDocuments).WithParam("document_ids")
	}
	if len(q.CollectionIDs) == 0 && len(q.DocumentIDs) == 0 {
		return nil, errorf(http.StatusUnprocessableEntity, "missing_field", "say where to search: collection_ids (or document_ids)").WithParam("collection_ids")
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultSearchLimit
	case q.Limit < 1 || q.Limit > MaxSearchLimit:
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "limit must be between 1 and %d", MaxSearchLimit).WithParam("limit")
	}
	if q.Offset < 0 || q.Offset > 10_000 {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "offset must be between 0 and 10000").WithParam("offset")
	}
	k := DefaultRRFK
	if q.RRFK != nil {
		if k = *q.RRFK; k < 0 || k > MaxRRFK {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "rff_k must be between 0 and %d", MaxRRFK).WithParam("rff_k")
		}
	}
	if t := q.ScoreThreshold; t != nil && (*t < -1 || *t > 1) {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "score_threshold is a cosine similarity, between -1 and 1").WithParam("score_threshold")
	}
	switch q.Method {
	case "":
		q.Method = guichet.Lexical
		if s.embed != nil {
			q.Method = guichet.Hybrid
		}
	case guichet.Lexical:
	case guichet.Semantic, guichet.Hybrid:
		if s.embed == nil {
			return nil, errorf(http.StatusBadRequest, "no_embedding_model", "%s search needs an embedding model, and none is configured (rag.embedding_model): use method lexical", q.Method).WithParam("method")
		}
	default:
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "method must be semantic, lexical or hybrid, not %q", q.Method).WithParam("method")
	}
	if gerr := checkFilter(q.Filter, 0, new(int)); gerr != nil {
		return nil, gerr
	}

	iq := guichet.IndexQuery{Text: q.Text, DocumentIDs: q.DocumentIDs, Filter: q.Filter, Limit: q.Limit + q.Offset}
	seen := map[int64]bool{}
	for _, id := range q.CollectionIDs {
		if _, gerr := s.readable(ctx, c, id); gerr != nil {
			return nil, gerr
		}
		if !seen[id] {
			seen[id] = true
			iq.CollectionIDs = append(iq.CollectionIDs, id)
		}
	}
	for _, id := range q.DocumentIDs {
		d, _, gerr := s.document(ctx, c, id, false)
		if gerr != nil {
			return nil, gerr
		}
		if len(q.CollectionIDs) == 0 && !seen[d.CollectionID] {
			seen[d.CollectionID] = true
			iq.CollectionIDs = append(iq.CollectionIDs, d.CollectionID)
		}
	}

	// Lexical search runs while the query is embedded and searched by
	// meaning: a hybrid search takes the longer of the two, not the sum.
	res := &Results{}
	var lexical, semantic []guichet.SearchHit
	var lexErr error
	lexDone := make(chan struct{})
	go func() {
		defer close(lexDone)
		if q.Method == guichet.Semantic {
			return
		}
		lq := iq
		if q.Method == guichet.Hybrid {
			lq.Limit *= 2 // fusion needs more candidates than it returns
		}
		lexical, lexErr = s.index.Lexical(ctx, lq)
	}()
	if q.Method != guichet.Lexical {
		vecs, tokens, err := s.embed.Embed(ctx, c, []string{q.Text}, false)
		if err != nil {
			<-lexDone
			return nil, embedError(err)
		}
		if len(vecs) != 1 {
			<-lexDone
			return nil, errorf(http.StatusBadGateway, "embedding_failed", "the embedding model returned %d vectors for 1 text", len(vecs))
		}
		res.InputTokens = tokens
		sq := iq
		sq.Vector, sq.ScoreThreshold = vecs[0], q.ScoreThreshold
		if q.Method == guichet.Hybrid {
			sq.Limit *= 2
		}
		if semantic, err = s.index.Semantic(ctx, sq); err != nil {
			<-lexDone
			return nil, s.internal("search by meaning", err)
		}
	}
	<-lexDone
	if lexErr != nil {
		return nil, s.internal("search by words", lexErr)
	}
	var hits []guichet.SearchHit
	switch q.Method {
	case guichet.Lexical:
		hits = lexical
	case guichet.Semantic:
		hits = semantic
	default:
		hits = Fuse(k, iq.Limit, lexical, semantic)
	}
	if q.Offset >= len(hits) {
		hits = nil
	} else {
		hits = hits[q.Offset:]
	}
	res.Hits = hits
	return res, nil
}

// checkFilter validates a metadata filter before any store sees it, so
// the caller gets a message that names what to fix: its shape
// (MetadataFilter.Check), its size, and eq's value type.
func checkFilter(f *guichet.MetadataFilter, depth int, count *int) *guichet.Error {
	bad := func(format string, args ...any) *guichet.Error {
		return errorf(http.StatusUnprocessableEntity, "invalid_filter", "metadata_filters: "+format, args...).WithParam("metadata_filters")
	}
	if f == nil {
		return nil
	}
	if depth == 0 {
		if err := f.Check(); err != nil {
			return bad("%v", err)
		}
	}
	if *count++; *count > MaxFilters {
		return bad("at most %d conditions", MaxFilters)
	}
	if depth > MaxFilterDepth {
		return bad("compound filters may nest %d deep at most", MaxFilterDepth)
	}
	for i := range f.Filters {
		if gerr := checkFilter(&f.Filters[i], depth+1, count); gerr != nil {
			return gerr
		}
	}
	if f.Op == "eq" {
		switch f.Value.(type) {
		case string, bool, float64, int, int64:
		default:
			return bad("eq compares a string, a number or a boolean")
		}
	}
	return nil
}
