// Package httpapi is guichet's HTTP front: routes, middleware and the
// handlers that walk each request through its journey —
//
//	decode (handlers) → authenticate (middleware.go) → admit (admit.go:
//	limits and budgets) → route and send (routing.Model.Send) → respond
//	(relay.go) → settle (settle.go, admit.go's release).
//
// The admin and self-service API (admin.go, me.go) manages identities.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/identity"
	"github.com/guichet/guichet/ledger"
	"github.com/guichet/guichet/metrics"
	"github.com/guichet/guichet/quota"
	"github.com/guichet/guichet/rag"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/scheduler"
	"github.com/guichet/guichet/upstream"
)

// Server serves guichet's API.
type Server struct {
	cfg      *config.Config
	models   *routing.Registry
	metrics  *metrics.Metrics
	log      *slog.Logger
	identity *identity.Directory
	store    guichet.IdentityStore // changes go through it to reach every cache
	quota    guichet.Quota
	health   QuotaHealth
	inflight atomic.Int64
	handler  http.Handler
	spend    *spender
	stop     context.CancelFunc
	ledger   *ledger.Writer
	usage    guichet.Ledger
	tracing  bool
	pools    map[string]*scheduler.Pool // per model; nil: scheduler off
	rag      *rag.Service
}

// Options are the Server's dependencies.
type Options struct {
	Config *config.Config
	Models *routing.Registry
	Logger *slog.Logger
	// Identity authenticates keys (the master key among them) and holds
	// the identity store; required.
	Identity *identity.Directory
	// Quota admits requests against limits and budgets (default: in process).
	Quota guichet.Quota
	// QuotaHealth reports the quota backend's state for /ready and metrics.
	QuotaHealth QuotaHealth
	// Ledger receives a usage line per request; nil: none is kept.
	Ledger *ledger.Writer
	// Usage reads the ledger back (GET /v1/me/usage).
	Usage guichet.Ledger
	// Replicas counts the replicas sharing the providers (cluster mode);
	// each schedules its share of their capacity. nil: one replica.
	Replicas func() int
	// Tracing records a span per request and per step with the global
	// OpenTelemetry tracer (see package tracing).
	Tracing bool
	// Library and Index keep the RAG service's collections, documents and
	// chunks; nil: the RAG endpoints answer 404.
	Library guichet.Library
	Index   guichet.Index
}

// QuotaHealth is what /ready and /metrics say of the quota backend.
type QuotaHealth interface {
	Healthy() bool  // admissions are decided by the configured backend
	Degraded() bool // per-replica limits stand in for an unreachable Redis
}

// NewServer builds the API handler.
func NewServer(o Options) *Server {
	s := &Server{
		cfg:      o.Config,
		models:   o.Models,
		log:      o.Logger,
		identity: o.Identity,
		quota:    o.Quota,
		health:   o.QuotaHealth,
		ledger:   o.Ledger,
		usage:    o.Usage,
		tracing:  o.Tracing,
	}
	if s.identity == nil || s.identity.Store() == nil {
		panic("httpapi: Options.Identity, with a store, is required")
	}
	s.store = s.identity.Store()
	var ctx context.Context
	ctx, s.stop = context.WithCancel(context.Background())
	s.spend = newSpender(s.store, s.log)
	go s.spend.run(ctx)
	if s.quota == nil {
		s.quota = quota.NewMemory(nil)
	}
	s.pools = newPools(s.cfg.Scheduler, s.models, o.Replicas)
	if o.Library != nil && o.Index != nil {
		var embed rag.Embedder
		if s.cfg.RAG.EmbeddingModel != "" {
			embed = embedder{s}
		}
		s.rag = rag.New(o.Library, o.Index, embed, rag.Options{}, s.log)
		if s.cfg.Storage.Postgres == "" {
			// Embedded: whatever is unfinished was ours. (In cluster mode
			// another replica may be ingesting it.)
			if err := s.rag.Resume(ctx); err != nil {
				s.log.Error("RAG: cannot mark interrupted ingestions failed", "err", err)
			}
		} else {
			s.rag.ReapEvery(5 * time.Minute)
		}
	}
	src := metrics.Sources{
		InFlight: func() float64 { return float64(s.inflight.Load()) },
		LimitsUp: func() float64 {
			if s.limitsState() == "ok" {
				return 1
			}
			return 0
		},
		Providers: func(report func(model, provider string, up bool, inFlight int64)) {
			for _, m := range s.models.Models {
				for _, p := range m.Providers {
					report(m.Name, p.ID, p.Healthy(), p.Inflight())
				}
			}
		},
	}
	src.Pools = func(report func(model string, v scheduler.PoolView)) {
		for name, p := range s.pools {
			report(name, p.View())
		}
	}
	if s.ledger != nil {
		src.LedgerQueued = func() float64 { return float64(s.ledger.Queued()) }
		src.LedgerSpilled = func() float64 { return float64(s.ledger.Spilled()) }
	}
	s.metrics = metrics.New(src)
	s.models.Observe(func(p *upstream.Provider, outcome string) {
		s.metrics.Attempts.WithLabelValues(p.ID, outcome).Inc()
	})
	s.handler = s.routes()
	return s
}

// Close writes what is pending (budget spends) to the store; call it once
// the HTTP server has shut down.
func (s *Server) Close() {
	s.stop()
	if s.rag != nil {
		s.rag.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.spend.flush(ctx)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}
