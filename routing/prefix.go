package routing

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"

	"github.com/guichet/guichet/upstream"
)

// Prefix affinity: requests that start alike (the same system prompt, the
// same conversation so far) go to the provider that served that start
// last, whose prefix cache (vLLM's automatic prefix caching) most likely
// still holds it, so its prefill is skipped. A request is known by the
// chained hashes of its leading blocks; the deepest block seen before
// decides. A load guard keeps one hot prefix from piling every request
// onto one replica.

// PrefixBlockBytes is the size of a prefix block: about 32 tokens.
const PrefixBlockBytes = 128

// maxPrefixBlocks bounds the blocks hashed per request (the first 32 KiB).
const maxPrefixBlocks = 256

var prefixSeed = maphash.MakeSeed()

// PrefixBlocks returns the chained hashes of text's full leading blocks:
// block i's hash covers blocks 0..i, so equal hashes mean equal prefixes.
func PrefixBlocks(text []byte) []uint64 {
	n := min(len(text)/PrefixBlockBytes, maxPrefixBlocks)
	if n == 0 {
		return nil
	}
	out := make([]uint64, n)
	var h maphash.Hash
	h.SetSeed(prefixSeed)
	for i := range out {
		h.Write(text[i*PrefixBlockBytes : (i+1)*PrefixBlockBytes])
		out[i] = h.Sum64() // Sum64 does not reset: the next block chains on
	}
	return out
}

// PrefixAffinity remembers which provider served each prefix block, in two
// generations of bounded maps (a cheap LRU: entries not seen for a whole
// generation are forgotten).
type PrefixAffinity struct {
	mu       sync.Mutex
	cur, old map[uint64]*upstream.Provider
	limit    int // entries per generation
}

// prefixEntries bounds a model's affinity table per generation (about
// 2.5 MiB per model at most).
const prefixEntries = 1 << 16

// overloadFactor is how much busier than the candidates' mean the preferred
// provider may be before a request spills to the least loaded one (1.25
// spilled a third of busy conversations in bench/fairness, for a balance
// over the run of 1.05 either way).
const overloadFactor = 1.5

func NewPrefixAffinity() *PrefixAffinity {
	return &PrefixAffinity{cur: map[uint64]*upstream.Provider{}, old: map[uint64]*upstream.Provider{}, limit: prefixEntries}
}

// Pick, without a prefix, is the least loaded candidate.
func (a *PrefixAffinity) Pick(cs []*upstream.Provider) *upstream.Provider {
	return leastLoaded(cs)
}

// PickFor picks for a request whose prompt starts with blocks, and
// remembers the choice for them.
func (a *PrefixAffinity) PickFor(cs []*upstream.Provider, blocks []uint64) *upstream.Provider {
	a.mu.Lock()
	defer a.mu.Unlock()
	var chosen *upstream.Provider
	for i := len(blocks) - 1; i >= 0 && chosen == nil; i-- {
		if p := a.lookup(blocks[i]); p != nil && containsProvider(cs, p) {
			chosen = p
		}
	}
	if chosen == nil || busier(chosen, cs) {
		chosen = leastLoaded(cs)
	}
	for _, b := range blocks {
		a.remember(b, chosen)
	}
	return chosen
}

func (a *PrefixAffinity) lookup(b uint64) *upstream.Provider {
	if p, ok := a.cur[b]; ok {
		return p
	}
	return a.old[b]
}

func (a *PrefixAffinity) remember(b uint64, p *upstream.Provider) {
	if len(a.cur) >= a.limit {
		a.old, a.cur = a.cur, make(map[uint64]*upstream.Provider, a.limit/2)
	}
	a.cur[b] = p
}

// busier: p is at its max_concurrency, or runs more than overloadFactor×
// the candidates' mean plus two (so a lightly loaded pool never spills: a
// prefix-cache miss costs more than a slightly longer queue).
func busier(p *upstream.Provider, cs []*upstream.Provider) bool {
	if p.Full() {
		return true
	}
	total := 0.0
	for _, c := range cs {
		total += load(c)
	}
	return load(p) > overloadFactor*total/float64(len(cs))+2
}

// leastLoaded is the candidate with the fewest requests in flight for its
// weight; ties go to a random one, so no provider is always first.
func leastLoaded(cs []*upstream.Provider) *upstream.Provider {
	start := rand.IntN(len(cs))
	best := cs[start]
	for i := 1; i < len(cs); i++ {
		if c := cs[(start+i)%len(cs)]; load(c) < load(best) {
			best = c
		}
	}
	return best
}
