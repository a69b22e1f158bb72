// Package routing picks the provider that serves a request: small,
// swappable selection strategies, and the attempt loop that retries on
// another provider, then on the model's fallbacks, before the first byte.
package routing

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/upstream"
)

// Strategy picks one provider among candidates (never empty): the healthy
// providers with free capacity not tried yet for this request.
type Strategy interface {
	Pick(candidates []*upstream.Provider) *upstream.Provider
}

// NewStrategy returns the strategy of a given name (validated by config).
func NewStrategy(name string) Strategy {
	switch name {
	case config.StrategyRoundRobin:
		return &RoundRobin{}
	case config.StrategyLeastInflight:
		return LeastInflight{}
	case config.StrategyPrefixAffinity:
		return NewPrefixAffinity()
	default:
		return Shuffle{}
	}
}

// Shuffle picks at random, in proportion to the providers' weights.
type Shuffle struct{}

func (Shuffle) Pick(cs []*upstream.Provider) *upstream.Provider {
	return weighted(cs)
}

func weighted(cs []*upstream.Provider) *upstream.Provider {
	if len(cs) == 1 {
		return cs[0]
	}
	total := 0.0
	for _, p := range cs {
		total += p.Weight
	}
	if total <= 0 {
		return cs[rand.IntN(len(cs))]
	}
	x := rand.Float64() * total
	for _, p := range cs {
		x -= p.Weight
		if x < 0 {
			return p
		}
	}
	return cs[len(cs)-1]
}

// RoundRobin takes the candidates in turn.
type RoundRobin struct{ next atomic.Uint64 }

func (r *RoundRobin) Pick(cs []*upstream.Provider) *upstream.Provider {
	return cs[(r.next.Add(1)-1)%uint64(len(cs))]
}

// LeastInflight draws two candidates by weight and keeps the one with fewer
// requests in flight relative to its weight (power of two choices): close
// to the least loaded, without herding every request onto one provider.
type LeastInflight struct{}

func (LeastInflight) Pick(cs []*upstream.Provider) *upstream.Provider {
	a := weighted(cs)
	if len(cs) == 1 {
		return a
	}
	b := weighted(cs)
	for tries := 0; b == a && tries < 4; tries++ {
		b = weighted(cs)
	}
	if load(b) < load(a) {
		return b
	}
	return a
}

func load(p *upstream.Provider) float64 {
	w := p.Weight
	if w <= 0 {
		w = 1e-9
	}
	return float64(p.Inflight()+1) / w
}
