package routing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/guichet/guichet/upstream"
)

func TestPrefixBlocksChain(t *testing.T) {
	a := PrefixBlocks([]byte(strings.Repeat("a", 300) + "first question"))
	b := PrefixBlocks([]byte(strings.Repeat("a", 300) + "second question, longer, so that it makes one block more" + strings.Repeat("b", 100)))
	if len(a) != 2 || len(b) != 3 || a[0] != b[0] || a[1] != b[1] {
		t.Fatalf("shared 256-byte prefix: %x vs %x", a, b)
	}
	c := PrefixBlocks([]byte("x" + strings.Repeat("a", 299)))
	if c[0] == a[0] || c[1] == a[1] {
		t.Fatal("a prefix that differs in its first byte shares a block hash")
	}
	if PrefixBlocks([]byte("short")) != nil {
		t.Fatal("a prompt shorter than a block has blocks")
	}
	if n := len(PrefixBlocks(make([]byte, 1<<20))); n != maxPrefixBlocks {
		t.Fatalf("%d blocks for 1 MiB", n)
	}
}

// A conversation stays on its provider turn after turn; new
// conversations go to the least loaded.
func TestConversationsStickAndSpread(t *testing.T) {
	ps := providers(1, 1, 1, 1)
	a := NewPrefixAffinity()
	home := map[int]*upstream.Provider{}
	for turn := 0; turn < 5; turn++ {
		for conv := 0; conv < 8; conv++ {
			history := fmt.Sprintf("conversation %d: %s", conv, strings.Repeat("said before. ", 20*(turn+1)))
			p := a.PickFor(ps, PrefixBlocks([]byte(history)))
			if turn == 0 {
				home[conv] = p
				p.Acquire() // conversations stay open: the next ones go elsewhere
			} else if p != home[conv] {
				t.Fatalf("turn %d of conversation %d moved from %s to %s", turn, conv, home[conv].ID, p.ID)
			}
		}
	}
	per := map[*upstream.Provider]int{}
	for _, p := range home {
		per[p]++
	}
	for _, p := range ps {
		if per[p] != 2 {
			t.Fatalf("8 conversations over 4 providers: %v", per)
		}
	}
}

// A hot shared prefix (one system prompt for everyone) does not pile all
// requests on one provider: the load guard spills to the least loaded.
func TestLoadGuardSpills(t *testing.T) {
	ps := providers(1, 1, 1, 1)
	a := NewPrefixAffinity()
	system := []byte(strings.Repeat("You are the helpful assistant of a public service. ", 10))
	for i := 0; i < 40; i++ {
		a.PickFor(ps, PrefixBlocks(system)).Acquire()
	}
	total, most := int64(0), int64(0)
	for _, p := range ps {
		total += p.Inflight()
		most = max(most, p.Inflight())
	}
	if mean := float64(total) / 4; float64(most) > overloadFactor*mean+2 {
		t.Fatalf("the busiest runs %d, the mean is %.1f", most, mean)
	}
}

func TestAffinityMemoryIsBounded(t *testing.T) {
	ps := providers(1, 1)
	a := NewPrefixAffinity()
	a.limit = 1000
	for i := 0; i < 10000; i++ {
		a.PickFor(ps, []uint64{uint64(i)})
	}
	if n := len(a.cur) + len(a.old); n > 2*a.limit {
		t.Fatalf("%d entries for a limit of %d per generation", n, a.limit)
	}
	if a.lookup(9999) == nil || a.lookup(1) != nil {
		t.Fatal("recent prefixes are forgotten, or old ones kept")
	}
}
