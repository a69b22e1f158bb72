package guichet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RAG: collections of documents, cut into chunks, searched by meaning
// (embeddings), by words (full-text) or both.

// Visibility says who may read a collection.
type Visibility string

const (
	Private Visibility = "private" // its owner only
	Public  Visibility = "public"  // every user may read and search it
)

// Collection is a named set of documents owned by a user.
type Collection struct {
	ID          int64
	Name        string
	Description string
	OwnerID     int64
	Visibility  Visibility
	Documents   int64 // how many it holds
	Created     time.Time
	Updated     time.Time
}

// DocumentStatus follows an ingestion: queued → processing → ready or
// failed.
type DocumentStatus string

const (
	DocumentQueued     DocumentStatus = "queued"
	DocumentProcessing DocumentStatus = "processing"
	DocumentReady      DocumentStatus = "ready"
	DocumentFailed     DocumentStatus = "failed"
)

// Document is one file (or one item of a bulk import) in a collection.
type Document struct {
	ID           int64
	CollectionID int64
	Name         string
	Status       DocumentStatus
	Error        string   // why the ingestion failed
	Hash         [32]byte // SHA-256 of the content (zero for a document made empty)
	Parser       string   // what read the file: "pdftotext", "pdfium", "docx", "html"…
	Pages        int
	Chunks       int64
	Metadata     map[string]any
	Created      time.Time
	Updated      time.Time
}

// Chunk is a passage of a document, the unit of search. IDs are unique
// across every collection.
type Chunk struct {
	ID           int64
	CollectionID int64
	DocumentID   int64
	Content      string
	Metadata     map[string]any // the document's, plus page and headings
	Embedding    []float32
	Created      time.Time
}

// SearchMethod is how chunks are matched.
type SearchMethod string

const (
	Semantic SearchMethod = "semantic" // embeddings, cosine similarity
	Lexical  SearchMethod = "lexical"  // full-text
	Hybrid   SearchMethod = "hybrid"   // both, merged by reciprocal rank fusion
)

// MetadataFilter keeps chunks whose metadata match: a comparison (Key,
// Op, Value) or a compound (Filters joined by Operator "and" / "or").
type MetadataFilter struct {
	Key      string
	Op       string // eq, sw (starts with), ew (ends with), co (contains)
	Value    any
	Filters  []MetadataFilter
	Operator string
}

// IndexQuery is one search in an Index.
type IndexQuery struct {
	Text           string    // for lexical search
	Vector         []float32 // for semantic search
	CollectionIDs  []int64   // required: only these collections
	DocumentIDs    []int64   // optional: only these documents
	Filter         *MetadataFilter
	Limit          int
	ScoreThreshold *float64 // semantic only: minimum cosine similarity
}

// SearchHit is a chunk found, with its score for the method.
type SearchHit struct {
	Chunk  Chunk
	Score  float64
	Method SearchMethod
}

// Index stores chunks and finds them: one implementation embedded
// (SQLite FTS5 and an in-process vector index) and one for cluster mode
// (PostgreSQL full-text search and pgvector), with one conformance suite.
type Index interface {
	// Add stores chunks atomically (all or none) and sets their IDs,
	// unique across collections. Every chunk of one call has an embedding
	// of the same size, or none has.
	Add(ctx context.Context, chunks []Chunk) error
	// Chunks lists a document's chunks in ID order; Chunk reads one
	// (ErrNotFound when missing).
	Chunks(ctx context.Context, documentID int64, offset, limit int) ([]Chunk, error)
	Chunk(ctx context.Context, id int64) (Chunk, error)
	DeleteChunk(ctx context.Context, id int64) error
	// DeleteDocument and DeleteCollection remove every chunk they hold.
	DeleteDocument(ctx context.Context, documentID int64) error
	DeleteCollection(ctx context.Context, collectionID int64) error
	// Lexical and Semantic return at most q.Limit chunks, best first.
	Lexical(ctx context.Context, q IndexQuery) ([]SearchHit, error)
	Semantic(ctx context.Context, q IndexQuery) ([]SearchHit, error)
}

