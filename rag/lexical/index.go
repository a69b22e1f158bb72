// Package lexical is an in-memory inverted index searched by BM25 with
// top-k pruning (MaxScore), scoring exactly as SQLite FTS5's bm25() does
// over the same documents: same tokenizer (Tokens), same formula, same
// floating-point operations in the same order, so that a collection
// searched here ranks as it would through FTS5, in a few milliseconds
// rather than the hundreds FTS5 takes to score every matching row.
//
// An Index is built once (Builder) and never modified: searches run
// concurrently without locks; a changed collection is a new Index.
//
// Memory: a posting is 5 bytes (an int32 document position and a uint8
// term frequency; frequencies from 255 up go to a map), a document 2
// bytes (its length in tokens, uint16; longer ones in a map), plus the
// term dictionary.
package lexical

import (
	"math"
	"slices"
	"unsafe"

	"modernc.org/libc"
)

// BM25's parameters, FTS5's. Variables, not constants: k1+1 must be
// computed in float64 at run time as SQLite's C does, not exactly by the
// compiler, for the scores to be the same to the last bit.
var k1, b = 1.2, 0.75

// Builder accumulates documents for an Index. Not safe for concurrent use.
type Builder struct {
	terms   map[string]int32
	docs    [][]int32 // postings by term: document positions
	tfs     [][]uint8
	bigTF   map[[2]int32]uint32 // {term, doc}: frequencies >= 255
	docLen  []uint16
	longLen map[int32]uint32 // lengths >= 0xFFFF
	tokens  int64
	count   []uint32 // scratch: frequency of each term in the document
	seen    []int32  // scratch: the terms of the document
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{terms: map[string]int32{}, bigTF: map[[2]int32]uint32{}, longLen: map[int32]uint32{}}
}

// Add indexes a document's text; documents are numbered from 0 in the
// order they are added (Hit.Doc).
func (bd *Builder) Add(text string) int32 {
	doc := int32(len(bd.docLen))
	n := 0
	Tokens(text, func(tok []byte) {
		n++
		t, ok := bd.terms[string(tok)]
		if !ok {
			t = int32(len(bd.docs))
			bd.terms[string(tok)] = t
			bd.docs = append(bd.docs, nil)
			bd.tfs = append(bd.tfs, nil)
			bd.count = append(bd.count, 0)
		}
		if bd.count[t] == 0 {
			bd.seen = append(bd.seen, t)
		}
		bd.count[t]++
	})
	for _, t := range bd.seen {
		c := bd.count[t]
		bd.count[t] = 0
		bd.docs[t] = append(bd.docs[t], doc)
		if c >= 255 {
			bd.bigTF[[2]int32{t, doc}] = c
			c = 255
		}
		bd.tfs[t] = append(bd.tfs[t], uint8(c))
	}
	bd.seen = bd.seen[:0]
	if n >= 0xFFFF {
		bd.longLen[doc] = uint32(n)
		bd.docLen = append(bd.docLen, 0xFFFF)
	} else {
		bd.docLen = append(bd.docLen, uint16(n))
	}
	bd.tokens += int64(n)
	return doc
}

// Len is the number of documents added.
func (bd *Builder) Len() int { return len(bd.docLen) }

// Build returns the Index of the documents added; the Builder must not
// be used afterwards.
func (bd *Builder) Build() *Index {
	x := &Index{
		terms:   bd.terms,
		offs:    make([]int, len(bd.docs)+1),
		docLen:  slices.Clip(bd.docLen),
		longLen: bd.longLen,
		tokens:  bd.tokens,
		maxFrac: make([]float64, len(bd.docs)),
		bigTF:   map[int]uint32{},
	}
	total := 0
	for t, d := range bd.docs {
		x.offs[t] = total
		total += len(d)
	}
	x.offs[len(bd.docs)] = total
	// One array for all postings: no slice header nor spare capacity per
	// term.
	x.docs = make([]int32, 0, total)
	x.tfs = make([]uint8, 0, total)
	for t := range bd.docs {
		x.docs = append(x.docs, bd.docs[t]...)
		x.tfs = append(x.tfs, bd.tfs[t]...)
		bd.docs[t], bd.tfs[t] = nil, nil
	}
	for k, f := range bd.bigTF {
		t, doc := k[0], k[1]
		lo, hi := x.offs[t], x.offs[t+1]
		i, _ := slices.BinarySearch(x.docs[lo:hi], doc)
		x.bigTF[lo+i] = f
	}
	if n := len(x.docLen); n > 0 {
		x.avgdl = float64(x.tokens) / float64(n)
	}
	maxLen := 0
	for _, l := range x.docLen {
		maxLen = max(maxLen, int(l))
	}
	x.norm = make([]float64, maxLen+1)
	for l := range x.norm {
		x.norm[l] = k1 * (1 - b + b*float64(l)/x.avgdl)
	}
	for t := range x.maxFrac {
		m := 0.0
		for i := x.offs[t]; i < x.offs[t+1]; i++ {
			m = max(m, x.frac(i, x.docs[i]))
		}
		x.maxFrac[t] = m
	}
	return x
}

