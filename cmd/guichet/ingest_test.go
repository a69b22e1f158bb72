package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIngestArgs(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"GUICHET_API_KEY": "sk-env", "GUICHET_URL": "http://gw:9000/v1/"}[k]
	}
	o, err := parseIngestArgs([]string{"a", "--collection", "docs", "b", "--chunk-size", "600", "--include", ".pdf, *.MD", "--", "--c"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.paths, []string{"a", "b", "--c"}) || o.collection != "docs" || o.key != "sk-env" || o.url != "http://gw:9000" ||
		o.fields["chunk_size"] != "600" || !slices.Equal(o.include, []string{"*.pdf", "*.md"}) || o.concurrency != 2 {
		t.Errorf("parsed %+v", o)
	}
	for _, args := range [][]string{
		{"a"},                    // no collection
		{"--collection", "docs"}, // no path
		{"a", "--collection", "d", "--metadata", "[1]"}, // not an object
		{"a", "--collection", "d", "--chunk-unit", "words"},
		{"a", "--collection", "d", "--concurrency", "0"},
		{"a", "--collection", "d", "--url", "127.0.0.1:8080"},
		{"a", "--collection", "d", "--include", "["},
	} {
		if _, err := parseIngestArgs(args, env, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	noKey := func(string) string { return "" }
	if _, err := parseIngestArgs([]string{"a", "--collection", "d"}, noKey, io.Discard); err == nil || !strings.Contains(err.Error(), "GUICHET_API_KEY") {
		t.Errorf("no key: %v", err)
	}
	if _, err := parseIngestArgs([]string{"a", "--collection", "d", "--dry-run"}, noKey, io.Discard); err != nil {
		t.Errorf("a dry run needs no key: %v", err)
	}
	var stderr bytes.Buffer
	if code := runIngest(t.Context(), []string{"a"}, ingestEnv{stdout: io.Discard, stderr: &stderr, getenv: env}); code != 2 || !strings.Contains(stderr.String(), "--collection is required") {
		t.Errorf("usage error: exit %d, %s", code, stderr.String())
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCollectFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links")
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "b.md"), "b")
	writeFile(t, filepath.Join(root, "a.txt"), "aaa")
	writeFile(t, filepath.Join(root, ".hidden.md"), "h")
	writeFile(t, filepath.Join(root, ".git", "x.md"), "x")
	writeFile(t, filepath.Join(root, "img.png"), "png")
	writeFile(t, filepath.Join(root, "sub", "c.PDF"), "c")
	os.Symlink("..", filepath.Join(root, "sub", "loop"))         // a loop back to root
	os.Symlink("a.txt", filepath.Join(root, "link.md"))          // the same file again
	os.Symlink("nowhere.md", filepath.Join(root, "dangling.md")) // unreadable
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "z.txt"), "z")

	include := []string{"*.pdf", "*.md", "*.txt"}
	files, failures := collectFiles([]string{root, filepath.Join(root, "img.png"), filepath.Join(other, "missing.txt"), other}, include)
	var got []string
	for _, f := range files {
		rel, _ := filepath.Rel(root, f.path)
		got = append(got, rel)
	}
	want := []string{"a.txt", "b.md", "sub/c.PDF", "img.png", "../" + filepath.Base(other) + "/z.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	if files[0].size != 3 {
		t.Errorf("size %d", files[0].size)
	}
	if len(failures) != 2 || !strings.HasSuffix(failures[0].path, "dangling.md") || !strings.HasSuffix(failures[1].path, "missing.txt") {
		t.Errorf("failures %+v", failures)
	}
}

// recordSleep replaces the waits between tries: no test sleeps.
type recordSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recordSleep) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, d)
	return ctx.Err()
}

func testClient(url string, s *recordSleep) *ingestClient {
	return &ingestClient{base: url, key: "sk-test", hc: http.DefaultClient, sleep: s.sleep, maxTries: ingestMaxTries, maxWait: ingestMaxWait}
}

