package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ---- 4. prefix affinity ------------------------------------------------------

// prefixAffinity: 4 replicas with a prefix cache (LRU, sized for about a
// quarter of the working set and a half more) and a prefill cost per
// uncached prompt token. A multi-turn chat workload: each conversation has
// a long system prompt of its own and a growing history (the answers it
// got); conversations start staggered and think between turns.
//
// The oracle is the hit ratio if every conversation always came back to a
// replica holding its previous turn: each turn finds the previous turn's
// prompt cached (its full blocks; the first turn finds nothing), computed
// from the prompt tokens the replicas reported.
func (r *runner) prefixAffinity(ctx context.Context, c configuration) (row, error) {
	out := row{Scenario: "prefix affinity", Config: c.name}
	spec := gpu(4, r.seed)
	spec.cacheBlocks = 2400
	strategy := "prefix_affinity"
	st, err := r.startStack("prefix-"+slug(c.name), spec, c.gw(strategy, nil), []string{"chat"})
	if err != nil && c.scheduler && strings.Contains(err.Error(), strategy) {
		// The strategy is not in this guichet yet: measure the scheduler
		// with round-robin and say so.
		r.logf("  guichet refuses routing.strategy %s: running the guichet row with round_robin", strategy)
		strategy = "round_robin"
		out.Config += " (round_robin: no prefix_affinity yet)"
		st, err = r.startStack("prefix-"+slug(c.name)+"-rr", spec, c.gw(strategy, nil), []string{"chat"})
	}
	if err != nil {
		return out, err
	}
	defer st.stop()
	for _, v := range []struct {
		name  string
		think [2]time.Duration
	}{
		// About a third of the 32 slots busy on average.
		{"light load", [2]time.Duration{time.Second, 2 * time.Second}},
		// Shorter thinking: about two thirds busy, often full.
		{"busy", [2]time.Duration{300 * time.Millisecond, 900 * time.Millisecond}},
	} {
		if r.quick {
			v.think[0], v.think[1] = v.think[0]/8, v.think[1]/8
		}
		res, err := r.conversations(ctx, st, v.name, v.think)
		if err != nil {
			return out, err
		}
		rel := res.ratio / res.oracle
		out.add(figure{label: v.name + ": hit ratio", value: rel, unit: "of oracle", goal: "≥ 0.9", met: boolp(rel >= 0.9), precision: 2,
			detail: fmt.Sprintf("%.2f vs %.2f", res.ratio, res.oracle)})
		out.add(figure{label: v.name + ": load", value: res.imbalance, unit: "max/mean requests", goal: "≤ 1.25", met: boolp(res.imbalance <= 1.25), precision: 2})
		out.Notes = append(out.Notes, fmt.Sprintf("%s: mean TTFT after the first turn %s, %.0f%% of slots busy", v.name, ms(res.ttftLater), 100*res.util))
		if res.aborted > 0 {
			out.Notes = append(out.Notes, fmt.Sprintf("%s: %d conversations aborted on errors", v.name, res.aborted))
		}
	}
	return out, nil
}

type prefixResult struct {
	ratio, oracle float64 // hit ratios: measured, oracle
	imbalance     float64 // max/mean requests per replica
	ttftLater     float64 // mean TTFT of turns after the first, ms
	util          float64 // mean running sequences / capacity while it ran
	aborted       int
}

