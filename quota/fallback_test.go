package quota_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/quota"
)

var errDown = errors.New("connection refused")

// flaky is a quota that fails while down, and records what it was asked.
type flaky struct {
	guichet.Quota
	down atomic.Bool
	mu   sync.Mutex
	log  []string
}

func newFlaky() *flaky { return &flaky{Quota: quota.NewMemory(nil)} }

func (f *flaky) record(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *flaky) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func (f *flaky) Admit(ctx context.Context, a *guichet.Admission) (guichet.Decision, error) {
	f.record("admit " + a.ID)
	if f.down.Load() {
		return guichet.Decision{}, errDown
	}
	return f.Quota.Admit(ctx, a)
}

func (f *flaky) Settle(ctx context.Context, a *guichet.Admission, s guichet.Settlement) error {
	f.record("settle " + a.ID)
	if f.down.Load() {
		return errDown
	}
	return f.Quota.Settle(ctx, a, s)
}

func (f *flaky) ForgetBalance(ctx context.Context, key string) error {
	f.record("forget " + key)
	if f.down.Load() {
		return errDown
	}
	return f.Quota.ForgetBalance(ctx, key)
}

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

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func slot(id string) *guichet.Admission {
	return &guichet.Admission{ID: id, Lease: time.Minute, Counters: []guichet.Counter{{Key: "conc", Limit: 1, Cost: 1, Held: true}}}
}

func TestFallbackFailClosed(t *testing.T) {
	ctx := context.Background()
	p := newFlaky()
	var logs logBuffer
	f := quota.NewFallback(p, nil, quota.FailClosed, logs.logger())
	f.RetryInterval = time.Hour
	if d, err := f.Admit(ctx, slot("a")); err != nil || !d.Allowed || !f.Healthy() {
		t.Fatalf("primary up: %+v, %v, healthy %v", d, err, f.Healthy())
	}
	p.down.Store(true)
	for i := range 5 {
		_, err := f.Admit(ctx, slot(fmt.Sprint("b", i)))
		if !errors.Is(err, quota.ErrUnavailable) || !strings.Contains(err.Error(), errDown.Error()) {
			t.Fatalf("primary down: %v, want quota.ErrUnavailable with the cause", err)
		}
	}
	if err := f.Settle(ctx, slot("a"), guichet.Settlement{InputTokens: -1}); !errors.Is(err, quota.ErrUnavailable) {
		t.Fatalf("Settle, primary down: %v", err)
	}
	if err := f.ForgetBalance(ctx, "u1"); err != nil {
		t.Fatalf("ForgetBalance, primary down: %v (it is queued)", err)
	}
	if f.Healthy() || f.Degraded() {
		t.Errorf("Healthy %v, Degraded %v, want false, false", f.Healthy(), f.Degraded())
	}
	// Only the first failing call reached the primary: the others skip it
	// until RetryInterval passes.
	if calls := p.calls(); len(calls) != 2 || calls[1] != "admit b0" {
		t.Errorf("the primary got %v, want [admit a, admit b0]", calls)
	}
	if n := logs.count("unreachable"); n != 1 {
		t.Errorf("%d outage warnings, want 1:\n%s", n, logs.buf.String())
	}
}

func TestFallbackRecovery(t *testing.T) {
	ctx := context.Background()
	p := newFlaky()
	var logs logBuffer
	f := quota.NewFallback(p, nil, quota.FailClosed, logs.logger())
	f.RetryInterval = 20 * time.Millisecond
	p.down.Store(true)
	if _, err := f.Admit(ctx, slot("a")); !errors.Is(err, quota.ErrUnavailable) {
		t.Fatal(err)
	}
	f.ForgetBalance(ctx, "u1")
	f.ForgetBalance(ctx, "u1")
	p.down.Store(false)
	time.Sleep(30 * time.Millisecond)
	if d, err := f.Admit(ctx, slot("b")); err != nil || !d.Allowed {
		t.Fatalf("after the recovery: %+v, %v", d, err)
	}
	if !f.Healthy() {
		t.Error("not healthy after the recovery")
	}
	want := []string{"admit a", "forget u1", "admit b"} // queued forget first, once
	if calls := p.calls(); fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("the primary got %v, want %v", calls, want)
	}
	if n := logs.count("reachable again"); n != 1 {
		t.Errorf("%d recovery messages, want 1:\n%s", n, logs.buf.String())
	}
	// A second outage is logged again.
	p.down.Store(true)
	time.Sleep(30 * time.Millisecond)
	f.Admit(ctx, slot("c"))
	f.Admit(ctx, slot("d"))
	if n := logs.count("quota backend unreachable"); n != 2 {
		t.Errorf("%d outage warnings after two outages, want 2:\n%s", n, logs.buf.String())
	}
}

