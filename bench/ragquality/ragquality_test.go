package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/guichet/guichet"
)

// TestPipeline runs the whole benchmark on the labelled set so that it
// cannot rot: the labels must still be found in their documents, and the
// numbers must be sane. It checks no quality level; that is the
// benchmark's job, not a test's.
func TestPipeline(t *testing.T) {
	root, err := findRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Root: root, ChunkSize: 800, Overlap: 100, Dim: 384, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Docs == 0 || rep.Chunks < rep.Docs || len(rep.Queries) == 0 {
		t.Fatalf("corpus: %d documents, %d chunks, %d queries", rep.Docs, rep.Chunks, len(rep.Queries))
	}
	for _, m := range methods {
		s := rep.Methods[m]
		if s.Queries != len(rep.Queries) {
			t.Errorf("%s: scored %d queries of %d", m, s.Queries, len(rep.Queries))
		}
		prev := 0.0
		for _, k := range Ks {
			r := s.Recall[k]
			if r < 0 || r > 1 || r < prev {
				t.Errorf("%s: recall@%d = %v (recall@k must be in [0,1] and grow with k)", m, k, r)
			}
			prev = r
		}
		if s.MRR < 0 || s.MRR > 1 || s.MRR > s.Recall[Ks[len(Ks)-1]] {
			t.Errorf("%s: MRR@10 = %v", m, s.MRR)
		}
	}
	if r := rep.Methods[guichet.Lexical].Recall[10]; r <= 0 {
		t.Errorf("lexical recall@10 = %v, want > 0", r)
	}

	// The command's two outputs.
	var md, js bytes.Buffer
	if err := run([]string{"-v"}, &md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| hybrid |") {
		t.Errorf("markdown report has no hybrid row:\n%s", md.String())
	}
	if err := run([]string{"-json"}, &js); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(js.Bytes()) {
		t.Errorf("-json output is not JSON:\n%s", js.String())
	}
}
