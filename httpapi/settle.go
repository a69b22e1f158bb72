package httpapi

import (
	"strconv"
	"time"
)

// settle is the last step of a request: limits and budget settled with
// what was really used, then metrics; the usage ledger (its own issue)
// hooks in here too.
func (s *Server) settle(x *exchange, status int) {
	s.release(x, status)
	model := x.model
	if s.models.Lookup(model) == nil {
		model = "" // never a label per unknown name a client made up
	}
	endpoint := string(x.endpoint)
	s.metrics.Requests.WithLabelValues(model, endpoint, strconv.Itoa(status)).Inc()
	s.metrics.Duration.WithLabelValues(model, endpoint).Observe(time.Since(x.start).Seconds())
	if x.ttft > 0 {
		s.metrics.TTFT.WithLabelValues(model).Observe(x.ttft.Seconds())
	}
	if x.usage.PromptTokens > 0 {
		s.metrics.Tokens.WithLabelValues(model, "prompt").Add(float64(x.usage.PromptTokens))
	}
	if x.usage.CompletionTokens > 0 {
		s.metrics.Tokens.WithLabelValues(model, "completion").Add(float64(x.usage.CompletionTokens))
	}
	if status >= 500 && status != 499 {
		s.log.Warn("request failed", "endpoint", endpoint, "model", model, "status", status, "provider", x.provider, "attempts", x.attempts)
	}
}
