// Package parse turns an uploaded file into text, page by page, for the RAG
// pipeline. It supports PDF (poppler's pdftotext when installed, otherwise
// PDFium compiled to WebAssembly), DOCX, ODT, HTML, Markdown and plain text,
// plus OpenGateLLM's JSON bulk format (ParseBulk).
//
// Every entry point is meant for hostile input: work is bounded by Limits
// (pages, expanded bytes, time), external tools are killed on timeout, and
// no panic escapes. Problems the uploader can fix (wrong extension, broken
// or encrypted file, too many pages...) come back as *Error, whose Reason is
// written for the end user; the HTTP layer answers 422 with it.
package parse

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// Formats returned in Document.Format and by Detect.
const (
	FormatPDF      = "pdf"
	FormatDOCX     = "docx"
	FormatODT      = "odt"
	FormatHTML     = "html"
	FormatMarkdown = "markdown"
	FormatText     = "text"
)

// Parsers reported in Document.Parser.
const (
	ParserPdftotext      = "pdftotext"
	ParserPdfium         = "go-pdfium"
	ParserDocxXML        = "docx-xml"
	ParserOdtXML         = "odt-xml"
	ParserHTMLToMarkdown = "html-to-markdown"
	ParserMarkdown       = "markdown"
	ParserText           = "text"
)

// Default limits, used for zero fields of Limits.
const (
	DefaultMaxPages         = 2000
	DefaultMaxExpandedBytes = 64 << 20
	DefaultTimeout          = 60 * time.Second
)

// Limits bound the work done on one file. Zero fields take the defaults.
type Limits struct {
	// MaxPages is the most pages a document may have (PDF pages, DOCX pages
	// split on explicit page breaks, text pages split on form feeds), and
	// the most items a bulk JSON file may hold. Default 2000.
	MaxPages int
	// MaxExpandedBytes bounds the extracted text, the output read from
	// external tools, and the bytes decompressed from ZIP entries
	// (declared and actual sizes). Default 64 MiB.
	MaxExpandedBytes int64
	// Timeout bounds the whole parse, external tools included. Default 60s.
	Timeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxPages <= 0 {
		l.MaxPages = DefaultMaxPages
	}
	if l.MaxExpandedBytes <= 0 {
		l.MaxExpandedBytes = DefaultMaxExpandedBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// Page is the text of one page. Number counts from 1. Text is Markdown
// where the structure is known (HTML, DOCX and ODT headings, lists and
// tables), plain text otherwise.
type Page struct {
	Number int    `json:"number"`
	Text   string `json:"text"`
}

// Document is the text extracted from one file.
type Document struct {
	Format string `json:"format"` // one of the Format* constants
	Parser string `json:"parser"` // one of the Parser* constants: what extracted the text
	Title  string `json:"title,omitempty"`
	Pages  []Page `json:"pages"`
}

// Text returns the pages joined by blank lines.
func (d *Document) Text() string {
	parts := make([]string, 0, len(d.Pages))
	for _, p := range d.Pages {
		if p.Text != "" {
			parts = append(parts, p.Text)
		}
	}
	return strings.Join(parts, "\n\n")
}

// Error is a problem with the uploaded file itself: unsupported, lying about
// its type, broken, encrypted, too big or too slow to read. Reason tells the
// user what is wrong and what to fix; the HTTP layer answers 422 with it.
// Err, when set, is the underlying cause, for logs only (it may hold
// internal details); errors.Is(err, context.Canceled) works through it.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

func errorf(format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

func wrapf(err error, format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf(format, args...), Err: err}
}

// Parse extracts the text of an uploaded file. name is the uploaded file
// name and contentType the declared content type (both may be empty); the
// format is taken from the bytes and must agree with what the name and type
// claim (see Detect). The error is always an *Error, except that a context
// cancelled by the caller gives an *Error whose Err is ctx.Err().
func Parse(ctx context.Context, name, contentType string, data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, ctxError(err, lim)
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()

	type result struct {
		doc *Document
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{err: &Error{
					Reason: "the file could not be read: it is damaged or uses features that are not supported; try saving or exporting it again",
					Err:    fmt.Errorf("parse: panic: %v\n%s", r, debug.Stack()),
				}}
			}
		}()
		doc, err := parse(ctx, name, contentType, data, lim)
		ch <- result{doc, err}
	}()

	select {
	case r := <-ch:
		if r.err != nil {
			return nil, asError(r.err, lim)
		}
		return r.doc, nil
	case <-ctx.Done():
		// The worker goroutine notices ctx itself (external tools and
		// PDFium are killed, loops check ctx) and ends soon after.
		return nil, ctxError(ctx.Err(), lim)
	}
}

