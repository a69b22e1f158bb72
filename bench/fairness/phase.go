package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A phase runs loads against a stack for a warm-up and a measurement
// window. Loads marked measured stop sending at the window's end, and the
// phase waits (up to grace) for their requests sent within the window to
// end, while the other loads keep the pool busy: a slow answer is
// measured, not cut off. Then everything still in flight is cancelled.

type load struct {
	tenant    string
	closed    int     // closed-loop streams (each sends its next request when the last ends); 0: open loop
	rate      float64 // open loop: Poisson arrivals per second
	prompt    int     // tokens (words) of the user message
	maxTokens int     // the answer's length (the replicas run --output-mode max_tokens)
	batch     bool    // sent with "service_tier": "flex"
	measured  bool
}

// openLead is how long before the window open-loop arrivals are drawn
// from (longer than any warm-up).
const openLead = 10 * time.Second

type phase struct {
	name           string
	warmup, window time.Duration
	grace          time.Duration // longest wait for the measured requests after the window
	loads          []load
}

type phaseResult struct {
	recs          map[string]*recorder
	w0, w1        time.Duration // the window, as offsets from the origin
	util          float64       // mean of running sequences / capacity, sampled every 100 ms in the window
	simWaiting    float64       // mean of requests waiting in the replicas' own queues
	before, after []simStats
	unfinished    int // measured requests still running when the grace ran out
}

func (p *phaseResult) windowSeconds() float64 { return (p.w1 - p.w0).Seconds() }

// throughput is a tenant's content tokens per second within the window.
func (p *phaseResult) throughput(tenant string) float64 {
	return float64(p.recs[tenant].tokensIn(p.w0, p.w1)) / p.windowSeconds()
}

// measuredResults are a tenant's requests sent within the window.
func (p *phaseResult) measuredResults(tenant string) []result {
	return p.recs[tenant].startedIn(p.w0, p.w1)
}

func seedOf(seed int64, parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64() ^ uint64(seed)
}

