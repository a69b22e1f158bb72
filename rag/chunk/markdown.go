package chunk

import (
	"slices"
	"strings"
)

// markdown is the structure of a Markdown text found by one line scan:
// heading paths, and the cut positions the markdown preset splits at
// first (headings, then code fences, then thematic breaks). Code fences
// hide their content; a YAML front matter at the start is skipped.
type markdown struct {
	headings []heading // in text order
	headCuts []int     // start of each heading's (first) line
	fence    []int     // start of each opening fence line, end of each closing one
	rules    []int     // start of each thematic break line
}

// heading is the heading path in force from pos on.
type heading struct {
	pos  int
	path []string
}

func scanMarkdown(doc string) *markdown {
	md := &markdown{}
	type open struct {
		level int
		text  string
	}
	var stack []open
	push := func(pos, level int, text string) {
		for len(stack) > 0 && stack[len(stack)-1].level >= level {
			stack = stack[:len(stack)-1]
		}
		if text != "" {
			stack = append(stack, open{level, text})
		}
		path := make([]string, len(stack))
		for i, o := range stack {
			path[i] = o.text
		}
		md.headings = append(md.headings, heading{pos, path})
		md.headCuts = append(md.headCuts, pos)
	}

	var (
		fenceChar   byte // 0 outside a code fence
		fenceLen    int
		frontMatter bool
		prevPara    bool // the previous line is a paragraph line (a setext heading's text)
		prevStart   int
		prevLine    string
	)
	for pos, n := 0, len(doc); pos < n; {
		end := strings.IndexByte(doc[pos:], '\n')
		if end < 0 {
			end = n
		} else {
			end += pos
		}
		line := doc[pos:end]
		start, next := pos, end+1
		pos = next

		if start == 0 && strings.TrimRight(line, " \t") == "---" {
			frontMatter = true
			continue
		}
		if frontMatter {
			if t := strings.TrimRight(line, " \t"); t == "---" || t == "..." {
				frontMatter = false
			}
			continue
		}
		t, ok := unindent(line)
		if fenceChar != 0 {
			if ok && isFenceClose(t, fenceChar, fenceLen) {
				fenceChar = 0
				md.fence = append(md.fence, end)
			}
			prevPara = false
			continue
		}
		if !ok { // indented code (or an indented paragraph continuation)
			prevPara = false
			continue
		}
		if c, l := fenceOpen(t); c != 0 {
			fenceChar, fenceLen = c, l
			md.fence = append(md.fence, start)
			prevPara = false
			continue
		}
		if level, text, ok := atxHeading(t); ok {
			push(start, level, text)
			prevPara = false
			continue
		}
		if prevPara {
			if level := setextUnderline(t); level > 0 {
				push(prevStart, level, strings.TrimSpace(prevLine))
				prevPara = false
				continue
			}
		}
		if isRule(t) {
			md.rules = append(md.rules, start)
			prevPara = false
			continue
		}
		prevPara = isParagraphLine(t)
		prevStart, prevLine = start, line
	}
	return md
}

// unindent removes up to 3 leading spaces; ok is false for an indented
// code line (4 spaces or a tab).
func unindent(line string) (string, bool) {
	for i := 0; i < len(line) && i < 4; i++ {
		switch line[i] {
		case ' ':
			continue
		case '\t':
			return line, false
		}
		return line[i:], true
	}
	if len(line) < 4 {
		return "", true
	}
	return line, false
}

func run(t string, c byte) int {
	i := 0
	for i < len(t) && t[i] == c {
		i++
	}
	return i
}

func fenceOpen(t string) (byte, int) {
	if len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return 0, 0
	}
	c := t[0]
	l := run(t, c)
	if l < 3 || (c == '`' && strings.IndexByte(t[l:], '`') >= 0) {
		return 0, 0
	}
	return c, l
}

func isFenceClose(t string, c byte, l int) bool {
	r := run(t, c)
	return r >= l && strings.TrimRight(t[r:], " \t") == ""
}

// atxHeading parses "## Title ##".
func atxHeading(t string) (int, string, bool) {
	l := run(t, '#')
	if l < 1 || l > 6 || (l < len(t) && t[l] != ' ' && t[l] != '\t') {
		return 0, "", false
	}
	text := strings.TrimSpace(t[l:])
	if trimmed := strings.TrimRight(text, "#"); trimmed == "" {
		text = ""
	} else if len(trimmed) < len(text) && (trimmed[len(trimmed)-1] == ' ' || trimmed[len(trimmed)-1] == '\t') {
		text = strings.TrimSpace(trimmed)
	}
	return l, text, true
}

func setextUnderline(t string) int {
	if t == "" || (t[0] != '=' && t[0] != '-') {
		return 0
	}
	if strings.TrimRight(t[run(t, t[0]):], " \t") != "" {
		return 0
	}
	if t[0] == '=' {
		return 1
	}
	return 2
}

// isRule: three or more *, - or _, spaces allowed between.
func isRule(t string) bool {
	if t == "" || (t[0] != '*' && t[0] != '-' && t[0] != '_') {
		return false
	}
	n := 0
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case t[0]:
			n++
		case ' ', '\t':
		default:
			return false
		}
	}
	return n >= 3
}

// isParagraphLine: a non-blank line that is no list item, quote or table
// row (those cannot be a setext heading's text here).
func isParagraphLine(t string) bool {
	if strings.TrimSpace(t) == "" {
		return false
	}
	switch t[0] {
	case '>', '|':
		return false
	case '-', '*', '+':
		return len(t) > 1 && t[1] != ' ' && t[1] != '\t'
	}
	i := 0
	for i < len(t) && i < 9 && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	return !(i > 0 && i < len(t) && (t[i] == '.' || t[i] == ')'))
}

// pathAt returns the heading path in force at byte pos, from index *i on
// (pos never decreases between calls).
func (md *markdown) pathAt(pos int, i *int) []string {
	for *i < len(md.headings) && md.headings[*i].pos <= pos {
		*i++
	}
	if *i == 0 {
		return nil
	}
	p := md.headings[*i-1].path
	if len(p) == 0 {
		return nil
	}
	return slices.Clip(p)
}
