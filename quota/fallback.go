package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guichet/guichet"
)

// Mode is what Fallback does while its primary quota is unreachable.
type Mode int

const (
	// FailClosed refuses every admission with an error wrapping
	// ErrUnavailable (the caller answers 503): no limit is ever exceeded.
	FailClosed Mode = iota
	// Local decides with the local quota instead: each replica enforces
	// the limits on its own, so a cluster of n replicas may let up to n
	// times a limit through while the outage lasts.
	Local
)

func (m Mode) String() string {
	if m == Local {
		return "local"
	}
	return "fail_closed"
}

// DefaultRetryInterval is how often, during an outage, Fallback tries
// the primary again.
const DefaultRetryInterval = time.Second

// Fallback is a guichet.Quota that uses a primary quota (Redis) and, when
// the primary fails, either refuses (FailClosed) or uses a local quota
// (Local).
//
// An error from the primary counts as an outage unless the caller's
// context is done, or it wraps ErrInvalid or a *LoadError (the caller's
// or the store's fault, returned as is). The first failure logs one
// warning and starts the outage; while it lasts, calls skip the primary
// except one every RetryInterval, which tries it again (with the real
// request): its success logs the recovery, and new admissions go back to
// the primary. Admissions the local quota took are remembered by
// Admission.ID and settled there, even after the recovery; a Settle of a
// primary admission during the outage fails with ErrUnavailable (its
// held slots and reservations then end with their lease). ForgetBalance
// always applies to the local quota, and, when the primary is down, is
// queued and applied to it at the recovery, before the first request.
// When an outage starts in Local mode, the local quota's balances are
// dropped (if it has a ForgetBalances method, as Memory does), so that
// they are loaded fresh from the store.
type Fallback struct {
	// RetryInterval is how often a call tries the primary during an
	// outage (0: DefaultRetryInterval). Set it before use.
	RetryInterval time.Duration

	primary, local guichet.Quota
	mode           Mode
	log            *slog.Logger

	down      atomic.Bool
	nextProbe atomic.Int64 // unix ns
	nlocal    atomic.Int64 // len(locals), read without the lock

	mu      sync.Mutex
	since   time.Time
	lastErr error
	locals  map[string]int64 // ID of an admission local took → unix ns when it is forgotten unsettled
	sweepAt int              // len(locals) that triggers the next sweep of locals
	forget  map[string]bool  // budget keys to forget on the primary at recovery
}

var _ guichet.Quota = (*Fallback)(nil)

// NewFallback wraps primary; local serves admissions in Local mode during
// an outage (it may be nil in FailClosed mode). log nil: slog.Default().
func NewFallback(primary, local guichet.Quota, mode Mode, log *slog.Logger) *Fallback {
	if log == nil {
		log = slog.Default()
	}
	if mode == Local && local == nil {
		panic("quota: NewFallback in Local mode needs a local quota")
	}
	return &Fallback{primary: primary, local: local, mode: mode, log: log,
		locals: make(map[string]int64), sweepAt: 1024, forget: make(map[string]bool)}
}

// Healthy reports whether the primary answered the last call that tried
// it (true until a call fails).
func (f *Fallback) Healthy() bool { return !f.down.Load() }

// Degraded reports whether admissions are currently decided by the local
// quota (Local mode during an outage). /ready should fail when the quota
// is neither Healthy nor Degraded (a FailClosed outage).
func (f *Fallback) Degraded() bool { return f.down.Load() && f.mode == Local }

// Admit implements guichet.Quota.
func (f *Fallback) Admit(ctx context.Context, a *guichet.Admission) (guichet.Decision, error) {
	if f.tryPrimary(ctx) {
		d, err := f.primary.Admit(ctx, a)
		if !f.failed(ctx, err) {
			return d, err
		}
	}
	if f.mode != Local {
		return guichet.Decision{}, f.unavailable()
	}
	d, err := f.local.Admit(ctx, a)
	if err == nil && d.Allowed {
		f.remember(a)
	}
	return d, err
}

// Settle implements guichet.Quota, on the quota that admitted a.
func (f *Fallback) Settle(ctx context.Context, a *guichet.Admission, s guichet.Settlement) error {
	if f.takeLocal(a.ID) {
		return f.local.Settle(ctx, a, s)
	}
	if f.tryPrimary(ctx) {
		err := f.primary.Settle(ctx, a, s)
		if !f.failed(ctx, err) {
			return err
		}
	}
	return f.unavailable()
}

