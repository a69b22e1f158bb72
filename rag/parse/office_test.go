package parse

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// French Word names its heading styles "Titre1"... with the built-in name
// "heading 1"; the Title style is "Titre".
const frenchStyles = `
<w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>
<w:style w:type="paragraph" w:styleId="Titre"><w:name w:val="Title"/><w:basedOn w:val="Normal"/></w:style>
<w:style w:type="paragraph" w:styleId="Titre1"><w:name w:val="heading 1"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="Titre2"><w:name w:val="heading 2"/><w:basedOn w:val="Normal"/></w:style>
<w:style w:type="paragraph" w:styleId="MonChapitre"><w:name w:val="Mon chapitre"/><w:basedOn w:val="Titre2"/></w:style>
<w:style w:type="paragraph" w:styleId="ListParagraph"><w:name w:val="List Paragraph"/></w:style>
<w:style w:type="character" w:styleId="Strong"><w:name w:val="Strong"/></w:style>`

const numbering = `
<w:abstractNum w:abstractNumId="0"><w:lvl w:ilvl="0"><w:numFmt w:val="bullet"/></w:lvl><w:lvl w:ilvl="1"><w:numFmt w:val="bullet"/></w:lvl></w:abstractNum>
<w:abstractNum w:abstractNumId="1"><w:lvl w:ilvl="0"><w:numFmt w:val="decimal"/></w:lvl></w:abstractNum>
<w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>
<w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num>`

func TestDOCX(t *testing.T) {
	body := wp("Titre", "Rapport d’activité") +
		wp("Titre1", "Première partie") +
		wp("", "Un paragraphe accentué : élève, œuvre, ça.") +
		`<w:p><w:r><w:t>Avant</w:t></w:r><w:r><w:tab/><w:t>après tabulation</w:t><w:br/><w:t>nouvelle ligne</w:t></w:r></w:p>` +
		wli(1, 0, "pommes") + wli(1, 1, "reinettes") + wli(1, 0, "poires") +
		wp("", "Entre deux listes.") +
		wli(2, 0, "étape un") + wli(2, 0, "étape deux") +
		wtbl([]string{"Nom", "Âge"}, []string{"Zoé", "7"}, []string{"Léo | le grand", "9"}) +
		wp("MonChapitre", "Section héritée") +
		// Tracked deletion and moved-from text are not current text.
		`<w:p><w:r><w:t xml:space="preserve">Texte </w:t></w:r><w:del><w:r><w:delText>supprimé</w:delText></w:r></w:del><w:ins><w:r><w:t>inséré</w:t></w:r></w:ins></w:p>` +
		// A text box comes twice: mc:Choice and mc:Fallback.
		`<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><w:txbxContent>` + wp("", "Encadré unique") + `</w:txbxContent></w:drawing></mc:Choice><mc:Fallback><w:pict><w:txbxContent>` + wp("", "Encadré unique") + `</w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>` +
		`<w:p><w:r><w:t>Fin page un.</w:t></w:r><w:r><w:br w:type="page"/></w:r><w:r><w:t>Début page deux.</w:t></w:r></w:p>` +
		wp("Titre2", "Annexe") +
		`<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr>`
	data := makeDOCX(t, body, frenchStyles, numbering)
	doc := mustParse(t, "rapport.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", data, Limits{})
	if doc.Format != FormatDOCX || doc.Parser != ParserDocxXML {
		t.Errorf("format %q parser %q", doc.Format, doc.Parser)
	}
	if doc.Title != "Rapport d’activité" {
		t.Errorf("title %q", doc.Title)
	}
	if len(doc.Pages) != 2 {
		t.Fatalf("%d pages: %+v", len(doc.Pages), doc.Pages)
	}
	wantPage1 := `# Rapport d’activité

# Première partie

Un paragraphe accentué : élève, œuvre, ça.

Avant	après tabulation
nouvelle ligne

- pommes
  - reinettes
- poires

Entre deux listes.

1. étape un
2. étape deux

| Nom | Âge |
| --- | --- |
| Zoé | 7 |
| Léo \| le grand | 9 |

## Section héritée

Texte inséré

Encadré unique

Fin page un.`
	if doc.Pages[0].Text != wantPage1 {
		t.Errorf("page 1:\n%s\n--- want:\n%s", doc.Pages[0].Text, wantPage1)
	}
	if want := "Début page deux.\n\n## Annexe"; doc.Pages[1].Text != want {
		t.Errorf("page 2: %q, want %q", doc.Pages[1].Text, want)
	}

	_, err := Parse(context.Background(), "rapport.docx", "", data, Limits{MaxPages: 1})
	mustError(t, err, "2 pages", "limit of 1")
}

