// Command benchreport turns the JSON lines that bench/run.sh records (one
// per measurement) into the Markdown report: a summary of guichet against
// nginx and a bare Go reverse proxy, what identity and quotas cost (guichet
// with the master key against guichet with a user's key, embedded and in
// cluster mode), then one table per phase. Arithmetic lives here rather
// than in the shell.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
)

type meta struct {
	Nproc        int     `json:"nproc"`
	CPU          string  `json:"cpu"`
	Go           string  `json:"go"`
	Nginx        string  `json:"nginx"`
	Wrk          string  `json:"wrk"`
	Kernel       string  `json:"kernel"`
	Date         string  `json:"date"`
	Duration     string  `json:"duration"`
	ClkTck       int     `json:"clk_tck"`
	Nofile       int     `json:"nofile"`
	Streams      int     `json:"streams"`
	StreamTokens int     `json:"stream_tokens"`
	Rate         float64 `json:"rate"`
	QuietMax     int     `json:"quiet_max"`
	Commit       string  `json:"commit"`
	// since guichet-limits and guichet-cluster
	Targets        string  `json:"targets"`
	Postgres       string  `json:"postgres"`
	Redis          string  `json:"redis"`
	RedisLocal     bool    `json:"redis_local"`
	CostPrompt     float64 `json:"cost_prompt"`
	CostCompletion float64 `json:"cost_completion"`
	Budget         float64 `json:"budget"`
	RedisKBStart   float64 `json:"redis_used_kb_start"`
}

// record is one line of results.jsonl.
type record struct {
	Kind         string          `json:"kind"`
	Target       string          `json:"target"`
	C            int             `json:"c"`
	ProxyTicks   float64         `json:"proxy_ticks"`
	SimTicks     float64         `json:"sim_ticks"`
	LoadgenTicks float64         `json:"loadgen_ticks"`
	MachineTicks float64         `json:"machine_ticks"` // user+nice+system+steal of the machine
	IRQTicks     float64         `json:"irq_ticks"`     // irq+softirq: loopback TCP, charged to no process
	WallMS       float64         `json:"wall_ms"`
	ProxyHWMKB   float64         `json:"proxy_hwm_kb"`
	Result       json.RawMessage `json:"result"`
	// Redis's CPU and that of guichet-cluster's PostgreSQL backends during
	// the run, whatever the target (-1 or absent: not measured); the bench
	// user's budget before and after the run, for the limited targets.
	RedisTicks   *float64 `json:"redis_ticks"`
	PGTicks      *float64 `json:"pg_ticks"`
	RedisUsedKB  *float64 `json:"redis_used_kb"` // Redis's used_memory after the run
	BudgetBefore *float64 `json:"budget_before"`
	BudgetAfter  *float64 `json:"budget_after"`

	// idle only
	Requested     int             `json:"requested"`
	Asked         int             `json:"asked"`
	BaseRSSKB     float64         `json:"base_rss_kb"`
	BaseFDs       int             `json:"base_fds"`
	SimStatsAfter json.RawMessage `json:"sim_stats_after"`
}

type wrkResult struct {
	Requests      float64 `json:"requests"`
	DurationUS    float64 `json:"duration_us"`
	ConnectErrors int     `json:"connect_errors"`
	ReadErrors    int     `json:"read_errors"`
	WriteErrors   int     `json:"write_errors"`
	StatusErrors  int     `json:"status_errors"`
	Timeouts      int     `json:"timeouts"`
	P50US         float64 `json:"p50_us"`
	P99US         float64 `json:"p99_us"`
}

func (w wrkResult) errors() int {
	return w.ConnectErrors + w.ReadErrors + w.WriteErrors + w.StatusErrors + w.Timeouts
}

type rateResult struct {
	Sent        int     `json:"sent"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	Dropped     int     `json:"dropped"`
	FirstErr    string  `json:"first_error"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	P999        float64 `json:"p999_ms"`
	Max         float64 `json:"max_ms"`
	Connections int     `json:"connections"`
}

type streamResult struct {
	Streams   float64 `json:"streams"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"first_error"`
	PerSecond float64 `json:"streams_per_s"`
	TTFEP50   float64 `json:"ttfe_p50_ms"`
	TTFEP99   float64 `json:"ttfe_p99_ms"`
	TotalP50  float64 `json:"total_p50_ms"`
	TotalP99  float64 `json:"total_p99_ms"`
}

