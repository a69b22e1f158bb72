package httpapi

import "net/http"

// Readiness is the /ready answer: which models can serve right now.
type Readiness struct {
	Status string       `json:"status" enum:"ready,degraded,unavailable" doc:"ready: every model has a healthy provider; degraded: some have none; unavailable: none has."`
	Models []ModelReady `json:"models"`
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
	status := http.StatusOK
	switch {
	case ready == len(s.models.Models):
		out.Status = "ready"
	case ready > 0:
		out.Status = "degraded"
	default:
		out.Status, status = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}
