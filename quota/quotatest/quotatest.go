// Package quotatest is the conformance suite every guichet.Quota
// implementation passes (in process and Redis).
//
// Time: the tests where time matters get a manual Clock and the
// implementation must read the time from it (Memory: NewMemory(clock.Now);
// Redis: the time is passed to the scripts as an argument instead of the
// server's TIME). The other tests get a nil Clock and the implementation
// must use its real clock (Redis: the server's TIME), so the production
// path runs through the suite too; they assert nothing that depends on
// how much real time passes, except RealClock, which uses a 1 s window and
// sleeps. Clock times are whole milliseconds: the implementations count in
// nanoseconds (Memory) or microseconds (Redis), and agree on them.
package quotatest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/quota"
)

// Clock is a manual clock; it only moves when Advance is called.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at the current time, truncated to the
// millisecond.
func NewClock() *Clock { return &Clock{t: time.Now().Truncate(time.Millisecond)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Run runs the suite. newQuota returns a fresh, empty quota for one
// test (for a shared backend: under a key prefix of its own, cleaned up
// with t.Cleanup); clock is nil when the quota must use its real clock.
// Subtests run in parallel (newQuota too), and several tests call the
// quota from many goroutines.
func Run(t *testing.T, newQuota func(t *testing.T, clock *Clock) guichet.Quota) {
	tests := []struct {
		name    string
		clocked bool
		fn      func(t *testing.T, q guichet.Quota, c *Clock)
	}{
		{"RateWindow", true, testRateWindow},
		{"SlidingWindowExact", true, testSlidingWindowExact},
		{"RetryAfterOldestFirst", true, testRetryAfterOldestFirst},
		{"NeverPasses", true, testNeverPasses},
		{"AllOrNothing", true, testAllOrNothing},
		{"RefusedOrder", true, testRefusedOrder},
		{"HeldSlots", true, testHeldSlots},
		{"DefaultLease", true, testDefaultLease},
		{"TokenCorrection", true, testTokenCorrection},
		{"TokenCorrectionAfterExpiry", true, testTokenCorrectionAfterExpiry},
		{"Budget", true, testBudget},
		{"BudgetOverspend", true, testBudgetOverspend},
		{"BudgetLeaseExpiry", true, testBudgetLeaseExpiry},
		{"ForgetBalance", true, testForgetBalance},
		{"LoadError", false, testLoadError},
		{"LoadDoesNotClobber", false, testLoadDoesNotClobber},
		{"TwoBudgets", false, testTwoBudgets},
		{"Keys", false, testKeys},
		{"Invalid", false, testInvalid},
		{"Empty", false, testEmpty},
		{"SettleUnknown", false, testSettleUnknown},
		{"ConcurrentCounter", false, testConcurrentCounter},
		{"ConcurrentBudget", false, testConcurrentBudget},
		{"ConcurrentHeld", false, testConcurrentHeld},
		{"RealClock", false, testRealClock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c *Clock
			if tc.clocked {
				c = NewClock()
			}
			tc.fn(t, newQuota(t, c), c)
		})
	}
}

var seq atomic.Int64

// newID returns an admission ID unique in the process.
func newID() string { return fmt.Sprintf("req-%d-%d", time.Now().UnixNano(), seq.Add(1)) }

func rate(key string, limit int64, window time.Duration, cost int64) guichet.Counter {
	return guichet.Counter{Key: key, Limit: limit, Window: window, Cost: cost}
}

func held(key string, limit int64) guichet.Counter {
	return guichet.Counter{Key: key, Limit: limit, Cost: 1, Held: true}
}

func tokens(key string, limit int64, window time.Duration, estimate int64) guichet.Counter {
	return guichet.Counter{Key: key, Limit: limit, Window: window, Cost: estimate, Tokens: true}
}

func adm(counters ...guichet.Counter) *guichet.Admission {
	return &guichet.Admission{ID: newID(), Counters: counters, Lease: time.Hour}
}

// loader is a BudgetHold.Load that counts its calls.
type loader struct {
	calls   atomic.Int64
	balance atomic.Int64
}

func newLoader(balance guichet.Amount) *loader {
	l := &loader{}
	l.balance.Store(int64(balance))
	return l
}

func (l *loader) load(ctx context.Context) (guichet.Amount, error) {
	l.calls.Add(1)
	return guichet.Amount(l.balance.Load()), nil
}

func (l *loader) hold(key string, reserve guichet.Amount) guichet.BudgetHold {
	return guichet.BudgetHold{Key: key, Reserve: reserve, Load: l.load}
}

func admit(t *testing.T, q guichet.Quota, a *guichet.Admission) guichet.Decision {
	t.Helper()
	d, err := q.Admit(context.Background(), a)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if len(d.Counters) != len(a.Counters) {
		t.Fatalf("Admit: %d counter states for %d counters", len(d.Counters), len(a.Counters))
	}
	if len(d.Balances) != len(a.Budgets) {
		t.Fatalf("Admit: %d balances for %d budgets", len(d.Balances), len(a.Budgets))
	}
	return d
}

func settle(t *testing.T, q guichet.Quota, a *guichet.Admission, inputTokens int64, cost guichet.Amount) {
	t.Helper()
	if err := q.Settle(context.Background(), a, guichet.Settlement{InputTokens: inputTokens, Cost: cost}); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

// allowed asserts d allowed the admission.
func allowed(t *testing.T, what string, d guichet.Decision) {
	t.Helper()
	if !d.Allowed {
		t.Fatalf("%s: refused (by %d, retry after %v), want allowed; decision %+v", what, d.Refused, d.RetryAfter, d)
	}
}

// refused asserts d refused the admission because of check by.
func refused(t *testing.T, what string, d guichet.Decision, by int) {
	t.Helper()
	if d.Allowed {
		t.Fatalf("%s: allowed, want refused by %d; decision %+v", what, by, d)
	}
	if d.Refused != by {
		t.Fatalf("%s: refused by %d, want %d; decision %+v", what, d.Refused, by, d)
	}
}

func state(t *testing.T, what string, got guichet.CounterState, remaining int64, reset time.Duration) {
	t.Helper()
	if got.Remaining != remaining || got.Reset != reset {
		t.Errorf("%s: counter state {Remaining:%d Reset:%v}, want {Remaining:%d Reset:%v}", what, got.Remaining, got.Reset, remaining, reset)
	}
}

func retry(t *testing.T, what string, d guichet.Decision, want time.Duration) {
	t.Helper()
	if d.RetryAfter != want {
		t.Errorf("%s: RetryAfter %v, want %v", what, d.RetryAfter, want)
	}
}

func balances(t *testing.T, what string, d guichet.Decision, want ...guichet.Amount) {
	t.Helper()
	for i := range want {
		if i >= len(d.Balances) || d.Balances[i] != want[i] {
			t.Errorf("%s: balances %v, want %v", what, d.Balances, want)
			return
		}
	}
}

func testRateWindow(t *testing.T, q guichet.Quota, c *Clock) {
	for i := range int64(3) {
		d := admit(t, q, adm(rate("rpm:u1:m", 3, time.Minute, 1)))
		allowed(t, fmt.Sprint("admission ", i), d)
		state(t, fmt.Sprint("admission ", i), d.Counters[0], 2-i, time.Minute)
	}
	c.Advance(10 * time.Second)
	d := admit(t, q, adm(rate("rpm:u1:m", 3, time.Minute, 1)))
	refused(t, "4th admission", d, 0)
	retry(t, "4th admission", d, 50*time.Second)
	state(t, "4th admission", d.Counters[0], 0, 50*time.Second)

	c.Advance(50*time.Second - time.Millisecond)
	d = admit(t, q, adm(rate("rpm:u1:m", 3, time.Minute, 1)))
	refused(t, "1 ms before the window ends", d, 0)
	retry(t, "1 ms before the window ends", d, time.Millisecond)

	c.Advance(time.Millisecond) // the first three expire at this very instant
	d = admit(t, q, adm(rate("rpm:u1:m", 3, time.Minute, 1)))
	allowed(t, "when the window ends", d)
	state(t, "when the window ends", d.Counters[0], 2, time.Minute)

	// A different key is a different counter.
	d = admit(t, q, adm(rate("rpm:u2:m", 3, time.Minute, 3)))
	allowed(t, "other key", d)
	state(t, "other key", d.Counters[0], 0, time.Minute)
}

// testSlidingWindowExact compares random traffic with a reference model
// of the exact sliding window: the decision, the counter state and
// RetryAfter must match it at every step.
func testSlidingWindowExact(t *testing.T, q guichet.Quota, c *Clock) {
	const limit, window = 20, 10 * time.Second
	type ent struct {
		at   time.Time
		cost int64
	}
	var live, all []ent // live: the model's log; all: every allowed admission
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 400 {
		c.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		now := c.Now()
		cost := int64(1 + rng.IntN(8))
		switch rng.IntN(40) {
		case 0:
			cost = 0
		case 1:
			cost = limit + 1
		}
		for len(live) > 0 && !live[0].at.Add(window).After(now) {
			live = live[1:]
		}
		var total int64
		for _, e := range live {
			total += e.cost
		}
		d := admit(t, q, adm(rate("tpm", limit, window, cost)))
		what := fmt.Sprintf("step %d (cost %d, %d in window)", step, cost, total)
		if ok := cost <= limit-total; ok != d.Allowed {
			t.Fatalf("%s: allowed %v, want %v", what, d.Allowed, ok)
		}
		if d.Allowed {
			live = append(live, ent{now, cost})
			all = append(all, ent{now, cost})
			total += cost
		} else {
			want := window
			if cost <= limit {
				var freed int64
				for _, e := range live {
					if freed += e.cost; freed >= cost-(limit-total) {
						want = e.at.Add(window).Sub(now)
						break
					}
				}
			}
			retry(t, what, d, want)
		}
		var reset time.Duration
		if len(live) > 0 {
			reset = live[len(live)-1].at.Add(window).Sub(now)
		}
		state(t, what, d.Counters[0], limit-total, reset)
	}
	// The guarantee itself: no span of one window holds more than limit.
	for i, e := range all {
		var sum int64
		for _, f := range all[:i+1] {
			if f.at.Add(window).After(e.at) {
				sum += f.cost
			}
		}
		if sum > limit {
			t.Fatalf("the window ending at admission %d holds %d > %d", i, sum, limit)
		}
	}
	if len(all) < 100 {
		t.Fatalf("only %d admissions allowed: the test is not exercising much", len(all))
	}
}

func testRetryAfterOldestFirst(t *testing.T, q guichet.Quota, c *Clock) {
	for _, cost := range []int64{1, 2, 3} {
		allowed(t, fmt.Sprint("cost ", cost), admit(t, q, adm(rate("k", 6, time.Minute, cost))))
		c.Advance(10 * time.Second)
	}
	// now = t0+30s; entries expire at t0+60s (1), t0+70s (2), t0+80s (3).
	for _, tc := range []struct {
		cost int64
		want time.Duration
	}{{1, 30 * time.Second}, {2, 40 * time.Second}, {3, 40 * time.Second}, {4, 50 * time.Second}, {6, 50 * time.Second}} {
		d := admit(t, q, adm(rate("k", 6, time.Minute, tc.cost)))
		refused(t, fmt.Sprint("cost ", tc.cost), d, 0)
		retry(t, fmt.Sprint("cost ", tc.cost), d, tc.want)
		state(t, fmt.Sprint("cost ", tc.cost), d.Counters[0], 0, 50*time.Second)
	}
	c.Advance(40 * time.Second)
	d := admit(t, q, adm(rate("k", 6, time.Minute, 3)))
	allowed(t, "after the retry delay", d)
	state(t, "after the retry delay", d.Counters[0], 0, time.Minute)
}

func testNeverPasses(t *testing.T, q guichet.Quota, c *Clock) {
	d := admit(t, q, adm(rate("k", 5, time.Minute, 6)))
	refused(t, "cost above limit", d, 0)
	retry(t, "cost above limit", d, time.Minute)
	state(t, "cost above limit", d.Counters[0], 5, 0)

	d = admit(t, q, adm(rate("zero", 0, time.Hour, 1)))
	refused(t, "limit 0", d, 0)
	retry(t, "limit 0", d, time.Hour)
	state(t, "limit 0", d.Counters[0], 0, 0)

	a := adm(guichet.Counter{Key: "slots", Limit: 1, Cost: 2, Held: true})
	a.Lease = 5 * time.Minute
	d = admit(t, q, a)
	refused(t, "held cost above limit", d, 0)
	retry(t, "held cost above limit", d, 5*time.Minute)

	// A zero cost fits in a full counter.
	allowed(t, "fill", admit(t, q, adm(rate("k", 5, time.Minute, 5))))
	d = admit(t, q, adm(rate("k", 5, time.Minute, 0)))
	allowed(t, "zero cost in a full counter", d)
	state(t, "zero cost in a full counter", d.Counters[0], 0, time.Minute)
}

func testAllOrNothing(t *testing.T, q guichet.Quota, c *Clock) {
	allowed(t, "fill B", admit(t, q, adm(rate("B", 1, time.Minute, 1))))
	c.Advance(time.Second)
	d := admit(t, q, adm(rate("A", 5, time.Minute, 1), rate("B", 1, time.Minute, 1)))
	refused(t, "A and B", d, 1)
	state(t, "A and B: A", d.Counters[0], 5, 0)
	state(t, "A and B: B", d.Counters[1], 0, 59*time.Second)
	for i := range int64(5) {
		d := admit(t, q, adm(rate("A", 5, time.Minute, 1)))
		allowed(t, fmt.Sprint("A alone ", i), d) // nothing was taken from A
		state(t, fmt.Sprint("A alone ", i), d.Counters[0], 4-i, time.Minute)
	}
	refused(t, "A when full", admit(t, q, adm(rate("A", 5, time.Minute, 1))), 0)

	// A budget refusal takes no counter.
	l := newLoader(100)
	a := adm(rate("C", 1, time.Minute, 1))
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 101)}
	d = admit(t, q, a)
	refused(t, "C and a short budget", d, -1)
	balances(t, "C and a short budget", d, 100)
	state(t, "C and a short budget", d.Counters[0], 1, 0)
	allowed(t, "C alone", admit(t, q, adm(rate("C", 1, time.Minute, 1))))

	// A counter refusal reserves nothing.
	a = adm(rate("C", 1, time.Minute, 1))
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 100)}
	d = admit(t, q, a)
	refused(t, "full C and the budget", d, 0)
	balances(t, "full C and the budget", d, 100)
	a = adm()
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 100)}
	d = admit(t, q, a)
	allowed(t, "the budget alone", d)
	balances(t, "the budget alone", d, 0)
}