type procInfo struct {
	RSSKB float64 `json:"rss_kb"`
	FDs   int     `json:"fds"`
}

type idleResult struct {
	FirstEvents int                 `json:"first_events"`
	Errors      int                 `json:"errors"`
	FirstErr    string              `json:"first_error"`
	OpenSeconds float64             `json:"open_seconds"`
	WhileOpen   map[string]procInfo `json:"while_open"`
	AfterClose  map[string]procInfo `json:"after_close_settle"`
}

type simStats struct {
	Running int `json:"running"`
}

// proxy sums the processes named proxy0, proxy1, … (nginx has several).
func proxy(m map[string]procInfo) (rss float64, fds int) {
	for name, p := range m {
		if strings.HasPrefix(name, "proxy") {
			rss += p.RSSKB
			fds += p.FDs
		}
	}
	return
}

var order = []string{"direct", "nginx", "goproxy", "guichet", "guichet-limits", "guichet-cluster"}

// cluster is the target whose work is shared with Redis and PostgreSQL.
const cluster = "guichet-cluster"

// ticks reads an optional tick count: NaN when it was not measured.
func ticks(v *float64) float64 {
	if v == nil || *v < 0 {
		return math.NaN()
	}
	return *v
}

// zero is v, or 0 when v was not measured.
func zero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

func main() {
	in := flag.String("in", "results.jsonl", "JSON lines written by bench/run.sh")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	defer f.Close()

	var m meta
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: skipping a line: %v\n", err)
			continue
		}
		if r.Kind == "meta" {
			json.Unmarshal(sc.Bytes(), &m)
			continue
		}
		recs = append(recs, r)
	}
	if m.ClkTck == 0 {
		m.ClkTck = 100
	}
	(&report{w: os.Stdout, m: m}).write(recs)
}

type report struct {
	w     io.Writer
	m     meta
	notes []string
	// runs[kind][target][c]
	runs map[string]map[string]map[int]record
}

func (r *report) p(format string, a ...any) { fmt.Fprintf(r.w, format, a...) }
func (r *report) note(format string, a ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, a...))
}

func (r *report) get(kind, target string, c int) (record, bool) {
	x, ok := r.runs[kind][target][c]
	return x, ok
}

// targets lists the targets measured for kind, in report order.
func (r *report) targets(kind string) []string {
	var out []string
	for _, t := range order {
		if _, ok := r.runs[kind][t]; ok {
			out = append(out, t)
		}
	}
	return out
}

// has reports whether target was measured in any phase.
func (r *report) has(target string) bool {
	for _, byTarget := range r.runs {
		if _, ok := byTarget[target]; ok {
			return true
		}
	}
	return false
}

// usPer is CPU microseconds per unit of work.
func (r *report) usPer(ticks, n float64) float64 {
	if n <= 0 {
		return math.NaN()
	}
	return ticks * 1e6 / float64(r.m.ClkTck) / n
}

// foreign is the CPU (% of one core) used during a run by processes other
// than the load generator, the proxy and the simulator.
func (r *report) foreign(x record) float64 {
	if x.WallMS <= 0 {
		return math.NaN()
	}
	ours := x.ProxyTicks + x.SimTicks + x.LoadgenTicks
	if x.Target == "direct" {
		ours = x.SimTicks + x.LoadgenTicks
	}
	if x.Target == cluster { // Redis and PostgreSQL work for it
		ours += zero(ticks(x.RedisTicks)) + zero(ticks(x.PGTicks))
	}
	return max(0, x.MachineTicks-ours) * 100 / float64(r.m.ClkTck) / (x.WallMS / 1000)
}

func (r *report) checkForeign(what string, x record) string {
	f := r.foreign(x)
	if f > float64(max(r.m.QuietMax, 20)) {
		r.note("%s: other processes used %.0f%% of a core during the run: treat it with care", what, f)
	}
	return fmt.Sprintf("%.0f", f)
}

