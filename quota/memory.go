package quota

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/guichet/guichet"
)

// SweepEvery is how often (by the quota's clock, checked at Admit) Memory
// walks every key to drop expired entries and empty keys that nobody
// touched since.
const SweepEvery = time.Minute

// BalanceIdle is how long a live balance nobody used stays in Memory (the
// Redis keys get the same idle expiry). A dropped balance is loaded
// again from the store at its next use.
const BalanceIdle = 24 * time.Hour

// Memory is the in-process guichet.Quota: one mutex over two maps, a
// window log per counter key and a balance with its reservations per
// budget key. A key whose log empties is dropped at once when it is used
// and otherwise by the periodic sweep, so memory follows the live
// entries, not the number of users × models ever seen.
type Memory struct {
	now  func() time.Time
	seed maphash.Seed

	mu       sync.Mutex
	counters map[string]*wlog
	budgets  map[string]*budget
	swept    int64 // unix ns of the last sweep
}

type budget struct {
	balance guichet.Amount
	loaded  bool
	used    int64 // unix ns of the last use
	res     wlog  // reservations: cost is the amount reserved
}

// NewMemory returns an empty in-process quota reading time from clock
// (nil: time.Now).
func NewMemory(clock func() time.Time) *Memory {
	if clock == nil {
		clock = time.Now
	}
	return &Memory{
		now:      clock,
		seed:     maphash.MakeSeed(),
		counters: make(map[string]*wlog),
		budgets:  make(map[string]*budget),
	}
}

var _ guichet.Quota = (*Memory)(nil)

// Len is the number of keys Memory holds (counters and budgets).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.counters) + len(m.budgets)
}

// Admit implements guichet.Quota. Missing balances are loaded without the
// lock held, then set only if still absent.
func (m *Memory) Admit(ctx context.Context, a *guichet.Admission) (guichet.Decision, error) {
	if err := Validate(a); err != nil {
		return guichet.Decision{}, err
	}
	var loaded []guichet.Amount // loaded[j] valid when have[j]
	var have []bool
	for attempt := 0; ; attempt++ {
		var need []int
		m.mu.Lock()
		now := m.now().UnixNano()
		m.sweep(now) // first: it may drop an idle balance this admission needs
		for j := range a.Budgets {
			b := m.budgets[a.Budgets[j].Key]
			if b != nil && b.loaded {
				continue
			}
			if have == nil || !have[j] {
				need = append(need, j)
				continue
			}
			if b == nil {
				b = &budget{}
				m.budgets[a.Budgets[j].Key] = b
			}
			b.balance, b.loaded, b.used = loaded[j], true, now
		}
		if need == nil {
			d := m.admit(a, now)
			m.mu.Unlock()
			return d, nil
		}
		m.mu.Unlock()
		if attempt == MaxLoads {
			return guichet.Decision{}, fmt.Errorf("quota: the balance of budget %q keeps being forgotten while it loads", a.Budgets[need[0]].Key)
		}
		if have == nil {
			loaded, have = make([]guichet.Amount, len(a.Budgets)), make([]bool, len(a.Budgets))
		}
		for _, j := range need {
			v, err := a.Budgets[j].Load(ctx)
			if err != nil {
				return guichet.Decision{}, &LoadError{Key: a.Budgets[j].Key, Err: err}
			}
			loaded[j], have[j] = v, true
		}
	}
}

// admit checks and takes, with m.mu held and every balance loaded.
func (m *Memory) admit(a *guichet.Admission, now int64) guichet.Decision {
	d := guichet.Decision{Allowed: true, Counters: make([]guichet.CounterState, len(a.Counters))}
	if len(a.Budgets) > 0 {
		d.Balances = make([]guichet.Amount, len(a.Budgets))
	}
	lease := int64(Lease(a))
	var lbuf [8]*wlog
	var bbuf [4]*budget
	logs, buds := lbuf[:0], bbuf[:0]
	for i, c := range a.Counters {
		l := m.counters[c.Key]
		if l == nil {
			l = &wlog{} // dropped below if it stays empty
			m.counters[c.Key] = l
		}
		logs = append(logs, l)
		l.prune(now)
		if d.Allowed && c.Cost > c.Limit-l.total {
			d.Allowed, d.Refused = false, i
			switch {
			case c.Cost > c.Limit && c.Held:
				d.RetryAfter = time.Duration(lease)
			case c.Cost > c.Limit:
				d.RetryAfter = c.Window
			default:
				d.RetryAfter = time.Duration(l.wait(c.Cost-(c.Limit-l.total), now))
			}
		}
	}
	for j, hold := range a.Budgets {
		b := m.budgets[hold.Key]
		buds = append(buds, b)
		b.used = now
		b.res.prune(now)
		avail := b.balance - guichet.Amount(b.res.total)
		if d.Allowed && avail < hold.Reserve {
			d.Allowed, d.Refused = false, -1-j
			if b.balance >= hold.Reserve {
				d.RetryAfter = time.Duration(b.res.wait(int64(hold.Reserve-avail), now))
			}
		}
	}
	if d.Allowed {
		h := maphash.String(m.seed, a.ID)
		for i, c := range a.Counters {
			exp := now + int64(c.Window)
			if c.Held {
				exp = now + lease
			}
			logs[i].add(entry{h: h, cost: c.Cost, exp: exp})
		}
		for j, hold := range a.Budgets {
			buds[j].res.add(entry{h: h, cost: int64(hold.Reserve), exp: now + lease})
		}
	}
	for i, c := range a.Counters {
		l := logs[i]
		if l.len() == 0 {
			delete(m.counters, c.Key)
		}
		d.Counters[i] = guichet.CounterState{
			Remaining: max(c.Limit-l.total, 0),
			Reset:     time.Duration(max(l.newest()-now, 0)),
		}
	}
	for j, b := range buds {
		d.Balances[j] = b.balance - guichet.Amount(b.res.total)
	}
	return d
}