// scripted answers the n-th request with the n-th reply (the last one
// repeats) and counts the requests.
type scripted struct {
	mu      sync.Mutex
	replies []func(http.ResponseWriter, *http.Request)
	n       int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	f := s.replies[min(s.n, len(s.replies)-1)]
	s.n++
	s.mu.Unlock()
	f(w, r)
}

func reply(status int, retryAfter, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hangUp closes the connection without an answer: a network error.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestIngestRetries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.md")
	writeFile(t, path, "# A\n")
	f := localFile{path: path, size: 4}
	ok := reply(201, "", `{"id": 1, "status": "ready", "chunks": 2}`)
	for _, tc := range []struct {
		name     string
		replies  []func(http.ResponseWriter, *http.Request)
		waits    []time.Duration
		requests int
		err      string
	}{
		{"Retry-After honoured, and capped", []func(http.ResponseWriter, *http.Request){
			reply(429, "7", `{"detail": "slow down"}`), reply(503, "3600", `{"detail": "busy"}`), ok},
			[]time.Duration{7 * time.Second, 60 * time.Second}, 3, ""},
		{"no Retry-After: backoff, then the server's reason", []func(http.ResponseWriter, *http.Request){
			reply(503, "", `{"detail": "ingestion queue full"}`)},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, 5, "ingestion queue full"},
		{"network errors are retried", []func(http.ResponseWriter, *http.Request){hangUp, hangUp, ok},
			[]time.Duration{time.Second, 2 * time.Second}, 3, ""},
		{"422 is final", []func(http.ResponseWriter, *http.Request){
			reply(422, "", `{"detail": "the file is named \"a.md\" but is not Markdown"}`)}, nil, 1, `is not Markdown`},
		{"OpenAI's envelope", []func(http.ResponseWriter, *http.Request){
			reply(404, "", `{"error": {"message": "collection 3 not found"}}`)}, nil, 1, "collection 3 not found"},
		{"a document that failed", []func(http.ResponseWriter, *http.Request){
			reply(201, "", `{"id": 1, "status": "failed", "error": "no text"}`)}, nil, 1, "no text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{replies: tc.replies}
			srv := httptest.NewServer(s)
			defer srv.Close()
			rs := &recordSleep{}
			doc, err := testClient(srv.URL, rs).upload(t.Context(), 1, nil, f)
			if tc.err == "" && (err != nil || doc.Chunks != 2) {
				t.Errorf("upload: %v %+v", err, doc)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			if !slices.Equal(rs.waits, tc.waits) || s.n != tc.requests {
				t.Errorf("waits %v after %d requests, want %v after %d", rs.waits, s.n, tc.waits, tc.requests)
			}
		})
	}
}

// TestIngestTooLarge: the server's 413 names its limit; a larger file
// after it fails without being sent.
func TestIngestTooLarge(t *testing.T) {
	dir := t.TempDir()
	big, bigger := filepath.Join(dir, "big.txt"), filepath.Join(dir, "bigger.txt")
	writeFile(t, big, strings.Repeat("a", 3<<20))
	writeFile(t, bigger, strings.Repeat("a", 4<<20))
	var requests, bodyBytes int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if r.ContentLength > 1<<20 { // refused on its length, the body unread
			reply(413, "", `{"detail": "File size limit exceeded (max: 1048576 bytes): split the document"}`)(w, r)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		bodyBytes += int(n)
	}))
	defer srv.Close()
	c := testClient(srv.URL, &recordSleep{})
	if _, err := c.upload(t.Context(), 1, nil, localFile{big, 3 << 20}); err == nil || !strings.Contains(err.Error(), "max: 1048576 bytes") {
		t.Fatalf("413: %v", err)
	}
	if _, err := c.upload(t.Context(), 1, nil, localFile{bigger, 4 << 20}); err == nil || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("over the known limit: %v", err)
	}
	if requests != 1 || bodyBytes != 0 {
		t.Errorf("%d requests, %d body bytes read", requests, bodyBytes)
	}
}

