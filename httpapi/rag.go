package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag"
	"github.com/guichet/guichet/rag/chunk"
)

// The RAG API (OpenGateLLM 0.4 shapes): collections, documents, chunks
// and search. Who may do what is decided by package rag; here requests
// are decoded and answers written.

// Collection is a collection as the API shows it.
type Collection struct {
	Object      string `json:"object" enum:"collection"`
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Visibility  string `json:"visibility" enum:"private,public"`
	Owner       string `json:"owner" doc:"The owner's name."`
	OwnerID     int64  `json:"owner_id"`
	Documents   int64  `json:"documents" doc:"How many documents it holds."`
	Created     int64  `json:"created"`
	Updated     int64  `json:"updated"`
}

// CollectionRequest creates or changes a collection.
type CollectionRequest struct {
	Name        *string `json:"name,omitempty" maxLength:"255"`
	Description *string `json:"description,omitempty"`
	Visibility  *string `json:"visibility,omitempty" enum:"private,public" doc:"public needs the create_public_collection permission; default private."`
}

// Document is a document as the API shows it.
type Document struct {
	Object       string         `json:"object" enum:"document"`
	ID           int64          `json:"id"`
	Name         string         `json:"name"`
	CollectionID int64          `json:"collection_id"`
	Status       string         `json:"status" enum:"queued,processing,ready,failed"`
	Error        string         `json:"error,omitempty" doc:"Why the ingestion failed."`
	Parser       string         `json:"parser,omitempty" doc:"What read the file: pdftotext, go-pdfium, docx-xml, html-to-markdown…"`
	Pages        int            `json:"pages"`
	Chunks       int64          `json:"chunks"`
	Metadata     map[string]any `json:"metadata"`
	Created      int64          `json:"created"`
	Updated      int64          `json:"updated"`
	Duplicate    bool           `json:"duplicate,omitempty" doc:"The same file was already in the collection: this is that document, not ingested again."`
}

// Chunk is a chunk as the API shows it.
type Chunk struct {
	Object       string         `json:"object" enum:"chunk"`
	ID           int64          `json:"id" doc:"Unique across every collection."`
	CollectionID int64          `json:"collection_id"`
	DocumentID   int64          `json:"document_id"`
	Content      string         `json:"content"`
	Metadata     map[string]any `json:"metadata"`
	Created      int64          `json:"created"`
}

// ChunksRequest adds chunks the caller made to a document.
type ChunksRequest struct {
	Chunks []NewChunk `json:"chunks" minItems:"1" maxItems:"64"`
}