func testRefusedOrder(t *testing.T, q guichet.Quota, c *Clock) {
	allowed(t, "fill X", admit(t, q, adm(rate("X", 1, time.Minute, 1))))
	allowed(t, "fill Y", admit(t, q, adm(rate("Y", 1, time.Minute, 1))))
	d := admit(t, q, adm(rate("ok", 10, time.Minute, 1), rate("X", 1, time.Minute, 1), rate("Y", 1, time.Minute, 1)))
	refused(t, "two full counters", d, 1)

	l := newLoader(50)
	a := adm(rate("ok", 10, time.Minute, 1))
	a.Budgets = []guichet.BudgetHold{l.hold("o1", 10), l.hold("u1", 60), l.hold("u2", 70)}
	d = admit(t, q, a)
	refused(t, "two short budgets", d, -2)
	balances(t, "two short budgets", d, 50, 50, 50)

	a = adm(rate("ok", 10, time.Minute, 1), rate("Y", 1, time.Minute, 1))
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 60)}
	d = admit(t, q, a)
	refused(t, "a full counter and a short budget", d, 1)
	state(t, "ok is untouched", d.Counters[0], 10, 0)
}

func testHeldSlots(t *testing.T, q guichet.Quota, c *Clock) {
	slot := func() *guichet.Admission {
		a := adm(held("conc:u1:m", 2))
		a.Counters[0].Window = time.Second // ignored for held counters
		a.Lease = 10 * time.Minute
		return a
	}
	a1, a2 := slot(), slot()
	d := admit(t, q, a1)
	allowed(t, "a1", d)
	state(t, "a1", d.Counters[0], 1, 10*time.Minute)
	c.Advance(time.Minute)
	d = admit(t, q, a2)
	allowed(t, "a2", d)
	state(t, "a2", d.Counters[0], 0, 10*time.Minute)
	c.Advance(time.Minute) // t0+2m; a1's lease ends at t0+10m, a2's at t0+11m
	a3 := slot()
	d = admit(t, q, a3)
	refused(t, "a3", d, 0)
	retry(t, "a3", d, 8*time.Minute)
	state(t, "a3", d.Counters[0], 0, 9*time.Minute)

	settle(t, q, a1, -1, 0)
	d = admit(t, q, a3)
	allowed(t, "a3 after a1 settled", d)
	state(t, "a3 after a1 settled", d.Counters[0], 0, 10*time.Minute)
	settle(t, q, a1, -1, 0) // twice: must not free another slot
	refused(t, "a4 after a1 settled twice", admit(t, q, slot()), 0)

	c.Advance(9 * time.Minute) // t0+11m: a2's lease passed, a3's (t0+12m) not
	a5 := slot()
	d = admit(t, q, a5)
	allowed(t, "a5 after a2's lease", d)
	state(t, "a5 after a2's lease", d.Counters[0], 0, 10*time.Minute)
	settle(t, q, a2, -1, 0) // after its lease: nothing to release
	refused(t, "a6 after a2 settled late", admit(t, q, slot()), 0)
	settle(t, q, a3, -1, 0)
	settle(t, q, a5, -1, 0)
	d = admit(t, q, slot())
	allowed(t, "all settled", d)
	state(t, "all settled", d.Counters[0], 1, 10*time.Minute)
}

