package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/scheduler"
	"github.com/guichet/guichet/tokens"
	"github.com/guichet/guichet/upstream"
	"go.opentelemetry.io/otel/trace"
)

// maxUpstreamBody bounds a non-streamed answer read from a model server.
const maxUpstreamBody = 64 << 20

type decoder func(body []byte) (*openai.Request, *guichet.Error)

func (s *Server) handleChat() http.Handler {
	return s.inference(guichet.EndpointChat, openai.DecodeChat, func(r *openai.Request) int64 {
		return tokens.Chat(r.Messages, r.Object.Get("tools"))
	})
}

func (s *Server) handleCompletions() http.Handler {
	return s.inference(guichet.EndpointCompletions, openai.DecodeCompletion, func(r *openai.Request) int64 {
		return tokens.Input(r.Object.Get("prompt"))
	})
}

func (s *Server) handleEmbeddings() http.Handler {
	return s.inference(guichet.EndpointEmbeddings, openai.DecodeEmbeddings, func(r *openai.Request) int64 {
		return tokens.Input(r.Object.Get("input"))
	})
}

// inference serves the JSON endpoints that proxy to an OpenAI-compatible
// path: decode once, resolve the model, admit, send with retries, relay.
// count estimates the request's input tokens, for limits and budgets.
func (s *Server) inference(endpoint guichet.Endpoint, decode decoder, count func(*openai.Request) int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := s.begin(w, r, endpoint)
		body, gerr := s.readBody(w, r)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		req, gerr := decode(body)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		model, gerr := s.resolve(x, req.Model)
		if gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		if endpoint == guichet.EndpointChat && wantsSearch(req.Object) {
			if req, x.searchResults, gerr = s.retrieve(r.Context(), x, model, req); gerr != nil {
				s.fail(w, x, gerr)
				return
			}
		}
		x.countInput = func() int64 { return count(req) }
		if gerr := s.admit(r.Context(), w.Header(), x, model, req.MaxTokens); gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		if gerr := s.schedule(r.Header, x, model, req.Object); gerr != nil {
			s.fail(w, x, gerr)
			return
		}
		defer x.unschedule() // after the upstream answer is closed: its slot is free

		// The body sent upstream: the client's, byte for byte, with the
		// provider's model name and, for streams, usage asked for.
		var extra []openai.Member
		if req.Stream {
			extra = append(extra, openai.Member{Key: "stream_options", Raw: withUsage(req.Object.Get("stream_options"))})
		}
		build := func(ctx context.Context, p *upstream.Provider) (*http.Request, error) {
			members := append([]openai.Member{{Key: "model", Raw: quote(p.ModelName)}}, extra...)
			if p.PriorityScheduling {
				members = append(members, priorityMember(x.class)...)
			}
			payload := make([]byte, 0, len(body)+len(p.ModelName)+48)
			payload = req.Object.AppendWith(payload, members...)
			return x.upstreamRequest(ctx, p, endpoint, bytes.NewReader(payload), "application/json")
		}
		call := routing.Call{Build: build}
		if model.WantsPrefix() {
			prompt := req.Object.Get("messages")
			if prompt == nil {
				prompt = req.Object.Get("prompt")
			}
			call.Prefix = routing.PrefixBlocks(prompt)
		}
		if req.Stream {
			s.relayStream(w, r, x, model, call)
			return
		}
		s.relayJSON(w, r, x, model, call)
	})
}

// withUsage returns stream_options with include_usage set, keeping the
// client's other options (vLLM's continuous_usage_stats…).
func withUsage(raw []byte) []byte {
	if o, err := openai.ParseObject(raw); err == nil && raw != nil {
		return o.AppendWith(nil, openai.Member{Key: "include_usage", Raw: []byte("true")})
	}
	return []byte(`{"include_usage":true}`)
}

// quote writes s as a JSON string (Go's own quoting is not JSON for
// control characters).
func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// readBody reads a JSON body within the size limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *guichet.Error) {
	limit := int64(s.cfg.Server.MaxBodyBytes)
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	size := r.ContentLength
	if size <= 0 || size > 1<<20 {
		size = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, errorf(http.StatusBadRequest, "unreadable_body", "the request body could not be read")
	}
	if buf.Len() == 0 {
		return nil, errorf(http.StatusBadRequest, "empty_body", "the request body is empty: send a JSON object")
	}
	return buf.Bytes(), nil
}

func tooLarge(limit int64) *guichet.Error {
	return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than the limit of %d bytes", limit)
}

// relayJSON sends a non-streamed request and relays the whole answer. The
// answer is read before anything is written, so a body cut short is retried.
func (s *Server) relayJSON(w http.ResponseWriter, r *http.Request, x *exchange, model *routing.Model, call routing.Call) {
	var payload []byte
	call.Check = func(resp *http.Response) (err error) {
		payload, err = readAnswer(resp.Body)
		return err
	}
	ans := s.send(w, r, x, model, call)
	if ans == nil {
		return
	}
	defer ans.Close()
	if u, ok := openai.UsageOf(payload); ok {
		x.usage = u
		payload, _ = openai.AddToUsage(payload, usageExtras(x, ans.Model)...)
	} else if u, ok := countUsage(x, payload); ok {
		// A provider that reports no usage (some llama.cpp or OpenAI-like
		// servers): counted offline, and said so.
		x.usage = u
		payload = withCountedUsage(payload, u, usageExtras(x, ans.Model))
	}
	if x.searchResults != nil {
		if o, err := openai.ParseObject(payload); err == nil {
			payload = o.AppendWith(nil, searchResultsMember(x.searchResults))
		}
	}
	ct := ans.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(ans.StatusCode)
	w.Write(payload)
	s.settle(x, ans.StatusCode)
}

