package parse

import (
	"context"
	"testing"
)

// BenchmarkParsePDF reads pdf.pdf (2 pages) with each available parser
// and reports pages per second.
func BenchmarkParsePDF(b *testing.B) {
	data := readTestdata(b, "pdf.pdf")
	for _, backend := range pdfBackends {
		b.Run(backend, func(b *testing.B) {
			withPDFBackend(b, backend)
			mustParse(b, "pdf.pdf", "", data, Limits{}) // PDFium compiles once
			pages := 0
			b.ResetTimer()
			for b.Loop() {
				doc, err := Parse(context.Background(), "pdf.pdf", "application/pdf", data, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				pages += len(doc.Pages)
			}
			b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
		})
	}
}
