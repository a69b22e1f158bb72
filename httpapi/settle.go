package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/routing"
)

// settle is the last step of a request: limits and budget settled with
// what was really used, then metrics; the usage ledger (its own issue)
// hooks in here too.
func (s *Server) settle(x *exchange, status int) {
	x.next("settle")
	m := s.models.Lookup(x.model)
	var cost guichet.Amount
	prompt, completion := x.billed(status)
	if m != nil {
		cost = m.Costs.Of(prompt, completion)
		s.record(x, m, status, prompt, completion, cost)
	}
	defer x.endSteps(status, prompt, completion)
	s.release(x, status, cost)
	s.observe(x, m != nil, status)
	if status >= 500 && status != 499 {
		s.log.Warn("request failed", "request_id", x.id, "endpoint", string(x.endpoint), "model", x.model, "status", status, "provider", x.provider, "attempts", x.attempts)
	}
}

// observe reports the request to the metrics. Labels come from the
// configuration only: a model name a client made up is never a label.
func (s *Server) observe(x *exchange, known bool, status int) {
	model, provider := "", x.provider
	if known {
		model = x.requested
	}
	op := genAIOperations[x.endpoint]
	took := time.Since(x.start)
	s.metrics.Duration.WithLabelValues(op, model, provider, strconv.Itoa(status)).Observe(took.Seconds())
	if x.ttft > 0 {
		s.metrics.TTFT.WithLabelValues(op, model, provider).Observe(x.ttft.Seconds())
		if n := x.usage.CompletionTokens; n > 1 && status == http.StatusOK {
			s.metrics.TPOT.WithLabelValues(op, model, provider).Observe((took - x.ttft).Seconds() / float64(n-1))
		}
	}
	if prompt, completion := x.billed(status); prompt > 0 || completion > 0 {
		s.metrics.Tokens.WithLabelValues(op, model, provider, "input").Observe(float64(prompt))
		if completion > 0 || x.endpoint == guichet.EndpointChat || x.endpoint == guichet.EndpointCompletions {
			s.metrics.Tokens.WithLabelValues(op, model, provider, "output").Observe(float64(completion))
		}
	}
}

// genAIOperations names each endpoint after gen_ai.operation.name (rerank and
// transcription have no standard name yet).
var genAIOperations = map[guichet.Endpoint]string{
	guichet.EndpointChat:          "chat",
	guichet.EndpointCompletions:   "text_completion",
	guichet.EndpointEmbeddings:    "embeddings",
	guichet.EndpointRerank:        "rerank",
	guichet.EndpointTranscription: "transcription",
}

// record writes the request's ledger line (asynchronously: the request
// never waits on the database).
func (s *Server) record(x *exchange, m *routing.Model, status int, prompt, completion int64, cost guichet.Amount) {
	if s.ledger == nil || x.principal == nil {
		return
	}
	l := guichet.UsageLine{
		Time: x.start.UTC(), RequestID: x.id, Endpoint: x.endpoint, Model: x.requested,
		ProviderModel: x.providerModel, Provider: x.provider, Status: status,
		PromptTokens: prompt, CompletionTokens: completion, Cost: cost,
		Latency: time.Since(x.start), TTFT: x.ttft, Cancelled: status == 499,
	}
	if p := x.principal; !p.Master {
		l.UserID, l.OrganizationID = p.User.ID, p.User.OrganizationID
		if p.Key != nil {
			l.KeyID = p.Key.ID
		}
	}
	if impact, ok := footprint(x, m, completion); ok {
		l.KWh, l.KgCO2eq = &impact.KWh, &impact.KgCO2eq
	}
	s.ledger.Add(l)
	if len(x.tries) < 2 {
		return
	}
	// Retries and fallbacks: one line per attempt, linked by the request
	// id. Tokens, cost and energy stay on the request's line.
	for i, t := range x.tries {
		a := guichet.UsageLine{Time: l.Time, RequestID: l.RequestID, Attempt: i + 1, OrganizationID: l.OrganizationID, UserID: l.UserID,
			KeyID: l.KeyID, Endpoint: l.Endpoint, Model: t.model, ProviderModel: t.providerModel, Provider: t.provider,
			Status: attemptStatus(t.outcome, status), Latency: t.took}
		s.ledger.Add(a)
	}
}

// attemptStatus is the HTTP status an attempt's outcome stands for.
func attemptStatus(outcome string, final int) int {
	switch outcome {
	case "ok":
		return final
	case "client_error":
		return http.StatusBadRequest
	case "overloaded":
		return http.StatusTooManyRequests
	case "timeout":
		return http.StatusGatewayTimeout
	default: // server_error, unreachable, auth_refused
		return http.StatusBadGateway
	}
}