func (r *report) write(recs []record) {
	m := r.m
	r.runs = map[string]map[string]map[int]record{}
	var cs []int
	for _, x := range recs {
		if r.runs[x.Kind] == nil {
			r.runs[x.Kind] = map[string]map[int]record{}
		}
		if r.runs[x.Kind][x.Target] == nil {
			r.runs[x.Kind][x.Target] = map[int]record{}
		}
		r.runs[x.Kind][x.Target][x.C] = x
		if x.Kind == "wrk" && !slices.Contains(cs, x.C) {
			cs = append(cs, x.C)
		}
	}
	sort.Ints(cs)

	r.p("# guichet benchmark\n\n")
	r.p("Measured %s on %d × %s (Linux %s), %s, nginx %s, wrk %s; %s per point; guichet at %s.\n\n",
		m.Date, m.Nproc, m.CPU, m.Kernel, m.Go, m.Nginx, m.Wrk, m.Duration, m.Commit)
	r.p("Everything runs on this one machine: the load generator (wrk or a bench tool), the proxy and the simulator share the %d cores, ", m.Nproc)
	r.p("so throughput and tail latency are those of a crowded machine: compare rows, and trust CPU per request most, since it does not depend on who else uses the cores. ")
	r.p("Targets: **direct** = the simulator (guichet-sim, zero latency) without proxy; ")
	r.p("**nginx** = nginx `proxy_pass`, `worker_processes auto` (%d workers), `access_log off`, upstream `keepalive 256`, `proxy_http_version 1.1`, `proxy_buffering off`, `keepalive_requests 1000000`; ", m.Nproc)
	r.p("**goproxy** = `bench/cmd/goproxy`, Go's `httputil.ReverseProxy` plus a bearer-key check: the floor of any Go gateway; ")
	r.p("**guichet** = guichet with auth on (master key, which bypasses identity, rate limits and budgets), one `vllm` provider; ")
	if r.has("guichet-limits") {
		r.p("**guichet-limits** = the same guichet, embedded (SQLite, quotas in process), called with a user's key: its role limits the model (rpm, tpm, concurrent: too high to refuse anything) and the user has a budget, so each request is authenticated, admitted, counted and charged; ")
	}
	if r.has(cluster) {
		r.p("**guichet-cluster** = the same user set-up in cluster mode: PostgreSQL%s and Redis%s (one Redis script call per admission, one per settle); its CPU column is the guichet process only, Redis's and PostgreSQL's are in the table below. ", ver(m.Postgres), ver(m.Redis))
	}
	if m.CostPrompt > 0 || m.CostCompletion > 0 {
		r.p("Every guichet has the same model, with costs (%g and %g per million prompt and completion tokens). ", m.CostPrompt, m.CostCompletion)
	}
	r.p("Go processes run with the default `GOMAXPROCS` (= %d); nothing is pinned to a core.\n\n", m.Nproc)
	r.p("CPU = utime+stime from `/proc/PID/stat` (nginx: master + workers) over the run, divided by the requests (or streams) completed. ")
	r.p("Latencies are wrk's (closed loop) except in the constant-rate table (open loop, from the scheduled send time). Added latency = target minus direct at the same load. ")
	r.p("*foreign* = CPU used during the run by processes other than the load generator, the proxy and the simulator (plus hypervisor steal), in %% of one core; the harness waits for it to fall under %d%% before each point. ", m.QuietMax)
	r.p("Not counted anywhere: the kernel's irq/softirq time, where most loopback TCP work happens; it is the same for every proxy (same bytes, same connections) and is in the raw results (`irq_ticks`).\n\n")

	r.summary(cs)
	r.costTable(cs)
	r.wrkTable(cs)
	r.rateTable()
	r.streamTable()
	r.idleTable()

	if len(r.notes) > 0 {
		r.p("## Anomalies found by the harness\n\n")
		for _, n := range r.notes {
			r.p("- %s\n", n)
		}
		r.p("\n")
	}
}

