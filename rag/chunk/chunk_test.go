package chunk

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/guichet/guichet/tokens"
)

func split(t *testing.T, pages []Page, o Options) []Chunk {
	t.Helper()
	cs, err := Split(pages, o)
	if err != nil {
		t.Fatalf("Split(%+v): %v", o, err)
	}
	checkChunks(t, pages, o, cs)
	return cs
}

func texts(cs []Chunk) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Text
	}
	return out
}

func one(s string) []Page { return []Page{{Text: s}} }

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		o     Options
		field string
		msg   string
	}{
		{Options{Size: 200, Overlap: 300}, "chunk_overlap", "chunk_overlap (300) must be smaller than chunk_size (200)"},
		{Options{Size: 200, Overlap: 200}, "chunk_overlap", "chunk_overlap (200) must be smaller than chunk_size (200)"},
		{Options{Overlap: 5000}, "chunk_overlap", "chunk_overlap (5000) must be smaller than chunk_size (2048)"},
		{Options{Overlap: -1}, "chunk_overlap", "chunk_overlap (-1) must not be negative"},
		{Options{Size: -5}, "chunk_size", "chunk_size (-5) must be between 1 and 100000"},
		{Options{Size: 100001}, "chunk_size", "chunk_size (100001) must be between 1 and 100000"},
		{Options{Size: 3, Unit: Tokens}, "chunk_size", "chunk_size (3) must be at least 4 when the unit is tokens (one character can take up to 4 tokens)"},
		{Options{MinSize: -1}, "chunk_min_size", "chunk_min_size (-1) must not be negative"},
		{Options{Size: 100, MinSize: 101}, "chunk_min_size", "chunk_min_size (101) must not exceed chunk_size (100)"},
		{Options{Unit: "bytes"}, "unit", `unit "bytes" is unknown; use characters or tokens`},
		{Options{Preset: "python"}, "preset_separators", `preset_separators "python" is unknown; use text, markdown or html`},
		{Options{Separators: make([]string, 33)}, "separators", "separators has 33 entries; at most 32 are allowed"},
		{Options{Separators: []string{"\n", strings.Repeat("x", 257)}}, "separators", "separators[1] is 257 bytes long; at most 256 are allowed"},
		{Options{Separators: []string{"a(b"}, IsRegex: true}, "separators", `separators[0] ("a(b") is not a valid regular expression: missing closing ): ` + "`a(b`"},
		{Options{Separators: []string{"\xff"}}, "separators", "separators[0] is not valid UTF-8"},
	} {
		err := c.o.Validate()
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%+v: got %v, want an OptionError", c.o, err)
			continue
		}
		if oe.Field != c.field || oe.Error() != c.msg {
			t.Errorf("%+v:\n got %s: %q\nwant %s: %q", c.o, oe.Field, oe.Error(), c.field, c.msg)
		}
		if _, err := Split(one("x"), c.o); err == nil {
			t.Errorf("%+v: Split accepted it", c.o)
		}
	}
	for _, o := range []Options{
		{},
		{Size: 1},
		{Size: MaxSize, Overlap: MaxSize - 1, MinSize: MaxSize},
		{Size: 4, Unit: Tokens},
		{Unit: Characters, Preset: PresetMarkdown},
		{Preset: PresetHTML, Separators: []string{`\n\n+`, `[.!?]\s`}, IsRegex: true},
		{Separators: []string{"a(b"}}, // not a regex: a literal
	} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestEmptyInput(t *testing.T) {
	for _, pages := range [][]Page{nil, {}, one(""), one(" \n\t\u00a0\u3000\r\n"), {{1, ""}, {2, "  "}, {3, "\n"}}} {
		for _, o := range []Options{{}, {Unit: Tokens, Size: 10}, {Preset: PresetMarkdown, MinSize: 5}} {
			cs, err := Split(pages, o)
			if err != nil || len(cs) != 0 {
				t.Errorf("Split(%+v, %+v) = %v, %v; want no chunk, no error", pages, o, cs, err)
			}
		}
	}
}

