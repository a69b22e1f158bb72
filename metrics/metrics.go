// Package metrics holds guichet's Prometheus collectors.
//
// Inference metrics follow the OpenTelemetry GenAI semantic conventions
// (gen_ai.server.request.duration, gen_ai.server.time_to_first_token,
// gen_ai.server.time_per_output_token, gen_ai.client.token.usage) in their
// Prometheus form: dots become underscores and the unit is a suffix. One
// gateway fronts several servers of the same kind, so gen_ai_provider_name
// carries the configured provider (model#index) rather than "vllm".
// Gateway-only figures (admission, ledger, providers' state) are guichet_*.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/guichet/guichet/scheduler"
)

// Label names, after the OpenTelemetry attributes.
const (
	LabelOperation = "gen_ai_operation_name"
	LabelModel     = "gen_ai_request_model"
	LabelProvider  = "gen_ai_provider_name"
	LabelStatus    = "http_response_status_code"
	LabelTokenType = "gen_ai_token_type"
)

// Sources are the gauges read at scrape time.
type Sources struct {
	InFlight      func() float64 // requests being served
	LimitsUp      func() float64 // 1 while limits are decided by their configured backend
	LedgerQueued  func() float64 // usage lines in the writer's memory queue
	LedgerSpilled func() float64 // usage lines in the spill file
	// Providers calls report once per provider with its current state.
	Providers func(report func(model, provider string, up bool, inFlight int64))
	// Pools calls report once per model with its scheduler's state.
	Pools func(report func(model string, v scheduler.PoolView))
}

// Metrics are the collectors, registered on their own registry.
type Metrics struct {
	Registry  *prometheus.Registry
	Duration  *prometheus.HistogramVec // operation, model, provider, status
	TTFT      *prometheus.HistogramVec // operation, model, provider
	TPOT      *prometheus.HistogramVec // operation, model, provider
	Tokens    *prometheus.HistogramVec // operation, model, provider, token type (input|output)
	Attempts  *prometheus.CounterVec   // provider, outcome
	Refusals  *prometheus.CounterVec   // model, reason
	QueueWait *prometheus.HistogramVec // model, class
}

// New registers guichet's collectors.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	inference := []string{LabelOperation, LabelModel, LabelProvider}
	m := &Metrics{
		Registry: reg,
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_server_request_duration_seconds",
			Help:    "Time from request to the last byte of the answer, by operation, requested model, provider that answered and HTTP status; its _count is the number of requests.",
			Buckets: []float64{.01, .02, .04, .08, .16, .32, .64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92, 300},
		}, append(inference, LabelStatus)),
		TTFT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_server_time_to_first_token_seconds",
			Help:    "Time from request to the first streamed event.",
			Buckets: []float64{.001, .005, .01, .02, .04, .06, .08, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10},
		}, inference),
		TPOT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_server_time_per_output_token_seconds",
			Help:    "Time per output token after the first, for completed streams.",
			Buckets: []float64{.01, .025, .05, .075, .1, .15, .2, .3, .4, .5, .75, 1, 2.5},
		}, inference),
		Tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gen_ai_client_token_usage",
			Help:    "Tokens per request, by type (input, output), as billed; the _sum is the total.",
			Buckets: []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304},
		}, append(inference, LabelTokenType)),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guichet_upstream_attempts_total", Help: "Requests sent to providers, by outcome (ok, client_error, server_error, overloaded, timeout, unreachable, auth_refused).",
		}, []string{"provider", "outcome"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "guichet_admission_refusals_total", Help: "Requests refused at admission or by the scheduler, by model and reason (rpm, rpd, tpm, tpd, concurrent, budget, forbidden, unavailable; tenant_queue_full, wait_too_long, queue_timeout).",
		}, []string{"model", "reason"}),
		QueueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "guichet_scheduler_wait_seconds",
			Help:    "Time requests waited in the scheduler's queue for a free slot, by model and class (interactive, batch).",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"model", "class"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		if f == nil {
			f = func() float64 { return 0 }
		}
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.Duration, m.TTFT, m.TPOT, m.Tokens, m.Attempts, m.Refusals, m.QueueWait, pools{src.Pools},
		gauge("guichet_requests_in_flight", "Requests being served.", src.InFlight),
		gauge("guichet_limits_backend_up", "1 while rate limits and budgets are checked by their configured backend (Redis in cluster mode); 0 while it is unreachable (then requests with limits are refused, or limited per replica, as limits.on_redis_down says).", src.LimitsUp),
		gauge("guichet_ledger_queue_lines", "Usage lines waiting in memory for the ledger writer.", src.LedgerQueued),
		gauge("guichet_ledger_spilled_lines", "Usage lines waiting in the spill file for the database to answer again.", src.LedgerSpilled),
		providers{src.Providers},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// providers reports each provider's health and load when scraped, so the
