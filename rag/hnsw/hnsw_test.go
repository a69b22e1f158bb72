package hnsw

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// clustered returns n normalised vectors around `clusters` random
// centres (Gaussian noise): real embeddings have such neighbourhoods,
// unlike uniform random vectors, on which no HNSW does well.
func clustered(seed uint64, n, dims, clusters int, noise float64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, seed+1))
	centres := make([][]float32, clusters)
	for i := range centres {
		centres[i] = make([]float32, dims)
		for j := range centres[i] {
			centres[i][j] = float32(r.NormFloat64())
		}
		Normalize(centres[i])
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[r.IntN(clusters)]
		v := make([]float32, dims)
		for j := range v {
			v[j] = c[j] + float32(r.NormFloat64()*noise)
		}
		Normalize(v)
		out[i] = v
	}
	return out
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// exact is the brute-force top k of q among vecs (ids are indexes+1).
func exact(vecs [][]float32, q []float32, k int, keep func(int64) bool) []int64 {
	type hit struct {
		id    int64
		score float32
	}
	var hits []hit
	for i, v := range vecs {
		id := int64(i + 1)
		if keep == nil || keep(id) {
			hits = append(hits, hit{id, dot(q, v)})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return int(a.id - b.id)
	})
	var out []int64
	for _, h := range hits[:min(k, len(hits))] {
		out = append(out, h.id)
	}
	return out
}

func build(t testing.TB, vecs [][]float32, workers int) *Graph {
	g := New(len(vecs[0]), Options{Seed: 7})
	ids := make([]int64, len(vecs))
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	if workers == 0 {
		for i, v := range vecs {
			g.Add(ids[i], v)
		}
	} else {
		g.AddBatch(ids, vecs, workers)
	}
	return g
}

func recall(g *Graph, vecs, queries [][]float32, k int) float64 {
	var found, total int
	for _, q := range queries {
		want := exact(vecs, q, k, nil)
		got := g.Search(q, k, 0, nil)
		for _, r := range got {
			if slices.Contains(want, r.ID) {
				found++
			}
		}
		total += len(want)
	}
	return float64(found) / float64(total)
}

func TestRecall(t *testing.T) {
	// Queries come from the same clusters as the data, as questions on
	// a corpus do.
	n := 5000
	if raceEnabled {
		n = 1500
	}
	all := clustered(1, n+200, 64, 100, 0.15)
	vecs, queries := all[:n], all[n:]
	for _, workers := range []int{0, 2} {
		g := build(t, vecs, workers)
		if g.Len() != len(vecs) {
			t.Fatalf("Len %d, want %d", g.Len(), len(vecs))
		}
		if r := recall(g, vecs, queries, 10); r < 0.95 {
			t.Errorf("workers %d: recall@10 %.3f, want >= 0.95", workers, r)
		} else {
			t.Logf("workers %d: recall@10 %.3f", workers, r)
		}
	}
}

func TestScoresAndOrder(t *testing.T) {
	vecs := clustered(3, 500, 16, 10, 0.5)
	g := build(t, vecs, 0)
	q := vecs[42]
	res := g.Search(q, 10, 0, nil)
	if len(res) != 10 || res[0].ID != 43 {
		t.Fatalf("Search of a stored vector: %v", res)
	}
	for i, r := range res {
		if d := r.Score - dot(q, vecs[r.ID-1]); d > 1e-5 || d < -1e-5 {
			t.Errorf("result %d: score %v, dot %v", i, r.Score, dot(q, vecs[r.ID-1]))
		}
		if i > 0 && r.Score > res[i-1].Score {
			t.Errorf("results not best first: %v", res)
		}
	}
	if got := g.Search(make([]float32, 16), 10, 0, nil); got != nil {
		t.Errorf("zero query: %v", got)
	}
	if got := New(16, Options{}).Search(q, 10, 0, nil); got != nil {
		t.Errorf("empty graph: %v", got)
	}
}

// TestDegenerate checks that identical and collinear vectors stay
// reachable: an exhaustive search (ef >= n) finds all of them.
func TestDegenerate(t *testing.T) {
	g := New(2, Options{Seed: 1})
	n := 200
	for i := range n {
		v := []float32{1, float32(i%50) / 100} // 4 copies of each
		Normalize(v)
		g.Add(int64(i), v)
	}
	g.Add(int64(n), nil) // zero vector
	res := g.Search([]float32{1, 0}, n+1, n+1, nil)
	if len(res) != n+1 {
		t.Fatalf("found %d of %d", len(res), n+1)
	}
	if res[n].ID != int64(n) || res[n].Score != 0 {
		t.Errorf("zero vector: %+v", res[n])
	}
}

func TestDelete(t *testing.T) {
	vecs := clustered(4, 2000, 32, 40, 0.3)
	g := build(t, vecs, 0)
	q := vecs[10]
	before := g.Search(q, 10, 0, nil)
	for _, r := range before[:5] {
		g.Delete(r.ID)
	}
	g.Delete(999_999) // unknown: nothing
	if g.Len() != len(vecs)-5 || g.Deleted() != 5 {
		t.Fatalf("Len %d Deleted %d", g.Len(), g.Deleted())
	}
	after := g.Search(q, 10, 0, nil)
	if len(after) != 10 {
		t.Fatalf("%d results after deletes", len(after))
	}
	for _, r := range after {
		if g.Has(r.ID) == false {
			t.Errorf("deleted %d returned", r.ID)
		}
	}
	if !slices.Equal(ids(after[:5]), ids(before[5:])) {
		t.Errorf("after deleting the 5 best: %v, want %v first", ids(after), ids(before[5:]))
	}
	// Re-adding a deleted id brings it back; adding an existing id
	// replaces it.
	g.Add(before[0].ID, vecs[before[0].ID-1])
	g.Add(before[1].ID, vecs[before[1].ID-1])
	g.Add(before[1].ID, vecs[before[1].ID-1])
	if got := g.Search(q, 1, 0, nil); got[0].ID != before[0].ID {
		t.Errorf("re-added: best %v, want %d", got, before[0].ID)
	}
	if g.Len() != len(vecs)-3 {
		t.Errorf("Len %d after re-adding 2, want %d", g.Len(), len(vecs)-3)
	}
}