// fakeRAG is the part of guichet's API the command uses, with its
// deduplication by content.
type fakeRAG struct {
	mu          sync.Mutex
	collections []ingestCollection
	hashes      map[[32]byte]bool
	uploads     int
	fields      map[string]string // of the last upload
	onUpload    func(name string, w http.ResponseWriter, r *http.Request) bool
}

func (f *fakeRAG) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer sk-alice" {
		reply(401, "", `{"detail": "invalid API key"}`)(w, r)
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/me/info":
		io.WriteString(w, `{"id": 7}`)
	case r.Method == "GET" && r.URL.Path == "/v1/collections":
		var out []ingestCollection
		for _, c := range f.collections { // the name filter matches substrings
			if strings.Contains(c.Name, r.URL.Query().Get("name")) {
				out = append(out, c)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"data": out})
	case r.Method == "POST" && r.URL.Path == "/v1/collections":
		var req ingestCollection
		json.NewDecoder(r.Body).Decode(&req)
		req.ID, req.OwnerID = int64(len(f.collections)+1), 7
		f.collections = append(f.collections, req)
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(req)
	case r.Method == "POST" && r.URL.Path == "/v1/documents":
		file, fh, err := r.FormFile("file")
		if err != nil || r.URL.Query().Get("wait") != "true" {
			reply(400, "", `{"detail": "bad form"}`)(w, r)
			return
		}
		f.uploads++
		f.fields = map[string]string{}
		for k, v := range r.MultipartForm.Value {
			f.fields[k] = v[0]
		}
		if f.onUpload != nil {
			f.mu.Unlock()
			done := f.onUpload(fh.Filename, w, r)
			f.mu.Lock()
			if done {
				return
			}
		}
		data, _ := io.ReadAll(file)
		if strings.HasSuffix(fh.Filename, ".pdf") && !bytes.HasPrefix(data, []byte("%PDF")) {
			reply(422, "", `{"detail": "the file is named \"broken.pdf\" but is not a PDF"}`)(w, r)
			return
		}
		h := sha256.Sum256(data)
		if f.hashes[h] {
			io.WriteString(w, `{"id": 1, "status": "ready", "chunks": 1, "duplicate": true}`)
			return
		}
		f.hashes[h] = true
		w.WriteHeader(201)
		io.WriteString(w, `{"id": 1, "status": "ready", "chunks": 3, "parser": "text"}`)
	default:
		http.NotFound(w, r)
	}
}

