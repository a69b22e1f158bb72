package quota_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/quota"
	"github.com/guichet/guichet/quota/quotatest"
)

func TestMemory(t *testing.T) {
	quotatest.Run(t, func(t *testing.T, clock *quotatest.Clock) guichet.Quota {
		if clock == nil {
			return quota.NewMemory(nil)
		}
		return quota.NewMemory(clock.Now)
	})
}

// TestMemoryGrowth: keys whose logs emptied are dropped, whether they
// are used again or not, and idle balances go after BalanceIdle.
func TestMemoryGrowth(t *testing.T) {
	ctx := context.Background()
	clock := quotatest.NewClock()
	m := quota.NewMemory(clock.Now)
	load := func(context.Context) (guichet.Amount, error) { return 1000, nil }
	for i := range 10000 {
		a := &guichet.Admission{ID: fmt.Sprint("r", i), Lease: time.Minute, Counters: []guichet.Counter{
			{Key: fmt.Sprintf("rpm:u%d:m", i), Limit: 10, Window: time.Minute, Cost: 1},
			{Key: fmt.Sprintf("conc:u%d:m", i), Limit: 10, Cost: 1, Held: true},
		}}
		if i%10 == 0 {
			a.Budgets = []guichet.BudgetHold{{Key: fmt.Sprint("u", i), Reserve: 1, Load: load}}
		}
		if d, err := m.Admit(ctx, a); err != nil || !d.Allowed {
			t.Fatalf("admission %d: %+v, %v", i, d, err)
		}
		if i%2 == 0 {
			if err := m.Settle(ctx, a, guichet.Settlement{InputTokens: -1, Cost: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := m.Len(); n != 10000+5000+1000 {
		t.Fatalf("%d keys, want 16000", n)
	}
	clock.Advance(time.Minute)
	m.Admit(ctx, &guichet.Admission{ID: "x"}) // the sweep runs at Admit
	if n := m.Len(); n != 1000 {
		t.Fatalf("%d keys after the window and the leases passed, want the 1000 balances", n)
	}
	clock.Advance(quota.BalanceIdle)
	m.Admit(ctx, &guichet.Admission{ID: "y"})
	if n := m.Len(); n != 0 {
		t.Fatalf("%d keys after BalanceIdle, want 0", n)
	}

	// An idle balance is loaded again at its next use.
	loads := 0
	hold := guichet.BudgetHold{Key: "u7", Reserve: 1, Load: func(context.Context) (guichet.Amount, error) { loads++; return 50, nil }}
	for i := range 2 {
		if i == 1 {
			clock.Advance(quota.BalanceIdle)
		}
		d, err := m.Admit(ctx, &guichet.Admission{ID: fmt.Sprint("idle", i), Lease: time.Second, Budgets: []guichet.BudgetHold{hold}})
		if err != nil || !d.Allowed || d.Balances[0] != 49 || loads != i+1 {
			t.Fatalf("use %d of an idle balance: %+v, %v, %d loads", i, d, err, loads)
		}
	}
	clock.Advance(quota.BalanceIdle)
	m.Admit(ctx, &guichet.Admission{ID: "w"})

	// A key used again after its log emptied is dropped at once.
	c := guichet.Counter{Key: "k", Limit: 1, Cost: 1, Held: true}
	a := &guichet.Admission{ID: "z", Counters: []guichet.Counter{c}}
	m.Admit(ctx, a)
	m.Settle(ctx, a, guichet.Settlement{InputTokens: -1})
	if n := m.Len(); n != 0 {
		t.Fatalf("%d keys after the only slot was settled, want 0", n)
	}
}

// TestMemoryLongLog: a log of many live entries stays cheap: expiry pops
// from the front and settling finds recent entries quickly.
func TestMemoryLongLog(t *testing.T) {
	ctx := context.Background()
	clock := quotatest.NewClock()
	m := quota.NewMemory(clock.Now)
	c := guichet.Counter{Key: "tpd", Limit: 1 << 40, Window: 24 * time.Hour, Cost: 10, Tokens: true}
	start := time.Now()
	for i := range 200000 {
		a := &guichet.Admission{ID: fmt.Sprint(i), Counters: []guichet.Counter{c}}
		if _, err := m.Admit(ctx, a); err != nil {
			t.Fatal(err)
		}
		m.Settle(ctx, a, guichet.Settlement{InputTokens: 5})
		clock.Advance(time.Second) // 86400 live entries in steady state
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("200000 admissions on one long log took %v", el)
	}
	d, _ := m.Admit(ctx, &guichet.Admission{ID: "last", Counters: []guichet.Counter{c}})
	if want := c.Limit - 86399*5 - 10; d.Counters[0].Remaining != want {
		t.Fatalf("remaining %d, want %d", d.Counters[0].Remaining, want)
	}
}

// BenchmarkMemoryAdmitSettle: one request with 3 counters (rpm, tpm,
// concurrency) and a budget, admitted then settled, on the real clock,
// for users taking turns (each key's log holds its share of the run).
func BenchmarkMemoryAdmitSettle(b *testing.B) {
	for _, users := range []int{1000, 1} {
		b.Run(fmt.Sprint("users=", users), func(b *testing.B) {
			benchAdmitSettle(b, quota.NewMemory(nil), users)
		})
	}
}

func BenchmarkMemoryAdmitSettleParallel(b *testing.B) {
	m := quota.NewMemory(nil)
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(seq.Add(1))
			a := admission("p"+strconv.Itoa(i), i%1000)
			if d, err := m.Admit(context.Background(), a); err != nil || !d.Allowed {
				b.Fatalf("%+v %v", d, err)
			}
			m.Settle(context.Background(), a, guichet.Settlement{InputTokens: 400, Cost: 10})
		}
	})
}

func load(context.Context) (guichet.Amount, error) { return guichet.AmountOf(1e6), nil }

// admission is what a request of user u asks, as httpapi builds it.
func admission(id string, u int) *guichet.Admission {
	us := strconv.Itoa(u)
	return &guichet.Admission{ID: id, Lease: time.Hour,
		Counters: []guichet.Counter{
			{Key: "rpm:u" + us + ":m", Limit: 1 << 40, Window: time.Minute, Cost: 1},
			{Key: "tpm:u" + us + ":m", Limit: 1 << 40, Window: time.Minute, Cost: 500, Tokens: true},
			{Key: "concurrent:u" + us + ":m", Limit: 1 << 20, Cost: 1, Held: true},
		},
		Budgets: []guichet.BudgetHold{{Key: "u" + us, Reserve: 1000, Load: load}},
	}
}

func benchAdmitSettle(b *testing.B, q guichet.Quota, users int) {
	ctx := context.Background()
	as := make([]*guichet.Admission, users)
	for u := range as {
		as[u] = admission("", u)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := as[i%users]
		a.ID = "bench-" + strconv.Itoa(i)
		i++
		if d, err := q.Admit(ctx, a); err != nil || !d.Allowed {
			b.Fatalf("%+v %v", d, err)
		}
		if err := q.Settle(ctx, a, guichet.Settlement{InputTokens: 400, Cost: 10}); err != nil {
			b.Fatal(err)
		}
	}
}
