package httpapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/scheduler"
)

// newPools makes one fair queue per model, its capacity read from the
// model's healthy providers at each decision. In cluster mode every
// replica sends to the same providers: each takes its share (replicas
// returns how many are alive; nil: this one alone). Fairness is then
// kept by each replica over its own traffic — behind a load balancer that
// spreads requests evenly, every replica sees the same mix of tenants.
func newPools(cfg config.Scheduler, models *routing.Registry, replicas func() int) map[string]*scheduler.Pool {
	if !cfg.On() {
		return nil
	}
	opts := scheduler.Options{
		QueueTimeout: cfg.QueueTimeout.D(), BatchQueueTimeout: cfg.BatchQueueTimeout.D(),
		MaxQueuedPerTenant: cfg.MaxQueuedPerTenant, InteractiveReserve: *cfg.InteractiveReserve, OutputWeight: cfg.OutputWeight,
	}
	pools := map[string]*scheduler.Pool{}
	for _, m := range models.Models {
		capacity := m.Capacity
		if replicas != nil {
			capacity = func() int {
				c, n := m.Capacity(), replicas()
				if c <= 0 || n <= 1 {
					return c
				}
				return (c + n - 1) / n // rounded up: no slot is left unused
			}
		}
		pools[m.Name] = scheduler.NewPool(opts, capacity)
	}
	return pools
}

// schedule is the schedule step: when the model's providers run all they
// can, the request waits for its fair turn. It holds a slot (x.ticket)
// until its handler returns (unschedule), once the upstream answer is
// closed.
func (s *Server) schedule(h http.Header, x *exchange, m *routing.Model, body openai.Object) *guichet.Error {
	x.class = s.classOf(h, x.principal, body)
	pool := s.pools[m.Name]
	if pool == nil {
		return nil
	}
	ctx := x.next("schedule")
	req := scheduler.Request{Class: x.class, Tenant: "master", Weight: 1}
	if p := x.principal; p != nil && !p.Master {
		req.Tenant, req.Weight = s.tenantOf(p)
	}
	if m.Capacity() > 0 { // the estimate is only worth its CPU when requests may wait
		req.InputTokens = x.inputTokens()
	}
	k, err := pool.Acquire(ctx, req)
	if err != nil {
		var refusal *scheduler.Refusal
		if !errors.As(err, &refusal) {
			return errorf(499, "client_closed", "the client closed the request")
		}
		s.metrics.Refusals.WithLabelValues(m.Name, refusal.Reason).Inc()
		retry := int(math.Ceil(refusal.RetryAfter.Seconds()))
		var e *guichet.Error
		switch refusal.Reason {
		case "tenant_queue_full":
			e = errorf(http.StatusTooManyRequests, "queue_full", "%d of your requests to model %s are already waiting for a free slot: wait for some to finish, or retry in %d s", s.cfg.Scheduler.MaxQueuedPerTenant, m.Name, retry)
		default:
			e = errorf(http.StatusServiceUnavailable, "model_saturated", "model %s is saturated: your request could not start within %s; retry in %d s", m.Name, s.timeoutOf(x.class), retry)
		}
		e.RetryAfter = retry
		return e
	}
	x.ticket = k
	s.metrics.QueueWait.WithLabelValues(m.Name, x.class.String()).Observe(k.Waited.Seconds())
	return nil
}

// unschedule frees the request's slot, charging its real output.
func (x *exchange) unschedule() { x.ticket.Done(x.usage.CompletionTokens) }

func (s *Server) timeoutOf(c scheduler.Class) string {
	if c == scheduler.Batch {
		return s.cfg.Scheduler.BatchQueueTimeout.D().String()
	}
	return s.cfg.Scheduler.QueueTimeout.D().String()
}

// classOf is the request's class of service: the X-Guichet-Class header,
// else OpenAI's service_tier "flex", else the role's default.
func (s *Server) classOf(h http.Header, p *guichet.Principal, body openai.Object) scheduler.Class {
	switch strings.ToLower(h.Get("X-Guichet-Class")) {
	case "batch":
		return scheduler.Batch
	case "interactive":
		return scheduler.Interactive
	}
	if body.Has("service_tier") && string(body.Get("service_tier")) == `"flex"` {
		return scheduler.Batch
	}
	if p != nil && p.Role != nil {
		for _, name := range s.cfg.Scheduler.BatchRoles {
			if name == p.Role.Name {
				return scheduler.Batch
			}
		}
	}
	return scheduler.Interactive
}

// tenantOf is who shares the pool: the organization, or the user when it
// has none; and its weight from the configuration.
func (s *Server) tenantOf(p *guichet.Principal) (string, float64) {
	w := s.cfg.Scheduler.Weights
	if o := p.Organization; o != nil {
		return "org:" + strconv.FormatInt(o.ID, 10), weightOr1(w.Organizations[o.Name])
	}
	weight := 1.0
	if p.Role != nil {
		weight = weightOr1(w.Roles[p.Role.Name])
	}
	return "user:" + strconv.FormatInt(p.User.ID, 10), weight
}

func weightOr1(w float64) float64 {
	if w <= 0 {
		return 1
	}
	return w
}

// priorityMember is the vLLM priority of a batch request, for providers
// that run vLLM's priority scheduling (lower goes first).
func priorityMember(c scheduler.Class) []openai.Member {
	if c != scheduler.Batch {
		return nil
	}
	return []openai.Member{{Key: "priority", Raw: []byte("1")}}
}

// schedulerView is GET /v1/admin/scheduler: each model's queue.
func (s *Server) schedulerView(w http.ResponseWriter, r *http.Request) {
	out := map[string]scheduler.PoolView{}
	for name, p := range s.pools {
		out[name] = p.View()
	}
	writeJSON(w, http.StatusOK, SchedulerView{Enabled: s.pools != nil, Models: out})
}

// SchedulerView is the body of GET /v1/admin/scheduler.
type SchedulerView struct {
	Enabled bool                          `json:"enabled" doc:"false when scheduler.enabled is false: requests go on at once."`
	Models  map[string]scheduler.PoolView `json:"models" doc:"Each model's queue, by model name."`
}
