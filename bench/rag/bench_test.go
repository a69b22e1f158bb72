package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunQuick runs the benchmark on a tiny corpus so that it cannot rot.
func TestRunQuick(t *testing.T) {
	rep, err := Run(t.Context(), Config{Sizes: []int{500}, Dims: []int{32}, Queries: 10, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs", len(rep.Runs))
	}
	m := rep.Runs[0]
	if m.Recall10 < 0.8 || m.HNSW.P50 <= 0 || m.Exact.P50 <= 0 || m.Hybrid.P95 <= 0 {
		t.Errorf("measure: %+v", m)
	}
	var out bytes.Buffer
	rep.Markdown(&out)
	if !strings.Contains(out.String(), "| 500 | 32 |") {
		t.Errorf("table:\n%s", out.String())
	}
}
