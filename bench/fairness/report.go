package main

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// figure is one measured number with its goal.
type figure struct {
	label     string
	value     float64
	unit      string
	precision int // decimals; 0 means the default (1, or 0 for percentages)
	detail    string
	goal      string
	met       *bool
}

func (f figure) String() string {
	p := f.precision
	if p == 0 {
		p = 1
		if strings.HasPrefix(f.unit, "%") {
			p = 0
		}
	}
	v := fmt.Sprintf("%.*f", p, f.value)
	unit := f.unit
	if strings.HasPrefix(unit, "%") || strings.HasPrefix(unit, "×") {
		r, n := utf8.DecodeRuneInString(unit)
		v += string(r)
		unit = strings.TrimSpace(unit[n:])
	}
	s := f.label + " **" + v + "**"
	if unit != "" {
		s += " " + unit
	}
	if f.detail != "" {
		s += " (" + f.detail + ")"
	}
	return s
}

// row is one scenario under one configuration.
type row struct {
	Scenario string
	Config   string
	Figures  []figure
	Notes    []string
}

func (r *row) add(f figure) { r.Figures = append(r.Figures, f) }

func (r row) measured() string {
	var s []string
	for _, f := range r.Figures {
		s = append(s, strings.ReplaceAll(f.String(), "**", ""))
	}
	return strings.Join(append(s, r.Notes...), "; ")
}

// numbers reports whether every figure is a finite number.
func (r row) numbers() bool {
	if len(r.Figures) == 0 {
		return false
	}
	for _, f := range r.Figures {
		if math.IsNaN(f.value) || math.IsInf(f.value, 0) {
			return false
		}
	}
	return true
}

type report struct {
	rows    []row
	quick   bool
	seed    int64
	commit  string
	elapsed time.Duration
}

func (rep *report) markdown() string {
	var b strings.Builder
	mode := ""
	if rep.quick {
		mode = ", -quick (smoke run: too short for the figures to mean much)"
	}
	fmt.Fprintf(&b, "<!-- go run ./bench/fairness%s; seed %d; commit %s; %s -->\n\n", map[bool]string{true: " -quick"}[rep.quick], rep.seed, rep.commit, rep.elapsed.Round(time.Second))
	b.WriteString("| Scenario | Configuration | Measured | Goal | Met | Notes |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rep.rows {
		var meas, goals, met []string
		for _, f := range r.Figures {
			meas = append(meas, f.String())
			goals = append(goals, f.goal)
			switch {
			case f.met == nil:
				met = append(met, "–")
			case *f.met:
				met = append(met, "met")
			default:
				met = append(met, "**not met**")
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Config,
			strings.Join(meas, "<br>"), strings.Join(goals, "<br>"), strings.Join(met, "<br>"), strings.Join(r.Notes, "; "))
	}
	fmt.Fprintf(&b, "\nMeasured with `go run ./bench/fairness%s` (seed %d, commit %s, %d CPUs, %s%s).", map[bool]string{true: " -quick"}[rep.quick], rep.seed, rep.commit, runtime.NumCPU(), rep.elapsed.Round(time.Second), mode)
	b.WriteString(legend)
	return b.String()
}

const legend = `

Legend. Each scenario runs under both configurations on the same pool of
guichet-sim replicas, each one a GPU: 8 sequences at once (the rest wait
FIFO in the replica), TTFT 20 ms + 0.1 ms per prompt token not in its
prefix cache, a token every 8 ms + 1 ms per other running sequence, answers
exactly max_tokens long. The workload is the same, seeded: streaming chat
completions, one organization per tenant; answer lengths vary uniformly
±50% and prompt lengths ±25% around the figures below.

- **FIFO + round-robin**: guichet with ` + "`scheduler.enabled: false`" + `,
  ` + "`routing.strategy: round_robin`" + ` and no ` + "`max_concurrency`" + `: every
  request goes on at once and waits in the replicas' FIFO queues.
- **guichet**: the fair scheduler on (` + "`max_concurrency: 8`" + ` per replica,
  so guichet holds the excess; ` + "`interactive_reserve: 0.2`" + `, weights by
  organization), round-robin; ` + "`prefix_affinity`" + ` in the prefix scenario.

- **noisy neighbour** (2 replicas, 16 slots): tenant A keeps 48 streams
  open (300-token prompts, 64-token answers); B sends an open-loop (Poisson)
  6 requests/s (300-token prompts, 32-token answers: about 3 slots, under
  its fair half). First B alone on the idle pool, then A and B, over the
  same 15 s window with the same requests from B. *B throughput*: B's
  tokens received per second in the window, in % of alone. *B p99 TTFT*:
  B's 99th percentile of time to first token (request sent → first content
  token) as a multiple of alone (p50 too, in parentheses). An open-loop tenant's
  throughput only drops when its requests are refused or never end: a
  stable FIFO delays B without lowering its throughput, so TTFT is the
  figure that tells the configurations apart.
- **8 weighted tenants** (2 replicas, 16 slots): weights 1,1,1,1,2,2,4,4;
  200-token prompts, 48-token answers. Two light tenants (w1-light 0.8 and
  w2-light 1.5 requests/s, under their fair share) should get their demand:
  *light tenants served* is the smaller of their tokens received ÷ tokens
  asked. Six tenants are backlogged (3 to 16 closed-loop streams each, more
  than their weighted share, unrelated to their weight): for those,
  x_i = output tokens/s in the 20 s window ÷ weight, and *Jain* =
  (Σx)² / (n·Σx²) (1: service exactly in proportion to weight).
  *Utilisation*: running sequences ÷ 16, read from every replica's
  /sim/stats every 100 ms in the window.
- **interactive vs batch flood** (2 replicas, 16 slots): an interactive
  tenant sends an open-loop 4 requests/s (300-token prompts, 32-token
  answers), alone, then while a batch tenant keeps 64 streams open with
  ` + "`\"service_tier\": \"flex\"`" + ` (128-token answers), over the same 15 s
  window. *Interactive p99 TTFT* with the flood ÷ without. *Utilisation*
  during the flood (no goal: what protecting interactive traffic costs).
- **prefix affinity** (4 replicas, 32 slots, prefix caches of 2400 blocks
  of 16 tokens, about 1.5× a quarter of the working set): 64 conversations,
  each with its own 1024-token system prompt, 6 turns of a ~48-token
  question and a ~32-token answer kept in the history, started over 2 s.
  *Light load*: 1–2 s of thinking between turns (about a third of the slots
  busy); *busy*: 0.3–0.9 s (about two thirds busy, often full). *Hit
  ratio*: Σ prefix-cache hits ÷ Σ prompt tokens looked up, over the
  replicas' /sim/stats, relative to the oracle: every turn finding its
  previous turn's prompt cached, as if each conversation always came back
  to a replica holding it (first turns never hit). *Load*: the busiest
  replica's requests ÷ the mean.

Requests sent in a measurement window are followed to their end while the
other tenants keep loading the pool; a refused request (429, 503) has no
TTFT and is listed in the notes. The runner waits for other processes to
quieten before each row and flags (⚠) a row during which they used more
than a quarter of a core. -quick shortens every phase and shrinks the
floods (smoke test only). Performance is measured, not asserted: the test
(bench/fairness/fairness_test.go) only checks that a -quick run completes
with numbers.
`
