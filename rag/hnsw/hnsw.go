// Package hnsw is an approximate nearest-neighbour index for cosine
// similarity: a Hierarchical Navigable Small World graph (Malkov and
// Yashunin, 2016), in pure Go, with AVX2 dot products through vek32.
//
// Vectors are normalised by the caller: Add keeps the slice it is given
// (no copy, so the exact-scan cache of the caller can share it) and
// expects it to have unit length, or to be all zeros. Scores are then dot
// products, that is cosine similarities. Normalize does it.
//
// A Graph is safe for concurrent searches with one writer: Search takes
// a read lock, Add, AddBatch and Delete a write lock. Deletion leaves a
// tombstone: the node still routes searches but is never returned;
// rebuild the graph when tombstones pile up (Deleted says how many).
//
// Levels are drawn from a generator seeded by Options.Seed, so adding the
// same vectors in the same order with Add builds the same graph.
// AddBatch with several workers draws the same levels but links nodes in
// an order that depends on scheduling.
package hnsw

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/viterin/vek/vek32"
)

// Defaults of Options.
const (
	DefaultM              = 16
	DefaultEfConstruction = 100
	DefaultEfSearch       = 64
)

// maxLevel bounds a node's level; with M = 16 a level above 10 needs
// about 16^10 nodes, so this is never reached in practice.
const maxLevel = 31

// Options tune a graph. Zero fields take the defaults.
type Options struct {
	// M is the number of neighbours a node keeps on levels above 0 (2M on
	// level 0). More is better recall, more memory and slower builds.
	M int
	// EfConstruction is the candidate list size while inserting.
	EfConstruction int
	// EfSearch is the candidate list size of a search when Search is
	// passed ef <= 0. It is raised to k when smaller.
	EfSearch int
	// Seed seeds the level generator.
	Seed uint64
}

func (o Options) withDefaults() Options {
	if o.M <= 0 {
		o.M = DefaultM
	}
	if o.M < 2 {
		o.M = 2
	}
	if o.EfConstruction <= 0 {
		o.EfConstruction = DefaultEfConstruction
	}
	if o.EfSearch <= 0 {
		o.EfSearch = DefaultEfSearch
	}
	return o
}

// Result is a node found by Search: its id and its dot product with the
// (normalised) query.
type Result struct {
	ID    int64
	Score float32
}

// Graph is an HNSW index of vectors of one size.
type Graph struct {
	mu   sync.RWMutex
	dims int
	opts Options
	// levelMult turns a uniform draw into a level: floor(-ln U · 1/ln M).
	levelMult float64
	rng       *rand.PCG

	// Node i, by insertion order.
	ids     []int64
	vecs    [][]float32
	links   [][][]uint32 // links[i][level]: neighbours of node i
	deleted []bool
	locks   []sync.Mutex // guard links[i] during a parallel build
	byID    map[int64]uint32
	ndel    int

	entryMu  sync.Mutex // guards entry and topLevel during a parallel build
	entry    int        // node searches start from; -1 when empty
	topLevel int        // its level

	visited sync.Pool // *visitSet
}

// New returns an empty graph for vectors of dims dimensions.
func New(dims int, opts Options) *Graph {
	if dims <= 0 {
		panic(fmt.Sprintf("hnsw: %d dimensions", dims))
	}
	opts = opts.withDefaults()
	return &Graph{
		dims:      dims,
		opts:      opts,
		levelMult: 1 / math.Log(float64(opts.M)),
		rng:       rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15),
		byID:      map[int64]uint32{},
		entry:     -1,
	}
}

// Dims is the size of the vectors.
func (g *Graph) Dims() int { return g.dims }

// Options returns the options in force (defaults filled in).
func (g *Graph) Options() Options { return g.opts }

// Len is the number of live (not deleted) vectors.
func (g *Graph) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.byID)
}

// Deleted is the number of tombstones.
func (g *Graph) Deleted() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.ndel
}

// Has reports whether id is a live node.
func (g *Graph) Has(id int64) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.byID[id]
	return ok
}

// Vector returns the vector of a live node (nil if none); do not modify it.
func (g *Graph) Vector(id int64) []float32 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if i, ok := g.byID[id]; ok {
		return g.vecs[i]
	}
	return nil
}

// IDs returns the live ids, in insertion order.
func (g *Graph) IDs() []int64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]int64, 0, len(g.byID))
	for i, id := range g.ids {
		if !g.deleted[i] {
			out = append(out, id)
		}
	}
	return out
}

// Normalize scales v to unit length in place (the norm summed in
// float64) and reports false, leaving v alone, when it is zero or not
// finite.
func Normalize(v []float32) bool {
	var sum float64
	for _, f := range v {
		sum += float64(f) * float64(f)
	}
	if sum == 0 || math.IsNaN(sum) || math.IsInf(sum, 0) {
		return false
	}
	n := math.Sqrt(sum)
	for i, f := range v {
		v[i] = float32(float64(f) / n)
	}
	return true
}

