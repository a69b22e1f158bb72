package chunk

import (
	"fmt"
	"slices"
	"sort"
	"unicode"
	"unicode/utf8"

	"github.com/guichet/guichet/tokens"
)

// Boundary levels: 0 is the end of the text, 1..len(seps) the separators
// in order, len(seps)+1 a hard cut. Lower is stronger.
const levelEnd = 0

// state is one document being split. The text is first decomposed into
// atoms, LangChain's way: split at the first separator found, keep the
// pieces that fit in Size, split the others again with the next
// separators, and cut hard what no separator splits. Each atom is
// measured once. Chunks are then cut at atom boundaries.
type state struct {
	*Splitter
	doc  string
	seps []separator
	hard uint8
	bufs [][]int // cut positions, one buffer per level (the recursion only goes down)

	ends  []int32 // atom i is doc[ends[i-1]:ends[i]]
	ms    []int32 // its measure (untrimmed)
	lvs   []uint8 // level of the boundary at its end
	total int64

	cb, cr int // rune cursor: byte cb is rune cr

	runFrom, runTo int // atoms of the last run of hard cuts found (runEnd)
}

// span is a chunk before pages and headings: bytes [sb, eb), runes
// [sr, er), measure m (of the trimmed text).
type span struct {
	sb, eb, sr, er int
	m              int64
}

// Split splits the pages. It fails only for a text of more than
// MaxDocument bytes.
func (s *Splitter) Split(pages []Page) ([]Chunk, error) {
	doc, ranges := join(pages)
	if len(doc) > MaxDocument {
		return nil, fmt.Errorf("chunk: the document's text is %d bytes long; at most %d are allowed", len(doc), MaxDocument)
	}
	st := &state{Splitter: s, doc: doc, runFrom: 1, runTo: 0}
	if st.skipWS(0) == len(doc) {
		return nil, nil
	}
	var md *markdown
	if s.markdown {
		md = scanMarkdown(doc)
	}
	if s.structural {
		st.seps = append(st.seps,
			separator{pre: true, pos: md.headCuts},
			separator{pre: true, pos: md.fence},
			separator{pre: true, pos: md.rules})
	}
	st.seps = append(st.seps, s.seps...)
	st.hard = uint8(len(st.seps) + 1)
	st.bufs = make([][]int, len(st.seps))

	st.decompose()
	spans := st.mergeShort(st.cut())
	if len(spans) == 0 {
		return nil, nil
	}

	chunks := make([]Chunk, len(spans))
	hi := 0
	for i, sp := range spans {
		c := Chunk{Index: i, Text: doc[sp.sb:sp.eb], Start: sp.sr, End: sp.er}
		if len(pages) > 0 {
			c.Page = pages[pageAt(ranges, sp.sb)].Number
			c.PageEnd = pages[pageAt(ranges, sp.eb-1)].Number
		}
		if md != nil {
			c.Headings = md.pathAt(sp.sb, &hi)
		}
		chunks[i] = c
	}
	return chunks, nil
}

// pageAt is the index of the page holding byte x (never a separator byte:
// chunks neither begin nor end with whitespace).
func pageAt(ranges [][2]int, x int) int {
	return max(0, sort.Search(len(ranges), func(i int) bool { return ranges[i][0] > x })-1)
}

func (st *state) measure(a, b int) int64 {
	if b <= a {
		return 0
	}
	if st.tokens {
		return tokens.Text(st.doc[a:b])
	}
	return int64(utf8.RuneCountInString(st.doc[a:b]))
}

// fits measures doc[a:b] and tells whether it fits in Size; in
// characters, without counting when it has more than 4 bytes a rune.
func (st *state) fits(a, b int) (int64, bool) {
	if !st.tokens && b-a > 4*st.size {
		return 0, false
	}
	m := st.measure(a, b)
	return m, m <= int64(st.size)
}