func TestDOCXWithoutStyles(t *testing.T) {
	body := wp("Heading2", "Sous-titre") + wp("Title", "Le titre") + wp("", "Corps") +
		// Table in a table cell, and a one-column layout table.
		`<w:tbl><w:tr><w:tc>` + wp("", "A") + `</w:tc><w:tc>` + wtbl([]string{"x", "y"}, []string{"z", "w"}) + `</w:tc></w:tr></w:tbl>` +
		wtbl([]string{"Encadré seul"})
	doc := mustParse(t, "a.docx", "", makeDOCX(t, body, "", ""), Limits{})
	want := "## Sous-titre\n\n# Le titre\n\nCorps\n\n| A | x \\| y; z \\| w |\n| --- | --- |\n\nEncadré seul"
	if doc.Pages[0].Text != want {
		t.Errorf("got:\n%s\nwant:\n%s", doc.Pages[0].Text, want)
	}
	if doc.Title != "Le titre" {
		t.Errorf("title %q", doc.Title)
	}
}

func TestDOCXMainPartFromRels(t *testing.T) {
	rels := strings.Replace(docxRels, "word/document.xml", "/custom/main.xml", 1)
	data := makeZip(t,
		"[Content_Types].xml", docxContentTypes,
		"_rels/.rels", rels,
		"custom/main.xml", `<w:document `+wNS+`><w:body>`+wp("", "ailleurs")+`</w:body></w:document>`)
	doc := mustParse(t, "a.docx", "", data, Limits{})
	if doc.Pages[0].Text != "ailleurs" {
		t.Errorf("got %q", doc.Pages[0].Text)
	}
}

func TestDOCXBroken(t *testing.T) {
	_, err := Parse(context.Background(), "a.docx", "", makeZip(t, "word/document.xml", "<w:document><w:body><w:p>"), Limits{})
	mustError(t, err, "damaged", "not valid XML")

	_, err = Parse(context.Background(), "a.docx", "", makeDOCX(t, "", "", ""), Limits{})
	mustError(t, err, "no text")

	deep := strings.Repeat("<w:sdt>", 1000) + strings.Repeat("</w:sdt>", 1000)
	_, err = Parse(context.Background(), "a.docx", "", makeDOCX(t, deep, "", ""), Limits{})
	mustError(t, err, "levels deep")

	// Truncated archive.
	full := makeDOCX(t, wp("", "x"), "", "")
	_, err = Parse(context.Background(), "a.docx", "", full[:len(full)/2], Limits{})
	mustError(t, err)
}

func TestODT(t *testing.T) {
	styles := `<text:list-style style:name="L1"><text:list-level-style-bullet text:level="1"/></text:list-style>
<text:list-style style:name="L2"><text:list-level-style-number text:level="1"/></text:list-style>`
	body := `<text:sequence-decls><text:sequence-decl text:name="Table"/></text:sequence-decls>
<text:h text:outline-level="1">Compte rendu</text:h>
<text:p>Texte   accentué :<text:s text:c="2"/>élève<text:tab/>œuvre<text:line-break/>suite<text:note><text:note-citation>1</text:note-citation><text:note-body><text:p>note</text:p></text:note-body></text:note>.</text:p>
<text:h text:outline-level="2">Liste</text:h>
<text:list text:style-name="L1"><text:list-item><text:p>pommes</text:p><text:list><text:list-item><text:p>reinettes</text:p></text:list-item></text:list></text:list-item><text:list-item><text:p>poires</text:p></text:list-item></text:list>
<text:list text:style-name="L2"><text:list-item><text:p>étape un</text:p></text:list-item><text:list-item><text:p>étape deux</text:p></text:list-item></text:list>
<table:table table:name="T"><table:table-column/><table:table-row><table:table-cell><text:p>Nom</text:p></table:table-cell><table:table-cell><text:p>Âge</text:p></table:table-cell></table:table-row><table:table-row><table:table-cell><text:p>Zoé</text:p></table:table-cell><table:table-cell><text:p>7</text:p></table:table-cell><table:covered-table-cell/></table:table-row></table:table>
<text:p><office:annotation><text:p>commentaire</text:p></office:annotation>Fin.</text:p>`
	data := makeODT(t, styles, body)
	doc := mustParse(t, "cr.odt", "application/vnd.oasis.opendocument.text", data, Limits{})
	if doc.Format != FormatODT || doc.Parser != ParserOdtXML {
		t.Errorf("format %q parser %q", doc.Format, doc.Parser)
	}
	if doc.Title != "Compte rendu" {
		t.Errorf("title %q", doc.Title)
	}
	want := `# Compte rendu

Texte accentué :  élève	œuvre
suite.

## Liste

- pommes
  - reinettes
- poires
1. étape un
2. étape deux

| Nom | Âge |
| --- | --- |
| Zoé | 7 |

Fin.`
	if len(doc.Pages) != 1 || doc.Pages[0].Text != want {
		t.Errorf("got:\n%s\n--- want:\n%s", doc.Pages[0].Text, want)
	}
}

