package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/quota"
	"github.com/guichet/guichet/quota/quotatest"
)

// The tests need a real Redis: GUICHET_TEST_REDIS, else the local one.
// Without one they skip, loudly, unless GUICHET_REQUIRE_ALL=1 (CI).
func testURL() string {
	if u := os.Getenv("GUICHET_TEST_REDIS"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func unavailable(tb testing.TB, err error) {
	tb.Helper()
	msg := fmt.Sprintf("no Redis at %s (%v)", testURL(), err)
	if os.Getenv("GUICHET_REQUIRE_ALL") == "1" {
		tb.Fatalf("%s, and GUICHET_REQUIRE_ALL=1 forbids skipping", msg)
	}
	msg = fmt.Sprintf("SKIPPED, THE REDIS CODE IS NOT TESTED: %s; start one or set GUICHET_TEST_REDIS", msg)
	skipOnce.Do(func() { fmt.Fprintln(os.Stderr, "redis tests:", msg) }) // seen without -v too
	tb.Skip(msg)
}

var skipOnce sync.Once

// open connects to the test Redis, or skips.
func open(tb testing.TB) *Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := Open(ctx, testURL())
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// testOptions are the test Redis's options, for clients made by hand.
func testOptions(tb testing.TB) *goredis.Options {
	opt, err := goredis.ParseURL(testURL())
	if err != nil {
		unavailable(tb, err)
	}
	return opt
}

// prefix returns a fresh key prefix whose keys are deleted at cleanup.
func prefix(tb testing.TB, c *Client) string {
	p := fmt.Sprintf("guichet-test:%x:", rand.Uint64())
	tb.Cleanup(func() {
		ctx := context.Background()
		keys, err := scan(ctx, c, p)
		if err == nil && len(keys) > 0 {
			err = c.rdb.Unlink(ctx, keys...).Err()
		}
		if err != nil {
			tb.Errorf("deleting the test keys %s*: %v", p, err)
		}
	})
	return p
}

func scan(ctx context.Context, c *Client, prefix string) ([]string, error) {
	var keys []string
	iter := c.rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

func TestQuota(t *testing.T) {
	c := open(t)
	quotatest.Run(t, func(t *testing.T, clock *quotatest.Clock) guichet.Quota {
		if clock == nil {
			return c.Quota(prefix(t, c))
		}
		return c.QuotaWithClock(prefix(t, c), clock.Now)
	})
}

// cmdCounter is a go-redis hook that records the commands sent (a
// pipeline counts as one round trip).
type cmdCounter struct {
	mu   sync.Mutex
	sent []string
}

func (h *cmdCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *cmdCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.mu.Lock()
		h.sent = append(h.sent, cmd.Name())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *cmdCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.mu.Lock()
		h.sent = append(h.sent, "pipeline")
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *cmdCounter) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sent
	h.sent = nil
	return s
}

// TestRoundTrips: one round trip per Admit and per Settle in steady state.
func TestRoundTrips(t *testing.T) {
	open(t) // skip without Redis
	c := newClient(goredis.NewClient(testOptions(t)))
	t.Cleanup(func() { c.Close() })
	hook := &cmdCounter{}
	c.rdb.AddHook(hook)
	ctx := context.Background()
	q := c.Quota(prefix(t, c))
	if err := c.Ping(ctx); err != nil { // connect first: connecting sends commands too
		t.Fatal(err)
	}
	hook.take()
	load := func(context.Context) (guichet.Amount, error) { return 1e12, nil }
	request := func(id string) *guichet.Admission {
		return &guichet.Admission{ID: id, Lease: time.Minute,
			Counters: []guichet.Counter{
				{Key: "rpm:u1:m", Limit: 1000, Window: time.Minute, Cost: 1},
				{Key: "tpm:u1:m", Limit: 1e6, Window: time.Minute, Cost: 500, Tokens: true},
				{Key: "concurrent:u1:m", Limit: 10, Cost: 1, Held: true},
			},
			Budgets: []guichet.BudgetHold{{Key: "u1", Reserve: 1000, Load: load}},
		}
	}
	a := request("first")
	if d, err := q.Admit(ctx, a); err != nil || !d.Allowed {
		t.Fatalf("first admission: %+v, %v", d, err)
	}
	// The first use of the budget: the script asks for the balance, then
	// runs again with it (plus an EVAL if the script was not cached yet).
	if sent := hook.take(); len(sent) < 2 || len(sent) > 4 {
		t.Errorf("first admission (budget unknown): sent %v", sent)
	}
	if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: 400, Cost: 10}); err != nil {
		t.Fatal(err)
	}
	hook.take()
	for i := range 3 {
		a := request(fmt.Sprint("r", i))
		if d, err := q.Admit(ctx, a); err != nil || !d.Allowed {
			t.Fatalf("admission %d: %+v, %v", i, d, err)
		}
		if sent := hook.take(); len(sent) != 1 || sent[0] != "evalsha" {
			t.Errorf("Admit sent %v, want one evalsha", sent)
		}
		if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: 400, Cost: 10}); err != nil {
			t.Fatal(err)
		}
		if sent := hook.take(); len(sent) != 1 || sent[0] != "evalsha" {
			t.Errorf("Settle sent %v, want one evalsha", sent)
		}
	}
	// Nothing to release: no round trip.
	b := &guichet.Admission{ID: "plain", Counters: []guichet.Counter{{Key: "rpm:u1:m", Limit: 1000, Window: time.Minute, Cost: 1}}}
	if _, err := q.Admit(ctx, b); err != nil {
		t.Fatal(err)
	}
	hook.take()
	if err := q.Settle(ctx, b, guichet.Settlement{InputTokens: -1}); err != nil {
		t.Fatal(err)
	}
	if sent := hook.take(); len(sent) != 0 {
		t.Errorf("Settle of a rate-only admission sent %v, want nothing", sent)
	}
	if err := q.ForgetBalance(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if sent := hook.take(); len(sent) != 1 || sent[0] != "del" {
		t.Errorf("ForgetBalance sent %v, want one del", sent)
	}
}