// ForgetBalance implements guichet.Quota. It does not fail because the
// primary is down: the key is then forgotten there at the recovery.
func (f *Fallback) ForgetBalance(ctx context.Context, budgetKey string) error {
	var lerr error
	if f.local != nil {
		lerr = f.local.ForgetBalance(ctx, budgetKey)
	}
	if !f.down.Load() {
		err := f.primary.ForgetBalance(ctx, budgetKey)
		if !f.failed(ctx, err) {
			return errors.Join(err, lerr)
		}
	}
	f.mu.Lock()
	f.forget[budgetKey] = true
	f.mu.Unlock()
	return lerr
}

// tryPrimary reports whether this call should use the primary: always
// when it is up, once per RetryInterval during an outage (after the
// queued ForgetBalance calls went through).
func (f *Fallback) tryPrimary(ctx context.Context) bool {
	if !f.down.Load() {
		return true
	}
	now := time.Now().UnixNano()
	next := f.nextProbe.Load()
	if now < next || !f.nextProbe.CompareAndSwap(next, now+int64(f.retryInterval())) {
		return false
	}
	f.mu.Lock()
	keys := make([]string, 0, len(f.forget))
	for k := range f.forget {
		keys = append(keys, k)
	}
	f.mu.Unlock()
	for _, k := range keys {
		err := f.primary.ForgetBalance(ctx, k)
		if err != nil {
			f.failed(ctx, err)
			return false
		}
		f.mu.Lock()
		delete(f.forget, k)
		f.mu.Unlock()
	}
	return true
}

func (f *Fallback) retryInterval() time.Duration {
	if f.RetryInterval > 0 {
		return f.RetryInterval
	}
	return DefaultRetryInterval
}

// failed records the outcome of a call to the primary and reports
// whether it was an outage (the caller then falls back).
func (f *Fallback) failed(ctx context.Context, err error) bool {
	if err == nil {
		if f.down.Load() && f.down.CompareAndSwap(true, false) {
			f.mu.Lock()
			since := f.since
			f.mu.Unlock()
			f.log.Info("quota backend reachable again", "outage", time.Since(since).Round(time.Millisecond).String())
		}
		return false
	}
	var le *LoadError
	if ctx.Err() != nil || errors.Is(err, ErrInvalid) || errors.As(err, &le) {
		return false
	}
	f.mu.Lock()
	f.lastErr = err
	f.mu.Unlock()
	f.nextProbe.Store(time.Now().Add(f.retryInterval()).UnixNano())
	if f.down.CompareAndSwap(false, true) {
		f.mu.Lock()
		f.since = time.Now()
		f.mu.Unlock()
		if f.mode == Local {
			if l, ok := f.local.(interface{ ForgetBalances() }); ok {
				l.ForgetBalances()
			}
			f.log.Warn("quota backend unreachable: each replica enforces limits and budgets on its own until it is back", "mode", f.mode.String(), "err", err)
		} else {
			f.log.Warn("quota backend unreachable: requests with limits or budgets are refused (503) until it is back", "mode", f.mode.String(), "err", err)
		}
	}
	return true
}

func (f *Fallback) unavailable() error {
	f.mu.Lock()
	err := f.lastErr
	f.mu.Unlock()
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// remember notes that the local quota admitted a, so that Settle goes
// there; entries never settled are dropped after their lease.
func (f *Fallback) remember(a *guichet.Admission) {
	now := time.Now().UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locals[a.ID] = now + int64(Lease(a)) + int64(time.Minute)
	if len(f.locals) >= f.sweepAt {
		for id, end := range f.locals {
			if end < now {
				delete(f.locals, id)
			}
		}
		f.sweepAt = max(2*len(f.locals), 1024)
	}
	f.nlocal.Store(int64(len(f.locals)))
}

func (f *Fallback) takeLocal(id string) bool {
	if f.nlocal.Load() == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.locals[id]
	if ok {
		delete(f.locals, id)
		f.nlocal.Store(int64(len(f.locals)))
	}
	return ok
}
