package chunk

import (
	"regexp"
	"sort"
	"strings"
)

// separator finds boundaries: a literal, a regular expression, or cut
// positions computed beforehand (Markdown structure).
type separator struct {
	lit string
	re  *regexp.Regexp
	pre bool  // pos holds the cut positions
	pos []int // sorted
}

// cuts appends to dst the cut positions c of the separator in doc[lo:hi],
// with lo < c < hi, increasing. Regular expressions see doc[lo:hi] alone (^
// and \b at its edges match as at the edges of a text).
func (s *separator) cuts(doc string, lo, hi int, dst []int) []int {
	last := lo
	add := func(c int) {
		if c > last && c < hi {
			dst = append(dst, c)
			last = c
		}
	}
	switch {
	case s.pre:
		for i := sort.SearchInts(s.pos, lo+1); i < len(s.pos) && s.pos[i] < hi; i++ {
			add(s.pos[i])
		}
	case s.re != nil:
		text := doc[lo:hi]
		for _, m := range s.re.FindAllStringIndex(text, -1) {
			if m[1] > m[0] {
				add(lo + m[0] + closerRun(text[m[0]:m[1]]))
			}
		}
	default:
		text, cut := doc[lo:hi], closerRun(s.lit)
		for off := 0; ; {
			i := strings.Index(text[off:], s.lit)
			if i < 0 {
				break
			}
			add(lo + off + i + cut)
			off += i + len(s.lit)
		}
	}
	return dst
}

// closerRun is the length in bytes of the leading run of closing
// punctuation of a separator match: that part ends the piece before the
// cut, the rest begins the next piece.
func closerRun(m string) int {
	for i, r := range m {
		if !isCloser(r) {
			return i
		}
	}
	return len(m)
}

func isCloser(r rune) bool {
	switch r {
	case '.', '!', '?', ';', ':', ',', ')', ']', '}', '"', '\'', '`', '~',
		'…', '»', '”', '’', '›', '。', '！', '？', '、', '；', '：', '，', '）':
		return true
	}
	return false
}