func (r *report) summary(cs []int) {
	var b strings.Builder
	proxies := []string{"nginx", "goproxy", "guichet"}
	for _, t := range []string{"guichet-limits", cluster} {
		if r.has(t) {
			proxies = append(proxies, t)
		}
	}
	row := func(metric string, v map[string]float64, unit string) {
		fmt.Fprintf(&b, "| %s |", metric)
		for _, t := range proxies {
			fmt.Fprintf(&b, " %s |", num(v[t], unit))
		}
		fmt.Fprintf(&b, " %s | %s |\n", ratio(v["guichet"], v["nginx"]), ratio(v["guichet"], v["goproxy"]))
	}
	nan := func() map[string]float64 {
		v := map[string]float64{}
		for _, t := range proxies {
			v[t] = math.NaN()
		}
		return v
	}
	b.WriteString("| metric |")
	for _, t := range proxies {
		fmt.Fprintf(&b, " %s |", t)
	}
	b.WriteString(" guichet ÷ nginx | guichet ÷ goproxy |\n|---|")
	b.WriteString(strings.Repeat("---:|", len(proxies)+2) + "\n")

	for _, c := range cs {
		v := nan()
		for _, t := range proxies {
			if x, ok := r.get("wrk", t, c); ok {
				var w wrkResult
				json.Unmarshal(x.Result, &w)
				v[t] = r.usPer(x.ProxyTicks, w.Requests)
			}
		}
		row(fmt.Sprintf("CPU per request, wrk C=%d (µs)", c), v, "")
	}
	if _, ok := r.get("rate", "guichet", 0); ok {
		v := nan()
		for _, t := range proxies {
			if x, ok := r.get("rate", t, 0); ok {
				var w rateResult
				json.Unmarshal(x.Result, &w)
				v[t] = r.usPer(x.ProxyTicks, float64(w.OK))
			}
		}
		row(fmt.Sprintf("CPU per request at %.0f req/s (µs)", r.m.Rate), v, "")
	}
	if _, ok := r.get("stream", "guichet", 0); ok {
		v := nan()
		for _, t := range proxies {
			if x, ok := r.get("stream", t, 0); ok {
				var s streamResult
				json.Unmarshal(x.Result, &s)
				v[t] = r.usPer(x.ProxyTicks, s.Streams)
			}
		}
		row(fmt.Sprintf("CPU per stream of %d tokens (µs)", r.m.StreamTokens), v, "")
	}
	for _, c := range cs {
		d, ok := r.get("wrk", "direct", c)
		if !ok {
			continue
		}
		var dw wrkResult
		json.Unmarshal(d.Result, &dw)
		v50, v99 := nan(), nan()
		for _, t := range proxies {
			if x, ok := r.get("wrk", t, c); ok {
				var w wrkResult
				json.Unmarshal(x.Result, &w)
				v50[t] = (w.P50US - dw.P50US) / 1e3
				v99[t] = (w.P99US - dw.P99US) / 1e3
			}
		}
		row(fmt.Sprintf("added p50 latency, wrk C=%d (ms)", c), v50, "ms")
		row(fmt.Sprintf("added p99 latency, wrk C=%d (ms)", c), v99, "ms")
	}
	if d, ok := r.get("rate", "direct", 0); ok {
		var dr rateResult
		json.Unmarshal(d.Result, &dr)
		v50, v99 := nan(), nan()
		for _, t := range proxies {
			if x, ok := r.get("rate", t, 0); ok {
				var w rateResult
				json.Unmarshal(x.Result, &w)
				v50[t], v99[t] = w.P50-dr.P50, w.P99-dr.P99
			}
		}
		row(fmt.Sprintf("added p50 latency at %.0f req/s (ms)", r.m.Rate), v50, "ms")
		row(fmt.Sprintf("added p99 latency at %.0f req/s (ms)", r.m.Rate), v99, "ms")
	}
	if d, ok := r.get("stream", "direct", 0); ok {
		var ds streamResult
		json.Unmarshal(d.Result, &ds)
		v50, v99 := nan(), nan()
		for _, t := range proxies {
			if x, ok := r.get("stream", t, 0); ok {
				var s streamResult
				json.Unmarshal(x.Result, &s)
				v50[t], v99[t] = s.TTFEP50-ds.TTFEP50, s.TTFEP99-ds.TTFEP99
			}
		}
		row(fmt.Sprintf("added time to first event p50, %d streams (ms)", r.m.Streams), v50, "ms")
		row(fmt.Sprintf("added time to first event p99, %d streams (ms)", r.m.Streams), v99, "ms")
	}
	peak := nan()
	for _, t := range proxies {
		for _, c := range cs {
			if x, ok := r.get("wrk", t, c); ok {
				if math.IsNaN(peak[t]) {
					peak[t] = 0
				}
				peak[t] = max(peak[t], x.ProxyHWMKB/1024)
			}
		}
	}
	row("peak RSS under wrk load (MB)", peak, "")
	held, per := nan(), nan()
	n := 0
	for _, t := range proxies {
		if x, ok := r.get("idle", t, 0); ok {
			var id idleResult
			json.Unmarshal(x.Result, &id)
			rss, _ := proxy(id.WhileOpen)
			held[t] = rss / 1024
			if id.FirstEvents > 0 {
				per[t] = (rss - x.BaseRSSKB) / float64(id.FirstEvents)
			}
			n = x.Requested
		}
	}
	if n > 0 {
		row(fmt.Sprintf("RSS holding %d idle streams (MB)", n), held, "")
		row("RSS per idle stream (KB)", per, "")
	}
	r.p("## Summary\n\n")
	if len(proxies) > 3 {
		r.p("guichet-cluster's CPU here is the guichet process alone; with Redis and PostgreSQL, see the next table.\n\n")
	}
	r.p("%s\n", b.String())
}

