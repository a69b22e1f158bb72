package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet/postgres/pgtest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// ragConfig serves a chat model (the simulator echoes the prompt it
// receives, so a test sees what guichet put in it) and an embedding
// model used by the RAG service. storage is an optional storage section.
func ragConfig(sim *process, storage string) string {
	return storage + `models:
  - name: chat
    type: text-generation
    providers:
` + provider("vllm", sim, "m") + `  - name: emb
    type: text-embeddings-inference
    providers:
` + provider("vllm", sim, "emb") + `rag:
  embedding_model: emb
`
}

// api calls guichet's RAG API with key and decodes the answer into out
// (when not nil); it returns the status.
func api(t *testing.T, g *process, key, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case *uploadForm:
		r, ct = &b.buf, b.ct
	default:
		j, _ := json.Marshal(b)
		r, ct = bytes.NewReader(j), "application/json"
	}
	req, _ := http.NewRequest(method, g.URL()+path, r)
	req.Header.Set("Authorization", "Bearer "+key)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

type uploadForm struct {
	buf bytes.Buffer
	ct  string
}

// form builds a multipart upload: the file (if name is not empty) and
// the fields.
func form(t *testing.T, name string, data []byte, fields map[string]string) *uploadForm {
	t.Helper()
	b := &uploadForm{}
	w := multipart.NewWriter(&b.buf)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	if name != "" {
		fw, _ := w.CreateFormFile("file", name)
		fw.Write(data)
	}
	w.Close()
	b.ct = w.FormDataContentType()
	return b
}

type apiCollection struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	Visibility string `json:"visibility"`
	Documents  int64  `json:"documents"`
	Owner      string `json:"owner"`
}

type apiDocument struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Error     string `json:"error"`
	Parser    string `json:"parser"`
	Pages     int    `json:"pages"`
	Chunks    int64  `json:"chunks"`
	Duplicate bool   `json:"duplicate"`
}

type apiChunk struct {
	ID         int64          `json:"id"`
	DocumentID int64          `json:"document_id"`
	Content    string         `json:"content"`
	Metadata   map[string]any `json:"metadata"`
}

type apiSearch struct {
	Data []struct {
		Method string   `json:"method"`
		Score  float64  `json:"score"`
		Chunk  apiChunk `json:"chunk"`
	} `json:"data"`
	Usage struct {
		PromptTokens int64 `json:"prompt_tokens"`
	} `json:"usage"`
}

type apiError struct {
	Detail string `json:"detail"`
}

// ragUsers creates two users through the admin CLI: alice may make
// public collections, bob may not.
func ragUsers(t *testing.T, g *process) (alice, bob string) {
	adminCLI(t, g, "role create writers --permission create_public_collection --limit *:rpm=1000")
	adminCLI(t, g, "role create readers --limit *:rpm=1000")
	adminCLI(t, g, "user create alice@example.org --role writers")
	adminCLI(t, g, "user create bob@example.org --role readers")
	alice = keyPattern.FindString(adminCLI(t, g, "key create alice@example.org --name rag"))
	bob = keyPattern.FindString(adminCLI(t, g, "key create bob@example.org --name rag"))
	if alice == "" || bob == "" {
		t.Fatal("no key printed")
	}
	return alice, bob
}

// TestRAGEmbedded walks the story on the embedded store: a
// product creates a collection, uploads the French PDF, searches it
// three ways and chats with citations; another user sees nothing of it
// until it is public, and never changes it.
func TestRAGEmbedded(t *testing.T) {
	sim := startSim(t, "--model", "m,emb", "--content", "echo", "--output-tokens", "4000", "--max-model-len", "32768")
	g := startGuichet(t, ragConfig(sim, ""))
	ragStory(t, g, true)
}

