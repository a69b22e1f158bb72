package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/version"
)

// The request types below document the bodies in /openapi.json. Requests
// are validated by package openai, which forwards every field it does not
// know byte for byte: these schemas accept additional properties.

// ChatCompletionRequest documents POST /v1/chat/completions.
type ChatCompletionRequest struct {
	Model               string               `json:"model" doc:"Name or alias of a model of type text-generation or image-text-to-text."`
	Messages            []openai.ChatMessage `json:"messages" minItems:"1"`
	Stream              bool                 `json:"stream,omitempty" doc:"Stream the answer as server-sent events; the stream always ends with a usage chunk, then data: [DONE]."`
	StreamOptions       *StreamOptions       `json:"stream_options,omitempty"`
	MaxTokens           *int                 `json:"max_tokens,omitempty" minimum:"1"`
	MaxCompletionTokens *int                 `json:"max_completion_tokens,omitempty" minimum:"1"`
	N                   *int                 `json:"n,omitempty" minimum:"1" maximum:"128"`
	Temperature         *float64             `json:"temperature,omitempty" minimum:"0" maximum:"2"`
	TopP                *float64             `json:"top_p,omitempty" minimum:"0" maximum:"1"`
	Stop                json.RawMessage      `json:"stop,omitempty" doc:"A string or a list of strings."`
	Tools               []json.RawMessage    `json:"tools,omitempty" doc:"Function tools: {type: function, function: {name, description, parameters}}; and at most one {type: search} tool (the fields of POST /v1/search without query): guichet searches with the last user message, puts the passages in it, and returns them as search_results."`
	Search              *bool                `json:"search,omitempty" doc:"Deprecated (OpenGateLLM): true searches with search_args; prefer the search tool."`
	SearchArgs          *SearchRequest       `json:"search_args,omitempty" doc:"Deprecated (OpenGateLLM): {collections, k, method, rff_k, score_threshold}."`
	ToolChoice          json.RawMessage      `json:"tool_choice,omitempty"`
	ResponseFormat      json.RawMessage      `json:"response_format,omitempty" doc:"{type: text | json_object | json_schema}."`
}

// StreamOptions of a streamed request.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage,omitempty" doc:"guichet always sends the usage chunk; this is accepted for compatibility."`
}

// CompletionRequest documents POST /v1/completions.
type CompletionRequest struct {
	Model       string          `json:"model"`
	Prompt      json.RawMessage `json:"prompt" doc:"A string, a list of strings, token ids, or a list of lists of token ids."`
	Stream      bool            `json:"stream,omitempty"`
	MaxTokens   *int            `json:"max_tokens,omitempty" minimum:"1"`
	Temperature *float64        `json:"temperature,omitempty" minimum:"0" maximum:"2"`
}

// EmbeddingRequest documents POST /v1/embeddings.
type EmbeddingRequest struct {
	Model          string          `json:"model" doc:"A text-embeddings-inference model."`
	Input          json.RawMessage `json:"input" doc:"A string, a list of strings, token ids, or a list of lists of token ids."`
	EncodingFormat string          `json:"encoding_format,omitempty" enum:"float,base64"`
	Dimensions     *int            `json:"dimensions,omitempty" minimum:"1"`
}

// RerankRequest documents POST /v1/rerank (Cohere shape; OpenGateLLM's
// legacy {prompt, input} is accepted too).
type RerankRequest struct {
	Model     string   `json:"model" doc:"A text-classification model."`
	Query     string   `json:"query"`
	Documents []string `json:"documents" minItems:"1"`
	TopN      *int     `json:"top_n,omitempty" minimum:"1"`
}

