package parse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pdfBackend, when set (tests), forces the PDF parser: ParserPdftotext or
// ParserPdfium. Otherwise pdftotext is used when it is on PATH.
var pdfBackend string

// pdftotextCmd is the tool's name or path (tests point it at fakes).
var pdftotextCmd = "pdftotext"

// PDFParser tells which parser Parse uses for PDFs on this machine:
// ParserPdftotext when poppler's pdftotext is on PATH, ParserPdfium
// otherwise. Startup logs should show it.
func PDFParser() string {
	if pdfBackend != "" {
		return pdfBackend
	}
	if _, err := exec.LookPath(pdftotextCmd); err == nil {
		return ParserPdftotext
	}
	return ParserPdfium
}

func parsePDF(ctx context.Context, data []byte, lim Limits) (*Document, error) {
	if PDFParser() == ParserPdftotext {
		return parsePdftotext(ctx, data, lim)
	}
	return parsePdfium(ctx, data, lim)
}

// pdfPages builds the document from the text of each page.
func pdfPages(parser string, texts []string) *Document {
	doc := &Document{Parser: parser, Pages: make([]Page, len(texts))}
	for i, t := range texts {
		doc.Pages[i] = Page{Number: i + 1, Text: cleanText(t)}
	}
	return doc
}

// cappedBuffer keeps at most max bytes; past that it drops the rest and
// calls over once, so that the producer is stopped instead of blocked.
type cappedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	max  int64
	full bool
	over func()
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full {
		return len(p), nil
	}
	if int64(c.buf.Len()+len(p)) > c.max {
		c.full = true
		if c.over != nil {
			c.over()
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

// parsePdftotext runs poppler's pdftotext (reading order mode, not
// -layout) with the PDF on stdin. Pages come separated by form feeds. Only
// MaxPages+1 pages are converted, which is enough to know the limit is
// passed. The process is killed on timeout or when its output passes
// MaxExpandedBytes.
func parsePdftotext(ctx context.Context, data []byte, lim Limits) (*Document, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(runCtx, pdftotextCmd,
		"-enc", "UTF-8", "-eol", "unix",
		"-f", "1", "-l", strconv.Itoa(lim.MaxPages+1),
		"-", "-")
	cmd.Stdin = bytes.NewReader(data)
	stdout := &cappedBuffer{max: lim.MaxExpandedBytes, over: cancel}
	stderr := &cappedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	if stdout.full {
		return nil, tooMuchText(lim)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.buf.String())
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, &Error{Reason: "the PDF could not be read (the PDF reader failed to start); try again later", Err: fmt.Errorf("pdftotext: %w", err)}
		}
		cause := fmt.Errorf("pdftotext exit %d: %s", ee.ExitCode(), msg)
		switch {
		case strings.Contains(strings.ToLower(msg), "password"):
			return nil, &Error{Reason: encryptedReason, Err: cause}
		case ee.ExitCode() == 3:
			return nil, &Error{Reason: "the PDF forbids text extraction (permissions); export it again without protection and upload it again", Err: cause}
		}
		return nil, &Error{Reason: brokenPDFReason, Err: cause}
	}
	out := stdout.buf.String()
	texts := strings.Split(out, "\f")
	// pdftotext ends every page, the last included, with a form feed.
	if n := len(texts); n > 0 && strings.TrimSpace(texts[n-1]) == "" {
		texts = texts[:n-1]
	}
	if len(texts) > lim.MaxPages {
		return nil, tooManyPages(FormatPDF, -1, lim)
	}
	if len(texts) == 0 {
		return nil, &Error{Reason: brokenPDFReason, Err: errors.New("pdftotext: no pages: " + strings.TrimSpace(stderr.buf.String()))}
	}
	return pdfPages(ParserPdftotext, texts), nil
}

const (
	encryptedReason = "the PDF is protected by a password; remove the protection (print or export it to a new PDF) and upload it again"
	brokenPDFReason = "the PDF is damaged and could not be read; export or save it again as PDF and upload it again"
)