// work is what a run completed: requests, or streams for the stream phase.
func work(x record) float64 {
	switch x.Kind {
	case "wrk":
		var w wrkResult
		json.Unmarshal(x.Result, &w)
		return w.Requests
	case "rate":
		var w rateResult
		json.Unmarshal(x.Result, &w)
		return float64(w.OK)
	case "stream":
		var s streamResult
		json.Unmarshal(x.Result, &s)
		return s.Streams
	}
	return math.NaN()
}

// costTable is what identity and quotas cost: CPU per request of guichet
// with the master key (no identity or quota work), with a user's key in
// embedded mode, and in cluster mode with Redis's and PostgreSQL's share.
func (r *report) costTable(cs []int) {
	hasC := r.has(cluster)
	if !r.has("guichet-limits") && !hasC {
		return
	}
	type point struct {
		kind, label string
		c           int
	}
	var points []point
	for _, c := range cs {
		points = append(points, point{"wrk", fmt.Sprintf("wrk C=%d, per request", c), c})
	}
	if _, ok := r.runs["rate"]; ok {
		points = append(points, point{"rate", fmt.Sprintf("%.0f req/s, per request", r.m.Rate), 0})
	}
	if _, ok := r.runs["stream"]; ok {
		points = append(points, point{"stream", fmt.Sprintf("%d streams, per stream of %d tokens", r.m.Streams, r.m.StreamTokens), 0})
	}
	r.p("## What identity and quotas cost\n\n")
	r.p("CPU µs per request (per stream in the last row) at the same load. *guichet* uses the master key, which skips identity, rate limits and budgets; ")
	r.p("*guichet-limits* and *guichet-cluster* use a user's key: key lookup, role limits (rpm, tpm, concurrent) admitted before and settled after each request, the budget reserved and charged. ")
	r.p("*Redis* = redis-server's CPU during guichet-cluster's run (all of it: its idle work too); *PostgreSQL* = the backends of guichet-cluster's connections (the spends written once a second, the identity version polled once a second; the WAL writer and checkpointer are not counted). ")
	r.p("*cluster total* = guichet-cluster + Redis + PostgreSQL. *charged* = how much the bench user's budget went down during the run (`/v1/me/info`), in millionths of a currency unit per request: proof that each request was charged")
	if _, ok := r.runs["rate"]; ok {
		r.p(" (in the constant-rate row, rateload's 1 s warm-up, sent at the same rate but not counted, is charged too: about 10%% more than in the wrk rows; its CPU is in every target's constant-rate CPU as well)")
	}
	r.p(".\n\n")
	r.p("| load | guichet (master key) | guichet-limits | guichet-cluster | Redis | PostgreSQL | cluster total | limits − guichet | cluster − guichet | cluster total − guichet | charged, limits / cluster (10⁻⁶) |\n")
	r.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	cpu := func(kind, t string, c int) (float64, record, bool) {
		x, ok := r.get(kind, t, c)
		if !ok {
			return math.NaN(), x, false
		}
		return r.usPer(x.ProxyTicks, work(x)), x, true
	}
	charged := func(kind, t string, c int) string {
		x, ok := r.get(kind, t, c)
		if !ok || x.BudgetBefore == nil || x.BudgetAfter == nil {
			return "—"
		}
		n := work(x)
		v := (*x.BudgetBefore - *x.BudgetAfter) / n * 1e6
		if !(v > 0) {
			r.note("%s %s: the bench user's budget did not go down (%g → %g): that run did not charge budgets", kind, t, *x.BudgetBefore, *x.BudgetAfter)
		}
		return num(v, "")
	}
	sub := func(a, b float64) string {
		if math.IsNaN(a) || math.IsNaN(b) {
			return "—"
		}
		return fmt.Sprintf("%+.1f (%+.0f%%)", a-b, (a-b)/b*100)
	}
	for _, pt := range points {
		g, _, _ := cpu(pt.kind, "guichet", pt.c)
		l, _, _ := cpu(pt.kind, "guichet-limits", pt.c)
		cl, x, ok := cpu(pt.kind, cluster, pt.c)
		redis, pg := math.NaN(), math.NaN()
		if ok {
			redis = r.usPer(ticks(x.RedisTicks), work(x))
			pg = r.usPer(ticks(x.PGTicks), work(x))
		}
		total := cl + zero(redis) + zero(pg)
		r.p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", pt.label,
			num(g, ""), num(l, ""), num(cl, ""), num(redis, ""), num(pg, ""), num(total, ""),
			sub(l, g), sub(cl, g), sub(total, g), charged(pt.kind, "guichet-limits", pt.c), charged(pt.kind, cluster, pt.c))
	}
	// Redis's memory: the logs of rate limits hold one entry per request
	// and window.
	var mem []string
	for _, pt := range points {
		if x, ok := r.get(pt.kind, cluster, pt.c); ok && !math.IsNaN(ticks(x.RedisUsedKB)) {
			mem = append(mem, fmt.Sprintf("%.1f after %s", *x.RedisUsedKB/1024, strings.TrimSuffix(strings.TrimSuffix(pt.label, ", per request"), ", per stream of "+fmt.Sprint(r.m.StreamTokens)+" tokens")))
		}
	}
	// Redis's idle work, seen while the other targets ran.
	var rt, wall float64
	for _, byC := range r.runs {
		for t, xs := range byC {
			if t == cluster {
				continue
			}
			for _, x := range xs {
				if v := ticks(x.RedisTicks); !math.IsNaN(v) && x.WallMS > 0 {
					rt += v
					wall += x.WallMS
				}
			}
		}
	}
	r.p("\n")
	if len(mem) > 0 {
		r.p("Redis's `used_memory` (MB): %.1f at the start; %s (rate limits keep one log entry per request for the length of their window).\n\n", r.m.RedisKBStart/1024, strings.Join(mem, ", "))
	}
	if wall > 0 {
		r.p("While the other targets ran, Redis used %.1f%% of a core (its idle baseline, also in its column above).\n\n", rt*100/float64(r.m.ClkTck)/(wall/1000))
	} else if hasC {
		r.p("Redis's CPU was not measured (it does not run on this machine, or in this pid namespace).\n\n")
	}
}