func testDefaultLease(t *testing.T, q guichet.Quota, c *Clock) {
	a := adm(held("slot", 1))
	a.Lease = 0
	d := admit(t, q, a)
	allowed(t, "first", d)
	state(t, "first", d.Counters[0], 0, quota.DefaultLease)
	c.Advance(quota.DefaultLease - time.Millisecond)
	refused(t, "before the default lease", admit(t, q, adm(held("slot", 1))), 0)
	c.Advance(time.Millisecond)
	allowed(t, "after the default lease", admit(t, q, adm(held("slot", 1))))
}

func testTokenCorrection(t *testing.T, q guichet.Quota, c *Clock) {
	const key = "tpm:u1:m"
	a1 := adm(tokens(key, 1000, time.Minute, 600), rate("rpm:u1:m", 100, time.Minute, 1))
	d := admit(t, q, a1)
	allowed(t, "a1", d)
	state(t, "a1", d.Counters[0], 400, time.Minute)
	c.Advance(30 * time.Second)
	settle(t, q, a1, 100, 0)
	a2 := adm(tokens(key, 1000, time.Minute, 900))
	d = admit(t, q, a2)
	allowed(t, "a2 after a1 corrected to 100", d)
	state(t, "a2 after a1 corrected to 100", d.Counters[0], 0, time.Minute)
	settle(t, q, a2, -1, 0) // unknown: the estimate stands
	settle(t, q, a1, 50, 0) // a1 was already corrected: no change
	d = admit(t, q, adm(tokens(key, 1000, time.Minute, 1)))
	refused(t, "after settling again", d, 0)
	state(t, "after settling again", d.Counters[0], 0, time.Minute)
	// The rpm counter is not a token counter: settle did not change it.
	d = admit(t, q, adm(rate("rpm:u1:m", 100, time.Minute, 99)))
	allowed(t, "rpm", d)
	state(t, "rpm", d.Counters[0], 0, time.Minute)

	c.Advance(30 * time.Second) // a1's entry expires at t0+60s, as admitted
	d = admit(t, q, adm(tokens(key, 1000, time.Minute, 100)))
	allowed(t, "after a1 expired", d)
	state(t, "after a1 expired", d.Counters[0], 0, time.Minute)

	// Upward correction.
	a3 := adm(tokens("tpm:u2:m", 1000, time.Minute, 10))
	allowed(t, "a3", admit(t, q, a3))
	settle(t, q, a3, 700, 0)
	d = admit(t, q, adm(tokens("tpm:u2:m", 1000, time.Minute, 301)))
	refused(t, "after a3 corrected to 700", d, 0)
	state(t, "after a3 corrected to 700", d.Counters[0], 300, time.Minute)
	// Corrected beyond the limit: nothing remains (never a negative count)
	// and nothing passes, not even 0, until enough expires.
	c.Advance(time.Second)
	a4 := adm(tokens("tpm:u2:m", 1000, time.Minute, 300))
	allowed(t, "a4", admit(t, q, a4))
	settle(t, q, a4, 900, 0) // 700 + 900 > 1000
	d = admit(t, q, adm(tokens("tpm:u2:m", 1000, time.Minute, 0)))
	refused(t, "beyond the limit", d, 0)
	state(t, "beyond the limit", d.Counters[0], 0, time.Minute)
	retry(t, "beyond the limit", d, time.Minute-time.Second) // a3's 700 expire
	d = admit(t, q, adm(tokens("tpm:u2:m", 1000, time.Minute, 101)))
	refused(t, "beyond the limit, 101", d, 0)
	retry(t, "beyond the limit, 101", d, time.Minute) // a4's 900 must expire too
}