// Settle implements guichet.Quota.
func (m *Memory) Settle(ctx context.Context, a *guichet.Admission, s guichet.Settlement) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	h := maphash.String(m.seed, a.ID)
	for _, c := range a.Counters {
		l := m.counters[c.Key]
		if l == nil || !(c.Held || c.Tokens && s.InputTokens >= 0 && s.InputTokens != c.Cost) {
			continue
		}
		l.prune(now)
		if i := l.find(h, c.Cost); i >= 0 {
			if c.Held {
				l.remove(i)
			} else {
				l.total += s.InputTokens - c.Cost
				l.e[i].cost = s.InputTokens
			}
		}
		if l.len() == 0 {
			delete(m.counters, c.Key)
		}
	}
	for _, hold := range a.Budgets {
		b := m.budgets[hold.Key]
		if b == nil {
			continue
		}
		b.res.prune(now)
		if i := b.res.find(h, int64(hold.Reserve)); i >= 0 {
			b.res.remove(i)
			if b.loaded {
				b.balance -= s.Cost
				b.used = now
			}
		}
		if !b.loaded && b.res.len() == 0 {
			delete(m.budgets, hold.Key)
		}
	}
	return nil
}

// ForgetBalance implements guichet.Quota: the reservations stay.
func (m *Memory) ForgetBalance(ctx context.Context, budgetKey string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forget(budgetKey)
	return nil
}

// ForgetBalances drops every live balance (Fallback calls it when an
// outage starts, so that the per-replica quota starts from the store).
func (m *Memory) ForgetBalances() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.budgets {
		m.forget(k)
	}
}

func (m *Memory) forget(key string) {
	b := m.budgets[key]
	if b == nil {
		return
	}
	b.balance, b.loaded = 0, false
	if b.res.len() == 0 {
		delete(m.budgets, key)
	}
}

// sweep, at most every SweepEvery, drops expired entries everywhere, then
// empty logs and idle balances.
func (m *Memory) sweep(now int64) {
	if now-m.swept < int64(SweepEvery) && now >= m.swept {
		return
	}
	m.swept = now
	for k, l := range m.counters {
		if l.prune(now); l.len() == 0 {
			delete(m.counters, k)
		}
	}
	for k, b := range m.budgets {
		if b.res.prune(now); b.res.len() == 0 && (!b.loaded || now-b.used >= int64(BalanceIdle)) {
			delete(m.budgets, k)
		}
	}
}

// entry is one admission in a log: h is a hash of its ID (no pointer for
// the garbage collector to scan in logs of day windows), exp is in unix
// ns. Two IDs of one log with equal hashes and equal costs would only
// swap expiries when one is settled: harmless, and one chance in 2^64.
type entry struct {
	h    uint64
	cost int64
	exp  int64
}

// wlog is a window log: entries e[head:] sorted by exp, total the sum of
// their costs. Admissions nearly always append (same window, later time),
// expiry pops from the head, and the slice is compacted when half of it is
// dead, so every operation is amortised O(1) except find, which scans back
// from the newest entry (where the admission being settled usually is).
type wlog struct {
	e     []entry
	head  int
	total int64
}

func (l *wlog) len() int { return len(l.e) - l.head }

func (l *wlog) newest() int64 {
	if l.len() == 0 {
		return 0
	}
	return l.e[len(l.e)-1].exp
}

func (l *wlog) prune(now int64) {
	for l.head < len(l.e) && l.e[l.head].exp <= now {
		l.total -= l.e[l.head].cost
		l.e[l.head] = entry{}
		l.head++
	}
	l.compact()
}

func (l *wlog) compact() {
	switch live := l.len(); {
	case live == 0:
		l.e, l.head, l.total = l.e[:0], 0, 0
		if cap(l.e) > 64 {
			l.e = nil
		}
	case l.head > 16 && l.head >= live:
		if cap(l.e) > 64 && cap(l.e) > 4*live {
			l.e = append(make([]entry, 0, 2*live), l.e[l.head:]...)
		} else {
			n := copy(l.e, l.e[l.head:])
			clear(l.e[n:])
			l.e = l.e[:n]
		}
		l.head = 0
	}
}

func (l *wlog) add(x entry) {
	i := len(l.e)
	for i > l.head && l.e[i-1].exp > x.exp {
		i--
	}
	if i == len(l.e) {
		l.e = append(l.e, x)
	} else {
		l.e = append(l.e, entry{})
		copy(l.e[i+1:], l.e[i:])
		l.e[i] = x
	}
	l.total += x.cost
}

// find returns the index of the entry of the admission whose ID hashes
// to h with this cost, or -1.
func (l *wlog) find(h uint64, cost int64) int {
	for i := len(l.e) - 1; i >= l.head; i-- {
		if l.e[i].h == h && l.e[i].cost == cost {
			return i
		}
	}
	return -1
}

func (l *wlog) remove(i int) {
	l.total -= l.e[i].cost
	if i == l.head {
		l.e[i] = entry{}
		l.head++
		l.compact()
		return
	}
	copy(l.e[i:], l.e[i+1:])
	l.e[len(l.e)-1] = entry{}
	l.e = l.e[:len(l.e)-1]
}

// wait is how long (ns) until the oldest entries expiring free need.
func (l *wlog) wait(need, now int64) int64 {
	var freed int64
	for _, x := range l.e[l.head:] {
		if freed += x.cost; freed >= need {
			return max(x.exp-now, 0)
		}
	}
	return 0
}