// Add inserts vec, normalised by the caller (see the package comment),
// under id; it keeps vec. A nil vec stands for the zero vector. Adding
// an id already present replaces its vector (the old node becomes a
// tombstone). It panics if vec has another size than the graph.
func (g *Graph) Add(id int64, vec []float32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.appendNode(id, vec)
	s := newSearcher(g)
	g.insert(i, s)
	s.release()
}

// Delete makes id a tombstone; it does nothing for an unknown id.
func (g *Graph) Delete(id int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleteLocked(id)
}

func (g *Graph) deleteLocked(id int64) {
	if i, ok := g.byID[id]; ok {
		g.deleted[i] = true
		delete(g.byID, id)
		g.ndel++
	}
}

// appendNode stores a node without linking it and returns its index.
func (g *Graph) appendNode(id int64, vec []float32) uint32 {
	if vec == nil {
		vec = make([]float32, g.dims)
	}
	if len(vec) != g.dims {
		panic(fmt.Sprintf("hnsw: vector of %d dimensions in a graph of %d", len(vec), g.dims))
	}
	if len(g.ids) >= math.MaxUint32 {
		panic("hnsw: too many nodes")
	}
	g.deleteLocked(id)
	level := g.randomLevel()
	i := uint32(len(g.ids))
	g.ids = append(g.ids, id)
	g.vecs = append(g.vecs, vec)
	g.links = append(g.links, newLinks(level, g.opts.M))
	g.deleted = append(g.deleted, false)
	g.byID[id] = i
	return i
}

// newLinks allocates the neighbour lists of a node of level, in one
// backing array: 2M on level 0, M above.
func newLinks(level, m int) [][]uint32 {
	backing := make([]uint32, 0, 2*m+level*m)
	ls := make([][]uint32, level+1)
	ls[0] = backing[0 : 0 : 2*m]
	for l := 1; l <= level; l++ {
		start := 2*m + (l-1)*m
		ls[l] = backing[start : start : start+m]
	}
	return ls
}

func (g *Graph) randomLevel() int {
	u := float64(g.rng.Uint64()>>11) / (1 << 53) // [0, 1)
	return min(int(-math.Log(1-u)*g.levelMult), maxLevel)
}

func (g *Graph) maxLinks(level int) int {
	if level == 0 {
		return 2 * g.opts.M
	}
	return g.opts.M
}

// insert links node i into the graph. When locked, node locks guard the
// neighbour lists (parallel build); otherwise the caller holds g.mu.
func (g *Graph) insert(i uint32, s *searcher) {
	level := len(g.links[i]) - 1
	vec := g.vecs[i]
	entry, top := g.entryPoint()
	if entry < 0 {
		g.setEntry(int(i), level)
		return
	}
	ep := uint32(entry)
	epScore := vek32.Dot(vec, g.vecs[ep])
	for l := top; l > level; l-- {
		ep, epScore = g.greedy(vec, ep, epScore, l, s)
	}
	for l := min(level, top); l >= 0; l-- {
		cands := s.searchLayer(vec, ep, epScore, g.opts.EfConstruction, l, nil)
		// A concurrent insertion may have linked i already.
		cands = slices.DeleteFunc(cands, func(c candidate) bool { return c.node == i })
		if len(cands) == 0 {
			continue
		}
		neighbours := g.selectNeighbours(cands, g.opts.M, g.opts.M)
		g.lock(i, s.locked)
		g.links[i][l] = append(g.links[i][l][:0], neighbours...)
		g.unlock(i, s.locked)
		for _, n := range neighbours {
			g.connect(n, i, l, s)
		}
		// Continue from the best candidate of this level.
		ep, epScore = cands[0].node, cands[0].score
	}
	if level > top {
		g.setEntry(int(i), level)
	}
}

func (g *Graph) lock(i uint32, locked bool) {
	if locked {
		g.locks[i].Lock()
	}
}

func (g *Graph) unlock(i uint32, locked bool) {
	if locked {
		g.locks[i].Unlock()
	}
}

// connect adds new to n's neighbours on level l, pruning them with the
// heuristic when the list is full.
func (g *Graph) connect(n, new uint32, l int, s *searcher) {
	g.lock(n, s.locked)
	defer g.unlock(n, s.locked)
	list := g.links[n][l]
	if slices.Contains(list, new) {
		return
	}
	if len(list) < cap(list) {
		g.links[n][l] = append(list, new)
		return
	}
	vn := g.vecs[n]
	cands := s.scratch[:0]
	cands = append(cands, candidate{new, vek32.Dot(vn, g.vecs[new])})
	for _, m := range list {
		cands = append(cands, candidate{m, vek32.Dot(vn, g.vecs[m])})
	}
	slices.SortFunc(cands, byScoreDesc)
	kept := g.selectNeighbours(cands, cap(list), g.opts.M)
	g.links[n][l] = append(list[:0], kept...)
	s.scratch = cands
}

