package rag_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag"
	"github.com/guichet/guichet/rag/chunk"
	"github.com/guichet/guichet/sqlite"
)

// embedder gives each text a vector from its length; it fails the call
// number failAt (counting from 1), or never when 0.
type embedder struct {
	calls  atomic.Int64
	failAt int64
}

func (e *embedder) Embed(_ context.Context, _ *guichet.Principal, texts []string, _ bool) ([][]float32, int64, error) {
	if n := e.calls.Add(1); n == e.failAt {
		return nil, 0, guichet.Errorf(http.StatusTooManyRequests, "rate_limit_exceeded", "too many requests")
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = []float32{1, float32(len(t))}
	}
	return out, int64(len(texts)), nil
}

// setup opens a real embedded store with a user who owns a collection.
func setup(t *testing.T, e rag.Embedder) (*rag.Service, guichet.Index, *guichet.Principal, int64) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "guichet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	role := &guichet.Role{Name: "users"}
	if err := db.CreateRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	user := &guichet.User{Email: "a@example.org", RoleID: role.ID}
	if err := db.CreateUser(ctx, user); err != nil {
		t.Fatal(err)
	}
	index := db.Index()
	s := rag.New(db, index, e, rag.Options{EmbedBatch: 2}, nil)
	t.Cleanup(s.Close)
	caller := &guichet.Principal{User: user, Role: role}
	name := "docs"
	col, gerr := s.CreateCollection(ctx, caller, rag.CollectionSpec{Name: &name})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return s, index, caller, col.ID
}

// text is a document of about ten chunks of 20 characters.
var text = []byte(strings.Repeat("Une phrase courte. ", 10))

// TestFailedIngestionLeavesNothing: when an embedding batch fails in the
// middle of a document, no chunk of it is searchable, and the caller
// learns why: synchronously the document is gone, asynchronously it is
// failed with the reason.
func TestFailedIngestionLeavesNothing(t *testing.T) {
	ctx := context.Background()
	for _, wait := range []bool{true, false} {
		s, index, caller, col := setup(t, &embedder{failAt: 3})
		d, _, gerr := s.Upload(ctx, caller, rag.Upload{CollectionID: col, Name: "a.txt", Data: text, Wait: wait,
			Chunking: chunk.Options{Size: 20}})
		if wait {
			if gerr == nil || gerr.Status != http.StatusTooManyRequests || !strings.Contains(gerr.Message, "too many requests") {
				t.Fatalf("sync upload with a failing embedding: %v", gerr)
			}
			docs, _ := s.Documents(ctx, caller, guichet.DocumentFilter{CollectionID: col}, guichet.Page{})
			if len(docs) != 0 {
				t.Errorf("sync: %d documents left after a failure", len(docs))
			}
		} else {
			if gerr != nil || d.Status != guichet.DocumentQueued {
				t.Fatalf("async upload: %v %+v", gerr, d)
			}
			deadline := time.Now().Add(10 * time.Second)
			for d.Status != guichet.DocumentFailed && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				d, _ = s.Document(ctx, caller, d.ID)
			}
			if d.Status != guichet.DocumentFailed || !strings.Contains(d.Error, "too many requests") || d.Chunks != 0 {
				t.Fatalf("async: %+v", d)
			}
		}
		hits, err := index.Lexical(ctx, guichet.IndexQuery{Text: "phrase", CollectionIDs: []int64{col}, Limit: 100})
		if err != nil || len(hits) != 0 {
			t.Errorf("wait=%v: %d chunks indexed after a failed ingestion (%v)", wait, len(hits), err)
		}
	}
}

// TestUploadAgainAfterFailure: a failed document does not block the same
// file from being uploaded again.
func TestUploadAgainAfterFailure(t *testing.T) {
	ctx := context.Background()
	e := &embedder{failAt: 1}
	s, _, caller, col := setup(t, e)
	if _, _, gerr := s.Upload(ctx, caller, rag.Upload{CollectionID: col, Name: "a.txt", Data: text, Wait: true}); gerr == nil {
		t.Fatal("the first upload should fail")
	}
	d, created, gerr := s.Upload(ctx, caller, rag.Upload{CollectionID: col, Name: "a.txt", Data: text, Wait: true})
	if gerr != nil || !created || d.Status != guichet.DocumentReady || d.Chunks == 0 {
		t.Fatalf("second upload: %v %v %+v", gerr, created, d)
	}
	again, created, gerr := s.Upload(ctx, caller, rag.Upload{CollectionID: col, Name: "b.txt", Data: text, Wait: true})
	if gerr != nil || created || again.ID != d.ID {
		t.Fatalf("third upload of the same content: %v %v %+v", gerr, created, again)
	}
}

// TestSearchChecks: what a caller gets wrong is named.
func TestSearchChecks(t *testing.T) {
	ctx := context.Background()
	s, _, caller, col := setup(t, &embedder{})
	cases := []struct {
		q     rag.Query
		param string
	}{
		{rag.Query{Text: " ", CollectionIDs: []int64{col}}, "query"},
		{rag.Query{Text: "x"}, "collection_ids"},
		{rag.Query{Text: "x", CollectionIDs: []int64{col}, Limit: 101}, "limit"},
		{rag.Query{Text: "x", CollectionIDs: []int64{col}, Method: "fuzzy"}, "method"},
		{rag.Query{Text: "x", CollectionIDs: []int64{col}, Filter: &guichet.MetadataFilter{Key: "a", Op: "gt", Value: 1.0}}, "metadata_filters"},
		{rag.Query{Text: "x", CollectionIDs: []int64{col}, Filter: &guichet.MetadataFilter{Key: "a", Op: "sw", Value: 1.0}}, "metadata_filters"},
		{rag.Query{Text: "x", CollectionIDs: []int64{col}, Filter: &guichet.MetadataFilter{Operator: "xor", Filters: []guichet.MetadataFilter{{Key: "a", Op: "eq", Value: "b"}}}}, "metadata_filters"},
	}
	for _, c := range cases {
		_, gerr := s.Search(ctx, caller, c.q)
		if gerr == nil || gerr.Status != http.StatusUnprocessableEntity || gerr.Param != c.param {
			t.Errorf("%+v: %v, want a 422 on %s", c.q, gerr, c.param)
		}
	}
	other := &guichet.Principal{User: &guichet.User{ID: 999}, Role: &guichet.Role{}}
	if _, gerr := s.Search(ctx, other, rag.Query{Text: "x", CollectionIDs: []int64{col}}); gerr == nil || gerr.Status != http.StatusNotFound {
		t.Errorf("another user searches a private collection: %v", gerr)
	}
	if res, gerr := s.Search(ctx, caller, rag.Query{Text: "x", CollectionIDs: []int64{col}}); gerr != nil || len(res.Hits) != 0 || res.InputTokens != 1 {
		t.Errorf("hybrid search of an empty collection: %v %+v", gerr, res)
	}
}
