package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func fixed(n int) func() int { return func() int { return n } }

var opts = Options{QueueTimeout: 10 * time.Second, BatchQueueTimeout: time.Minute, MaxQueuedPerTenant: 100, InteractiveReserve: 0.2}

// queue puts n requests of tenant in the pool from goroutines and sends
// each granted ticket (in grant order) on the returned channel.
func queue(t *testing.T, p *Pool, req Request, n int, granted chan<- string, tickets chan<- *Ticket) {
	t.Helper()
	before := p.View().Queued
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // those still waiting when the test ends leave
	for i := 0; i < n; i++ {
		go func() {
			k, err := p.Acquire(c, req)
			if err != nil {
				if c.Err() == nil {
					t.Error(err)
				}
				return
			}
			granted <- req.Tenant
			tickets <- k
		}()
	}
	waitQueued(t, p, before+n)
}

func waitQueued(t *testing.T, p *Pool, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.View().Queued != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", p.View().Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// serve finishes one running request at a time, each with output tokens,
// and returns the tenants in the order they were granted.
func serve(p *Pool, first []*Ticket, granted <-chan string, tickets <-chan *Ticket, n int, output int64) []string {
	var order []string
	running := first
	for len(order) < n {
		running[0].Done(output)
		running = running[1:]
		order = append(order, <-granted)
		running = append(running, <-tickets)
	}
	return order
}

func TestLoneTenantGetsTheWholePool(t *testing.T) {
	p := NewPool(opts, fixed(4))
	for i := 0; i < 4; i++ {
		if _, err := p.Acquire(context.Background(), Request{Tenant: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if v := p.View(); v.Running != 4 || v.Queued != 0 {
		t.Fatalf("running %d queued %d, want 4 and 0", v.Running, v.Queued)
	}
}

func TestUnlimitedPoolNeverQueues(t *testing.T) {
	p := NewPool(opts, fixed(0))
	for i := 0; i < 1000; i++ {
		if _, err := p.Acquire(context.Background(), Request{Tenant: "a", Class: Batch}); err != nil {
			t.Fatal(err)
		}
	}
}

// Equal tenants alternate; a tenant with twice the weight is served about
// twice as often; the order follows tokens, not requests.
func TestFairOrderFollowsWeightedTokens(t *testing.T) {
	for _, c := range []struct {
		name           string
		a, b           Request
		wantA, wantB   int
		output, rounds int64
	}{
		{"equal", Request{Tenant: "a", InputTokens: 100}, Request{Tenant: "b", InputTokens: 100}, 10, 10, 0, 20},
		{"weights 2:1", Request{Tenant: "a", Weight: 2, InputTokens: 100}, Request{Tenant: "b", Weight: 1, InputTokens: 100}, 20, 10, 0, 30},
		{"b's requests cost 3x", Request{Tenant: "a", InputTokens: 100}, Request{Tenant: "b", InputTokens: 300}, 24, 8, 0, 32},
		// with 100 output tokens at twice the input's weight, a's requests
		// cost 500 and b's 300: a gets 3 for b's 5.
		{"output tokens count double", Request{Tenant: "a", InputTokens: 300}, Request{Tenant: "b", InputTokens: 100}, 12, 20, 100, 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewPool(opts, fixed(1))
			first, _ := p.Acquire(context.Background(), Request{Tenant: "x"})
			granted, tickets := make(chan string, 100), make(chan *Ticket, 100)
			queue(t, p, c.a, 40, granted, tickets)
			queue(t, p, c.b, 40, granted, tickets)
			order := serve(p, []*Ticket{first}, granted, tickets, int(c.rounds), c.output)
			n := map[string]int{}
			for _, x := range order {
				n[x]++
			}
			if diff := n["a"] - c.wantA; diff < -1 || diff > 1 || n["a"]+n["b"] != int(c.rounds) {
				t.Fatalf("served %v (order %v), want about a=%d b=%d", n, order, c.wantA, c.wantB)
			}
		})
	}
}

// A tenant that arrives after another was served alone for a long time
// gets no head start from its zero counter: they share from then on.
func TestIdleTenantBanksNoCredit(t *testing.T) {
	p := NewPool(opts, fixed(1))
	for i := 0; i < 50; i++ {
		k, _ := p.Acquire(context.Background(), Request{Tenant: "a", InputTokens: 1000})
		k.Done(0)
	}
	first, _ := p.Acquire(context.Background(), Request{Tenant: "a", InputTokens: 1000})
	granted, tickets := make(chan string, 100), make(chan *Ticket, 100)
	queue(t, p, Request{Tenant: "a", InputTokens: 1000}, 20, granted, tickets)
	queue(t, p, Request{Tenant: "b", InputTokens: 1000}, 20, granted, tickets)
	order := serve(p, []*Ticket{first}, granted, tickets, 10, 0)
	n := map[string]int{}
	for _, x := range order {
		n[x]++
	}
	if n["a"] < 4 || n["b"] < 4 {
		t.Fatalf("after a long solo run, the newcomer took %v of 10 (order %v)", n, order)
	}
}

func TestBatchLeavesTheReserveToInteractive(t *testing.T) {
	p := NewPool(opts, fixed(10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 8; i++ {
		if _, err := p.Acquire(ctx, Request{Tenant: "bulk", Class: Batch}); err != nil {
			t.Fatal(err)
		}
	}
	go p.Acquire(ctx, Request{Tenant: "bulk", Class: Batch}) // the 9th waits: 2 of 10 are reserved
	waitQueued(t, p, 1)
	for i := 0; i < 2; i++ {
		if _, err := p.Acquire(ctx, Request{Tenant: "chat"}); err != nil {
			t.Fatal(err)
		}
	}
	if v := p.View(); v.Running != 10 || v.RunningBatch != 8 || v.QueuedBatch != 1 {
		t.Fatalf("%+v", v)
	}
}

func TestInteractiveLeavesTheQueueFirst(t *testing.T) {
	p := NewPool(opts, fixed(1))
	first, _ := p.Acquire(context.Background(), Request{Tenant: "x"})
	granted, tickets := make(chan string, 10), make(chan *Ticket, 10)
	queue(t, p, Request{Tenant: "bulk", Class: Batch}, 3, granted, tickets)
	queue(t, p, Request{Tenant: "chat"}, 1, granted, tickets)
	first.Done(0)
	if got := <-granted; got != "chat" {
		t.Fatalf("%s went first; the interactive request waited behind batch", got)
	}
}

func TestRefusals(t *testing.T) {
	t.Run("tenant queue full", func(t *testing.T) {
		o := opts
		o.MaxQueuedPerTenant = 2
		p := NewPool(o, fixed(1))
		p.Acquire(context.Background(), Request{Tenant: "a"})
		granted, tickets := make(chan string, 10), make(chan *Ticket, 10)
		queue(t, p, Request{Tenant: "a"}, 2, granted, tickets)
		_, err := p.Acquire(context.Background(), Request{Tenant: "a"})
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != "tenant_queue_full" || r.RetryAfter < time.Second {
			t.Fatalf("third queued request: %v", err)
		}
		if _, err := p.Acquire(ctx(t, time.Millisecond), Request{Tenant: "b"}); errors.As(err, &r) {
			t.Fatalf("another tenant is refused too: %v", err)
		}
	})
	t.Run("queue timeout", func(t *testing.T) {
		o := opts
		o.QueueTimeout = 20 * time.Millisecond
		p := NewPool(o, fixed(1))
		p.Acquire(context.Background(), Request{Tenant: "a"})
		_, err := p.Acquire(context.Background(), Request{Tenant: "b"})
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != "queue_timeout" {
			t.Fatalf("%v", err)
		}
		if v := p.View(); v.Queued != 0 || v.Rejected["queue_timeout"] != 1 {
			t.Fatalf("after the timeout: %+v", v)
		}
	})
	t.Run("sure to wait too long", func(t *testing.T) {
		o := opts
		o.QueueTimeout = 4500 * time.Millisecond
		p := NewPool(o, fixed(1))
		// 11 dispatches in 9 s: the 5th in line starts in about 4.1 s, a
		// 6th would wait 4.9 s, over the timeout.
		now := time.Now()
		for i := 0; i < 10; i++ {
			p.rate.tick(now.Add(time.Duration(i-9) * time.Second))
		}
		p.Acquire(context.Background(), Request{Tenant: "a"})
		granted, tickets := make(chan string, 30), make(chan *Ticket, 30)
		queue(t, p, Request{Tenant: "a"}, 5, granted, tickets)
		_, err := p.Acquire(context.Background(), Request{Tenant: "a"})
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != "wait_too_long" || r.RetryAfter < o.QueueTimeout {
			t.Fatalf("%v %+v", err, r)
		}
	})
}

func TestClientLeavingFreesItsPlace(t *testing.T) {
	p := NewPool(opts, fixed(1))
	first, _ := p.Acquire(context.Background(), Request{Tenant: "a"})
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := p.Acquire(c, Request{Tenant: "b"})
		done <- err
	}()
	waitQueued(t, p, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	first.Done(0)
	if v := p.View(); v.Running != 0 || v.Queued != 0 {
		t.Fatalf("a slot leaked: %+v", v)
	}
}

// Many goroutines acquiring, charging and finishing leave the pool empty
// and every slot accounted for (run with -race).
func TestConcurrentUseLeavesNoSlotBehind(t *testing.T) {
	p := NewPool(opts, fixed(3))
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			k, err := p.Acquire(context.Background(), Request{Tenant: string(rune('a' + i%5)), Class: Class(i % 2), InputTokens: 10})
			if err != nil {
				t.Error(err)
				return
			}
			if v := p.View(); v.Running > 3 {
				t.Errorf("%d running over a capacity of 3", v.Running)
			}
			for j := 0; j < 20; j++ {
				k.Charge(1)
			}
			k.Done(20)
			k.Done(20) // a second Done is harmless
		}(i)
	}
	wg.Wait()
	v := p.View()
	var in, out int64
	for _, x := range v.Tenants {
		in, out = in+x.InputTokens, out+x.OutputTokens
	}
	if v.Running != 0 || v.Queued != 0 || in != 2000 || out != 4000 {
		t.Fatalf("%+v: %d input, %d output tokens", v, in, out)
	}
}

func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// BenchmarkAcquireDone is the schedule step's cost when a slot is free:
// go test -bench AcquireDone -cpu 1 ./scheduler
func BenchmarkAcquireDone(b *testing.B) {
	p := NewPool(opts, fixed(64))
	req := Request{Tenant: "org:1", InputTokens: 500}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		k, _ := p.Acquire(ctx, req)
		k.Charge(100)
		k.Done(100)
	}
}

// Near full, a tenant at its share leaves the last slots (capacity/8)
// free while another recently active tenant has nothing waiting, so that
// tenant's next request starts at once; once it is gone, every slot is
// used again.
func TestHeadroomForATenantBetweenRequests(t *testing.T) {
	p := NewPool(opts, fixed(16))
	b, _ := p.Acquire(context.Background(), Request{Tenant: "b"})
	b.Done(10) // b is active, with nothing running or waiting
	granted, tickets := make(chan string, 40), make(chan *Ticket, 40)
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 20; i++ {
		go func() {
			if k, err := p.Acquire(c, Request{Tenant: "a", InputTokens: 100}); err == nil {
				granted <- "a"
				tickets <- k
			}
		}()
	}
	waitQueued(t, p, 6)
	if v := p.View(); v.Running != 14 {
		t.Fatalf("a runs %d of 16 while b is between requests; want 14 (2 kept free)", v.Running)
	}
	start := time.Now()
	b, err := p.Acquire(context.Background(), Request{Tenant: "b"})
	if err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("b's next request waited %v (%v)", time.Since(start), err)
	}
	b.Done(10)
	// b goes quiet: its headroom is released at the next decision.
	p.mu.Lock()
	p.tenants["b"].lastSeen = time.Now().Add(-time.Minute)
	p.mu.Unlock()
	k := <-tickets
	k.Done(0)
	for deadline := time.Now().Add(2 * time.Second); p.View().Running != 16; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after b left, %d of 16 slots run", p.View().Running)
		}
	}
}

// The reserve grows to what interactive traffic needed at once lately
// (plus one), and batch always keeps a slot.
func TestReserveFollowsInteractivePeak(t *testing.T) {
	p := NewPool(opts, fixed(10))
	var chats []*Ticket
	for i := 0; i < 4; i++ {
		k, _ := p.Acquire(context.Background(), Request{Tenant: "chat"})
		chats = append(chats, k)
	}
	for _, k := range chats {
		k.Done(0)
	}
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 10; i++ {
		go p.Acquire(c, Request{Tenant: "bulk", Class: Batch})
	}
	waitQueued(t, p, 5)
	if v := p.View(); v.RunningBatch != 5 {
		t.Fatalf("batch runs %d of 10 after 4 interactive ran at once; want 5", v.RunningBatch)
	}
	tiny := NewPool(opts, fixed(1))
	tiny.Acquire(context.Background(), Request{Tenant: "chat"})
	tiny.mu.Lock()
	tiny.running[Interactive] = 0 // the interactive request ended
	tiny.mu.Unlock()
	if !tiny.canRun(Batch) {
		t.Fatal("batch starves on a one-slot pool")
	}
}