// conversations runs the multi-turn workload once on st.
func (r *runner) conversations(ctx context.Context, st *stack, variant string, think [2]time.Duration) (*prefixResult, error) {
	if err := st.waitIdle(10 * time.Second); err != nil {
		return nil, err
	}
	before, err := st.stats()
	if err != nil {
		return nil, err
	}
	convs, turns := 64, 6
	if r.quick {
		convs, turns = 16, 2
	}
	const system, user, answer = 1024, 48, 32
	stagger := r.dur(2*time.Second, 200*time.Millisecond)

	url := st.guichet.URL() + "/v1/chat/completions"
	key := st.keys["chat"]
	results := make([][]result, convs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	aborted, retries, firstRetry := 0, 0, ""
	start := time.Now()
	// Utilisation, sampled like the other scenarios'.
	stop := make(chan struct{})
	var samples, busy, replicaSamples, fullSamples float64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if ss, err := st.stats(); err == nil {
				run := 0
				for _, s := range ss {
					run += int(s.Running)
					replicaSamples++
					if int(s.Running) >= st.spec.maxConcurrency {
						fullSamples++
					}
				}
				samples++
				busy += float64(run) / float64(len(st.sims)*st.spec.maxConcurrency)
			}
		}
	}()
	for k := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seedOf(r.seed, "conversation", variant), uint64(k)))
			msgs := []message{{Role: "system", Content: fmt.Sprintf("conversation %d %s", k, words(rng, system-2))}}
			if !sleepCtx(ctx, time.Duration(rng.Int64N(int64(stagger)))) {
				return
			}
			for range turns {
				msgs = append(msgs, message{Role: "user", Content: words(rng, spread(rng, user, 0.5))})
				body, _ := json.Marshal(chatBody{Model: model, Stream: true, MaxTokens: spread(rng, answer, 0.5), Messages: msgs,
					StreamOptions: map[string]any{"include_usage": true}})
				var x result
				for try := 0; try < 5; try++ {
					x = stream(ctx, url, key, body, true, nil)
					if x.status == http.StatusOK && x.complete || ctx.Err() != nil {
						break
					}
					mu.Lock()
					retries++
					if firstRetry == "" {
						firstRetry = fmt.Sprintf("status %d, complete %v", x.status, x.complete)
					}
					mu.Unlock()
					sleepCtx(ctx, max(min(x.retryAfter, 2*time.Second), 100*time.Millisecond))
				}
				if x.status != http.StatusOK || !x.complete {
					mu.Lock()
					aborted++
					mu.Unlock()
					return
				}
				results[k] = append(results[k], x)
				msgs = append(msgs, message{Role: "assistant", Content: x.text})
				lo, hi := int64(think[0]), int64(think[1])
				if !sleepCtx(ctx, time.Duration(lo+rng.Int64N(hi-lo))) {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	elapsed := time.Since(start)
	if err := st.alive(); err != nil {
		return nil, err
	}
	if err := st.waitIdle(10 * time.Second); err != nil {
		return nil, err
	}
	after, err := st.stats()
	if err != nil {
		return nil, err
	}

	// Measured: the replicas' counters. Oracle: from the prompts' sizes.
	var hits, queries, oracle, usageCached, n int64
	var ttftLater []float64
	var full, partial, missed int // later turns by what they found cached
	for _, conv := range results {
		prev := 0
		for i, x := range conv {
			if i > 0 {
				o := min(prev, x.prompt-1) / blockTokens * blockTokens
				oracle += int64(o)
				ttftLater = append(ttftLater, float64(x.ttft().Microseconds())/1000)
				switch {
				case x.cached >= o:
					full++
				case x.cached > 0:
					partial++
				default:
					missed++
				}
			}
			prev = x.prompt
			usageCached += int64(x.cached)
			n++
		}
	}
	var loads []float64
	maxLoad := 0.0
	for i := range after {
		hits += after[i].PrefixCacheHits - before[i].PrefixCacheHits
		queries += after[i].PrefixCacheQueries - before[i].PrefixCacheQueries
		l := float64(after[i].Requests - before[i].Requests)
		loads = append(loads, l)
		maxLoad = max(maxLoad, l)
	}
	res := &prefixResult{
		ratio: float64(hits) / float64(queries), oracle: float64(oracle) / float64(queries),
		imbalance: maxLoad / mean(loads), ttftLater: mean(ttftLater), aborted: aborted,
	}
	if samples > 0 {
		res.util = busy / samples
	}
	if retries > 0 {
		r.logf("  prefix, %s: %d requests retried (first: %s)", variant, retries, firstRetry)
	}
	r.logf("  prefix, %s: %d requests in %.1f s (%d conversations aborted), %.0f%% of slots busy, hits %d / %d queried tokens (usage says %d cached), oracle %d, requests per replica %v, TTFT after the first turn mean %.0f p99 %.0f ms; later turns finding their previous prompt cached: %d, part of it: %d, nothing: %d; a replica was full in %.0f%% of samples",
		variant, n, elapsed.Seconds(), aborted, 100*res.util, hits, queries, usageCached, oracle, loads, mean(ttftLater), percentile(ttftLater, 99), full, partial, missed, 100*fullSamples/max(replicaSamples, 1))
	return res, nil
}
