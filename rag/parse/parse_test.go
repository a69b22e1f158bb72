package parse

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

func TestPDF(t *testing.T) {
	data := readTestdata(t, "pdf.pdf")
	for _, backend := range pdfBackends {
		t.Run(backend, func(t *testing.T) {
			withPDFBackend(t, backend)
			doc := mustParse(t, "pdf.pdf", "application/pdf", data, Limits{})
			if doc.Format != FormatPDF || doc.Parser != backend {
				t.Errorf("format %q parser %q, want pdf/%s", doc.Format, doc.Parser, backend)
			}
			if len(doc.Pages) != 2 {
				t.Fatalf("%d pages, want 2", len(doc.Pages))
			}
			p1, p2 := doc.Pages[0], doc.Pages[1]
			if p1.Number != 1 || p2.Number != 2 {
				t.Errorf("page numbers %d, %d", p1.Number, p2.Number)
			}
			assertContains(t, p1.Text,
				"JOURNAL OFFICIEL DE LA RÉPUBLIQUE FRANÇAISE",
				"Décision du 18 juin 2023 portant délégation de signature",
				"La directrice interministérielle du numérique,",
				"Art. 1er. – Délégation est donnée à l’effet de signer",
				"strictement inférieur à 208 000 € hors taxes",
				"M. Ishan Bhojwani, agent contractuel",
				"lieutenante-colonelle de gendarmerie",
				"M. Yann Brûlé",
				"préfiguratrice du pôle « Brigade d’intervention numérique »",
			)
			assertContains(t, p2.Text,
				"Art. 4. – Délégation est donnée",
				"Mme Géraldine Taurand, attachée d’administration hors classe",
				"M. Aël Lebreton, attaché principal d’administration",
				"Mme Yamina Mebarkaoui, greffière des services judiciaires.",
				"Art. 8. – La présente décision sera publiée au Journal officiel de la République française.",
				"Fait le 18 juin 2023.",
				"S. SCHAER",
			)
			if strings.Contains(p1.Text, "Taurand") || strings.Contains(p2.Text, "Bhojwani") {
				t.Error("text landed on the wrong page")
			}
			for _, p := range doc.Pages {
				if strings.ContainsAny(p.Text, "\f\r\x00") {
					t.Errorf("page %d holds control characters", p.Number)
				}
			}
		})
	}
}

func TestPDFGenerated(t *testing.T) {
	data := makePDF([]string{"First page alpha\nsecond line", "Second page beta", "Third page gamma"}, "", "")
	for _, backend := range pdfBackends {
		t.Run(backend, func(t *testing.T) {
			withPDFBackend(t, backend)
			doc := mustParse(t, "gen.pdf", "", data, Limits{})
			if len(doc.Pages) != 3 {
				t.Fatalf("%d pages, want 3: %+v", len(doc.Pages), doc.Pages)
			}
			for i, w := range []string{"First page alpha second line", "Second page beta", "Third page gamma"} {
				assertContains(t, doc.Pages[i].Text, w)
			}

			_, err := Parse(context.Background(), "gen.pdf", "", data, Limits{MaxPages: 2})
			mustError(t, err, "more than", "2", "pages", "split")
		})
	}
}

func TestPDFMaxPagesRealFile(t *testing.T) {
	data := readTestdata(t, "pdf.pdf")
	for _, backend := range pdfBackends {
		t.Run(backend, func(t *testing.T) {
			withPDFBackend(t, backend)
			_, err := Parse(context.Background(), "pdf.pdf", "", data, Limits{MaxPages: 1})
			mustError(t, err, "pages", "limit", "1", "split it")
		})
	}
}

func TestPDFBrokenAndEncrypted(t *testing.T) {
	truncated := readTestdata(t, "pdf.pdf")[:2000]
	for _, backend := range pdfBackends {
		t.Run(backend, func(t *testing.T) {
			withPDFBackend(t, backend)
			_, err := Parse(context.Background(), "secret.pdf", "", encryptedPDF(), Limits{})
			mustError(t, err, "password", "remove the protection")

			_, err = Parse(context.Background(), "broken.pdf", "", []byte("%PDF-1.7\nthis is not a PDF at all\n"), Limits{})
			mustError(t, err, "PDF")

			// The first 2000 bytes of a real PDF: damaged, or readable
			// with nothing in it; either way an *Error.
			_, err = Parse(context.Background(), "cut.pdf", "", truncated, Limits{})
			mustError(t, err, "PDF")

			// A PDF whose only page has no text: a scan, to be OCRed.
			_, err = Parse(context.Background(), "scan.pdf", "", makePDF([]string{""}, "", ""), Limits{})
			mustError(t, err, "no text", "scan", "OCR")
		})
	}
}

