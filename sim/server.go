// Package sim is guichet-sim: a simulator of the GPU model servers guichet
// talks to (vLLM's OpenAI-compatible server and HuggingFace TEI), for tests,
// demos and benchmarks. It speaks their wire formats faithfully but is never
// presented as a model: every generated text says it is simulated.
//
// One Server answers, on one address:
//
//   - vLLM: GET /v1/models, POST /v1/chat/completions, /v1/completions,
//     /v1/embeddings, /v1/rerank (also /rerank, /v2/rerank),
//     /v1/audio/transcriptions, GET /health, /version, /metrics;
//   - TEI: GET /info, POST /embed, and POST /rerank with a "texts" body;
//   - control, for tests: GET /sim/stats, GET and PUT /sim/faults,
//     GET /sim/last-request.
//
// Token counts follow CountTokens, so tests can predict usage exactly.
// Inference requests wait for a slot (MaxConcurrency, FIFO unless
// PriorityScheduling) before their time to first token, and faults can be
// injected per request (Faults).
//
// A replica can also be made to behave like a GPU, for scheduling and
// routing benchmarks; all of this is off by default:
//
//   - batch-dependent decoding (ITLPerRunning): each token of every
//     running sequence takes ITL + ITLPerRunning × (running − 1), the
//     running count read at every token step, so streams slow down as the
//     batch grows and speed up as it shrinks;
//   - prefill cost (PrefillPerToken) for every prompt token not found in
//     the replica's prefix cache (PrefixCacheBlocks blocks of BlockTokens
//     tokens, chained block hashes and LRU eviction like vLLM's automatic
//     prefix caching; see prefix.go), reported as vLLM does in /metrics
//     (vllm:prefix_cache_queries_total, vllm:prefix_cache_hits_total), in
//     usage.prompt_tokens_details.cached_tokens, and in /sim/stats;
//   - vLLM's priority scheduling (PriorityScheduling): the waiting queue
//     is ordered by the request's "priority" (lower first, then arrival);
//     without it, like vLLM with --scheduling-policy fcfs, a non-zero
//     priority is refused with a 400.
package sim

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the simulated server. New fills in defaults.
type Config struct {
	Models         []string      // served model names; default {"sim-model"}
	MaxModelLen    int           // default 4096; reported as max_model_len and TEI max_input_length
	TTFT           time.Duration // time to first token (after a slot is acquired)
	ITL            time.Duration // inter-token latency
	OutputTokens   int           // default 16
	OutputMode     string        // "fixed" (default) | "random" | "max_tokens"
	Content        string        // "lorem" (default) | "echo"
	EmbeddingDim   int           // default 384
	MaxConcurrency int           // max sequences running at once; 0 = unlimited
	MaxQueue       int           // 0 = unbounded waiting queue; when full answer 503
	Faults         Faults
	Seed           int64

	// GPU-like behaviour, all off by default.

	// ITLPerRunning is added to ITL for every other sequence running at
	// the moment of each token step.
	ITLPerRunning time.Duration
	// PrefillPerToken is added to TTFT for every prompt token not found in
	// the prefix cache (every prompt token when the cache is off).
	PrefillPerToken time.Duration
	// PrefixCacheBlocks bounds the prefix cache, in blocks; 0 = no cache.
	PrefixCacheBlocks int
	// BlockTokens is the prefix cache's block size, in tokens; default 16.
	BlockTokens int
	// PriorityScheduling orders the waiting queue by the requests'
	// priority field (vLLM's --scheduling-policy priority); otherwise a
	// non-zero priority is refused (fcfs).
	PriorityScheduling bool
}

// Stats counts inference requests (not control, health or metrics calls).
type Stats struct {
	Requests  int64 `json:"requests"` // inference requests received
	Running   int64 `json:"running"`
	Waiting   int64 `json:"waiting"`
	Completed int64 `json:"completed"`
	Cancelled int64 `json:"cancelled"` // the client went away before the answer was complete
	Failed    int64 `json:"failed"`    // injected faults and errors

	// Prompt tokens looked up in the prefix cache, and those found there
	// (both 0 when the cache is off).
	PrefixCacheQueries int64 `json:"prefix_cache_queries"`
	PrefixCacheHits    int64 `json:"prefix_cache_hits"`
}

const (
	maxBodyBytes   = 32 << 20
	maxRecordBytes = 1 << 20
	imageTokens    = 64
	maxChoices     = 128 // bounds n (and prompts×n) so no request can exhaust memory
)

// modelCounters feed /metrics, one set per served name.
type modelCounters struct {
	name       string
	quoted     []byte // JSON string, ready to append
	running    atomic.Int64
	waiting    atomic.Int64
	promptToks atomic.Int64
	genToks    atomic.Int64
	okStop     atomic.Int64
	okLength   atomic.Int64

	cacheQueries, cacheHits atomic.Int64 // prefix cache, in tokens
}

