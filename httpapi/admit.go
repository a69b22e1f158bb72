package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/routing"
)

// lease bounds how long a concurrency slot or a budget reservation
// outlives a replica that died before settling its request.
const lease = time.Hour

// unlimited stands for a budget an operator removed after it was cached.
const unlimited = guichet.Amount(math.MaxInt64 / 4)

// admission is what one request took from the quota, for settle.
type admission struct {
	q      guichet.Admission
	kinds  []guichet.LimitType // kinds[i] is the limit behind q.Counters[i]
	owners []string            // owners[i] names the budget q.Budgets[i] holds
	model  *routing.Model
	userID int64
	orgID  int64
}

// admit is the admit step: may this caller use this model now, within its
// role's limits and its budgets? Everything is checked and taken at once
// (one quota call; one Redis round trip in cluster mode), and the
// X-RateLimit-* headers are set. The input tokens are counted only if a
// token limit or a budget needs them.
func (s *Server) admit(ctx context.Context, h http.Header, x *exchange, m *routing.Model, maxTokens int64) *guichet.Error {
	x.next("admit")
	p := x.principal
	if p == nil || p.Master {
		return nil
	}
	ad := &admission{model: m, userID: p.User.ID, orgID: p.User.OrganizationID}
	tokens := x.inputTokens
	limits, _ := p.Role.ModelLimits(m.Name) // resolve already hid what the role cannot see
	for _, l := range limits {
		if l.Value == nil {
			continue
		}
		if *l.Value == 0 {
			s.metrics.Refusals.WithLabelValues(m.Name, "forbidden").Inc()
			return errorf(http.StatusForbidden, "model_forbidden", "your role may not use model %q (its %s limit is 0): ask your administrator", m.Name, l.Type).WithParam("model")
		}
		c := guichet.Counter{Key: string(l.Type) + ":u" + strconv.FormatInt(p.User.ID, 10) + ":" + m.Name, Limit: *l.Value, Window: l.Type.Window(), Cost: 1}
		switch l.Type {
		case guichet.TokensPerMinute, guichet.TokensPerDay:
			c.Cost, c.Tokens = tokens(), true
		case guichet.Concurrent:
			c.Held = true
		}
		ad.q.Counters = append(ad.q.Counters, c)
		ad.kinds = append(ad.kinds, l.Type)
	}
	if !m.Costs.Free() && (p.User.Budget != nil || (p.Organization != nil && p.Organization.Budget != nil)) {
		in := tokens()
		reserve := m.Costs.Of(in, s.worstCompletion(m, in, maxTokens))
		if p.User.Budget != nil {
			id := p.User.ID
			ad.hold(s.budgetHold('u', id, reserve, func(ctx context.Context) (*guichet.Amount, error) {
				u, err := s.store.User(ctx, id)
				if err != nil {
					return nil, err
				}
				return u.Budget, nil
			}), "your user")
		}
		if o := p.Organization; o != nil && o.Budget != nil {
			id := o.ID
			ad.hold(s.budgetHold('o', id, reserve, func(ctx context.Context) (*guichet.Amount, error) {
				o, err := s.store.Organization(ctx, id)
				if err != nil {
					return nil, err
				}
				return o.Budget, nil
			}), fmt.Sprintf("your organization %q", o.Name))
		}
	}
	if len(ad.q.Counters) == 0 && len(ad.q.Budgets) == 0 {
		return nil
	}
	ad.q.ID, ad.q.Lease = x.id, lease
	d, err := s.quota.Admit(ctx, &ad.q)
	if err != nil {
		if ctx.Err() != nil {
			return errorf(499, "client_closed", "the client closed the request")
		}
		s.metrics.Refusals.WithLabelValues(m.Name, "unavailable").Inc()
		s.log.Warn("refusing a request: limits cannot be checked", "model", m.Name, "err", err)
		e := errorf(http.StatusServiceUnavailable, "limits_unavailable", "rate limits and budgets cannot be checked right now (their store is unreachable); retry in a few seconds")
		e.RetryAfter = 5
		return e
	}
	setRateHeaders(h, ad, d)
	if !d.Allowed {
		reason := "budget"
		if d.Refused >= 0 {
			reason = string(ad.kinds[d.Refused])
		}
		s.metrics.Refusals.WithLabelValues(m.Name, reason).Inc()
		return ad.refusal(d)
	}
	x.admission = ad
	return nil
}

func (ad *admission) hold(b guichet.BudgetHold, owner string) {
	ad.q.Budgets = append(ad.q.Budgets, b)
	ad.owners = append(ad.owners, owner)
}

// budgetHold reserves on the budget of a user ('u') or organization
// ('o'). Its balance, when the quota must load it, is the store's minus
// the spends not written there yet.
func (s *Server) budgetHold(kind byte, id int64, reserve guichet.Amount, read func(context.Context) (*guichet.Amount, error)) guichet.BudgetHold {
	return guichet.BudgetHold{Key: budgetKey(kind, id), Reserve: reserve, Load: func(ctx context.Context) (guichet.Amount, error) {
		b, err := read(ctx)
		if err != nil || b == nil { // nil: the operator removed the budget meanwhile
			return unlimited, err
		}
		return *b - s.spend.pendingFor(kind, id), nil
	}}
}

func budgetKey(kind byte, id int64) string { return string(kind) + strconv.FormatInt(id, 10) }

