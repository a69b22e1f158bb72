package parse

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Zip and XML guards for DOCX and ODT.
const (
	maxZipEntries = 10000 // a real document has tens to a few thousand
	maxXMLDepth   = 256   // element nesting; real documents stay well under 50
	maxAuxXML     = 8 << 20
)

var errZipBomb = errors.New("zip entry expands beyond the limit")

// zipDoc reads entries of an office document, bounded: the sum of the
// bytes decompressed from all entries read stays under MaxExpandedBytes,
// checked both against the sizes the archive declares and while reading.
type zipDoc struct {
	files  map[string]*zip.File
	budget int64
	lim    Limits
	kind   string // for messages: "Word document", "OpenDocument text"
}

func openZip(data []byte, lim Limits, kind string) (*zipDoc, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, wrapf(err, "the %s is damaged (its ZIP structure cannot be read); save it again and upload it again", kind)
	}
	if len(zr.File) > maxZipEntries {
		return nil, errorf("the %s holds %d files inside, more than %d: it is not a normal document; save it again and upload it again", kind, len(zr.File), maxZipEntries)
	}
	z := &zipDoc{files: make(map[string]*zip.File, len(zr.File)), budget: lim.MaxExpandedBytes, lim: lim, kind: kind}
	for _, f := range zr.File {
		if _, dup := z.files[f.Name]; !dup {
			z.files[f.Name] = f
		}
	}
	return z, nil
}

func (z *zipDoc) bomb(name string) *Error {
	return &Error{
		Reason: fmt.Sprintf("the %s expands to more than %s when unzipped (%s), the limit: it may be a zip bomb; upload a smaller document", z.kind, humanBytes(z.lim.MaxExpandedBytes), name),
		Err:    errZipBomb,
	}
}

// boundedReader counts decompressed bytes against the document's budget.
type boundedReader struct {
	r    io.Reader
	z    *zipDoc
	name string
	err  *Error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.z.budget -= int64(n)
	if b.z.budget < 0 {
		b.err = b.z.bomb(b.name)
		return n, b.err
	}
	return n, err
}

// walk streams the XML of one entry into fn. A missing entry is not an
// error when optional; fn sees every token, and nesting is bounded.
func (z *zipDoc) walk(ctx context.Context, name string, optional bool, fn func(xml.Token)) error {
	f := z.files[name]
	if f == nil {
		if optional {
			return nil
		}
		return errorf("the %s is damaged (%s is missing); save it again and upload it again", z.kind, name)
	}
	if f.UncompressedSize64 > uint64(max(z.budget, 0)) {
		return z.bomb(name)
	}
	rc, err := f.Open()
	if err != nil {
		if errors.Is(err, zip.ErrAlgorithm) {
			return wrapf(err, "the %s uses an unsupported compression method; save it again with a standard office program", z.kind)
		}
		return wrapf(err, "the %s is damaged (%s cannot be opened); save it again and upload it again", z.kind, name)
	}
	defer rc.Close()
	br := &boundedReader{r: rc, z: z, name: name}
	var r io.Reader = br
	if optional {
		r = io.LimitReader(br, maxAuxXML)
	}
	err = walkXML(ctx, r, fn)
	switch {
	case err == nil:
		return nil
	case br.err != nil:
		return br.err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, new(*Error)):
		return err
	case optional:
		return nil // a broken styles.xml or numbering.xml only costs structure
	}
	return wrapf(err, "the %s is damaged (%s is not valid XML); save it again and upload it again", z.kind, name)
}

func walkXML(ctx context.Context, r io.Reader, fn func(xml.Token)) error {
	dec := xml.NewDecoder(r)
	depth := 0
	for i := 0; ; i++ {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxXMLDepth {
				return errorf("the document nests its content more than %d levels deep: it is not a normal document; save it again and upload it again", maxXMLDepth)
			}
		case xml.EndElement:
			depth--
		}
		fn(tok)
	}
}

