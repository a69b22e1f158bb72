// Command ragquality measures retrieval quality of the RAG pipeline on a
// small labelled French set: the real parser (rag/parse), chunker
// (rag/chunk), embedded index (sqlite: FTS5 and vectors) and hybrid fusion
// (rag.Fuse), with embeddings from the simulator (package sim) served in
// process. Each query is labelled with a document and an exact quote of the
// passage that answers it; a hit is relevant when its chunk holds the
// quote, so labels survive changes to the chunking.
//
// It prints recall@1/3/5/10 and MRR@10 per method (lexical, semantic,
// hybrid) as Markdown, or JSON with -json. It is a benchmark, not a test:
// nothing fails on a low score.
//
// The simulator's embeddings are feature hashes of words and character
// trigrams, so "semantic" search here is lexical-ish (shared word pieces
// partly forgive word endings; accents are not folded and synonyms are
// unknown): its numbers say nothing about a real embedding model. The set is in testdata (see its README).
//
//	go run ./bench/ragquality [-size 800] [-overlap 100] [-dim 384] [-json] [-v]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/rag/chunk"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ragquality:", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("ragquality", flag.ContinueOnError)
	var (
		cfg     Config
		asJSON  = fs.Bool("json", false, "print the report as JSON")
		verbose = fs.Bool("v", false, "list the queries each method misses (answer not in the top 10)")
		dump    = fs.Bool("dump", false, "print every chunk and exit (to write labels)")
		repo    = fs.String("repo", "", "repository root (default: found from the working directory)")
	)
	fs.IntVar(&cfg.ChunkSize, "size", 800, "chunk size, in characters")
	fs.IntVar(&cfg.Overlap, "overlap", 100, "chunk overlap, in characters")
	fs.IntVar(&cfg.Dim, "dim", 384, "embedding dimensions of the simulator")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var err error
	if cfg.Root = *repo; cfg.Root == "" {
		if cfg.Root, err = findRoot("."); err != nil {
			return err
		}
	}
	ctx := context.Background()
	if *dump {
		return dumpChunks(ctx, w, cfg)
	}
	dir, cleanup, err := tempDir()
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.TempDir = dir
	rep, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeMarkdown(w, rep, *verbose)
	return nil
}

func writeMarkdown(w io.Writer, rep *Report, verbose bool) {
	fmt.Fprintf(w, "# RAG retrieval quality\n\n")
	fmt.Fprintf(w, "Corpus: %d documents, %d chunks (chunk size %d characters, overlap %d); %d queries; embeddings: %s.\n\n",
		rep.Docs, rep.Chunks, rep.ChunkSize, rep.Overlap, len(rep.Queries), rep.EmbeddingsBy)
	fmt.Fprintf(w, "| method | recall@1 | recall@3 | recall@5 | recall@10 | MRR@10 |\n|---|---|---|---|---|---|\n")
	for _, m := range methods {
		s := rep.Methods[m]
		fmt.Fprintf(w, "| %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n", m, s.Recall[1], s.Recall[3], s.Recall[5], s.Recall[10], s.MRR)
	}
	fmt.Fprintf(w, "\nBy kind of query (recall@5 / MRR@10):\n\n| kind | queries |")
	for _, m := range methods {
		fmt.Fprintf(w, " %s |", m)
	}
	fmt.Fprintf(w, "\n|---|---|---|---|---|\n")
	for _, k := range kinds {
		fmt.Fprintf(w, "| %s | %d |", k, rep.ByKind[k][guichet.Lexical].Queries)
		for _, m := range methods {
			s := rep.ByKind[k][m]
			fmt.Fprintf(w, " %.2f / %.2f |", s.Recall[5], s.MRR)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nNote: %s\n", rep.Note)
	if len(rep.Unreachable) > 0 {
		fmt.Fprintf(w, "\nWarning: no single chunk holds the answer of %s (cut by a chunk boundary); they count as misses.\n",
			strings.Join(rep.Unreachable, ", "))
	}
	if !verbose {
		return
	}
	fmt.Fprintf(w, "\n## Misses (answer not in the top %d)\n\n", Ks[len(Ks)-1])
	byID := map[string]Query{}
	for _, q := range rep.Queries {
		byID[q.ID] = q
	}
	for _, m := range methods {
		var ids []string
		for id, o := range rep.PerQuery {
			if o[m].Rank == 0 {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		fmt.Fprintf(w, "### %s: %d\n\n", m, len(ids))
		for _, id := range ids {
			q := byID[id]
			got := strings.Join(rep.PerQuery[id][m].Top, ", ")
			if got == "" {
				got = "no hit"
			}
			fmt.Fprintf(w, "- %s (%s) %q → want %s, top 3: %s\n", id, q.Kind, q.Text, q.Doc, got)
		}
		fmt.Fprintln(w)
	}
}

// dumpChunks prints the chunks the benchmark indexes, for writing labels
// that a single chunk holds.
func dumpChunks(ctx context.Context, w io.Writer, cfg Config) error {
	files, err := corpusFiles(cfg.Root)
	if err != nil {
		return err
	}
	for i, f := range files {
		d, err := loadDoc(ctx, f, int64(i+1), chunk.Options{Size: cfg.ChunkSize, Overlap: cfg.Overlap})
		if err != nil {
			return err
		}
		for _, c := range d.Chunks {
			fmt.Fprintf(w, "=== %s #%d (page %d, %v)\n%s\n\n", d.Name, c.Index, c.Page, c.Headings, c.Text)
		}
	}
	return nil
}