// worstCompletion is the most a request may generate: its max_tokens,
// else what the context window leaves, else the configured cap.
func (s *Server) worstCompletion(m *routing.Model, input, maxTokens int64) int64 {
	if maxTokens > 0 {
		return maxTokens
	}
	if c := m.MaxContext(); c > input {
		return c - input
	}
	return s.cfg.Limits.ReserveMaxTokens
}

// refusal says which limit refused, on which model, and when to retry.
func (ad *admission) refusal(d guichet.Decision) *guichet.Error {
	model := ad.model.Name
	wait := d.RetryAfter.Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	if d.Refused < 0 {
		i := -1 - d.Refused
		b := ad.q.Budgets[i]
		left := d.Balances[i]
		if left < 0 {
			left = 0
		}
		return errorf(http.StatusPaymentRequired, "insufficient_budget", "insufficient budget: %s has %s left, and this request to model %q may cost up to %s; ask your administrator to raise the budget", ad.owners[i], left, model, b.Reserve)
	}
	c := ad.q.Counters[d.Refused]
	var e *guichet.Error
	switch kind := ad.kinds[d.Refused]; kind {
	case guichet.Concurrent:
		e = errorf(http.StatusTooManyRequests, "concurrency_limit_exceeded", "concurrency limit reached: at most %d requests at once to model %q; retry when one ends", c.Limit, model)
		wait = time.Second
	case guichet.TokensPerMinute, guichet.TokensPerDay:
		if c.Cost > c.Limit {
			return errorf(http.StatusTooManyRequests, "request_too_large_for_limit", "this request has about %d input tokens, more than your limit of %d input tokens per %s on model %q: shorten it", c.Cost, c.Limit, per(kind), model)
		}
		e = errorf(http.StatusTooManyRequests, "rate_limit_exceeded", "rate limit reached: %d input tokens per %s on model %q (this request needs about %d, %d left); it resets enough in %s", c.Limit, per(kind), model, c.Cost, d.Counters[d.Refused].Remaining, wait)
	default:
		e = errorf(http.StatusTooManyRequests, "rate_limit_exceeded", "rate limit reached: %d requests per %s on model %q; retry in %s", c.Limit, per(kind), model, wait)
	}
	e.RetryAfter = int(wait / time.Second)
	return e
}

func per(t guichet.LimitType) string {
	if t.Window() == time.Minute {
		return "minute"
	}
	return "day"
}

// rateHeaderClasses are the header names (canonical, so they are set
// without re-canonicalising) of each kind of limit.
var rateHeaderClasses = []struct {
	headers [3]string // limit, remaining, reset
	kinds   [2]guichet.LimitType
}{
	{[3]string{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"}, [2]guichet.LimitType{guichet.RequestsPerMinute, guichet.RequestsPerDay}},
	{[3]string{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"}, [2]guichet.LimitType{guichet.TokensPerMinute, guichet.TokensPerDay}},
}

// setRateHeaders reports the tightest request limit and the tightest token
// limit, in OpenAI's header names.
func setRateHeaders(h http.Header, ad *admission, d guichet.Decision) {
	for _, class := range rateHeaderClasses {
		best := -1
		for i, k := range ad.kinds {
			if (k == class.kinds[0] || k == class.kinds[1]) && i < len(d.Counters) && (best < 0 || d.Counters[i].Remaining < d.Counters[best].Remaining) {
				best = i
			}
		}
		if best < 0 {
			continue
		}
		st := d.Counters[best]
		h[class.headers[0]] = []string{strconv.FormatInt(ad.q.Counters[best].Limit, 10)}
		h[class.headers[1]] = []string{strconv.FormatInt(st.Remaining, 10)}
		h[class.headers[2]] = []string{st.Reset.Round(time.Millisecond).String()}
	}
}

// release is the quota half of settle: held slots and reservations are
// released, token counters corrected to the real input tokens, and the
// billed cost is taken off the budgets, live and in the store.
func (s *Server) release(x *exchange, status int, cost guichet.Amount) {
	ad := x.admission
	if ad == nil {
		return
	}
	x.admission = nil
	input := x.usage.PromptTokens
	if input <= 0 {
		input = -1 // unknown: the estimate stands
	}
	if failedEmpty(x, status) {
		input = 0
	}
	if len(ad.q.Budgets) == 0 {
		cost = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.quota.Settle(ctx, &ad.q, guichet.Settlement{InputTokens: input, Cost: cost}); err != nil {
		s.log.Error("settling a request's limits and budget", "request_id", x.id, "err", err)
	}
	if cost > 0 {
		s.spend.add(ad.userID, ad.orgID, cost)
	}
}

// failedEmpty reports a request that failed without producing anything:
// it costs nothing.
func failedEmpty(x *exchange, status int) bool {
	return status >= 400 && status != 499 && x.usage.CompletionTokens == 0
}

// billed is what a request is charged for: the provider's usage, with the
// prompt estimate when the provider said nothing (a client that left
// mid-stream); nothing for a failure that produced nothing. The answer's
// usage.cost, the budget and the ledger line all use it.
func (x *exchange) billed(status int) (prompt, completion int64) {
	if failedEmpty(x, status) {
		return 0, 0
	}
	prompt = x.usage.PromptTokens
	if prompt <= 0 && x.estimate > 0 {
		prompt = x.estimate
	}
	return prompt, x.usage.CompletionTokens
}
