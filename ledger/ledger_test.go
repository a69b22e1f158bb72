package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet"
)

// memStore is a Ledger that keeps lines by (request id, attempt), as the
// real stores do, and fails while down.
type memStore struct {
	mu    sync.Mutex
	down  bool
	lines map[string]guichet.UsageLine
	calls int
}

func newMemStore() *memStore { return &memStore{lines: map[string]guichet.UsageLine{}} }

func (m *memStore) Record(ctx context.Context, lines []guichet.UsageLine) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.down {
		return errors.New("database unreachable")
	}
	for _, l := range lines {
		k := fmt.Sprint(l.RequestID, "/", l.Attempt)
		if _, dup := m.lines[k]; !dup {
			m.lines[k] = l
		}
	}
	return nil
}
func (m *memStore) Usage(context.Context, guichet.UsageFilter, guichet.Page) ([]guichet.UsageLine, error) {
	return nil, nil
}
func (m *memStore) UsageTotals(context.Context, guichet.UsageFilter) (guichet.UsageTotals, error) {
	return guichet.UsageTotals{}, nil
}
func (m *memStore) UsageDaily(context.Context, guichet.UsageFilter) ([]guichet.UsageDay, error) {
	return nil, nil
}
func (m *memStore) PruneUsage(context.Context, time.Time) error { return nil }
func (m *memStore) setDown(d bool)                              { m.mu.Lock(); m.down = d; m.mu.Unlock() }
func (m *memStore) count() int                                  { m.mu.Lock(); defer m.mu.Unlock(); return len(m.lines) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func line(i int) guichet.UsageLine {
	return guichet.UsageLine{Time: time.Now().UTC(), RequestID: fmt.Sprint("req-", i), UserID: 7, Endpoint: guichet.EndpointChat,
		Model: "chat", Status: 200, PromptTokens: 10, CompletionTokens: int64(i), Cost: guichet.Amount(i)}
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLinesAreBatchedAndAllWritten(t *testing.T) {
	store := newMemStore()
	w, err := New(store, t.TempDir(), quiet, Options{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		w.Add(line(i))
	}
	closeWriter(t, w)
	if store.count() != 1000 || w.Recorded() != 1000 {
		t.Fatalf("%d lines in the store (%d recorded), want 1000", store.count(), w.Recorded())
	}
	if store.calls > 20 {
		t.Errorf("1000 lines took %d store writes: not batched", store.calls)
	}
}

func TestStoreDownSpillsThenReplaysExactlyOnce(t *testing.T) {
	store := newMemStore()
	store.setDown(true)
	dir := t.TempDir()
	w, err := New(store, dir, quiet, Options{BatchSize: 50, FlushEvery: 10 * time.Millisecond, RetryEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		w.Add(line(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Spilled() < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w.Spilled() != 300 || w.Healthy() {
		t.Fatalf("store down: %d lines spilled (healthy %v), want 300", w.Spilled(), w.Healthy())
	}
	store.setDown(false)
	for i := 300; i < 400; i++ {
		w.Add(line(i))
	}
	for (w.Spilled() > 0 || store.count() < 400) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	closeWriter(t, w)
	if store.count() != 400 || w.Spilled() != 0 {
		t.Fatalf("after recovery: %d lines in the store, %d still spilled; want 400 and 0", store.count(), w.Spilled())
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "ledger-spill", "*")); len(files) != 0 {
		t.Errorf("spill files left: %v", files)
	}
}

func TestSpillSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	down := newMemStore()
	down.setDown(true)
	w, _ := New(down, dir, quiet, Options{})
	for i := range 50 {
		w.Add(line(i))
	}
	closeWriter(t, w) // the store never answered: the lines are on disk
	if w.Spilled() != 50 {
		t.Fatalf("%d lines spilled at close, want 50", w.Spilled())
	}
	up := newMemStore()
	w2, err := New(up, dir, quiet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w2)
	if up.count() != 50 || w2.Spilled() != 0 {
		t.Fatalf("the next run wrote %d spilled lines (%d left), want 50 (0)", up.count(), w2.Spilled())
	}
}

func TestAFullQueueSpillsInsteadOfDropping(t *testing.T) {
	store := newMemStore()
	store.setDown(true) // the writer is stuck failing: the queue fills
	w, _ := New(store, t.TempDir(), quiet, Options{QueueSize: 10, BatchSize: 5, RetryEvery: time.Hour})
	for i := range 500 {
		w.Add(line(i))
	}
	store.setDown(false)
	closeWriter(t, w)
	w2, _ := New(store, filepath.Dir(w.spill.dir), quiet, Options{})
	closeWriter(t, w2)
	if store.count() != 500 {
		t.Fatalf("%d of 500 lines reached the store", store.count())
	}
}
