package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// The processes: guichet and guichet-sim, built once into a temporary
// directory and run as real processes, as bench/run.sh and the e2e tests
// do. Their addresses are read from their logs.

const masterKey = "sk-fairness-bench-master-key-0123456789abcdef"

var (
	simListening     = regexp.MustCompile(`listening on http://(\S+)`)
	guichetListening = regexp.MustCompile(`listen=http://(\S+)`)
)

// moduleRoot finds the repository root (the directory of guichet's go.mod)
// from the working directory: `go run ./bench/fairness` runs at the root,
// `go test` in bench/fairness.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/guichet/guichet\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the guichet repository (no go.mod of github.com/guichet/guichet above the working directory)")
		}
		dir = parent
	}
}

// build compiles guichet and guichet-sim into dir.
func build(ctx context.Context, root, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/guichet", "./cmd/guichet-sim")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/guichet ./cmd/guichet-sim: %v\n%s", err, out)
	}
	return nil
}

// proc is a started binary; its stderr (and stdout) go to a log file and
// are scanned for its address.
type proc struct {
	name    string
	cmd     *exec.Cmd
	addr    string
	logPath string
	exited  chan struct{}
}

func (p *proc) URL() string { return "http://" + p.addr }

// startProc starts bin with args, logging to logPath, and waits for
// pattern to show its address.
func startProc(name, bin, logPath string, env []string, pattern *regexp.Regexp, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.SysProcAttr = sysProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if m := pattern.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(logf, stderr)
		cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	select {
	case p.addr = <-found:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited at start:\n%s", name, tail(logPath, 20))
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start within 20 s:\n%s", name, tail(logPath, 20))
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 3 s.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// tail is the last n lines of a log file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// simSpec is one pool of identical replicas.
type simSpec struct {
	replicas       int
	maxConcurrency int
	ttft, itl      time.Duration
	itlPerRunning  time.Duration
	prefillPerTok  time.Duration
	cacheBlocks    int
	seed           int64
}

func (s simSpec) args() []string {
	a := []string{
		"--listen", "127.0.0.1:0", "--model", simModel,
		"--max-concurrency", fmt.Sprint(s.maxConcurrency),
		"--ttft", s.ttft.String(), "--itl", s.itl.String(),
		"--itl-per-running", s.itlPerRunning.String(),
		"--prefill-per-token", s.prefillPerTok.String(),
		"--output-mode", "max_tokens", "--output-tokens", "64",
		"--seed", fmt.Sprint(s.seed),
	}
	if s.cacheBlocks > 0 {
		a = append(a, "--prefix-cache-blocks", fmt.Sprint(s.cacheBlocks), "--block-tokens", fmt.Sprint(blockTokens))
	}
	return a
}

const (
	simModel    = "sim"  // the name the replicas serve
	model       = "chat" // the name guichet serves
	blockTokens = 16
)

// gwSpec is guichet's configuration for one run.
type gwSpec struct {
	scheduler bool               // the fair scheduler (and max_concurrency per provider)
	strategy  string             // routing strategy
	weights   map[string]float64 // organization name -> weight
}

// configYAML is guichet's configuration for the replicas at urls.
func (g gwSpec) configYAML(urls []string, maxConcurrency int) string {
	var b strings.Builder
	b.WriteString("server:\n  shutdown_timeout: 2s\n")
	b.WriteString("models:\n  - name: " + model + "\n    type: text-generation\n")
	fmt.Fprintf(&b, "    routing: {strategy: %s}\n", g.strategy)
	b.WriteString("    providers:\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "      - type: vllm\n        url: %s\n        model_name: %s\n", u, simModel)
		b.WriteString("        timeouts: {connect: 2s, first_byte: 300s, idle: 300s, total: 600s}\n")
		if g.scheduler {
			fmt.Fprintf(&b, "        max_concurrency: %d\n", maxConcurrency)
		}
	}
	if !g.scheduler {
		b.WriteString("scheduler:\n  enabled: false\n")
		return b.String()
	}
	b.WriteString("scheduler:\n  enabled: true\n  queue_timeout: 30s\n  batch_queue_timeout: 10m\n  interactive_reserve: 0.2\n")
	if len(g.weights) > 0 {
		b.WriteString("  weights:\n    organizations:\n")
		for _, name := range sortedKeys(g.weights) {
			fmt.Fprintf(&b, "      %s: %g\n", name, g.weights[name])
		}
	}
	return b.String()
}

// stack is a pool of replicas behind one guichet, with tenants created.
type stack struct {
	sims      []*proc
	guichet   *proc
	spec      simSpec
	keys      map[string]string // tenant (organization) name -> API key
	dir       string            // configuration and logs
	scheduler bool
}

// startStack starts spec.replicas guichet-sim processes and a guichet in
// front of them, then creates one organization, user and key per tenant.
func (r *runner) startStack(label string, spec simSpec, gw gwSpec, tenants []string) (*stack, error) {
	dir := filepath.Join(r.work, fmt.Sprintf("%02d-%s", r.nextStack(), label))
	st := &stack{spec: spec, keys: map[string]string{}, dir: dir, scheduler: gw.scheduler}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var urls []string
	for i := range spec.replicas {
		p, err := startProc(fmt.Sprintf("sim%d", i), filepath.Join(r.bin, "guichet-sim"), filepath.Join(dir, fmt.Sprintf("sim%d.log", i)), nil, simListening, spec.args()...)
		if err != nil {
			st.stop()
			return nil, err
		}
		st.sims = append(st.sims, p)
		urls = append(urls, p.URL())
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(gw.configYAML(urls, spec.maxConcurrency)), 0o600); err != nil {
		st.stop()
		return nil, err
	}
	g, err := startProc("guichet", filepath.Join(r.bin, "guichet"), filepath.Join(dir, "guichet.log"),
		[]string{"GUICHET_MASTER_KEY=" + masterKey}, guichetListening,
		"serve", "--config", cfg, "--listen", "127.0.0.1:0", "--data", dir)
	if err != nil {
		st.stop()
		return nil, err
	}
	st.guichet = g
	if err := st.waitReady(); err != nil {
		st.stop()
		return nil, err
	}
	if err := st.createTenants(tenants); err != nil {
		st.stop()
		return nil, err
	}
	return st, nil
}

func (st *stack) stop() {
	st.guichet.stop()
	for _, s := range st.sims {
		s.stop()
	}
}

// waitReady waits for guichet to list the model with its providers healthy.
func (st *stack) waitReady() error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(st.guichet.URL() + "/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("guichet not ready after 15 s:\n%s", tail(st.guichet.logPath, 20))
}

// admin calls guichet's admin API with the master key.
func (st *stack) admin(method, path string, body any, want int) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, st.guichet.URL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+masterKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d (want %d): %s", method, path, resp.StatusCode, want, bytes.TrimSpace(out))
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("%s %s: %v", method, path, err)
	}
	return v, nil
}

