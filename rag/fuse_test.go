package rag

import (
	"math"
	"testing"

	"github.com/guichet/guichet"
)

func hits(ids ...int64) []guichet.SearchHit {
	var out []guichet.SearchHit
	for _, id := range ids {
		out = append(out, guichet.SearchHit{Chunk: guichet.Chunk{ID: id}})
	}
	return out
}

func TestFuseByReciprocalRank(t *testing.T) {
	lexical := hits(7, 3, 9)
	semantic := hits(3, 5, 7)
	got := Fuse(60, 10, lexical, semantic)
	// 3: 1/62 + 1/61; 7: 1/61 + 1/63; 5: 1/62; 9: 1/63.
	want := []struct {
		id    int64
		score float64
	}{{3, 1.0/62 + 1.0/61}, {7, 1.0/61 + 1.0/63}, {5, 1.0 / 62}, {9, 1.0 / 63}}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Chunk.ID != w.id || math.Abs(got[i].Score-w.score) > 1e-12 || got[i].Method != guichet.Hybrid {
			t.Errorf("#%d: chunk %d score %v (%s), want chunk %d score %v", i, got[i].Chunk.ID, got[i].Score, got[i].Method, w.id, w.score)
		}
	}
	if got := Fuse(60, 2, lexical, semantic); len(got) != 2 || got[1].Chunk.ID != 7 {
		t.Errorf("limit 2: %+v", got)
	}
	// k = 0 is allowed (OpenGateLLM's rff_k range starts at 0); ties go
	// to the smaller ID.
	if got := Fuse(0, 10, hits(4), hits(2)); got[0].Chunk.ID != 2 || got[0].Score != 1 {
		t.Errorf("k=0 tie: %+v", got)
	}
	if got := Fuse(60, 10); len(got) != 0 {
		t.Errorf("no lists: %+v", got)
	}
}