// TranscriptionForm documents POST /v1/audio/transcriptions.
type TranscriptionForm struct {
	File           []byte   `json:"file" contentEncoding:"binary" doc:"The audio file."`
	Model          string   `json:"model"`
	Language       string   `json:"language,omitempty"`
	Prompt         string   `json:"prompt,omitempty"`
	ResponseFormat string   `json:"response_format,omitempty" enum:"json,text,verbose_json,srt,vtt"`
	Temperature    *float64 `json:"temperature,omitempty" minimum:"0" maximum:"1"`
}

// anyJSON is an opaque upstream answer (passed through as is).
type anyJSON map[string]any

type operation struct {
	method, path, summary, tag string
	request                    any    // nil: no body
	requestType                string // default application/json
	response                   any
	responseTypes              []string
	public                     bool
	status                     int      // success status; default 200
	query                      []string // query parameters
	permission                 string   // the permission the endpoint needs, if any
}

var operations = []operation{
	{method: "GET", path: "/health", summary: "Liveness: 200 while the process serves.", tag: "health", public: true},
	{method: "GET", path: "/ready", summary: "Readiness: healthy providers of each model (503 when no model can serve).", tag: "health", response: Readiness{}, public: true},
	{method: "GET", path: "/metrics", summary: "Prometheus metrics.", tag: "health", responseTypes: []string{"text/plain"}},
	{method: "GET", path: "/v1/models", summary: "List the models and their aliases.", tag: "models", response: ModelList{}},
	{method: "GET", path: "/v1/models/{model}", summary: "One model, by name or alias (which may contain /).", tag: "models", response: Model{}},
	{method: "POST", path: "/v1/chat/completions", summary: "Chat completion, streamed or not; unknown fields are forwarded to the model server unchanged.", tag: "inference", request: ChatCompletionRequest{}, response: anyJSON{}, responseTypes: []string{"application/json", "text/event-stream"}},
	{method: "POST", path: "/v1/completions", summary: "Text completion (legacy), streamed or not.", tag: "inference", request: CompletionRequest{}, response: anyJSON{}, responseTypes: []string{"application/json", "text/event-stream"}},
	{method: "POST", path: "/v1/embeddings", summary: "Embeddings, as float lists or base64.", tag: "inference", request: EmbeddingRequest{}, response: anyJSON{}},
	{method: "POST", path: "/v1/rerank", summary: "Rank documents against a query.", tag: "inference", request: RerankRequest{}, response: RerankResponse{}},
	{method: "POST", path: "/v1/audio/transcriptions", summary: "Transcribe an audio file.", tag: "inference", request: TranscriptionForm{}, requestType: "multipart/form-data", response: anyJSON{}, responseTypes: []string{"application/json", "text/plain"}},

	{method: "GET", path: "/v1/me/info", summary: "Who you are: your role's permissions and limits, your budget.", tag: "me", response: UserInfo{}},
	{method: "PATCH", path: "/v1/me/info", summary: "Change your name or email.", tag: "me", request: MeRequest{}, response: UserInfo{}},
	{method: "POST", path: "/v1/me/keys", summary: "Create an API key for yourself; the key is shown once.", tag: "me", request: TokenRequest{}, response: CreatedToken{}, status: 201},
	{method: "GET", path: "/v1/me/keys", summary: "Your API keys (prefixes only).", tag: "me", response: List[Key]{}, query: pageQuery},
	{method: "GET", path: "/v1/me/keys/{id}", summary: "One of your API keys.", tag: "me", response: Key{}},
	{method: "GET", path: "/v1/me/usage", summary: "Your usage ledger, newest first: tokens, cost, carbon and timings of each request.", tag: "me", response: MeUsageList{}, query: []string{"offset", "limit", "start_time", "end_time", "endpoint", "format"}, responseTypes: []string{"application/json", "text/csv"}},
	{method: "GET", path: "/v1/usage", summary: "Your usage, in OpenGateLLM's July 2025 shape (page, order_by, date range, totals).", tag: "me", response: LegacyUsageList{}, query: []string{"limit", "page", "order_by", "order_direction", "date_from", "date_to"}},
	{method: "GET", path: "/v1/me/usage/daily", summary: "Your usage summed by day and model.", tag: "me", response: UsageDayList{}, query: []string{"start_time", "end_time", "endpoint"}},
	{method: "GET", path: "/v1/admin/usage/daily", summary: "Everyone's usage summed by day, organization, user and model.", tag: "admin", response: UsageDayList{}, query: []string{"user", "organization", "start_time", "end_time", "endpoint"}, permission: "admin"},
	{method: "GET", path: "/v1/admin/scheduler", summary: "Each model's fair queue: capacity, running and queued requests by class, tenants with their weight, virtual tokens and tokens served, refusals.", tag: "admin", response: SchedulerView{}, permission: "admin"},
	{method: "GET", path: "/v1/admin/usage", summary: "Every user's usage ledger, with totals; format=csv exports it.", tag: "admin", response: AdminUsageList{}, responseTypes: []string{"application/json", "text/csv"}, query: []string{"offset", "limit", "order_by", "order_direction", "user", "organization", "endpoint", "start_time", "end_time", "format"}, permission: "admin"},
	{method: "DELETE", path: "/v1/me/keys/{id}", summary: "Revoke one of your API keys (every replica within a second).", tag: "me", status: 204},

	{method: "POST", path: "/v1/collections", summary: "Create a collection of documents, private (yours) or public (readable by all; needs create_public_collection).", tag: "rag", request: CollectionRequest{}, response: Collection{}, status: 201},
	{method: "GET", path: "/v1/collections", summary: "The collections you may read: yours and the public ones.", tag: "rag", response: List[Collection]{}, query: append([]string{"name", "visibility"}, pageQuery...)},
	{method: "GET", path: "/v1/collections/{id}", summary: "One collection you may read.", tag: "rag", response: Collection{}},
	{method: "PATCH", path: "/v1/collections/{id}", summary: "Change one of your collections; absent fields are left alone.", tag: "rag", request: CollectionRequest{}, response: Collection{}},
	{method: "DELETE", path: "/v1/collections/{id}", summary: "Delete one of your collections, its documents and all their chunks.", tag: "rag", status: 204},
	{method: "POST", path: "/v1/documents", summary: "Upload a file into one of your collections: parsed, chunked, embedded and indexed. 201 when done (wait=true, the default), 202 at once with wait=false (then follow status), 200 with duplicate true when the same file is already there.", tag: "rag", request: UploadForm{}, requestType: "multipart/form-data", response: Document{}, status: 201, query: []string{"wait"}},
	{method: "GET", path: "/v1/documents", summary: "Documents of the collections you may read.", tag: "rag", response: List[Document]{}, query: append([]string{"collection_id", "name", "status"}, pageQuery...)},
	{method: "GET", path: "/v1/documents/{id}", summary: "One document: its ingestion status, parser, pages and chunk count.", tag: "rag", response: Document{}},
	{method: "DELETE", path: "/v1/documents/{id}", summary: "Delete one of your documents and all its chunks.", tag: "rag", status: 204},
	{method: "POST", path: "/v1/documents/{id}/chunks", summary: "Add chunks you made (1 to 64) to one of your documents; they are embedded and indexed.", tag: "rag", request: ChunksRequest{}, response: List[Chunk]{}, status: 201},
	{method: "GET", path: "/v1/documents/{id}/chunks", summary: "A document's chunks, in order.", tag: "rag", response: List[Chunk]{}, query: []string{"offset", "limit"}},
	{method: "GET", path: "/v1/documents/{id}/chunks/{chunk_id}", summary: "One chunk.", tag: "rag", response: Chunk{}},
	{method: "DELETE", path: "/v1/documents/{id}/chunks/{chunk_id}", summary: "Delete one chunk of one of your documents.", tag: "rag", status: 204},
	{method: "GET", path: "/v1/chunks/{document}", summary: "Deprecated: GET /v1/documents/{id}/chunks.", tag: "rag", response: List[Chunk]{}, query: []string{"offset", "limit"}},
	{method: "GET", path: "/v1/chunks/{document}/{chunk_id}", summary: "Deprecated: GET /v1/documents/{id}/chunks/{chunk_id}.", tag: "rag", response: Chunk{}},
	{method: "POST", path: "/v1/search", summary: "Search the collections you may read: semantic (embeddings), lexical (full text) or hybrid (reciprocal rank fusion), with metadata filters.", tag: "rag", request: SearchRequest{}, response: SearchResponse{}},
}

