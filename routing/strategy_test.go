package routing

import (
	"fmt"
	"math"
	"testing"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/upstream"
)

func providers(weights ...float64) []*upstream.Provider {
	var out []*upstream.Provider
	for i, w := range weights {
		w := w
		pc := &config.Provider{Type: "vllm", URL: fmt.Sprintf("http://p%d:1", i), ModelName: "m", Weight: &w}
		out = append(out, upstream.New(fmt.Sprintf("m#%d", i), guichet.TextGeneration, pc))
	}
	return out
}

func counts(s Strategy, ps []*upstream.Provider, n int) map[*upstream.Provider]int {
	c := map[*upstream.Provider]int{}
	for i := 0; i < n; i++ {
		c[s.Pick(ps)]++
	}
	return c
}

func TestShuffleFollowsWeights(t *testing.T) {
	ps := providers(1, 3, 0)
	const n = 40000
	c := counts(Shuffle{}, ps, n)
	if share := float64(c[ps[1]]) / n; math.Abs(share-0.75) > 0.02 {
		t.Errorf("weight 3 of 4 got %.3f of the traffic", share)
	}
	if c[ps[2]] != 0 {
		t.Errorf("a provider of weight 0 got %d requests", c[ps[2]])
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	ps := providers(1, 1, 1)
	rr := &RoundRobin{}
	for i := 0; i < 9; i++ {
		if got := rr.Pick(ps); got != ps[i%3] {
			t.Fatalf("pick %d went to %s", i, got.ID)
		}
	}
}

func TestLeastInflightAvoidsTheBusyProvider(t *testing.T) {
	ps := providers(1, 1, 1, 1)
	for i := 0; i < 10; i++ {
		ps[0].Acquire() // ps[0] is busy
	}
	c := counts(LeastInflight{}, ps, 20000)
	// With two random choices, the busy provider only wins when drawn twice,
	// which the strategy avoids: it should get (almost) nothing.
	if c[ps[0]] > 200 {
		t.Errorf("busy provider got %d of 20000", c[ps[0]])
	}
	for _, p := range ps[1:] {
		if share := float64(c[p]) / 20000; math.Abs(share-1.0/3) > 0.03 {
			t.Errorf("%s got %.3f, want about 1/3", p.ID, share)
		}
	}
}

func TestMaxConcurrencyIsAHardCap(t *testing.T) {
	ps := providers(1)
	ps[0].MaxConcurrency = 2
	if !ps[0].Acquire() || !ps[0].Acquire() {
		t.Fatal("could not take 2 slots")
	}
	if ps[0].Acquire() {
		t.Fatal("took a third slot over max_concurrency 2")
	}
	ps[0].Release()
	if !ps[0].Acquire() {
		t.Fatal("slot not given back")
	}
}