// TestAdmitReplay: go-redis retries a command whose reply was lost (the
// script may have run): the second run must not take twice, nor refuse.
func TestAdmitReplay(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	q := c.Quota(prefix(t, c))
	load := func(context.Context) (guichet.Amount, error) { return 100, nil }
	a := &guichet.Admission{ID: "once", Lease: time.Minute,
		Counters: []guichet.Counter{{Key: "rpm", Limit: 1, Window: time.Minute, Cost: 1}, {Key: "slot", Limit: 1, Cost: 1, Held: true}},
		Budgets:  []guichet.BudgetHold{{Key: "u1", Reserve: 100, Load: load}},
	}
	for i := range 2 {
		d, err := q.Admit(ctx, a)
		if err != nil || !d.Allowed || d.Counters[0].Remaining != 0 || d.Counters[1].Remaining != 0 || d.Balances[0] != 0 {
			t.Fatalf("run %d: %+v, %v", i, d, err)
		}
	}
	b := &guichet.Admission{ID: "budget-only", Lease: time.Minute, Budgets: []guichet.BudgetHold{{Key: "u2", Reserve: 60, Load: load}}}
	for i := range 2 {
		d, err := q.Admit(ctx, b)
		if err != nil || !d.Allowed || d.Balances[0] != 40 {
			t.Fatalf("budget-only run %d: %+v, %v", i, d, err)
		}
	}
	if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: -1, Cost: 30}); err != nil {
		t.Fatal(err)
	}
	d, err := q.Admit(ctx, &guichet.Admission{ID: "next", Counters: a.Counters[1:], Budgets: []guichet.BudgetHold{{Key: "u1", Reserve: 70, Load: load}}})
	if err != nil || !d.Allowed || d.Balances[0] != 0 {
		t.Fatalf("after settling: %+v, %v (want the slot free and 100 - 30 - 70 = 0 left)", d, err)
	}
}

