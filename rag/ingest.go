package rag

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag/chunk"
	"github.com/guichet/guichet/rag/parse"
)

// Upload is a file to add to a collection.
type Upload struct {
	CollectionID int64
	Name         string // the file name; the document's name unless set below
	DocumentName string
	ContentType  string
	Data         []byte // nil: an empty document, for chunks the caller makes
	Metadata     map[string]any
	Chunking     chunk.Options
	// DisableChunking makes each page (each bulk item) one chunk.
	DisableChunking bool
	// Wait: ingest before answering. Otherwise the document is queued and
	// its Status tells how the ingestion goes.
	Wait bool
}

// Metadata limits (as OpenGateLLM 0.4, so its clients fit).
const (
	MaxMetadataKeys   = 8
	MaxMetadataString = 255
	MaxMetadataList   = 8
)

// CheckMetadata says what is wrong with user metadata, for a 422.
func CheckMetadata(m map[string]any) error {
	if len(m) > MaxMetadataKeys {
		return fmt.Errorf("metadata holds %d keys; at most %d are allowed", len(m), MaxMetadataKeys)
	}
	for k, v := range m {
		if k == "" || len(k) > MaxMetadataString {
			return fmt.Errorf("metadata keys must be 1 to %d characters", MaxMetadataString)
		}
		if err := checkValue(k, v, true); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(k string, v any, listOK bool) error {
	switch v := v.(type) {
	case nil, bool, float64, int64, int:
		return nil
	case string:
		if len(v) > MaxMetadataString {
			return fmt.Errorf("metadata %q: strings must be at most %d characters", k, MaxMetadataString)
		}
		return nil
	case []any:
		if !listOK {
			return fmt.Errorf("metadata %q: lists may not hold lists or objects", k)
		}
		if len(v) > MaxMetadataList {
			return fmt.Errorf("metadata %q: lists may hold at most %d items", k, MaxMetadataList)
		}
		for _, e := range v {
			if err := checkValue(k, e, false); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("metadata %q: values must be strings, numbers, booleans or lists of them", k)
	}
}

// Upload adds a file to a collection the caller owns. The same content
// uploaded again into the same collection is not ingested twice: the
// document already there is returned, with created false (a failed one
// is replaced).
func (s *Service) Upload(ctx context.Context, c *guichet.Principal, u Upload) (doc *guichet.Document, created bool, gerr *guichet.Error) {
	if _, gerr := s.writable(ctx, c, u.CollectionID); gerr != nil {
		return nil, false, gerr
	}
	if err := CheckMetadata(u.Metadata); err != nil {
		return nil, false, errorf(http.StatusUnprocessableEntity, "invalid_value", "%v", err).WithParam("metadata")
	}
	if _, err := chunk.New(u.Chunking); err != nil {
		var oe *chunk.OptionError
		if errors.As(err, &oe) {
			return nil, false, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s", oe.Message).WithParam(oe.Field)
		}
		return nil, false, errorf(http.StatusUnprocessableEntity, "invalid_value", "%v", err)
	}
	name := u.DocumentName
	if name == "" {
		name = path.Base(strings.ReplaceAll(u.Name, "\\", "/"))
	}
	if name == "" || name == "." || name == "/" {
		name = "document"
	}
	if len(name) > MaxNameLen {
		return nil, false, errorf(http.StatusUnprocessableEntity, "invalid_value", "the document name must be at most %d characters", MaxNameLen).WithParam("name")
	}
	d := &guichet.Document{CollectionID: u.CollectionID, Name: name, Metadata: u.Metadata, Status: guichet.DocumentReady}
	if u.Data != nil {
		d.Hash = sha256.Sum256(u.Data)
		if old, err := s.lib.DocumentByHash(ctx, u.CollectionID, d.Hash); err == nil {
			if old.Status != guichet.DocumentFailed {
				return old, false, nil
			}
			if gerr := s.deleteDocument(ctx, old.ID); gerr != nil {
				return nil, false, gerr
			}
		} else if !errors.Is(err, guichet.ErrNotFound) {
			return nil, false, s.internal("look for a duplicate", err)
		}
		if !isBulk(u.Name, u.ContentType) {
			// Refuse a file of the wrong type now, not in the background.
			if _, err := parse.Detect(u.Name, u.ContentType, u.Data); err != nil {
				return nil, false, parseError(err)
			}
		}
		d.Status = guichet.DocumentProcessing
		if !u.Wait {
			d.Status = guichet.DocumentQueued
		}
	}
	if err := s.lib.CreateDocument(ctx, d); err != nil {
		if errors.Is(err, guichet.ErrConflict) { // the same file, uploaded at the same moment
			if old, err := s.lib.DocumentByHash(ctx, u.CollectionID, d.Hash); err == nil {
				return old, false, nil
			}
		}
		return nil, false, s.internal("create a document", err)
	}
	if u.Data == nil {
		return d, true, nil
	}
	if !u.Wait {
		queued := *d // the worker's own copy: the caller reads d meanwhile
		select {
		case s.jobs <- job{caller: c, doc: &queued, upload: u}:
			return d, true, nil
		default:
			s.lib.DeleteDocument(context.WithoutCancel(ctx), d.ID)
			e := errorf(http.StatusServiceUnavailable, "ingestion_queue_full", "%d documents are already waiting to be ingested: retry in a minute, or upload with wait=true", s.opts.Queue)
			e.RetryAfter = 60
			return nil, false, e
		}
	}
	if gerr := s.ingest(ctx, c, d, u); gerr != nil {
		// Synchronous: the caller learns why, and nothing is left behind.
		s.deleteDocument(context.WithoutCancel(ctx), d.ID)
		return nil, false, gerr
	}
	return d, true, nil
}

// job is one background ingestion.
type job struct {
	caller *guichet.Principal
	doc    *guichet.Document
	upload Upload
}

// ingestTimeout bounds a background ingestion (parse, embed, index).
const ingestTimeout = 30 * time.Minute

func (s *Service) work() {
	defer s.workers.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.jobs:
			ctx, cancel := context.WithTimeout(s.ctx, ingestTimeout)
			if gerr := s.ingest(ctx, j.caller, j.doc, j.upload); gerr != nil {
				d := j.doc
				d.Status, d.Error, d.Chunks = guichet.DocumentFailed, gerr.Message, 0
				if s.ctx.Err() != nil {
					d.Error = "the ingestion was interrupted by a shutdown of guichet: upload the file again"
				}
				if err := s.lib.UpdateDocument(context.WithoutCancel(ctx), d); err != nil && !errors.Is(err, guichet.ErrNotFound) {
					s.log.Error("RAG: cannot record a failed ingestion", "document", d.ID, "err", err)
				}
				s.log.Info("RAG ingestion failed", "document", d.ID, "reason", gerr.Message)
			}
			cancel()
		}
	}
}

// ingest parses, chunks, embeds and indexes an uploaded file, then marks
// its document ready. On error nothing is indexed.
func (s *Service) ingest(ctx context.Context, c *guichet.Principal, d *guichet.Document, u Upload) *guichet.Error {
	if d.Status == guichet.DocumentQueued {
		d.Status = guichet.DocumentProcessing
		if err := s.lib.UpdateDocument(ctx, d); err != nil {
			if errors.Is(err, guichet.ErrNotFound) {
				return nil // deleted while it waited
			}
			return s.internal("update a document", err)
		}
	}
	chunks, gerr := s.cut(ctx, d, u)
	if gerr != nil {
		return gerr
	}
	if len(chunks) == 0 {
		return errorf(http.StatusUnprocessableEntity, "no_text", "no text was found in the file (a scanned PDF needs OCR first)")
	}
	if gerr := s.vectorise(ctx, c, chunks, true); gerr != nil {
		return gerr
	}
	if err := s.index.Add(ctx, chunks); err != nil {
		return s.internal("index the chunks", err)
	}
	d.Status, d.Error, d.Chunks = guichet.DocumentReady, "", int64(len(chunks))
	if err := s.lib.UpdateDocument(ctx, d); err != nil {
		// Deleted meanwhile (its collection too, maybe): take its chunks back.
		s.index.DeleteDocument(context.WithoutCancel(ctx), d.ID)
		if errors.Is(err, guichet.ErrNotFound) {
			return nil
		}
		return s.internal("update a document", err)
	}
	return nil
}

func isBulk(name, contentType string) bool {
	if strings.EqualFold(path.Ext(name), ".json") {
		return true
	}
	return path.Ext(name) == "" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json")
}

func parseError(err error) *guichet.Error {
	var pe *parse.Error
	if errors.As(err, &pe) {
		if errors.Is(err, context.Canceled) {
			return errorf(499, "client_closed", "the client closed the request")
		}
		return errorf(http.StatusUnprocessableEntity, "unreadable_file", "%s", pe.Reason).WithParam("file")
	}
	return errorf(http.StatusUnprocessableEntity, "unreadable_file", "the file could not be read: %v", err).WithParam("file")
}

// section is text to cut with the metadata its chunks carry.
type section struct {
	pages    []chunk.Page
	metadata map[string]any
}

// cut parses the file and splits it into chunks carrying their metadata:
// the document's, then where the chunk comes from.
func (s *Service) cut(ctx context.Context, d *guichet.Document, u Upload) ([]guichet.Chunk, *guichet.Error) {
	var sections []section
	if isBulk(u.Name, u.ContentType) {
		items, err := parse.ParseBulk(u.Data, s.opts.Parse)
		if err != nil {
			return nil, parseError(err)
		}
		d.Parser, d.Pages = "json-bulk", len(items)
		for _, it := range items {
			m := map[string]any{}
			for k, v := range it.Metadata {
				m[k] = v
			}
			if it.Title != "" {
				m["title"] = it.Title
			}
			sections = append(sections, section{pages: []chunk.Page{{Number: 0, Text: it.Text}}, metadata: m})
		}
	} else {
		doc, err := parse.Parse(ctx, u.Name, u.ContentType, u.Data, s.opts.Parse)
		if err != nil {
			return nil, parseError(err)
		}
		d.Parser, d.Pages = doc.Parser, len(doc.Pages)
		pages := make([]chunk.Page, len(doc.Pages))
		for i, p := range doc.Pages {
			pages[i] = chunk.Page{Number: p.Number, Text: p.Text}
		}
		m := map[string]any{}
		if doc.Title != "" {
			m["title"] = doc.Title
		}
		// One page documents (HTML, Markdown, text) do not say "page 1".
		if len(pages) == 1 {
			pages[0].Number = 0
		}
		sections = append(sections, section{pages: pages, metadata: m})
	}
	opts := u.Chunking
	if opts.Preset == "" && !u.DisableChunking {
		switch path.Ext(strings.ToLower(u.Name)) {
		case ".md", ".markdown", ".html", ".htm", ".docx", ".odt":
			opts.Preset = chunk.PresetMarkdown // their text is Markdown
		}
	}
	var out []guichet.Chunk
	for _, sec := range sections {
		var pieces []chunk.Chunk
		if u.DisableChunking {
			for _, p := range sec.pages {
				if t := strings.TrimSpace(p.Text); t != "" {
					pieces = append(pieces, chunk.Chunk{Text: t, Page: p.Number, PageEnd: p.Number})
				}
			}
		} else {
			var err error
			if pieces, err = chunk.Split(sec.pages, opts); err != nil {
				return nil, errorf(http.StatusUnprocessableEntity, "chunking_failed", "the text could not be cut into chunks: %v", err)
			}
		}
		for _, p := range pieces {
			out = append(out, guichet.Chunk{
				CollectionID: d.CollectionID,
				DocumentID:   d.ID,
				Content:      p.Text,
				Metadata:     chunkMetadata(d, sec.metadata, p),
			})
		}
	}
	return out, nil
}

// chunkMetadata is the document's metadata, then the section's, then
// where the chunk is (these win: a filter on them must be right).
func chunkMetadata(d *guichet.Document, section map[string]any, p chunk.Chunk) map[string]any {
	m := make(map[string]any, len(d.Metadata)+len(section)+6)
	for k, v := range d.Metadata {
		m[k] = v
	}
	for k, v := range section {
		m[k] = v
	}
	m["document_name"] = d.Name
	m["collection_id"] = d.CollectionID
	m["document_id"] = d.ID
	if p.Page > 0 {
		m["page"] = p.Page
		if p.PageEnd != p.Page {
			m["page_end"] = p.PageEnd
		}
	}
	if len(p.Headings) > 0 {
		h := make([]any, len(p.Headings))
		for i, s := range p.Headings {
			h[i] = s
		}
		m["headings"] = h
	}
	return m
}

// vectorise embeds the chunks' contents in batches, a few at once. With
// no embedding model the chunks stay without vectors (lexical search).
func (s *Service) vectorise(ctx context.Context, c *guichet.Principal, chunks []guichet.Chunk, background bool) *guichet.Error {
	if s.embed == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first *guichet.Error
		wg    sync.WaitGroup
		slots = make(chan struct{}, s.opts.EmbedConcurrency)
	)
	fail := func(e *guichet.Error) {
		mu.Lock()
		if first == nil {
			first = e
			cancel()
		}
		mu.Unlock()
	}
	for lo := 0; lo < len(chunks); lo += s.opts.EmbedBatch {
		hi := min(lo+s.opts.EmbedBatch, len(chunks))
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(batch []guichet.Chunk) {
			defer func() { <-slots; wg.Done() }()
			texts := make([]string, len(batch))
			for i, ch := range batch {
				texts[i] = ch.Content
			}
			vecs, _, err := s.embed.Embed(ctx, c, texts, background)
			if err != nil {
				fail(embedError(err))
				return
			}
			if len(vecs) != len(batch) {
				fail(errorf(http.StatusBadGateway, "embedding_failed", "the embedding model returned %d vectors for %d texts", len(vecs), len(batch)))
				return
			}
			for i := range batch {
				batch[i].Embedding = vecs[i]
			}
		}(chunks[lo:hi])
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = errorf(499, "client_closed", "the client closed the request")
	}
	return first
}