func testTokenCorrectionAfterExpiry(t *testing.T, q guichet.Quota, c *Clock) {
	a := adm(tokens("tpd", 1000, time.Minute, 500))
	allowed(t, "a", admit(t, q, a))
	c.Advance(time.Minute)
	b := adm(tokens("tpd", 1000, time.Minute, 200))
	allowed(t, "b", admit(t, q, b))
	settle(t, q, a, 999, 0) // a's entry expired: nothing to correct
	settle(t, q, b, 100, 0)
	settle(t, q, b, 100, 0)
	d := admit(t, q, adm(tokens("tpd", 1000, time.Minute, 901)))
	refused(t, "after settling an expired entry", d, 0)
	state(t, "after settling an expired entry", d.Counters[0], 900, time.Minute)
}

func testBudget(t *testing.T, q guichet.Quota, c *Clock) {
	l := newLoader(1000)
	hold := func(reserve guichet.Amount) *guichet.Admission {
		a := adm()
		a.Budgets = []guichet.BudgetHold{l.hold("u42", reserve)}
		a.Lease = 10 * time.Minute
		return a
	}
	a1 := hold(400)
	d := admit(t, q, a1)
	allowed(t, "a1", d)
	balances(t, "a1", d, 600)
	c.Advance(time.Minute)
	a2 := hold(400)
	d = admit(t, q, a2)
	allowed(t, "a2", d)
	balances(t, "a2", d, 200)
	c.Advance(time.Minute)
	d = admit(t, q, hold(400))
	refused(t, "a3", d, -1)
	balances(t, "a3", d, 200)
	retry(t, "a3", d, 8*time.Minute) // when a1's reservation ends
	if n := l.calls.Load(); n != 1 {
		t.Errorf("Load called %d times, want once", n)
	}

	settle(t, q, a1, -1, 100)
	settle(t, q, a1, -1, 100) // twice: charged once
	a4 := hold(500)
	d = admit(t, q, a4)
	allowed(t, "a4 after a1 settled", d)
	balances(t, "a4 after a1 settled", d, 0) // 900 - 400 - 500
	d = admit(t, q, hold(1))
	refused(t, "nothing left", d, -1)
	retry(t, "nothing left", d, 9*time.Minute) // a2's reservation frees 400
	settle(t, q, a2, -1, 400)
	settle(t, q, a4, -1, 0)
	d = admit(t, q, hold(0))
	allowed(t, "after all settled", d)
	balances(t, "after all settled", d, 500)
	if n := l.calls.Load(); n != 1 {
		t.Errorf("Load called %d times, want once", n)
	}
}

