// Package chunk splits a document's text into chunks for retrieval (RAG),
// in the manner of LangChain's RecursiveCharacterTextSplitter, which
// OpenGateLLM uses: separators are tried in order, a piece that still
// exceeds the size is split again with the next separators (a piece that
// fits is never split), and the pieces are merged back greedily up to the
// size. Length is measured in characters (Unicode code points, like
// Python's len) or in cl100k tokens (tokens.Text).
//
// The rules, beyond LangChain's:
//
//   - Text. Pages are normalised (invalid UTF-8 becomes U+FFFD, "\r\n" and
//     lone "\r" become "\n") and joined with PageSeparator into one text;
//     [Join] returns it, and Chunk.Start and Chunk.End are rune offsets in
//     it. Chunks may span pages (Page, PageEnd), unlike OpenGateLLM's.
//
//   - Whitespace. A chunk never begins or ends with whitespace
//     (unicode.IsSpace, as strings.TrimSpace) and always holds text that no
//     earlier chunk holds. Chunk.Text is exactly the joined text between
//     Start and End, so the chunks minus their overlap with the previous
//     chunk, with the whitespace between them, give back the joined text
//     exactly; only whitespace is outside every chunk. Blank input gives no
//     chunk and no error.
//
//   - Where a separator is cut. A separator's leading run of closing
//     punctuation (. ! ? … ; : , closing brackets and quotes, backquotes)
//     ends the piece before it; the rest, whitespace first, begins the next
//     piece. So ". " keeps the full stop with its sentence (LangChain puts
//     it at the start of the next chunk), and the whitespace goes where
//     cl100k puts it, before the word.
//
//   - Size. No chunk exceeds Size, measured on its (trimmed) text. A piece
//     that no separator splits is cut hard: after Size runes (backing off a
//     few runes so as not to detach a combining mark or split a joined
//     emoji), or, in tokens, at (nearly) the longest prefix that
//     tokens.Text counts within Size. In tokens, pieces are counted once and
//     their counts summed, and each chunk's text is then counted once to
//     check the sum (the chunk is made shorter if it exceeds). Separators
//     are found once per level over disjoint pieces: O(n) per separator.
//
//   - Choosing the cut. From the chunk's start, the window is what fits in
//     Size; the chunk ends at the strongest boundary in the window (an
//     earlier separator is stronger; the end of the text is the strongest),
//     the furthest among equals; with no separator in the window, at its
//     limit. For pieces that fit, this is LangChain's greedy merge: a
//     short chunk is made when the strongest boundary comes early (MinSize
//     avoids it); unlike LangChain, the tail of a split piece is merged with
//     the pieces that follow it.
//
//   - Overlap. A chunk begins with the end of the previous chunk, at most
//     Overlap long, from the earliest separator boundary (a word, a
//     sentence...) in that tail, and strictly after the previous chunk's
//     start. It begins inside a word only after a hard cut (text without
//     separators); otherwise, with no boundary in the tail, there is no
//     overlap. The overlap is shortened, or dropped, to leave room for the
//     next piece (as LangChain does), so a piece that fits is still never
//     split.
//
//   - MinSize. Cuts that would make a chunk shorter than MinSize, or leave
//     a remainder of the text shorter than MinSize, are avoided when the
//     window offers another. A chunk still shorter than MinSize is merged
//     into the previous chunk if the two fit in Size, else into the next one
//     if they fit, else kept: text is never dropped, except that a document
//     whose whole (trimmed) text is shorter than MinSize gives no chunk.
//     (OpenGateLLM drops every short chunk, losing text.)
//
//   - Markdown (presets markdown and html, html being HTML converted to
//     Markdown): a line scan finds ATX (# Title) and setext (=== or ---
//     underlined) headings, code fences and thematic breaks outside code
//     fences (a YAML front matter is skipped); the default separators are
//     then headings, code fences (before the opening line, after the closing
//     one), thematic breaks, and the text ones. Sections that fit together
//     are merged, as LangChain does. Every chunk carries the heading path in
//     force where it starts, tracked across pages (nil before any heading).
package chunk

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Unit is what Size, Overlap and MinSize count.
type Unit string

