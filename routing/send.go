package routing

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/upstream"
)

// Call is one request to send to a model's providers.
type Call struct {
	// Build makes the request for provider p; the body must name
	// p.ModelName. It may be called once per attempt.
	Build func(ctx context.Context, p *upstream.Provider) (*http.Request, error)
	// Check runs on a 2xx answer before anything reaches the client; an
	// error means "try elsewhere" (a stream that breaks before its first
	// event, a body cut short).
	Check func(resp *http.Response) error
	// Attempted, if set, hears of every attempt: the provider (of model,
	// the requested one or a fallback), how it ended (see outcome) and
	// how long it took.
	Attempted func(model *Model, p *upstream.Provider, outcome string, took time.Duration)
	// Prefix is the chained hashes of the prompt's leading blocks
	// (PrefixBlocks), for the prefix_affinity strategy.
	Prefix []uint64
}

// Answer is the upstream response to relay to the client.
type Answer struct {
	*http.Response
	Provider *upstream.Provider
	Model    *Model // the model that answered: the one asked for, or a fallback
	Attempts int
	cancel   context.CancelFunc
}

// Close frees the upstream connection and the provider's slot.
func (a *Answer) Close() {
	a.Body.Close()
	a.cancel()
	a.Provider.Release()
}

// ErrClientGone is returned when the client left while we were trying.
var ErrClientGone = &guichet.Error{Status: 499, Code: "client_closed_request", Message: "the client closed the request"}

// Send tries the model's providers, then its fallbacks in order, and
// returns the first answer that can go to the client. It retries on
// connection errors, timeouts, 5xx and 429 — always before any byte was
// sent — within the model's attempt and time bounds.
func (m *Model) Send(ctx context.Context, call Call) (*Answer, error) {
	deadline := time.Now().Add(m.retryWindow)
	attempts := 0
	var last *guichet.Error
	models := append([]*Model{m}, m.Fallbacks...)
	for _, model := range models {
		tried := make([]*upstream.Provider, 0, len(model.Providers))
		for n := 0; n < model.maxAttempts; n++ {
			if attempts > 0 && time.Now().After(deadline) {
				return nil, orUnavailable(last, m)
			}
			p, busy := model.pick(tried, call.Prefix)
			if p == nil {
				if busy {
					last = overloaded(model.Name, 1)
				}
				break
			}
			tried = append(tried, p)
			if !p.Acquire() {
				last = overloaded(model.Name, 1)
				continue
			}
			attempts++
			began := time.Now()
			ans, err := attempt(ctx, p, call)
			if ctx.Err() == nil {
				how := outcome(ans, err)
				if model.onAttempt != nil {
					model.onAttempt(p, how)
				}
				if call.Attempted != nil {
					call.Attempted(model, p, how, time.Since(began))
				}
			}
			if err == nil {
				ans.Model, ans.Attempts = model, attempts
				return ans, nil
			}
			if ctx.Err() != nil {
				return nil, ErrClientGone
			}
			last = err
			if err.Status < 500 && err.Status != http.StatusTooManyRequests {
				return nil, err
			}
		}
	}
	return nil, orUnavailable(last, m)
}

// outcome names how an attempt ended, for metrics.
func outcome(ans *Answer, err *guichet.Error) string {
	switch {
	case err == nil && ans.StatusCode < 300:
		return "ok"
	case err == nil:
		return "client_error"
	}
	switch err.Code {
	case "upstream_timeout":
		return "timeout"
	case "upstream_unreachable":
		return "unreachable"
	case "model_overloaded":
		return "overloaded"
	case "upstream_auth":
		return "auth_refused"
	default:
		return "server_error"
	}
}

