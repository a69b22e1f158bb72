// Package rag is RAG-as-a-service: collections of documents that their
// owners upload, cut into chunks, embed and index, and that every caller
// allowed to read them can search, directly or from a chat. The HTTP layer
// (package httpapi) decodes requests and answers; this package decides who
// may do what and runs the ingestion pipeline:
//
//	parse (rag/parse) → chunk (rag/chunk) → embed (the gateway's own
//	journey, so quotas, budgets and the ledger apply) → index (Index.Add,
//	all of a document's chunks at once).
//
// A document whose ingestion fails leaves no chunk behind: Index.Add is
// atomic and runs last.
package rag

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag/parse"
)

// Embedder turns texts into vectors with the configured embedding model,
// on behalf of caller, through the gateway's routing, quotas and ledger.
// background marks ingestion work, scheduled after interactive requests.
// It returns one vector per text, in order, and the input tokens billed.
// An error may be a *guichet.Error to show the caller (a quota refusal…).
type Embedder interface {
	Embed(ctx context.Context, caller *guichet.Principal, texts []string, background bool) ([][]float32, int64, error)
}

// Options tune a Service; zero fields take the defaults.
type Options struct {
	EmbedBatch       int          // texts per embedding request (32, as OpenGateLLM)
	EmbedConcurrency int          // embedding requests in flight per document (4)
	Workers          int          // background ingestions running at once (2)
	Queue            int          // background ingestions waiting at most (256)
	Parse            parse.Limits // pages, expansion and time per file
}

func (o Options) withDefaults() Options {
	if o.EmbedBatch <= 0 {
		o.EmbedBatch = 32
	}
	if o.EmbedConcurrency <= 0 {
		o.EmbedConcurrency = 4
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	return o
}

// Service serves collections, documents, chunks and search.
type Service struct {
	lib   guichet.Library
	index guichet.Index
	embed Embedder // nil: no embedding model, lexical search only
	opts  Options
	log   *slog.Logger

	jobs    chan job
	ctx     context.Context // background ingestions; cancelled by Close
	stop    context.CancelFunc
	workers sync.WaitGroup
}

// New starts a Service and its background ingestion workers (Close stops
// them). embed may be nil when no embedding model is configured.
func New(lib guichet.Library, index guichet.Index, embed Embedder, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{lib: lib, index: index, embed: embed, opts: opts.withDefaults(), log: log}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.jobs = make(chan job, s.opts.Queue)
	for range s.opts.Workers {
		s.workers.Add(1)
		go s.work()
	}
	return s
}

// Resume marks the documents a previous run left unfinished as failed:
// their files were not kept, so they must be uploaded again.
func (s *Service) Resume(ctx context.Context) error {
	n, err := s.lib.FailUnfinished(ctx, "the ingestion was interrupted by a restart of guichet: upload the file again", time.Now())
	if n > 0 {
		s.log.Warn("documents left unfinished by the last run are marked failed", "documents", n)
	}
	return err
}

// staleAfter is how long a queued or processing document may go without
// an update before it is taken for abandoned (its replica died): longer
// than an ingestion may take.
const staleAfter = ingestTimeout + 5*time.Minute

// ReapEvery marks failed, every period until Close, the documents whose
// ingestion was abandoned by a replica that stopped (cluster mode, where
// Resume cannot tell another replica's work from a dead one's).
func (s *Service) ReapEvery(period time.Duration) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				n, err := s.lib.FailUnfinished(s.ctx, "the ingestion was abandoned (the guichet replica doing it stopped): upload the file again", time.Now().Add(-staleAfter))
				if err != nil && s.ctx.Err() == nil {
					s.log.Warn("RAG: cannot mark abandoned ingestions failed", "err", err)
				}
				if n > 0 {
					s.log.Warn("abandoned ingestions marked failed", "documents", n)
				}
			}
		}
	}()
}

// Close stops the workers: an ingestion in progress fails (nothing of it
// is indexed), queued ones stay queued and the next Resume fails them.
func (s *Service) Close() {
	s.stop()
	s.workers.Wait()
}

// CanEmbed reports whether semantic search and embeddings are available.
func (s *Service) CanEmbed() bool { return s.embed != nil }