// ver is " VERSION" or nothing.
func ver(v string) string {
	if v == "" {
		return ""
	}
	return " " + v
}

func (r *report) wrkTable(cs []int) {
	r.p("## 1. Non-streaming chat completions (wrk, closed loop, 16 tokens)\n\n")
	r.p("In a closed loop each target runs at its own throughput, so from C=16 up the direct run pushes the simulator (and the cores) several times harder than a proxied run: added p99 there compares unlike loads and can be negative. For added tail latency at the same load, see the constant-rate table.\n\n")
	r.p("| C | target | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | errors | proxy CPU µs/req | ÷ nginx | sim CPU µs/req | proxy peak RSS MB | foreign %% |\n")
	r.p("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range cs {
		var d, n wrkResult
		dr, _ := r.get("wrk", "direct", c)
		nr, hasN := r.get("wrk", "nginx", c)
		json.Unmarshal(dr.Result, &d)
		json.Unmarshal(nr.Result, &n)
		for _, t := range r.targets("wrk") {
			x, ok := r.get("wrk", t, c)
			if !ok {
				continue
			}
			var w wrkResult
			json.Unmarshal(x.Result, &w)
			added50, added99, cpu, vs, rss := "—", "—", "—", "—", "—"
			if t != "direct" {
				added50 = num((w.P50US-d.P50US)/1e3, "ms")
				added99 = num((w.P99US-d.P99US)/1e3, "ms")
				cpu = num(r.usPer(x.ProxyTicks, w.Requests), "")
				rss = num(x.ProxyHWMKB/1024, "")
				if t != "nginx" && hasN {
					vs = ratio(r.usPer(x.ProxyTicks, w.Requests), r.usPer(nr.ProxyTicks, n.Requests))
				}
			}
			r.p("| %d | %s | %.0f | %.2f | %.2f | %s | %s | %d | %s | %s | %s | %s | %s |\n",
				c, t, w.Requests/(w.DurationUS/1e6), w.P50US/1e3, w.P99US/1e3, added50, added99, w.errors(),
				cpu, vs, num(r.usPer(x.SimTicks, w.Requests), ""), rss, r.checkForeign(fmt.Sprintf("wrk %s C=%d", t, c), x))
			if w.errors() > 0 {
				r.note("wrk %s C=%d: %d errors (connect %d, read %d, write %d, non-2xx %d, timeouts %d)", t, c, w.errors(),
					w.ConnectErrors, w.ReadErrors, w.WriteErrors, w.StatusErrors, w.Timeouts)
			}
		}
	}
	r.p("\n")
}

