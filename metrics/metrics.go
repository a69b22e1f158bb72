// Package metrics holds guichet's Prometheus collectors. The ledger issue
// extends them; this is the set every request step reports to.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the collectors, registered on their own registry.
type Metrics struct {
	Registry *prometheus.Registry
	Requests *prometheus.CounterVec   // model, endpoint, status
	Duration *prometheus.HistogramVec // model, endpoint
	TTFT     *prometheus.HistogramVec // model
	Tokens   *prometheus.CounterVec   // model, kind (prompt|completion)
	Attempts *prometheus.CounterVec   // provider, outcome
	Up       *prometheus.GaugeVec     // model, provider
	Inflight prometheus.GaugeFunc
	LimitsUp prometheus.GaugeFunc
	Refusals *prometheus.CounterVec
}

// New registers guichet's collectors. inflight reports requests in flight.
func New(inflight func() float64, limitsUp func() float64, ledgerQueued, ledgerSpilled func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guichet_requests_total", Help: "Requests answered, by model, endpoint and HTTP status.",
		}, []string{"model", "endpoint", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "guichet_request_duration_seconds", Help: "Time from request to the last byte of the answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"model", "endpoint"}),
		TTFT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "guichet_time_to_first_token_seconds", Help: "Time from request to the first streamed event.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"model"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guichet_tokens_total", Help: "Tokens processed, from the providers' usage.",
		}, []string{"model", "kind"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guichet_upstream_attempts_total", Help: "Requests sent to providers, by outcome (ok, client_error, server_error, overloaded, timeout, unreachable, auth_refused).",
		}, []string{"provider", "outcome"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "guichet_provider_up", Help: "1 when the provider's circuit is closed (healthy).",
		}, []string{"model", "provider"}),
	}
	m.Inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "guichet_requests_in_flight", Help: "Requests being served.",
	}, inflight)
	m.LimitsUp = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "guichet_limits_backend_up", Help: "1 while rate limits and budgets are checked by their configured backend (Redis in cluster mode); 0 while it is unreachable (then requests with limits are refused, or limited per replica, as limits.on_redis_down says).",
	}, limitsUp)
	m.Refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "guichet_admission_refusals_total", Help: "Requests refused at admission, by model and reason (rpm, rpd, tpm, tpd, concurrent, budget, forbidden, unavailable).",
	}, []string{"model", "reason"})
	ledgerQueue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "guichet_ledger_queue_lines", Help: "Usage lines waiting in memory for the ledger writer.",
	}, ledgerQueued)
	ledgerSpill := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "guichet_ledger_spilled_lines", Help: "Usage lines waiting in the spill file for the database to answer again.",
	}, ledgerSpilled)
	reg.MustRegister(m.Requests, m.Duration, m.TTFT, m.Tokens, m.Attempts, m.Up, m.Inflight, m.LimitsUp, m.Refusals, ledgerQueue, ledgerSpill,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
