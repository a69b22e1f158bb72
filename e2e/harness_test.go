// Package e2e runs guichet and guichet-sim as real processes and talks to
// them with the official OpenAI Go SDK, as a user would.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const masterKey = "sk-e2e-test-master-key-0123456789abcdef"

var bin string // directory holding the built binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "guichet-e2e-")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"guichet", "guichet-sim"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			os.Exit(1)
		}
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a started binary whose stderr is scanned for its address.
type process struct {
	cmd    *exec.Cmd
	addr   string
	config string // guichet's configuration file, in its data dir
	mu     sync.Mutex
	logs   strings.Builder
}

func (p *process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Kill stops the process at once (a crashed server).
func (p *process) Kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

var (
	simListening     = regexp.MustCompile(`listening on http://(\S+)`)
	guichetListening = regexp.MustCompile(`listen=http://(\S+)`)
)

func start(t *testing.T, pattern *regexp.Regexp, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd}
	t.Cleanup(p.Kill)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := pattern.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case p.addr = <-found:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, p.Logs())
	}
	return p
}

// startSim starts guichet-sim serving the given models on a free port.
func startSim(t *testing.T, args ...string) *process {
	return startSimAt(t, "127.0.0.1:0", args...)
}

func startSimAt(t *testing.T, addr string, args ...string) *process {
	t.Helper()
	return start(t, simListening, nil, "guichet-sim", append([]string{"--listen", addr}, args...)...)
}

// startGuichet writes config to a file and serves it on a free port.
func startGuichet(t *testing.T, config string) *process {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, guichetListening, []string{"GUICHET_MASTER_KEY=" + masterKey},
		"guichet", "serve", "--config", path, "--listen", "127.0.0.1:0", "--data", dir)
	p.config = path
	return p
}

func (p *process) URL() string { return "http://" + p.addr }

// restartGuichet starts guichet again on the configuration and data dir
// of a stopped one.
func restartGuichet(t *testing.T, g *process) *process {
	t.Helper()
	dir := filepath.Dir(g.config)
	p := start(t, guichetListening, []string{"GUICHET_MASTER_KEY=" + masterKey},
		"guichet", "serve", "--config", g.config, "--listen", "127.0.0.1:0", "--data", dir)
	p.config = g.config
	return p
}

// client is the official SDK pointed at guichet.
func client(g *process, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(g.URL() + "/v1/"),
		option.WithAPIKey(masterKey),
		option.WithMaxRetries(0),
	}, opts...)...)
}

// simStats reads the simulator's counters.
type simStats struct {
	Requests  int64 `json:"requests"`
	Running   int64 `json:"running"`
	Waiting   int64 `json:"waiting"`
	Completed int64 `json:"completed"`
	Cancelled int64 `json:"cancelled"`
	Failed    int64 `json:"failed"`
}

func stats(t *testing.T, sim *process) simStats {
	t.Helper()
	var s simStats
	getJSON(t, sim.URL()+"/sim/stats", "", &s)
	return s
}

func getJSON(t *testing.T, url, key string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil && err != io.EOF {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready is guichet's /ready answer.
type ready struct {
	Status string `json:"status"`
	Models []struct {
		ID               string `json:"id"`
		HealthyProviders int    `json:"healthy_providers"`
		Providers        int    `json:"providers"`
	} `json:"models"`
}

func healthy(t *testing.T, g *process, model string) int {
	var r ready
	getJSON(t, g.URL()+"/ready", "", &r)
	for _, m := range r.Models {
		if m.ID == model {
			return m.HealthyProviders
		}
	}
	t.Fatalf("model %s not in /ready", model)
	return 0
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// provider renders one provider entry of a config.
func provider(typ string, sim *process, modelName string, extra ...string) string {
	s := fmt.Sprintf("      - type: %s\n        url: %s\n        model_name: %s\n", typ, sim.URL(), modelName)
	for _, e := range extra {
		s += "        " + e + "\n"
	}
	return s
}

// chatConfig is a configuration with one text-generation model, chat, with
// the given routing (may be empty) over the given provider entries.
func chatConfig(routing string, providers ...string) string {
	s := "models:\n  - name: chat\n    type: text-generation\n"
	if routing != "" {
		s += "    routing: " + routing + "\n"
	}
	return s + "    providers:\n" + strings.Join(providers, "")
}
