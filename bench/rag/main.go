// Command rag measures the embedded RAG index: load time, semantic
// search exact vs HNSW (latency and recall@10), lexical and hybrid
// search, on seeded synthetic clustered chunks; and the ingestion speed
// (parse + chunk, no embedding) of the test PDFs.
//
//	go run ./bench/rag [-sizes 10000,100000] [-dims 384,1024] [-queries 200] [-json]
//	go run ./bench/rag -quick
//
// The embeddings are Gaussian clusters, not uniform random vectors:
// those have no neighbourhood structure and no HNSW finds their
// neighbours, whereas real embeddings cluster.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
)

func main() {
	var (
		sizes   = flag.String("sizes", "10000,100000", "numbers of chunks, comma-separated")
		dims    = flag.String("dims", "384,1024", "embedding sizes, comma-separated")
		queries = flag.Int("queries", 200, "queries per measure")
		quick   = flag.Bool("quick", false, "10k chunks, 384 dimensions, 50 queries")
		asJSON  = flag.Bool("json", false, "print JSON rather than Markdown")
		lexOnly = flag.Bool("lexical-only", false, "chunks without embeddings, lexical search only")
		pdfs    = flag.String("pdfs", "rag/parse/testdata/*.pdf", "PDFs for the ingestion speed (glob; empty: skip)")
	)
	flag.Parse()
	cfg := Config{Queries: *queries, PDFGlob: *pdfs, LexicalOnly: *lexOnly}
	var err error
	if cfg.Sizes, err = ints(*sizes); err != nil {
		log.Fatalf("-sizes: %v", err)
	}
	if cfg.Dims, err = ints(*dims); err != nil {
		log.Fatalf("-dims: %v", err)
	}
	if *quick {
		cfg.Sizes, cfg.Dims, cfg.Queries = []int{10_000}, []int{384}, 50
	}
	dir, err := os.MkdirTemp("", "bench-rag-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg.Dir = dir
	cfg.Log = os.Stderr
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return
	}
	rep.Markdown(os.Stdout)
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(f, "_", "")))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Markdown prints the report as tables.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "| chunks | dims | load | graph build | exact p50/p95 | HNSW p50/p95 | recall@10 | lexical p50/p95 | hybrid p50/p95 |\n")
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.Runs {
		fmt.Fprintf(w, "| %d | %d | %.1f s | %.1f s | %s | %s | %.3f | %s | %s |\n",
			m.Chunks, m.Dims, m.LoadSeconds, m.GraphBuildSeconds,
			pair(m.Exact), pair(m.HNSW), m.Recall10, pair(m.Lexical), pair(m.Hybrid))
	}
	if r.Ingestion != nil {
		in := r.Ingestion
		fmt.Fprintf(w, "\nIngestion (parse + chunk, no embedding), %s: %d files, %d pages, %d chunks in %.3f s: **%.1f pages/s** (parser %s; first parse, with PDFium's compilation, excluded)\n",
			in.Glob, in.Files, in.Pages, in.Chunks, in.Seconds, in.PagesPerSecond, in.Parser)
	}
	fmt.Fprintf(w, "\nHybrid = lexical + semantic (HNSW when the collection is above the threshold, else exact) merged by rag.Fuse (k %d). Latencies in ms, %d queries, %s.\n",
		r.RRFK, r.Queries, r.Machine)
}

func pair(l Latency) string {
	if l.P50 == 0 && l.P95 == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f / %.2f", l.P50, l.P95)
}
