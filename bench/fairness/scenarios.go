package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// The configurations every scenario runs under, on the same pool with the
// same seed.
type configuration struct {
	name      string
	scheduler bool
}

var configurations = []configuration{
	{name: "FIFO + round-robin", scheduler: false},
	{name: "guichet", scheduler: true},
}

// gw is guichet's configuration for c: the baseline sends everything on
// at once (no max_concurrency: requests pile into the replicas' own FIFO
// queues) round-robin; guichet holds the excess in its fair scheduler
// (max_concurrency = the replicas' --max-concurrency).
func (c configuration) gw(strategy string, weights map[string]float64) gwSpec {
	if !c.scheduler {
		return gwSpec{scheduler: false, strategy: "round_robin"}
	}
	return gwSpec{scheduler: true, strategy: strategy, weights: weights}
}

// The simulated GPU: ms-scale latencies so the whole run stays short.
func gpu(replicas int, seed int64) simSpec {
	return simSpec{
		replicas: replicas, maxConcurrency: 8,
		ttft: 20 * time.Millisecond, itl: 8 * time.Millisecond, itlPerRunning: time.Millisecond,
		prefillPerTok: 100 * time.Microsecond, seed: seed,
	}
}

// dur is full, or quick in -quick mode.
func (r *runner) dur(full, quick time.Duration) time.Duration {
	if r.quick {
		return quick
	}
	return full
}

func boolp(b bool) *bool { return &b }

// ---- 1. noisy neighbour ---------------------------------------------------

// noisy: tenant A keeps 48 streams open on a pool of 16 slots (3× the
// pool, 6× its fair half when B is active); tenant B sends an open-loop
// 6 requests/s (about 3 slots, under its fair half). B's throughput and
// p99 TTFT are compared with B alone on the idle pool, behind the same
// gateway configuration.
func (r *runner) noisy(ctx context.Context, c configuration) (row, error) {
	out := row{Scenario: "noisy neighbour", Config: c.name}
	st, err := r.startStack("noisy-"+slug(c.name), gpu(2, r.seed), c.gw("round_robin", nil), []string{"tenant-a", "tenant-b"})
	if err != nil {
		return out, err
	}
	defer st.stop()
	b := load{tenant: "tenant-b", rate: 6, prompt: 300, maxTokens: 32, measured: true}
	a := load{tenant: "tenant-a", closed: 48, prompt: 300, maxTokens: 64}
	if r.quick {
		a.closed = 24 // shorter queues: a shorter smoke run
	}
	// The same window (and the same requests of B in it) in both phases.
	grace, window := 60*time.Second, r.dur(15*time.Second, 2*time.Second)
	alone, err := r.runPhase(ctx, st, phase{name: "noisy B alone", warmup: r.dur(time.Second, 500*time.Millisecond), window: window, grace: grace, loads: []load{b}})
	if err != nil {
		return out, err
	}
	both, err := r.runPhase(ctx, st, phase{name: "noisy A+B", warmup: r.dur(4*time.Second, time.Second), window: window, grace: grace, loads: []load{a, b}})
	if err != nil {
		return out, err
	}
	thrAlone, thrBoth := alone.throughput("tenant-b"), both.throughput("tenant-b")
	rsAlone, rsBoth := alone.measuredResults("tenant-b"), both.measuredResults("tenant-b")
	p99Alone, p99Both := percentile(ttftsMs(rsAlone), 99), percentile(ttftsMs(rsBoth), 99)
	rej, failed := countRejected(rsBoth)
	share := 100 * thrBoth / thrAlone
	ratio := p99Both / p99Alone
	out.add(figure{label: "B throughput", value: share, unit: "% of alone", goal: "≥ 95%", met: boolp(share >= 95),
		detail: fmt.Sprintf("%.0f of %.0f tok/s", thrBoth, thrAlone)})
	out.add(figure{label: "B p99 TTFT", value: ratio, unit: "× idle", goal: "≤ 2×", met: boolp(ratio <= 2),
		detail: fmt.Sprintf("%s → %s; p50 %s → %s", ms(p99Alone), ms(p99Both), ms(percentile(ttftsMs(rsAlone), 50)), ms(percentile(ttftsMs(rsBoth), 50)))})
	out.Notes = append(out.Notes, fmt.Sprintf("A %.0f tok/s, utilisation %.0f%%", both.throughput("tenant-a"), 100*both.util))
	if rej+failed > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("B: %d refused, %d failed of %d", rej, failed, len(rsBoth)))
	}
	out.Notes = append(out.Notes, fmt.Sprintf("%.0f requests queued in the replicas (mean)", both.simWaiting))
	return out, nil
}

// ---- 2. weighted tenants --------------------------------------------------

// weightedTenants: 8 tenants, weights 1,1,1,1,2,2,4,4, all with the same
// request shape. Two are light (open loop, under their fair share); six
// are backlogged (closed loop, more streams than their fair share of the
// 16 slots, from 3 to 16 streams regardless of weight).
type weightedTenant struct {
	name   string
	weight float64
	closed int     // backlogged: closed-loop streams
	rate   float64 // light: open-loop requests per second
}

var weightedTenants = []weightedTenant{
	{"w1-light", 1, 0, 0.8},
	{"w1-a", 1, 4, 0},
	{"w1-b", 1, 8, 0},
	{"w1-c", 1, 3, 0},
	{"w2-light", 2, 0, 1.5},
	{"w2", 2, 6, 0},
	{"w4-a", 4, 10, 0},
	{"w4-b", 4, 16, 0},
}

