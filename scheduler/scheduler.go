// Package scheduler is the schedule step: a fair queue per model, between
// admission and routing. When the model's providers are at the capacity
// they run well, requests wait here — not in vLLM's FIFO — and leave in an
// order that shares the pool fairly between tenants.
//
// Fairness follows the Virtual Token Counter (Sheng et al., "Fairness in
// Serving Large Language Models", OSDI 2024): each tenant has a counter of
// the tokens it was served, divided by its weight — input tokens when its
// request is dispatched, output tokens as they stream — and the backlogged
// tenant with the smallest counter goes next. A tenant that arrives after
// being idle starts at the smallest counter of those waiting, so idling
// banks no credit. Nothing waits while a slot is free: a lone tenant gets
// the whole pool.
//
// Two classes: interactive (the default) goes before batch, and a share
// of the capacity is reserved for it, so a batch flood never holds every
// slot. A request that cannot start within its queue timeout is refused
// early, with a Retry-After estimated from the queue and the pool's rate.
package scheduler

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Class is a request's class of service.
type Class int

const (
	Interactive Class = iota
	Batch
)

func (c Class) String() string {
	if c == Batch {
		return "batch"
	}
	return "interactive"
}

// Options tune every pool.
type Options struct {
	QueueTimeout       time.Duration // longest wait for an interactive request
	BatchQueueTimeout  time.Duration // longest wait for a batch request
	MaxQueuedPerTenant int           // requests one tenant may have waiting per model
	InteractiveReserve float64       // share of the capacity batch requests may not use
	OutputWeight       float64       // an output token's cost relative to an input token (VTC's w_q/w_p)
}

// Request is what the scheduler knows of a request.
type Request struct {
	Tenant      string  // organization, or user when it has none
	Weight      float64 // the tenant's share; <= 0 means 1
	Class       Class
	InputTokens int64 // estimated, charged at dispatch
}

// Refusal is a request the queue would not take or could not start in
// time; RetryAfter says when trying again makes sense.
type Refusal struct {
	Reason     string // "tenant_queue_full", "queue_timeout", "wait_too_long"
	RetryAfter time.Duration
}

func (r *Refusal) Error() string { return "scheduler: " + r.Reason }

// Pool is the fair queue in front of one model's providers.
type Pool struct {
	opts     Options
	capacity func() int // requests the providers run well now; <= 0: no limit

	mu         sync.Mutex
	tenants    map[string]*tenant
	waiting    [2]map[*tenant]struct{} // tenants with requests queued, by class
	running    [2]int
	queued     [2]int
	lastServed float64 // the counter of the tenant served last (for lifts when nobody waits)
	rate       rateMeter
	peak       peakMeter // interactive requests running at once, lately
	stats      Stats
}

// Stats are a pool's running totals.
type Stats struct {
	Dispatched  int64
	Rejected    map[string]int64
	WaitSeconds float64 // total time dispatched requests waited
}

type tenant struct {
	name     string
	weight   float64
	counter  float64 // weighted tokens served (VTC)
	queue    [2][]*waiter
	running  int
	lastSeen time.Time // its last request's arrival
	inputs   int64     // tokens served, for the admin view and metrics
	outputs  int64
	rejected int64
}

type waiter struct {
	req     Request
	t       *tenant
	ready   chan struct{}
	since   time.Time
	granted bool
}

// NewPool returns a pool whose capacity is read from capacity at each
// decision (so providers going down or a learnt limit apply at once).
func NewPool(opts Options, capacity func() int) *Pool {
	if opts.OutputWeight <= 0 {
		opts.OutputWeight = 2
	}
	return &Pool{opts: opts, capacity: capacity, tenants: map[string]*tenant{},
		waiting: [2]map[*tenant]struct{}{{}, {}}, stats: Stats{Rejected: map[string]int64{}}}
}

