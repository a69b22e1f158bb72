package hnsw

import (
	"slices"

	"github.com/viterin/vek/vek32"
)

// candidate is a node and its score against the vector searched.
type candidate struct {
	node  uint32
	score float32
}

func byScoreDesc(a, b candidate) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return int(a.node) - int(b.node)
}

// visitSet marks nodes visited by one search: a node is visited when
// its mark equals the current epoch, so clearing is a counter increment.
type visitSet struct {
	marks []uint32
	epoch uint32
}

func (v *visitSet) reset(n int) {
	if len(v.marks) < n {
		v.marks = make([]uint32, n+n/4)
		v.epoch = 0
	}
	v.epoch++
	if v.epoch == 0 { // wrapped: old marks could match again
		clear(v.marks)
		v.epoch = 1
	}
}

// visit marks n and reports whether it was unvisited.
func (v *visitSet) visit(n uint32) bool {
	if v.marks[n] == v.epoch {
		return false
	}
	v.marks[n] = v.epoch
	return true
}

// searcher holds the scratch memory of one search or insertion.
type searcher struct {
	g       *Graph
	locked  bool // read neighbour lists under node locks (parallel build)
	visited *visitSet
	cands   maxHeap     // to expand, best first
	found   minHeap     // best so far, worst on top
	scratch []candidate // connect's pruning
	links   []uint32    // copy of a neighbour list, when locked
}

func newSearcher(g *Graph) *searcher {
	v, _ := g.visited.Get().(*visitSet)
	if v == nil {
		v = &visitSet{}
	}
	return &searcher{g: g, locked: g.locks != nil, visited: v}
}

func (s *searcher) release() {
	s.g.visited.Put(s.visited)
	s.visited = nil
}

// searchLayer is the beam search of one level from ep: it returns up to
// ef nodes, best first. With accept (level 0 searches), only accepted
// nodes enter the result, and the search does not stop on the usual
// condition (the best candidate left is worse than the worst result)
// until it holds ef of them: rejected nodes are walked through.
func (s *searcher) searchLayer(q []float32, ep uint32, epScore float32, ef, level int, accept func(uint32) bool) []candidate {
	g := s.g
	s.visited.reset(len(g.ids))
	s.cands = s.cands[:0]
	s.found = s.found[:0]
	s.visited.visit(ep)
	s.cands.push(candidate{ep, epScore})
	if accept == nil || accept(ep) {
		s.found.push(candidate{ep, epScore})
	}
	for len(s.cands) > 0 {
		c := s.cands.pop()
		if len(s.found) >= ef && c.score < s.found[0].score {
			break
		}
		var list []uint32
		if s.locked {
			g.locks[c.node].Lock()
			s.links = append(s.links[:0], g.links[c.node][level]...)
			g.locks[c.node].Unlock()
			list = s.links
		} else {
			list = g.links[c.node][level]
		}
		for _, n := range list {
			if !s.visited.visit(n) {
				continue
			}
			score := vek32.Dot(q, g.vecs[n])
			if len(s.found) < ef || score > s.found[0].score {
				s.cands.push(candidate{n, score})
				if accept == nil || accept(n) {
					s.found.push(candidate{n, score})
					if len(s.found) > ef {
						s.found.pop()
					}
				}
			}
		}
	}
	out := slices.Clone([]candidate(s.found))
	slices.SortFunc(out, byScoreDesc)
	return out
}

// maxHeap is a binary heap of candidates, best score on top.
type maxHeap []candidate

func (h *maxHeap) push(c candidate) {
	*h = append(*h, c)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].score >= a[i].score {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *maxHeap) pop() candidate {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a[l].score > a[m].score {
			m = l
		}
		if r < len(a) && a[r].score > a[m].score {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// minHeap is a binary heap of candidates, worst score on top.
type minHeap []candidate

func (h *minHeap) push(c candidate) {
	*h = append(*h, c)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].score <= a[i].score {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *minHeap) pop() candidate {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a[l].score < a[m].score {
			m = l
		}
		if r < len(a) && a[r].score < a[m].score {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
