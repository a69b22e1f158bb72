// Package quota implements guichet.Quota in process (Memory, for embedded
// mode and as the per-replica stand-in of Fallback) and holds what every
// implementation shares: admission validation, the default lease and the
// errors callers test with errors.Is / errors.As. The Redis
// implementation lives in package redis; one conformance suite
// (quota/quotatest) runs on both.
//
// The semantics, common to every implementation:
//
//   - A rate counter (Held false) is an exact sliding-window log: the
//     Costs admitted on a key within any half-open span of Window never
//     add up to more than Limit. An entry admitted at t expires at
//     t+Window (at that instant it no longer counts).
//   - A held counter (a concurrency slot) lives until Settle, or until
//     the admission's Lease passes (a replica died before settling).
//   - A budget has a live balance, loaded with BudgetHold.Load when the
//     backend does not hold it (set if absent: a concurrent loader never
//     overwrites a balance already being spent). An admission needs
//     balance - reservations >= Reserve and adds a reservation that lives
//     until Settle or Lease. Settle removes it and takes the real cost off
//     the balance (which may go below zero; nothing is admitted then).
//   - Admit checks everything first and takes everything only if all
//     pass. Decision.Refused is the first failing check, counters then
//     budgets.
//   - Settle only removes or corrects entries still present, so settling
//     twice, or after the entries expired, changes nothing. A reservation
//     that expired before Settle is not charged to the live balance (the
//     store, where the caller records the spend, stays the reference).
//   - RetryAfter is the time until the refused check passes if nothing
//     else changes (entries expiring, oldest first). A request that can
//     never pass gets Window (held counter: Lease); a budget whose balance
//     itself is short of Reserve gets 0 (it needs an operator).
package quota

import (
	"errors"
	"fmt"
	"time"

	"github.com/guichet/guichet"
)

// DefaultLease is the lease of an admission whose Lease is 0.
const DefaultLease = 15 * time.Minute

// MaxLoads bounds how many times one Admit loads missing balances (a
// balance forgotten again while it was being loaded makes it retry).
const MaxLoads = 4

var (
	// ErrInvalid is returned (wrapped) for an admission that makes no
	// sense: a caller bug, not a backend failure.
	ErrInvalid = errors.New("quota: invalid admission")
	// ErrUnavailable is returned (wrapped) by Fallback in FailClosed mode
	// while the quota backend is unreachable: the caller answers 503.
	ErrUnavailable = errors.New("quota: backend unavailable")
)

// LoadError is a BudgetHold.Load failure: the store, not the quota
// backend, failed (Fallback does not count it as an outage).
type LoadError struct {
	Key string // the budget's key
	Err error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("quota: loading the balance of budget %q: %v", e.Key, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Lease is the lease an admission's held counters and reservations get.
func Lease(a *guichet.Admission) time.Duration {
	if a.Lease <= 0 {
		return DefaultLease
	}
	return a.Lease
}

// Validate checks what every implementation relies on: a non-empty ID,
// non-negative limits, costs and reservations, a Window on rate counters,
// a Load on budgets, and keys unique within the admission (each counter
// key once, each budget key once).
func Validate(a *guichet.Admission) error {
	if a.ID == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalid)
	}
	if a.Lease < 0 {
		return fmt.Errorf("%w: negative lease", ErrInvalid)
	}
	for i, c := range a.Counters {
		switch {
		case c.Key == "":
			return fmt.Errorf("%w: counter %d has an empty key", ErrInvalid, i)
		case c.Limit < 0 || c.Cost < 0:
			return fmt.Errorf("%w: counter %q has a negative limit or cost", ErrInvalid, c.Key)
		case !c.Held && c.Window <= 0:
			return fmt.Errorf("%w: rate counter %q has no window", ErrInvalid, c.Key)
		}
		for _, d := range a.Counters[:i] {
			if d.Key == c.Key {
				return fmt.Errorf("%w: counter %q appears twice", ErrInvalid, c.Key)
			}
		}
	}
	for i, b := range a.Budgets {
		switch {
		case b.Key == "":
			return fmt.Errorf("%w: budget %d has an empty key", ErrInvalid, i)
		case b.Reserve < 0:
			return fmt.Errorf("%w: budget %q has a negative reserve", ErrInvalid, b.Key)
		case b.Load == nil:
			return fmt.Errorf("%w: budget %q has no Load", ErrInvalid, b.Key)
		}
		for _, d := range a.Budgets[:i] {
			if d.Key == b.Key {
				return fmt.Errorf("%w: budget %q appears twice", ErrInvalid, b.Key)
			}
		}
	}
	return nil
}