// Ticket is a dispatched request's place in the pool. Charge it with the
// output tokens as they stream, and call Done once when the request ends.
type Ticket struct {
	p       *Pool
	t       *tenant
	class   Class
	Waited  time.Duration
	pending atomic.Int64 // output tokens not yet added to the counter
	charged int64        // output tokens added so far
	done    atomic.Bool
}

// chargeBatch is how many output tokens a ticket gathers before taking
// the pool's lock to add them to its tenant's counter.
const chargeBatch = 16

// Charge adds n output tokens to the tenant's service.
func (k *Ticket) Charge(n int64) {
	if k == nil || k.p == nil {
		return
	}
	if k.pending.Add(n) >= chargeBatch {
		k.p.mu.Lock()
		k.flush()
		k.p.mu.Unlock()
	}
}

// flush moves pending output tokens to the counter; p.mu is held.
func (k *Ticket) flush() {
	n := k.pending.Swap(0)
	k.charged += n
	k.t.counter += float64(n) * k.p.opts.OutputWeight / k.t.weight
	k.t.outputs += n
}

// Done frees the slot. output is the request's real output tokens (the
// provider's usage, or guichet's count): the counter is set right if the
// streamed charges differ.
func (k *Ticket) Done(output int64) {
	if k == nil || k.p == nil || k.done.Swap(true) {
		return
	}
	p := k.p
	p.mu.Lock()
	k.flush()
	if extra := output - k.charged; extra != 0 && output >= 0 {
		k.pending.Store(extra)
		k.flush()
	}
	p.running[k.class]--
	k.t.running--
	p.dispatch(time.Now())
	p.mu.Unlock()
}

// Acquire waits for a slot for req. It returns a *Refusal when the
// tenant's queue is full, when the wait is sure to exceed the timeout, or
// when the timeout passes; ctx's error when the client leaves.
func (p *Pool) Acquire(ctx context.Context, req Request) (*Ticket, error) {
	if req.Weight <= 0 {
		req.Weight = 1
	}
	now := time.Now()
	p.mu.Lock()
	t := p.tenant(req)
	t.lastSeen = now
	if len(t.queue[Interactive])+len(t.queue[Batch]) == 0 {
		// Back from idle: no credit for the time away (VTC's counter lift).
		t.counter = math.Max(t.counter, p.liftLevel())
	}
	if p.nobodyAhead(req.Class) && p.canRun(req.Class) && !p.holdsHeadroom(t, now) { // the common case: no wait
		p.start(t, req, now, now)
		p.mu.Unlock()
		return &Ticket{p: p, t: t, class: req.Class}, nil
	}
	if max := p.opts.MaxQueuedPerTenant; max > 0 && len(t.queue[Interactive])+len(t.queue[Batch]) >= max {
		r := p.refuse(t, "tenant_queue_full", p.estimate(t, req.Class, now))
		p.mu.Unlock()
		return nil, r
	}
	timeout := p.timeout(req.Class)
	if !p.canRun(req.Class) {
		if wait := p.estimate(t, req.Class, now); wait > timeout && timeout > 0 {
			r := p.refuse(t, "wait_too_long", wait)
			p.mu.Unlock()
			return nil, r
		}
	}
	// Queued, then dispatched at once if a slot is free and nobody it
	// must yield to is waiting.
	w := &waiter{req: req, t: t, ready: make(chan struct{}), since: now}
	t.queue[req.Class] = append(t.queue[req.Class], w)
	p.waiting[req.Class][t] = struct{}{}
	p.queued[req.Class]++
	p.dispatch(now)
	granted := w.granted
	p.mu.Unlock()
	if granted {
		return p.ticketOf(w), nil
	}

	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-w.ready:
		return p.ticketOf(w), nil
	case <-ctx.Done():
		if p.leave(w) {
			return p.ticketOf(w), nil // granted as the client left: the caller frees it
		}
		return nil, ctx.Err()
	case <-expired:
		if p.leave(w) {
			return p.ticketOf(w), nil
		}
		p.mu.Lock()
		r := p.refuse(t, "queue_timeout", p.estimate(t, req.Class, time.Now()))
		p.mu.Unlock()
		return nil, r
	}
}