var pageQuery = []string{"offset", "limit", "order_by", "order_direction"}

func init() {
	type resource struct {
		path, name        string
		request, response any
		list              any
		filters           []string
		patch             bool
	}
	for _, r := range []resource{
		{"/v1/admin/organizations", "organization", OrganizationRequest{}, Organization{}, List[Organization]{}, nil, true},
		{"/v1/admin/roles", "role", RoleRequest{}, Role{}, List[Role]{}, nil, true},
		{"/v1/admin/users", "user", UserRequest{}, User{}, List[User]{}, []string{"role", "organization", "email"}, true},
		{"/v1/admin/tokens", "token (API key)", TokenRequest{}, CreatedToken{}, List[Token]{}, []string{"user"}, true},
	} {
		one := r.response
		if r.name == "token (API key)" {
			one = Token{}
		}
		operations = append(operations,
			operation{method: "POST", path: r.path, summary: "Create a " + r.name + ".", tag: "admin", request: r.request, response: r.response, status: 201, permission: "admin"},
			operation{method: "GET", path: r.path, summary: "List " + r.name + "s.", tag: "admin", response: r.list, query: append(append([]string{}, pageQuery...), r.filters...), permission: "admin"},
			operation{method: "GET", path: r.path + "/{id}", summary: "One " + r.name + ".", tag: "admin", response: one, permission: "admin"},
			operation{method: "DELETE", path: r.path + "/{id}", summary: "Delete a " + r.name + ".", tag: "admin", status: 204, permission: "admin"},
		)
		if r.patch {
			req, resp := r.request, r.response
			if r.name == "token (API key)" {
				req, resp = TokenPatch{}, Token{}
			}
			operations = append(operations, operation{method: "PATCH", path: r.path + "/{id}", summary: "Change a " + r.name + "; absent fields are left alone.", tag: "admin", request: req, response: resp, permission: "admin"})
		}
	}
}