// errorf builds the error a caller sees.
var errorf = guichet.Errorf

// internal hides a store failure behind a generic message (it is logged).
func (s *Service) internal(what string, err error) *guichet.Error {
	var ge *guichet.Error
	if errors.As(err, &ge) {
		return ge
	}
	if errors.Is(err, context.Canceled) {
		return errorf(499, "client_closed", "the client closed the request")
	}
	s.log.Error("RAG store failure", "op", what, "err", err)
	return errorf(http.StatusInternalServerError, "store_error", "the RAG store failed to %s; retry later", what)
}

// userID is the caller's user, 0 for the master key (which has none).
func userID(c *guichet.Principal) int64 {
	if c == nil || c.Master || c.User == nil {
		return 0
	}
	return c.User.ID
}

func canRead(c *guichet.Principal, col *guichet.Collection) bool {
	return c.Master || col.Visibility == guichet.Public || col.OwnerID == userID(c)
}

func canWrite(c *guichet.Principal, col *guichet.Collection) bool {
	return c.Master || col.OwnerID == userID(c)
}

func collectionNotFound(id int64) *guichet.Error {
	return errorf(http.StatusNotFound, "collection_not_found", "collection %d not found", id)
}

func documentNotFound(id int64) *guichet.Error {
	return errorf(http.StatusNotFound, "document_not_found", "document %d not found", id)
}

// readable returns the collection if the caller may read it; one the
// caller may not see is "not found", so ids reveal nothing.
func (s *Service) readable(ctx context.Context, c *guichet.Principal, id int64) (*guichet.Collection, *guichet.Error) {
	col, err := s.lib.Collection(ctx, id)
	if errors.Is(err, guichet.ErrNotFound) {
		return nil, collectionNotFound(id)
	}
	if err != nil {
		return nil, s.internal("read a collection", err)
	}
	if !canRead(c, col) {
		return nil, collectionNotFound(id)
	}
	return col, nil
}

// writable returns the collection if the caller owns it. Someone else's
// public collection is "not found" for writes too (as OpenGateLLM), with
// a message that says why.
func (s *Service) writable(ctx context.Context, c *guichet.Principal, id int64) (*guichet.Collection, *guichet.Error) {
	col, gerr := s.readable(ctx, c, id)
	if gerr != nil {
		return nil, gerr
	}
	if !canWrite(c, col) {
		return nil, errorf(http.StatusNotFound, "collection_not_found", "collection %d not found among yours: it is another user's public collection, which you may search but not change", id)
	}
	return col, nil
}

// document returns a document and its collection, if the caller may read
// it (write: change it).
func (s *Service) document(ctx context.Context, c *guichet.Principal, id int64, write bool) (*guichet.Document, *guichet.Collection, *guichet.Error) {
	d, err := s.lib.Document(ctx, id)
	if errors.Is(err, guichet.ErrNotFound) {
		return nil, nil, documentNotFound(id)
	}
	if err != nil {
		return nil, nil, s.internal("read a document", err)
	}
	col, gerr := s.readable(ctx, c, d.CollectionID)
	if gerr != nil {
		return nil, nil, documentNotFound(id)
	}
	if write && !canWrite(c, col) {
		return nil, nil, errorf(http.StatusNotFound, "document_not_found", "document %d not found among yours: it is in another user's public collection, which you may search but not change", id)
	}
	return d, col, nil
}

// Collection limits.
const (
	MaxNameLen        = 255
	MaxDescriptionLen = 10_000
)

// CollectionSpec is what a caller sets on a collection; nil fields of an
// update are left unchanged.
type CollectionSpec struct {
	Name        *string
	Description *string
	Visibility  *guichet.Visibility
}