func (p *Pool) ticketOf(w *waiter) *Ticket {
	return &Ticket{p: p, t: w.t, class: w.req.Class, Waited: time.Since(w.since)}
}

// leave takes w out of the queue; true if it was granted meanwhile.
func (p *Pool) leave(w *waiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.granted {
		return true
	}
	q := w.t.queue[w.req.Class]
	for i, x := range q {
		if x == w {
			w.t.queue[w.req.Class] = append(q[:i], q[i+1:]...)
			p.queued[w.req.Class]--
			if len(w.t.queue[w.req.Class]) == 0 {
				delete(p.waiting[w.req.Class], w.t)
			}
			break
		}
	}
	return false
}

func (p *Pool) tenant(req Request) *tenant {
	t := p.tenants[req.Tenant]
	if t == nil {
		if len(p.tenants) >= maxIdleTenants {
			p.forgetIdle()
		}
		t = &tenant{name: req.Tenant, counter: p.liftLevel()}
		p.tenants[req.Tenant] = t
	}
	t.weight = req.Weight
	return t
}

// maxIdleTenants bounds the tenants a pool remembers; beyond it, idle
// tenants whose counter would be lifted anyway are forgotten.
const maxIdleTenants = 10000

func (p *Pool) forgetIdle() {
	level := p.liftLevel()
	for name, t := range p.tenants {
		if t.running == 0 && len(t.queue[Interactive])+len(t.queue[Batch]) == 0 && t.counter <= level {
			delete(p.tenants, name)
		}
	}
}

// liftLevel is where a tenant that was idle starts: the smallest counter
// among waiting tenants, or the last served counter when nobody waits.
func (p *Pool) liftLevel() float64 {
	level, found := 0.0, false
	for _, set := range p.waiting {
		for t := range set {
			if !found || t.counter < level {
				level, found = t.counter, true
			}
		}
	}
	if !found {
		return p.lastServed
	}
	return level
}

// Headroom: a new request can only start when a slot frees, and with long
// streams that may take seconds. So, near full (the last capacity/8
// slots), a tenant already running its share of the slots leaves them
// free while another tenant active in the last activeWindow has nothing
// waiting: that tenant's next request starts at once. A pool of fewer
// than 8 slots keeps no headroom, and tenants all waiting use every slot.
const (
	headroomDivisor = 8
	activeWindow    = 2 * time.Second
)

// holdsHeadroom reports whether t must leave the free slots as headroom;
// p.mu is held.
func (p *Pool) holdsHeadroom(t *tenant, now time.Time) bool {
	capacity := p.capacity()
	h := capacity / headroomDivisor
	if h == 0 || capacity-p.running[Interactive]-p.running[Batch] > h {
		return false
	}
	activeWeight, idleOther := 0.0, false
	for _, u := range p.tenants {
		waiting := len(u.queue[Interactive])+len(u.queue[Batch]) > 0
		if u != t && !waiting && u.running == 0 && now.Sub(u.lastSeen) > activeWindow {
			continue
		}
		activeWeight += u.weight
		if u != t && !waiting {
			idleOther = true
		}
	}
	return idleOther && float64(t.running) >= float64(capacity)*t.weight/activeWeight
}

// nobodyAhead: no request this one must yield to is waiting.
func (p *Pool) nobodyAhead(c Class) bool {
	if c == Batch {
		return p.queued[Interactive]+p.queued[Batch] == 0
	}
	return p.queued[Interactive] == 0
}

