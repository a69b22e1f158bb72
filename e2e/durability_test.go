package e2e

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet/postgres/pgtest"
)

// tcpProxy forwards a port to PostgreSQL and can cut it off, as a
// database outage looks to guichet.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

// down closes the listener and every connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens again on the same address.
func (p *tcpProxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

type readiness struct {
	Ledger *struct {
		Status  string `json:"status"`
		Spilled int64  `json:"spilled"`
	} `json:"ledger"`
}

func ledgerState(t *testing.T, g *process) (string, int64) {
	var r readiness
	getJSON(t, g.URL()+"/ready", "", &r)
	if r.Ledger == nil {
		t.Fatal("/ready has no ledger")
	}
	return r.Ledger.Status, r.Ledger.Spilled
}

// TestDatabaseOutageLosesNoUsageLine: PostgreSQL goes away in the middle
// of a run; guichet keeps serving (keys come from memory), lines spill to
// disk, and once the database is back the ledger holds every request
// exactly once.
func TestDatabaseOutageLosesNoUsageLine(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	sim := startSim(t, "--model", "m")
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	cfg := fmt.Sprintf("storage:\n  postgres: %q\nmodels:\n  - name: chat\n    type: text-generation\n    providers:\n%s", u.String(), provider("vllm", sim, "m"))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "guichet"), "admin", "--config", path, "--data", dir, "init").CombinedOutput()
	if err != nil {
		t.Fatalf("guichet admin init: %v\n%s", err, out)
	}
	key := keyPattern.FindString(string(out))
	g := start(t, guichetListening, []string{"GUICHET_MASTER_KEY=" + masterKey}, "guichet", "serve", "--config", path, "--listen", "127.0.0.1:0", "--data", dir)
	c := &cluster{t: t, replicas: []*process{g}}
	chat := `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`
	served := 0
	for range 5 {
		c.must(0, key, "POST", "/v1/chat/completions", chat, 200)
		served++
	}

	proxy.down()
	for range 10 {
		c.must(0, key, "POST", "/v1/chat/completions", chat, 200) // the key is in memory
		served++
	}
	waitFor(t, "lines to spill while the database is away", 20*time.Second, func() bool {
		status, spilled := ledgerState(t, g)
		return status == "spilling" && spilled > 0
	})

	proxy.up()
	waitFor(t, "the spill to drain once the database is back", 30*time.Second, func() bool {
		status, spilled := ledgerState(t, g)
		return status == "ok" && spilled == 0
	})
	if lines := usageOf(t, g, key); len(lines.Data) != served {
		t.Fatalf("%d requests served, %d ledger lines after the outage", served, len(lines.Data))
	}
	if !strings.Contains(g.Logs(), "spill") {
		t.Errorf("the outage was not logged:\n%s", g.Logs())
	}
}