// CollectionFilter narrows a list of collections.
type CollectionFilter struct {
	ReaderID   int64      // only those this user may read (owned or public); 0: all
	Name       string     // name contains this, case-insensitively
	Visibility Visibility // "": both
}

// DocumentFilter narrows a list of documents.
type DocumentFilter struct {
	ReaderID     int64 // only in collections this user may read; 0: all
	CollectionID int64 // 0: every collection
	Name         string
	Status       DocumentStatus // "": any
}

// Library keeps collections and documents; their chunks live in an Index.
// Pages order collections and documents by id, name, created or updated.
type Library interface {
	// CreateCollection sets ID, Created and Updated.
	CreateCollection(ctx context.Context, c *Collection) error
	// Collection reads one, with its document count (ErrNotFound).
	Collection(ctx context.Context, id int64) (*Collection, error)
	Collections(ctx context.Context, f CollectionFilter, p Page) ([]*Collection, error)
	// UpdateCollection changes name, description and visibility.
	UpdateCollection(ctx context.Context, c *Collection) error
	// DeleteCollection deletes its documents too. Deleting a document,
	// however it happens (DeleteDocument, DeleteCollection, the owner's
	// DeleteUser), deletes its chunks from the same store's Index, in the
	// same transaction (storetest.ChunksFollowDocuments).
	DeleteCollection(ctx context.Context, id int64) error

	// CreateDocument sets ID, Created and Updated. It fails with
	// ErrConflict when the collection already holds a document of the same
	// (non-zero) Hash, or with ErrNotFound when the collection is missing.
	CreateDocument(ctx context.Context, d *Document) error
	Document(ctx context.Context, id int64) (*Document, error)
	// DocumentByHash finds the document of that content in a collection.
	DocumentByHash(ctx context.Context, collectionID int64, hash [32]byte) (*Document, error)
	Documents(ctx context.Context, f DocumentFilter, p Page) ([]*Document, error)
	// UpdateDocument saves Name, Status, Error, Parser, Pages, Chunks and
	// Metadata, and sets Updated.
	UpdateDocument(ctx context.Context, d *Document) error
	DeleteDocument(ctx context.Context, id int64) error
	// FailUnfinished marks failed, with reason, every queued or
	// processing document last updated before updatedBefore (their
	// ingestion was interrupted), and says how many.
	FailUnfinished(ctx context.Context, reason string, updatedBefore time.Time) (int64, error)
}

// Check reports a malformed filter: a compound and a comparison at once,
// an unknown operator or op, no key, or sw/ew/co with a value that is
// not a string. Stores refuse such filters; the API says which field.
func (f MetadataFilter) Check() error {
	if len(f.Filters) > 0 || f.Operator != "" {
		if f.Key != "" || f.Op != "" {
			return errors.New("a filter is either a comparison (key, type, value) or a compound (filters, operator), not both")
		}
		if f.Operator != "and" && f.Operator != "or" {
			return fmt.Errorf("operator must be and or or, not %q", f.Operator)
		}
		if len(f.Filters) == 0 {
			return errors.New("a compound filter needs filters")
		}
		for _, g := range f.Filters {
			if err := g.Check(); err != nil {
				return err
			}
		}
		return nil
	}
	if f.Key == "" {
		return errors.New("key is required")
	}
	switch f.Op {
	case "eq":
	case "sw", "ew", "co":
		if _, ok := f.Value.(string); !ok {
			return fmt.Errorf("%s compares strings: value must be a string", f.Op)
		}
	default:
		return fmt.Errorf("type must be eq, sw, ew or co, not %q", f.Op)
	}
	return nil
}

// Match reports whether metadata m (as JSON decodes it) passes f, which
// Check accepted. A missing key never matches.
func (f MetadataFilter) Match(m map[string]any) bool {
	if len(f.Filters) > 0 {
		and := f.Operator == "and"
		for _, g := range f.Filters {
			if g.Match(m) != and {
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
		w, ok := MetadataNumber(want)
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

// MetadataNumber is v as a float64 if it is a number of any Go type
// (JSON decodes numbers as float64; callers may give ints).
func MetadataNumber(v any) (float64, bool) {
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
