package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/guichet/guichet/postgres/pgtest"
)

// redisURL is the Redis the cluster tests share (keys under a fresh
// prefix per test). It skips when Redis is unreachable, or fails under
// GUICHET_REQUIRE_ALL=1 (CI).
func redisURL(t *testing.T) string {
	u := os.Getenv("GUICHET_TEST_REDIS")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	host := strings.TrimPrefix(u, "redis://")
	host, _, _ = strings.Cut(host, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		msg := "Redis unreachable (set GUICHET_TEST_REDIS; GUICHET_REQUIRE_ALL=1 makes this fatal): " + err.Error()
		if os.Getenv("GUICHET_REQUIRE_ALL") == "1" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	c.Close()
	return u
}

// cluster is N guichet replicas sharing one PostgreSQL schema and one
// Redis key prefix, in front of one simulator.
type cluster struct {
	t        *testing.T
	config   string
	dir      string
	replicas []*process
	admin    string // an admin user's key, made with `guichet admin init`
}

func startCluster(t *testing.T, n int, simArgs ...string) *cluster {
	return startClusterWith(t, n, nil, simArgs...)
}

// startClusterWith is startCluster with extra provider settings.
func startClusterWith(t *testing.T, n int, providerExtra []string, simArgs ...string) *cluster {
	dsn := pgtest.DSN(t)
	rurl := redisURL(t)
	sim := startSim(t, append([]string{"--model", "m"}, simArgs...)...)
	b := make([]byte, 6)
	rand.Read(b)
	cfg := fmt.Sprintf(`storage:
  postgres: %q
  redis: %q
  redis_prefix: "guichet-test-%s:"
models:
  - name: chat
    type: text-generation
    costs: {prompt_tokens: 1000, completion_tokens: 1000}
    providers:
%s`, dsn, rurl, hex.EncodeToString(b), provider("vllm", sim, "m", providerExtra...))
	c := &cluster{t: t, config: cfg, dir: t.TempDir()}
	path := filepath.Join(c.dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The operator's first command, before any server runs.
	out, err := exec.Command(filepath.Join(bin, "guichet"), "admin", "--config", path, "--data", c.dir, "init").CombinedOutput()
	if err != nil {
		t.Fatalf("guichet admin init: %v\n%s", err, out)
	}
	c.admin = regexp.MustCompile(`sk-[0-9A-Za-z]{43}`).FindString(string(out))
	if c.admin == "" {
		t.Fatalf("guichet admin init printed no key:\n%s", out)
	}
	for i := 0; i < n; i++ {
		c.replicas = append(c.replicas, start(t, guichetListening, []string{"GUICHET_MASTER_KEY=" + masterKey},
			"guichet", "serve", "--config", path, "--listen", "127.0.0.1:0", "--data", t.TempDir()))
	}
	return c
}

// call makes one request to replica i and returns its status and body.
func (c *cluster) call(i int, key, method, path, body string) (int, []byte) {
	req, _ := http.NewRequest(method, c.replicas[i%len(c.replicas)].URL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *cluster) must(i int, key, method, path, body string, want int) []byte {
	c.t.Helper()
	code, b := c.call(i, key, method, path, body)
	if code != want {
		c.t.Fatalf("%s %s on replica %d: %d, want %d: %s", method, path, i, code, want, b)
	}
	return b
}

func idOf(t *testing.T, b []byte) int64 {
	var v struct {
		ID int64 `json:"id"`
	}
	if json.Unmarshal(b, &v) != nil || v.ID == 0 {
		t.Fatalf("no id in %s", b)
	}
	return v.ID
}

// user makes a role with limits, a user with budget and returns its key.
func (c *cluster) user(limits, budget string) (userID int64, key string) {
	name := fmt.Sprintf("r%d", time.Now().UnixNano())
	role := idOf(c.t, c.must(0, c.admin, "POST", "/v1/admin/roles", fmt.Sprintf(`{"name":%q,"limits":%s}`, name, limits), 201))
	userID = idOf(c.t, c.must(1, c.admin, "POST", "/v1/admin/users", fmt.Sprintf(`{"email":"%s@example.org","role":%d,"budget":%s}`, name, role, budget), 201))
	var tok struct{ Token string }
	json.Unmarshal(c.must(2, c.admin, "POST", "/v1/admin/tokens", fmt.Sprintf(`{"name":"k","user":%d}`, userID), 201), &tok)
	return userID, tok.Token
}

func TestClusterRateLimitIsExact(t *testing.T) {
	c := startCluster(t, 3)
	_, key := c.user(`[{"model":"chat","type":"rpm","value":100}]`, "null")
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				code, b := c.call(g+i, key, "POST", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`)
				switch code {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
				default:
					other.Add(1)
					t.Errorf("status %d: %s", code, b)
				}
			}
		}(g)
	}
	wg.Wait()
	if ok.Load() != 100 || limited.Load() != 100 {
		t.Fatalf("3 replicas, 50 clients, 200 requests against rpm=100: %d succeeded, %d limited, %d other; want exactly 100 and 100", ok.Load(), limited.Load(), other.Load())
	}
}

// streamChat sends a streamed chat and reads it to the end.
func (c *cluster) streamChat(i int, key string) int {
	req, _ := http.NewRequest("POST", c.replicas[i%len(c.replicas)].URL()+"/v1/chat/completions",
		bytes.NewReader([]byte(`{"model":"chat","stream":true,"messages":[{"role":"user","content":"hello there"}],"max_tokens":20}`)))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestClusterBudgetNeverOverspends(t *testing.T) {
	// 20 tokens at 10 ms each: requests overlap, across replicas.
	c := startCluster(t, 3, "--output-tokens", "20", "--itl", "10ms")
	const budget = 1.0
	uid, key := c.user(`[{"model":"*","type":"rpm","value":null}]`, fmt.Sprint(budget))
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 24; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				switch code := c.streamChat(g+i, key); code {
				case 200:
					ok.Add(1)
				case 402:
					refused.Add(1)
					return
				default:
					t.Errorf("status %d", code)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	// One request: ~9 prompt tokens + 20 completion tokens at 1000 per
	// million = about 0.029; the worst case reserved is at most 0.04.
	const oneRequest = 0.04
	// Replicas write spends to the store in batches, once a second: read
	// the store until the last batches have landed.
	var u struct{ Budget *float64 }
	var spent float64
	for deadline := time.Now().Add(5 * time.Second); ; {
		json.Unmarshal(c.must(0, c.admin, "GET", fmt.Sprintf("/v1/admin/users/%d", uid), "", 200), &u)
		if u.Budget == nil {
			t.Fatal("the budget became unlimited")
		}
		if spent = budget - *u.Budget; spent >= budget-oneRequest || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d requests served, %d refused; spent %.6f of %.6f", ok.Load(), refused.Load(), spent, budget)
	if spent > budget+1e-9 || *u.Budget < 0 {
		t.Fatalf("spent %.6f, more than the budget %.6f", spent, budget)
	}
	if spent < budget-oneRequest {
		t.Fatalf("spent %.6f: requests were refused while %.6f (more than one request) was left", spent, *u.Budget)
	}
	if refused.Load() == 0 {
		t.Fatal("no request was refused: the budget never ran out")
	}
}

func TestClusterRevocationReachesEveryReplica(t *testing.T) {
	c := startCluster(t, 3)
	_, key := c.user(`[{"model":"chat","type":"rpm","value":null}]`, "null")
	var keys struct {
		Data []struct{ ID int64 } `json:"data"`
	}
	json.Unmarshal(c.must(0, key, "GET", "/v1/me/keys", "", 200), &keys)
	for i := range c.replicas {
		c.must(i, key, "GET", "/v1/me/info", "", 200) // every replica has it cached
	}
	c.must(0, key, "DELETE", fmt.Sprintf("/v1/me/keys/%d", keys.Data[0].ID), "", 204)
	revoked := time.Now()
	for i := 1; i < len(c.replicas); i++ {
		for {
			code, _ := c.call(i, key, "GET", "/v1/models", "")
			if code == 401 {
				break
			}
			if time.Since(revoked) > time.Second {
				t.Fatalf("replica %d still accepts a key revoked on replica 0 %s ago", i, time.Since(revoked))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("revocation seen by every replica %s after it", time.Since(revoked))
}

// TestRedisDownNeverFailsOpen: with Redis unreachable, a replica in
// fail_closed mode refuses limited requests (503), one in local mode
// limits on its own; both say so in /ready, /metrics and the logs.
func TestRedisDownNeverFailsOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	sim := startSim(t, "--model", "m")
	dir := t.TempDir()
	write := func(name, mode string) string {
		path := filepath.Join(dir, name)
		cfg := fmt.Sprintf("storage:\n  postgres: %q\n  redis: redis://127.0.0.1:1/0\nlimits:\n  on_redis_down: %s\nmodels:\n  - name: chat\n    type: text-generation\n    providers:\n%s", dsn, mode, provider("vllm", sim, "m"))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	closed, local := write("closed.yml", "fail_closed"), write("local.yml", "local")
	out, err := exec.Command(filepath.Join(bin, "guichet"), "admin", "--config", closed, "--data", dir, "init").CombinedOutput()
	if err != nil {
		t.Fatalf("guichet admin init: %v\n%s", err, out)
	}
	c := &cluster{t: t, admin: regexp.MustCompile(`sk-[0-9A-Za-z]{43}`).FindString(string(out))}
	for _, path := range []string{closed, local} {
		c.replicas = append(c.replicas, start(t, guichetListening, []string{"GUICHET_MASTER_KEY=" + masterKey},
			"guichet", "serve", "--config", path, "--listen", "127.0.0.1:0", "--data", t.TempDir()))
	}
	_, key := c.user(`[{"model":"chat","type":"rpm","value":2}]`, "null")
	chat := `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`

	// fail_closed: refused, never let through.
	code, body := c.call(0, key, "POST", "/v1/chat/completions", chat)
	if code != 503 || !strings.Contains(string(body), "limits_unavailable") {
		t.Fatalf("fail_closed replica, Redis down: %d %s; want 503 limits_unavailable", code, body)
	}
	c.must(0, masterKey, "POST", "/v1/chat/completions", chat, 200) // the operator has no limits
	code, body = c.call(0, "", "GET", "/ready", "")
	if code != 503 || !strings.Contains(string(body), `"limits":"unavailable"`) {
		t.Errorf("fail_closed /ready: %d %s", code, body)
	}
	metrics := c.must(0, masterKey, "GET", "/metrics", "", 200)
	if !strings.Contains(string(metrics), "guichet_limits_backend_up 0") {
		t.Errorf("metrics do not show the limits backend down")
	}
	if !strings.Contains(c.replicas[0].Logs(), "Redis") {
		t.Errorf("no log line about Redis:\n%s", c.replicas[0].Logs())
	}

	// local: the replica limits on its own, rpm=2 still holds.
	for i := 0; i < 2; i++ {
		c.must(1, key, "POST", "/v1/chat/completions", chat, 200)
	}
	if code, body := c.call(1, key, "POST", "/v1/chat/completions", chat); code != 429 {
		t.Fatalf("local replica, third request against rpm=2: %d %s", code, body)
	}
	code, body = c.call(1, "", "GET", "/ready", "")
	if code != 200 || !strings.Contains(string(body), `"limits":"per_replica"`) {
		t.Errorf("local /ready: %d %s", code, body)
	}
}

// Replicas share a model's capacity: with max_concurrency 4 and two
// replicas alive, each schedules 2; when one stops, the other takes all 4.
func TestClusterReplicasShareTheCapacity(t *testing.T) {
	c := startClusterWith(t, 2, []string{"max_concurrency: 4"})
	capacity := func(i int) int {
		var v struct {
			Models map[string]struct{ Capacity int } `json:"models"`
		}
		_, body := c.call(i, masterKey, "GET", "/v1/admin/scheduler", "")
		json.Unmarshal(body, &v)
		return v.Models["chat"].Capacity
	}
	waitFor(t, "each replica to take half the capacity", 10*time.Second, func() bool { return capacity(0) == 2 && capacity(1) == 2 })
	c.replicas[1].cmd.Process.Signal(syscall.SIGTERM)
	c.replicas[1].cmd.Wait()
	waitFor(t, "the remaining replica to take the whole capacity", 10*time.Second, func() bool { return capacity(0) == 4 })
}
