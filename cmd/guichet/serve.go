package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/httpapi"
	"github.com/guichet/guichet/ledger"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/tokens"
	"github.com/guichet/guichet/tracing"
	"github.com/guichet/guichet/upstream"
	"github.com/guichet/guichet/version"
)

// MinMasterKeyLength is the shortest master key production mode accepts.
const MinMasterKeyLength = 32

// serveHooks lets demo show its banner once the listener is up.
type serveHooks struct {
	listening func(addr, key string)
}

func serve(args []string, hooks *serveHooks) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", "", "configuration file (default: the bundled example)")
	listen := fs.String("listen", "", "listen address (default 127.0.0.1:8080, env GUICHET_LISTEN)")
	dataDir := fs.String("data", "", "data directory (default ./data, env GUICHET_DATA)")
	dev := fs.Bool("dev", false, "development mode: generate a master key if none is set")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", firstSet(os.Getenv("GUICHET_LOG_FORMAT"), "text"), "text or json (one JSON object a line, for log collectors; env GUICHET_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(*logLevel, *logFormat)

	cfg, err := loadConfig(*configPath)
	if err == nil && *configPath == "" {
		log.Info("no --config given: using the bundled example, whose models are served by guichet-sim (a simulator)")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "guichet: configuration %s is not valid:\n%v\n", *configPath, err)
		return 1
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	cfg.Server.Listen = firstSet(*listen, os.Getenv("GUICHET_LISTEN"), cfg.Server.Listen)
	cfg.Server.DataDir = firstSet(*dataDir, os.Getenv("GUICHET_DATA"), cfg.Server.DataDir)

	key, err := masterKey(cfg, *dev)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet:", err)
		return 1
	}
	if err := os.MkdirAll(cfg.Server.DataDir, 0o750); err != nil {
		fmt.Fprintln(os.Stderr, "guichet: data directory:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openState(ctx, cfg, true, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet:", err)
		return 1
	}
	defer st.Close()
	models := routing.NewRegistry(cfg)
	q, qh := st.quota(cfg, log)
	usage, err := ledger.New(st.usage, cfg.Server.DataDir, log, ledger.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet: usage ledger:", err)
		return 1
	}
	if days := cfg.Ledger.RetentionDays; days > 0 {
		go retain(ctx, st.usage, days, log)
	}
	opts := httpapi.Options{Config: cfg, Models: models, Logger: log, Identity: st.directory(ctx, cfg, key, log), Quota: q, Ledger: usage, Usage: st.usage,
		Library: st.library, Index: st.index}
	if qh != nil { // a nil *Fallback is not a nil interface
		opts.QuotaHealth = qh
	}
	tokens.Warm()
	stopTracing, err := tracing.Start(ctx, cfg.Tracing, version.Version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet: tracing:", err)
		return 1
	}
	opts.Tracing = tracing.Enabled(cfg.Tracing)
	if st.redis != nil {
		replicas := st.redis.Replicas(cfg.Storage.RedisPrefix+"replicas", replicaID())
		go replicas.Run(ctx)
		opts.Replicas = replicas.Live
	}
	if opts.Tracing {
		log.Info("traces sent over OTLP/HTTP", "endpoint", redact(cfg.Tracing.Endpoint))
	}
	api := httpapi.NewServer(opts)
	onChange := func(p *upstream.Provider) {
		if p.Healthy() {
			log.Info("provider up", "provider", p.ID, "url", redact(p.URL), "max_context_length", p.MaxContext())
		} else {
			log.Warn("provider down", "provider", p.ID, "url", redact(p.URL), "reason", p.LastError())
		}
	}
	models.Start(ctx, onChange)

	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet:", err)
		return 1
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("guichet serving", "version", version.Version, "listen", "http://"+ln.Addr().String(), "models", len(models.Models), "config", cfg.Format, "storage", st.mode)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if hooks != nil && hooks.listening != nil {
		hooks.listening(ln.Addr().String(), key) // serving already: the hook may call the API
	}
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "guichet:", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight", "timeout", cfg.Server.ShutdownTimeout.D())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "err", err)
	}
	api.Close()
	lctx, lcancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer lcancel()
	if err := usage.Close(lctx); err != nil {
		log.Error("usage ledger: lines still queued at exit stay in the spill file", "err", err)
	}
	log.Info("usage ledger flushed", "recorded", usage.Recorded(), "spilled", usage.Spilled())
	if err := stopTracing(lctx); err != nil {
		log.Warn("traces not all sent at exit", "err", err)
	}
	return 0
}

// retain forgets usage lines older than days, at start and then daily.
func retain(ctx context.Context, usage guichet.Ledger, days int, log *slog.Logger) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		before := time.Now().UTC().AddDate(0, 0, -days)
		if err := usage.PruneUsage(ctx, before); err != nil && ctx.Err() == nil {
			log.Error("usage ledger retention", "before", before.Format(time.DateOnly), "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loadConfig loads path, or the bundled example when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.LoadExample()
	}
	return config.Load(path)
}

// masterKey reads GUICHET_MASTER_KEY (or OpenGateLLM's auth_master_key).
// Production mode refuses a missing, short or default key; --dev generates
// one and prints it once.
func masterKey(cfg *config.Config, dev bool) (string, error) {
	key := os.Getenv("GUICHET_MASTER_KEY")
	if key == "" {
		key = cfg.MasterKeyFromFile()
	}
	if key == "changeme" {
		key = "" // OpenGateLLM's default is no secret
	}
	switch {
	case len(key) >= MinMasterKeyLength:
		return key, nil
	case dev:
		b := make([]byte, 32)
		rand.Read(b)
		key = "sk-dev-" + base64.RawURLEncoding.EncodeToString(b)
		fmt.Fprintf(os.Stderr, "guichet --dev: generated master key (shown once): %s\n", key)
		return key, nil
	case key == "":
		return "", fmt.Errorf("no master key: set GUICHET_MASTER_KEY to a secret of at least %d characters (for example: export GUICHET_MASTER_KEY=sk-$(head -c 32 /dev/urandom | base64 | tr -d '/+=')), or run with --dev", MinMasterKeyLength)
	default:
		return "", fmt.Errorf("the master key is %d characters long: it needs at least %d", len(key), MinMasterKeyLength)
	}
}

// redact hides a password in a provider URL (http://user:secret@host).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

func newLogger(level, format string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func checkConfig(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			fmt.Fprintf(os.Stderr, "%s: %d problem(s):\n", path, len(ps))
			for _, p := range ps {
				fmt.Fprintln(os.Stderr, "  "+p.String())
			}
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		}
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	fmt.Printf("%s: valid (%s format, %d models)\n", path, cfg.Format, len(cfg.Models))
	return 0
}

// replicaID names this process among the replicas: host, pid and a
// random suffix (pids repeat across containers).
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}