func embedError(err error) *guichet.Error {
	var ge *guichet.Error
	if errors.As(err, &ge) {
		return errorf(ge.Status, ge.Code, "the embedding of the text failed: %s", ge.Message)
	}
	return errorf(http.StatusBadGateway, "embedding_failed", "the embedding of the text failed: %v", err)
}

// Document reads a document the caller may read.
func (s *Service) Document(ctx context.Context, c *guichet.Principal, id int64) (*guichet.Document, *guichet.Error) {
	d, _, gerr := s.document(ctx, c, id, false)
	return d, gerr
}

// Documents lists the documents of collections the caller may read.
func (s *Service) Documents(ctx context.Context, c *guichet.Principal, f guichet.DocumentFilter, p guichet.Page) ([]*guichet.Document, *guichet.Error) {
	if f.CollectionID != 0 {
		if _, gerr := s.readable(ctx, c, f.CollectionID); gerr != nil {
			return nil, gerr
		}
	}
	f.ReaderID = userID(c)
	if !c.Master && f.ReaderID == 0 {
		return nil, nil
	}
	list, err := s.lib.Documents(ctx, f, p)
	if err != nil {
		return nil, s.internal("list documents", err)
	}
	return list, nil
}

// DeleteDocument deletes a document the caller owns, and its chunks.
func (s *Service) DeleteDocument(ctx context.Context, c *guichet.Principal, id int64) *guichet.Error {
	if _, _, gerr := s.document(ctx, c, id, true); gerr != nil {
		return gerr
	}
	return s.deleteDocument(ctx, id)
}

