package parse

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Text encodings recognised by decodeText.
const (
	encUTF8    = "UTF-8"
	encUTF16   = "UTF-16"
	encCP1252  = "Windows-1252"
	maxControl = 0.01 // share of control characters above which data is binary
)

// textProblem says why bytes are not text, for error messages.
type textProblem string

const (
	notTextBinary  textProblem = "it contains binary data"
	notTextEncoded textProblem = "it is not valid UTF-8 text"
	notTextUTF16   textProblem = "it is damaged UTF-16 text"
)

// decodeText turns bytes into a UTF-8 string with the BOM removed. It
// accepts UTF-8, UTF-16 with a byte-order mark, and Windows-1252 (a
// superset of Latin-1) when the bytes are not UTF-8 but look like Western
// European text: no control bytes, none of the five bytes Windows-1252
// leaves undefined, and at most a quarter of the bytes above 0x7F (French
// Latin-1 text has a few percent; CJK, Cyrillic or random bytes have far
// more, or control bytes). Anything else is rejected with a problem.
func decodeText(data []byte) (string, string, textProblem) {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		data = data[3:]
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}), bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		s, ok := decodeUTF16(data)
		if !ok {
			return "", "", notTextUTF16
		}
		if isBinary(s) {
			return "", "", notTextBinary
		}
		return s, encUTF16, ""
	}
	if utf8.Valid(data) {
		s := string(data)
		if isBinary(s) {
			return "", "", notTextBinary
		}
		return s, encUTF8, ""
	}
	if looksCP1252(data) {
		s, err := charmap.Windows1252.NewDecoder().Bytes(data)
		if err == nil {
			return string(s), encCP1252, ""
		}
	}
	if bytes.IndexByte(data, 0) >= 0 || controlShare(data) > maxControl {
		return "", "", notTextBinary
	}
	return "", "", notTextEncoded
}

func decodeUTF16(data []byte) (string, bool) {
	be := data[0] == 0xFE
	data = data[2:]
	if len(data)%2 != 0 {
		return "", false
	}
	u := make([]uint16, len(data)/2)
	for i := range u {
		if be {
			u[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		} else {
			u[i] = uint16(data[2*i+1])<<8 | uint16(data[2*i])
		}
	}
	return string(utf16.Decode(u)), true
}

// isBinary reports a NUL or more than 1% control characters (other than
// tab, newline, carriage return, form feed and vertical tab).
func isBinary(s string) bool {
	if strings.IndexByte(s, 0) >= 0 {
		return true
	}
	n, ctl := 0, 0
	for _, r := range s {
		n++
		if isBadControl(r) {
			ctl++
		}
	}
	return n > 0 && float64(ctl)/float64(n) > maxControl
}

func isBadControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r', '\f', '\v', 0x1B:
		return false
	}
	return r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) || r == utf8.RuneError
}

func controlShare(data []byte) float64 {
	if len(data) == 0 {
		return 0
	}
	n := 0
	for _, b := range data {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f' && b != '\v' && b != 0x1B {
			n++
		}
	}
	return float64(n) / float64(len(data))
}

func looksCP1252(data []byte) bool {
	high := 0
	for _, b := range data {
		switch {
		case b < 0x20:
			if b != '\t' && b != '\n' && b != '\r' && b != '\f' {
				return false
			}
		case b == 0x7F, b == 0x81, b == 0x8D, b == 0x8F, b == 0x90, b == 0x9D:
			return false
		case b >= 0x80:
			high++
		}
	}
	return high*4 <= len(data)
}

// normalizeNewlines turns CRLF and lone CR into LF.
func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// cleanText is the normalisation applied to extracted text (PDF, DOCX,
// ODT, HTML): LF newlines, no control characters, no trailing spaces, at
// most one blank line in a row, no leading or trailing blank lines.
func cleanText(s string) string {
	s = normalizeNewlines(s)
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRightFunc(stripControls(line), unicode.IsSpace)
		if strings.TrimSpace(line) == "" {
			if b.Len() > 0 {
				blank++
			}
			continue
		}
		if b.Len() > 0 {
			if blank > 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteByte('\n')
			}
		}
		blank = 0
		b.WriteString(line)
	}
	return b.String()
}

func stripControls(s string) string {
	clean := true
	for _, r := range s {
		if (r < 0x20 && r != '\t') || r == 0x7F || r == utf8.RuneError || r == '\uFEFF' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7F || r == utf8.RuneError || r == '\uFEFF' {
			return -1
		}
		return r
	}, s)
}

// collapseSpaces turns every run of white space into one space.
func collapseSpaces(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func notTextError(what string, p textProblem) *Error {
	return errorf("%s but is not text (%s); save it as UTF-8 text and upload it again", what, p)
}

func parseText(data []byte, lim Limits) (*Document, error) {
	s, _, p := decodeText(data)
	if p != "" {
		return nil, notTextError("the file is meant to be plain text", p)
	}
	if int64(len(s)) > lim.MaxExpandedBytes {
		return nil, tooMuchText(lim)
	}
	s = normalizeNewlines(s)
	// A form feed separates pages, as pdftotext writes them.
	parts := strings.Split(s, "\f")
	if len(parts) > 1 && strings.TrimSpace(parts[len(parts)-1]) == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > lim.MaxPages {
		return nil, tooManyPages(FormatText, len(parts), lim)
	}
	doc := &Document{Parser: ParserText}
	for _, p := range parts {
		doc.Pages = append(doc.Pages, Page{Text: strings.Trim(p, "\n")})
	}
	return doc, nil
}

func parseMarkdown(data []byte, lim Limits) (*Document, error) {
	s, _, p := decodeText(data)
	if p != "" {
		return nil, notTextError("the file is meant to be Markdown", p)
	}
	if int64(len(s)) > lim.MaxExpandedBytes {
		return nil, tooMuchText(lim)
	}
	s = strings.Trim(normalizeNewlines(s), "\n")
	return &Document{Parser: ParserMarkdown, Title: markdownTitle(s), Pages: []Page{{Text: s}}}, nil
}

// markdownTitle is the first level-1 ATX heading, else the first heading
// of any level, outside fenced code blocks.
func markdownTitle(s string) string {
	first := ""
	fence := ""
	for line := range strings.SplitSeq(s, "\n") {
		t := strings.TrimLeft(line, " ")
		if len(line)-len(t) > 3 {
			continue
		}
		if fence != "" {
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fence = t[:3]
			continue
		}
		level := 0
		for level < len(t) && t[level] == '#' {
			level++
		}
		if level == 0 || level > 6 || (level < len(t) && t[level] != ' ' && t[level] != '\t') {
			continue
		}
		title := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(t[level:]), "#"))
		if title == "" {
			continue
		}
		if level == 1 {
			return title
		}
		if first == "" {
			first = title
		}
	}
	return first
}