// canRun reports whether a request of class c may start now.
func (p *Pool) canRun(c Class) bool {
	capacity := p.capacity()
	if capacity <= 0 {
		return true
	}
	total := p.running[Interactive] + p.running[Batch]
	if total >= capacity {
		return false
	}
	if c == Batch {
		// The reserve is the configured share, or what interactive
		// traffic needed at once lately plus one, whichever is larger —
		// but batch always keeps one slot, so it never starves. (Without
		// the one more, a burst of interactive requests waited: p99 time
		// to first token 1.6x instead of 1.0x in bench/fairness.)
		reserve := int(float64(capacity) * p.opts.InteractiveReserve)
		if peak := p.peak.max(time.Now()); peak > 0 {
			reserve = max(reserve, peak+1)
		}
		return p.running[Batch] < max(capacity-reserve, 1)
	}
	return true
}

// start dispatches a request of t; p.mu is held.
func (p *Pool) start(t *tenant, req Request, since, now time.Time) {
	p.running[req.Class]++
	t.running++
	if req.Class == Interactive {
		p.peak.record(now, p.running[Interactive])
	}
	t.counter += float64(req.InputTokens) / t.weight
	t.inputs += req.InputTokens
	p.lastServed = t.counter
	p.stats.Dispatched++
	p.stats.WaitSeconds += now.Sub(since).Seconds()
	p.rate.tick(now)
}

// dispatch starts waiting requests while slots are free: interactive
// first, each class by smallest counter; p.mu is held.
func (p *Pool) dispatch(now time.Time) {
	for _, c := range []Class{Interactive, Batch} {
		for p.queued[c] > 0 && p.canRun(c) {
			var next *tenant
			for t := range p.waiting[c] {
				if (next == nil || before(t, next)) && !p.holdsHeadroom(t, now) {
					next = t
				}
			}
			if next == nil {
				return // the free slots are headroom for a tenant between requests
			}
			w := next.queue[c][0]
			next.queue[c][0] = nil
			next.queue[c] = next.queue[c][1:]
			if len(next.queue[c]) == 0 {
				delete(p.waiting[c], next)
			}
			p.queued[c]--
			p.start(next, w.req, w.since, now)
			w.granted = true
			close(w.ready)
		}
	}
}

// before orders waiting tenants: the least served first; on a tie (a
// tenant just lifted to the others' level), the one running the fewest
// requests for its weight; then by name, so the order is stable.
func before(a, b *tenant) bool {
	if a.counter != b.counter {
		return a.counter < b.counter
	}
	if ra, rb := float64(a.running)/a.weight, float64(b.running)/b.weight; ra != rb {
		return ra < rb
	}
	return a.name < b.name
}

func (p *Pool) timeout(c Class) time.Duration {
	if c == Batch {
		return p.opts.BatchQueueTimeout
	}
	return p.opts.QueueTimeout
}

// estimate guesses how long a new request of t would wait: the requests
// that would leave before it — the whole queue of its class and above, or
// its tenant's share of it under fair order, whichever is fewer — over
// the pool's recent dispatch rate. 0 when the rate is not known yet.
func (p *Pool) estimate(t *tenant, c Class, now time.Time) time.Duration {
	perSecond := p.rate.perSecond(now)
	if perSecond <= 0 {
		return 0
	}
	ahead := p.queued[Interactive]
	if c == Batch {
		ahead += p.queued[Batch]
	}
	fair := (len(t.queue[c]) + 1) * max(len(p.waiting[c]), 1)
	ahead = min(ahead, fair) + 1
	return time.Duration(float64(ahead) / perSecond * float64(time.Second))
}

func (p *Pool) refuse(t *tenant, reason string, retryAfter time.Duration) *Refusal {
	t.rejected++
	p.stats.Rejected[reason]++
	return &Refusal{Reason: reason, RetryAfter: max(retryAfter, time.Second)}
}

// peakMeter keeps the most interactive requests running at once in each
// of the last rateWindow seconds.
type peakMeter struct {
	peak  [rateWindow]int
	stamp [rateWindow]int64
}