// Server is an http.Handler simulating vLLM and TEI.
type Server struct {
	cfg     Config
	models  []*modelCounters
	byName  map[string]*modelCounters
	created int64

	faults atomic.Pointer[Faults]
	rngMu  sync.Mutex
	rng    *mrand.Rand // faults and random output lengths: deterministic per Seed

	idSalt    uint64
	idCounter atomic.Uint64

	requests, completed, cancelled, failed atomic.Int64
	running, waiting                       atomic.Int64
	sched                                  scheduler
	cache                                  *prefixCache // nil when off
	cacheQueries, cacheHits                atomic.Int64

	last atomic.Pointer[lastRequest]
}

// New returns a simulator for cfg, with defaults applied.
func New(cfg Config) *Server {
	var names []string
	for _, m := range cfg.Models {
		if m = strings.TrimSpace(m); m != "" {
			names = append(names, m)
		}
	}
	if len(names) == 0 {
		names = []string{"sim-model"}
	}
	cfg.Models = names
	if cfg.MaxModelLen <= 0 {
		cfg.MaxModelLen = 4096
	}
	if cfg.OutputTokens <= 0 {
		cfg.OutputTokens = 16
	}
	switch cfg.OutputMode {
	case "fixed", "random", "max_tokens":
	default:
		cfg.OutputMode = "fixed"
	}
	switch cfg.Content {
	case "lorem", "echo":
	default:
		cfg.Content = "lorem"
	}
	if cfg.EmbeddingDim <= 0 {
		cfg.EmbeddingDim = 384
	}
	cfg.TTFT = max(cfg.TTFT, 0)
	cfg.ITL = max(cfg.ITL, 0)
	cfg.MaxConcurrency = max(cfg.MaxConcurrency, 0)
	cfg.MaxQueue = max(cfg.MaxQueue, 0)
	cfg.ITLPerRunning = max(cfg.ITLPerRunning, 0)
	cfg.PrefillPerToken = max(cfg.PrefillPerToken, 0)
	cfg.PrefixCacheBlocks = max(cfg.PrefixCacheBlocks, 0)
	if cfg.BlockTokens <= 0 {
		cfg.BlockTokens = 16
	}

	var salt [8]byte
	_, _ = rand.Read(salt[:])
	s := &Server{
		cfg:     cfg,
		byName:  make(map[string]*modelCounters, len(names)),
		created: time.Now().Unix(),
		rng:     mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x67756963686574)),
		idSalt:  binary.LittleEndian.Uint64(salt[:]),
	}
	for _, n := range names {
		if s.byName[n] != nil {
			continue
		}
		m := &modelCounters{name: n, quoted: appendJSONString(nil, n)}
		s.models = append(s.models, m)
		s.byName[n] = m
	}
	s.sched.init(s, cfg.MaxConcurrency, cfg.MaxQueue)
	if cfg.PrefixCacheBlocks > 0 {
		s.cache = newPrefixCache(cfg.PrefixCacheBlocks)
	}
	s.SetFaults(cfg.Faults)
	return s
}

// Stats returns a snapshot of the request counters.
func (s *Server) Stats() Stats {
	return Stats{
		Requests:  s.requests.Load(),
		Running:   s.running.Load(),
		Waiting:   s.waiting.Load(),
		Completed: s.completed.Load(),
		Cancelled: s.cancelled.Load(),
		Failed:    s.failed.Load(),

		PrefixCacheQueries: s.cacheQueries.Load(),
		PrefixCacheHits:    s.cacheHits.Load(),
	}
}

// outcome is how an inference request ended, for Stats.
type outcome int

const (
	outCompleted outcome = iota
	outCancelled
	outFailed
	outCut // failed, and the connection must be dropped without more bytes
)

// respWriter remembers whether the response has started, so that a panic
// can still be answered with a 500 when nothing was sent yet.
type respWriter struct {
	http.ResponseWriter
	started bool
}

