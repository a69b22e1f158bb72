package chunk

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/guichet/guichet/tokens"
)

// measureOf measures s in the options' unit, as the package does.
func measureOf(o Options, s string) int64 {
	if o.Unit == Tokens {
		return tokens.Text(s)
	}
	return int64(utf8.RuneCountInString(s))
}

func isBlankText(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == "" }

// checkChunks verifies every invariant of a split that holds for any text
// and options:
//   - each chunk's Text is the joined text between Start and End, non-empty,
//     without leading or trailing whitespace, and within Size;
//   - Index counts from 0; Start and End strictly increase;
//   - a chunk overlaps the previous one only when Overlap > 0, by at most
//     Overlap, and always brings new text;
//   - round trip: the text before the first chunk, between chunks and after
//     the last is whitespace, and the chunks minus their overlaps, with that
//     whitespace, give back the joined text exactly;
//   - no chunk: the text is blank or, trimmed, shorter than MinSize;
//   - a chunk shorter than MinSize could not be merged with a neighbour;
//   - Page and PageEnd are the pages of the first and last rune.
func checkChunks(t testing.TB, pages []Page, o Options, chunks []Chunk) {
	t.Helper()
	doc := Join(pages)
	runes := []rune(doc)
	size := o.Size
	if size == 0 {
		size = DefaultSize
	}
	if len(chunks) == 0 {
		if !isBlankText(doc) && (o.MinSize == 0 || measureOf(o, strings.TrimFunc(doc, unicode.IsSpace)) >= int64(o.MinSize)) {
			t.Fatalf("no chunk for a text of %d runes (min size %d)", len(runes), o.MinSize)
		}
		return
	}
	// Page of each rune offset.
	var pageStarts []int // rune offset where each page's text starts
	off := 0
	for i, p := range pages {
		if i > 0 {
			off += utf8.RuneCountInString(PageSeparator)
		}
		pageStarts = append(pageStarts, off)
		off += utf8.RuneCountInString(Join([]Page{p}))
	}
	pageOf := func(r int) int {
		k := 0
		for i, s := range pageStarts {
			if s <= r {
				k = i
			}
		}
		return pages[k].Number
	}

	var rebuilt strings.Builder
	prevStart, prevEnd := -1, 0
	for i, c := range chunks {
		if c.Index != i {
			t.Fatalf("chunk %d has index %d", i, c.Index)
		}
		if c.Start < 0 || c.End > len(runes) || c.Start >= c.End {
			t.Fatalf("chunk %d: bad range [%d,%d) in %d runes", i, c.Start, c.End, len(runes))
		}
		if got := string(runes[c.Start:c.End]); got != c.Text {
			t.Fatalf("chunk %d: text %q is not the joined text at [%d,%d): %q", i, c.Text, c.Start, c.End, got)
		}
		if strings.TrimFunc(c.Text, unicode.IsSpace) != c.Text {
			t.Fatalf("chunk %d is not trimmed: %q", i, c.Text)
		}
		if m := measureOf(o, c.Text); m > int64(size) {
			t.Fatalf("chunk %d measures %d > size %d (%s): %q", i, m, size, o.Unit, c.Text)
		}
		if c.Start <= prevStart || c.End <= prevEnd {
			t.Fatalf("chunk %d [%d,%d) does not move forward from [%d,%d)", i, c.Start, c.End, prevStart, prevEnd)
		}
		tr := []rune(c.Text)
		ov := 0
		if c.Start < prevEnd {
			ov = prevEnd - c.Start
			if o.Overlap == 0 {
				t.Fatalf("chunk %d overlaps the previous one by %d runes without overlap", i, ov)
			}
			if m := measureOf(o, string(tr[:ov])); m > int64(o.Overlap) {
				t.Fatalf("chunk %d: overlap %q measures %d > %d", i, string(tr[:ov]), m, o.Overlap)
			}
		} else {
			gap := string(runes[prevEnd:c.Start])
			if !isBlankText(gap) {
				t.Fatalf("text lost between chunks %d and %d: %q", i-1, i, gap)
			}
			rebuilt.WriteString(gap)
		}
		rebuilt.WriteString(string(tr[ov:]))
		if want := pageOf(c.Start); c.Page != want {
			t.Fatalf("chunk %d starts on page %d, says %d", i, want, c.Page)
		}
		if want := pageOf(c.End - 1); c.PageEnd != want {
			t.Fatalf("chunk %d ends on page %d, says %d", i, want, c.PageEnd)
		}
		prevStart, prevEnd = c.Start, c.End
	}
	tail := string(runes[prevEnd:])
	if !isBlankText(tail) {
		t.Fatalf("text lost after the last chunk: %q", tail)
	}
	rebuilt.WriteString(tail)
	if rebuilt.String() != doc {
		t.Fatalf("chunks minus overlaps do not give back the text")
	}

	if o.MinSize > 0 {
		for i, c := range chunks {
			if measureOf(o, c.Text) >= int64(o.MinSize) {
				continue
			}
			if len(chunks) == 1 {
				t.Fatalf("a single chunk shorter than min size %d: %q", o.MinSize, c.Text)
			}
			if i > 0 {
				if m := measureOf(o, string(runes[chunks[i-1].Start:c.End])); m <= int64(size) {
					t.Fatalf("short chunk %d %q could merge into the previous one (%d <= %d)", i, c.Text, m, size)
				}
			}
			if i+1 < len(chunks) && o.Unit != Tokens { // tokens: the next chunk may have grown since
				if m := measureOf(o, string(runes[c.Start:chunks[i+1].End])); m <= int64(size) {
					t.Fatalf("short chunk %d %q could merge into the next one (%d <= %d)", i, c.Text, m, size)
				}
			}
		}
	}
}

// Random texts: French words with accents, emojis (some joined), combining
// marks, long words without any separator, sentences, lines, paragraphs,
// Markdown headings, non-breaking spaces and CRLF.
var words = strings.Fields(`le la les un une des et à de du en pour avec sans sur sous dans par
	été élève où façon garçon déjà très après naïve Noël cœur œuvre ça français
	République préfecture administration démarche citoyen être hôpital forêt
	intelligence artificielle modèle données passerelle Ça À Élysée
	Œdipe coût août fenêtre château 🙂 👍🏽 🇫🇷 👩‍💻 e\u0301tude`)

func randomText(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		switch k := r.IntN(100); {
		case k < 70:
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		case k < 78:
			b.WriteString(". ")
		case k < 82:
			b.WriteString("\n")
		case k < 86:
			b.WriteString("\n\n")
		case k < 88:
			b.WriteString("\n\n" + strings.Repeat("#", 1+r.IntN(6)) + " Titre " + words[r.IntN(len(words))] + "\n\n")
		case k < 90: // a long word: no separator for a while
			w := words[r.IntN(len(words))]
			b.WriteString(strings.Repeat(w, 1+r.IntN(400)))
		case k < 92:
			b.WriteString("\u00a0?\u202f! ")
		case k < 94:
			b.WriteString("\r\n")
		case k < 96:
			b.WriteString("```\n# pas un titre\n```\n")
		case k < 98:
			b.WriteString("\t  \n \u3000 ")
		default:
			b.WriteString(strings.Repeat("🙂", 1+r.IntN(50)))
		}
	}
	return b.String()
}

func randomPages(r *rand.Rand, n int) []Page {
	if r.IntN(3) == 0 {
		return []Page{{Text: randomText(r, n)}}
	}
	k := 1 + r.IntN(4)
	pages := make([]Page, k)
	for i := range pages {
		pages[i] = Page{Number: i + 1, Text: randomText(r, n/k)}
	}
	return pages
}