func idOf(v map[string]any) int64 {
	f, _ := v["id"].(float64)
	return int64(f)
}

// createTenants makes, per tenant, an organization of that name, a user in
// it (one shared role, no rate limit on any model) and an API key.
func (st *stack) createTenants(names []string) error {
	role, err := st.admin("POST", "/v1/admin/roles", map[string]any{
		"name":   "bench",
		"limits": []map[string]any{{"model": "*", "type": "rpm", "value": nil}},
	}, http.StatusCreated)
	if err != nil {
		return err
	}
	for _, name := range names {
		org, err := st.admin("POST", "/v1/admin/organizations", map[string]any{"name": name}, http.StatusCreated)
		if err != nil {
			return err
		}
		user, err := st.admin("POST", "/v1/admin/users", map[string]any{
			"email": name + "@bench.example", "role": idOf(role), "organization": idOf(org),
		}, http.StatusCreated)
		if err != nil {
			return err
		}
		tok, err := st.admin("POST", "/v1/admin/tokens", map[string]any{"user": idOf(user), "name": "bench"}, http.StatusCreated)
		if err != nil {
			return err
		}
		key, _ := tok["token"].(string)
		if key == "" {
			return fmt.Errorf("POST /v1/admin/tokens answered no token: %v", tok)
		}
		st.keys[name] = key
	}
	return nil
}

// simStats is a replica's /sim/stats.
type simStats struct {
	Requests           int64 `json:"requests"`
	Running            int64 `json:"running"`
	Waiting            int64 `json:"waiting"`
	Completed          int64 `json:"completed"`
	Cancelled          int64 `json:"cancelled"`
	PrefixCacheQueries int64 `json:"prefix_cache_queries"`
	PrefixCacheHits    int64 `json:"prefix_cache_hits"`
}

var statsClient = &http.Client{Timeout: 2 * time.Second}

func (st *stack) stats() ([]simStats, error) {
	out := make([]simStats, len(st.sims))
	for i, s := range st.sims {
		resp, err := statsClient.Get(s.URL() + "/sim/stats")
		if err != nil {
			return nil, err
		}
		err = json.NewDecoder(resp.Body).Decode(&out[i])
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// waitIdle waits until no replica runs or queues anything.
func (st *stack) waitIdle(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ss, err := st.stats()
		busy := err != nil
		for _, s := range ss {
			busy = busy || s.Running > 0 || s.Waiting > 0
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas still busy after %s: %+v (%v)", d, ss, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive fails when a process of the stack died.
func (st *stack) alive() error {
	for _, p := range append([]*proc{st.guichet}, st.sims...) {
		if !p.alive() {
			return fmt.Errorf("%s died:\n%s", p.name, tail(p.logPath, 20))
		}
	}
	return nil
}

// schedulerView is guichet's GET /v1/admin/scheduler, kept in the logs.
func (st *stack) schedulerView() string {
	req, _ := http.NewRequest("GET", st.guichet.URL()+"/v1/admin/scheduler", nil)
	req.Header.Set("Authorization", "Bearer "+masterKey)
	resp, err := statsClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