// Index is an immutable inverted index; see the package comment.
type Index struct {
	terms   map[string]int32
	offs    []int   // postings of term t: docs[offs[t]:offs[t+1]]
	docs    []int32 // document positions, ascending within a term
	tfs     []uint8 // term frequencies, 255 for bigTF's
	bigTF   map[int]uint32
	maxFrac []float64 // per term, the largest frac of its postings
	docLen  []uint16  // tokens, 0xFFFF for longLen's
	longLen map[int32]uint32
	norm    []float64 // k1*(1-b+b*len/avgdl) by length
	tokens  int64
	avgdl   float64
}

// Len is the number of documents.
func (x *Index) Len() int { return len(x.docLen) }

// Terms is the number of distinct terms.
func (x *Index) Terms() int { return len(x.maxFrac) }

// Bytes estimates the memory the index holds.
func (x *Index) Bytes() int {
	n := 4*len(x.docs) + len(x.tfs) + 2*len(x.docLen) + 8*len(x.norm) + 16*len(x.offs)
	for t := range x.terms {
		n += len(t) + int(unsafe.Sizeof(t)) + 4 + 8 // key, value, map overhead (about)
	}
	return n + 24*(len(x.bigTF)+len(x.longLen))
}

// frac is BM25's f*(k1+1)/(f+k1*(1-b+b*D/avgdl)) for posting i of
// document doc, computed as FTS5 does.
func (x *Index) frac(i int, doc int32) float64 {
	f := float64(x.tfs[i])
	if f == 255 {
		if big, ok := x.bigTF[i]; ok {
			f = float64(big)
		}
	}
	var norm float64
	if l := x.docLen[doc]; l != 0xFFFF {
		norm = x.norm[l]
	} else {
		norm = k1 * (1 - b + b*float64(x.longLen[doc])/x.avgdl)
	}
	return f * (k1 + 1) / (f + norm)
}

// idf is FTS5's: log((N - n + 0.5) / (n + 0.5)) for a term in n of the N
// documents, 1e-6 when that is not positive. The log is the one SQLite's
// bm25() calls in this build, modernc.org/libc's (musl's), which differs
// from math.Log in the last bit for about one argument in ten: with it,
// scores are FTS5's to the bit, and ties break the same way.
func idf(N, n int) float64 {
	v := libc.Xlog(nil, (float64(N-n)+0.5)/(float64(n)+0.5))
	if v <= 0 {
		return 1e-6
	}
	return v
}

// Hit is a document found by Search: its position and BM25 score.
type Hit struct {
	Doc   int32
	Score float64
}

// slack inflates upper bounds so that no rounding in their sums prunes a
// document that ties with the k-th.
const slack = 1 + 1e-9

type cursor struct {
	lo, hi, pos int // postings lo..hi, the next one at pos
	idf, ub     float64
	word        int // index in the query
}

