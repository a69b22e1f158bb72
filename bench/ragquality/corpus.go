package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/guichet/guichet/rag/chunk"
	"github.com/guichet/guichet/rag/parse"
)

// modulePath identifies the repository root when walking up from the
// working directory, so the benchmark runs from the root (go run) and from
// its package directory (go test) alike.
const modulePath = "github.com/guichet/guichet"

// parseTestdata holds OpenGateLLM's French test files, which the parser
// tests already use; they are read in place rather than copied so that the
// benchmark and the parser tests see the same bytes.
var parseTestdata = []string{"pdf.pdf", "markdown.md", "html.html", "json.json"}

// findRoot walks up from dir to the directory whose go.mod declares the
// guichet module.
func findRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the guichet repository (no go.mod declaring " + modulePath + "); use -repo")
		}
		dir = parent
	}
}

// corpusFiles lists the documents of the benchmark: the parser's test
// files, then the short documents written for it (testdata/docs/*.md).
func corpusFiles(root string) ([]string, error) {
	var files []string
	for _, name := range parseTestdata {
		files = append(files, filepath.Join(root, "rag", "parse", "testdata", name))
	}
	own, err := filepath.Glob(filepath.Join(root, "bench", "ragquality", "testdata", "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	if len(own) == 0 {
		return nil, errors.New("no document in bench/ragquality/testdata/docs")
	}
	sort.Strings(own)
	return append(files, own...), nil
}

// Doc is one parsed and chunked document.
type Doc struct {
	ID     int64
	Name   string // base file name: what the queries' labels name
	Parser string
	Text   string        // whole extracted text, whitespace-folded, to check the labels
	Chunks []chunk.Chunk // in document order; bulk items one after the other
}

// loadDoc parses and chunks one file the way the RAG service does
// (rag/ingest.go): bulk JSON items are sections of one document, Markdown
// and HTML use the markdown preset.
func loadDoc(ctx context.Context, file string, id int64, opts chunk.Options) (*Doc, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(file)
	d := &Doc{ID: id, Name: name}
	var sections [][]chunk.Page
	if path.Ext(name) == ".json" {
		items, err := parse.ParseBulk(data, parse.Limits{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.Parser = "json-bulk"
		for _, it := range items {
			sections = append(sections, []chunk.Page{{Text: it.Text}})
		}
	} else {
		doc, err := parse.Parse(ctx, name, "", data, parse.Limits{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.Parser = doc.Parser
		pages := make([]chunk.Page, len(doc.Pages))
		for i, p := range doc.Pages {
			pages[i] = chunk.Page{Number: p.Number, Text: p.Text}
		}
		sections = append(sections, pages)
		switch path.Ext(name) {
		case ".md", ".html":
			opts.Preset = chunk.PresetMarkdown // their text is Markdown, as in the service
		}
	}
	var all []string
	for _, pages := range sections {
		pieces, err := chunk.Split(pages, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: chunk: %w", name, err)
		}
		d.Chunks = append(d.Chunks, pieces...)
		all = append(all, chunk.Join(pages))
	}
	d.Text = fold(strings.Join(all, "\n\n"))
	return d, nil
}

// fold makes text comparable for label matching: runs of whitespace
// (PDF line breaks, non-breaking spaces) become one space and typographic
// apostrophes become straight ones, so a label written on one line still
// matches text that pdftotext wrapped. Case and accents are kept: labels
// are exact quotes.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case r == '’' || r == 'ʼ':
			r = '\''
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// Query is one labelled question: the passage that answers it is in
// document Doc and contains Answer (an exact quote, compared after fold).
type Query struct {
	ID     string `json:"id"`
	Text   string `json:"query"`
	Kind   string `json:"kind"` // exact, unaccented or paraphrase
	Doc    string `json:"doc"`
	Answer string `json:"answer"`
}

// Kinds of queries, reported separately because they stress lexical
// search differently.
var kinds = []string{"exact", "unaccented", "paraphrase"}

func loadQueries(root string) ([]Query, error) {
	b, err := os.ReadFile(filepath.Join(root, "bench", "ragquality", "testdata", "queries.json"))
	if err != nil {
		return nil, err
	}
	var set struct {
		Queries []Query `json:"queries"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt key would silently drop a label
	if err := dec.Decode(&set); err != nil {
		return nil, fmt.Errorf("queries.json: %w", err)
	}
	seen := map[string]bool{}
	for i, q := range set.Queries {
		switch {
		case q.ID == "" || q.Text == "" || q.Doc == "" || q.Answer == "":
			return nil, fmt.Errorf("queries.json: query %d: id, query, doc and answer are required", i+1)
		case seen[q.ID]:
			return nil, fmt.Errorf("queries.json: duplicate id %q", q.ID)
		case !slices.Contains(kinds, q.Kind):
			return nil, fmt.Errorf("queries.json: %s: kind must be one of %v", q.ID, kinds)
		}
		seen[q.ID] = true
	}
	return set.Queries, nil
}