// TestKeys: the layout under the prefix, and every key expiring.
func TestKeys(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	p := prefix(t, c)
	q := c.Quota(p)
	load := func(context.Context) (guichet.Amount, error) { return 100, nil }
	a := &guichet.Admission{ID: "a", Lease: 3 * time.Second,
		Counters: []guichet.Counter{{Key: "rpm:x", Limit: 5, Window: 2 * time.Second, Cost: 1}, {Key: "conc:x", Limit: 5, Cost: 1, Held: true}},
		Budgets:  []guichet.BudgetHold{{Key: "u:x", Reserve: 10, Load: load}},
	}
	if d, err := q.Admit(ctx, a); err != nil || !d.Allowed {
		t.Fatalf("%+v, %v", d, err)
	}
	keys, err := scan(ctx, c, p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{
		"c:rpm:x": 3 * time.Second, "ct:rpm:x": 3 * time.Second, // window + slack
		"c:conc:x": 4 * time.Second, "ct:conc:x": 4 * time.Second, // lease + slack
		"r:u:x": 4 * time.Second, "rt:u:x": 4 * time.Second,
		"b:u:x": quota.BalanceIdle,
	}
	if len(keys) != len(want) {
		t.Errorf("keys %v, want %d keys", keys, len(want))
	}
	for _, k := range keys {
		max, ok := want[strings.TrimPrefix(k, p)]
		if !ok {
			t.Errorf("unexpected key %q", k)
			continue
		}
		ttl, err := c.rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > max {
			t.Errorf("key %q: TTL %v (%v), want in (0, %v]", k, ttl, err, max)
		}
	}
	// A shorter lease does not shorten the keys' life.
	short := &guichet.Admission{ID: "short", Lease: time.Second, Counters: a.Counters[1:], Budgets: a.Budgets}
	if d, err := q.Admit(ctx, short); err != nil || !d.Allowed {
		t.Fatalf("%+v, %v", d, err)
	}
	for _, k := range []string{"c:conc:x", "ct:conc:x", "r:u:x", "rt:u:x"} {
		if ttl, _ := c.rdb.PTTL(ctx, p+k).Result(); ttl < 3*time.Second {
			t.Errorf("key %q: TTL %v after a shorter lease, want the longer lease's", k, ttl)
		}
	}
	if err := q.Settle(ctx, short, guichet.Settlement{InputTokens: -1}); err != nil {
		t.Fatal(err)
	}
	if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: -1, Cost: 5}); err != nil {
		t.Fatal(err)
	}
	// Released: the held log and the reservations are gone at once.
	for _, k := range []string{"c:conc:x", "ct:conc:x", "r:u:x", "rt:u:x"} {
		if n, _ := c.rdb.Exists(ctx, p+k).Result(); n != 0 {
			t.Errorf("key %q still exists after Settle", k)
		}
	}
	if v, _ := c.rdb.Get(ctx, p+"b:u:x").Result(); v != "95" {
		t.Errorf("balance %q, want 95", v)
	}
}