// Search returns the k documents keep accepts (nil: all) with the best
// BM25 scores for words, best first, ties by position ascending. A
// document scores the sum, in the order of words, of idf×frac of each
// word it holds, exactly as FTS5's bm25() for the query "w1" OR "w2"...
// over the same documents. Words are QueryWords's output: each must be
// one token once folded; ok is false otherwise (a word such as "l'été"
// would be an FTS5 phrase, which this index does not search).
//
// keep is called only for documents that would enter the top k, in
// position order: a selective filter keeps the scan going until k
// documents pass.
func (x *Index) Search(words []string, k int, keep func(doc int32) bool) (hits []Hit, ok bool) {
	if k <= 0 {
		return nil, true
	}
	var cs []cursor
	for i, w := range words {
		var tok string
		n := 0
		Tokens(w, func(t []byte) {
			n++
			tok = string(t)
		})
		if n != 1 {
			return nil, false
		}
		t, found := x.terms[tok]
		if !found {
			continue // scores nothing: FTS5 adds idf×0
		}
		lo, hi := x.offs[t], x.offs[t+1]
		v := idf(x.Len(), hi-lo)
		cs = append(cs, cursor{lo: lo, hi: hi, pos: lo, idf: v, ub: v * x.maxFrac[t] * slack, word: i})
	}
	if len(cs) == 0 {
		return nil, true
	}
	// MaxScore: cursors by upper bound ascending; those below p are
	// non-essential, their bounds summing (prefix) to at most theta, the
	// k-th score: a document holding none of the essential terms cannot
	// enter the top, so only the essential postings are walked, the
	// others probed for their documents.
	slices.SortFunc(cs, func(a, b cursor) int {
		if a.ub != b.ub {
			if a.ub < b.ub {
				return -1
			}
			return 1
		}
		return a.word - b.word
	})
	prefix := make([]float64, len(cs))
	sum := 0.0
	for i, c := range cs {
		sum += c.ub
		prefix[i] = sum * slack
	}
	contrib := make([]float64, len(words))
	top := make([]Hit, 0, min(k, 1024))
	theta := math.Inf(-1)
	p := 0
	docs := x.docs
	for {
		d := int32(math.MaxInt32)
		for i := p; i < len(cs); i++ {
			if c := &cs[i]; c.pos < c.hi && docs[c.pos] < d {
				d = docs[c.pos]
			}
		}
		if d == math.MaxInt32 {
			break
		}
		partial := 0.0
		for i := p; i < len(cs); i++ {
			if c := &cs[i]; c.pos < c.hi && docs[c.pos] == d {
				v := c.idf * x.frac(c.pos, d)
				contrib[c.word] = v
				partial += v
				c.pos++
			}
		}
		pruned := false
		for i := p - 1; i >= 0; i-- {
			if partial+prefix[i] <= theta {
				pruned = true
				break
			}
			c := &cs[i]
			c.pos = seek(docs, c.pos, c.hi, d)
			if c.pos < c.hi && docs[c.pos] == d {
				v := c.idf * x.frac(c.pos, d)
				contrib[c.word] = v
				partial += v
			}
		}
		if !pruned {
			// The score FTS5 computes: the words' terms summed in query order.
			score := 0.0
			for _, v := range contrib {
				score += v
			}
			if (len(top) < k || score > theta) && (keep == nil || keep(d)) {
				top = insert(top, Hit{d, score}, k)
				if len(top) == k {
					theta = top[k-1].Score
					for p < len(cs) && prefix[p] <= theta {
						p++
					}
				}
			}
		}
		clear(contrib)
	}
	return top, true
}

// insert adds h to top, sorted by score descending then position
// ascending, keeping at most k; h comes after every document of top of
// the same score (positions are visited in order).
func insert(top []Hit, h Hit, k int) []Hit {
	i, _ := slices.BinarySearchFunc(top, h, func(e, h Hit) int {
		if e.Score >= h.Score {
			return -1
		}
		return 1
	})
	if len(top) == k {
		if i == k {
			return top
		}
		top = top[:k-1]
	}
	return slices.Insert(top, i, h)
}

// seek returns the first posting in pos..hi at or after document d.
func seek(docs []int32, pos, hi int, d int32) int {
	if pos >= hi || docs[pos] >= d {
		return pos
	}
	// Gallop, then binary search: docs[lo] < d.
	lo, step := pos, 1
	for lo+step < hi && docs[lo+step] < d {
		lo += step
		step *= 2
	}
	end := min(lo+step, hi)
	i, _ := slices.BinarySearch(docs[lo+1:end], d)
	return lo + 1 + i
}