const (
	Characters Unit = "characters" // Unicode code points (runes), the default
	Tokens     Unit = "tokens"     // cl100k tokens, as counted by tokens.Text
)

// Limits and defaults.
const (
	DefaultSize     = 2048    // as OpenGateLLM's chunk_size
	MaxSize         = 100_000 // upper bound of Size, in either unit
	MinTokenSize    = 4       // one rune can take up to 4 tokens (one per UTF-8 byte)
	MaxSeparators   = 32
	MaxSeparatorLen = 256 // bytes; bounds the cost of a regular expression
	MaxDocument     = 1 << 30

	// PageSeparator is put between two pages' texts by [Join].
	PageSeparator = "\n\n"
)

// Presets.
const (
	PresetText     = "text"
	PresetMarkdown = "markdown"
	PresetHTML     = "html" // HTML converted to Markdown: as markdown
)

// TextSeparators are the separators of the "text" preset.
var TextSeparators = []string{"\n\n", "\n", ". ", " ", ""}

// Options tune a split. The zero value is valid: 2048 characters, no
// overlap, text separators.
type Options struct {
	// Size is the maximum length of a chunk, 1..MaxSize (MinTokenSize..MaxSize
	// in tokens); 0 means DefaultSize.
	Size int
	// Overlap is how much of the end of a chunk the next one repeats at most;
	// it must be smaller than Size.
	Overlap int
	// MinSize: shorter chunks are merged into a neighbour (see the package
	// documentation); at most Size.
	MinSize int
	// Unit is "characters" (the default when empty) or "tokens".
	Unit Unit
	// Separators, tried in order, replace the preset's when not empty (the
	// markdown and html presets still give the heading paths). "" stands
	// for characters, the hard cut, which is the last resort anyway; the
	// separators after it are never reached.
	Separators []string
	// Preset is "text" (the default: TextSeparators), "markdown" or "html"
	// (Markdown structure first, then TextSeparators; heading paths).
	Preset string
	// IsRegex: Separators are regular expressions (RE2 syntax, compiled
	// once by New, matched in linear time, at most MaxSeparatorLen bytes
	// each). A match of zero width is no boundary. Preset separators are
	// not affected.
	IsRegex bool
}

// OptionError is a rejected option; Field is the OpenGateLLM form field
// (chunk_size, chunk_overlap, chunk_min_size, separators,
// preset_separators) or "unit".
type OptionError struct {
	Field   string
	Message string
}

func (e *OptionError) Error() string { return e.Message }

func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate reports the first invalid option, naming its field.
func (o Options) Validate() error {
	_, err := New(o)
	return err
}

// Page is a document's text for one page; Number 0 means the document has
// no pages.
type Page struct {
	Number int
	Text   string
}

// Chunk is a piece of a document.
type Chunk struct {
	Index   int    // 0.. in document order
	Text    string // trimmed; shares memory with the joined text
	Page    int    // page where the chunk starts (0 without pages)
	PageEnd int    // page where it ends (= Page unless it spans pages)
	// Headings is the Markdown heading path in force where the chunk
	// starts, e.g. ["Guide", "Installation"] (markdown and html presets;
	// nil otherwise or before any heading). Chunks share these slices.
	Headings []string
	// Start and End are rune offsets of Text in Join(pages):
	// Text == string([]rune(Join(pages))[Start:End]).
	Start, End int
}

// Splitter is a validated, compiled set of options, safe for concurrent use.
type Splitter struct {
	size, overlap, minSize int
	tokens                 bool
	markdown               bool        // track headings
	structural             bool        // split at Markdown structure first
	seps                   []separator // user or text separators; markdown structure is added per document
}