func (st *state) addAtom(end int, lv uint8, m int64) {
	st.ends = append(st.ends, int32(end))
	st.ms = append(st.ms, int32(m))
	st.lvs = append(st.lvs, lv)
	st.total += m
}

func (st *state) decompose() {
	n := len(st.doc)
	if m, ok := st.fits(0, n); ok {
		st.addAtom(n, levelEnd, m)
		return
	}
	st.split(0, n, 0, levelEnd)
}

// split decomposes doc[lo:hi], which exceeds Size, with the separators
// from level lvl on; endLv is the level of the boundary at hi.
func (st *state) split(lo, hi, lvl int, endLv uint8) {
	for ; lvl < len(st.seps); lvl++ {
		st.bufs[lvl] = st.seps[lvl].cuts(st.doc, lo, hi, st.bufs[lvl][:0])
		cuts := st.bufs[lvl]
		if len(cuts) == 0 {
			continue
		}
		prev := lo
		for i := 0; i <= len(cuts); i++ {
			c, lv := hi, endLv
			if i < len(cuts) {
				c, lv = cuts[i], uint8(lvl+1)
			}
			if m, ok := st.fits(prev, c); ok {
				st.addAtom(c, lv, m)
			} else {
				st.split(prev, c, lvl+1, lv)
			}
			prev = c
		}
		return
	}
	for lo < hi {
		x, m := st.fit(lo, hi, st.size, false)
		if x <= lo { // cannot happen: one rune always fits (Size >= MinTokenSize in tokens)
			x = lo + max(1, utf8RuneLen(st.doc[lo:]))
			m = st.measure(lo, x)
		}
		lv := st.hard
		if x == hi {
			lv = endLv
		}
		st.addAtom(x, lv, m)
		lo = x
	}
}

func utf8RuneLen(s string) int {
	_, w := utf8.DecodeRuneInString(s)
	return w
}

// cut makes the chunks from the atoms.
func (st *state) cut() []span {
	doc, n, size := st.doc, len(st.doc), int64(st.size)
	var out []span
	b := 0          // where the new content of the next chunk starts (the previous cut)
	prevE := 0      // the previous chunk's end
	om := int64(-1) // the overlap's measure, when known (tokens)
	ai := 0         // first atom ending after b
	cum := int64(0) // measure of the atoms before ai
	p := st.skipWS(0)
	for st.skipWS(b) < n {
		for int(st.ends[ai]) <= b {
			cum += int64(st.ms[ai])
			ai++
		}
		// The first piece runs from the chunk's start to the first atom
		// boundary after the new text. It is measured afresh, except in
		// tokens when it is an atom after whitespace, or the overlap, the
		// whitespace and an atom: then the counts are summed, and the
		// chunk's count checks the sum.
		var (
			first    int
			cumFirst int64
			nb       int
			m0       int64
		)
		bq := st.skipWS(b) // the chunk must hold new text: it ends after bq
		locate := func() {
			first, cumFirst = ai, cum
			for q := max(p, bq); int(st.ends[first]) <= q; {
				cumFirst += int64(st.ms[first])
				first++
			}
			nb = int(st.ends[first])
			atomStart := 0
			if first > 0 {
				atomStart = int(st.ends[first-1])
			}
			switch {
			case st.tokens && p >= b && atomStart >= b:
				m0 = int64(st.ms[first])
			case st.tokens && p < b && atomStart >= b && om >= 0:
				m0 = om + st.measure(prevE, atomStart) + int64(st.ms[first])
			default:
				m0 = st.measure(p, nb)
			}
		}
		locate()
		if m0 > size && p < b && st.lvs[first] != st.hard { // the overlap leaves no room: drop it
			p = bq
			continue
		}

		var e, next int // chunk end (trimmed), next cut
		m := int64(-1)
		hardEnd := true
		hardHi := -1 // cut hard inside [p, hardHi)
		switch {
		case m0 > size:
			// The overlap runs into text without separators: cut hard from
			// the overlap's start, across the run of hard-cut atoms. (Or,
			// in tokens only, the first piece exceeds once trimmed.)
			hardHi = st.runEnd(first)
		default:
			j := st.choose(first, cumFirst, m0, len(st.ends)-1)
			if st.lvs[j] == st.hard {
				// No separator in the window: the furthest hard cut is at
				// its limit, wherever the decomposition cut.
				hardHi = st.runEnd(j)
				break
			}
			if st.tokens {
				if m = tokens.Text(doc[p:st.trimEnd(p, int(st.ends[j]))]); m > size {
					j, m = st.shrink(p, first, cumFirst, m0, j)
				}
			}
			switch {
			case j >= 0:
				e, next, hardEnd = st.trimEnd(p, int(st.ends[j])), int(st.ends[j]), st.lvs[j] == st.hard
			case p < b:
				p = bq
				continue
			default:
				hardHi = st.runEnd(first)
			}
		}
		if hardHi >= 0 {
			x, xm := st.fit(p, hardHi, st.size, true)
			if x <= bq {
				if p < b {
					p = bq
					continue
				}
				x = bq + utf8RuneLen(doc[bq:]) // cannot happen: one rune always fits
				xm = st.measure(p, x)
			}
			e, next, m, hardEnd = st.trimEnd(p, x), x, xm, x != hardHi
		}
		sr := st.runeAt(p)
		er := st.runeAt(e)
		if m < 0 {
			m = int64(er - sr)
		}
		out = append(out, span{p, e, sr, er, m})

		b, prevE, om = next, e, -1
		p = st.skipWS(b)
		if st.overlap > 0 && p < n {
			if o, m := st.overlapStart(out[len(out)-1].sb, e, b, hardEnd); o >= 0 {
				p, om = o, m
			}
		}
	}
	return out
}