func (s *Service) check(c *guichet.Principal, spec CollectionSpec) *guichet.Error {
	if spec.Name != nil {
		n := strings.TrimSpace(*spec.Name)
		if n == "" || len(n) > MaxNameLen {
			return errorf(http.StatusUnprocessableEntity, "invalid_value", "name must be 1 to %d characters", MaxNameLen).WithParam("name")
		}
		*spec.Name = n
	}
	if spec.Description != nil && len(*spec.Description) > MaxDescriptionLen {
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "description must be at most %d characters", MaxDescriptionLen).WithParam("description")
	}
	if v := spec.Visibility; v != nil {
		switch *v {
		case guichet.Private:
		case guichet.Public:
			if !c.Master && !c.Role.Has(guichet.PermCreatePublicCollection) {
				return errorf(http.StatusForbidden, "permission_denied", "making a collection public needs the %s permission: ask your administrator, or keep it private", guichet.PermCreatePublicCollection).WithParam("visibility")
			}
		default:
			return errorf(http.StatusUnprocessableEntity, "invalid_value", "visibility must be private or public, not %q", *v).WithParam("visibility")
		}
	}
	return nil
}

// CreateCollection makes a collection owned by the caller.
func (s *Service) CreateCollection(ctx context.Context, c *guichet.Principal, spec CollectionSpec) (*guichet.Collection, *guichet.Error) {
	if userID(c) == 0 {
		return nil, errorf(http.StatusForbidden, "no_user", "the master key belongs to no user, and a collection needs an owner: create a user and use one of their keys")
	}
	if spec.Name == nil {
		return nil, errorf(http.StatusUnprocessableEntity, "missing_field", "name is required").WithParam("name")
	}
	if spec.Visibility == nil {
		v := guichet.Private
		spec.Visibility = &v
	}
	if gerr := s.check(c, spec); gerr != nil {
		return nil, gerr
	}
	col := &guichet.Collection{Name: *spec.Name, OwnerID: userID(c), Visibility: *spec.Visibility}
	if spec.Description != nil {
		col.Description = *spec.Description
	}
	if err := s.lib.CreateCollection(ctx, col); err != nil {
		return nil, s.internal("create a collection", err)
	}
	return col, nil
}

// Collection reads a collection the caller may read.
func (s *Service) Collection(ctx context.Context, c *guichet.Principal, id int64) (*guichet.Collection, *guichet.Error) {
	return s.readable(ctx, c, id)
}

// Collections lists the collections the caller may read.
func (s *Service) Collections(ctx context.Context, c *guichet.Principal, f guichet.CollectionFilter, p guichet.Page) ([]*guichet.Collection, *guichet.Error) {
	f.ReaderID = userID(c)
	if !c.Master && f.ReaderID == 0 {
		return nil, nil
	}
	list, err := s.lib.Collections(ctx, f, p)
	if err != nil {
		return nil, s.internal("list collections", err)
	}
	return list, nil
}

// UpdateCollection changes a collection the caller owns.
func (s *Service) UpdateCollection(ctx context.Context, c *guichet.Principal, id int64, spec CollectionSpec) (*guichet.Collection, *guichet.Error) {
	col, gerr := s.writable(ctx, c, id)
	if gerr != nil {
		return nil, gerr
	}
	if spec.Visibility != nil && *spec.Visibility == col.Visibility {
		spec.Visibility = nil // unchanged: no permission needed
	}
	if gerr := s.check(c, spec); gerr != nil {
		return nil, gerr
	}
	if spec.Name != nil {
		col.Name = *spec.Name
	}
	if spec.Description != nil {
		col.Description = *spec.Description
	}
	if spec.Visibility != nil {
		col.Visibility = *spec.Visibility
	}
	if err := s.lib.UpdateCollection(ctx, col); err != nil {
		return nil, s.internal("update a collection", err)
	}
	return col, nil
}

// DeleteCollection deletes a collection the caller owns, its documents
// and every chunk of them.
func (s *Service) DeleteCollection(ctx context.Context, c *guichet.Principal, id int64) *guichet.Error {
	if _, gerr := s.writable(ctx, c, id); gerr != nil {
		return gerr
	}
	// The documents and their chunks go in one transaction (Library);
	// then the index drops what else it keeps for the collection (the
	// embedded one's vector graph files).
	if err := s.lib.DeleteCollection(ctx, id); err != nil && !errors.Is(err, guichet.ErrNotFound) {
		return s.internal("delete a collection", err)
	}
	if err := s.index.DeleteCollection(ctx, id); err != nil {
		return s.internal("delete a collection's chunks", err)
	}
	return nil
}
