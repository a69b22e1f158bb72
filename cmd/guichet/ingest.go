package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const ingestUsage = `usage: guichet ingest PATH... --collection NAME [flags]

Uploads files, and the files of folders (recursively, hidden ones
skipped), into a RAG collection of a running guichet through its API,
with your own key: your quotas and ledger apply. The collection is
yours: the one of that exact name you own, or a new private one.

Re-running the same command is safe: guichet recognises a file it
already has (same content, same collection) and does not ingest it
again; the summary counts it as "already there". Nothing is kept on disk.

Flags:
  --collection NAME    the collection (required)
  --url URL            guichet's address (default env GUICHET_URL, or
                       http://127.0.0.1:8080)
  --key KEY            your API key (default env GUICHET_API_KEY; prefer
                       the environment: a flag is visible to other users in ps)
  --concurrency N      files sent at once (default 2)
  --chunk-size N       chunk size (default: the server's, 2048)
  --chunk-overlap N    overlap between chunks
  --chunk-unit UNIT    characters or tokens
  --metadata JSON      a JSON object attached to every chunk, such as
                       {"source": "intranet"}
  --include GLOBS      comma-separated patterns of file names to take from
                       folders (".pdf" means "*.pdf"; default: the
                       supported types, ` + defaultInclude + `);
                       files named on the command line are always sent
  --dry-run            list what would be sent, contact no server

Exit status: 0 when every file is in the collection, 1 when a file
failed (each is listed with the server's reason) or on Ctrl-C, 2 for a
usage error.
`

const defaultInclude = ".pdf,.docx,.odt,.html,.htm,.md,.markdown,.txt,.json"

// Retry policy: 429 and 503 say when to come back; the wait is capped so
// a misconfigured Retry-After cannot stall a run for an hour.
const (
	ingestMaxTries = 5
	ingestMaxWait  = 60 * time.Second
)

// ingestEnv is what the command takes from the world, so tests can
// replace the terminal and the clock's waits.
type ingestEnv struct {
	stdout, stderr io.Writer
	tty            bool // stderr is a terminal: draw a progress bar
	getenv         func(string) string
	sleep          func(context.Context, time.Duration) error
	client         *http.Client
}

func ingest(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	return runIngest(ctx, args, ingestEnv{stdout: os.Stdout, stderr: os.Stderr, tty: stderrIsTerminal(), getenv: os.Getenv, sleep: sleepCtx})
}

func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type ingestOptions struct {
	paths       []string
	collection  string
	url, key    string
	concurrency int
	fields      map[string]string // form fields sent with every file
	include     []string
	dryRun      bool
}

