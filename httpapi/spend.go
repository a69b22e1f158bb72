package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/guichet/guichet"
)

// spendFlushEvery is how often spends are written to the store. Live
// balances are the quota's (in process, or Redis); the store is their
// durable copy, written in batches so a request never waits on it.
const spendFlushEvery = time.Second

// spender batches budget spends on their way to the store: one write per
// user and second at most, instead of one per request.
type spender struct {
	store guichet.IdentityStore
	log   *slog.Logger

	mu      sync.Mutex
	pending map[spendKey]guichet.Amount
}

type spendKey struct{ user, org int64 }

func newSpender(store guichet.IdentityStore, log *slog.Logger) *spender {
	return &spender{store: store, log: log, pending: map[spendKey]guichet.Amount{}}
}

func (sp *spender) add(user, org int64, a guichet.Amount) {
	sp.mu.Lock()
	sp.pending[spendKey{user, org}] += a
	sp.mu.Unlock()
}

// pendingFor is what a user's ('u') or organization's ('o') budget has
// spent that the store does not show yet.
func (sp *spender) pendingFor(kind byte, id int64) guichet.Amount {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var sum guichet.Amount
	for k, a := range sp.pending {
		if (kind == 'u' && k.user == id) || (kind == 'o' && k.org == id) {
			sum += a
		}
	}
	return sum
}

// run flushes every spendFlushEvery until ctx ends.
func (sp *spender) run(ctx context.Context) {
	t := time.NewTicker(spendFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sp.flush(ctx)
		}
	}
}

// flush writes the pending spends; those the store refuses stay pending
// for the next flush.
func (sp *spender) flush(ctx context.Context) {
	sp.mu.Lock()
	batch := sp.pending
	sp.pending = map[spendKey]guichet.Amount{}
	sp.mu.Unlock()
	for k, a := range batch {
		if err := sp.store.Spend(ctx, k.user, k.org, a); err != nil {
			sp.log.Error("recording spend in the store: kept for the next try", "user", k.user, "organization", k.org, "amount", a.String(), "err", err)
			sp.add(k.user, k.org, a)
		}
	}
}