// New validates the options and compiles the separators once.
func New(o Options) (*Splitter, error) {
	s := &Splitter{size: o.Size, overlap: o.Overlap, minSize: o.MinSize}
	if s.size == 0 {
		s.size = DefaultSize
	}
	switch o.Unit {
	case "", Characters:
	case Tokens:
		s.tokens = true
	default:
		return nil, optErr("unit", "unit %q is unknown; use characters or tokens", string(o.Unit))
	}
	if s.size < 1 || s.size > MaxSize {
		return nil, optErr("chunk_size", "chunk_size (%d) must be between 1 and %d", o.Size, MaxSize)
	}
	if s.tokens && s.size < MinTokenSize {
		return nil, optErr("chunk_size", "chunk_size (%d) must be at least %d when the unit is tokens (one character can take up to %d tokens)", o.Size, MinTokenSize, MinTokenSize)
	}
	if o.Overlap < 0 {
		return nil, optErr("chunk_overlap", "chunk_overlap (%d) must not be negative", o.Overlap)
	}
	if o.Overlap >= s.size {
		return nil, optErr("chunk_overlap", "chunk_overlap (%d) must be smaller than chunk_size (%d)", o.Overlap, s.size)
	}
	if o.MinSize < 0 {
		return nil, optErr("chunk_min_size", "chunk_min_size (%d) must not be negative", o.MinSize)
	}
	if o.MinSize > s.size {
		return nil, optErr("chunk_min_size", "chunk_min_size (%d) must not exceed chunk_size (%d)", o.MinSize, s.size)
	}
	switch o.Preset {
	case "", PresetText:
	case PresetMarkdown, PresetHTML:
		s.markdown = true
	default:
		return nil, optErr("preset_separators", "preset_separators %q is unknown; use text, markdown or html", o.Preset)
	}
	list, regex := o.Separators, o.IsRegex
	if len(list) == 0 {
		list, regex = TextSeparators, false
		s.structural = s.markdown // headings, code fences and rules come first, found per document
	}
	if len(list) > MaxSeparators {
		return nil, optErr("separators", "separators has %d entries; at most %d are allowed", len(list), MaxSeparators)
	}
	for i, sep := range list {
		if len(sep) > MaxSeparatorLen {
			return nil, optErr("separators", "separators[%d] is %d bytes long; at most %d are allowed", i, len(sep), MaxSeparatorLen)
		}
		if !utf8.ValidString(sep) {
			return nil, optErr("separators", "separators[%d] is not valid UTF-8", i)
		}
		if sep == "" {
			break // characters: the hard cut, always last; later separators are never reached
		}
		if !regex {
			s.seps = append(s.seps, separator{lit: sep})
			continue
		}
		re, err := regexp.Compile(sep)
		if err != nil {
			return nil, optErr("separators", "separators[%d] (%q) is not a valid regular expression: %v", i, sep, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		s.seps = append(s.seps, separator{re: re})
	}
	return s, nil
}

// Split validates the options and splits the pages.
func Split(pages []Page, o Options) ([]Chunk, error) {
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	return s.Split(pages)
}

// Join is the text that chunk offsets refer to: the pages, normalised,
// joined with PageSeparator.
func Join(pages []Page) string {
	doc, _ := join(pages)
	return doc
}

// join also returns the byte range of each page in the text.
func join(pages []Page) (string, [][2]int) {
	var b strings.Builder
	n := 0
	for _, p := range pages {
		n += len(p.Text) + len(PageSeparator)
	}
	b.Grow(n)
	ranges := make([][2]int, len(pages))
	for i, p := range pages {
		if i > 0 {
			b.WriteString(PageSeparator)
		}
		start := b.Len()
		normalise(&b, p.Text)
		ranges[i] = [2]int{start, b.Len()}
	}
	return b.String(), ranges
}

// normalise writes s with invalid UTF-8 replaced by U+FFFD and line ends
// made "\n".
func normalise(b *strings.Builder, s string) {
	if strings.IndexByte(s, '\r') < 0 && utf8.ValidString(s) {
		b.WriteString(s)
		return
	}
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\r' && s[i] < utf8.RuneSelf {
			i++
		}
		b.WriteString(s[:i])
		s = s[i:]
		if len(s) == 0 {
			return
		}
		if s[0] == '\r' {
			b.WriteByte('\n')
			if len(s) > 1 && s[1] == '\n' {
				s = s[2:]
			} else {
				s = s[1:]
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
}