// ragStory is the story; semantic says whether an embedding
// model is configured (otherwise semantic and hybrid search are refused
// with a message that says so).
func ragStory(t *testing.T, g *process, semantic bool) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guichet's log:\n%s", g.Logs())
		}
	})
	alice, bob := ragUsers(t, g)
	pdf, err := os.ReadFile("../rag/parse/testdata/pdf.pdf")
	if err != nil {
		t.Fatal(err)
	}

	var col apiCollection
	if st := api(t, g, alice, "POST", "/v1/collections", map[string]any{"name": "journal officiel"}, &col); st != 201 || col.Visibility != "private" {
		t.Fatalf("create collection: %d %+v", st, col)
	}
	var doc apiDocument
	st := api(t, g, alice, "POST", "/v1/documents", form(t, "decision.pdf", pdf, map[string]string{
		"collection_id": fmt.Sprint(col.ID), "chunk_size": "600", "metadata": `{"source": "JO"}`}), &doc)
	if st != 201 || doc.Status != "ready" || doc.Pages != 2 || doc.Chunks < 3 || doc.Parser == "" {
		t.Fatalf("upload: %d %+v", st, doc)
	}
	// The same file again is recognised, not ingested twice.
	var again apiDocument
	if st := api(t, g, alice, "POST", "/v1/documents", form(t, "copy.pdf", pdf, map[string]string{"collection_id": fmt.Sprint(col.ID)}), &again); st != 200 || !again.Duplicate || again.ID != doc.ID {
		t.Fatalf("re-upload: %d %+v", st, again)
	}

	// Lexical, semantic and hybrid search find the passage about the
	// "mission Communication"; every hit carries its document and page.
	for _, method := range []string{"lexical", "semantic", "hybrid"} {
		var res apiSearch
		if !semantic && method != "lexical" {
			var e apiError
			if st := api(t, g, alice, "POST", "/v1/search", map[string]any{"query": "Beaudron", "collection_ids": []int64{col.ID}, "method": method}, &e); st != 400 || !strings.Contains(e.Detail, "embedding_model") {
				t.Errorf("%s search without an embedding model: %d %s", method, st, e.Detail)
			}
			continue
		}
		st := api(t, g, alice, "POST", "/v1/search", map[string]any{"query": "Floriane Beaudron mission Communication", "collection_ids": []int64{col.ID}, "method": method, "limit": 3}, &res)
		if st != 200 || len(res.Data) == 0 {
			t.Fatalf("%s search: %d %+v", method, st, res)
		}
		top := res.Data[0]
		if top.Method != method || !strings.Contains(top.Chunk.Content, "Beaudron") || top.Chunk.DocumentID != doc.ID ||
			top.Chunk.Metadata["document_name"] != "decision.pdf" || top.Chunk.Metadata["source"] != "JO" || top.Chunk.Metadata["page"] == nil {
			t.Errorf("%s search: top hit %+v", method, top)
		}
		if method != "lexical" && res.Usage.PromptTokens == 0 {
			t.Errorf("%s search: the query's embedding is not in usage", method)
		}
	}
	// A metadata filter that matches nothing leaves nothing.
	var none apiSearch
	api(t, g, alice, "POST", "/v1/search", map[string]any{"query": "Beaudron", "collection_ids": []int64{col.ID}, "metadata_filters": map[string]any{"key": "source", "type": "eq", "value": "other"}}, &none)
	if len(none.Data) != 0 {
		t.Errorf("filter source=other: %d hits", len(none.Data))
	}

	// Chat with the search tool, through the OpenAI SDK: the model
	// receives the passages with the instruction to cite them, and the
	// answer carries search_results.
	c := client(g, option.WithAPIKey(alice))
	var raw *http.Response
	answer, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Qui est cheffe de la mission Communication ?")},
	}, option.WithJSONSet("tools", []any{map[string]any{"type": "search", "collection_ids": []int64{col.ID}, "limit": 3}}), option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	text := answer.Choices[0].Message.Content
	if !strings.Contains(text, "[Document 1]") || !strings.Contains(text, "Beaudron") || !strings.Contains(text, "cite") {
		t.Errorf("the model did not receive the passages with the citation instruction:\n%s", text)
	}
	var results []struct {
		Chunk apiChunk `json:"chunk"`
	}
	if err := json.Unmarshal([]byte(answer.JSON.ExtraFields["search_results"].Raw()), &results); err != nil || len(results) == 0 || results[0].Chunk.DocumentID != doc.ID {
		t.Errorf("search_results: %v %+v", err, results)
	}

	// The chat and the embeddings of the documents and of the queries are
	// all in alice's ledger.
	waitFor(t, "the chat and the embeddings in alice's usage", 10*time.Second, func() bool {
		var usage struct {
			Data []struct {
				Endpoint string `json:"endpoint"`
				Model    string `json:"model"`
				Status   int    `json:"status"`
			} `json:"data"`
		}
		api(t, g, alice, "GET", "/v1/me/usage?limit=100", nil, &usage)
		seen := map[string]bool{}
		for _, l := range usage.Data {
			if l.Status == 200 {
				seen[l.Endpoint+" "+l.Model] = true
			}
		}
		return seen["/v1/chat/completions chat"] && (!semantic || seen["/v1/embeddings emb"])
	})

	// Streamed, with the legacy fields: search_results come in the last
	// chunk before [DONE].
	stream := c.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
		Model:    "chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("délégation de signature")},
	}, option.WithJSONSet("search", true), option.WithJSONSet("search_args", map[string]any{"collections": []int64{col.ID}, "k": 2, "method": "lexical"}))
	sawResults := false
	for stream.Next() {
		if r, ok := stream.Current().JSON.ExtraFields["search_results"]; ok && strings.Contains(r.Raw(), "chunk") {
			sawResults = true
		}
	}
	if err := stream.Err(); err != nil || !sawResults {
		t.Errorf("stream: err %v, search_results seen %v", err, sawResults)
	}

	// Bob cannot see Alice's private collection, nor search it.
	var e apiError
	if st := api(t, g, bob, "GET", fmt.Sprintf("/v1/collections/%d", col.ID), nil, &e); st != 404 {
		t.Errorf("bob reads a private collection: %d", st)
	}
	if st := api(t, g, bob, "POST", "/v1/search", map[string]any{"query": "Beaudron", "collection_ids": []int64{col.ID}}, &e); st != 404 {
		t.Errorf("bob searches a private collection: %d", st)
	}
	var bobs []apiCollection
	var list struct{ Data []apiCollection }
	api(t, g, bob, "GET", "/v1/collections", nil, &list)
	bobs = list.Data
	if len(bobs) != 0 {
		t.Errorf("bob lists %+v", bobs)
	}
	// Bob may not make a collection public.
	if st := api(t, g, bob, "POST", "/v1/collections", map[string]any{"name": "x", "visibility": "public"}, &e); st != 403 || !strings.Contains(e.Detail, "create_public_collection") {
		t.Errorf("bob creates a public collection: %d %s", st, e.Detail)
	}
	// Public: Bob searches it, but cannot upload into it or delete it.
	if st := api(t, g, alice, "PATCH", fmt.Sprintf("/v1/collections/%d", col.ID), map[string]any{"visibility": "public"}, &col); st != 200 || col.Visibility != "public" {
		t.Fatalf("make public: %d %+v", st, col)
	}
	var res apiSearch
	if st := api(t, g, bob, "POST", "/v1/search", map[string]any{"query": "Beaudron", "collection_ids": []int64{col.ID}, "method": "lexical"}, &res); st != 200 || len(res.Data) == 0 {
		t.Errorf("bob searches a public collection: %d %+v", st, res)
	}
	if st := api(t, g, bob, "POST", "/v1/documents", form(t, "x.txt", []byte("hello"), map[string]string{"collection_id": fmt.Sprint(col.ID)}), &e); st != 404 {
		t.Errorf("bob uploads into alice's public collection: %d", st)
	}
	if st := api(t, g, bob, "DELETE", fmt.Sprintf("/v1/documents/%d", doc.ID), nil, &e); st != 404 {
		t.Errorf("bob deletes alice's document: %d", st)
	}

	// Bad input: a clear 4xx, nothing created.
	if st := api(t, g, alice, "POST", "/v1/documents", form(t, "fake.pdf", []byte("not a pdf at all"), map[string]string{"collection_id": fmt.Sprint(col.ID)}), &e); st != 422 || !strings.Contains(e.Detail, "PDF") {
		t.Errorf("a text named .pdf: %d %s", st, e.Detail)
	}
	big := bytes.Repeat([]byte("a"), 20<<20+1)
	if st := api(t, g, alice, "POST", "/v1/documents", form(t, "big.txt", big, map[string]string{"collection_id": fmt.Sprint(col.ID)}), &e); st != 413 || !strings.Contains(e.Detail, "20971520") {
		t.Errorf("21 MiB: %d %s", st, e.Detail)
	}
	if st := api(t, g, alice, "POST", "/v1/search", map[string]any{"query": "x", "collection_ids": []int64{col.ID}, "method": "fuzzy"}, &e); st != 422 {
		t.Errorf("bad method: %d", st)
	}

	// Asynchronous ingestion: 202, then the status moves to ready.
	var queued apiDocument
	if st := api(t, g, alice, "POST", "/v1/documents?wait=false", form(t, "recette.md", []byte("# Tarte\n\nMélanger la farine et le beurre.\n"), map[string]string{"collection_id": fmt.Sprint(col.ID)}), &queued); st != 202 {
		t.Fatalf("wait=false: %d %+v", st, queued)
	}
	waitFor(t, "the queued document to be ready", 30*time.Second, func() bool {
		var d apiDocument
		api(t, g, alice, "GET", fmt.Sprintf("/v1/documents/%d", queued.ID), nil, &d)
		return d.Status == "ready" && d.Chunks == 1
	})

	// Deleting the collection removes every chunk: searching it is 404,
	// its documents are gone.
	if st := api(t, g, alice, "DELETE", fmt.Sprintf("/v1/collections/%d", col.ID), nil, nil); st != 204 {
		t.Fatalf("delete collection: %d", st)
	}
	if st := api(t, g, alice, "GET", fmt.Sprintf("/v1/documents/%d/chunks", doc.ID), nil, &e); st != 404 {
		t.Errorf("chunks of a deleted document: %d", st)
	}
}