// formatParsers reads each format (a variable so that tests can make one
// misbehave).
var formatParsers = map[string]func(ctx context.Context, data []byte, lim Limits) (*Document, error){
	FormatPDF:      parsePDF,
	FormatDOCX:     parseDOCX,
	FormatODT:      parseODT,
	FormatHTML:     parseHTML,
	FormatMarkdown: func(_ context.Context, data []byte, lim Limits) (*Document, error) { return parseMarkdown(data, lim) },
	FormatText:     func(_ context.Context, data []byte, lim Limits) (*Document, error) { return parseText(data, lim) },
}

func parse(ctx context.Context, name, contentType string, data []byte, lim Limits) (*Document, error) {
	format, err := Detect(name, contentType, data)
	if err != nil {
		return nil, err
	}
	doc, err := formatParsers[format](ctx, data, lim)
	if err != nil {
		return nil, err
	}
	doc.Format = format
	return finish(doc, lim)
}

// finish checks the limits on the result and that there is text at all.
func finish(doc *Document, lim Limits) (*Document, error) {
	if len(doc.Pages) > lim.MaxPages {
		return nil, tooManyPages(doc.Format, len(doc.Pages), lim)
	}
	var total int64
	empty := true
	for i := range doc.Pages {
		doc.Pages[i].Number = i + 1
		total += int64(len(doc.Pages[i].Text))
		if strings.TrimSpace(doc.Pages[i].Text) != "" {
			empty = false
		}
	}
	if total > lim.MaxExpandedBytes {
		return nil, tooMuchText(lim)
	}
	if empty {
		if doc.Format == FormatPDF {
			return nil, errorf("no text could be extracted from the PDF: it is probably a scan or made of images; run OCR on it or export it with its text layer, then upload it again")
		}
		return nil, errorf("the file contains no text")
	}
	doc.Title = strings.TrimSpace(collapseSpaces(doc.Title))
	if len(doc.Title) > 512 {
		doc.Title = truncateUTF8(doc.Title, 512)
	}
	return doc, nil
}

func asError(err error, lim Limits) error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ctxError(err, lim)
	}
	return &Error{Reason: "the file could not be read: it is damaged or uses features that are not supported; try saving or exporting it again", Err: err}
}

func ctxError(err error, lim Limits) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{
			Reason: fmt.Sprintf("the file took too long to read (more than %s); split it into smaller files or simplify it, then upload it again", humanDuration(lim.Timeout)),
			Err:    err,
		}
	}
	return &Error{Reason: "reading the file was cancelled", Err: err}
}

func tooManyPages(format string, n int, lim Limits) *Error {
	what := "document"
	if format == FormatPDF {
		what = "PDF"
	}
	if n < 0 {
		return errorf("the %s has more than %d pages, the limit; split it into smaller files", what, lim.MaxPages)
	}
	return errorf("the %s has %d pages, more than the limit of %d; split it into smaller files", what, n, lim.MaxPages)
}

func tooMuchText(lim Limits) *Error {
	return errorf("the file holds more than %s of text, the limit; split it into smaller files", humanBytes(lim.MaxExpandedBytes))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

func humanDuration(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		if d == time.Second {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", d/time.Second)
	}
	return d.String()
}