func (w *respWriter) WriteHeader(code int) {
	w.started = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

func (w *respWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.started = true
		f.Flush()
	}
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP routes to the simulated endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; p {
	case "/v1/chat/completions":
		s.inference(w, r, "POST", s.chat)
	case "/v1/completions":
		s.inference(w, r, "POST", s.completions)
	case "/v1/embeddings":
		s.inference(w, r, "POST", s.embeddings)
	case "/v1/rerank", "/rerank", "/v2/rerank":
		s.inference(w, r, "POST", s.rerank)
	case "/embed":
		s.inference(w, r, "POST", s.teiEmbed)
	case "/v1/audio/transcriptions":
		s.inference(w, r, "POST", s.transcription)
	case "/v1/models":
		s.control(w, r, "GET", s.listModels)
	case "/health":
		s.control(w, r, "GET", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	case "/version":
		s.control(w, r, "GET", func(w http.ResponseWriter, _ *http.Request) {
			writeJSONBytes(w, http.StatusOK, []byte(`{"version":"guichet-sim"}`))
		})
	case "/info":
		s.control(w, r, "GET", s.teiInfo)
	case "/metrics":
		s.control(w, r, "GET", s.metrics)
	case "/sim/stats":
		s.control(w, r, "GET", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	case "/sim/faults":
		switch r.Method {
		case http.MethodPut:
			s.control(w, r, "PUT", s.putFaults)
		case http.MethodGet, http.MethodHead:
			s.control(w, r, "GET", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.faults.Load()) })
		default:
			w.Header().Set("Allow", "GET, PUT")
			writeJSONBytes(w, http.StatusMethodNotAllowed, []byte(`{"detail":"Method Not Allowed"}`))
		}
	case "/sim/last-request":
		s.control(w, r, "GET", s.lastRequest)
	default:
		// FastAPI's answer for unknown routes, as vLLM gives it.
		writeJSONBytes(w, http.StatusNotFound, []byte(`{"detail":"Not Found"}`))
	}
}

// control serves a non-inference endpoint.
func (s *Server) control(w http.ResponseWriter, r *http.Request, method string, h http.HandlerFunc) {
	if r.Method != method && !(method == "GET" && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		writeJSONBytes(w, http.StatusMethodNotAllowed, []byte(`{"detail":"Method Not Allowed"}`))
		return
	}
	rw := &respWriter{ResponseWriter: w}
	defer s.recoverTo(rw, nil)
	h(rw, r)
}

type inferenceHandler func(w *respWriter, r *http.Request, body []byte) outcome

// inference runs one inference request and accounts for how it ended.
func (s *Server) inference(w http.ResponseWriter, r *http.Request, method string, h inferenceHandler) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeJSONBytes(w, http.StatusMethodNotAllowed, []byte(`{"detail":"Method Not Allowed"}`))
		return
	}
	s.requests.Add(1)
	rw := &respWriter{ResponseWriter: w}
	counted := false
	defer s.recoverTo(rw, &counted)

	var body []byte
	multipart := strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/")
	if r.ContentLength > maxBodyBytes {
		s.count(outFailed, &counted)
		writeError(rw, http.StatusRequestEntityTooLarge, "request body exceeds 32 MiB")
		return
	}
	r.Body = http.MaxBytesReader(w, s.slowBody(r), maxBodyBytes)
	if !multipart {
		var err error
		if body, err = readBody(r); err != nil {
			switch _, tooBig := errors.AsType[*http.MaxBytesError](err); {
			case tooBig:
				s.count(outFailed, &counted)
				writeError(rw, http.StatusRequestEntityTooLarge, "request body exceeds 32 MiB")
			case r.Context().Err() != nil || errors.Is(err, io.ErrUnexpectedEOF):
				s.count(outCancelled, &counted) // the client stopped sending
			default:
				s.count(outFailed, &counted)
				writeError(rw, http.StatusBadRequest, "cannot read the request body: "+err.Error())
			}
			return
		}
	}
	s.record(r, body, multipart)

	out := h(rw, r, body)
	s.count(out, &counted)
	if out == outCut {
		panic(http.ErrAbortHandler) // net/http drops the connection without finishing the response
	}
}

func (s *Server) count(out outcome, counted *bool) {
	*counted = true
	switch out {
	case outCompleted:
		s.completed.Add(1)
	case outCancelled:
		s.cancelled.Add(1)
	default:
		s.failed.Add(1)
	}
}

// recoverTo keeps panics from reaching clients: nothing sent yet → 500,
// otherwise the connection is dropped. A request not yet counted counts as
// failed.
func (s *Server) recoverTo(w *respWriter, counted *bool) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	if counted != nil && !*counted {
		s.count(outFailed, counted)
	}
	if w.started {
		panic(http.ErrAbortHandler)
	}
	writeErrorType(w, http.StatusInternalServerError, "InternalServerError", "guichet-sim internal error")
}

func readBody(r *http.Request) ([]byte, error) {
	size := r.ContentLength
	if size < 0 || size > maxRecordBytes {
		size = 512
	}
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// --- errors and JSON helpers ---

func errorTypeFor(status int) string {
	switch status {
	case 400:
		return "BadRequestError"
	case 401:
		return "AuthenticationError"
	case 403:
		return "PermissionDeniedError"
	case 404:
		return "NotFoundError"
	case 413:
		return "RequestTooLargeError"
	case 422:
		return "UnprocessableEntityError"
	case 429:
		return "RateLimitError"
	case 503:
		return "ServiceUnavailableError"
	}
	if status >= 500 {
		return "InternalServerError"
	}
	return "BadRequestError"
}

// writeError answers in vLLM's error format.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorType(w, status, errorTypeFor(status), msg)
}