// runEnd is the end of the run of hard-cut atoms that atom i belongs to:
// the end of the first atom from i on that ends at a separator (or at the
// end of the text).
// The last run found is remembered: chunks go forward, so finding the
// runs costs O(atoms) in all.
func (st *state) runEnd(i int) int {
	if i < st.runFrom || i > st.runTo {
		st.runFrom, st.runTo = i, i
		for st.lvs[st.runTo] == st.hard {
			st.runTo++
		}
	}
	return int(st.ends[st.runTo])
}

// choose picks the end of the chunk whose first piece (measure m0) ends
// atom first: the strongest boundary among the atoms that fit, up to atom
// limit, the furthest among equals; avoiding, when it can, a chunk or a
// remainder shorter than MinSize.
func (st *state) choose(first int, cumFirst, m0 int64, limit int) int {
	size, minSize, last := int64(st.size), int64(st.minSize), len(st.ends)-1
	bestAll, bestMin, bestBoth := -1, -1, -1
	better := func(best, j int) bool { return best < 0 || st.lvs[j] <= st.lvs[best] }
	sum, cum := m0, cumFirst
	for j := first; j <= limit; j++ {
		if j > first {
			sum += int64(st.ms[j])
			if sum > size {
				break
			}
		}
		cum += int64(st.ms[j])
		if better(bestAll, j) {
			bestAll = j
		}
		if sum >= minSize {
			if better(bestMin, j) {
				bestMin = j
			}
			if (j == last || st.total-cum >= minSize) && better(bestBoth, j) {
				bestBoth = j
			}
		}
	}
	switch {
	case bestBoth >= 0:
		return bestBoth
	case bestMin >= 0:
		return bestMin
	}
	return bestAll
}