func TestPdftotextFakes(t *testing.T) {
	// Fake tools stand in for pdftotext: this runs without poppler.
	oldBackend, oldCmd := pdfBackend, pdftotextCmd
	t.Cleanup(func() { pdfBackend, pdftotextCmd = oldBackend, oldCmd })
	pdfBackend = ParserPdftotext
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pdf := makePDF([]string{"x"}, "", "")

	t.Run("slow tool is killed at the timeout", func(t *testing.T) {
		pdftotextCmd = script("slow", "exec sleep 30")
		start := time.Now()
		_, err := Parse(context.Background(), "a.pdf", "", pdf, Limits{Timeout: 300 * time.Millisecond})
		pe := mustError(t, err, "took too long", "(more than 300ms)", "split")
		if !errors.Is(pe, context.DeadlineExceeded) {
			t.Errorf("cause %v, want deadline exceeded", pe.Err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("endless output is cut at MaxExpandedBytes", func(t *testing.T) {
		pdftotextCmd = script("yes", "exec yes 'texte sans fin'")
		start := time.Now()
		_, err := Parse(context.Background(), "a.pdf", "", pdf, Limits{MaxExpandedBytes: 1 << 20})
		mustError(t, err, "more than 1 MiB of text")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("password message", func(t *testing.T) {
		pdftotextCmd = script("pw", "echo 'Command Line Error: Incorrect password' >&2; exit 1")
		_, err := Parse(context.Background(), "a.pdf", "", pdf, Limits{})
		mustError(t, err, "password")
	})
	t.Run("crash", func(t *testing.T) {
		pdftotextCmd = script("crash", "kill -SEGV $$")
		_, err := Parse(context.Background(), "a.pdf", "", pdf, Limits{})
		mustError(t, err, "damaged")
	})
	t.Run("missing tool", func(t *testing.T) {
		pdftotextCmd = filepath.Join(dir, "does-not-exist")
		_, err := Parse(context.Background(), "a.pdf", "", pdf, Limits{})
		mustError(t, err, "try again later")
	})
	t.Run("form feeds split pages", func(t *testing.T) {
		pdftotextCmd = script("ff", `printf 'page one\n\fpage two\n\f'`)
		doc := mustParse(t, "a.pdf", "", pdf, Limits{})
		if len(doc.Pages) != 2 || doc.Pages[0].Text != "page one" || doc.Pages[1].Text != "page two" {
			t.Errorf("pages %+v", doc.Pages)
		}
	})
}

func TestPdfiumTimeout(t *testing.T) {
	withPDFBackend(t, ParserPdfium)
	pages := make([]string, 400)
	for i := range pages {
		pages[i] = strings.Repeat("Une ligne de texte assez longue pour occuper PDFium un moment.\n", 40)
	}
	data := makePDF(pages, "", "")
	start := time.Now()
	doc := mustParse(t, "long.pdf", "", data, Limits{}) // also warms PDFium up
	full := time.Since(start)
	if len(doc.Pages) != 400 {
		t.Fatalf("%d pages", len(doc.Pages))
	}

	timeout := max(full/5, 5*time.Millisecond)
	start = time.Now()
	_, err := Parse(context.Background(), "long.pdf", "", data, Limits{Timeout: timeout})
	pe := mustError(t, err, "took too long")
	if !errors.Is(pe, context.DeadlineExceeded) {
		t.Errorf("cause %v", pe.Err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("returned after %v with a %v timeout", d, timeout)
	}
	t.Logf("full parse %v (%.0f pages/s); timed out after %v", full, 400/full.Seconds(), time.Since(start))

	// The pool still works after an instance was killed.
	doc = mustParse(t, "pdf.pdf", "", readTestdata(t, "pdf.pdf"), Limits{})
	assertContains(t, doc.Pages[1].Text, "Géraldine Taurand")
}

func TestPDFParserChoice(t *testing.T) {
	oldBackend, oldCmd := pdfBackend, pdftotextCmd
	t.Cleanup(func() { pdfBackend, pdftotextCmd = oldBackend, oldCmd })
	pdfBackend = ""
	pdftotextCmd = "pdftotext-missing-for-this-test"
	if got := PDFParser(); got != ParserPdfium {
		t.Errorf("without pdftotext: %q", got)
	}
	pdftotextCmd = "sh" // anything on PATH
	if got := PDFParser(); got != ParserPdftotext {
		t.Errorf("with pdftotext: %q", got)
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range []string{"pdf.pdf", "markdown.md", "html.html"} {
		_, err := Parse(ctx, f, "", readTestdata(t, f), Limits{})
		pe := mustError(t, err, "cancelled")
		if !errors.Is(pe, context.Canceled) {
			t.Errorf("%s: cause %v, want context.Canceled", f, pe.Err)
		}
	}
}

func TestPanicIsRecovered(t *testing.T) {
	old := formatParsers[FormatText]
	t.Cleanup(func() { formatParsers[FormatText] = old })
	formatParsers[FormatText] = func(context.Context, []byte, Limits) (*Document, error) { panic("boom") }
	_, err := Parse(context.Background(), "a.txt", "", []byte("hello"), Limits{})
	pe := mustError(t, err, "could not be read")
	if pe.Err == nil || !strings.Contains(pe.Err.Error(), "boom") {
		t.Errorf("cause %v", pe.Err)
	}
}

func TestHTML(t *testing.T) {
	doc := mustParse(t, "html.html", "text/html", readTestdata(t, "html.html"), Limits{})
	if doc.Format != FormatHTML || doc.Parser != ParserHTMLToMarkdown || len(doc.Pages) != 1 {
		t.Fatalf("format %q parser %q pages %d", doc.Format, doc.Parser, len(doc.Pages))
	}
	if doc.Title != "Coquillette — Wikipédia" {
		t.Errorf("title %q", doc.Title)
	}
	text := doc.Pages[0].Text
	for _, want := range []string{
		"# Coquillette\n",
		"\n## Références\n",
		"\n## Bibliographie\n",
		"| Ingrédients | Farine de blé, eau, œufs |",
		"| Température de service | Chaud |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	assertContains(t, text, "Le mot est dérivé de « coquille »", "Cette forme de pâte typiquement")
	for _, bad := range []string{"<script", "RLQ=window.RLQ", "mw-parser-output", "<style", "Menu principal", "<!--THE END-->"} {
		if strings.Contains(text, bad) {
			t.Errorf("markdown holds %q", bad)
		}
	}
}

func TestHTMLSmall(t *testing.T) {
	page := `<!DOCTYPE html><html><head><title> Mon  titre </title><style>p{color:red}</style><script>alert("x")</script></head>
<body><nav><a href="/">Accueil</a></nav><h1>Résumé</h1><p>Un paragraphe accentué : été, œuvre.</p>
<table><tr><th>Nom</th><th>Âge</th></tr><tr><td>Zoé</td><td>7</td></tr></table>
<ul><li>un</li><li>deux</li></ul><div hidden>caché</div></body></html>`
	doc := mustParse(t, "", "", []byte(page), Limits{}) // no name, no type: sniffed
	if doc.Format != FormatHTML || doc.Title != "Mon titre" {
		t.Fatalf("format %q title %q", doc.Format, doc.Title)
	}
	text := doc.Pages[0].Text
	for _, want := range []string{"# Résumé", "Un paragraphe accentué : été, œuvre.", "| Nom | Âge |", "| Zoé | 7 |", "- un\n- deux"} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q in:\n%s", want, text)
		}
	}
	for _, bad := range []string{"alert", "color:red", "Accueil", "caché"} {
		if strings.Contains(text, bad) {
			t.Errorf("markdown holds %q", bad)
		}
	}

	// Latin-1 HTML is read through the Windows-1252 fallback.
	latin := []byte("<html><head><title>Caf\xe9</title></head><body><p>cr\xe8me br\xfbl\xe9e</p></body></html>")
	doc = mustParse(t, "old.htm", "", latin, Limits{})
	if doc.Title != "Café" || !strings.Contains(doc.Pages[0].Text, "crème brûlée") {
		t.Errorf("latin-1: title %q text %q", doc.Title, doc.Pages[0].Text)
	}

	deep := strings.Repeat("<div>", 5000) + "x" + strings.Repeat("</div>", 5000)
	_, err := Parse(context.Background(), "deep.html", "", []byte(deep), Limits{})
	mustError(t, err, "nests", "levels deep")
}

func TestMarkdown(t *testing.T) {
	raw := readTestdata(t, "markdown.md")
	doc := mustParse(t, "markdown.md", "text/markdown", raw, Limits{})
	if doc.Format != FormatMarkdown || doc.Parser != ParserMarkdown || len(doc.Pages) != 1 {
		t.Fatalf("format %q parser %q pages %d", doc.Format, doc.Parser, len(doc.Pages))
	}
	if doc.Title != "Dauphinois de potimarron - recette végétarienne cuisine-libre.org" {
		t.Errorf("title %q", doc.Title)
	}
	if want := strings.Trim(string(raw), "\n"); doc.Pages[0].Text != want {
		t.Errorf("markdown was not kept as is")
	}
	assertContains(t, doc.Pages[0].Text, "## Ingrédients pour 4", "- potimarron de 1 kg (ou plus)", "Préchauffer le four à 180/200°C.")

	// BOM and CRLF.
	crlf := append([]byte{0xEF, 0xBB, 0xBF}, []byte("## Titre\r\n\r\nLigne é\r\nautre\r\n")...)
	doc = mustParse(t, "x.markdown", "", crlf, Limits{})
	if doc.Pages[0].Text != "## Titre\n\nLigne é\nautre" || doc.Title != "Titre" {
		t.Errorf("got %q title %q", doc.Pages[0].Text, doc.Title)
	}
	// A heading inside a code fence is no title.
	doc = mustParse(t, "x.md", "", []byte("```\n# not a title\n```\ntext\n## Real\n"), Limits{})
	if doc.Title != "Real" {
		t.Errorf("title %q", doc.Title)
	}
}

func TestText(t *testing.T) {
	doc := mustParse(t, "notes.txt", "text/plain", []byte("\xEF\xBB\xBFpremière ligne\r\ndeuxième\rtroisième\r\n"), Limits{})
	if doc.Format != FormatText || doc.Pages[0].Text != "première ligne\ndeuxième\ntroisième" {
		t.Errorf("got %q", doc.Pages[0].Text)
	}

	// Windows-1252 / Latin-1 fallback.
	doc = mustParse(t, "latin.txt", "", []byte("Le caf\xe9 cr\xe8me co\xfbte 2 \x80.\n"), Limits{})
	if doc.Pages[0].Text != "Le café crème coûte 2 €." {
		t.Errorf("cp1252: %q", doc.Pages[0].Text)
	}

	// UTF-16 with a byte-order mark.
	u := utf16.Encode([]rune("Élève\nsuivant"))
	le := []byte{0xFF, 0xFE}
	for _, c := range u {
		le = append(le, byte(c), byte(c>>8))
	}
	doc = mustParse(t, "utf16.txt", "", le, Limits{})
	if doc.Pages[0].Text != "Élève\nsuivant" {
		t.Errorf("utf16: %q", doc.Pages[0].Text)
	}

	// Form feeds separate pages.
	doc = mustParse(t, "pages.txt", "", []byte("un\fdeux\ftrois\f"), Limits{})
	if len(doc.Pages) != 3 || doc.Pages[2].Text != "trois" || doc.Pages[2].Number != 3 {
		t.Errorf("pages %+v", doc.Pages)
	}
	if doc.Text() != "un\n\ndeux\n\ntrois" {
		t.Errorf("Text() %q", doc.Text())
	}
	_, err := Parse(context.Background(), "pages.txt", "", []byte("un\fdeux\ftrois"), Limits{MaxPages: 2})
	mustError(t, err, "3 pages", "limit of 2")

	// Size limit on the text itself.
	_, err = Parse(context.Background(), "big.txt", "", bytes.Repeat([]byte("a"), 2000), Limits{MaxExpandedBytes: 1000})
	mustError(t, err, "more than 1000 bytes of text")

	// No text at all.
	_, err = Parse(context.Background(), "blank.txt", "", []byte(" \n\n\t\n"), Limits{})
	mustError(t, err, "no text")
	_, err = Parse(context.Background(), "empty.txt", "", nil, Limits{})
	mustError(t, err, "empty")

	// No name, no type: plain text.
	doc = mustParse(t, "", "", []byte("juste du texte"), Limits{})
	if doc.Format != FormatText {
		t.Errorf("format %q", doc.Format)
	}
}

func TestLyingFiles(t *testing.T) {
	docx := makeDOCX(t, wp("", "bonjour"), "", "")
	pdf := readTestdata(t, "pdf.pdf")
	rnd := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.UintN(256))
	}
	plainZip := makeZip(t, "a.txt", "hello", "b/c.txt", "world")

	cases := []struct {
		name, ct string
		data     []byte
		want     []string
	}{
		{"report.pdf", "application/pdf", plainZip, []string{`named "report.pdf"`, "not a PDF", "starts like a ZIP archive", "fix its name"}},
		{"report.pdf", "", docx, []string{`named "report.pdf"`, "not a PDF", "Word document"}},
		{"lettre.docx", "", pdf, []string{`named "lettre.docx"`, "not a Word document", "it is a PDF"}},
		{"notes.txt", "text/plain", rnd, []string{`named "notes.txt"`, "not plain text", "binary data"}},
		{"page.html", "", pdf, []string{"not an HTML page", "it is a PDF"}},
		{"texte.odt", "", docx, []string{"not an OpenDocument text", "Word document"}},
		{"lettre.docx", "", plainZip, []string{"not a Word document", "ZIP archive"}},
		{"report.pdf", "text/html", pdf, []string{`content type "text/html"`, "is a PDF", "right content type"}},
		{"x.md", "application/pdf", []byte("# hello"), []string{`content type "application/pdf"`, "Markdown"}},
		{"", "", []byte("\x89PNG\r\n\x1a\nxxxxxxxx"), []string{"unsupported file type", "PNG image", "PDF, DOCX, ODT, HTML, Markdown or plain text"}},
		{"scan.png", "image/png", []byte("\x89PNG\r\n\x1a\nxxxxxxxx"), []string{"images are not supported", "OCR"}},
		{"old.doc", "", []byte("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"), []string{"save it as .docx"}},
		{"", "", []byte("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"), []string{"old Microsoft Office file"}},
		{"sheet.xlsx", "", makeZip(t, "xl/workbook.xml", "<x/>"), []string{"spreadsheets are not supported"}},
		{"", "", makeZip(t, "xl/workbook.xml", "<x/>"), []string{"Excel workbook"}},
		{"C:\\Users\\moi\\rapport.pdf", "", []byte("hello"), []string{`named "rapport.pdf"`, "it is text"}},
		{"x.pdf", "", nil, []string{"empty"}},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.ct, func(t *testing.T) {
			start := time.Now()
			_, err := Parse(context.Background(), c.name, c.ct, c.data, Limits{})
			mustError(t, err, c.want...)
			if _, derr := Detect(c.name, c.ct, c.data); derr == nil {
				t.Error("Detect accepted it")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	docx := makeDOCX(t, wp("", "x"), "", "")
	odt := makeODT(t, "", `<text:p>x</text:p>`)
	pdf := makePDF([]string{"x"}, "", "")
	cases := []struct {
		name, ct string
		data     []byte
		want     string
	}{
		{"a.PDF", "application/octet-stream", pdf, FormatPDF},
		{"", "", pdf, FormatPDF},
		{"noext", "application/pdf", pdf, FormatPDF},
		{"a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx, FormatDOCX},
		{"a.docx", "application/msword", docx, FormatDOCX},
		{"", "", docx, FormatDOCX},
		{"a.odt", "application/vnd.oasis.opendocument.text", odt, FormatODT},
		{"", "application/zip", odt, FormatODT},
		{"a.html", "text/plain", []byte("<p>x</p>"), FormatHTML},
		{"a.htm", "text/html; charset=utf-8", []byte("<p>x</p>"), FormatHTML},
		{"", "", []byte("  <!DOCTYPE html><p>x</p>"), FormatHTML},
		{"", "text/html", []byte("<p>x</p>"), FormatHTML},
		{"a.md", "text/plain", []byte("# x"), FormatMarkdown},
		{"", "text/markdown", []byte("# x"), FormatMarkdown},
		{"a.txt", "", []byte("<html>but named txt</html>"), FormatText},
		{"data.csv", "text/csv", []byte("a,b\n1,2\n"), FormatText},
		{"data.json", "application/json", []byte(`{"a":1}`), FormatText},
		{"x.weird", "x-unknown/type", []byte("texte"), FormatText},
		{"notes.md", "", []byte("Un fichier commence par %PDF-1.7 mais ce n'est pas un PDF."), FormatMarkdown},
		{"", "", append([]byte("junk before\n"), pdf...), FormatPDF},
	}
	for _, c := range cases {
		got, err := Detect(c.name, c.ct, c.data)
		if err != nil || got != c.want {
			t.Errorf("Detect(%q, %q) = %q, %v; want %q", c.name, c.ct, got, err, c.want)
		}
	}
}