// openAPIDocument builds the OpenAPI 3.1 description from the Go types.
func openAPIDocument() ([]byte, error) {
	reg := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	reg.RegisterTypeAlias(reflect.TypeOf(json.RawMessage{}), reflect.TypeOf((*any)(nil)).Elem())
	doc := &huma.OpenAPI{
		OpenAPI: "3.1.0",
		Info: &huma.Info{
			Title:       "guichet",
			Version:     version.Version,
			Description: "Sovereign AI gateway: an OpenAI-compatible API (and OpenGateLLM's) in front of self-hosted models.",
		},
		Paths: map[string]*huma.PathItem{},
		Components: &huma.Components{
			Schemas: reg,
			SecuritySchemes: map[string]*huma.SecurityScheme{
				"bearer": {Type: "http", Scheme: "bearer", Description: "Authorization: Bearer <API key>"},
			},
		},
	}
	errSchema := reg.Schema(reflect.TypeOf(ErrorResponse{}), true, "ErrorResponse")
	for _, op := range operations {
		item := doc.Paths[op.path]
		if item == nil {
			item = &huma.PathItem{}
			doc.Paths[op.path] = item
		}
		o := &huma.Operation{
			OperationID: operationID(op),
			Summary:     op.summary,
			Tags:        []string{op.tag},
			Responses:   map[string]*huma.Response{},
		}
		if !op.public {
			o.Security = []map[string][]string{{"bearer": {}}}
			o.Responses["401"] = &huma.Response{Description: "Missing or invalid API key.", Content: map[string]*huma.MediaType{"application/json": {Schema: errSchema}}}
		}
		if op.path == "/v1/models/{model}" {
			o.Parameters = []*huma.Param{{Name: "model", In: "path", Required: true, Schema: &huma.Schema{Type: "string"}}}
		}
		for _, name := range pathParams(op.path) {
			if name != "model" {
				o.Parameters = append(o.Parameters, &huma.Param{Name: name, In: "path", Required: true, Schema: &huma.Schema{Type: "integer"}})
			}
		}
		if strings.HasSuffix(op.path, "}") && op.path != "/v1/models/{model}" {
			o.Responses["404"] = &huma.Response{Description: "Not found (also for objects you may not see).", Content: map[string]*huma.MediaType{"application/json": {Schema: errSchema}}}
		}
		for _, q := range op.query {
			typ := "string"
			if q == "offset" || q == "limit" || q == "role" || q == "organization" || q == "user" || q == "start_time" || q == "end_time" || q == "page" || q == "date_from" || q == "date_to" || q == "collection_id" {
				typ = "integer"
			}
			o.Parameters = append(o.Parameters, &huma.Param{Name: q, In: "query", Schema: &huma.Schema{Type: typ}})
		}
		if op.permission != "" {
			o.Description = "Needs the " + op.permission + " permission."
			o.Responses["403"] = &huma.Response{Description: "Your role lacks the permission.", Content: map[string]*huma.MediaType{"application/json": {Schema: errSchema}}}
		}
		if op.request != nil {
			ct := op.requestType
			if ct == "" {
				ct = "application/json"
			}
			schema := reg.Schema(reflect.TypeOf(op.request), true, "")
			if s := reg.SchemaFromRef(schema.Ref); s != nil && ct == "application/json" {
				s.AdditionalProperties = true
			}
			o.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{ct: {Schema: schema}}}
			codes := []string{"400", "404", "413", "422", "502", "503", "504"}
			if op.tag == "inference" {
				codes = append(codes, "402", "403", "429")
			} else {
				codes = []string{"400", "409", "413", "422"}
			}
			for _, code := range codes {
				o.Responses[code] = &huma.Response{Description: http.StatusText(atoi(code)), Content: map[string]*huma.MediaType{"application/json": {Schema: errSchema}}}
			}
		}
		ok := &huma.Response{Description: "OK"}
		if op.response != nil || len(op.responseTypes) > 0 {
			ok.Content = map[string]*huma.MediaType{}
			types := op.responseTypes
			if len(types) == 0 {
				types = []string{"application/json"}
			}
			for _, t := range types {
				mt := &huma.MediaType{}
				if t == "application/json" && op.response != nil {
					mt.Schema = reg.Schema(reflect.TypeOf(op.response), true, "")
				} else {
					mt.Schema = &huma.Schema{Type: "string"}
				}
				ok.Content[t] = mt
			}
		}
		status := op.status
		if status == 0 {
			status = 200
		}
		if status == http.StatusNoContent {
			ok.Description = "Done."
		}
		o.Responses[strconv.Itoa(status)] = ok
		switch op.method {
		case "GET":
			item.Get = o
		case "POST":
			item.Post = o
		case "PATCH":
			item.Patch = o
		case "DELETE":
			item.Delete = o
		}
	}
	return json.Marshal(doc)
}

func operationID(op operation) string {
	id := op.method
	for _, c := range op.path {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			id += string(c)
		} else {
			id += "-"
		}
	}
	return id
}

// pathParams are the {names} in a path.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (s *Server) handleOpenAPI() http.Handler {
	doc, err := openAPIDocument()
	if err != nil {
		panic("openapi: " + err.Error()) // a programming error, caught by the tests
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
}