// shrink finds a shorter chunk when the one ending at atom j exceeds Size
// once counted (in tokens, the sum of the pieces' counts is an estimate):
// the next choices first, then the furthest end that fits, by bisection.
// It returns -1 when even the first piece exceeds.
func (st *state) shrink(p, first int, cumFirst, m0 int64, j int) (int, int64) {
	size := int64(st.size)
	count := func(j int) int64 { return tokens.Text(st.doc[p:st.trimEnd(p, int(st.ends[j]))]) }
	for tries := 0; tries < 3 && j > first; tries++ {
		j = st.choose(first, cumFirst, m0, j-1)
		if m := count(j); m <= size {
			return j, m
		}
	}
	mFirst := count(first)
	if mFirst > size {
		return -1, mFirst
	}
	good, gm, bad := first, mFirst, j
	for bad-good > 1 {
		mid := (good + bad) / 2
		if m := count(mid); m <= size {
			good, gm = mid, m
		} else {
			bad = mid
		}
	}
	return good, gm
}

// overlapStart is where the chunk after the one [ps, e) starts, inside it,
// so that it repeats at most Overlap of its end and leaves room for the
// first new piece (from the cut b to the atom boundary after the next
// non-blank text); -1 for none. It starts at a separator boundary; in the
// middle of a word only when the chunk ended at a hard cut (hardEnd). The
// overlap's measure is returned when known (tokens), else -1.
func (st *state) overlapStart(ps, e, b int, hardEnd bool) (int, int64) {
	doc, size := st.doc, int64(st.size)
	bq := st.skipWS(b)
	k := sort.Search(len(st.ends), func(i int) bool { return int(st.ends[i]) > bq })
	var nextM int64
	switch {
	case st.lvs[k] == st.hard: // no separator ahead: the next chunk will be cut hard from the overlap
		nextM = st.measure(e, bq+utf8RuneLen(doc[bq:]))
	case st.tokens && k > 0 && int(st.ends[k-1]) == b:
		nextM = st.measure(e, b) + int64(st.ms[k])
	default:
		nextM = st.measure(e, int(st.ends[k]))
	}
	budget := min(int64(st.overlap), size-nextM)
	if budget <= 0 {
		return -1, -1
	}
	lo := ps + utf8RuneLen(doc[ps:]) // the overlap starts after the chunk's start
	if lo >= e {
		return -1, -1
	}

	if !st.tokens {
		r0, k := e, int64(0)
		for r0 > lo && k < budget {
			_, w := utf8.DecodeLastRuneInString(doc[:r0])
			r0 -= w
			k++
		}
		best := -1
		for i := range st.seps {
			st.bufs[i] = st.seps[i].cuts(doc, r0-1, e, st.bufs[i][:0])
			for _, c := range st.bufs[i] {
				if o := st.skipWS(c); o < e {
					if best < 0 || o < best {
						best = o
					}
					break
				}
			}
		}
		if best < 0 { // no separator in the tail: start inside a word after a hard cut
			if !hardEnd {
				return -1, -1
			}
			best = st.skipWS(st.graphemeFwd(r0, e))
		}
		if best >= e {
			return -1, -1
		}
		return best, -1
	}

	// Tokens: candidate starts at separator boundaries in a tail of the
	// chunk large enough for the budget; pieces counted from the end.
	lo = st.runeCeil(max(lo, e-int(budget)*12))
	var starts []int
	for i := range st.seps {
		st.bufs[i] = st.seps[i].cuts(doc, lo-1, e, st.bufs[i][:0])
		for _, c := range st.bufs[i] {
			if o := st.skipWS(c); o < e {
				starts = append(starts, o)
			}
		}
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)
	best, sum := -1, int64(0)
	for i := len(starts) - 1; i >= 0; i-- {
		end := e
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		if sum += st.measure(starts[i], end); sum > budget {
			break
		}
		best = i
	}
	if best >= 0 {
		for i := best; i < len(starts); i++ {
			if m := st.measure(starts[i], e); m <= budget {
				return starts[i], m
			}
		}
	}
	if !hardEnd {
		return -1, -1
	}
	return st.fitSuffix(lo, e, budget), -1
}

