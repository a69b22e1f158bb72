package sim

import (
	"context"
	"errors"
	"sync"
)

// scheduler plays a saturated GPU: at most max requests run at once, the
// others wait in FIFO order. Counters (global and per model) are updated
// under the lock, so /metrics and /sim/stats are exact.
type scheduler struct {
	s        *Server
	max      int // 0 = unlimited
	maxQueue int // 0 = unbounded

	mu      sync.Mutex
	running int
	queue   []*waiter
}

type waiter struct {
	ch      chan struct{}
	m       *modelCounters
	granted bool // set under mu when a released slot is handed over
}

var errQueueFull = errors.New("waiting queue is full")

func (q *scheduler) init(s *Server, max, maxQueue int) {
	q.s, q.max, q.maxQueue = s, max, maxQueue
}

// acquire waits for a slot; it returns ctx's error if the client goes away
// first, errQueueFull when the queue is bounded and full. queued, if set,
// is called when the request is about to wait.
func (q *scheduler) acquire(ctx context.Context, m *modelCounters, queued func()) error {
	if q.max == 0 {
		q.s.running.Add(1)
		m.running.Add(1)
		return nil
	}
	q.mu.Lock()
	if q.running < q.max && len(q.queue) == 0 {
		q.running++
		q.s.running.Add(1)
		m.running.Add(1)
		q.mu.Unlock()
		return nil
	}
	if q.maxQueue > 0 && len(q.queue) >= q.maxQueue {
		q.mu.Unlock()
		return errQueueFull
	}
	w := &waiter{ch: make(chan struct{}), m: m}
	q.queue = append(q.queue, w)
	q.s.waiting.Add(1)
	m.waiting.Add(1)
	q.mu.Unlock()

	if queued != nil {
		queued()
	}
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.granted {
		// The slot arrived as the client left: pass it on.
		q.mu.Unlock()
		q.release(m)
		return ctx.Err()
	}
	for i, x := range q.queue {
		if x == w {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			break
		}
	}
	q.s.waiting.Add(-1)
	m.waiting.Add(-1)
	q.mu.Unlock()
	return ctx.Err()
}

// release frees the slot of a request of model m, handing it to the
// oldest waiter if any.
func (q *scheduler) release(m *modelCounters) {
	if q.max == 0 {
		q.s.running.Add(-1)
		m.running.Add(-1)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m.running.Add(-1)
	if len(q.queue) == 0 {
		q.running--
		q.s.running.Add(-1)
		return
	}
	w := q.queue[0]
	q.queue[0] = nil
	q.queue = q.queue[1:]
	w.granted = true
	q.s.waiting.Add(-1)
	w.m.waiting.Add(-1)
	w.m.running.Add(1) // the global running count is unchanged: the slot moves
	close(w.ch)
}
