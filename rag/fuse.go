package rag

import (
	"sort"

	"github.com/guichet/guichet"
)

// DefaultRRFK is reciprocal rank fusion's k (OpenGateLLM 0.4's rff_k).
const DefaultRRFK = 60

// Fuse merges ranked result lists by reciprocal rank fusion: each chunk
// scores Σ 1/(k + rank) over the lists it appears in (rank from 1), and
// the best limit come back with method hybrid. Chunks are matched by ID,
// which is unique across documents and collections (OpenGateLLM matched
// per-document chunk numbers, so different chunks collided).
//
// k must be at least 0 (the API checks rff_k); limit < 0 keeps them all.
func Fuse(k, limit int, lists ...[]guichet.SearchHit) []guichet.SearchHit {
	scores := map[int64]float64{}
	chunks := map[int64]guichet.Chunk{}
	for _, list := range lists {
		for rank, hit := range list {
			scores[hit.Chunk.ID] += 1 / float64(k+rank+1)
			if _, ok := chunks[hit.Chunk.ID]; !ok {
				chunks[hit.Chunk.ID] = hit.Chunk
			}
		}
	}
	out := make([]guichet.SearchHit, 0, len(scores))
	for id, score := range scores {
		out = append(out, guichet.SearchHit{Chunk: chunks[id], Score: score, Method: guichet.Hybrid})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Chunk.ID < out[j].Chunk.ID
	})
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