// figures are never stale and no code has to keep gauges in step.
type providers struct {
	each func(report func(model, provider string, up bool, inFlight int64))
}

var (
	providerUp = prometheus.NewDesc("guichet_provider_up",
		"1 when the provider's circuit is closed (healthy).", []string{"model", "provider"}, nil)
	providerInFlight = prometheus.NewDesc("guichet_provider_requests_in_flight",
		"Requests guichet has sent to the provider and not yet finished.", []string{"model", "provider"}, nil)
)

func (p providers) Describe(ch chan<- *prometheus.Desc) {
	ch <- providerUp
	ch <- providerInFlight
}

func (p providers) Collect(ch chan<- prometheus.Metric) {
	if p.each == nil {
		return
	}
	p.each(func(model, provider string, up bool, inFlight int64) {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(providerUp, prometheus.GaugeValue, v, model, provider)
		ch <- prometheus.MustNewConstMetric(providerInFlight, prometheus.GaugeValue, float64(inFlight), model, provider)
	})
}

// pools reports each model's scheduler when scraped.
type pools struct {
	each func(report func(model string, v scheduler.PoolView))
}

var (
	poolCapacity = prometheus.NewDesc("guichet_scheduler_capacity",
		"Requests the model's healthy providers run well at once (0: no known limit, nothing waits).", []string{"model"}, nil)
	poolRunning = prometheus.NewDesc("guichet_scheduler_running",
		"Requests the scheduler let through that are still running, by class.", []string{"model", "class"}, nil)
	poolQueued = prometheus.NewDesc("guichet_scheduler_queued",
		"Requests waiting in the scheduler's queue, by class.", []string{"model", "class"}, nil)
	tenantTokens = prometheus.NewDesc("guichet_scheduler_served_tokens_total",
		"Tokens served per tenant (org:ID, or user:ID without an organization) and type (input, output), as the fair share counts them.", []string{"model", "tenant", "type"}, nil)
)

func (p pools) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolCapacity, poolRunning, poolQueued, tenantTokens} {
		ch <- d
	}
}

func (p pools) Collect(ch chan<- prometheus.Metric) {
	if p.each == nil {
		return
	}
	p.each(func(model string, v scheduler.PoolView) {
		ch <- prometheus.MustNewConstMetric(poolCapacity, prometheus.GaugeValue, float64(v.Capacity), model)
		ch <- prometheus.MustNewConstMetric(poolRunning, prometheus.GaugeValue, float64(v.Running-v.RunningBatch), model, "interactive")
		ch <- prometheus.MustNewConstMetric(poolRunning, prometheus.GaugeValue, float64(v.RunningBatch), model, "batch")
		ch <- prometheus.MustNewConstMetric(poolQueued, prometheus.GaugeValue, float64(v.Queued-v.QueuedBatch), model, "interactive")
		ch <- prometheus.MustNewConstMetric(poolQueued, prometheus.GaugeValue, float64(v.QueuedBatch), model, "batch")
		for _, t := range v.Tenants {
			ch <- prometheus.MustNewConstMetric(tenantTokens, prometheus.CounterValue, float64(t.InputTokens), model, t.Tenant, "input")
			ch <- prometheus.MustNewConstMetric(tenantTokens, prometheus.CounterValue, float64(t.OutputTokens), model, t.Tenant, "output")
		}
	})
}