// pick returns a healthy provider with free capacity not tried yet; busy is
// true when some were left out only because they were full.
func (m *Model) pick(tried []*upstream.Provider, prefix []uint64) (p *upstream.Provider, busy bool) {
	var buf [8]*upstream.Provider
	cands := buf[:0]
	for _, p := range m.Providers {
		if !p.Healthy() || containsProvider(tried, p) {
			continue
		}
		if p.Full() {
			busy = true
			continue
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return nil, busy
	}
	if a, ok := m.strategy.(*PrefixAffinity); ok && len(prefix) > 0 {
		return a.PickFor(cands, prefix), false
	}
	return m.strategy.Pick(cands), false
}

func containsProvider(list []*upstream.Provider, p *upstream.Provider) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// attempt sends call to p once. A non-nil *guichet.Error with a 5xx or 429
// status means "try elsewhere".
func attempt(ctx context.Context, p *upstream.Provider, call Call) (*Answer, *guichet.Error) {
	actx, cancel := context.WithTimeout(ctx, p.Timeouts.Total.D())
	fail := func(e *guichet.Error) (*Answer, *guichet.Error) {
		cancel()
		p.Release()
		return nil, e
	}
	req, err := call.Build(actx, p)
	if err != nil {
		var ge *guichet.Error
		if errors.As(err, &ge) {
			return fail(ge)
		}
		return fail(guichet.Errorf(http.StatusBadGateway, "upstream_request", "could not build the request to the model server"))
	}
	resp, err := p.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			p.Failed(err)
		}
		return fail(transportError(err))
	}
	resp.Body = upstream.WithIdleTimeout(resp.Body, p.Timeouts.Idle.D(), cancel)
	ans := &Answer{Response: resp, Provider: p, cancel: cancel}
	switch code := resp.StatusCode; {
	case code < 300:
		if call.Check != nil {
			if err := call.Check(resp); err != nil {
				ans.Close()
				if ctx.Err() == nil {
					p.Failed(err)
				}
				return nil, transportError(err)
			}
		}
		p.Succeeded()
		return ans, nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		retry := retryAfter(resp.Header.Get("Retry-After"))
		ans.Close()
		return nil, overloaded(p.ModelName, retry)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		// The provider refused guichet's own credentials: not the client's
		// fault, so never passed through as a 401 the client would misread.
		ans.Close()
		p.Failed(errors.New(resp.Status))
		return nil, guichet.Errorf(http.StatusBadGateway, "upstream_auth", "the model server refused the gateway's credentials (the operator should check the provider key)")
	case code >= 500:
		msg := upstreamMessage(resp.Body)
		ans.Close()
		p.Failed(errors.New(resp.Status))
		e := guichet.Errorf(http.StatusBadGateway, "upstream_error", "the model server answered %d: %s", code, msg)
		return nil, e
	default: // a 4xx: the request itself is wrong; the client gets it as is
		p.Succeeded()
		return ans, nil
	}
}

func transportError(err error) *guichet.Error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return guichet.Errorf(http.StatusGatewayTimeout, "upstream_timeout", "the model server did not answer in time")
	}
	return guichet.Errorf(http.StatusBadGateway, "upstream_unreachable", "the model server could not be reached or broke the connection")
}

func overloaded(model string, retry int) *guichet.Error {
	e := guichet.Errorf(http.StatusServiceUnavailable, "model_overloaded", "model %q is overloaded: try again in %d s", model, retry)
	e.RetryAfter = retry
	return e
}

func orUnavailable(last *guichet.Error, m *Model) *guichet.Error {
	if last != nil {
		return last
	}
	e := guichet.Errorf(http.StatusServiceUnavailable, "model_unavailable", "model %q has no healthy provider right now: try again shortly", m.Name)
	e.RetryAfter = 1
	return e
}

func retryAfter(h string) int {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return min(s, 3600)
	}
	return 1
}

// upstreamMessage extracts a short error message from an upstream body.
func upstreamMessage(body io.Reader) string {
	raw, _ := io.ReadAll(io.LimitReader(body, 4<<10))
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  any             `json:"detail"`
	}
	if json.Unmarshal(raw, &v) == nil {
		var nested struct {
			Message string `json:"message"`
		}
		switch {
		case json.Unmarshal(v.Error, &nested) == nil && nested.Message != "":
			return nested.Message
		case v.Message != "":
			return v.Message
		}
		var s string
		if json.Unmarshal(v.Error, &s) == nil && s != "" {
			return s
		}
	}
	text := strings.TrimSpace(string(raw))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	if text == "" {
		return "no details"
	}
	return text
}