func testBudgetOverspend(t *testing.T, q guichet.Quota, c *Clock) {
	l := newLoader(100)
	a := adm()
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 50)}
	allowed(t, "a", admit(t, q, a))
	settle(t, q, a, -1, 300) // cost more than reserved
	b := adm()
	b.Budgets = []guichet.BudgetHold{l.hold("u1", 0)}
	d := admit(t, q, b)
	refused(t, "after overspending", d, -1)
	balances(t, "after overspending", d, -200)
	retry(t, "after overspending", d, 0) // only an operator helps
	// The operator tops up, then tells the quota.
	l.balance.Store(1000)
	if err := q.ForgetBalance(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	d = admit(t, q, b)
	allowed(t, "after the top-up", d)
	balances(t, "after the top-up", d, 1000)
}

func testBudgetLeaseExpiry(t *testing.T, q guichet.Quota, c *Clock) {
	l := newLoader(100)
	hold := func() *guichet.Admission {
		a := adm()
		a.Budgets = []guichet.BudgetHold{l.hold("o7", 100)}
		a.Lease = time.Minute
		return a
	}
	a1 := hold()
	allowed(t, "a1", admit(t, q, a1))
	c.Advance(20 * time.Second)
	d := admit(t, q, hold())
	refused(t, "a2", d, -1)
	retry(t, "a2", d, 40*time.Second)
	c.Advance(40 * time.Second) // a1's replica died: its reservation ends
	a2 := hold()
	d = admit(t, q, a2)
	allowed(t, "a2 after a1's lease", d)
	balances(t, "a2 after a1's lease", d, 0)
	settle(t, q, a1, -1, 100) // too late: the reservation is gone, nothing is charged
	zero := func() *guichet.Admission {
		a := adm()
		a.Budgets = []guichet.BudgetHold{l.hold("o7", 0)}
		return a
	}
	d = admit(t, q, zero())
	allowed(t, "after a1 settled late", d)
	balances(t, "after a1 settled late", d, 0)
	settle(t, q, a2, -1, 30)
	d = admit(t, q, zero())
	balances(t, "after a2 settled", d, 70)
}