// fit returns the largest x in (lo, hi] (for tokens, nearly the largest)
// such that doc[lo:x] (trimmed at its end if trim) measures at most budget,
// not splitting a combining sequence when it can help it, and its measure;
// x == lo when not even one rune fits.
func (st *state) fit(lo, hi, budget int, trim bool) (int, int64) {
	doc := st.doc
	if !st.tokens {
		x, k := lo, 0
		for x < hi && k < budget {
			x += utf8RuneLen(doc[x:])
			k++
		}
		if x < hi {
			if y := st.graphemeBack(lo, x); y != x {
				k -= utf8.RuneCountInString(doc[y:x])
				x = y
			}
		}
		m := int64(k)
		if trim {
			m = st.measure(lo, st.trimEnd(lo, x))
		}
		return x, m
	}
	meas := func(x int) int64 {
		e := x
		if trim {
			e = st.trimEnd(lo, x)
		}
		return st.measure(lo, e)
	}
	b := int64(budget)
	// A token is at least one byte: budget bytes always fit.
	good := st.runeFloor(lo, min(lo+budget, hi))
	if good == hi {
		return hi, meas(hi)
	}
	gm := int64(-1)
	bad := -1
	for bad < 0 { // gallop
		probe := lo + 2*(good-lo)
		if probe >= hi {
			probe = hi
		} else if probe = st.runeFloor(lo, probe); probe <= good {
			probe = good + utf8RuneLen(doc[good:])
		}
		if m := meas(probe); m <= b {
			good, gm = probe, m
			if probe == hi {
				return hi, m
			}
		} else {
			bad = probe
		}
	}
	for { // bisect, to within 1/128 of the length
		slack := (good - lo) / 128
		if good == lo {
			slack = 0
		}
		if bad-good <= max(slack, 1) {
			break
		}
		mid := st.runeFloor(lo, good+(bad-good)/2)
		if mid <= good {
			mid = good + utf8RuneLen(doc[good:])
			if mid >= bad {
				break
			}
		}
		if m := meas(mid); m <= b {
			good, gm = mid, m
		} else {
			bad = mid
		}
	}
	if good == lo {
		return lo, 0
	}
	if gm < 0 {
		gm = meas(good)
	}
	if y := st.graphemeBack(lo, good); y != good {
		if m := meas(y); m <= b {
			good, gm = y, m
		}
	}
	return good, gm
}

// fitSuffix returns the smallest start o in [lo, e), after whitespace,
// such that doc[o:e] counts at most budget tokens (nearly), or -1.
func (st *state) fitSuffix(lo, e int, budget int64) int {
	good := st.runeCeil(max(lo, e-int(budget))) // budget bytes always fit
	if good > lo {
		if st.measure(lo, e) <= budget {
			good = lo
		} else {
			bad := lo
			for good-bad > max(1, (e-good)/128) {
				mid := st.runeCeil(bad + (good-bad)/2)
				if mid >= good {
					break
				}
				if st.measure(mid, e) <= budget {
					good = mid
				} else {
					bad = mid
				}
			}
		}
	}
	// Skipping whitespace can add a token (" façon" is one, "façon" two):
	// move on until the count fits.
	o := st.skipWS(st.graphemeFwd(good, e))
	for tries := 0; o < e; tries++ {
		if o == good || st.measure(o, e) <= budget {
			return o
		}
		if tries == 16 {
			break
		}
		o = st.skipWS(o + utf8RuneLen(st.doc[o:]))
	}
	return -1
}

// runeFloor moves x back to a rune start, not before lo.
func (st *state) runeFloor(lo, x int) int {
	for x > lo && x < len(st.doc) && !utf8.RuneStart(st.doc[x]) {
		x--
	}
	return x
}

func (st *state) runeCeil(x int) int {
	for x < len(st.doc) && !utf8.RuneStart(st.doc[x]) {
		x++
	}
	return x
}

// runeAt is the rune offset of byte x, moving a cursor (chunks go forward,
// back only by their overlap).
func (st *state) runeAt(x int) int {
	if x >= st.cb {
		st.cr += utf8.RuneCountInString(st.doc[st.cb:x])
	} else {
		st.cr -= utf8.RuneCountInString(st.doc[x:st.cb])
	}
	st.cb = x
	return st.cr
}

