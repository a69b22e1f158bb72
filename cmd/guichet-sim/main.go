// Command guichet-sim runs the upstream model-server simulator: it answers
// like vLLM's OpenAI server and HuggingFace TEI, with configurable latency,
// saturation and faults. It is a simulator, not a model.
//
// For scheduling and routing benchmarks a replica can behave like a GPU:
// --itl-per-running slows every stream as the batch grows,
// --prefill-per-token charges the prompt tokens missing from the prefix
// cache (--prefix-cache-blocks, --block-tokens), and --scheduling-policy
// priority orders the waiting queue by the requests' priority field.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/guichet/guichet/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "guichet-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg    sim.Config
		f      sim.Faults
		listen = flag.String("listen", "127.0.0.1:8001", "address to listen on (host:port; :0 picks a free port)")
		models = flag.String("model", "sim-model", "comma-separated served model names")
	)
	flag.IntVar(&cfg.MaxModelLen, "max-model-len", 4096, "context length, in tokens")
	flag.DurationVar(&cfg.TTFT, "ttft", 0, "time to first token, once a slot is free")
	flag.DurationVar(&cfg.ITL, "itl", 0, "inter-token latency")
	flag.IntVar(&cfg.OutputTokens, "output-tokens", 16, "tokens per answer (see --output-mode)")
	flag.StringVar(&cfg.OutputMode, "output-mode", "fixed", "fixed | random | max_tokens")
	flag.StringVar(&cfg.Content, "content", "lorem", "lorem | echo")
	flag.IntVar(&cfg.EmbeddingDim, "embedding-dim", 384, "embedding dimensions")
	flag.IntVar(&cfg.MaxConcurrency, "max-concurrency", 0, "requests running at once; others queue (0 = unlimited)")
	flag.IntVar(&cfg.MaxQueue, "max-queue", 0, "waiting queue bound; 503 when full (0 = unbounded)")
	flag.DurationVar(&cfg.ITLPerRunning, "itl-per-running", 0,
		"added to --itl per other running sequence, at every token step (batch-dependent decoding; 0 = off)")
	flag.DurationVar(&cfg.PrefillPerToken, "prefill-per-token", 0,
		"added to --ttft per prompt token not found in the prefix cache (every prompt token without one)")
	flag.IntVar(&cfg.PrefixCacheBlocks, "prefix-cache-blocks", 0,
		"prefix cache size in blocks, LRU, like vLLM's automatic prefix caching (0 = no cache)")
	flag.IntVar(&cfg.BlockTokens, "block-tokens", 16, "tokens per prefix-cache block")
	policy := flag.String("scheduling-policy", "fcfs",
		"fcfs | priority: order the waiting queue by arrival, or by the request's priority field (lower first); fcfs refuses a non-zero priority, like vLLM")
	flag.Float64Var(&f.ErrorRate, "error-rate", 0, "share of requests answered with --error-status")
	flag.IntVar(&f.ErrorStatus, "error-status", 500, "status of injected errors")
	flag.Float64Var(&f.RateLimitRate, "rate-limit-rate", 0, "share of requests answered 429")
	flag.Float64Var(&f.HangRate, "hang-rate", 0, "share of requests never answered")
	flag.Float64Var(&f.CutRate, "cut-rate", 0, "share of requests whose connection is dropped mid-answer")
	flag.IntVar(&f.CutAfterTokens, "cut-after-tokens", 2, "tokens streamed before a cut")
	flag.IntVar(&f.SlowReadBPS, "slow-read-bps", 0, "read request bodies at this many bytes/s (0 = full speed)")
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of generated text, faults and random lengths")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}
	switch cfg.OutputMode {
	case "fixed", "random", "max_tokens":
	default:
		return fmt.Errorf("--output-mode must be fixed, random or max_tokens, not %q", cfg.OutputMode)
	}
	switch cfg.Content {
	case "lorem", "echo":
	default:
		return fmt.Errorf("--content must be lorem or echo, not %q", cfg.Content)
	}
	switch *policy {
	case "fcfs":
	case "priority":
		cfg.PriorityScheduling = true
	default:
		return fmt.Errorf("--scheduling-policy must be fcfs or priority, not %q", *policy)
	}
	switch {
	case cfg.ITLPerRunning < 0 || cfg.PrefillPerToken < 0:
		return errors.New("--itl-per-running and --prefill-per-token must not be negative")
	case cfg.PrefixCacheBlocks < 0:
		return errors.New("--prefix-cache-blocks must not be negative")
	case cfg.BlockTokens < 1:
		return errors.New("--block-tokens must be at least 1")
	}
	for name, v := range map[string]float64{"error-rate": f.ErrorRate, "rate-limit-rate": f.RateLimitRate, "hang-rate": f.HangRate, "cut-rate": f.CutRate} {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("--%s must be within [0,1]", name)
		}
	}
	for _, m := range strings.Split(*models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			cfg.Models = append(cfg.Models, m)
		}
	}
	if len(cfg.Models) == 0 {
		return errors.New("--model needs at least one name")
	}
	cfg.Faults = f

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// Cancelling base ends every request context: it releases hanging and
	// streaming handlers once the grace period is over.
	base, abort := context.WithCancel(context.Background())
	defer abort()
	srv := &http.Server{
		Handler:           sim.New(cfg),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	// Signals are caught before the address is announced: whoever reads
	// it may stop the simulator at once.
	stop, cancelSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancelSignals()
	fmt.Fprintf(os.Stderr, "guichet-sim (an upstream simulator, not a model) listening on http://%s serving %s\n",
		ln.Addr(), strings.Join(cfg.Models, ","))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-stop.Done():
	}
	cancelSignals() // a second signal kills at once

	grace, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		abort()
		_ = srv.Close()
	}
	return nil
}