func testForgetBalance(t *testing.T, q guichet.Quota, c *Clock) {
	ctx := context.Background()
	l := newLoader(1000)
	a1 := adm()
	a1.Budgets = []guichet.BudgetHold{l.hold("u1:x", 300)}
	balances(t, "a1", admit(t, q, a1), 700)
	l.balance.Store(2000)
	if err := q.ForgetBalance(ctx, "u1:x"); err != nil {
		t.Fatal(err)
	}
	a2 := adm()
	a2.Budgets = []guichet.BudgetHold{l.hold("u1:x", 100)}
	d := admit(t, q, a2)
	allowed(t, "a2", d)
	balances(t, "a2 (reservations survive ForgetBalance)", d, 1600)
	if n := l.calls.Load(); n != 2 {
		t.Errorf("Load called %d times, want 2", n)
	}
	settle(t, q, a1, -1, 300)
	a3 := adm()
	a3.Budgets = []guichet.BudgetHold{l.hold("u1:x", 0)}
	balances(t, "a3", admit(t, q, a3), 1600) // 2000 - 300 - 100 reserved
	// Settling after a ForgetBalance charges nothing (the balance is loaded
	// afresh, from the store the caller charges).
	a4 := adm()
	a4.Budgets = []guichet.BudgetHold{l.hold("u1:x", 50)}
	balances(t, "a4", admit(t, q, a4), 1550)
	l.balance.Store(3000)
	if err := q.ForgetBalance(ctx, "u1:x"); err != nil {
		t.Fatal(err)
	}
	settle(t, q, a4, -1, 50)
	a5 := adm()
	a5.Budgets = []guichet.BudgetHold{l.hold("u1:x", 0)}
	balances(t, "a5", admit(t, q, a5), 2900) // 3000 - a2's 100 still reserved
	if n := l.calls.Load(); n != 3 {
		t.Errorf("Load called %d times, want 3", n)
	}
	if err := q.ForgetBalance(ctx, "never-seen"); err != nil {
		t.Errorf("ForgetBalance of an unknown key: %v", err)
	}
}

func testLoadError(t *testing.T, q guichet.Quota, c *Clock) {
	boom := errors.New("store down")
	a := adm(rate("C", 1, time.Minute, 1))
	a.Budgets = []guichet.BudgetHold{{Key: "u1", Reserve: 1, Load: func(context.Context) (guichet.Amount, error) { return 0, boom }}}
	_, err := q.Admit(context.Background(), a)
	var le *quota.LoadError
	if !errors.Is(err, boom) || !errors.As(err, &le) || le.Key != "u1" {
		t.Fatalf("Admit with a failing Load: %v, want a *quota.LoadError for u1 wrapping %v", err, boom)
	}
	allowed(t, "C after the failed admission", admit(t, q, adm(rate("C", 1, time.Minute, 1))))
}

// testLoadDoesNotClobber: while one admission loads a balance, another
// loads it too, spends from it and settles; the first must not overwrite
// the balance being spent with what it loaded.
func testLoadDoesNotClobber(t *testing.T, q guichet.Quota, c *Clock) {
	inner := newLoader(1000)
	var innerErr error
	slow := func(ctx context.Context) (guichet.Amount, error) {
		b := adm()
		b.Budgets = []guichet.BudgetHold{inner.hold("u1", 400)}
		d, err := q.Admit(ctx, b)
		if err == nil && !d.Allowed {
			err = fmt.Errorf("inner admission refused: %+v", d)
		}
		if err == nil {
			err = q.Settle(ctx, b, guichet.Settlement{InputTokens: -1, Cost: 400})
		}
		innerErr = err
		return 1000, nil
	}
	a := adm()
	a.Budgets = []guichet.BudgetHold{{Key: "u1", Reserve: 100, Load: slow}}
	d := admit(t, q, a)
	if innerErr != nil {
		t.Fatal(innerErr)
	}
	allowed(t, "outer", d)
	balances(t, "outer", d, 500) // 1000 - 400 spent - 100 reserved
}