func (r *report) rateTable() {
	ts := r.targets("rate")
	if len(ts) == 0 {
		return
	}
	r.p("## 2. Constant rate, open loop (bench/cmd/rateload, %.0f req/s)\n\n", r.m.Rate)
	r.p("Latency counts from the time each request was due, so a stall shows as latency instead of a lower rate. *connections* = connections the client had to open: more than a handful means requests piled up.\n\n")
	r.p("| target | sent | ok | errors | dropped | p50 ms | p99 ms | p99.9 ms | max ms | added p50 ms | added p99 ms | added p99.9 ms | connections | proxy CPU µs/req | foreign %% |\n")
	r.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var d rateResult
	dr, _ := r.get("rate", "direct", 0)
	json.Unmarshal(dr.Result, &d)
	for _, t := range ts {
		x, _ := r.get("rate", t, 0)
		var w rateResult
		json.Unmarshal(x.Result, &w)
		a50, a99, a999, cpu := "—", "—", "—", "—"
		if t != "direct" {
			a50, a99, a999 = num(w.P50-d.P50, "ms"), num(w.P99-d.P99, "ms"), num(w.P999-d.P999, "ms")
			cpu = num(r.usPer(x.ProxyTicks, float64(w.OK)), "")
		}
		r.p("| %s | %d | %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %d | %s | %s |\n",
			t, w.Sent, w.OK, w.Errors, w.Dropped, w.P50, w.P99, w.P999, w.Max, a50, a99, a999, w.Connections, cpu,
			r.checkForeign("rate "+t, x))
		if w.Connections > 200 {
			r.note("rate %s: the client had to open %d connections: requests piled up (p99 %.0f ms), the target fell behind %.0f req/s for a while", t, w.Connections, w.P99, r.m.Rate)
		}
		if w.Errors+w.Dropped > 0 {
			r.note("rate %s: %d errors, %d dropped because 5000 requests were already in flight (first error: %s)", t, w.Errors, w.Dropped, w.FirstErr)
		}
	}
	r.p("\n")
}