func ids(rs []Result) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// TestFilter checks that a selective filter still gets k results, the
// best among the kept nodes.
func TestFilter(t *testing.T) {
	all := clustered(5, 3020, 32, 30, 0.2)
	vecs, queries := all[:3000], all[3000:]
	g := build(t, vecs, 0)
	for _, every := range []int64{2, 50, 1000} {
		keep := func(id int64) bool { return id%every == 0 }
		var found, total int
		for _, q := range queries {
			res := g.Search(q, 10, 20, keep)
			want := exact(vecs, q, 10, keep)
			if len(res) != len(want) {
				t.Fatalf("keep 1/%d: %d results, want %d", every, len(res), len(want))
			}
			for _, r := range res {
				if !keep(r.ID) {
					t.Fatalf("keep 1/%d: %d returned", every, r.ID)
				}
				if slices.Contains(want, r.ID) {
					found++
				}
			}
			total += len(want)
		}
		if r := float64(found) / float64(total); r < 0.9 {
			t.Errorf("keep 1/%d: recall %.3f", every, r)
		}
	}
	if res := g.Search(vecs[0], 10, 0, func(int64) bool { return false }); len(res) != 0 {
		t.Errorf("nothing kept: %v", res)
	}
}

func TestPersistRoundTrip(t *testing.T) {
	vecs := clustered(7, 300, 24, 20, 0.3)
	g := build(t, vecs, 0)
	g.Delete(3)
	var buf bytes.Buffer
	n, err := g.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d, %v (buffer %d)", n, err, buf.Len())
	}
	data := slices.Clone(buf.Bytes())
	h, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() != g.Len() || h.Deleted() != 1 || h.Has(3) || h.Options() != g.Options() {
		t.Fatalf("read back: Len %d Deleted %d Options %+v", h.Len(), h.Deleted(), h.Options())
	}
	for _, q := range vecs[:20] {
		if a, b := g.Search(q, 10, 0, nil), h.Search(q, 10, 0, nil); !slices.Equal(a, b) {
			t.Fatalf("search differs after a round trip: %v vs %v", a, b)
		}
	}
	// The level generator goes on where it was: adding the same vector
	// to both gives the same file.
	extra := clustered(8, 1, 24, 1, 0.3)[0]
	g.Add(5000, extra)
	h.Add(5000, extra)
	var a, b bytes.Buffer
	g.WriteTo(&a)
	h.WriteTo(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("graphs differ after the same Add")
	}
	// Every truncation and every flipped byte is an error.
	cuts := []int{0, 7, 8, 50, len(data) - 4, len(data) - 1}
	for range 100 {
		cuts = append(cuts, rand.IntN(len(data)))
	}
	for _, cut := range cuts {
		if _, err := Read(bytes.NewReader(data[:cut])); !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated at %d of %d: %v", cut, len(data), err)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		bad := slices.Clone(data)
		bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
		if _, err := Read(bytes.NewReader(bad)); err == nil {
			t.Fatal("corrupt file read without error")
		}
	}
}

func TestEmptyRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if _, err := New(8, Options{}).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	g, err := Read(&buf)
	if err != nil || g.Len() != 0 || g.Dims() != 8 {
		t.Fatalf("%v, %v", g, err)
	}
	g.Add(1, []float32{1, 0, 0, 0, 0, 0, 0, 0})
	if res := g.Search([]float32{1, 0, 0, 0, 0, 0, 0, 0}, 1, 0, nil); len(res) != 1 {
		t.Errorf("after Add to a read empty graph: %v", res)
	}
}

// TestConcurrent runs searches while one writer adds and deletes; run
// with -race.
func TestConcurrent(t *testing.T) {
	vecs := clustered(9, 1500, 16, 15, 0.3)
	g := build(t, vecs[:1000], 0)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				q := vecs[(w*100+i)%len(vecs)]
				if res := g.Search(q, 5, 0, func(id int64) bool { return id%2 == 0 }); len(res) == 0 {
					t.Error("no result")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 1000; i < 1500; i++ {
			g.Add(int64(i+1), vecs[i])
			if i%10 == 0 {
				g.Delete(int64(i - 500))
			}
		}
	})
	wg.Wait()
	if g.Len() != 1500-50 {
		t.Errorf("Len %d, want %d", g.Len(), 1450)
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	g := New(4, Options{M: 4, Seed: 1})
	for i, v := range clustered(10, 30, 4, 3, 0.3) {
		g.Add(int64(i), v)
	}
	g.Delete(5)
	g.WriteTo(&buf)
	f.Add(buf.Bytes())
	buf.Reset()
	New(2, Options{}).WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		// A graph that reads must be usable.
		q := make([]float32, g.Dims())
		q[0] = 1
		g.Search(q, 3, 0, nil)
		g.Add(1<<40, q)
		var out bytes.Buffer
		if _, err := g.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
	})
}
