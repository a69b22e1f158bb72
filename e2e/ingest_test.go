package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ingestConfig serves only an embedding model, the one RAG uses.
func ingestConfig(sim *process) string {
	return `models:
  - name: emb
    type: text-embeddings-inference
    providers:
` + provider("vllm", sim, "emb") + `rag:
  embedding_model: emb
`
}

// TestIngestCLI: a user loads a folder into a collection with `guichet
// ingest` and their own key; the broken file is reported with the
// server's reason; running the command again sends nothing new; the
// content is searchable.
func TestIngestCLI(t *testing.T) {
	sim := startSim(t, "--model", "m,emb")
	g := startGuichet(t, ingestConfig(sim))
	adminCLI(t, g, "role create archivists --limit *:rpm=1000")
	adminCLI(t, g, "user create carol@example.org --role archivists")
	key := keyPattern.FindString(adminCLI(t, g, "key create carol@example.org --name ingest"))
	if key == "" {
		t.Fatal("no key printed")
	}

	dir := t.TempDir()
	for src, dst := range map[string]string{"pdf.pdf": "decisions/jo.pdf", "markdown.md": "recettes/dauphinois.md",
		"html.html": "wiki/coquillette.html", "json.json": "bulk.json"} {
		data, err := os.ReadFile(filepath.Join("../rag/parse/testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755)
		os.WriteFile(filepath.Join(dir, dst), data, 0o644)
	}
	broken := filepath.Join(dir, "decisions", "broken.pdf")
	os.WriteFile(broken, []byte("not a pdf at all"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.png"), []byte("not included"), 0o644)

	ingest := func() (string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "guichet"), "ingest", dir, "--collection", "archives", "--url", g.URL(), "--chunk-size", "800")
		cmd.Env = append(os.Environ(), "GUICHET_API_KEY="+key)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		if strings.Contains(string(out), key) {
			t.Errorf("the key was printed:\n%s", out)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}

	out, code := ingest()
	if code != 1 || !strings.Contains(out, `created private collection "archives"`) || !strings.Contains(out, "ingested       4 (") ||
		!strings.Contains(out, "already there  0") || !strings.Contains(out, "failed         1") ||
		!strings.Contains(out, broken+`: the file is named "broken.pdf" but is not a PDF`) || strings.Contains(out, "notes.png") {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}

	var cols struct{ Data []apiCollection }
	api(t, g, key, "GET", "/v1/collections?name=archives", nil, &cols)
	if len(cols.Data) != 1 || cols.Data[0].Visibility != "private" || cols.Data[0].Documents != 4 {
		t.Fatalf("collections: %+v", cols.Data)
	}
	col := cols.Data[0].ID
	documents := func() int {
		var docs struct{ Data []apiDocument }
		api(t, g, key, "GET", fmt.Sprintf("/v1/documents?collection_id=%d&limit=100", col), nil, &docs)
		for _, d := range docs.Data {
			if d.Status != "ready" {
				t.Errorf("document %+v", d)
			}
		}
		return len(docs.Data)
	}
	if n := documents(); n != 4 {
		t.Fatalf("%d documents after the first run", n)
	}

	// The same command again: the server recognises every file.
	out, code = ingest()
	if code != 1 || !strings.Contains(out, "ingested       0 (0 chunks)") || !strings.Contains(out, "already there  4") || !strings.Contains(out, "failed         1") {
		t.Errorf("second run: exit %d\n%s", code, out)
	}
	if n := documents(); n != 4 {
		t.Errorf("%d documents after the second run", n)
	}
	// Without the broken file, nothing fails: exit 0.
	os.Remove(broken)
	if out, code = ingest(); code != 0 || !strings.Contains(out, "already there  4") {
		t.Errorf("third run: exit %d\n%s", code, out)
	}

	// The content is there, found by the text of the PDF and of the recipe.
	for query, doc := range map[string]string{"Floriane Beaudron mission Communication": "jo.pdf", "potimarron dauphinois": "dauphinois.md"} {
		var res apiSearch
		if st := api(t, g, key, "POST", "/v1/search", map[string]any{"query": query, "collection_ids": []int64{col}, "method": "lexical", "limit": 3}, &res); st != 200 || len(res.Data) == 0 {
			t.Fatalf("search %q: %d %+v", query, st, res)
		}
		if top := res.Data[0].Chunk; top.Metadata["document_name"] != doc {
			t.Errorf("search %q: top hit from %v", query, top.Metadata["document_name"])
		}
	}
}