// bombZip has one entry of n zero bytes (deflate shrinks it about 1000×)
// and, when lie is set, declares only 100 bytes for it.
func bombZip(t *testing.T, name string, n int, lie bool, extra ...string) []byte {
	t.Helper()
	var comp bytes.Buffer
	fw := zip.NewWriter(&comp)
	w, _ := fw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	chunk := make([]byte, 1<<20)
	copy(chunk, "<w:document><w:body><w:p><w:r><w:t>")
	for written := 0; written < n; written += len(chunk) {
		w.Write(chunk[:min(len(chunk), n-written)])
		clear(chunk[:64])
	}
	fw.Close()
	// Re-read to get the raw compressed bytes and the honest header.
	zr, err := zip.NewReader(bytes.NewReader(comp.Bytes()), int64(comp.Len()))
	if err != nil {
		t.Fatal(err)
	}
	f := zr.File[0]
	raw, err := f.OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for i := 0; i+1 < len(extra); i += 2 {
		ew, _ := zw.Create(extra[i])
		ew.Write([]byte(extra[i+1]))
	}
	h := f.FileHeader
	if lie {
		h.UncompressedSize64 = 100
	}
	rw, err := zw.CreateRaw(&h)
	if err != nil {
		t.Fatal(err)
	}
	var rawBuf bytes.Buffer
	rawBuf.ReadFrom(raw)
	rw.Write(rawBuf.Bytes())
	zw.Close()
	return out.Bytes()
}

func TestZipBomb(t *testing.T) {
	lim := Limits{MaxExpandedBytes: 4 << 20}
	t.Run("declared size over the limit", func(t *testing.T) {
		data := bombZip(t, "word/document.xml", 64<<20, false)
		if len(data) > 1<<20 {
			t.Fatalf("bomb is %d bytes", len(data))
		}
		start := time.Now()
		_, err := Parse(context.Background(), "bomb.docx", "", data, lim)
		pe := mustError(t, err, "expands to more than 4 MiB", "zip bomb")
		if !errors.Is(pe, errZipBomb) {
			t.Errorf("cause %v", pe.Err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("took %v", d)
		}
	})
	t.Run("declared size lies", func(t *testing.T) {
		data := bombZip(t, "content.xml", 64<<20, true, "mimetype", "application/vnd.oasis.opendocument.text")
		start := time.Now()
		_, err := Parse(context.Background(), "bomb.odt", "", data, lim)
		mustError(t, err) // archive/zip stops at the declared size: "damaged"
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("took %v", d)
		}
	})
	t.Run("budget shared across entries", func(t *testing.T) {
		// document.xml (3 MiB) fits the 4 MiB limit alone, but
		// styles.xml already used 2 MiB of it.
		data := bombZip(t, "word/document.xml", 3<<20, false, "word/styles.xml", strings.Repeat(" ", 2<<20))
		_, err := Parse(context.Background(), "bomb.docx", "", data, lim)
		mustError(t, err, "zip bomb")
	})
	t.Run("too many entries", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i := range maxZipEntries + 1 {
			zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("f%d", i), Method: zip.Store})
		}
		w, _ := zw.Create("word/document.xml")
		w.Write([]byte(`<w:document ` + wNS + `><w:body>` + wp("", "x") + `</w:body></w:document>`))
		zw.Close()
		_, err := Parse(context.Background(), "many.docx", "", buf.Bytes(), Limits{})
		mustError(t, err, "10002 files inside", "more than 10000")
	})
}