func writeErrorType(w http.ResponseWriter, status int, typ, msg string) {
	b := make([]byte, 0, 96+len(msg))
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"param":null,"code":`...)
	b = appendInt(b, status)
	b = append(b, "}}"...)
	writeJSONBytes(w, status, b)
}

// apiError is a client error found while validating a request.
type apiError struct {
	status int
	msg    string
}

func badRequest(msg string) *apiError { return &apiError{http.StatusBadRequest, msg} }

func (s *Server) unknownModel(name string) *apiError {
	return &apiError{http.StatusNotFound, "The model `" + name + "` does not exist."}
}

// model resolves a requested name; vLLM serves its first name when the
// request names none.
func (s *Server) model(name string) (*modelCounters, *apiError) {
	if name == "" {
		return s.models[0], nil
	}
	if m := s.byName[name]; m != nil {
		return m, nil
	}
	return nil, s.unknownModel(name)
}

func contextError(maxLen, prompt int) *apiError {
	return badRequest("This model's maximum context length is " + itoa(maxLen) +
		" tokens. However, your request has " + itoa(prompt) +
		" input tokens. Please reduce the length of the input messages.")
}

func itoa(v int) string { return string(appendInt(nil, v)) }

// jsonContentType is shared by every response: net/http only reads it.
var jsonContentType = []string{"application/json"}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeErrorType(w, 500, "InternalServerError", err.Error())
		return
	}
	writeJSONBytes(w, status, b)
}

// decodeJSON unmarshals a request body, saying what is wrong in a way a
// client can act on.
func decodeJSON(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badRequest("invalid type for field `" + te.Field + "`: expected " + te.Type.String() + ", got JSON " + te.Value)
		}
		return badRequest("invalid JSON body: " + err.Error())
	}
	return nil
}

// --- simple endpoints ---

func (s *Server) listModels(w http.ResponseWriter, _ *http.Request) {
	b := make([]byte, 0, 256)
	b = append(b, `{"object":"list","data":[`...)
	for i, m := range s.models {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = append(b, m.quoted...)
		b = append(b, `,"object":"model","created":`...)
		b = appendInt(b, int(s.created))
		b = append(b, `,"owned_by":"guichet-sim","root":`...)
		b = append(b, m.quoted...)
		b = append(b, `,"parent":null,"max_model_len":`...)
		b = appendInt(b, s.cfg.MaxModelLen)
		b = append(b, `,"permission":[]}`...)
	}
	b = append(b, "]}"...)
	writeJSONBytes(w, http.StatusOK, b)
}

func (s *Server) teiInfo(w http.ResponseWriter, _ *http.Request) {
	b := make([]byte, 0, 320)
	b = append(b, `{"model_id":`...)
	b = append(b, s.models[0].quoted...)
	b = append(b, `,"model_sha":null,"model_dtype":"float32","model_type":{"embedding":{"pooling":"mean"}},"max_concurrent_requests":512,"max_input_length":`...)
	b = appendInt(b, s.cfg.MaxModelLen)
	b = append(b, `,"max_batch_tokens":16384,"max_client_batch_size":32,"tokenization_workers":1,"version":"guichet-sim"}`...)
	writeJSONBytes(w, http.StatusOK, b)
}

// --- last request, for tests ---

type lastRequest struct {
	path   string
	header http.Header // the request's own map: never mutated after arrival
	body   []byte
}

func (s *Server) record(r *http.Request, body []byte, multipart bool) {
	lr := &lastRequest{path: r.URL.Path, header: r.Header}
	if !multipart && len(body) < maxRecordBytes {
		lr.body = body
	}
	s.last.Store(lr)
}

func (s *Server) lastRequest(w http.ResponseWriter, _ *http.Request) {
	lr := s.last.Load()
	if lr == nil {
		writeError(w, http.StatusNotFound, "guichet-sim has received no inference request yet")
		return
	}
	headers := make(map[string]string, len(lr.header))
	for k, v := range lr.header {
		headers[k] = strings.Join(v, ", ")
	}
	writeJSON(w, http.StatusOK, struct {
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}{lr.path, headers, string(lr.body)})
}

// clamp01 keeps a rate within [0,1] (NaN counts as 0).
func clamp01(v float64) float64 {
	if !(v > 0) {
		return 0
	}
	return math.Min(v, 1)
}
