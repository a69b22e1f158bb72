package sim

import (
	"container/heap"
	"context"
	"errors"
	"sync"
)

// scheduler plays a saturated GPU: at most max requests run at once, the
// others wait. The waiting queue is ordered like vLLM's: by arrival (fcfs),
// or, with priority scheduling, by the requests' priority (lower first)
// and then by arrival. With fcfs every priority is 0, so the order is
// FIFO. Counters (global and per model) are updated under the lock, so
// /metrics and /sim/stats are exact.
type scheduler struct {
	s        *Server
	max      int // 0 = unlimited
	maxQueue int // 0 = unbounded

	mu      sync.Mutex
	running int
	queue   waitQueue
	arrived uint64 // arrival counter: the tie-break of equal priorities
}

type waiter struct {
	ch       chan struct{}
	m        *modelCounters
	priority int
	seq      uint64
	index    int  // position in the heap, maintained by waitQueue
	granted  bool // set under mu when a released slot is handed over
}

// waitQueue is a heap of waiters, the next one to run first.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }
func (q waitQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	return a.priority < b.priority || a.priority == b.priority && a.seq < b.seq
}
func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	w.index = -1
	return w
}

var errQueueFull = errors.New("waiting queue is full")

func (q *scheduler) init(s *Server, max, maxQueue int) {
	q.s, q.max, q.maxQueue = s, max, maxQueue
}

// acquire waits for a slot; it returns ctx's error if the client goes away
// first, errQueueFull when the queue is bounded and full. priority orders
// the waiting queue (lower first; 0 unless priority scheduling is on).
// queued, if set, is called when the request is about to wait.
func (q *scheduler) acquire(ctx context.Context, m *modelCounters, priority int, queued func()) error {
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
	q.arrived++
	w := &waiter{ch: make(chan struct{}), m: m, priority: priority, seq: q.arrived}
	heap.Push(&q.queue, w)
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
	heap.Remove(&q.queue, w.index)
	q.s.waiting.Add(-1)
	m.waiting.Add(-1)
	q.mu.Unlock()
	return ctx.Err()
}

// release frees the slot of a request of model m, handing it to the
// first waiter (by priority, then arrival) if any.
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
	w := heap.Pop(&q.queue).(*waiter)
	w.granted = true
	q.s.waiting.Add(-1)
	w.m.waiting.Add(-1)
	w.m.running.Add(1) // the global running count is unchanged: the slot moves
	close(w.ch)
}