// TestLostTotal: a total evicted from under its log is rebuilt.
func TestLostTotal(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	p := prefix(t, c)
	q := c.Quota(p)
	counter := guichet.Counter{Key: "tpm", Limit: 100, Window: time.Minute, Cost: 30}
	for i := range 2 {
		if d, err := q.Admit(ctx, &guichet.Admission{ID: fmt.Sprint(i), Counters: []guichet.Counter{counter}}); err != nil || !d.Allowed {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	c.rdb.Del(ctx, p+"ct:tpm")
	d, err := q.Admit(ctx, &guichet.Admission{ID: "x", Counters: []guichet.Counter{counter}})
	if err != nil || !d.Allowed || d.Counters[0].Remaining != 10 {
		t.Fatalf("after losing the total: %+v, %v (want 10 remaining)", d, err)
	}
	if ttl, _ := c.rdb.PTTL(ctx, p+"ct:tpm").Result(); ttl <= 0 {
		t.Errorf("rebuilt total TTL %v", ttl)
	}
}

func TestOpen(t *testing.T) {
	open(t) // skip without Redis
	ctx := context.Background()
	if _, err := Open(ctx, "http://nope"); err == nil {
		t.Error("Open accepted an http URL")
	}
	if _, err := Open(ctx, "redis://"+closedAddr(t)+"/0?dial_timeout=200ms&max_retries=-1"); err == nil {
		t.Error("Open succeeded on a closed port")
	}
	c := open(t)
	if err := c.Ping(ctx); err != nil {
		t.Error(err)
	}
}

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// logBuffer collects slog lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// TestFallbackClosedPort: a Redis that cannot be reached at all.
func TestFallbackClosedPort(t *testing.T) {
	open(t) // skip without Redis: this test is about the Redis client failing
	opt := testOptions(t)
	opt.Addr, opt.DialTimeout, opt.MaxRetries = closedAddr(t), 200*time.Millisecond, -1
	dead := newClient(goredis.NewClient(opt))
	defer dead.Close()
	ctx := context.Background()
	a := func(id string) *guichet.Admission {
		return &guichet.Admission{ID: id, Counters: []guichet.Counter{{Key: "k", Limit: 1, Window: time.Minute, Cost: 1}}}
	}

	var logs logBuffer
	closed := quota.NewFallback(dead.Quota("guichet-test:"), nil, quota.FailClosed, slog.New(slog.NewTextHandler(&logs, nil)))
	for i := range 3 {
		if _, err := closed.Admit(ctx, a(fmt.Sprint(i))); !errors.Is(err, quota.ErrUnavailable) {
			t.Fatalf("fail closed: %v, want quota.ErrUnavailable", err)
		}
	}
	if closed.Healthy() || closed.Degraded() {
		t.Errorf("fail closed: Healthy %v, Degraded %v, want false, false", closed.Healthy(), closed.Degraded())
	}
	if n := logs.count("quota backend unreachable"); n != 1 {
		t.Errorf("%d outage warnings, want 1:\n%s", n, logs.buf.String())
	}

	local := quota.NewMemory(nil)
	fb := quota.NewFallback(dead.Quota("guichet-test:"), local, quota.Local, slog.New(slog.NewTextHandler(io.Discard, nil)))
	first := a("l1")
	if d, err := fb.Admit(ctx, first); err != nil || !d.Allowed {
		t.Fatalf("local: %+v, %v", d, err)
	}
	if d, err := fb.Admit(ctx, a("l2")); err != nil || d.Allowed {
		t.Fatalf("local, over the limit: %+v, %v (want refused by the local quota)", d, err)
	}
	if fb.Healthy() || !fb.Degraded() {
		t.Errorf("local: Healthy %v, Degraded %v, want false, true", fb.Healthy(), fb.Degraded())
	}
	if err := fb.Settle(ctx, first, guichet.Settlement{InputTokens: -1}); err != nil {
		t.Errorf("settling a local admission: %v", err)
	}
}

// proxy forwards TCP connections to Redis and can be cut, to simulate
// an outage and a recovery.
type proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func (p *proxy) start(t *testing.T) {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
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

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestFallbackRecovery: Redis goes away and comes back, behind a proxy.
func TestFallbackRecovery(t *testing.T) {
	open(t)
	opt := testOptions(t)
	px := &proxy{target: opt.Addr}
	px.start(t)
	defer px.cut()
	opt.Addr, opt.DialTimeout, opt.MaxRetries = px.addr, 500*time.Millisecond, -1
	c := newClient(goredis.NewClient(opt))
	defer c.Close()
	ctx := context.Background()
	p := prefix(t, open(t))
	var logs logBuffer
	local := quota.NewMemory(nil)
	fb := quota.NewFallback(c.Quota(p), local, quota.Local, slog.New(slog.NewTextHandler(&logs, nil)))
	fb.RetryInterval = 50 * time.Millisecond
	var balance atomic.Int64
	balance.Store(1000)
	load := func(context.Context) (guichet.Amount, error) { return guichet.Amount(balance.Load()), nil }
	a := func(id string) *guichet.Admission {
		return &guichet.Admission{ID: id, Lease: time.Minute,
			Counters: []guichet.Counter{{Key: "conc", Limit: 1, Cost: 1, Held: true}},
			Budgets:  []guichet.BudgetHold{{Key: "u1", Reserve: 100, Load: load}}}
	}
	mustAdmit := func(what string, a *guichet.Admission, allowed bool) {
		t.Helper()
		d, err := fb.Admit(ctx, a)
		if err != nil || d.Allowed != allowed {
			t.Fatalf("%s: %+v, %v, want allowed %v", what, d, err, allowed)
		}
	}

	onRedis := a("redis-1")
	mustAdmit("on Redis", onRedis, true)
	px.cut()
	inOutage := a("local-1")
	mustAdmit("during the outage (the local quota has a free slot)", inOutage, true)
	if !fb.Degraded() || local.Len() == 0 {
		t.Fatalf("not degraded (%v) or the local quota was not used (%d keys)", fb.Degraded(), local.Len())
	}
	mustAdmit("during the outage, local slot taken", a("local-2"), false)
	balance.Store(5000) // an operator raises the budget
	if err := fb.ForgetBalance(ctx, "u1"); err != nil {
		t.Fatalf("ForgetBalance during the outage: %v", err)
	}
	if err := fb.Settle(ctx, onRedis, guichet.Settlement{InputTokens: -1, Cost: 50}); !errors.Is(err, quota.ErrUnavailable) {
		t.Fatalf("settling a Redis admission during the outage: %v, want quota.ErrUnavailable", err)
	}

	px.start(t) // same address
	time.Sleep(60 * time.Millisecond)
	// Back on Redis: its slot is still held by onRedis (not settled).
	mustAdmit("after the recovery", a("redis-2"), false)
	if !fb.Healthy() || fb.Degraded() {
		t.Fatalf("after the recovery: Healthy %v, Degraded %v", fb.Healthy(), fb.Degraded())
	}
	if n := logs.count("reachable again"); n != 1 {
		t.Errorf("%d recovery messages, want 1:\n%s", n, logs.buf.String())
	}
	if n := logs.count("unreachable"); n != 1 {
		t.Errorf("%d outage warnings, want 1:\n%s", n, logs.buf.String())
	}
	// The balance forgotten during the outage was forgotten on Redis too
	// (then loaded again by redis-2).
	if v, err := c.rdb.Get(ctx, p+"b:u1").Result(); err != nil || v != "5000" {
		t.Errorf("balance on Redis %q, %v, want 5000 (ForgetBalance was not replayed)", v, err)
	}
	// The local admission settles locally, even now.
	if err := fb.Settle(ctx, inOutage, guichet.Settlement{InputTokens: -1, Cost: 10}); err != nil {
		t.Fatal(err)
	}
	if n := local.Len(); n != 0 {
		t.Errorf("local quota keeps %d keys after settling, want 0", n)
	}
	if err := fb.Settle(ctx, onRedis, guichet.Settlement{InputTokens: -1}); err != nil {
		t.Fatal(err)
	}
	mustAdmit("after settling on Redis", a("redis-3"), true)
}

// TestPubSub: messages go from one client to another, and a subscriber
// whose connection dies is told ("") once it is subscribed again.
func TestPubSub(t *testing.T) {
	pub := open(t)
	opt := testOptions(t)
	opt.ClientName = fmt.Sprintf("guichet-test-sub-%x", rand.Uint64())
	sub := newClient(goredis.NewClient(opt))
	defer sub.Close()
	channel := fmt.Sprintf("guichet-test:%x", rand.Uint64())
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		sub.Subscribe(ctx, channel, func(m string) { got <- m })
		close(done)
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("received %q, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing received, want %q", want)
		}
	}
	expect("") // subscribed
	if err := pub.Publish(ctx, channel, "hello"); err != nil {
		t.Fatal(err)
	}
	expect("hello")
	if err := pub.Publish(ctx, channel, ""); err == nil {
		t.Error("Publish accepted the reserved empty message")
	}

	// Kill the subscriber's connection from the server side.
	list, err := pub.rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for line := range strings.SplitSeq(list, "\n") {
		if !strings.Contains(line, " name="+opt.ClientName+" ") || !strings.Contains(line, "sub=1") {
			continue
		}
		for f := range strings.FieldsSeq(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				n, _ := strconv.ParseInt(id, 10, 64)
				if err := pub.rdb.ClientKillByFilter(ctx, "ID", strconv.FormatInt(n, 10)).Err(); err != nil {
					t.Fatal(err)
				}
				killed++
			}
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d subscriber connections, want 1:\n%s", killed, list)
	}
	expect("") // subscribed again: messages may have been missed
	if err := pub.Publish(ctx, channel, "again"); err != nil {
		t.Fatal(err)
	}
	expect("again")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe did not return when its context ended")
	}
}