func (r *report) streamTable() {
	ts := r.targets("stream")
	if len(ts) == 0 {
		return
	}
	r.p("## 3. Streaming (bench/cmd/streamload, %d concurrent streams of %d tokens, zero-latency simulator)\n\n", r.m.Streams, r.m.StreamTokens)
	r.p("First event = request sent → first `data:` line read.\n\n")
	r.p("| target | streams/s | errors | first event p50 ms | p99 ms | added p50 ms | added p99 ms | whole stream p50 ms | p99 ms | proxy CPU µs/stream | ÷ nginx | sim CPU µs/stream | proxy peak RSS MB | foreign %% |\n")
	r.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var d, n streamResult
	dr, _ := r.get("stream", "direct", 0)
	nr, hasN := r.get("stream", "nginx", 0)
	json.Unmarshal(dr.Result, &d)
	json.Unmarshal(nr.Result, &n)
	for _, t := range ts {
		x, _ := r.get("stream", t, 0)
		var s streamResult
		json.Unmarshal(x.Result, &s)
		a50, a99, cpu, vs, rss := "—", "—", "—", "—", "—"
		if t != "direct" {
			a50, a99 = num(s.TTFEP50-d.TTFEP50, "ms"), num(s.TTFEP99-d.TTFEP99, "ms")
			cpu = num(r.usPer(x.ProxyTicks, s.Streams), "")
			rss = num(x.ProxyHWMKB/1024, "")
			if t != "nginx" && hasN {
				vs = ratio(r.usPer(x.ProxyTicks, s.Streams), r.usPer(nr.ProxyTicks, n.Streams))
			}
		}
		r.p("| %s | %.0f | %d | %.2f | %.2f | %s | %s | %.2f | %.2f | %s | %s | %s | %s | %s |\n",
			t, s.PerSecond, s.Errors, s.TTFEP50, s.TTFEP99, a50, a99, s.TotalP50, s.TotalP99, cpu, vs,
			num(r.usPer(x.SimTicks, s.Streams), ""), rss, r.checkForeign("stream "+t, x))
		if s.Errors > 0 {
			r.note("stream %s: %d errors (first: %s)", t, s.Errors, s.FirstErr)
		}
	}
	r.p("\n")
}

func (r *report) idleTable() {
	ts := r.targets("idle")
	if len(ts) == 0 {
		return
	}
	r.p("## 4. Idle streams (bench/cmd/idlestreams; simulator --ttft 1s --itl 30s: first event, then silence)\n\n")
	r.p("Streams are opened at 2,000/s from 8 loopback source addresses; RSS is read once every stream has its first event. ")
	r.p("*after close* is read 3 s after the clients closed every stream: Go hands freed memory back to the OS over minutes, so a high RSS there is not a leak; open files and streams still running upstream are the leak indicators.\n\n")
	r.p("| target | streams asked | held (first event received) | errors | all held after s | proxy RSS before MB | RSS while open MB | KB per stream | proxy open files | RSS after close MB | open files after close | sim streams still running after close |\n")
	r.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	capped := false
	for _, t := range ts {
		x, _ := r.get("idle", t, 0)
		var id idleResult
		json.Unmarshal(x.Result, &id)
		var st simStats
		json.Unmarshal(x.SimStatsAfter, &st)
		rss, fds := proxy(id.WhileOpen)
		rssAfter, fdsAfter := proxy(id.AfterClose)
		per := math.NaN()
		if id.FirstEvents > 0 {
			per = (rss - x.BaseRSSKB) / float64(id.FirstEvents)
		}
		r.p("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %s | %d | %.1f | %d | %d |\n",
			t, x.Requested, id.FirstEvents, id.Errors, id.OpenSeconds, x.BaseRSSKB/1024, rss/1024, num(per, ""), fds,
			rssAfter/1024, fdsAfter, st.Running)
		if x.Asked > x.Requested && !capped {
			capped = true
			r.note("idle streams: %d asked, %d held: a proxy needs two sockets per stream and the open-files hard limit here is %d (raise `ulimit -Hn` to run the full count)", x.Asked, x.Requested, r.m.Nofile)
		}
		if id.Errors > 0 || id.FirstEvents < x.Requested {
			r.note("idle %s: %d of %d streams got their first event, %d errors (first: %s)", t, id.FirstEvents, x.Requested, id.Errors, id.FirstErr)
		}
		if st.Running > 0 {
			r.note("idle %s: %d upstream streams still running in the simulator 2 s after the clients closed theirs: cancellation does not reach the upstream", t, st.Running)
		}
		if fdsAfter > x.BaseFDs+20 {
			r.note("idle %s: the proxy had %d open files before the streams and %d after they were all closed (+%d)", t, x.BaseFDs, fdsAfter, fdsAfter-x.BaseFDs)
		}
	}
	r.p("\n")
}

// num formats a value; "ms" values get a sign so added latency reads well.
func num(v float64, unit string) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case unit == "ms":
		return fmt.Sprintf("%+.2f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// ratio is a ÷ b, when both are positive (a negative added latency is noise).
func ratio(a, b float64) string {
	if !(a > 0 && b > 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
