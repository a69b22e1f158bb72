package chunk

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzSplit splits random text with random valid options (and random
// separators, which may be rejected with an OptionError): it must never
// panic, and every invariant of checkChunks must hold.
//
// flags: bit 0 tokens, bit 1 MinSize, bits 2-3 preset, bit 4 custom
// separators (seps split at "|"), bit 5 regular expressions, bit 6 pages
// (text split at "\f").
func FuzzSplit(f *testing.F) {
	for _, s := range []struct {
		text                   string
		size, overlap, minSize uint16
		flags                  uint8
		seps                   string
	}{
		{"Bonjour à tous. Ça va ?\n\n# Titre\n\nUn texte assez long pour être coupé en morceaux.", 20, 5, 0, 0, ""},
		{"# Guide\n\nIntro.\n\n## Installation\n\n```sh\n# pas un titre\nmake\n```\n\n---\n\nFin.", 30, 10, 8, 2 | 2<<2, ""},
		{"Titre\n=====\n\nTexte\r\nsuite\rfin", 10, 0, 3, 2 | 3<<2 | 64, ""},
		{strings.Repeat("anticonstitutionnellement", 20), 30, 29, 0, 1, ""},
		{strings.Repeat("🙂👩\u200d💻e\u0301", 30), 7, 3, 2, 1 | 2, ""},
		{"page un\fpage deux\f\fpage quatre", 5, 2, 0, 64, ""},
		{"a.b.c.d.e.f.g.h", 3, 1, 1, 2 | 16, ".|"},
		{"Pourquoi ? Parce que ! Voilà… Fin.", 12, 4, 0, 16 | 32, `[.!?…]\s+|\s+|`},
		{"zéro largeur", 4, 0, 0, 16 | 32, `\b|x*`},
		{"invalide", 4, 0, 0, 16 | 32, `a(b`},
		{"\xff\xfe mauvais \xc3 UTF-8", 4, 1, 0, 1, ""},
		{" \t\n\u00a0\u3000 ", 4, 0, 0, 0, ""},
		{"", 1, 0, 0, 0, ""},
	} {
		f.Add(s.text, s.size, s.overlap, s.minSize, s.flags, s.seps)
	}
	f.Fuzz(func(t *testing.T, text string, size, overlap, minSize uint16, flags uint8, seps string) {
		o := Options{Size: 1 + int(size)%400}
		if flags&1 != 0 {
			o.Unit = Tokens
			o.Size = max(o.Size, MinTokenSize)
		}
		o.Overlap = int(overlap) % o.Size
		if flags&2 != 0 {
			o.MinSize = int(minSize) % (o.Size + 1)
		}
		o.Preset = []string{"", PresetText, PresetMarkdown, PresetHTML}[flags>>2&3]
		if flags&16 != 0 {
			o.Separators = strings.Split(seps, "|")
			o.IsRegex = flags&32 != 0
		}
		pages := one(text)
		if flags&64 != 0 {
			pages = nil
			for i, p := range strings.Split(text, "\f") {
				pages = append(pages, Page{Number: i + 1, Text: p})
			}
		}
		watchdog := time.AfterFunc(time.Minute, func() { panic(fmt.Sprintf("Split hangs: %+v", o)) })
		cs, err := Split(pages, o)
		watchdog.Stop()
		if err != nil {
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Field != "separators" {
				t.Fatalf("Split(%+v): %v", o, err)
			}
			return
		}
		checkChunks(t, pages, o, cs)
	})
}