func (r *runner) weighted(ctx context.Context, c configuration) (row, error) {
	out := row{Scenario: "8 weighted tenants", Config: c.name}
	weights := map[string]float64{}
	var names []string
	for _, t := range weightedTenants {
		weights[t.name] = t.weight
		names = append(names, t.name)
	}
	st, err := r.startStack("weighted-"+slug(c.name), gpu(2, r.seed), c.gw("round_robin", weights), names)
	if err != nil {
		return out, err
	}
	defer st.stop()
	const prompt, maxTokens = 200, 48
	var loads []load
	for _, t := range weightedTenants {
		// Light tenants are measured: their requests sent in the window
		// are followed to their end.
		loads = append(loads, load{tenant: t.name, closed: t.closed, rate: t.rate, prompt: prompt, maxTokens: maxTokens, measured: t.closed == 0})
	}
	ph, err := r.runPhase(ctx, st, phase{name: "weighted", warmup: r.dur(5*time.Second, time.Second), window: r.dur(20*time.Second, 2500*time.Millisecond), grace: 60 * time.Second, loads: loads})
	if err != nil {
		return out, err
	}
	var xs []float64
	var per, light []string
	minLight := math.Inf(1)
	for _, t := range weightedTenants {
		if t.closed > 0 {
			x := ph.throughput(t.name) / t.weight
			xs = append(xs, x)
			per = append(per, fmt.Sprintf("%s %.0f", t.name, x))
			continue
		}
		// A light tenant's demand: the requests it sent (all are followed
		// to their end); served: the tokens they got.
		rs := ph.recs[t.name].startedIn(0, ph.w1)
		if len(rs) == 0 {
			continue // none sent (a -quick run is short)
		}
		got, asked := 0, 0
		for _, x := range rs {
			got += x.tokens
			asked += x.maxTokens
		}
		served := 100 * float64(got) / float64(asked)
		minLight = math.Min(minLight, served)
		light = append(light, fmt.Sprintf("%s %.0f%% (p99 TTFT in the window %s)", t.name, served, ms(percentile(ttftsMs(ph.measuredResults(t.name)), 99))))
	}
	j := jain(xs)
	out.add(figure{label: "Jain (backlogged, tok/s ÷ weight)", value: j, goal: "≥ 0.98", met: boolp(j >= 0.98), precision: 3})
	out.add(figure{label: "light tenants served", value: minLight, unit: "% of demand (min)", goal: "≥ 95%", met: boolp(minLight >= 95)})
	out.add(figure{label: "utilisation", value: 100 * ph.util, unit: "%", goal: "≥ 97%", met: boolp(100*ph.util >= 97)})
	out.Notes = append(out.Notes, "tok/s ÷ weight: "+strings.Join(per, ", "), "light: "+strings.Join(light, ", "))
	return out, nil
}

// ---- 3. interactive vs batch flood -----------------------------------------

// batchFlood: an interactive tenant sends an open-loop 4 requests/s (about
// 2 slots of 16); then a batch tenant floods the pool with 64 closed-loop
// streams marked "service_tier": "flex".
func (r *runner) batchFlood(ctx context.Context, c configuration) (row, error) {
	out := row{Scenario: "interactive vs batch flood", Config: c.name}
	st, err := r.startStack("batch-"+slug(c.name), gpu(2, r.seed), c.gw("round_robin", nil), []string{"interactive", "batch"})
	if err != nil {
		return out, err
	}
	defer st.stop()
	in := load{tenant: "interactive", rate: 4, prompt: 300, maxTokens: 32, measured: true}
	flood := load{tenant: "batch", closed: 64, prompt: 300, maxTokens: 128, batch: true}
	if r.quick {
		flood.closed, flood.maxTokens = 24, 48 // shorter queues: a shorter smoke run
	}
	// The same window (and the same interactive requests in it) in both phases.
	grace, window := 60*time.Second, r.dur(15*time.Second, 2*time.Second)
	quiet, err := r.runPhase(ctx, st, phase{name: "interactive alone", warmup: r.dur(time.Second, 500*time.Millisecond), window: window, grace: grace, loads: []load{in}})
	if err != nil {
		return out, err
	}
	loud, err := r.runPhase(ctx, st, phase{name: "interactive + batch flood", warmup: r.dur(4*time.Second, time.Second), window: window, grace: grace, loads: []load{flood, in}})
	if err != nil {
		return out, err
	}
	rsQuiet, rsLoud := quiet.measuredResults("interactive"), loud.measuredResults("interactive")
	p99Quiet, p99Loud := percentile(ttftsMs(rsQuiet), 99), percentile(ttftsMs(rsLoud), 99)
	ratio := p99Loud / p99Quiet
	out.add(figure{label: "interactive p99 TTFT", value: ratio, unit: "× without flood", goal: "≤ 1.5×", met: boolp(ratio <= 1.5),
		detail: fmt.Sprintf("%s → %s; p50 %s → %s", ms(p99Quiet), ms(p99Loud), ms(percentile(ttftsMs(rsQuiet), 50)), ms(percentile(ttftsMs(rsLoud), 50)))})
	out.add(figure{label: "utilisation", value: 100 * loud.util, unit: "%", goal: "–",
		detail: fmt.Sprintf("batch %.0f tok/s", loud.throughput("batch"))})
	rej, failed := countRejected(rsLoud)
	if rej+failed > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("interactive: %d refused, %d failed of %d", rej, failed, len(rsLoud)))
	}
	thrQuiet, thrLoud := quiet.throughput("interactive"), loud.throughput("interactive")
	out.Notes = append(out.Notes, fmt.Sprintf("interactive %.0f → %.0f tok/s", thrQuiet, thrLoud))
	return out, nil
}

func ms(v float64) string {
	if math.IsInf(v, 1) {
		return "∞"
	}
	return fmt.Sprintf("%.0f ms", v)
}

func slug(s string) string {
	if strings.HasPrefix(s, "guichet") {
		return "guichet"
	}
	return "baseline"
}
