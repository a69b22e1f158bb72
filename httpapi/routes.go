package httpapi

import "net/http"

// routes is the one list of guichet's endpoints.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	public := func(pattern string, h http.Handler) { mux.Handle(pattern, h) }
	private := func(pattern string, h http.Handler) { mux.Handle(pattern, s.authenticate(h)) }

	public("GET /health", http.HandlerFunc(s.handleHealth))
	public("GET /ready", http.HandlerFunc(s.handleReady))
	public("GET /openapi.json", s.handleOpenAPI())
	public("GET /docs", handleDocs())
	public("GET /docs/", handleDocs())
	private("GET /metrics", s.metrics.Handler())

	private("GET /v1/models", http.HandlerFunc(s.handleModels))
	private("GET /v1/models/{model...}", http.HandlerFunc(s.handleModel))
	private("POST /v1/chat/completions", s.handleChat())
	private("POST /v1/completions", s.handleCompletions())
	private("POST /v1/embeddings", s.handleEmbeddings())
	private("POST /v1/rerank", s.handleRerank())
	private("POST /v1/audio/transcriptions", s.handleTranscription())

	mux.Handle("/", s.authenticate(http.HandlerFunc(notFound)))
	return s.requestID(s.recoverPanics(mux))
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, errorf(http.StatusNotFound, "not_found", "no endpoint %s %s: see /docs for the API", r.Method, r.URL.Path))
}