// deleteDocument deletes a document; its chunks go with it (Library).
func (s *Service) deleteDocument(ctx context.Context, id int64) *guichet.Error {
	if err := s.lib.DeleteDocument(ctx, id); err != nil && !errors.Is(err, guichet.ErrNotFound) {
		return s.internal("delete a document", err)
	}
	return nil
}

// NewChunk is a chunk the caller made.
type NewChunk struct {
	Content  string
	Metadata map[string]any
}

// MaxChunksPerCall bounds POST /v1/documents/{id}/chunks (as OpenGateLLM).
const MaxChunksPerCall = 64

// MaxChunkContent bounds a caller-made chunk, in bytes.
const MaxChunkContent = 1 << 20

// AddChunks adds caller-made chunks to a document the caller owns.
func (s *Service) AddChunks(ctx context.Context, c *guichet.Principal, documentID int64, in []NewChunk) ([]guichet.Chunk, *guichet.Error) {
	if len(in) == 0 || len(in) > MaxChunksPerCall {
		return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "send 1 to %d chunks, not %d", MaxChunksPerCall, len(in)).WithParam("chunks")
	}
	d, _, gerr := s.document(ctx, c, documentID, true)
	if gerr != nil {
		return nil, gerr
	}
	out := make([]guichet.Chunk, len(in))
	for i, nc := range in {
		if strings.TrimSpace(nc.Content) == "" || len(nc.Content) > MaxChunkContent {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "chunks[%d].content must hold text, at most %d bytes", i, MaxChunkContent).WithParam("chunks")
		}
		if err := CheckMetadata(nc.Metadata); err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_value", "chunks[%d].%v", i, err).WithParam("chunks")
		}
		out[i] = guichet.Chunk{CollectionID: d.CollectionID, DocumentID: d.ID, Content: nc.Content,
			Metadata: chunkMetadata(d, nc.Metadata, chunk.Chunk{})}
	}
	if gerr := s.vectorise(ctx, c, out, false); gerr != nil {
		return nil, gerr
	}
	if err := s.index.Add(ctx, out); err != nil {
		return nil, s.internal("index the chunks", err)
	}
	s.recount(ctx, d)
	return out, nil
}

