package httpapi

import "net/http"

// Readiness is the /ready answer: which models can serve right now.
type Readiness struct {
	Status string       `json:"status" enum:"ready,degraded,unavailable" doc:"ready: every model has a healthy provider and limits are enforced as configured; degraded: some models have none, or limits run per replica; unavailable: no model can serve, or limits cannot be checked."`
	Models []ModelReady `json:"models"`
	Limits string       `json:"limits" enum:"ok,per_replica,unavailable" doc:"Rate limits and budgets: ok; per_replica while Redis is unreachable and limits.on_redis_down is local; unavailable while it is unreachable and fail_closed."`
	Ledger *LedgerReady `json:"ledger,omitempty" doc:"The usage ledger's backlog; spilling while the database is unreachable (nothing is lost: lines wait on disk)."`
}

// LedgerReady is the usage ledger's state.
type LedgerReady struct {
	Status  string `json:"status" enum:"ok,spilling"`
	Queued  int    `json:"queued"`
	Spilled int64  `json:"spilled"`
}

// ModelReady is one model's provider health.
type ModelReady struct {
	ID               string `json:"id"`
	HealthyProviders int    `json:"healthy_providers"`
	Providers        int    `json:"providers"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
}

// handleReady reports each model's healthy providers. It names no
// provider URL: it is public, for load balancers.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	out := Readiness{Models: make([]ModelReady, 0, len(s.models.Models))}
	ready := 0
	for _, m := range s.models.Models {
		h := m.Healthy()
		if h > 0 {
			ready++
		}
		out.Models = append(out.Models, ModelReady{ID: m.Name, HealthyProviders: h, Providers: len(m.Providers)})
	}
	out.Limits = s.limitsState()
	if l := s.ledger; l != nil {
		out.Ledger = &LedgerReady{Status: "ok", Queued: l.Queued(), Spilled: l.Spilled()}
		if !l.Healthy() || out.Ledger.Spilled > 0 {
			out.Ledger.Status = "spilling"
		}
	}
	status := http.StatusOK
	switch {
	case ready == 0 || out.Limits == "unavailable":
		out.Status, status = "unavailable", http.StatusServiceUnavailable
	case ready < len(s.models.Models) || out.Limits != "ok" || (out.Ledger != nil && out.Ledger.Status != "ok"):
		out.Status = "degraded"
	default:
		out.Status = "ready"
	}
	writeJSON(w, status, out)
}

// limitsState is the quota backend's state, for /ready and /metrics.
func (s *Server) limitsState() string {
	switch {
	case s.health == nil || s.health.Healthy():
		return "ok"
	case s.health.Degraded():
		return "per_replica"
	default:
		return "unavailable"
	}
}