// TestRAGCluster walks the same story in cluster mode on PostgreSQL 15:
// collections, documents and chunks in PostgreSQL, French full-text
// search. Debian's PostgreSQL has no pgvector, so no embedding model is
// configured and search is lexical (semantic search on pgvector is
// covered by the index suite on PGlite, in package postgres).
func TestRAGCluster(t *testing.T) {
	dsn := pgtest.DSN(t)
	sim := startSim(t, "--model", "m,emb", "--content", "echo", "--output-tokens", "4000", "--max-model-len", "32768")
	cfg := strings.Replace(ragConfig(sim, fmt.Sprintf("storage:\n  postgres: %q\n", dsn)), "rag:\n  embedding_model: emb\n", "", 1)
	g := startGuichet(t, cfg)
	ragStory(t, g, false)
}

// TestRAGClusterWithoutPgvector: a PostgreSQL without pgvector and an
// embedding model configured: guichet refuses to start and says how to
// fix it.
func TestRAGClusterWithoutPgvector(t *testing.T) {
	dsn := pgtest.DSN(t) // PostgreSQL 15 from Debian: no pgvector
	sim := startSim(t, "--model", "m,emb")
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(ragConfig(sim, fmt.Sprintf("storage:\n  postgres: %q\n", dsn))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx(t), filepath.Join(bin, "guichet"), "serve", "--config", path, "--listen", "127.0.0.1:0", "--data", dir)
	cmd.Env = append(os.Environ(), "GUICHET_MASTER_KEY="+masterKey)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pgvector") || !strings.Contains(string(out), "CREATE EXTENSION vector") {
		t.Fatalf("guichet on PostgreSQL without pgvector: err %v\n%s", err, out)
	}
}
