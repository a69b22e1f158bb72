package chunk

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/guichet/guichet/tokens"
)

var frenchWords = strings.Fields(`le la les un une des et à de du en pour avec sans sur dans par que qui
	ne pas plus être avoir faire dire pouvoir aller voir savoir vouloir venir devoir prendre
	administration publique citoyen démarche préfecture mairie département région État
	été élève où façon garçon déjà très après naïve cœur œuvre ça français République
	hôpital forêt fenêtre château coût août intelligence artificielle modèle données
	passerelle réponse question document recherche résultat procédure délai dossier`)

// frenchText is about n bytes of French-like Markdown: sections with
// headings, paragraphs of sentences, now and then a list.
func frenchText(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 42))
	var b strings.Builder
	b.Grow(n + 1024)
	word := func() string { return frenchWords[r.IntN(len(frenchWords))] }
	for b.Len() < n {
		if r.IntN(8) == 0 {
			fmt.Fprintf(&b, "%s %s %s\n\n", strings.Repeat("#", 1+r.IntN(3)), strings.ToUpper(word()[:1])+word()[1:], word())
		}
		for range 1 + r.IntN(6) { // sentences
			w := word()
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
			for range 5 + r.IntN(20) {
				b.WriteByte(' ')
				b.WriteString(word())
				if r.IntN(12) == 0 {
					b.WriteByte(',')
				}
			}
			b.WriteString([]string{". ", ". ", ". ", " ? ", " ! "}[r.IntN(5)])
		}
		if r.IntN(6) == 0 {
			for range 2 + r.IntN(3) {
				fmt.Fprintf(&b, "\n- %s %s %s", word(), word(), word())
			}
		}
		b.WriteString("\n\n")
	}
	return b.String()
}

// benchSeed makes every iteration's text new, so that tokens.Text's cache
// does not flatter the figures (also across -count runs).
var benchSeed uint64

// BenchmarkSplit splits about 1 MB of French-like text.
func BenchmarkSplit(b *testing.B) {
	tokens.Warm()
	// Reference: counting the text's tokens once, in 30 kB slices (exact:
	// tokens.Text extrapolates beyond 32 kB). Splitting in tokens counts
	// every piece once and every chunk once, so about twice this.
	b.Run("tokens/reference-count", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			benchSeed++
			text := frenchText(benchSeed, 1<<20)
			b.SetBytes(int64(len(text)))
			b.StartTimer()
			for i := 0; i < len(text); i += 30_000 {
				tokens.Text(text[i:min(i+30_000, len(text))])
			}
		}
	})
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"characters/text", Options{}},
		{"characters/markdown/overlap", Options{Preset: PresetMarkdown, Overlap: 200}},
		{"tokens/text", Options{Unit: Tokens, Size: 512}},
		{"tokens/markdown/overlap", Options{Unit: Tokens, Size: 512, Overlap: 50, Preset: PresetMarkdown}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(c.o)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				benchSeed++
				text := frenchText(benchSeed, 1<<20)
				b.SetBytes(int64(len(text)))
				b.StartTimer()
				if _, err := s.Split([]Page{{Text: text}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestLargeTexts(t *testing.T) {
	if testing.Short() {
		t.Skip("large texts")
	}
	for _, text := range []string{
		frenchText(1, 200_000),
		strings.Repeat("abcdefghé", 30_000),                                  // no separator: a long run of hard cuts
		strings.Repeat(" ", 100_000) + "mot" + strings.Repeat("\n", 100_000), // whitespace
		strings.Repeat("x ", 100_000),
	} {
		for _, o := range []Options{{}, {Size: 100, Overlap: 10}, {Size: 100, Overlap: 99, MinSize: 50}, {Unit: Tokens, Size: 512, Overlap: 50, Preset: PresetMarkdown}} {
			split(t, one(text), o)
		}
	}
}

func TestBenchmarkTextIsValid(t *testing.T) {
	text := frenchText(1, 100_000)
	for _, o := range []Options{{}, {Unit: Tokens, Size: 512, Overlap: 50, Preset: PresetMarkdown}} {
		split(t, one(text), o)
	}
}