// selectNeighbours picks up to m of cands (sorted best first) with the
// HNSW heuristic: a candidate is kept when it is closer to the base than
// to every one kept already, which spreads links in every direction.
// Then, if fewer than fill were kept, the best discarded ones fill in:
// without it, groups of identical or collinear vectors end up linked to
// one node each and can become unreachable.
func (g *Graph) selectNeighbours(cands []candidate, m, fill int) []uint32 {
	out := make([]uint32, 0, m)
	var discarded []uint32
	for _, c := range cands {
		if len(out) >= m {
			break
		}
		vc := g.vecs[c.node]
		good := true
		for _, k := range out {
			if vek32.Dot(vc, g.vecs[k]) > c.score {
				good = false
				break
			}
		}
		if good {
			out = append(out, c.node)
		} else if len(discarded) < fill {
			discarded = append(discarded, c.node)
		}
	}
	for _, d := range discarded {
		if len(out) >= min(fill, m) {
			break
		}
		out = append(out, d)
	}
	return out
}

func (g *Graph) entryPoint() (int, int) {
	g.entryMu.Lock()
	defer g.entryMu.Unlock()
	return g.entry, g.topLevel
}

// setEntry makes node i the entry point if the graph has none or i is
// higher than the current one.
func (g *Graph) setEntry(i, level int) {
	g.entryMu.Lock()
	defer g.entryMu.Unlock()
	if g.entry < 0 || level > g.topLevel {
		g.entry, g.topLevel = i, level
	}
}

// greedy walks level l from ep to the node closest to q.
func (g *Graph) greedy(q []float32, ep uint32, epScore float32, l int, s *searcher) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		var list []uint32
		if s.locked {
			g.locks[ep].Lock()
			s.links = append(s.links[:0], g.links[ep][l]...)
			g.locks[ep].Unlock()
			list = s.links
		} else {
			list = g.links[ep][l]
		}
		for _, n := range list {
			if s := vek32.Dot(q, g.vecs[n]); s > epScore {
				ep, epScore, changed = n, s, true
			}
		}
	}
	return ep, epScore
}

// Search returns up to k live nodes nearest to q, best first (ties by
// id). q need not be normalised: it is normalised on a copy, and a zero
// q finds nothing. ef <= 0 means Options.EfSearch; it is raised to k.
//
// keep, when not nil, filters nodes: the search walks through the nodes
// it rejects but returns only kept ones, and goes on until it holds ef
// kept nodes or has visited every node it can reach, so a selective
// filter still gets k results (at the cost of visiting more of the
// graph: with a very selective filter an exact scan is faster).
func (g *Graph) Search(q []float32, k, ef int, keep func(id int64) bool) []Result {
	if len(q) != g.dims {
		panic(fmt.Sprintf("hnsw: query of %d dimensions in a graph of %d", len(q), g.dims))
	}
	if k <= 0 {
		return nil
	}
	q = slices.Clone(q)
	if !Normalize(q) {
		return nil
	}
	if ef <= 0 {
		ef = g.opts.EfSearch
	}
	ef = max(ef, k)
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.entry < 0 {
		return nil
	}
	ep := uint32(g.entry)
	epScore := vek32.Dot(q, g.vecs[ep])
	s := newSearcher(g)
	defer s.release()
	for l := g.topLevel; l > 0; l-- {
		ep, epScore = g.greedy(q, ep, epScore, l, s)
	}
	accept := func(n uint32) bool {
		return !g.deleted[n] && (keep == nil || keep(g.ids[n]))
	}
	found := s.searchLayer(q, ep, epScore, ef, 0, accept)
	out := make([]Result, len(found))
	for i, c := range found {
		out[i] = Result{g.ids[c.node], c.score}
	}
	slices.SortFunc(out, func(a, b Result) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return cmpInt64(a.ID, b.ID)
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Rebind makes live node id keep vec, equal to its vector, instead of
// the slice it has, so that a caller that reloaded its vectors can share
// memory with the graph again. It reports false, changing nothing, when
// id is not live or vec differs (nil stands for the zero vector).
func (g *Graph) Rebind(id int64, vec []float32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	i, ok := g.byID[id]
	if !ok {
		return false
	}
	if vec == nil {
		return !slices.ContainsFunc(g.vecs[i], func(f float32) bool { return f != 0 })
	}
	if !slices.Equal(g.vecs[i], vec) {
		return false
	}
	g.vecs[i] = vec
	return true
}