// send is the route step shared by every handler: it sends call to the
// model's providers. An error, or an upstream 4xx (passed through as it
// is), ends the request here and send returns nil; otherwise the caller
// relays the answer and closes it.
func (s *Server) send(w http.ResponseWriter, r *http.Request, x *exchange, model *routing.Model, call routing.Call) *routing.Answer {
	ans, gerr := x.dispatch(model, call)
	if gerr != nil {
		s.fail(w, x, gerr)
		return nil
	}
	if ans.StatusCode >= 300 {
		relayAsIs(w, ans)
		ans.Close()
		s.settle(x, ans.StatusCode)
		return nil
	}
	return ans
}

// dispatch sends call to the model's providers, recording every attempt
// on the exchange, and starts the respond step; the caller relays (or
// reads) the answer and closes it.
func (x *exchange) dispatch(model *routing.Model, call routing.Call) (*routing.Answer, *guichet.Error) {
	call.Attempted = x.attempted
	ans, err := model.Send(x.next("send"), call)
	x.endAttempt("client_gone") // the client left during an attempt
	if err != nil {
		return nil, asError(err)
	}
	x.answeredBy(ans)
	x.next("respond")
	return ans, nil
}

// relayAsIs copies an answer's status, type and body to the client.
func relayAsIs(w http.ResponseWriter, ans *routing.Answer) {
	for _, h := range []string{"Content-Type", "Content-Length"} {
		if v := ans.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(ans.StatusCode)
	io.Copy(w, io.LimitReader(ans.Body, maxUpstreamBody))
}

func asError(err error) *guichet.Error {
	var ge *guichet.Error
	if errors.As(err, &ge) {
		return ge
	}
	return errorf(http.StatusBadGateway, "upstream_error", "the model server failed")
}

// errAnswerTooLarge: a non-streamed answer over maxUpstreamBody.
var errAnswerTooLarge = errors.New("the model server's answer is too large")

// readAnswer reads a whole non-streamed answer, bounded.
func readAnswer(body io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxUpstreamBody+1))
	if err == nil && len(b) > maxUpstreamBody {
		return nil, errAnswerTooLarge
	}
	return b, err
}

// exchange is what settle needs to know about one request.
type exchange struct {
	id       string
	endpoint guichet.Endpoint
	model    string
	start    time.Time
	ttft     time.Duration
	usage    openai.TokenUsage
	provider string
	attempts int

	principal     *guichet.Principal
	admission     *admission // what settle gives back to the quota
	estimate      int64      // input tokens estimated at admission; -1: not estimated
	kwhPerToken   float64    // the provider's measured energy per token, if any
	providerModel string     // the model's name on the provider that answered
	providerType  guichet.ProviderType
	tries         []try         // every upstream attempt, for the ledger when there were several
	requested     string        // the model the client asked for (x.model becomes the one that answered)
	countInput    func() int64  // counts the request's input tokens offline (nil: cannot)
	generation    time.Duration // latency the carbon estimate used (0: not estimated yet)

	// searchResults are the passages a chat's search put in the prompt,
	// returned to the client; nil: the chat asked for no search.
	searchResults []SearchHit

	class  scheduler.Class
	ticket *scheduler.Ticket // the scheduler's slot, freed when the handler returns

	ctx     context.Context // the request's, with its span
	tracing bool
	step    trace.Span // the current step's span
	attempt trace.Span // the open upstream attempt's span; nil: none
}

// try is one upstream attempt.
type try struct {
	model, provider, providerModel, outcome string
	took                                    time.Duration
}

func (s *Server) begin(w http.ResponseWriter, r *http.Request, e guichet.Endpoint) *exchange {
	return s.beginFor(r.Context(), w.Header().Get("X-Request-Id"), principal(r), e)
}

// beginFor starts an exchange for a caller outside an HTTP request of
// theirs (the RAG service's embeddings) as well as inside one.
func (s *Server) beginFor(ctx context.Context, id string, p *guichet.Principal, e guichet.Endpoint) *exchange {
	x := &exchange{id: id, endpoint: e, start: time.Now(), principal: p, estimate: -1, ctx: ctx, tracing: s.tracing, step: noSpan}
	x.next("decode")
	return x
}

// upstreamRequest builds the request to provider p, carrying the request
// id (vLLM uses it as its own, which ties both logs together).
func (x *exchange) upstreamRequest(ctx context.Context, p *upstream.Provider, e guichet.Endpoint, body io.Reader, contentType string) (*http.Request, error) {
	req, err := p.NewRequest(ctx, http.MethodPost, p.Path(e), body, contentType)
	if err != nil {
		return nil, err
	}
	if x.id != "" {
		req.Header.Set("X-Request-Id", x.id)
	}
	x.startAttempt(ctx, p, req)
	return req, nil
}

// inputTokens is the request's input estimate, counted offline the first
// time a step needs it (0 when it cannot be counted).
func (x *exchange) inputTokens() int64 {
	if x.estimate < 0 {
		x.estimate = 0
		if x.countInput != nil {
			x.estimate = x.countInput()
		}
	}
	return x.estimate
}

func (x *exchange) answeredBy(a *routing.Answer) {
	x.model, x.provider, x.attempts = a.Model.Name, a.Provider.ID, a.Attempts
	x.kwhPerToken, x.providerModel, x.providerType = a.Provider.KWhPerToken, a.Provider.ModelName, a.Provider.Type
}

// fail answers with an error and settles the request.
func (s *Server) fail(w http.ResponseWriter, x *exchange, e *guichet.Error) {
	writeError(w, e)
	s.settle(x, e.Status)
}
