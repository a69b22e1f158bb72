package httpapi

import (
	"net/http"

	"github.com/guichet/guichet"
)

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
	private("GET /metrics", require(guichet.PermReadMetric, s.metrics.Handler()))

	private("GET /v1/models", http.HandlerFunc(s.handleModels))
	private("GET /v1/models/{model...}", http.HandlerFunc(s.handleModel))
	private("POST /v1/chat/completions", s.handleChat())
	private("POST /v1/completions", s.handleCompletions())
	private("POST /v1/embeddings", s.handleEmbeddings())
	private("POST /v1/rerank", s.handleRerank())
	private("POST /v1/audio/transcriptions", s.handleTranscription())

	ragRoute := func(pattern string, h http.HandlerFunc) {
		private(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.rag == nil {
				writeError(w, errorf(http.StatusNotFound, "rag_disabled", "collections, documents and search are not enabled on this server"))
				return
			}
			h(w, r)
		}))
	}
	ragRoute("POST /v1/collections", s.createCollection)
	ragRoute("GET /v1/collections", s.listCollections)
	ragRoute("GET /v1/collections/{id}", s.getCollection)
	ragRoute("PATCH /v1/collections/{id}", s.patchCollection)
	ragRoute("DELETE /v1/collections/{id}", s.deleteCollection)
	ragRoute("POST /v1/documents", s.uploadDocument)
	ragRoute("GET /v1/documents", s.listDocuments)
	ragRoute("GET /v1/documents/{id}", s.getDocument)
	ragRoute("DELETE /v1/documents/{id}", s.deleteDocument)
	ragRoute("POST /v1/documents/{id}/chunks", s.addChunks)
	ragRoute("GET /v1/documents/{id}/chunks", s.listChunks("id"))
	ragRoute("GET /v1/documents/{id}/chunks/{chunk_id}", s.getChunk("id"))
	ragRoute("DELETE /v1/documents/{id}/chunks/{chunk_id}", s.deleteChunk)
	ragRoute("GET /v1/chunks/{document}", s.listChunks("document"))
	ragRoute("GET /v1/chunks/{document}/{chunk_id}", s.getChunk("document"))
	ragRoute("POST /v1/search", s.search)

	private("GET /v1/me/info", http.HandlerFunc(s.meInfo))
	private("PATCH /v1/me/info", http.HandlerFunc(s.patchMe))
	private("POST /v1/me/keys", http.HandlerFunc(s.createMyKey))
	private("GET /v1/me/keys", http.HandlerFunc(s.listMyKeys))
	private("GET /v1/me/keys/{id}", http.HandlerFunc(s.getMyKey))
	private("DELETE /v1/me/keys/{id}", http.HandlerFunc(s.deleteMyKey))
	private("GET /v1/me/usage", http.HandlerFunc(s.meUsage))
	private("GET /v1/usage", http.HandlerFunc(s.legacyUsage))
	private("GET /v1/me/usage/daily", s.usageDaily(false))

	admin := func(pattern string, h http.HandlerFunc) { private(pattern, require(guichet.PermAdmin, h)) }
	admin("GET /v1/admin/usage", s.adminUsage)
	admin("GET /v1/admin/usage/daily", s.usageDaily(true))
	admin("GET /v1/admin/scheduler", s.schedulerView)
	admin("POST /v1/admin/organizations", s.createOrganization)
	admin("GET /v1/admin/organizations", s.listOrganizations)
	admin("GET /v1/admin/organizations/{id}", s.getOrganization)
	admin("PATCH /v1/admin/organizations/{id}", s.patchOrganization)
	admin("DELETE /v1/admin/organizations/{id}", s.deleteByID("organization", "organization %d still has users: move them to another organization (or none) first", s.store.DeleteOrganization))
	admin("POST /v1/admin/roles", s.createRole)
	admin("GET /v1/admin/roles", s.listRoles)
	admin("GET /v1/admin/roles/{id}", s.getRole)
	admin("PATCH /v1/admin/roles/{id}", s.patchRole)
	admin("DELETE /v1/admin/roles/{id}", s.deleteByID("role", "role %d is still given to users: give them another role first", s.store.DeleteRole))
	admin("POST /v1/admin/users", s.createUser)
	admin("GET /v1/admin/users", s.listUsers)
	admin("GET /v1/admin/users/{id}", s.getUser)
	admin("PATCH /v1/admin/users/{id}", s.patchUser)
	admin("DELETE /v1/admin/users/{id}", s.deleteByID("user", "", s.store.DeleteUser))
	admin("POST /v1/admin/tokens", s.createToken)
	admin("GET /v1/admin/tokens", s.listTokens)
	admin("GET /v1/admin/tokens/{id}", s.getToken)
	admin("PATCH /v1/admin/tokens/{id}", s.patchToken)
	admin("DELETE /v1/admin/tokens/{id}", s.deleteByID("token", "", s.store.DeleteKey))

	mux.Handle("/", s.authenticate(http.HandlerFunc(notFound)))
	var h http.Handler = mux
	if s.tracing {
		h = s.traced(h)
	}
	return s.requestID(s.recoverPanics(h))
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, errorf(http.StatusNotFound, "not_found", "no endpoint %s %s: see /docs for the API", r.Method, r.URL.Path))
}