func TestIngestRun(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.md"), "# A")
	writeFile(t, filepath.Join(dir, "b.txt"), "B")
	writeFile(t, filepath.Join(dir, "sub", "broken.pdf"), "not a pdf")
	// Collections the command must not take: a longer name of its own,
	// and the exact name owned by someone else (public).
	api := &fakeRAG{hashes: map[[32]byte]bool{}, collections: []ingestCollection{{1, "docs-old", 7}, {2, "docs", 8}}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	getenv := func(k string) string { return map[string]string{"GUICHET_API_KEY": "sk-alice"}[k] }
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := runIngest(t.Context(), args, ingestEnv{stdout: &stdout, stderr: &stderr, getenv: getenv, sleep: (&recordSleep{}).sleep})
		if strings.Contains(stdout.String()+stderr.String(), "sk-alice") {
			t.Errorf("the key was printed")
		}
		return code, stdout.String(), stderr.String()
	}

	code, out, errs := run(dir, "--collection", "docs", "--url", srv.URL, "--chunk-size", "600", "--metadata", `{"source": "test"}`)
	if code != 1 || !strings.Contains(out, "ingested       2 (6 chunks)") || !strings.Contains(out, "failed         1") ||
		!strings.Contains(out, `broken.pdf: the file is named "broken.pdf" but is not a PDF`) {
		t.Errorf("first run: exit %d\n%s", code, out)
	}
	if !strings.Contains(errs, `created private collection "docs" (id 3)`) || !strings.Contains(errs, "] failed         "+filepath.Join(dir, "sub", "broken.pdf")) || strings.Count(errs, "/3] ") != 3 {
		t.Errorf("first run, stderr:\n%s", errs)
	}
	if len(api.collections) != 3 || api.fields["chunk_size"] != "600" || api.fields["metadata"] != `{"source": "test"}` || api.fields["collection_id"] != "3" {
		t.Errorf("collections %+v, fields %v", api.collections, api.fields)
	}

	// Again, without the broken file: everything is already there, and
	// the collection is found, not created twice.
	os.Remove(filepath.Join(dir, "sub", "broken.pdf"))
	code, out, _ = run(dir, "--collection", "docs", "--url", srv.URL)
	if code != 0 || !strings.Contains(out, "ingested       0 (0 chunks)") || !strings.Contains(out, "already there  2") || len(api.collections) != 3 {
		t.Errorf("second run: exit %d, %d collections\n%s", code, len(api.collections), out)
	}

	// A dry run lists and sends nothing.
	before := api.uploads
	code, out, _ = run(dir, "--collection", "docs", "--url", srv.URL, "--dry-run")
	if code != 0 || !strings.Contains(out, "a.md") || !strings.Contains(out, "2 files") || api.uploads != before {
		t.Errorf("dry run: exit %d, %d uploads\n%s", code, api.uploads-before, out)
	}

	// A wrong key stops before any upload, with the server's reason.
	getenv = func(string) string { return "sk-wrong" }
	code, _, errs = run(dir, "--collection", "docs", "--url", srv.URL)
	if code != 1 || !strings.Contains(errs, "invalid API key") || api.uploads != before {
		t.Errorf("wrong key: exit %d\n%s", code, errs)
	}
}

// TestIngestInterrupted: Ctrl-C during the second file stops the run;
// the summary says what was not sent, and the exit status is 1.
func TestIngestInterrupted(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		writeFile(t, filepath.Join(dir, strconv.Itoa(i)+".txt"), fmt.Sprint("file ", i))
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	api := &fakeRAG{hashes: map[[32]byte]bool{}, onUpload: func(name string, w http.ResponseWriter, r *http.Request) bool {
		if name != "1.txt" {
			return false
		}
		cancel()
		<-r.Context().Done() // the client gives up its request
		return true
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := runIngest(ctx, []string{dir, "--collection", "c", "--url", srv.URL, "--concurrency", "1", "--key", "sk-alice"},
		ingestEnv{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }, sleep: (&recordSleep{}).sleep})
	out := stdout.String()
	if code != 1 || !strings.Contains(out, "ingested       1") || !strings.Contains(out, "not sent       2 (interrupted") || !strings.Contains(out, "failed         0") {
		t.Errorf("exit %d\n%s\n%s", code, out, stderr.String())
	}
}

// TestIngestProgressBar: on a terminal, one line redrawn in place, and
// failures printed above it.
func TestIngestProgressBar(t *testing.T) {
	var w bytes.Buffer
	p := &progress{w: &w, tty: true, start: time.Now(), total: 2, totalBytes: 3 << 20}
	p.add(fileResult{file: localFile{"a.md", 1 << 20}, outcome: ingested, doc: &ingestDocument{Chunks: 4}})
	p.add(fileResult{file: localFile{"b.pdf", 2 << 20}, outcome: failed, reason: "not a PDF"})
	p.clear()
	out := w.String()
	for _, want := range []string{
		"\r\x1b[K[############------------] 1/2 files · 1.0 MiB/3.0 MiB · 0 failed",
		"\r\x1b[Kfailed         b.pdf: not a PDF\n",
		"[########################] 2/2 files · 3.0 MiB/3.0 MiB · 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %q", want, out)
		}
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("the bar is not redrawn in place: %q", out)
	}
}