func testTwoBudgets(t *testing.T, q guichet.Quota, c *Clock) {
	u, o := newLoader(1000), newLoader(150)
	hold := func(reserve guichet.Amount) *guichet.Admission {
		a := adm()
		a.Budgets = []guichet.BudgetHold{u.hold("u1", reserve), o.hold("o1", reserve)}
		return a
	}
	a1 := hold(100)
	d := admit(t, q, a1)
	allowed(t, "a1", d)
	balances(t, "a1", d, 900, 50)
	d = admit(t, q, hold(100))
	refused(t, "a2", d, -2)
	balances(t, "a2", d, 900, 50)
	settle(t, q, a1, -1, 10)
	d = admit(t, q, hold(0))
	allowed(t, "a3", d)
	balances(t, "a3 (the user budget reserved nothing for a2)", d, 990, 140)
}

// testKeys: keys are the caller's, with any printable character, and
// never collide with each other or with the backend's own layout.
func testKeys(t *testing.T, q guichet.Quota, c *Clock) {
	keys := []string{"a", "a:b", "a:b:t", "t:a", "c:a", "ct:a", "b:a", "r:a", "rt:a", "z:a", "n:a",
		"a|1", "a|", "|", "é ü", "with space", "{tag}", "*", `a\b`, "quota:a", "rpm:u42:meta-llama/Llama-3.1-8B"}
	for i, k := range keys {
		l := newLoader(guichet.Amount(i))
		a := adm(rate(k, 1, time.Hour, 1))
		a.Budgets = []guichet.BudgetHold{l.hold(k, 0)}
		d := admit(t, q, a)
		allowed(t, fmt.Sprintf("key %q", k), d)
		balances(t, fmt.Sprintf("key %q", k), d, guichet.Amount(i))
		a = adm(rate(k, 1, time.Hour, 1))
		a.Budgets = []guichet.BudgetHold{l.hold(k, 0)}
		d = admit(t, q, a)
		refused(t, fmt.Sprintf("key %q again", k), d, 0)
		balances(t, fmt.Sprintf("key %q again", k), d, guichet.Amount(i))
		if n := l.calls.Load(); n != 1 {
			t.Errorf("key %q: Load called %d times, want once", k, n)
		}
	}
}

func testInvalid(t *testing.T, q guichet.Quota, c *Clock) {
	load := func(context.Context) (guichet.Amount, error) { return 1, nil }
	for name, a := range map[string]*guichet.Admission{
		"empty ID":        {Counters: []guichet.Counter{rate("k", 1, time.Minute, 1)}},
		"no window":       {ID: newID(), Counters: []guichet.Counter{rate("k", 1, 0, 1)}},
		"negative cost":   {ID: newID(), Counters: []guichet.Counter{rate("k", 1, time.Minute, -1)}},
		"negative limit":  {ID: newID(), Counters: []guichet.Counter{rate("k", -1, time.Minute, 1)}},
		"same key twice":  {ID: newID(), Counters: []guichet.Counter{rate("k", 1, time.Minute, 1), rate("k", 2, time.Hour, 1)}},
		"no Load":         {ID: newID(), Budgets: []guichet.BudgetHold{{Key: "u1", Reserve: 1}}},
		"negative budget": {ID: newID(), Budgets: []guichet.BudgetHold{{Key: "u1", Reserve: -1, Load: load}}},
		"budget twice":    {ID: newID(), Budgets: []guichet.BudgetHold{{Key: "u1", Load: load}, {Key: "u1", Load: load}}},
		"negative lease":  {ID: newID(), Counters: []guichet.Counter{held("k", 1)}, Lease: -time.Second},
	} {
		if _, err := q.Admit(context.Background(), a); !errors.Is(err, quota.ErrInvalid) {
			t.Errorf("%s: Admit returned %v, want quota.ErrInvalid", name, err)
		}
	}
	// Nothing was taken.
	allowed(t, "k", admit(t, q, adm(rate("k", 1, time.Minute, 1))))
}

func testEmpty(t *testing.T, q guichet.Quota, c *Clock) {
	a := adm()
	allowed(t, "no counter, no budget", admit(t, q, a))
	settle(t, q, a, -1, 0)
}

