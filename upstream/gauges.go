package upstream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/guichet/guichet"
)

// Learning a vLLM server's capacity from its own gauges, for providers
// with no max_concurrency: the scheduler then holds the excess in its fair
// queue instead of piling it into vLLM's FIFO. The rule is simple and
// errs towards throughput:
//
//   - vLLM has requests waiting (or its KV cache is full): it runs all it
//     can, so the limit becomes what it is running;
//   - guichet is holding requests back at the limit while vLLM has no
//     queue: the limit grows by an eighth (at least one).
//
// Until vLLM first queues, the limit stays 0 (unknown: nothing waits in
// guichet). Counting guichet's own dispatches between scrapes is what
// keeps a stale gauge from over-dispatching (see peers.md §3.6).

// GaugeInterval is how often a vLLM server's /metrics is read.
const GaugeInterval = 2 * time.Second

// Gauges are the figures read from a vLLM server's /metrics.
type Gauges struct {
	Running, Waiting float64
	KVCache          float64 // 0..1
}

// LearnsLimit reports whether p's capacity is learnt from its gauges.
func (p *Provider) LearnsLimit() bool { return p.MaxConcurrency == 0 && p.Type == guichet.ProviderVLLM }

// LearnLimit reads p's gauges until ctx ends and adjusts its limit.
func (p *Provider) LearnLimit(ctx context.Context) {
	t := time.NewTicker(GaugeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !p.Healthy() {
			continue
		}
		if g, err := p.readGauges(ctx); err == nil {
			p.adjustLimit(g)
		}
	}
}

func (p *Provider) adjustLimit(g Gauges) {
	limit := p.learntLimit.Load()
	switch {
	case g.Waiting > 0 || g.KVCache >= 0.98:
		p.learntLimit.Store(max(1, int64(g.Running)))
	case limit > 0 && p.Inflight() >= limit:
		p.learntLimit.Store(limit + max(1, limit/8))
	}
}

func (p *Provider) readGauges(ctx context.Context) (Gauges, error) {
	ctx, cancel := context.WithTimeout(ctx, GaugeInterval)
	defer cancel()
	req, err := p.NewRequest(ctx, http.MethodGet, "/metrics", nil, "")
	if err != nil {
		return Gauges{}, err
	}
	resp, err := p.Do(req)
	if err != nil {
		return Gauges{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Gauges{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseGauges(io.LimitReader(resp.Body, 4<<20)), nil
}

// parseGauges sums vLLM's gauges over the model names a server reports
// (the KV-cache usage is their maximum).
func parseGauges(r io.Reader) Gauges {
	var g Gauges
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "vllm:") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		switch name {
		case "vllm:num_requests_running":
			g.Running += v
		case "vllm:num_requests_waiting":
			g.Waiting += v
		case "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc":
			g.KVCache = max(g.KVCache, v)
		}
	}
	return g
}