func TestGreedyMergeOfParagraphs(t *testing.T) {
	text := "Premier paragraphe.\n\nDeuxième paragraphe, un peu plus long.\n\nTroisième.\n\n" +
		"Quatrième paragraphe qui est bien trop long pour tenir avec les autres dans un seul morceau."
	got := texts(split(t, one(text), Options{Size: 70}))
	want := []string{
		"Premier paragraphe.\n\nDeuxième paragraphe, un peu plus long.",
		"Troisième.",
		"Quatrième paragraphe qui est bien trop long pour tenir avec les autres",
		"dans un seul morceau.",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestSentencesKeepTheirFullStop(t *testing.T) {
	text := "Une phrase courte. Une autre phrase. Et encore une dernière phrase ici."
	got := texts(split(t, one(text), Options{Size: 40}))
	want := []string{"Une phrase courte. Une autre phrase.", "Et encore une dernière phrase ici."}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHardCutOnRunes(t *testing.T) {
	text := strings.Repeat("é", 250) // no separator at all
	cs := split(t, one(text), Options{Size: 100})
	if got := []int{cs[0].End - cs[0].Start, cs[1].End - cs[1].Start, cs[2].End - cs[2].Start}; !slices.Equal(got, []int{100, 100, 50}) {
		t.Fatalf("rune lengths %v, want [100 100 50]", got)
	}
	// A joined emoji sequence (woman, ZWJ, laptop), a combining accent and
	// a flag (two regional indicators) are not split when a few runes back
	// will do, wherever the cut falls.
	for _, seq := range []string{"👩\u200d💻", "e\u0301", "🇫🇷", "👍🏽"} {
		for k := range 12 {
			text := strings.Repeat("a", k) + seq + strings.Repeat("b", 20)
			for _, c := range split(t, one(text), Options{Size: 10}) {
				r, _ := utf8.DecodeRuneInString(c.Text)
				if r == 0x200D || r == '💻' || r == 0x301 || r == '🇷' || r == 0x1F3FD {
					t.Fatalf("%q split: chunk %q", seq, c.Text)
				}
			}
		}
	}
}

func TestHardCutOnTokens(t *testing.T) {
	text := strings.Repeat("anticonstitutionnellement", 200) // 5000 characters, no separator
	cs := split(t, one(text), Options{Size: 50, Unit: Tokens})
	for _, c := range cs[:len(cs)-1] {
		if n := tokens.Text(c.Text); n < 45 {
			t.Fatalf("hard cut leaves a chunk of %d tokens, want about 50", n)
		}
	}
}

func TestTokensSizeRespected(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	text := randomText(r, 20000)
	for _, size := range []int{4, 7, 32, 256} {
		cs := split(t, one(text), Options{Size: size, Unit: Tokens})
		if size == 256 {
			// Chunks are filled: on average well over half the size.
			var sum int64
			for _, c := range cs {
				sum += tokens.Text(c.Text)
			}
			if avg := sum / int64(len(cs)); avg < int64(size)/2 {
				t.Errorf("size %d: average chunk of %d tokens", size, avg)
			}
		}
	}
}

func TestOverlap(t *testing.T) {
	text := strings.Repeat("Le citoyen dépose sa demande en ligne auprès de la préfecture. ", 30)
	o := Options{Size: 200, Overlap: 50}
	cs := split(t, one(text), o)
	if len(cs) < 5 {
		t.Fatalf("%d chunks", len(cs))
	}
	for i := 1; i < len(cs); i++ {
		ov := cs[i-1].End - cs[i].Start
		if ov <= 0 || ov > 50 {
			t.Fatalf("chunk %d overlaps by %d runes, want 1..50", i, ov)
		}
		// At a separator boundary: a word start, so after a space.
		if r := []rune(Join(one(text)))[cs[i].Start-1]; r != ' ' {
			t.Fatalf("chunk %d starts inside a word: %q", i, cs[i].Text[:20])
		}
		if ov < 40 {
			t.Errorf("chunk %d overlaps by %d runes only", i, ov)
		}
	}
	// In tokens.
	o = Options{Size: 60, Overlap: 15, Unit: Tokens}
	cs = split(t, one(text), o)
	overlapped := 0
	for i := 1; i < len(cs); i++ {
		if cs[i].Start < cs[i-1].End {
			overlapped++
		}
	}
	if overlapped < len(cs)-1 {
		t.Errorf("only %d of %d chunks overlap", overlapped, len(cs)-1)
	}
	// Overlap never makes a chunk exceed the size, even when the next piece
	// nearly fills it: the overlap shrinks.
	text = strings.Repeat("mot ", 20) + "\n\n" + strings.Repeat("x", 95) + "\n\n" + strings.Repeat("y ", 10)
	split(t, one(text), Options{Size: 100, Overlap: 30})
}

func TestOverlapAfterHardCut(t *testing.T) {
	text := strings.Repeat("abcdefghij", 30)
	cs := split(t, one(text), Options{Size: 100, Overlap: 10})
	for i := 1; i < len(cs); i++ {
		if ov := cs[i-1].End - cs[i].Start; ov != 10 {
			t.Fatalf("chunk %d overlaps by %d runes, want 10 (no separator: inside the word)", i, ov)
		}
	}
}

func TestRoundTripProperty(t *testing.T) {
	// Chunks minus their overlaps, with the whitespace between them, give
	// back the joined text (checkChunks); here also: without any
	// whitespace, they give back the text's non-whitespace characters.
	r := rand.New(rand.NewPCG(1, 2))
	strip := func(s string) string { return strings.Join(strings.Fields(s), "") }
	for i := range 200 {
		pages := randomPages(r, 50+r.IntN(3000))
		o := Options{Size: 1 + r.IntN(300), Preset: []string{"", PresetMarkdown}[i%2]}
		o.Overlap = r.IntN(o.Size)
		cs := split(t, pages, o)
		var b strings.Builder
		end := 0
		for _, c := range cs {
			tr := []rune(c.Text)
			b.WriteString(string(tr[max(0, end-c.Start):]))
			end = c.End
		}
		if strip(b.String()) != strip(Join(pages)) {
			t.Fatalf("round trip failed for %+v", o)
		}
	}
}

func TestRandomTexts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 300
	if testing.Short() {
		n = 50
	}
	for i := range n {
		pages := randomPages(r, 1+r.IntN(6000))
		o := randomOptions(r)
		if i%5 == 0 {
			o.Unit = Tokens
			o.Size = max(o.Size, MinTokenSize)
			o.Overlap %= o.Size
			o.MinSize %= o.Size + 1
		}
		split(t, pages, o)
	}
}

func randomOptions(r *rand.Rand) Options {
	o := Options{Size: 1 + r.IntN(400)}
	switch r.IntN(4) {
	case 0:
		o.Size = 1 + r.IntN(8)
	case 1:
		o.Size = 1000 + r.IntN(3000)
	}
	if r.IntN(2) == 0 {
		o.Overlap = r.IntN(o.Size)
	}
	if r.IntN(3) == 0 {
		o.MinSize = r.IntN(o.Size + 1)
	}
	o.Preset = []string{"", PresetText, PresetMarkdown, PresetHTML}[r.IntN(4)]
	switch r.IntN(5) {
	case 0:
		o.Separators = []string{"\n\n", "\n", ". ", " "} // OpenGateLLM's default
	case 1:
		o.Separators, o.IsRegex = []string{`\n{2,}`, `[.!?…]\s`, `\s`}, true
	case 2:
		o.Separators = []string{"é", "à"}
	}
	return o
}

func TestMinSize(t *testing.T) {
	// A tiny tail is merged into the previous chunk.
	text := strings.Repeat("mot ", 20) + "\n\nFin."
	cs := split(t, one(text), Options{Size: 90, MinSize: 10})
	if len(cs) != 1 || !strings.HasSuffix(cs[0].Text, "Fin.") {
		t.Fatalf("got %q", texts(cs))
	}
	// Cuts that would leave a short chunk are avoided when the window has
	// another boundary: here a sentence end is preferred to the short
	// paragraph "Voir.".
	text = "Voir.\n\n" + strings.Repeat("Une phrase de texte. ", 10)
	cs = split(t, one(text), Options{Size: 100, MinSize: 20})
	if strings.TrimSpace(cs[0].Text) == "Voir." {
		t.Fatalf("short first chunk: %q", texts(cs))
	}
	// A short chunk that fits with no neighbour is kept: text is never
	// dropped.
	text = "Titre\n\n" + strings.Repeat("x", 99) + "\n\n" + strings.Repeat("y", 99)
	cs = split(t, one(text), Options{Size: 100, MinSize: 20})
	if got := texts(cs); len(got) != 3 || got[0] != "Titre" {
		t.Fatalf("got %q", got)
	}
	// A whole text shorter than MinSize gives no chunk (as OpenGateLLM).
	if cs := split(t, one("  Court.  "), Options{MinSize: 10}); len(cs) != 0 {
		t.Fatalf("got %q", texts(cs))
	}
	if cs := split(t, one("Juste assez"), Options{MinSize: 11}); len(cs) != 1 {
		t.Fatalf("got %q", texts(cs))
	}
	// In tokens.
	text = strings.Repeat("Le modèle répond. ", 30)
	split(t, one(text), Options{Size: 40, MinSize: 30, Unit: Tokens})
}

func TestJoinNormalises(t *testing.T) {
	pages := []Page{{1, "a\r\nb\rc"}, {2, "d\xffe"}, {3, ""}, {4, "f"}}
	if got, want := Join(pages), "a\nb\nc\n\nd\uFFFDe\n\n\n\nf"; got != want {
		t.Fatalf("Join = %q, want %q", got, want)
	}
	cs := split(t, pages, Options{Size: 3})
	if got := texts(cs); !slices.Equal(got, []string{"a\nb", "c", "d\uFFFDe", "f"}) {
		t.Fatalf("got %q", got)
	}
	if cs[3].Page != 4 || cs[3].Start != 14 {
		t.Fatalf("last chunk %+v", cs[3])
	}
}

func TestPagesAndSpans(t *testing.T) {
	pages := []Page{
		{1, "Fin de la première page"},
		{2, "suite sur la deuxième page."},
		{3, strings.Repeat("Troisième page. ", 5)},
	}
	cs := split(t, pages, Options{Size: 60})
	if cs[0].Page != 1 || cs[0].PageEnd != 2 {
		t.Fatalf("first chunk on pages %d-%d, want 1-2: %q", cs[0].Page, cs[0].PageEnd, cs[0].Text)
	}
	last := cs[len(cs)-1]
	if last.Page != 3 || last.PageEnd != 3 {
		t.Fatalf("last chunk on pages %d-%d", last.Page, last.PageEnd)
	}
	// Without pages.
	for _, c := range split(t, one(strings.Repeat("mot ", 100)), Options{Size: 50}) {
		if c.Page != 0 || c.PageEnd != 0 {
			t.Fatalf("page %d-%d for a document without pages", c.Page, c.PageEnd)
		}
	}
}

func TestMarkdownHeadingsAcrossPages(t *testing.T) {
	para := func(word string, n int) string { return strings.TrimSpace(strings.Repeat(word+" est une phrase. ", n)) }
	// Every section is longer than a chunk, so every heading starts one.
	pages := []Page{
		{1, "# Guide\n\n" + para("Introduction", 8) + "\n\n## Installation\n\n" + para("Télécharger", 4)},
		{2, "Suite.\n\n" + para("Installer", 8) + "\n\n### Linux\n\n" + para("Paquet", 8)},
		{3, "## Utilisation\n\n" + para("Lancer", 8) + "\n\n# Annexe\n\n" + para("Licence", 8)},
	}
	for _, preset := range []string{PresetMarkdown, PresetHTML} {
		cs := split(t, pages, Options{Size: 150, Preset: preset})
		find := func(prefix string) Chunk {
			for _, c := range cs {
				if strings.HasPrefix(c.Text, prefix) {
					return c
				}
			}
			t.Fatalf("no chunk starts with %q in %q", prefix, texts(cs))
			return Chunk{}
		}
		for _, c := range []struct {
			prefix        string
			page, pageEnd int
			path          []string
		}{
			{"# Guide", 1, 1, []string{"Guide"}},
			{"## Installation", 1, 2, []string{"Guide", "Installation"}}, // spans pages 1 and 2
			{"Installer", 2, 2, []string{"Guide", "Installation"}},       // carried across the page
			{"### Linux", 2, 2, []string{"Guide", "Installation", "Linux"}},
			{"## Utilisation", 3, 3, []string{"Guide", "Utilisation"}},
			{"# Annexe", 3, 3, []string{"Annexe"}},
		} {
			got := find(c.prefix)
			if got.Page != c.page || got.PageEnd != c.pageEnd || !slices.Equal(got.Headings, c.path) {
				t.Errorf("%s: chunk %q: pages %d-%d headings %q, want %d-%d %q", preset, c.prefix, got.Page, got.PageEnd, got.Headings, c.page, c.pageEnd, c.path)
			}
		}
		// No heading inside a chunk: the heading boundaries come first.
		for _, c := range cs {
			if strings.Contains(c.Text, "\n#") {
				t.Errorf("%s: a heading inside a chunk: %q", preset, c.Text)
			}
		}
	}
	// Small sections are merged, as LangChain does; a chunk carries the path
	// in force where it starts.
	cs := split(t, pages, Options{Size: 700, Preset: PresetMarkdown})
	if len(cs) != 2 ||
		!strings.Contains(cs[0].Text, "\n## Installation") || !slices.Equal(cs[0].Headings, []string{"Guide"}) || cs[0].PageEnd != 2 ||
		!strings.HasPrefix(cs[1].Text, "### Linux") || !strings.Contains(cs[1].Text, "\n# Annexe") ||
		!slices.Equal(cs[1].Headings, []string{"Guide", "Installation", "Linux"}) || cs[1].Page != 2 || cs[1].PageEnd != 3 {
		for _, c := range cs {
			t.Logf("%q %d-%d %.40q", c.Headings, c.Page, c.PageEnd, c.Text)
		}
		t.Fatalf("merged sections")
	}
	// The text preset tracks no heading.
	for _, c := range split(t, pages, Options{Size: 150}) {
		if c.Headings != nil {
			t.Fatalf("text preset: headings %q", c.Headings)
		}
	}
}

func TestMarkdownStructure(t *testing.T) {
	doc := "---\ntitle: Front\n---\n" +
		"Titre principal\n===============\n\nTexte.\n\n" +
		"```bash\n# pas un titre\necho ok\n```\n\n" +
		"Sous-titre\n----------\n\n* * *\n\n" +
		"## Fermé ##\n\nFin.\n\n#\tTab\n\n#NonTitre\n"
	md := scanMarkdown(doc)
	var got [][]string
	for _, h := range md.headings {
		got = append(got, h.path)
	}
	want := [][]string{{"Titre principal"}, {"Titre principal", "Sous-titre"}, {"Titre principal", "Fermé"}, {"Tab"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("headings %q, want %q", got, want)
	}
	if len(md.fence) != 2 || len(md.rules) != 1 {
		t.Fatalf("fences %v, rules %v", md.fence, md.rules)
	}
	if doc[md.fence[0]:md.fence[0]+7] != "```bash" || doc[md.fence[1]] != '\n' || !strings.HasPrefix(doc[md.rules[0]:], "* * *") {
		t.Fatalf("fence cuts %v, rule cuts %v", md.fence, md.rules)
	}
	// The code block stays whole when it fits, with its fences.
	cs := split(t, one(doc), Options{Size: 60, Preset: PresetMarkdown})
	found := false
	for _, c := range cs {
		if c.Text == "```bash\n# pas un titre\necho ok\n```" {
			found = true
			if !slices.Equal(c.Headings, []string{"Titre principal"}) {
				t.Errorf("code block headings %q", c.Headings)
			}
		}
	}
	if !found {
		t.Fatalf("code block split: %q", texts(cs))
	}
}

func TestRegexSeparators(t *testing.T) {
	text := "Pourquoi ? Parce que ! Voilà… Fin. Encore une phrase assez longue pour couper."
	o := Options{Size: 30, Separators: []string{`[.!?…]\s+`, `\s+`}, IsRegex: true}
	got := texts(split(t, one(text), o))
	// As LangChain: the strongest boundary wins, even for a short chunk...
	want := []string{"Pourquoi ? Parce que ! Voilà…", "Fin.", "Encore une phrase assez longue", "pour couper."}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// ... unless MinSize says otherwise.
	o.MinSize = 10
	got = texts(split(t, one(text), o))
	want = []string{"Pourquoi ? Parce que ! Voilà…", "Fin. Encore une phrase assez", "longue pour couper."}
	if !slices.Equal(got, want) {
		t.Fatalf("min size: got %q, want %q", got, want)
	}
	o.MinSize = 0
	// The same separators as literals find nothing: only the hard cut.
	lit := texts(split(t, one(text), Options{Size: 30, Separators: o.Separators}))
	if len(lit) != 3 || lit[1] != "Fin. Encore une phrase assez l" {
		t.Fatalf("literal: got %q", lit)
	}
	// Zero-width matches are no boundaries (only the hard cut here).
	zw := texts(split(t, one("abcdefghijkl"), Options{Size: 5, Separators: []string{`\b`, `x*`}, IsRegex: true}))
	if !slices.Equal(zw, []string{"abcde", "fghij", "kl"}) {
		t.Fatalf("zero width: got %q", zw)
	}
}

func TestSplitterReuse(t *testing.T) {
	s, err := New(Options{Size: 50, Preset: PresetMarkdown})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Split(one("# A\n\n" + strings.Repeat("x ", 40)))
	b, _ := s.Split(one("# B\n\n" + strings.Repeat("y ", 40)))
	if a[0].Headings[0] != "A" || b[0].Headings[0] != "B" {
		t.Fatalf("%q %q", a[0].Headings, b[0].Headings)
	}
}