// parseIngestArgs reads flags placed before, between or after the paths
// (the flag package stops at the first path).
func parseIngestArgs(args []string, getenv func(string) string, stderr io.Writer) (*ingestOptions, error) {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ingestUsage) }
	o := &ingestOptions{}
	fs.StringVar(&o.collection, "collection", "", "")
	fs.StringVar(&o.url, "url", firstSet(getenv("GUICHET_URL"), "http://127.0.0.1:8080"), "")
	fs.StringVar(&o.key, "key", getenv("GUICHET_API_KEY"), "")
	fs.IntVar(&o.concurrency, "concurrency", 2, "")
	size := fs.Int("chunk-size", 0, "")
	overlap := fs.Int("chunk-overlap", 0, "")
	unit := fs.String("chunk-unit", "", "")
	metadata := fs.String("metadata", "", "")
	include := fs.String("include", defaultInclude, "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			o.paths = append(o.paths, rest...) // after --, everything is a path
			break
		}
		if len(rest) == 0 {
			break
		}
		o.paths, args = append(o.paths, rest[0]), rest[1:]
	}
	switch {
	case len(o.paths) == 0:
		return nil, usageError("no file or folder to ingest")
	case o.collection == "":
		return nil, usageError("--collection is required")
	case o.concurrency < 1:
		return nil, usageError("--concurrency must be at least 1")
	case *size < 0 || *overlap < 0:
		return nil, usageError("chunk sizes cannot be negative")
	case *unit != "" && *unit != "characters" && *unit != "tokens":
		return nil, usageError(fmt.Sprintf("--chunk-unit must be characters or tokens, not %q", *unit))
	case o.key == "" && !o.dryRun:
		return nil, usageError("no API key: set GUICHET_API_KEY (or --key)")
	}
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError(fmt.Sprintf("--url must be an http(s) address such as http://127.0.0.1:8080, not %q", o.url))
	}
	// Accept the address as people copy it: with a trailing / or /v1.
	o.url = strings.TrimSuffix(strings.TrimSuffix(o.url, "/"), "/v1")
	o.fields = map[string]string{}
	if *size > 0 {
		o.fields["chunk_size"] = strconv.Itoa(*size)
	}
	if *overlap > 0 {
		o.fields["chunk_overlap"] = strconv.Itoa(*overlap)
	}
	if *unit != "" {
		o.fields["chunk_unit"] = *unit
	}
	if *metadata != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(*metadata), &m); err != nil || m == nil {
			return nil, usageError(`--metadata must be a JSON object, such as {"source": "intranet"}`)
		}
		o.fields["metadata"] = *metadata
	}
	for _, p := range strings.Split(*include, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if strings.HasPrefix(p, ".") && !strings.ContainsAny(p, `*?[\`) {
			p = "*" + p
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, usageError(fmt.Sprintf("--include: bad pattern %q", p))
		}
		o.include = append(o.include, p)
	}
	if len(o.include) == 0 {
		return nil, usageError("--include matches nothing")
	}
	return o, nil
}

// localFile is a file to send.
type localFile struct {
	path string
	size int64
}

// fileFailure is a file that could not be ingested, and why.
type fileFailure struct {
	path, reason string
}

// collectFiles lists the files to send, in a stable order: the paths in
// the order given, each folder depth-first by name. Folders are followed
// through symbolic links, each real folder once (so a link loop ends);
// hidden entries and names the include patterns reject are skipped. A
// file named on the command line is always taken.
func collectFiles(paths, include []string) (files []localFile, failures []fileFailure) {
	seen := map[string]bool{} // real paths of the folders and files taken
	take := func(path string, fi fs.FileInfo) {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			real = path
		}
		if !seen[real] {
			seen[real] = true
			files = append(files, localFile{path: path, size: fi.Size()})
		}
	}
	var walk func(dir string)
	walk = func(dir string) {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			if seen[real] {
				return
			}
			seen[real] = true
		}
		entries, err := os.ReadDir(dir) // sorted by name
		if err != nil {
			failures = append(failures, fileFailure{dir, err.Error()})
			return
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			fi, err := os.Stat(path) // follows links
			if err != nil {
				if matchAny(include, e.Name()) {
					failures = append(failures, fileFailure{path, err.Error()})
				}
				continue
			}
			switch {
			case fi.IsDir():
				walk(path)
			case fi.Mode().IsRegular() && matchAny(include, e.Name()):
				take(path, fi)
			}
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			failures = append(failures, fileFailure{p, err.Error()})
		case fi.IsDir():
			walk(p)
		case fi.Mode().IsRegular():
			take(p, fi)
		default:
			failures = append(failures, fileFailure{p, "not a regular file"})
		}
	}
	return files, failures
}

func matchAny(patterns []string, name string) bool {
	name = strings.ToLower(name)
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// ingestClient calls guichet's API, retrying what is worth retrying.
type ingestClient struct {
	base, key string
	hc        *http.Client
	sleep     func(context.Context, time.Duration) error
	maxTries  int
	maxWait   time.Duration
	limit     atomic.Int64 // the server's upload limit, once a 413 told it
}

// apiError is an answer of the server that is not a success.
type apiError struct {
	status int
	detail string
}

func (e *apiError) Error() string { return e.detail }

// retryable says whether a status is worth another try: limits and
// overload, and gateways in front of a restarting guichet.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable ||
		status == http.StatusBadGateway || status == http.StatusGatewayTimeout
}

// do sends the request newReq builds (once per try) and decodes a
// success into out. Network errors are retried only when retryNetwork:
// for uploads (idempotent, since the server deduplicates by content)
// and lookups, not for the first call, so a wrong --url fails at once,
// nor for creating the collection, which could then be made twice.
func (c *ingestClient) do(ctx context.Context, newReq func() (*http.Request, error), retryNetwork bool, out any) (int, error) {
	for try := 1; ; try++ {
		req, err := newReq()
		if err != nil {
			return 0, err
		}
		req = req.WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+c.key)
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			// url.Error names the URL, never the key (it is in a header).
			if !retryNetwork || try >= c.maxTries {
				return 0, fmt.Errorf("cannot reach guichet: %v", err)
			}
			if err := c.sleep(ctx, c.backoff(try)); err != nil {
				return 0, err
			}
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if resp.StatusCode >= 400 {
			if retryable(resp.StatusCode) && try < c.maxTries {
				wait, ok := retryAfter(resp.Header.Get("Retry-After"))
				if !ok {
					wait = c.backoff(try)
				}
				if err := c.sleep(ctx, min(wait, c.maxWait)); err != nil {
					return 0, err
				}
				continue
			}
			return resp.StatusCode, &apiError{resp.StatusCode, errorDetail(resp, raw)}
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return resp.StatusCode, fmt.Errorf("unexpected answer from %s (%s): is --url a guichet?", req.URL.Redacted(), resp.Status)
			}
		}
		return resp.StatusCode, nil
	}
}

// backoff is the wait before try+1 when the server did not say: 1 s,
// 2 s, 4 s… capped.
func (c *ingestClient) backoff(try int) time.Duration {
	return min(time.Second<<min(try-1, 10), c.maxWait)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(n, 0)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// errorDetail is the server's reason: OpenGateLLM's detail, else
// OpenAI's error.message, else the status.
func errorDetail(resp *http.Response, raw []byte) string {
	var body struct {
		Detail any `json:"detail"`
		Error  struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil {
		if s, ok := body.Detail.(string); ok && s != "" {
			return s
		}
		if body.Error.Message != "" {
			return body.Error.Message
		}
	}
	return fmt.Sprintf("the server answered %s", resp.Status)
}

func (c *ingestClient) jsonRequest(method, path string, body any) func() (*http.Request, error) {
	return func() (*http.Request, error) {
		var r io.Reader
		if body != nil {
			j, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			r = bytes.NewReader(j)
		}
		req, err := http.NewRequest(method, c.base+path, r)
		if err == nil && body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
}

type ingestCollection struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	OwnerID int64  `json:"owner_id"`
}

// collection finds the caller's collection of that exact name (the
// API's name filter is a substring match, and lists public collections
// of others too), or creates it, private.
func (c *ingestClient) collection(ctx context.Context, name string) (id int64, created bool, err error) {
	var me struct {
		ID int64 `json:"id"`
	}
	if _, err := c.do(ctx, c.jsonRequest("GET", "/v1/me/info", nil), false, &me); err != nil {
		return 0, false, err
	}
	const page = 100
	for offset := 0; ; offset += page {
		var list struct {
			Data []ingestCollection `json:"data"`
		}
		q := url.Values{"name": {name}, "limit": {strconv.Itoa(page)}, "offset": {strconv.Itoa(offset)}}
		if _, err := c.do(ctx, c.jsonRequest("GET", "/v1/collections?"+q.Encode(), nil), true, &list); err != nil {
			return 0, false, err
		}
		for _, col := range list.Data {
			if col.Name == name && col.OwnerID == me.ID && me.ID != 0 {
				return col.ID, false, nil
			}
		}
		if len(list.Data) < page {
			break
		}
	}
	var col ingestCollection
	_, err = c.do(ctx, c.jsonRequest("POST", "/v1/collections", map[string]string{"name": name, "visibility": "private"}), false, &col)
	return col.ID, err == nil, err
}

// ingestDocument is the part of the API's document an ingestion reports.
type ingestDocument struct {
	ID        int64  `json:"id"`
	Status    string `json:"status"`
	Error     string `json:"error"`
	Parser    string `json:"parser"`
	Chunks    int64  `json:"chunks"`
	Duplicate bool   `json:"duplicate"`
}

var sizeLimit = regexp.MustCompile(`max: (\d+) bytes`)

// upload sends one file and waits for its ingestion.
func (c *ingestClient) upload(ctx context.Context, collection int64, fields map[string]string, f localFile) (*ingestDocument, error) {
	if limit := c.limit.Load(); limit > 0 && f.size > limit {
		return nil, fmt.Errorf("%d bytes, over the server's limit of %d bytes (not sent): split the document, or ask your operator to raise server.max_upload_bytes", f.size, limit)
	}
	newReq := func() (*http.Request, error) {
		fh, err := os.Open(f.path)
		if err != nil {
			return nil, err
		}
		fi, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, err
		}
		// The body streams the file between a head and a tail built
		// here, so its length is known: a server refuses a file over
		// its limit from Content-Length alone.
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("collection_id", strconv.FormatInt(collection, 10))
		for k, v := range fields {
			mw.WriteField(k, v)
		}
		mw.CreateFormFile("file", filepath.Base(f.path))
		head := bytes.Clone(buf.Bytes())
		buf.Reset()
		mw.Close()
		tail := buf.Bytes()
		body := struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), io.LimitReader(fh, fi.Size()), bytes.NewReader(tail)), fh}
		req, err := http.NewRequest("POST", c.base+"/v1/documents?wait=true", body)
		if err != nil {
			fh.Close()
			return nil, err
		}
		req.ContentLength = int64(len(head)) + fi.Size() + int64(len(tail))
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if fi.Size() > 1<<20 {
			// Let the server refuse a large file before it is sent.
			req.Header.Set("Expect", "100-continue")
		}
		return req, nil
	}
	var doc ingestDocument
	_, err := c.do(ctx, newReq, true, &doc)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusRequestEntityTooLarge {
		if m := sizeLimit.FindStringSubmatch(ae.detail); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			c.limit.Store(n)
		}
	}
	if err != nil {
		return nil, err
	}
	if doc.Status == "failed" {
		return nil, errors.New(firstSet(doc.Error, "the ingestion failed"))
	}
	return &doc, nil
}

// outcome is how one file went.
type outcome int

const (
	ingested outcome = iota
	alreadyThere
	failed
	notSent // interrupted
)

type fileResult struct {
	file    localFile
	outcome outcome
	doc     *ingestDocument
	reason  string
}

// progress reports results as they come: a bar redrawn in place on a
// terminal, a line per file otherwise.
type progress struct {
	mu                    sync.Mutex
	w                     io.Writer
	tty                   bool
	start                 time.Time
	total, done, failed   int
	totalBytes, doneBytes int64
}

func (p *progress) add(r fileResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.outcome == notSent {
		return
	}
	p.done++
	p.doneBytes += r.file.size
	var line string
	switch r.outcome {
	case ingested:
		line = fmt.Sprintf("ingested       %s (%d chunks, %s)", r.file.path, r.doc.Chunks, firstSet(r.doc.Parser, "?"))
	case alreadyThere:
		line = fmt.Sprintf("already there  %s", r.file.path)
	case failed:
		p.failed++
		line = fmt.Sprintf("failed         %s: %s", r.file.path, r.reason)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "[%d/%d] %s\n", p.done, p.total, line)
		return
	}
	if r.outcome == failed { // failures stay on screen, above the bar
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", line)
	}
	p.drawLocked()
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked()
}

func (p *progress) drawLocked() {
	if !p.tty {
		return
	}
	const width = 24
	filled := width
	if p.total > 0 {
		filled = width * p.done / p.total
	}
	elapsed := time.Since(p.start).Seconds()
	rate := ""
	if elapsed >= 1 {
		rate = fmt.Sprintf(" · %.1f files/s, %s/s", float64(p.done)/elapsed, humanBytes(int64(float64(p.doneBytes)/elapsed)))
	}
	fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %d/%d files · %s/%s · %d failed%s",
		strings.Repeat("#", filled), strings.Repeat("-", width-filled), p.done, p.total,
		humanBytes(p.doneBytes), humanBytes(p.totalBytes), p.failed, rate)
}

// clear removes the bar before the summary.
func (p *progress) clear() {
	if p.tty {
		p.mu.Lock()
		fmt.Fprint(p.w, "\r\x1b[K")
		p.mu.Unlock()
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func runIngest(ctx context.Context, args []string, env ingestEnv) int {
	o, err := parseIngestArgs(args, env.getenv, env.stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(env.stderr, "guichet ingest: %v\n\n%s", err, ingestUsage)
		}
		return 2 // the flag package has printed its own message
	}
	start := time.Now()
	files, failures := collectFiles(o.paths, o.include)
	var totalBytes int64
	for _, f := range files {
		totalBytes += f.size
	}
	if o.dryRun {
		for _, f := range files {
			fmt.Fprintf(env.stdout, "%s\t%s\n", f.path, humanBytes(f.size))
		}
		fmt.Fprintf(env.stdout, "%d files, %s would be sent to collection %q\n", len(files), humanBytes(totalBytes), o.collection)
		for _, f := range failures {
			fmt.Fprintf(env.stdout, "cannot read %s: %s\n", f.path, f.reason)
		}
		return min(len(failures), 1)
	}

	hc := env.client
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ExpectContinueTimeout = 2 * time.Second
		hc = &http.Client{Transport: tr} // no timeout: a large PDF may take minutes to ingest
	}
	c := &ingestClient{base: o.url, key: o.key, hc: hc, sleep: env.sleep, maxTries: ingestMaxTries, maxWait: ingestMaxWait}
	var colID int64
	if len(files) > 0 {
		id, created, err := c.collection(ctx, o.collection)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(env.stderr, "guichet ingest: interrupted")
			} else {
				fmt.Fprintf(env.stderr, "guichet ingest: collection %q: %v\n", o.collection, err)
			}
			return 1
		}
		colID = id
		if created {
			fmt.Fprintf(env.stderr, "created private collection %q (id %d)\n", o.collection, id)
		}
	}

	prog := &progress{w: env.stderr, tty: env.tty, start: start, total: len(files), totalBytes: totalBytes}
	results := make([]fileResult, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(o.concurrency, max(len(files), 1)) {
		wg.Go(func() {
			for i := range next {
				r := fileResult{file: files[i]}
				doc, err := c.upload(ctx, colID, o.fields, files[i])
				switch {
				case ctx.Err() != nil:
					r.outcome = notSent
				case err != nil:
					r.outcome, r.reason = failed, err.Error()
				case doc.Duplicate:
					r.outcome, r.doc = alreadyThere, doc
				default:
					r.outcome, r.doc = ingested, doc
				}
				results[i] = r
				prog.add(r)
			}
		})
	}
	stopTicker := make(chan struct{})
	if env.tty {
		prog.draw()
		go func() { // the rate and bar move while a long file ingests
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					prog.draw()
				case <-stopTicker:
					return
				}
			}
		}()
	}
	sent := 0
feed:
	for i := range files {
		select {
		case next <- i:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(stopTicker)
	prog.clear()
	for i := sent; i < len(files); i++ {
		results[i] = fileResult{file: files[i], outcome: notSent}
	}
	return summarize(env.stdout, o.collection, colID, results, failures, time.Since(start), ctx.Err() != nil)
}

// summarize prints the end of a run and returns the exit status.
func summarize(w io.Writer, name string, colID int64, results []fileResult, failures []fileFailure, elapsed time.Duration, interrupted bool) int {
	var n [4]int
	var chunks int64
	for _, r := range results {
		n[r.outcome]++
		if r.outcome == ingested {
			chunks += r.doc.Chunks
		}
		if r.outcome == failed {
			failures = append(failures, fileFailure{r.file.path, r.reason})
		}
	}
	fmt.Fprintf(w, "collection %q (id %d): %d files in %s\n", name, colID, len(results), elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  ingested       %d (%d chunks)\n", n[ingested], chunks)
	fmt.Fprintf(w, "  already there  %d\n", n[alreadyThere])
	fmt.Fprintf(w, "  failed         %d\n", len(failures))
	for _, f := range failures {
		fmt.Fprintf(w, "    %s: %s\n", f.path, f.reason)
	}
	if interrupted {
		fmt.Fprintf(w, "  not sent       %d (interrupted: run the same command again to finish)\n", n[notSent])
	}
	if len(failures) > 0 || interrupted {
		return 1
	}
	return 0
}
