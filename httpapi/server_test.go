package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/identity"
	"github.com/guichet/guichet/ledger"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/sqlite"
)

const key = "sk-test-0123456789abcdef0123456789abcdef"

// serverFor builds an in-process guichet from a configuration. Providers
// are not probed: they count as healthy until requests fail.
func serverFor(t testing.TB, yaml string) *Server {
	t.Helper()
	return serverWith(t, yaml, nil)
}

// serverWith is serverFor with the identity store wrapped by wrap.
func serverWith(t testing.TB, yaml string, wrap func(guichet.IdentityStore) guichet.IdentityStore) *Server {
	t.Helper()
	cfg, err := config.Parse("t.yml", []byte(yaml), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.DataDir = t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(cfg.Server.DataDir, "guichet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var ids guichet.IdentityStore = store
	if wrap != nil {
		ids = wrap(store)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	usage, err := ledger.New(store, cfg.Server.DataDir, log, ledger.Options{FlushEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { usage.Close(context.Background()) })
	return NewServer(Options{Config: cfg, Models: routing.NewRegistry(cfg), Logger: log, Identity: identity.NewDirectory(ids, key, log), Ledger: usage, Usage: store,
		Library: store, Index: store.Index()})
}

// newTestServer has unreachable providers and small size limits.
func newTestServer(t testing.TB) *Server {
	return serverFor(t, `
server: {max_body_bytes: 1KiB, max_upload_bytes: 2KiB}
models:
  - name: chat
    type: text-generation
    providers: [{type: vllm, url: "http://127.0.0.1:1"}]
  - name: asr
    type: automatic-speech-recognition
    providers: [{type: vllm, url: "http://127.0.0.1:1"}]
`)
}

func do(s http.Handler, method, path, body, contentType string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

func TestPanicsBecomeAPlain500(t *testing.T) {
	s := newTestServer(t)
	h := s.requestID(s.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		var m map[string]int
		m["boom"]++ // a bug
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 500 {
		t.Fatalf("status %d", w.Code)
	}
	body := w.Body.String()
	if strings.Contains(body, "nil map") || strings.Contains(body, "goroutine") || !strings.Contains(body, w.Header().Get("X-Request-Id")) {
		t.Errorf("500 body leaks or lacks the request id: %s", body)
	}
}

func TestSizeLimits(t *testing.T) {
	s := newTestServer(t)
	big := `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 2000) + `"}]}`
	if w := do(s, "POST", "/v1/chat/completions", big, "application/json"); w.Code != 413 || !strings.Contains(w.Body.String(), "1024 bytes") {
		t.Errorf("big body: %d %s", w.Code, w.Body)
	}
	form := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nasr\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" + strings.Repeat("x", 3000) + "\r\n--b--\r\n"
	if w := do(s, "POST", "/v1/audio/transcriptions", form, "multipart/form-data; boundary=b"); w.Code != 413 || !strings.Contains(w.Body.String(), "2048 bytes") {
		t.Errorf("big upload: %d %s", w.Code, w.Body)
	}
	if spooled, _ := filepath.Glob(filepath.Join(s.cfg.Server.DataDir, "upload-*")); len(spooled) != 0 {
		t.Errorf("a rejected upload left %d files behind", len(spooled))
	}
	if w := do(s, "POST", "/v1/audio/transcriptions", "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nasr\r\n--b--\r\n", "multipart/form-data; boundary=b"); w.Code != 422 || !strings.Contains(w.Body.String(), "file: is required") {
		t.Errorf("no file: %d %s", w.Code, w.Body)
	}
}

func TestOpenAPIDocumentDescribesEveryRoute(t *testing.T) {
	raw, err := openAPIDocument()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank", "/v1/audio/transcriptions", "/v1/models", "/v1/models/{model}", "/health", "/ready", "/metrics"} {
		if doc.Paths[p] == nil {
			t.Errorf("%s missing from /openapi.json", p)
		}
	}
	if !strings.Contains(string(raw), `"additionalProperties":true`) {
		t.Error("request schemas must accept the fields guichet forwards")
	}
}

func FuzzInferenceHandlers(f *testing.F) {
	paths := []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank", "/v1/audio/transcriptions"}
	f.Add(uint8(0), `{"model":"chat","messages":[{"role":"user","content":"x"}]}`)
	f.Add(uint8(1), `{"model":"nope","prompt":"x"}`)
	f.Add(uint8(2), `{"model":"chat","input":"x"}`)
	f.Add(uint8(3), `{"model":"chat","query":"x","documents":["a"]}`)
	f.Add(uint8(4), "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nasr\r\n--b--\r\n")
	s := newTestServer(f)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := paths[int(which)%len(paths)]
		ct := "application/json"
		if strings.Contains(path, "audio") {
			ct = "multipart/form-data; boundary=b"
		}
		w := do(s, "POST", path, body, ct)
		// 502/503: the model servers of this test are unreachable.
		if w.Code >= 500 && w.Code != 502 && w.Code != 503 {
			t.Fatalf("%s %q → %d %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("error without envelope: %s", w.Body)
		}
	})
}