func (m *peakMeter) record(now time.Time, running int) {
	sec := now.Unix()
	i := sec % rateWindow
	if m.stamp[i] != sec {
		m.stamp[i], m.peak[i] = sec, 0
	}
	m.peak[i] = max(m.peak[i], running)
}

func (m *peakMeter) max(now time.Time) int {
	sec, out := now.Unix(), 0
	for i, s := range m.stamp {
		if s > sec-rateWindow && s <= sec {
			out = max(out, m.peak[i])
		}
	}
	return out
}

// rateMeter counts dispatches over the last rateWindow, by second.
type rateMeter struct {
	count [rateWindow]int64
	stamp [rateWindow]int64 // the Unix second each count is for
	first time.Time
}

const rateWindow = 10 // seconds

func (r *rateMeter) tick(now time.Time) {
	sec := now.Unix()
	i := sec % rateWindow
	if r.stamp[i] != sec {
		r.stamp[i], r.count[i] = sec, 0
	}
	r.count[i]++
	if r.first.IsZero() {
		r.first = now
	}
}

// perSecond is the dispatch rate over the window (or since the first
// dispatch, if more recent); 0 (unknown) until the pool has a second of
// history and rateSample dispatches in the window.
func (r *rateMeter) perSecond(now time.Time) float64 {
	sec := now.Unix()
	var n int64
	for i, s := range r.stamp {
		if s > sec-rateWindow && s <= sec {
			n += r.count[i]
		}
	}
	span := min(now.Sub(r.first), rateWindow*time.Second)
	if n < rateSample || span < time.Second {
		return 0
	}
	return float64(n) / span.Seconds()
}

const rateSample = 10

// TenantView is one tenant's state, for the admin endpoint and metrics.
type TenantView struct {
	Tenant       string  `json:"tenant"`
	Weight       float64 `json:"weight"`
	Counter      float64 `json:"virtual_tokens"`
	Running      int     `json:"running"`
	Queued       int     `json:"queued"`
	QueuedBatch  int     `json:"queued_batch"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Rejected     int64   `json:"rejected"`
}

// PoolView is a pool's state.
type PoolView struct {
	Capacity        int              `json:"capacity"`
	Running         int              `json:"running"`
	RunningBatch    int              `json:"running_batch"`
	Queued          int              `json:"queued"`
	QueuedBatch     int              `json:"queued_batch"`
	DispatchRate    float64          `json:"dispatch_per_second"`
	Dispatched      int64            `json:"dispatched"`
	MeanWaitSeconds float64          `json:"mean_wait_seconds"`
	Rejected        map[string]int64 `json:"rejected"`
	Tenants         []TenantView     `json:"tenants"`
}

// View returns the pool's state.
func (p *Pool) View() PoolView {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := PoolView{
		Capacity: p.capacity(), Running: p.running[Interactive] + p.running[Batch], RunningBatch: p.running[Batch],
		Queued: p.queued[Interactive] + p.queued[Batch], QueuedBatch: p.queued[Batch],
		DispatchRate: p.rate.perSecond(time.Now()), Dispatched: p.stats.Dispatched, Rejected: map[string]int64{},
		Tenants: make([]TenantView, 0, len(p.tenants)),
	}
	if v.Dispatched > 0 {
		v.MeanWaitSeconds = p.stats.WaitSeconds / float64(v.Dispatched)
	}
	for k, n := range p.stats.Rejected {
		v.Rejected[k] = n
	}
	for _, t := range p.tenants {
		v.Tenants = append(v.Tenants, TenantView{Tenant: t.name, Weight: t.weight, Counter: t.counter, Running: t.running,
			Queued: len(t.queue[Interactive]) + len(t.queue[Batch]), QueuedBatch: len(t.queue[Batch]),
			InputTokens: t.inputs, OutputTokens: t.outputs, Rejected: t.rejected})
	}
	return v
}