// NewChunk is one chunk to add.
type NewChunk struct {
	Content  string         `json:"content"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// SearchRequest is POST /v1/search (OpenGateLLM 0.4; the July 2025
// names prompt, collections and k are accepted too).
type SearchRequest struct {
	Query           string          `json:"query,omitempty"`
	Prompt          string          `json:"prompt,omitempty" doc:"Old name of query."`
	CollectionIDs   []int64         `json:"collection_ids,omitempty" maxItems:"100"`
	Collections     []int64         `json:"collections,omitempty" doc:"Old name of collection_ids."`
	DocumentIDs     []int64         `json:"document_ids,omitempty" maxItems:"100"`
	MetadataFilters *MetadataFilter `json:"metadata_filters,omitempty"`
	Limit           int             `json:"limit,omitempty" minimum:"1" maximum:"100" doc:"Default 10."`
	K               int             `json:"k,omitempty" doc:"Old name of limit."`
	Offset          int             `json:"offset,omitempty" minimum:"0"`
	Method          string          `json:"method,omitempty" enum:"semantic,lexical,hybrid" doc:"Default hybrid (lexical when no embedding model is configured)."`
	RRFK            *int            `json:"rff_k,omitempty" minimum:"0" maximum:"16384" doc:"Reciprocal rank fusion's k, for hybrid (default 60)."`
	ScoreThreshold  *float64        `json:"score_threshold,omitempty" minimum:"-1" maximum:"1" doc:"Semantic hits with a lower cosine similarity are dropped (for hybrid, before the fusion)."`
	WebSearch       bool            `json:"web_search,omitempty" doc:"Not supported: must be false."`
	WebSearchK      int             `json:"web_search_k,omitempty" doc:"Accepted for OpenGateLLM clients and ignored (no web search)."`
}

// MetadataFilter is a comparison {key, type, value} or a compound
// {filters, operator}.
type MetadataFilter struct {
	Key      string           `json:"key,omitempty"`
	Type     string           `json:"type,omitempty" enum:"eq,sw,ew,co" doc:"equals, starts with, ends with, contains."`
	Value    any              `json:"value,omitempty"`
	Filters  []MetadataFilter `json:"filters,omitempty"`
	Operator string           `json:"operator,omitempty" enum:"and,or"`
}

func (f *MetadataFilter) toIndex() *guichet.MetadataFilter {
	if f == nil {
		return nil
	}
	out := &guichet.MetadataFilter{Key: f.Key, Op: f.Type, Value: f.Value, Operator: f.Operator}
	for i := range f.Filters {
		out.Filters = append(out.Filters, *f.Filters[i].toIndex())
	}
	return out
}

// SearchHit is one result of a search.
type SearchHit struct {
	Object string  `json:"object" enum:"search"`
	Method string  `json:"method" enum:"semantic,lexical,hybrid"`
	Score  float64 `json:"score"`
	Chunk  Chunk   `json:"chunk"`
}

// SearchResponse is the answer to POST /v1/search.
type SearchResponse struct {
	Object string      `json:"object" enum:"list"`
	Data   []SearchHit `json:"data"`
	Usage  RerankUsage `json:"usage" doc:"The tokens of the query's embedding."`
}

// DocumentID is OpenGateLLM's answer to an upload, with the document.
type DocumentID struct {
	ID int64 `json:"id"`
}

// UploadForm documents POST /v1/documents (multipart/form-data).
type UploadForm struct {
	File             []byte `json:"file,omitempty" format:"binary" doc:"PDF, DOCX, ODT, HTML, Markdown, text, or a JSON bulk list [{text, title, metadata}]. At most server.max_upload_bytes (20 MiB). Absent: an empty document, for chunks you make."`
	CollectionID     int64  `json:"collection_id" doc:"The collection (one you own). Old name: collection."`
	Name             string `json:"name,omitempty" doc:"Default: the file name."`
	Metadata         string `json:"metadata,omitempty" doc:"A JSON object attached to every chunk (at most 8 keys)."`
	ChunkSize        int    `json:"chunk_size,omitempty" doc:"Default 2048."`
	ChunkOverlap     int    `json:"chunk_overlap,omitempty"`
	ChunkMinSize     int    `json:"chunk_min_size,omitempty"`
	ChunkUnit        string `json:"chunk_unit,omitempty" enum:"characters,tokens" doc:"What chunk sizes count (default characters)."`
	Separators       string `json:"separators,omitempty" doc:"A JSON list of strings, tried in order."`
	IsSeparatorRegex bool   `json:"is_separator_regex,omitempty"`
	PresetSeparators string `json:"preset_separators,omitempty" enum:"text,markdown,html" doc:"Default: markdown for Markdown, HTML, DOCX and ODT, text otherwise."`
	DisableChunking  bool   `json:"disable_chunking,omitempty" doc:"One chunk per page (per bulk item)."`
	Wait             *bool  `json:"wait,omitempty" doc:"false: answer 202 at once; the document's status then moves queued → processing → ready or failed. Also a query parameter."`
}

func (s *Server) collectionOut(ctx context.Context, c *guichet.Collection, owners map[int64]string) Collection {
	owner, ok := owners[c.OwnerID]
	if !ok {
		if u, err := s.store.User(ctx, c.OwnerID); err == nil {
			owner = u.Name
			if owner == "" {
				owner = u.Email
			}
		}
		owners[c.OwnerID] = owner
	}
	return Collection{Object: "collection", ID: c.ID, Name: c.Name, Description: c.Description, Visibility: string(c.Visibility),
		Owner: owner, OwnerID: c.OwnerID, Documents: c.Documents, Created: c.Created.Unix(), Updated: c.Updated.Unix()}
}

func documentOut(d *guichet.Document) Document {
	m := d.Metadata
	if m == nil {
		m = map[string]any{}
	}
	return Document{Object: "document", ID: d.ID, Name: d.Name, CollectionID: d.CollectionID, Status: string(d.Status), Error: d.Error,
		Parser: d.Parser, Pages: d.Pages, Chunks: d.Chunks, Metadata: m, Created: d.Created.Unix(), Updated: d.Updated.Unix()}
}

func chunkOut(c *guichet.Chunk) Chunk {
	m := c.Metadata
	if m == nil {
		m = map[string]any{}
	}
	return Chunk{Object: "chunk", ID: c.ID, CollectionID: c.CollectionID, DocumentID: c.DocumentID, Content: c.Content, Metadata: m, Created: c.Created.Unix()}
}

func chunksOut(list []guichet.Chunk) []Chunk {
	out := make([]Chunk, len(list))
	for i := range list {
		out[i] = chunkOut(&list[i])
	}
	return out
}

func (s *Server) createCollection(w http.ResponseWriter, r *http.Request) {
	var req CollectionRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	c, gerr := s.rag.CreateCollection(r.Context(), principal(r), collectionSpec(req))
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	writeJSON(w, http.StatusCreated, s.collectionOut(r.Context(), c, map[int64]string{}))
}

func collectionSpec(req CollectionRequest) rag.CollectionSpec {
	spec := rag.CollectionSpec{Name: req.Name, Description: req.Description}
	if req.Visibility != nil {
		v := guichet.Visibility(*req.Visibility)
		spec.Visibility = &v
	}
	return spec
}

func (s *Server) listCollections(w http.ResponseWriter, r *http.Request) {
	p, gerr := parsePage(r, "id", "name", "created", "updated")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	q := r.URL.Query()
	f := guichet.CollectionFilter{Name: q.Get("name"), Visibility: guichet.Visibility(q.Get("visibility"))}
	if v := f.Visibility; v != "" && v != guichet.Private && v != guichet.Public {
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "visibility must be private or public, not %q", v).WithParam("visibility"))
		return
	}
	list, gerr := s.rag.Collections(r.Context(), principal(r), f, p)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	owners := map[int64]string{}
	out := make([]Collection, len(list))
	for i, c := range list {
		out[i] = s.collectionOut(r.Context(), c, owners)
	}
	writeJSON(w, http.StatusOK, listOf(out))
}

func (s *Server) getCollection(w http.ResponseWriter, r *http.Request) {
	id, gerr := pathID(r, "id")
	if gerr == nil {
		var c *guichet.Collection
		if c, gerr = s.rag.Collection(r.Context(), principal(r), id); gerr == nil {
			writeJSON(w, http.StatusOK, s.collectionOut(r.Context(), c, map[int64]string{}))
			return
		}
	}
	writeError(w, gerr)
}

func (s *Server) patchCollection(w http.ResponseWriter, r *http.Request) {
	id, gerr := pathID(r, "id")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	var req CollectionRequest
	if gerr := decodeBody(w, r, &req); gerr != nil {
		writeError(w, gerr)
		return
	}
	c, gerr := s.rag.UpdateCollection(r.Context(), principal(r), id, collectionSpec(req))
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	writeJSON(w, http.StatusOK, s.collectionOut(r.Context(), c, map[int64]string{}))
}

func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request) {
	id, gerr := pathID(r, "id")
	if gerr == nil {
		if gerr = s.rag.DeleteCollection(r.Context(), principal(r), id); gerr == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, gerr)
}

// multipartOverhead is room for the form fields beside the file.
const multipartOverhead = 1 << 20

func (s *Server) fileLimit() int64 { return int64(s.cfg.Server.MaxUploadBytes) }

func fileTooLarge(limit int64) *guichet.Error {
	return errorf(http.StatusRequestEntityTooLarge, "file_too_large", "File size limit exceeded (max: %d bytes): split the document, or ask your operator to raise server.max_upload_bytes", limit).WithParam("file")
}

// uploadDocument reads the multipart form as it streams in, so a file over
// the limit is refused without being held whole in memory.
func (s *Server) uploadDocument(w http.ResponseWriter, r *http.Request) {
	limit := s.fileLimit()
	if r.ContentLength > limit+multipartOverhead {
		writeError(w, fileTooLarge(limit))
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, errorf(http.StatusUnsupportedMediaType, "not_multipart", "send the document as multipart/form-data, with the file in the field \"file\" and collection_id"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+multipartOverhead)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, "invalid_multipart", "the multipart body could not be read: %v", err))
		return
	}
	fields := map[string]string{}
	var u rag.Upload
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, fileTooLarge(limit))
				return
			}
			writeError(w, errorf(http.StatusBadRequest, "invalid_multipart", "the multipart body could not be read: %v", err))
			return
		}
		name := part.FormName()
		if name == "file" {
			data, err := io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					writeError(w, fileTooLarge(limit))
					return
				}
				writeError(w, errorf(http.StatusBadRequest, "invalid_multipart", "the file could not be read: %v", err))
				return
			}
			if int64(len(data)) > limit {
				writeError(w, fileTooLarge(limit))
				return
			}
			if data == nil {
				data = []byte{}
			}
			u.Data, u.Name, u.ContentType = data, part.FileName(), part.Header.Get("Content-Type")
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 64<<10+1))
		if err != nil || len(v) > 64<<10 {
			writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "the form field %q must be at most 64 KiB", name).WithParam(name))
			return
		}
		fields[name] = string(v)
	}
	if gerr := uploadFields(fields, &u, r); gerr != nil {
		writeError(w, gerr)
		return
	}
	if u.Data != nil && len(u.Data) == 0 {
		writeError(w, errorf(http.StatusUnprocessableEntity, "empty_file", "the file is empty").WithParam("file"))
		return
	}
	ctx := r.Context()
	d, created, gerr := s.rag.Upload(ctx, principal(r), u)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	out := documentOut(d)
	switch {
	case !created:
		out.Duplicate = true
		writeJSON(w, http.StatusOK, out)
	case d.Status == guichet.DocumentQueued:
		w.Header().Set("Location", "/v1/documents/"+strconv.FormatInt(d.ID, 10))
		writeJSON(w, http.StatusAccepted, out)
	default:
		writeJSON(w, http.StatusCreated, out)
	}
}

// uploadFields reads the form fields of an upload into u.
func uploadFields(f map[string]string, u *rag.Upload, r *http.Request) *guichet.Error {
	known := map[string]bool{"collection_id": true, "collection": true, "name": true, "metadata": true, "chunk_size": true,
		"chunk_overlap": true, "chunk_min_size": true, "chunk_unit": true, "separators": true, "is_separator_regex": true,
		"preset_separators": true, "disable_chunking": true, "chunker": true, "wait": true, "length_function": true,
		"output_format": true, "force_ocr": true, "paginate_output": true, "page_range": true}
	for k := range f {
		if !known[k] {
			return errorf(http.StatusUnprocessableEntity, "unknown_field", "unknown form field %q: see /docs for POST /v1/documents", k).WithParam(k)
		}
	}
	intField := func(name string, dst *int) *guichet.Error {
		v := strings.TrimSpace(f[name])
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be a whole number, not %q", name, v).WithParam(name)
		}
		*dst = n
		return nil
	}
	boolField := func(name string, v string) (bool, *guichet.Error) {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "", "false", "0":
			return false, nil
		case "true", "1":
			return true, nil
		}
		return false, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be true or false, not %q", name, v).WithParam(name)
	}
	col := f["collection_id"]
	if col == "" {
		col = f["collection"]
	}
	id, err := strconv.ParseInt(strings.TrimSpace(col), 10, 64)
	if err != nil || id <= 0 {
		return errorf(http.StatusUnprocessableEntity, "missing_field", "collection_id is required: the id of one of your collections").WithParam("collection_id")
	}
	u.CollectionID, u.DocumentName = id, strings.TrimSpace(f["name"])
	if m := strings.TrimSpace(f["metadata"]); m != "" {
		dec := json.NewDecoder(strings.NewReader(m))
		if err := dec.Decode(&u.Metadata); err != nil || u.Metadata == nil || dec.More() {
			return errorf(http.StatusUnprocessableEntity, "invalid_value", "Invalid JSON string for metadata: it must be a JSON object, such as {\"source\": \"intranet\"}").WithParam("metadata")
		}
	}
	for _, g := range []struct {
		name string
		dst  *int
	}{{"chunk_size", &u.Chunking.Size}, {"chunk_overlap", &u.Chunking.Overlap}, {"chunk_min_size", &u.Chunking.MinSize}} {
		if gerr := intField(g.name, g.dst); gerr != nil {
			return gerr
		}
	}
	u.Chunking.Unit = chunk.Unit(strings.TrimSpace(f["chunk_unit"]))
	if lf := strings.TrimSpace(f["length_function"]); lf != "" && lf != "len" {
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "length_function must be len; to count tokens, set chunk_unit to tokens").WithParam("length_function")
	}
	if v := strings.TrimSpace(f["separators"]); v != "" && v != "[]" {
		if err := json.Unmarshal([]byte(v), &u.Chunking.Separators); err != nil {
			return errorf(http.StatusUnprocessableEntity, "invalid_value", "separators must be a JSON list of strings, such as [\"\\n\\n\", \"\\n\"]").WithParam("separators")
		}
	}
	var gerr *guichet.Error
	if u.Chunking.IsRegex, gerr = boolField("is_separator_regex", f["is_separator_regex"]); gerr != nil {
		return gerr
	}
	switch p := strings.TrimSpace(f["preset_separators"]); p {
	case "", chunk.PresetText, chunk.PresetMarkdown, chunk.PresetHTML:
		u.Chunking.Preset = p
	default:
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "preset_separators must be text, markdown or html, not %q", p).WithParam("preset_separators")
	}
	if u.DisableChunking, gerr = boolField("disable_chunking", f["disable_chunking"]); gerr != nil {
		return gerr
	}
	switch c := strings.TrimSpace(f["chunker"]); c {
	case "", "RecursiveCharacterTextSplitter", "LangchainRecursiveCharacterTextSplitter":
	case "NoSplitter":
		u.DisableChunking = true
	default:
		return errorf(http.StatusUnprocessableEntity, "invalid_value", "chunker must be RecursiveCharacterTextSplitter or NoSplitter, not %q", c).WithParam("chunker")
	}
	u.Wait = true // OpenGateLLM's behaviour
	wait := r.URL.Query().Get("wait")
	if v, ok := f["wait"]; ok {
		wait = v
	}
	if wait != "" {
		b, gerr := boolField("wait", wait)
		if gerr != nil {
			return gerr
		}
		u.Wait = b
	}
	return nil
}

func (s *Server) listDocuments(w http.ResponseWriter, r *http.Request) {
	p, gerr := parsePage(r, "id", "name", "created")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	q := r.URL.Query()
	name := "collection_id"
	if q.Get(name) == "" && q.Get("collection") != "" {
		name = "collection"
	}
	col, gerr := queryID(r, name)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	f := guichet.DocumentFilter{CollectionID: col, Name: q.Get("name"), Status: guichet.DocumentStatus(q.Get("status"))}
	switch f.Status {
	case "", guichet.DocumentQueued, guichet.DocumentProcessing, guichet.DocumentReady, guichet.DocumentFailed:
	default:
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "status must be queued, processing, ready or failed, not %q", f.Status).WithParam("status"))
		return
	}
	list, gerr := s.rag.Documents(r.Context(), principal(r), f, p)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	out := make([]Document, len(list))
	for i, d := range list {
		out[i] = documentOut(d)
	}
	writeJSON(w, http.StatusOK, listOf(out))
}

func (s *Server) getDocument(w http.ResponseWriter, r *http.Request) {
	id, gerr := pathID(r, "id")
	if gerr == nil {
		var d *guichet.Document
		if d, gerr = s.rag.Document(r.Context(), principal(r), id); gerr == nil {
			writeJSON(w, http.StatusOK, documentOut(d))
			return
		}
	}
	writeError(w, gerr)
}

func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request) {
	id, gerr := pathID(r, "id")
	if gerr == nil {
		if gerr = s.rag.DeleteDocument(r.Context(), principal(r), id); gerr == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, gerr)
}

func (s *Server) addChunks(w http.ResponseWriter, r *http.Request) {
	id, gerr := pathID(r, "id")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	var req ChunksRequest
	if gerr := decodeBodyLimit(w, r, &req, 2*rag.MaxChunksPerCall*rag.MaxChunkContent); gerr != nil {
		writeError(w, gerr)
		return
	}
	in := make([]rag.NewChunk, len(req.Chunks))
	for i, c := range req.Chunks {
		in[i] = rag.NewChunk{Content: c.Content, Metadata: c.Metadata}
	}
	list, gerr := s.rag.AddChunks(r.Context(), principal(r), id, in)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	writeJSON(w, http.StatusCreated, listOf(chunksOut(list)))
}

func (s *Server) listChunks(document string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, gerr := pathID(r, document)
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		p, gerr := parsePage(r, "id")
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		list, gerr := s.rag.Chunks(r.Context(), principal(r), id, p.Offset, p.Limit)
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		writeJSON(w, http.StatusOK, listOf(chunksOut(list)))
	}
}

func (s *Server) getChunk(document string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, gerr := pathID(r, document)
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		id, gerr := pathID(r, "chunk_id")
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		c, gerr := s.rag.Chunk(r.Context(), principal(r), doc, id)
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		writeJSON(w, http.StatusOK, chunkOut(c))
	}
}

func (s *Server) deleteChunk(w http.ResponseWriter, r *http.Request) {
	doc, gerr := pathID(r, "id")
	if gerr == nil {
		var id int64
		if id, gerr = pathID(r, "chunk_id"); gerr == nil {
			if gerr = s.rag.DeleteChunk(r.Context(), principal(r), doc, id); gerr == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
	}
	writeError(w, gerr)
}

// maxSearchBody bounds POST /v1/search.
const maxSearchBody = 256 << 10

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	var req SearchRequest
	if gerr := decodeBodyLimit(w, r, &req, maxSearchBody); gerr != nil {
		writeError(w, gerr)
		return
	}
	q, gerr := req.query()
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	res, gerr := s.rag.Search(r.Context(), principal(r), q)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	writeJSON(w, http.StatusOK, SearchResponse{Object: "list", Data: hitsOut(res.Hits),
		Usage: RerankUsage{PromptTokens: res.InputTokens, TotalTokens: res.InputTokens}})
}

func hitsOut(hits []guichet.SearchHit) []SearchHit {
	out := make([]SearchHit, len(hits))
	for i := range hits {
		out[i] = SearchHit{Object: "search", Method: string(hits[i].Method), Score: hits[i].Score, Chunk: chunkOut(&hits[i].Chunk)}
	}
	return out
}

// query maps the request, old names included, to a rag.Query.
func (req *SearchRequest) query() (rag.Query, *guichet.Error) {
	if req.WebSearch {
		return rag.Query{}, errorf(http.StatusUnprocessableEntity, "unsupported", "web_search is not supported: data stays on the operator's machines").WithParam("web_search")
	}
	q := rag.Query{Text: req.Query, CollectionIDs: req.CollectionIDs, DocumentIDs: req.DocumentIDs, Filter: req.MetadataFilters.toIndex(),
		Limit: req.Limit, Offset: req.Offset, Method: guichet.SearchMethod(req.Method), RRFK: req.RRFK, ScoreThreshold: req.ScoreThreshold}
	if q.Text == "" {
		q.Text = req.Prompt
	}
	if len(q.CollectionIDs) == 0 {
		q.CollectionIDs = req.Collections
	}
	if q.Limit == 0 {
		q.Limit = req.K
	}
	return q, nil
}