// BenchmarkRedisAdmitSettle: a request with 3 counters (rpm, tpm,
// concurrency) and a budget, admitted then settled: two round trips.
func BenchmarkRedisAdmitSettle(b *testing.B) {
	c := open(b)
	q := c.Quota(prefix(b, c))
	benchAdmitSettle(b, q, func(i int) int { return i % 100 })
}

func BenchmarkRedisAdmitSettleParallel(b *testing.B) {
	c := open(b)
	q := c.Quota(prefix(b, c))
	ctx := context.Background()
	var mu sync.Mutex
	n := 0
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			a := request(i, i%100)
			if d, err := q.Admit(ctx, a); err != nil || !d.Allowed {
				b.Fatalf("%+v %v", d, err)
			}
			if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: 400, Cost: 10}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func load(context.Context) (guichet.Amount, error) { return guichet.AmountOf(1e6), nil }

// request is what a request of user u asks, as httpapi builds it.
func request(i, u int) *guichet.Admission {
	us := strconv.Itoa(u)
	return &guichet.Admission{ID: "bench-" + strconv.Itoa(i), Lease: time.Hour,
		Counters: []guichet.Counter{
			{Key: "rpm:u" + us + ":m", Limit: 1 << 40, Window: time.Minute, Cost: 1},
			{Key: "tpm:u" + us + ":m", Limit: 1 << 40, Window: time.Minute, Cost: 500, Tokens: true},
			{Key: "concurrent:u" + us + ":m", Limit: 1 << 20, Cost: 1, Held: true},
		},
		Budgets: []guichet.BudgetHold{{Key: "u" + us, Reserve: 1000, Load: load}},
	}
}