func (r *runner) runPhase(ctx context.Context, st *stack, ph phase) (*phaseResult, error) {
	if err := st.waitIdle(20 * time.Second); err != nil {
		return nil, err
	}
	before, err := st.stats()
	if err != nil {
		return nil, err
	}
	res := &phaseResult{recs: map[string]*recorder{}, w0: ph.warmup, w1: ph.warmup + ph.window, before: before}
	origin := time.Now()
	span := ph.warmup + ph.window + ph.grace + 5*time.Second
	for _, l := range ph.loads {
		if res.recs[l.tenant] == nil {
			res.recs[l.tenant] = newRecorder(l.tenant, origin, span)
		}
	}
	url := st.guichet.URL() + "/v1/chat/completions"
	windowEnd := origin.Add(res.w1)

	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bgStop atomic.Bool
	var all, measured sync.WaitGroup
	for _, l := range ph.loads {
		// The same load draws the same prompts and arrivals in every
		// phase and configuration.
		seed := seedOf(r.seed, l.tenant, fmt.Sprint(l.closed, l.rate, l.prompt, l.maxTokens))
		rng := rand.New(rand.NewPCG(seed, 0))      // bodies
		arrivals := rand.New(rand.NewPCG(seed, 1)) // start offsets, arrivals
		// Lengths vary per request (uniformly, ±50% for answers, ±25% for
		// prompts) so that streams do not finish in lockstep.
		var mu sync.Mutex
		nextBody := func() ([]byte, int) {
			mu.Lock()
			defer mu.Unlock()
			body := chatBody{
				Model: model, Stream: true, MaxTokens: spread(rng, l.maxTokens, 0.5),
				Messages:      []message{{Role: "user", Content: words(rng, spread(rng, l.prompt, 0.25))}},
				StreamOptions: map[string]any{"include_usage": true},
			}
			if l.batch {
				body.ServiceTier = "flex"
			}
			b, _ := json.Marshal(body)
			return b, body.MaxTokens
		}
		key := st.keys[l.tenant]
		rec := res.recs[l.tenant]
		issuing := func() bool {
			if reqCtx.Err() != nil {
				return false
			}
			if l.measured {
				return time.Now().Before(windowEnd)
			}
			return !bgStop.Load()
		}
		if l.closed > 0 {
			for range l.closed {
				// Spread the streams' starts over the first half second.
				delay := time.Duration(arrivals.Int64N(int64(500 * time.Millisecond)))
				all.Add(1)
				if l.measured {
					measured.Add(1)
				}
				go func() {
					defer all.Done()
					if l.measured {
						defer measured.Done()
					}
					if !sleepCtx(reqCtx, delay) {
						return
					}
					for issuing() {
						payload, n := nextBody()
						x := stream(reqCtx, url, key, payload, false, rec.token)
						x.maxTokens = n
						rec.add(x)
						if x.status != http.StatusOK && reqCtx.Err() == nil {
							backoff := 50 * time.Millisecond
							if x.retryAfter > 0 {
								backoff = min(x.retryAfter, time.Second)
							}
							sleepCtx(reqCtx, backoff)
						}
					}
				}()
			}
			continue
		}
		all.Add(1)
		go func() { // open loop: Poisson arrivals
			defer all.Done()
			// Arrivals are drawn from openLead before the window, and
			// those before the phase's start skipped: the same load sends
			// the same requests at the same offsets in the window, whatever
			// the warm-up.
			next := origin.Add(res.w0 - openLead)
			for {
				next = next.Add(time.Duration(arrivals.ExpFloat64() / l.rate * float64(time.Second)))
				if next.Before(origin) {
					continue
				}
				if !sleepCtx(reqCtx, time.Until(next)) || !issuing() {
					return
				}
				all.Add(1)
				if l.measured {
					measured.Add(1)
				}
				payload, n := nextBody()
				go func() {
					defer all.Done()
					if l.measured {
						defer measured.Done()
					}
					x := stream(reqCtx, url, key, payload, false, rec.token)
					x.maxTokens = n
					rec.add(x)
				}()
			}
		}()
	}

	// Utilisation: the replicas' running sequences over their capacity.
	var samples, sumUtil, sumWait float64
	capacity := float64(len(st.sims) * st.spec.maxConcurrency)
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		if !sleepCtx(reqCtx, time.Until(origin.Add(res.w0))) {
			return
		}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for time.Now().Before(windowEnd) {
			if ss, err := st.stats(); err == nil {
				var run, wait int64
				for _, s := range ss {
					run += s.Running
					wait += s.Waiting
				}
				samples++
				sumUtil += math.Min(float64(run)/capacity, 1)
				sumWait += float64(wait)
				if st.scheduler && os.Getenv("FAIRNESS_TRACE") != "" {
					var v struct {
						Models map[string]struct {
							Running, Queued int
						}
					}
					json.Unmarshal([]byte(st.schedulerView()), &v)
					fmt.Fprintf(r.logw, "trace %s sims running %d waiting %d, guichet running %d queued %d\n", time.Now().Format("15:04:05.000"), run, wait, v.Models[model].Running, v.Models[model].Queued)
				}
			}
			select {
			case <-t.C:
			case <-reqCtx.Done():
				return
			}
		}
	}()

	if !sleepCtx(ctx, time.Until(windowEnd)) {
		return nil, ctx.Err()
	}
	<-sampleDone
	done := make(chan struct{})
	go func() { measured.Wait(); close(done) }()
	timedOut := false
	select {
	case <-done:
	case <-time.After(ph.grace):
		timedOut = true
	case <-ctx.Done():
	}
	bgStop.Store(true)
	cancel()
	all.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if timedOut {
		for _, l := range ph.loads {
			if l.measured {
				for _, x := range res.measuredResults(l.tenant) {
					if x.status == http.StatusOK && !x.complete {
						res.unfinished++
					}
				}
			}
		}
	}
	if samples > 0 {
		res.util, res.simWaiting = sumUtil/samples, sumWait/samples
	}
	if err := st.alive(); err != nil {
		return nil, err
	}
	if err := st.waitIdle(20 * time.Second); err != nil {
		return nil, err
	}
	if res.after, err = st.stats(); err != nil {
		return nil, err
	}
	if st.scheduler {
		os.WriteFile(filepath.Join(st.dir, slugify(ph.name)+"-scheduler.json"), []byte(st.schedulerView()), 0o644)
	}
	r.logf("  %s: %s", ph.name, res.summary(ph))
	return res, nil
}

// summary is one log line per phase: each tenant's requests and tokens/s.
func (p *phaseResult) summary(ph phase) string {
	s := fmt.Sprintf("util %.1f%%, sim queue %.1f", 100*p.util, p.simWaiting)
	seen := map[string]bool{}
	for _, l := range ph.loads {
		if seen[l.tenant] {
			continue
		}
		seen[l.tenant] = true
		rs := p.measuredResults(l.tenant)
		ok, rej := 0, 0
		for _, x := range rs {
			switch {
			case x.status == http.StatusOK:
				ok++
			case x.rejected():
				rej++
			}
		}
		t := ttftsMs(rs)
		s += fmt.Sprintf("; %s %d ok %d rejected %.0f tok/s TTFT p50 %.0f p99 %.0f ms", l.tenant, ok, rej, p.throughput(l.tenant), percentile(t, 50), percentile(t, 99))
	}
	if p.unfinished > 0 {
		s += fmt.Sprintf("; %d measured requests unfinished after the grace period", p.unfinished)
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func slugify(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// spread draws an integer uniformly within mean ± share×mean.
func spread(rng *rand.Rand, mean int, share float64) int {
	d := int(float64(mean) * share)
	if d <= 0 {
		return mean
	}
	return mean - d + rng.IntN(2*d+1)
}
