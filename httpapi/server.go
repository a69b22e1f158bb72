// Package httpapi is guichet's HTTP front: routes, middleware and the
// handlers that walk each request through its journey —
//
//	decode (handlers) → authenticate (middleware.go) → route and send
//	(routing.Model.Send) → respond (relay.go) → settle (settle.go).
package httpapi

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/metrics"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/upstream"
)

// Server serves guichet's API.
type Server struct {
	cfg      *config.Config
	models   *routing.Registry
	metrics  *metrics.Metrics
	log      *slog.Logger
	keyHash  [sha256.Size]byte
	inflight atomic.Int64
	handler  http.Handler
}

// Options are the Server's dependencies.
type Options struct {
	Config    *config.Config
	Models    *routing.Registry
	Logger    *slog.Logger
	MasterKey string // only its hash is kept
}

// NewServer builds the API handler.
func NewServer(o Options) *Server {
	s := &Server{
		cfg:     o.Config,
		models:  o.Models,
		log:     o.Logger,
		keyHash: sha256.Sum256([]byte(o.MasterKey)),
	}
	s.metrics = metrics.New(func() float64 { return float64(s.inflight.Load()) })
	s.models.Observe(func(p *upstream.Provider, outcome string) {
		s.metrics.Attempts.WithLabelValues(p.ID, outcome).Inc()
	})
	s.handler = s.routes()
	return s
}

// Metrics exposes the collectors (for provider health updates).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}
