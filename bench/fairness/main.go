// Command fairness shows guichet's fair scheduler at work, side by side
// with plain FIFO + round-robin, on a pool of simulated GPU replicas
// (guichet-sim with --max-concurrency, batch-dependent decoding, prefill
// cost and a prefix cache). Everything runs as real processes: it builds
// ./cmd/guichet and ./cmd/guichet-sim, starts the replicas and one guichet
// per scenario and configuration, creates the tenants (organizations)
// through the admin API and drives streaming chat completions at them.
//
// Scenarios (each under both configurations, same seed, same pool):
//
//	noisy     a tenant floods the pool; does a light tenant keep its
//	          throughput and time to first token?
//	weighted  8 tenants, weights 1,1,1,1,2,2,4,4, unequal demand: is
//	          service shared by weight (Jain's index), is the pool kept full?
//	batch     an interactive tenant, then a batch flood (service_tier flex):
//	          does interactive TTFT hold?
//	prefix    multi-turn conversations on 4 replicas with prefix caches:
//	          hit ratio against an oracle, and load balance
//
// Usage, from the repository root:
//
//	go run ./bench/fairness                      # all scenarios, ~4 minutes
//	go run ./bench/fairness -scenario noisy
//	go run ./bench/fairness -quick               # short smoke run
//	go run ./bench/fairness -out bench/fairness/results.md
//
// It prints a Markdown table (and writes it to -out). Performance is
// measured here, never asserted in tests: the goals are printed with each
// figure, met or not.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.scenario, "scenario", "all", "all | noisy | weighted | batch | prefix (comma-separated list allowed)")
	flag.BoolVar(&o.quick, "quick", false, "short smoke run (seconds per phase instead of tens)")
	flag.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the workload and the replicas")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, configurations, process logs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fairness:", err)
		os.Exit(1)
	}
	fmt.Print(rep.markdown())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(rep.markdown()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fairness:", err)
			os.Exit(1)
		}
	}
}

type options struct {
	scenario string
	quick    bool
	out      string
	seed     int64
	keep     bool
}

type runner struct {
	options
	root, work, bin string
	stacks          int
	logw            interface{ Write([]byte) (int, error) }
	start           time.Time
}

func (r *runner) nextStack() int { r.stacks++; return r.stacks }

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.logw, "[fairness %5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

type scenarioFunc func(*runner, context.Context, configuration) (row, error)

var scenarios = []struct {
	name string
	run  scenarioFunc
}{
	{"noisy", (*runner).noisy},
	{"weighted", (*runner).weighted},
	{"batch", (*runner).batchFlood},
	{"prefix", (*runner).prefixAffinity},
}

// run builds the binaries, runs the selected scenarios under both
// configurations and returns the report.
func run(ctx context.Context, o options, logw interface{ Write([]byte) (int, error) }) (*report, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(o.scenario, ",") {
		want[strings.TrimSpace(s)] = true
	}
	known := want["all"]
	for _, s := range scenarios {
		known = known || want[s.name]
	}
	if !known {
		return nil, fmt.Errorf("-scenario %q: want all, noisy, weighted, batch or prefix", o.scenario)
	}
	r := &runner{options: o, logw: logw, start: time.Now()}
	var err error
	if r.root, err = moduleRoot(); err != nil {
		return nil, err
	}
	if r.work, err = os.MkdirTemp("", "guichet-fairness-"); err != nil {
		return nil, err
	}
	defer func() {
		if r.keep {
			r.logf("work directory kept: %s", r.work)
		} else {
			os.RemoveAll(r.work)
		}
	}()
	r.bin = filepath.Join(r.work, "bin")
	r.logf("building guichet and guichet-sim into %s", r.bin)
	if err := build(ctx, r.root, r.bin); err != nil {
		return nil, err
	}
	rep := &report{quick: o.quick, seed: o.seed, commit: commitOf(r.root)}
	for _, s := range scenarios {
		if !want["all"] && !want[s.name] {
			continue
		}
		for _, c := range configurations {
			if !r.quick {
				r.waitQuiet(ctx, 15*time.Second)
			}
			r.logf("%s, %s", s.name, c.name)
			mark := markCPU()
			row, err := s.run(r, ctx, c)
			if err != nil {
				r.keep = true
				return nil, fmt.Errorf("%s, %s: %w", s.name, c.name, err)
			}
			// The machine must be otherwise idle: say when it was not.
			if f := mark.foreignCPU(); f > 0.25 {
				row.Notes = append(row.Notes, fmt.Sprintf("⚠ other processes used %.0f%% of a core meanwhile", 100*f))
				r.logf("  other processes used %.0f%% of a core during this row: its figures may be disturbed", 100*f)
			} else if f >= 0 {
				r.logf("  other processes used %.0f%% of a core during this row", 100*f)
			}
			r.logf("  → %s", row.measured())
			rep.rows = append(rep.rows, row)
		}
	}
	rep.elapsed = time.Since(r.start)
	r.logf("done in %s", rep.elapsed.Round(time.Second))
	return rep, nil
}

// commitOf names the code measured: the commit, +dirty when the working
// tree has changes.
func commitOf(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}

// waitQuiet waits, up to limit, for other processes to use less than a
// fifth of a core over a second: the replicas' latencies are in
// milliseconds, and a busy machine shows in them.
func (r *runner) waitQuiet(ctx context.Context, limit time.Duration) {
	start := time.Now()
	for said := false; ; {
		m := markCPU()
		if !sleepCtx(ctx, time.Second) {
			return
		}
		f := m.foreignCPU()
		switch {
		case f < 0.2:
			if said {
				r.logf("quiet after %s", time.Since(start).Round(time.Second))
			}
			return
		case time.Since(start) >= limit:
			r.logf("other processes still use %.0f%% of a core after %s: going on", 100*f, limit)
			return
		case !said:
			r.logf("other processes use %.0f%% of a core: waiting up to %s for the machine to be quiet", 100*f, limit)
			said = true
		}
	}
}
