package sim

import (
	"unicode"
	"unicode/utf8"
)

// The simulator's tokenizer is deliberately simple and documented, so that
// tests can predict token counts exactly: a token is a maximal run of
// letters/digits, or a single other non-space character, and the whitespace
// before a token belongs to it. Generated text is built from such pieces, so
// CountTokens of an answer always equals its completion_tokens.

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

func isSpaceRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
	}
	return unicode.IsSpace(r)
}

func runeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// scanToken returns the end of the token that starts at i (leading
// whitespace included), or ok=false when only whitespace remains.
func scanToken(s string, i int) (end int, ok bool) {
	for i < len(s) {
		r, n := runeAt(s, i)
		if !isSpaceRune(r) {
			break
		}
		i += n
	}
	if i >= len(s) {
		return i, false
	}
	r, n := runeAt(s, i)
	i += n
	if isWordRune(r) {
		for i < len(s) {
			r, n = runeAt(s, i)
			if !isWordRune(r) {
				break
			}
			i += n
		}
	}
	return i, true
}

// CountTokens is the simulator's tokenizer: see the comment at the top of
// tokens.go.
func CountTokens(text string) int {
	n := 0
	for i := 0; ; n++ {
		end, ok := scanToken(text, i)
		if !ok {
			return n
		}
		i = end
	}
}

// splitTokens cuts text into its tokens, each with its leading whitespace;
// their concatenation is text without its trailing whitespace.
func splitTokens(text string) []string {
	var out []string
	for i := 0; ; {
		end, ok := scanToken(text, i)
		if !ok {
			return out
		}
		out = append(out, text[i:end])
		i = end
	}
}

// --- deterministic pseudo-randomness ---

// fnv64 folds s into the FNV-1a hash h (start with fnvOffset).
func fnv64(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func fnv64Uint(h, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= 1099511628211
		v >>= 8
	}
	return h
}

const fnvOffset = 14695981039346656037

// splitmix64 is a bijective mixer: used both as a tiny PRNG step and to
// derive unique-looking ids from a counter.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// prng is a small deterministic generator for lorem text (no locking, no
// allocation: one per generated choice).
type prng struct{ s uint64 }

func (p *prng) next() uint64 {
	p.s += 0x9e3779b97f4a7c15
	return splitmix64(p.s)
}

func (p *prng) intn(n int) int { return int(p.next() % uint64(n)) }

// --- lorem ipsum ---

// loremPrefix makes every lorem answer say what it is.
var loremPrefix = []string{"guichet", "-", "sim", " simulated", " answer", ":"}

var loremWords = func() []string {
	words := []string{"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
		"sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna",
		"aliqua", "enim", "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco",
		"laboris", "nisi", "aliquip", "ex", "ea", "commodo", "consequat", "duis", "aute", "irure",
		"in", "reprehenderit", "voluptate", "velit", "esse", "cillum", "eu", "fugiat", "nulla",
		"pariatur", "excepteur", "sint", "occaecat", "cupidatat", "non", "proident", "sunt",
		"culpa", "qui", "officia", "deserunt", "mollit", "anim", "id", "est", "laborum"}
	// Pieces carry their leading space, ready to stream as tokens.
	for i, w := range words {
		words[i] = " " + w
	}
	return words
}()

// appendLoremWords appends n lorem tokens (words with occasional
// punctuation, each one token).
func appendLoremWords(dst []string, n int, p *prng) []string {
	lastWord := false
	for ; n > 0; n-- {
		if lastWord && p.intn(9) == 0 {
			if p.intn(2) == 0 {
				dst = append(dst, ",")
			} else {
				dst = append(dst, ".")
			}
			lastWord = false
			continue
		}
		dst = append(dst, loremWords[p.intn(len(loremWords))])
		lastWord = true
	}
	return dst
}

// appendLorem appends n tokens of a lorem answer: the honest prefix, then
// lorem words.
func appendLorem(dst []string, n int, p *prng) []string {
	k := min(n, len(loremPrefix))
	dst = append(dst, loremPrefix[:k]...)
	return appendLoremWords(dst, n-k, p)
}