// recount sets a document's chunk count after chunks were added or
// deleted one by one.
func (s *Service) recount(ctx context.Context, d *guichet.Document) {
	all, err := s.index.Chunks(ctx, d.ID, 0, 0)
	if err != nil {
		return
	}
	d.Chunks = int64(len(all))
	if d.Status == "" {
		d.Status = guichet.DocumentReady
	}
	if err := s.lib.UpdateDocument(ctx, d); err != nil && !errors.Is(err, guichet.ErrNotFound) {
		s.log.Warn("RAG: cannot update a document's chunk count", "document", d.ID, "err", err)
	}
}

// Chunks lists a readable document's chunks.
func (s *Service) Chunks(ctx context.Context, c *guichet.Principal, documentID int64, offset, limit int) ([]guichet.Chunk, *guichet.Error) {
	if _, _, gerr := s.document(ctx, c, documentID, false); gerr != nil {
		return nil, gerr
	}
	list, err := s.index.Chunks(ctx, documentID, offset, limit)
	if err != nil {
		return nil, s.internal("list chunks", err)
	}
	return list, nil
}

// Chunk reads one chunk of a readable document.
func (s *Service) Chunk(ctx context.Context, c *guichet.Principal, documentID, chunkID int64) (*guichet.Chunk, *guichet.Error) {
	if _, _, gerr := s.document(ctx, c, documentID, false); gerr != nil {
		return nil, gerr
	}
	ch, err := s.index.Chunk(ctx, chunkID)
	if errors.Is(err, guichet.ErrNotFound) || (err == nil && ch.DocumentID != documentID) {
		return nil, errorf(http.StatusNotFound, "chunk_not_found", "chunk %d not found in document %d", chunkID, documentID)
	}
	if err != nil {
		return nil, s.internal("read a chunk", err)
	}
	return &ch, nil
}

// DeleteChunk deletes one chunk of a document the caller owns.
func (s *Service) DeleteChunk(ctx context.Context, c *guichet.Principal, documentID, chunkID int64) *guichet.Error {
	d, _, gerr := s.document(ctx, c, documentID, true)
	if gerr != nil {
		return gerr
	}
	if _, gerr := s.Chunk(ctx, c, documentID, chunkID); gerr != nil {
		return gerr
	}
	if err := s.index.DeleteChunk(ctx, chunkID); err != nil && !errors.Is(err, guichet.ErrNotFound) {
		return s.internal("delete a chunk", err)
	}
	s.recount(ctx, d)
	return nil
}
