package hnsw

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// AddBatch adds vecs[i] under ids[i] like Add, with workers goroutines
// (<= 0: GOMAXPROCS). It holds the write lock throughout: searches wait.
// Levels are drawn in order, as by Add; the links depend on scheduling
// when workers > 1.
func (g *Graph) AddBatch(ids []int64, vecs [][]float32, workers int) {
	if len(ids) != len(vecs) {
		panic(fmt.Sprintf("hnsw: %d ids and %d vectors", len(ids), len(vecs)))
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	first := uint32(len(g.ids))
	for i, id := range ids {
		g.appendNode(id, vecs[i])
	}
	last := uint32(len(g.ids))
	next := first
	// The first node of an empty graph becomes the entry point: insert
	// it alone so that no other insertion sees an empty graph.
	if g.entry < 0 && next < last {
		s := newSearcher(g)
		g.insert(next, s)
		s.release()
		next++
	}
	if workers == 1 || last-next < 1000 {
		s := newSearcher(g)
		for i := next; i < last; i++ {
			g.insert(i, s)
		}
		s.release()
		return
	}
	g.locks = make([]sync.Mutex, len(g.ids))
	defer func() { g.locks = nil }()
	var counter atomic.Uint32
	counter.Store(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			s := newSearcher(g)
			defer s.release()
			for {
				i := counter.Add(1) - 1
				if i >= last {
					return
				}
				g.insert(i, s)
			}
		})
	}
	wg.Wait()
}
