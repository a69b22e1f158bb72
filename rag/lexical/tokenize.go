package lexical

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The tokenizer is SQLite FTS5's unicode61 with remove_diacritics 2, the
// one of the chunks_fts table: a token is a run of letters, digits,
// private-use characters and the combining marks unicode61 calls
// diacritics; it is lower-cased and its diacritics removed ("École" is
// "ecole", "l'été" is "l" and "ete"); there is no stemming. For the Basic
// Multilingual Plane, table.go holds what SQLite itself does with each
// code point (go run gen.go), so the split and the folding are FTS5's,
// not an approximation; above it, letters, digits and private-use
// characters are tokens, unchanged but for Deseret's lower case (as in
// SQLite).

// separators is a bit per BMP code point: set for a separator.
var separators [1 << 16 / 64]uint64

// foldLatin is the folding of U+0080..U+024F, the common case; foldBMP
// the one of the other BMP code points that change.
var (
	foldLatin [0x250]rune
	foldBMP   = map[rune]rune{}
)

func init() {
	for c := range rune(0x80) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			separators[c/64] |= 1 << (c % 64)
		}
	}
	for _, r := range separatorRanges {
		for c := r[0]; c <= r[1]; c++ {
			separators[c/64] |= 1 << (c % 64)
		}
	}
	for c := range foldLatin {
		foldLatin[c] = rune(c)
	}
	for _, p := range foldPairs {
		if p[0] < 0x250 {
			foldLatin[p[0]] = p[1]
		} else {
			foldBMP[p[0]] = p[1]
		}
	}
}

func isSeparator(r rune) bool {
	if r < 1<<16 {
		return separators[r/64]&(1<<(r%64)) != 0
	}
	return !(unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Co, r))
}

// fold is r as a token holds it; 0 when it is dropped.
func fold(r rune) rune {
	switch {
	case r < 0x80:
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	case r < 0x250:
		return foldLatin[r]
	case r < 1<<16:
		if f, ok := foldBMP[r]; ok {
			return f
		}
		return r
	case r >= 66560 && r < 66600: // Deseret, the only case SQLite folds above the BMP
		return r + 40
	}
	return r
}

// Tokens calls f with each token of text, in order; tok is only valid
// during the call. Tokens that fold to nothing (a lone diacritic) are
// not reported. It is the tokenizer of the index and of queries.
func Tokens(text string, f func(tok []byte)) {
	var buf [64]byte
	tok := buf[:0]
	in := false
	for i := 0; i < len(text); {
		c := text[i]
		var r rune
		if c < utf8.RuneSelf {
			r = rune(c)
			i++
		} else {
			var n int
			r, n = utf8.DecodeRuneInString(text[i:])
			i += n
		}
		if isSeparator(r) {
			if in && len(tok) > 0 {
				f(tok)
			}
			tok, in = tok[:0], false
			continue
		}
		in = true
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			tok = append(tok, byte(r))
		} else if r = fold(r); r != 0 {
			tok = utf8.AppendRune(tok, r)
		}
	}
	if in && len(tok) > 0 {
		f(tok)
	}
}

// Tokenize returns the tokens of text.
func Tokenize(text string) []string {
	var out []string
	Tokens(text, func(tok []byte) { out = append(out, string(tok)) })
	return out
}

// StopWords are the French stop words a query drops (QueryWords). They
// are lower-case, with their accents.
var StopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
		a à au aux avec c ce ces cet cette d dans de des du elle elles en est et
		il ils j je l la le les leur leurs lui m ma mais me mes n ne nous on ou où
		par pas plus pour qu que qui s sa se ses son sont sur t ta te tes toi ton
		tu un une vos votre vous y`) {
		m[w] = true
	}
	return m
}()

// MaxQueryWords bounds the words of a query.
const MaxQueryWords = 64

// QueryWords returns the words a lexical query searches for: the runs of
// letters, digits and combining marks of text, lower-cased, each once,
// in order, French stop words dropped unless nothing else is left, at
// most MaxQueryWords. Both the FTS5 query and Index.Search use it, so
// they search for the same words; each word is then tokenized like the
// documents (a word may fold to the same token as another: "ecole" and
// "école" are two words, scored twice, as FTS5 does with two phrases).
func QueryWords(text string) []string {
	words := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Mn, r)
	})
	var kept, all []string
	seen := map[string]bool{}
	for _, w := range words {
		w = strings.ToLower(w)
		if seen[w] {
			continue
		}
		seen[w] = true
		all = append(all, w)
		if !StopWords[w] {
			kept = append(kept, w)
		}
	}
	if len(kept) == 0 {
		kept = all
	}
	if len(kept) > MaxQueryWords {
		kept = kept[:MaxQueryWords]
	}
	return kept
}