func benchAdmitSettle(b *testing.B, q guichet.Quota, user func(i int) int) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := request(i, user(i))
		i++
		if d, err := q.Admit(ctx, a); err != nil || !d.Allowed {
			b.Fatalf("%+v %v", d, err)
		}
		if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: 400, Cost: 10}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentCallsSharePipelines: admissions made at the same moment
// go out together, in fewer round trips than calls, and each still gets
// its own exact answer.
func TestConcurrentCallsSharePipelines(t *testing.T) {
	open(t) // skip without Redis
	c := newClient(goredis.NewClient(testOptions(t)))
	t.Cleanup(func() { c.Close() })
	hook := &cmdCounter{}
	c.rdb.AddHook(hook)
	ctx := context.Background()
	q := c.Quota(prefix(t, c))
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	hook.take()
	const calls = 200
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := q.Admit(ctx, &guichet.Admission{ID: fmt.Sprint("a", i), Counters: []guichet.Counter{{Key: "rpm", Limit: 150, Window: time.Minute, Cost: 1}}})
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 150 {
		t.Fatalf("%d of %d admitted against a limit of 150", allowed.Load(), calls)
	}
	if trips := len(hook.take()); trips >= calls {
		t.Errorf("%d calls made %d round trips: none were shared", calls, trips)
	} else {
		t.Logf("%d calls in %d round trips", calls, trips)
	}
}
