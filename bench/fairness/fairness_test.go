package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs every scenario in -quick mode and checks only that the
// run completes with a row of numbers per scenario and configuration:
// performance is measured by `go run ./bench/fairness`, never asserted.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real guichet and guichet-sim processes for about 40 s; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var logs strings.Builder
	rep, err := run(ctx, options{scenario: "all", quick: true, seed: 1}, &logs)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	t.Log("\n" + logs.String())
	want := map[string]bool{}
	for _, s := range []string{"noisy neighbour", "8 weighted tenants", "interactive vs batch flood", "prefix affinity"} {
		for _, c := range configurations {
			want[s+"|"+c.name] = true
		}
	}
	for _, r := range rep.rows {
		// The guichet row of a scenario may say more after its name
		// (e.g. a strategy it fell back to).
		key := r.Scenario + "|" + r.Config
		for k := range want {
			if strings.HasPrefix(key, k) {
				key = k
			}
		}
		if !want[key] {
			t.Errorf("unexpected or duplicate row %q / %q", r.Scenario, r.Config)
			continue
		}
		delete(want, key)
		if !r.numbers() {
			t.Errorf("row %q / %q has no numbers: %+v", r.Scenario, r.Config, r.Figures)
		}
	}
	for k := range want {
		t.Errorf("no row for %s", k)
	}
	md := rep.markdown()
	if n := strings.Count(md, "\n| "); n != len(rep.rows)+1 {
		t.Errorf("the Markdown table has %d lines, want a header and %d rows:\n%s", n, len(rep.rows), md)
	}
}
