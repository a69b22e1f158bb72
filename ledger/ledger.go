// Package ledger is the settle step's durable half: usage lines leave the
// request path through a bounded queue and reach the store in batches,
// written by one goroutine. When the store fails, batches go to an
// append-only spill file in the data dir (fsync'd per batch) and are
// replayed when it answers again; the store skips lines it already has,
// so a replay never counts a request twice. Close drains the queue:
// nothing accepted is lost.
package ledger

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guichet/guichet"
)

// Options tune the Writer; zero values take the defaults.
type Options struct {
	QueueSize  int           // lines waiting for the writer (default 65,536)
	BatchSize  int           // lines per store write at most (default 1,000)
	FlushEvery time.Duration // longest wait before a partial batch is written (default 200 ms)
	RetryEvery time.Duration // how often a failing store is tried again (default 2 s)
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 1 << 16
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 200 * time.Millisecond
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = 2 * time.Second
	}
}

// Writer records usage lines asynchronously.
type Writer struct {
	store guichet.Ledger
	spill *spill
	log   *slog.Logger
	opt   Options

	queue   chan guichet.UsageLine
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

	recorded atomic.Int64 // lines written to the store
	down     atomic.Bool  // the last store write failed
}

// New starts a Writer over store, spilling into dir.
func New(store guichet.Ledger, dir string, log *slog.Logger, opt Options) (*Writer, error) {
	opt.defaults()
	sp, err := openSpill(dir)
	if err != nil {
		return nil, err
	}
	w := &Writer{store: store, spill: sp, log: log, opt: opt,
		queue: make(chan guichet.UsageLine, opt.QueueSize), closing: make(chan struct{}), done: make(chan struct{})}
	if n := sp.backlog(); n > 0 {
		log.Warn("usage lines from an earlier run wait in the spill file: they will be written to the store", "lines", n)
	}
	go w.run()
	return w, nil
}

// Add hands a line to the writer without waiting. When the queue is full
// (the store is slower than the traffic), the line goes straight to the
// spill file instead of being dropped.
func (w *Writer) Add(l guichet.UsageLine) {
	select {
	case w.queue <- l:
	default:
		if err := w.spill.append([]guichet.UsageLine{l}); err != nil {
			w.log.Error("LOST a usage line: the queue is full and the spill file cannot be written", "request_id", l.RequestID, "err", err)
		}
	}
}

// Queued is the number of lines waiting in memory.
func (w *Writer) Queued() int { return len(w.queue) }

// Spilled is the number of lines waiting in the spill file.
func (w *Writer) Spilled() int64 { return w.spill.backlog() }

// Recorded is the number of lines written to the store so far.
func (w *Writer) Recorded() int64 { return w.recorded.Load() }

// Healthy reports whether the last write to the store succeeded.
func (w *Writer) Healthy() bool { return !w.down.Load() }

// Close writes every queued line (to the store, or else to the spill
// file) and stops the writer. ctx bounds the wait for the store.
func (w *Writer) Close(ctx context.Context) error {
	w.once.Do(func() { close(w.closing) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) run() {
	defer close(w.done)
	batch := make([]guichet.UsageLine, 0, w.opt.BatchSize)
	flush := time.NewTicker(w.opt.FlushEvery)
	defer flush.Stop()
	retry := time.NewTicker(w.opt.RetryEvery)
	defer retry.Stop()
	w.replay() // an earlier run's spill first
	for {
		select {
		case l := <-w.queue:
			batch = append(batch, l)
			if len(batch) < w.opt.BatchSize {
				continue
			}
		case <-flush.C:
		case <-retry.C:
			if w.spill.backlog() > 0 {
				w.replay()
			}
			continue
		case <-w.closing:
			for {
				select {
				case l := <-w.queue:
					batch = append(batch, l)
					if len(batch) == w.opt.BatchSize {
						w.write(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if w.spill.backlog() > 0 {
				w.replay() // a store back up takes the spill before the last batch
			}
			w.write(batch)
			return
		}
		if len(batch) > 0 {
			w.write(batch)
			batch = batch[:0]
		}
	}
}

// write records a batch, or spills it.
func (w *Writer) write(batch []guichet.UsageLine) {
	if len(batch) == 0 {
		return
	}
	if !w.down.Load() || w.spill.backlog() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.store.Record(ctx, batch)
		cancel()
		if err == nil {
			w.recorded.Add(int64(len(batch)))
			if w.down.Swap(false) {
				w.log.Info("usage ledger: the store answers again")
			}
			return
		}
		if !w.down.Swap(true) {
			w.log.Warn("usage ledger: the store failed; lines go to the spill file until it answers", "err", err)
		}
	}
	// While the store is down, or older lines wait in the spill file
	// (kept in order), new batches join them there.
	if err := w.spill.append(batch); err != nil {
		w.log.Error("LOST usage lines: neither the store nor the spill file could take them", "lines", len(batch), "err", err)
	}
}

// replay writes the spill file's lines to the store, in batches; what the
// store already has is skipped by it.
func (w *Writer) replay() {
	n, err := w.spill.replay(w.opt.BatchSize, func(batch []guichet.UsageLine) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return w.store.Record(ctx, batch)
	})
	if n > 0 {
		w.recorded.Add(int64(n))
	}
	if err != nil {
		w.down.Store(true)
		return
	}
	if n > 0 {
		w.log.Info("usage ledger: spilled lines written to the store", "lines", n)
	}
	w.down.Store(false)
}
