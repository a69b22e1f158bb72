package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/guichet/guichet"
)

// flakyStore records spends and fails while down is set.
type flakyStore struct {
	guichet.IdentityStore
	mu    sync.Mutex
	down  bool
	spent map[int64]guichet.Amount
}

func (f *flakyStore) Spend(ctx context.Context, user, org int64, a guichet.Amount) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("database unreachable")
	}
	f.spent[user] += a
	return nil
}

func TestSpendsAreBatchedAndSurviveAStoreOutage(t *testing.T) {
	store := &flakyStore{spent: map[int64]guichet.Amount{}, down: true}
	sp := newSpender(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 10 {
		sp.add(7, 3, 5)
	}
	sp.add(8, 3, 1)
	if got := sp.pendingFor('u', 7); got != 50 {
		t.Fatalf("pending for user 7: %d, want 50", got)
	}
	if got := sp.pendingFor('o', 3); got != 51 {
		t.Fatalf("pending for organization 3: %d, want 51", got)
	}
	sp.flush(context.Background()) // the store is down: nothing is lost
	if got := sp.pendingFor('u', 7); got != 50 {
		t.Fatalf("after a failed flush, pending for user 7: %d, want 50", got)
	}
	store.down = false
	sp.flush(context.Background())
	if store.spent[7] != 50 || store.spent[8] != 1 {
		t.Fatalf("written: %v, want 50 for user 7 and 1 for user 8, in one write each", store.spent)
	}
	if got := sp.pendingFor('o', 3); got != 0 {
		t.Fatalf("after a flush, pending %d", got)
	}
}
