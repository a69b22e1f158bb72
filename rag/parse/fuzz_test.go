package parse

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzNames = []string{"a.pdf", "a.docx", "a.odt", "a.html", "a.md", "a.txt", "", "a.bin"}
var fuzzTypes = []string{"", "application/octet-stream", "text/plain", "application/pdf"}

// maxFuzzInput keeps executions fast: the fuzzer minimises every new
// interesting input by re-running it many times, and with inputs of
// hundreds of KB (mutated from earlier big corpus entries) that alone
// takes the whole fuzzing time. Larger files go through the same bounded
// code paths, tested by TestPDF, TestHTML, TestZipBomb...
const maxFuzzInput = 32 << 10

var fuzzLimits = Limits{MaxPages: 50, MaxExpandedBytes: 4 << 20, Timeout: 10 * time.Second}

// FuzzParse feeds random bytes under a few names and types. Parse must
// return a sane Document or an *Error, never panic or hang. The seeds run
// as a regression test with plain `go test`.
func FuzzParse(f *testing.F) {
	// Seeds stay small (a few KB): every input the fuzzer finds
	// interesting is minimised by re-running it many times, and large
	// seeds make that take the whole fuzzing time. The full testdata files
	// are covered by TestPDF, TestHTML... instead.
	html := string(readTestdata(f, "html.html"))
	i := strings.Index(html, `<table class="infobox_v2`)
	f.Add(uint8(3), uint8(0), []byte("<!DOCTYPE html><html><head><title>Coquillette — Wikipédia</title></head><body><main>"+html[i:i+5000]+"</main></body></html>"))
	f.Add(uint8(4), uint8(2), readTestdata(f, "markdown.md"))
	f.Add(uint8(5), uint8(0), readTestdata(f, "json.json"))
	f.Add(uint8(0), uint8(0), readTestdata(f, "pdf.pdf")[:3000]) // a damaged PDF
	f.Add(uint8(0), uint8(3), makePDF([]string{"Hello", "World"}, "", ""))
	f.Add(uint8(0), uint8(0), encryptedPDF())
	f.Add(uint8(1), uint8(0), makeDOCX(f, wp("Heading1", "Titre")+wli(1, 0, "élément")+wtbl([]string{"a", "b"}), frenchStyles, numbering))
	f.Add(uint8(2), uint8(0), makeODT(f, "", `<text:h>T</text:h><text:p>p<text:s text:c="3"/>x</text:p>`))
	f.Add(uint8(3), uint8(2), []byte(`<html><title>t</title><body><table><tr><td>a<hr></td></tr></table></body></html>`))
	f.Add(uint8(5), uint8(2), []byte("caf\xe9\r\nligne\fpage"))
	f.Add(uint8(6), uint8(0), []byte("PK\x03\x04garbage"))
	f.Add(uint8(7), uint8(0), []byte{0xFF, 0xFE, 'a', 0})

	f.Fuzz(func(t *testing.T, nameIdx, typeIdx uint8, data []byte) {
		if len(data) > maxFuzzInput {
			return // see maxFuzzInput
		}
		name := fuzzNames[int(nameIdx)%len(fuzzNames)]
		ct := fuzzTypes[int(typeIdx)%len(fuzzTypes)]
		start := time.Now()
		doc, err := Parse(context.Background(), name, ct, data, fuzzLimits)
		if d := time.Since(start); d > fuzzLimits.Timeout+3*time.Second {
			t.Fatalf("Parse took %v", d)
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("error %T %v is not an *Error with a reason", err, err)
			}
			if doc != nil {
				t.Fatal("both a document and an error")
			}
			return
		}
		if doc == nil || len(doc.Pages) == 0 || len(doc.Pages) > fuzzLimits.MaxPages {
			t.Fatalf("bad document %+v", doc)
		}
		if formatNames[doc.Format] == "" || doc.Parser == "" {
			t.Fatalf("format %q parser %q", doc.Format, doc.Parser)
		}
		var total int
		for i, p := range doc.Pages {
			if p.Number != i+1 {
				t.Fatalf("page %d numbered %d", i+1, p.Number)
			}
			if !utf8.ValidString(p.Text) || strings.ContainsRune(p.Text, 0) {
				t.Fatalf("page %d text is not clean UTF-8", p.Number)
			}
			total += len(p.Text)
		}
		if int64(total) > fuzzLimits.MaxExpandedBytes {
			t.Fatalf("%d bytes of text", total)
		}
	})
}

// FuzzBulk fuzzes ParseBulk. (Not named FuzzParseBulk: `-fuzz FuzzParse`
// would then match two targets and refuse to run.)
func FuzzBulk(f *testing.F) {
	f.Add(readTestdata(f, "json.json"))
	f.Add(readTestdata(f, "json_wrong_format.json"))
	f.Add([]byte(`[{"text":"a","metadata":{"x":[1,{"y":2.5e3}]}},{"title":null}]`))
	f.Add([]byte(`[1, "x", null, {"text": null}]`))
	f.Add([]byte("[{\"text\":\"\\u0000\"}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := ParseBulk(data, Limits{MaxPages: 100})
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("error %T %v is not an *Error with a reason", err, err)
			}
			if items != nil {
				t.Fatal("both items and an error")
			}
			return
		}
		if len(items) == 0 || len(items) > 100 {
			t.Fatalf("%d items", len(items))
		}
		for _, it := range items {
			if strings.TrimSpace(it.Text) == "" || !utf8.ValidString(it.Text) || strings.ContainsRune(it.Text, 0) {
				t.Fatalf("bad text %q", it.Text)
			}
		}
	})
}