func attr(se xml.StartElement, local string) (string, bool) {
	for _, a := range se.Attr {
		if a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// ---------------------------------------------------------------------------
// Markdown output shared by DOCX and ODT.

type mdWriter struct {
	pages    []string
	cur      strings.Builder
	lastList bool
	size     int64
	max      int64
	err      error
	// Title candidates, best first: Title style, first level-1
	// heading, first heading.
	title, h1, anyHeading string
}

func (w *mdWriter) add(s string) {
	w.size += int64(len(s)) + 2
	if w.size > w.max && w.err == nil {
		w.err = tooMuchText(Limits{MaxExpandedBytes: w.max})
	}
	if w.err != nil {
		return
	}
	w.cur.WriteString(s)
}

// block appends a paragraph-level block; consecutive list items are kept
// on adjacent lines, other blocks are separated by a blank line.
func (w *mdWriter) block(s string, list bool) {
	if strings.TrimSpace(s) == "" {
		return
	}
	if w.cur.Len() > 0 {
		if list && w.lastList {
			w.add("\n")
		} else {
			w.add("\n\n")
		}
	}
	w.add(s)
	w.lastList = list
}

func (w *mdWriter) heading(level int, text string, isTitle bool) {
	text = collapseSpaces(text)
	if text == "" {
		return
	}
	level = min(max(level, 1), 6)
	switch {
	case isTitle && w.title == "":
		w.title = text
	case level == 1 && w.h1 == "":
		w.h1 = text
	}
	if w.anyHeading == "" {
		w.anyHeading = text
	}
	w.block(strings.Repeat("#", level)+" "+text, false)
}

func (w *mdWriter) newPage() {
	w.pages = append(w.pages, w.cur.String())
	w.cur.Reset()
	w.lastList = false
}

func (w *mdWriter) table(rows [][]string) {
	rows = dropEmptyRows(rows)
	if len(rows) == 0 {
		return
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	if width == 1 {
		// A one-column table is a layout box: its cells are paragraphs.
		for _, r := range rows {
			w.block(r[0], false)
		}
		return
	}
	var b strings.Builder
	for i, r := range rows {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("|")
		for j := range width {
			c := ""
			if j < len(r) {
				c = r[j]
			}
			b.WriteString(" ")
			b.WriteString(tableCell(c))
			b.WriteString(" |")
		}
		if i == 0 {
			b.WriteString("\n|")
			for range width {
				b.WriteString(" --- |")
			}
		}
	}
	w.block(b.String(), false)
}

func dropEmptyRows(rows [][]string) [][]string {
	out := rows[:0]
	for _, r := range rows {
		for _, c := range r {
			if strings.TrimSpace(c) != "" {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func tableCell(s string) string {
	s = collapseSpaces(s)
	return strings.ReplaceAll(s, "|", `\|`)
}

// flattenTable is how a table nested in a table cell is written: rows
// separated by "; ", cells by " | ".
func flattenTable(rows [][]string) string {
	var parts []string
	for _, r := range dropEmptyRows(rows) {
		parts = append(parts, strings.Join(r, " | "))
	}
	return strings.Join(parts, "; ")
}

func (w *mdWriter) finish() ([]Page, error) {
	if w.err != nil {
		return nil, w.err
	}
	w.newPage()
	pages := make([]Page, 0, len(w.pages))
	for _, p := range w.pages {
		pages = append(pages, Page{Text: cleanText(p)})
	}
	return pages, nil
}

func (w *mdWriter) docTitle() string {
	for _, t := range []string{w.title, w.h1, w.anyHeading} {
		if t != "" {
			return t
		}
	}
	return ""
}

// tableState collects the rows of a table being read.
type tableState struct {
	rows   [][]string
	row    []string
	cell   []string
	inCell bool
}

func (t *tableState) endCell() {
	t.row = append(t.row, strings.Join(t.cell, " "))
	t.cell = nil
	t.inCell = false
}

func (t *tableState) endRow() {
	if len(t.row) > 0 {
		t.rows = append(t.rows, t.row)
	}
	t.row = nil
}

// tableStack follows the tables being read; a table inside a cell is
// flattened into that cell.
type tableStack []*tableState

func (s *tableStack) top() *tableState {
	if len(*s) == 0 {
		return nil
	}
	return (*s)[len(*s)-1]
}

func (s *tableStack) inCell() bool { t := s.top(); return t != nil && t.inCell }
func (s *tableStack) open()        { *s = append(*s, &tableState{}) }

func (s *tableStack) startRow() {
	if t := s.top(); t != nil {
		t.row = nil
	}
}

func (s *tableStack) startCell() {
	if t := s.top(); t != nil {
		t.inCell = true
	}
}

func (s *tableStack) endCell() {
	if t := s.top(); t != nil {
		t.endCell()
	}
}

func (s *tableStack) endRow() {
	if t := s.top(); t != nil {
		t.endRow()
	}
}

// addToCell adds a paragraph's text to the current cell.
func (s *tableStack) addToCell(text string) {
	t := s.top()
	t.cell = append(t.cell, collapseSpaces(text))
}

// close ends the innermost table: into the enclosing cell, or written out.
func (s *tableStack) close(w *mdWriter) {
	tb := s.top()
	if tb == nil {
		return
	}
	*s = (*s)[:len(*s)-1]
	if s.inCell() {
		if f := flattenTable(tb.rows); f != "" {
			outer := s.top()
			outer.cell = append(outer.cell, f)
		}
		return
	}
	w.table(tb.rows)
}

// listMarker formats a list item marker: "-" for bullets, "N." otherwise.
func listMarker(numbered bool, n int) string {
	if numbered {
		return strconv.Itoa(n) + "."
	}
	return "-"
}