func TestFallbackLocal(t *testing.T) {
	ctx := context.Background()
	p := newFlaky()
	local := quota.NewMemory(nil)
	f := quota.NewFallback(p, local, quota.Local, slog.New(slog.DiscardHandler))
	f.RetryInterval = 20 * time.Millisecond
	var store atomic.Int64
	store.Store(1000)
	load := func(context.Context) (guichet.Amount, error) { return guichet.Amount(store.Load()), nil }
	spend := func(id string, reserve guichet.Amount) *guichet.Admission {
		a := slot(id)
		a.Budgets = []guichet.BudgetHold{{Key: "u1", Reserve: reserve, Load: load}}
		return a
	}

	onPrimary := spend("p1", 10)
	if d, err := f.Admit(ctx, onPrimary); err != nil || !d.Allowed {
		t.Fatal(d, err)
	}
	p.down.Store(true)
	l1 := spend("l1", 100)
	d, err := f.Admit(ctx, l1)
	if err != nil || !d.Allowed || d.Balances[0] != 900 {
		t.Fatalf("local admission: %+v, %v", d, err)
	}
	if !f.Degraded() || f.Healthy() {
		t.Errorf("Healthy %v, Degraded %v, want false, true", f.Healthy(), f.Degraded())
	}
	if d, err := f.Admit(ctx, spend("l2", 0)); err != nil || d.Allowed {
		t.Fatalf("second local slot: %+v, %v, want refused", d, err)
	}
	if err := f.Settle(ctx, onPrimary, guichet.Settlement{InputTokens: -1}); !errors.Is(err, quota.ErrUnavailable) {
		t.Fatalf("settling a primary admission during the outage: %v", err)
	}

	p.down.Store(false)
	time.Sleep(30 * time.Millisecond)
	if d, err := f.Admit(ctx, spend("p2", 0)); err != nil || d.Allowed {
		t.Fatalf("back on the primary, where p1 holds the slot: %+v, %v, want refused", d, err)
	}
	if f.Degraded() || !f.Healthy() {
		t.Errorf("Healthy %v, Degraded %v, want true, false", f.Healthy(), f.Degraded())
	}
	before := len(p.calls())
	if err := f.Settle(ctx, l1, guichet.Settlement{InputTokens: -1, Cost: 100}); err != nil {
		t.Fatal(err)
	}
	if calls := p.calls(); len(calls) != before {
		t.Errorf("the local admission was settled on the primary: %v", calls[before:])
	}
	if err := f.Settle(ctx, onPrimary, guichet.Settlement{InputTokens: -1}); err != nil {
		t.Fatal(err)
	}

	// The next outage starts from the store's balance, not from what the
	// local quota kept from the last one (900).
	store.Store(5000)
	p.down.Store(true)
	time.Sleep(30 * time.Millisecond)
	d, err = f.Admit(ctx, spend("l3", 100))
	if err != nil || !d.Allowed || d.Balances[0] != 4900 {
		t.Fatalf("second outage: %+v, %v, want 4900 left", d, err)
	}
}

// TestFallbackNotOutages: errors that are not the primary's fault pass
// through without starting an outage.
func TestFallbackNotOutages(t *testing.T) {
	p := newFlaky()
	f := quota.NewFallback(p, quota.NewMemory(nil), quota.Local, slog.New(slog.DiscardHandler))
	if _, err := f.Admit(context.Background(), &guichet.Admission{}); !errors.Is(err, quota.ErrInvalid) {
		t.Errorf("invalid admission: %v", err)
	}
	boom := errors.New("store down")
	a := slot("x")
	a.Budgets = []guichet.BudgetHold{{Key: "u1", Load: func(context.Context) (guichet.Amount, error) { return 0, boom }}}
	if _, err := f.Admit(context.Background(), a); !errors.Is(err, boom) {
		t.Errorf("failing Load: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.down.Store(true) // the primary fails, but the caller had gone
	if _, err := f.Admit(ctx, slot("y")); err == nil || errors.Is(err, quota.ErrUnavailable) {
		t.Errorf("canceled caller: %v, want the primary's error", err)
	}
	if !f.Healthy() || f.Degraded() {
		t.Errorf("Healthy %v, Degraded %v after errors that are no outage", f.Healthy(), f.Degraded())
	}
}

// TestFallbackConcurrent flips the primary while requests run (for -race).
func TestFallbackConcurrent(t *testing.T) {
	p := newFlaky()
	f := quota.NewFallback(p, quota.NewMemory(nil), quota.Local, slog.New(slog.DiscardHandler))
	f.RetryInterval = time.Millisecond
	var wg sync.WaitGroup
	var seq atomic.Int64
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := &guichet.Admission{ID: fmt.Sprint(seq.Add(1)), Counters: []guichet.Counter{{Key: "c", Limit: 1 << 30, Cost: 1, Held: true}}}
				d, err := f.Admit(context.Background(), a)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					f.Settle(context.Background(), a, guichet.Settlement{InputTokens: -1})
				}
				f.Healthy()
				f.Degraded()
			}
		})
	}
	for i := range 20 {
		p.down.Store(i%2 == 0)
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