func testSettleUnknown(t *testing.T, q guichet.Quota, c *Clock) {
	l := newLoader(100)
	c0 := adm()
	c0.Budgets = []guichet.BudgetHold{l.hold("u1", 0)}
	balances(t, "loading the balance", admit(t, q, c0), 100)
	a := adm(held("h", 1), tokens("t", 10, time.Minute, 5), rate("r", 1, time.Minute, 1))
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 10)}
	settle(t, q, a, 3, 50) // never admitted: nothing to release, correct or charge
	b := adm(held("h", 1), tokens("t", 10, time.Minute, 10), rate("r", 1, time.Minute, 1))
	b.Budgets = []guichet.BudgetHold{l.hold("u1", 100)}
	d := admit(t, q, b)
	allowed(t, "after settling an unknown admission", d)
	balances(t, "after settling an unknown admission", d, 0)
	for i := range d.Counters {
		if d.Counters[i].Remaining != 0 {
			t.Errorf("counter %d: Remaining %d, want 0", i, d.Counters[i].Remaining)
		}
	}
}

// testConcurrentCounter: 50 goroutines × 4 admissions on a counter of
// 100: exactly 100 pass.
func testConcurrentCounter(t *testing.T, q guichet.Quota, c *Clock) {
	var ok, no atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 50 {
		wg.Go(func() {
			for range 4 {
				d, err := q.Admit(context.Background(), adm(rate("rpm:hot", 100, time.Minute, 1), rate("rpd:hot", 1000, 24*time.Hour, 1)))
				switch {
				case err != nil:
					errs <- err
				case d.Allowed:
					ok.Add(1)
				default:
					no.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ok.Load() != 100 || no.Load() != 100 {
		t.Fatalf("%d allowed and %d refused, want 100 and 100", ok.Load(), no.Load())
	}
	d := admit(t, q, adm(rate("rpd:hot", 1000, 24*time.Hour, 0)))
	if d.Counters[0].Remaining != 900 {
		t.Fatalf("rpd remaining %d, want 900 (refusals must take nothing)", d.Counters[0].Remaining)
	}
}

// testConcurrentBudget: 40 goroutines reserve 100 on a balance of 1000,
// then settle a cost of 100.
func testConcurrentBudget(t *testing.T, q guichet.Quota, c *Clock) {
	l := newLoader(1000)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 80)
	for range 40 {
		wg.Go(func() {
			a := adm()
			a.Budgets = []guichet.BudgetHold{l.hold("u1", 100)}
			d, err := q.Admit(context.Background(), a)
			if err != nil {
				errs <- err
				return
			}
			if !d.Allowed {
				return
			}
			admitted.Add(1)
			if err := q.Settle(context.Background(), a, guichet.Settlement{InputTokens: -1, Cost: 100}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a := adm()
	a.Budgets = []guichet.BudgetHold{l.hold("u1", 0)}
	d := admit(t, q, a)
	n := admitted.Load()
	if n*100 > 1000 || d.Balances[0] < 0 || d.Balances[0] != guichet.Amount(1000-100*n) {
		t.Fatalf("%d admitted, final balance %d: want at most 10 and 1000 - 100 × admitted", n, d.Balances[0])
	}
	if n != 10 { // the balance only shrinks as admissions take it, so exactly 10 fit
		t.Fatalf("%d admitted, want 10", n)
	}
}

// testConcurrentHeld: never more requests in flight than the slots.
func testConcurrentHeld(t *testing.T, q guichet.Quota, c *Clock) {
	const slots = 5
	var inflight, peak, ok atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for range 20 {
		wg.Go(func() {
			for range 10 {
				a := adm(held("conc:hot", slots))
				d, err := q.Admit(context.Background(), a)
				if err != nil {
					errs <- err
					return
				}
				if !d.Allowed {
					continue
				}
				ok.Add(1)
				n := inflight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Millisecond)
				inflight.Add(-1)
				if err := q.Settle(context.Background(), a, guichet.Settlement{InputTokens: -1}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if peak.Load() > slots || ok.Load() < slots {
		t.Fatalf("peak %d in flight and %d admitted, want at most %d and at least %d", peak.Load(), ok.Load(), slots, slots)
	}
	for i := range slots {
		allowed(t, fmt.Sprint("slot ", i, " once all settled"), admit(t, q, adm(held("conc:hot", slots))))
	}
}

// testRealClock runs a 1 s window on the implementation's own clock.
func testRealClock(t *testing.T, q guichet.Quota, c *Clock) {
	for i := range 2 {
		d := admit(t, q, adm(rate("rps", 2, time.Second, 1)))
		allowed(t, fmt.Sprint("admission ", i), d)
		if r := d.Counters[0].Reset; r <= 900*time.Millisecond || r > time.Second {
			t.Errorf("admission %d: Reset %v, want about 1s", i, r)
		}
	}
	d := admit(t, q, adm(rate("rps", 2, time.Second, 1)))
	refused(t, "3rd admission", d, 0)
	if d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("3rd admission: RetryAfter %v, want in (0, 1s]", d.RetryAfter)
	}
	time.Sleep(d.RetryAfter + 20*time.Millisecond)
	allowed(t, "after RetryAfter", admit(t, q, adm(rate("rps", 2, time.Second, 1))))
}
