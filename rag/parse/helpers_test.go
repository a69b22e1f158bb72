package parse

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Test files come from OpenGateLLM's test assets (MIT, © 2024 DINUM); see
// testdata/README.md.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustError asserts err is a *Error whose reason holds every want (case
// insensitive), and returns it.
func mustError(t testing.TB, err error, want ...string) *Error {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(pe.Reason), strings.ToLower(w)) {
			t.Errorf("reason %q does not mention %q", pe.Reason, w)
		}
	}
	return pe
}

func mustParse(t testing.TB, name, ct string, data []byte, lim Limits) *Document {
	t.Helper()
	doc, err := Parse(context.Background(), name, ct, data, lim)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			t.Fatalf("Parse(%s): %v (cause: %v)", name, err, pe.Err)
		}
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return doc
}

// flat collapses white space, so that assertions do not depend on where
// a parser breaks lines.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

func assertContains(t testing.TB, text string, wants ...string) {
	t.Helper()
	ft := flat(text)
	for _, w := range wants {
		if !strings.Contains(ft, flat(w)) {
			t.Errorf("text does not contain %q", w)
		}
	}
}

// withPDFBackend forces a PDF parser for one test; pdftotext tests are
// skipped, loudly, when the tool is not installed.
func withPDFBackend(t testing.TB, backend string) {
	t.Helper()
	if backend == ParserPdftotext {
		if _, err := exec.LookPath("pdftotext"); err != nil {
			t.Skip("SKIPPED: pdftotext is not on PATH, so the poppler path is NOT tested here; install it with `apt-get install -y poppler-utils` (CI does)")
		}
	}
	old, oldCmd := pdfBackend, pdftotextCmd
	pdfBackend = backend
	t.Cleanup(func() { pdfBackend, pdftotextCmd = old, oldCmd })
}

var pdfBackends = []string{ParserPdftotext, ParserPdfium}

// makeZip builds a ZIP archive from name/content pairs, in order.
func makeZip(t testing.TB, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		method := zip.Deflate
		if entries[i] == "mimetype" {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: entries[i], Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(entries[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const wNS = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"`

const docxContentTypes = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`

const docxRels = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`

// makeDOCX builds a minimal Word document around a body; styles and
// numbering are optional ("" leaves the part out).
func makeDOCX(t testing.TB, body, styles, numbering string) []byte {
	t.Helper()
	entries := []string{
		"[Content_Types].xml", docxContentTypes,
		"_rels/.rels", docxRels,
		"word/document.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + wNS + `><w:body>` + body + `</w:body></w:document>`,
	}
	if styles != "" {
		entries = append(entries, "word/styles.xml", `<?xml version="1.0" encoding="UTF-8"?><w:styles `+wNS+`>`+styles+`</w:styles>`)
	}
	if numbering != "" {
		entries = append(entries, "word/numbering.xml", `<?xml version="1.0" encoding="UTF-8"?><w:numbering `+wNS+`>`+numbering+`</w:numbering>`)
	}
	return makeZip(t, entries...)
}

func wp(style, text string) string {
	ppr := ""
	if style != "" {
		ppr = `<w:pPr><w:pStyle w:val="` + style + `"/></w:pPr>`
	}
	return `<w:p>` + ppr + `<w:r><w:t xml:space="preserve">` + text + `</w:t></w:r></w:p>`
}

func wli(numID, ilvl int, text string) string {
	return fmt.Sprintf(`<w:p><w:pPr><w:pStyle w:val="ListParagraph"/><w:numPr><w:ilvl w:val="%d"/><w:numId w:val="%d"/></w:numPr></w:pPr><w:r><w:t>%s</w:t></w:r></w:p>`, ilvl, numID, text)
}

func wtbl(rows ...[]string) string {
	var b strings.Builder
	b.WriteString(`<w:tbl><w:tblPr/><w:tblGrid/>`)
	for _, r := range rows {
		b.WriteString(`<w:tr>`)
		for _, c := range r {
			b.WriteString(`<w:tc><w:tcPr/>` + wp("", c) + `</w:tc>`)
		}
		b.WriteString(`</w:tr>`)
	}
	b.WriteString(`</w:tbl>`)
	return b.String()
}

const odtNS = `xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"`

// makeODT builds a minimal OpenDocument text around the content of
// office:text, with optional automatic styles.
func makeODT(t testing.TB, autoStyles, body string) []byte {
	t.Helper()
	return makeZip(t,
		"mimetype", "application/vnd.oasis.opendocument.text",
		"META-INF/manifest.xml", `<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>`,
		"content.xml", `<?xml version="1.0" encoding="UTF-8"?><office:document-content `+odtNS+` office:version="1.2"><office:automatic-styles>`+autoStyles+`</office:automatic-styles><office:body><office:text>`+body+`</office:text></office:body></office:document-content>`,
	)
}

// makePDF writes a small valid PDF with one page per string (Helvetica,
// WinAnsi: ASCII text only). extraTrailer is added to the trailer
// dictionary; extraObj, when set, becomes the last object and the
// trailer's /Encrypt.
func makePDF(pages []string, extraTrailer, extraObj string) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) int {
		offsets = append(offsets, b.Len())
		n := len(offsets)
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, body)
		return n
	}
	b.WriteString("%PDF-1.4\n%\xE2\xE3\xCF\xD3\n")
	n := len(pages)
	// 1 catalog, 2 pages, 3 font, then page/content pairs.
	kids := make([]string, n)
	for i := range n {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	for i, p := range pages {
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		var content strings.Builder
		content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
		for _, line := range strings.Split(p, "\n") {
			line = strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace(line)
			fmt.Fprintf(&content, "(%s) Tj T*\n", line)
		}
		content.WriteString("ET")
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()))
	}
	encRef := ""
	if extraObj != "" {
		num := obj(extraObj)
		encRef = fmt.Sprintf(" /Encrypt %d 0 R", num)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s %s >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, encRef, extraTrailer, xref)
	return b.Bytes()
}

// encryptedPDF has a Standard security handler whose /U entry does not
// match the empty user password: readers must ask for a password.
func encryptedPDF() []byte {
	hex32 := strings.Repeat("5A", 32)
	return makePDF([]string{"Secret text"},
		"/ID [<0123456789ABCDEF0123456789ABCDEF> <0123456789ABCDEF0123456789ABCDEF>]",
		"<< /Filter /Standard /V 1 /R 2 /O <"+hex32+"> /U <"+strings.Repeat("A5", 32)+"> /P -44 >>")
}