// mergeShort merges each chunk shorter than MinSize into the previous
// chunk, else into the next one, when the merge fits in Size; a single
// chunk shorter than MinSize (the whole text) is dropped.
func (st *state) mergeShort(in []span) []span {
	if st.minSize == 0 {
		return in
	}
	minSize := int64(st.minSize)
	merged := func(a, b span) (span, bool) {
		s := span{a.sb, b.eb, a.sr, b.er, int64(b.er - a.sr)}
		if st.tokens {
			s.m = tokens.Text(st.doc[a.sb:b.eb])
		}
		return s, s.m <= int64(st.size)
	}
	out := make([]span, 0, len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c.m < minSize {
			if len(out) > 0 {
				if s, ok := merged(out[len(out)-1], c); ok {
					out[len(out)-1] = s
					continue
				}
			}
			if i+1 < len(in) {
				if s, ok := merged(c, in[i+1]); ok {
					in[i+1] = s
					continue
				}
			}
		}
		out = append(out, c)
	}
	if len(out) == 1 && out[0].m < minSize {
		return nil
	}
	return out
}

func isSpaceAt(s string, x int) (bool, int) {
	if c := s[x]; c < utf8.RuneSelf {
		return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f', 1
	}
	r, w := utf8.DecodeRuneInString(s[x:])
	return unicode.IsSpace(r), w
}

func (st *state) skipWS(x int) int {
	for x < len(st.doc) {
		sp, w := isSpaceAt(st.doc, x)
		if !sp {
			break
		}
		x += w
	}
	return x
}

// trimEnd moves x back over whitespace, not before lo.
func (st *state) trimEnd(lo, x int) int {
	for x > lo {
		c := st.doc[x-1]
		if c < utf8.RuneSelf {
			if c != ' ' && c != '\n' && c != '\t' && c != '\r' && c != '\v' && c != '\f' {
				break
			}
			x--
			continue
		}
		r, w := utf8.DecodeLastRuneInString(st.doc[lo:x])
		if !unicode.IsSpace(r) {
			break
		}
		x -= w
	}
	return x
}

// badCut: cutting at x would detach a combining mark, a variation
// selector, an emoji modifier or tag, or split a zero-width-joined
// sequence or a pair of regional indicators (a flag; between two flags
// too, a simplification).
func (st *state) badCut(x int) bool {
	if x <= 0 || x >= len(st.doc) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(st.doc[x:])
	if r < 0x300 {
		prev, _ := utf8.DecodeLastRuneInString(st.doc[:x])
		return prev == 0x200D
	}
	if r == 0x200D || (r >= 0xFE00 && r <= 0xFE0F) || (r >= 0x1F3FB && r <= 0x1F3FF) ||
		(r >= 0xE0020 && r <= 0xE007F) || unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc) {
		return true
	}
	prev, _ := utf8.DecodeLastRuneInString(st.doc[:x])
	return prev == 0x200D || (isRegional(r) && isRegional(prev)) // ZWJ, or inside a flag
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// graphemeBack moves x back (by 8 runes at most, never to lo) to a cut
// that splits no combining sequence; x itself when there is none.
func (st *state) graphemeBack(lo, x int) int {
	y := x
	for range 8 {
		if !st.badCut(y) {
			return y
		}
		_, w := utf8.DecodeLastRuneInString(st.doc[lo:y])
		if y-w <= lo {
			break
		}
		y -= w
	}
	if !st.badCut(y) {
		return y
	}
	return x
}

// graphemeFwd moves x forward likewise, not to hi.
func (st *state) graphemeFwd(x, hi int) int {
	y := x
	for range 8 {
		if !st.badCut(y) {
			return y
		}
		y += utf8RuneLen(st.doc[y:])
		if y >= hi {
			break
		}
	}
	return x
}
