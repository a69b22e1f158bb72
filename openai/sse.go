package openai

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// MaxEventBytes bounds one server-sent event from an upstream.
const MaxEventBytes = 8 << 20

// ErrEventTooLarge is returned for an event over MaxEventBytes.
var ErrEventTooLarge = errors.New("server-sent event too large")

// SSEReader reads server-sent events from an upstream stream, keeping each
// event's bytes as they came so they can be forwarded unchanged.
type SSEReader struct {
	r    *bufio.Reader
	raw  []byte
	data []byte
}

// NewSSEReader reads events from r.
func NewSSEReader(r io.Reader) *SSEReader {
	// 4 KiB holds a typical event; longer ones are assembled line by line.
	return &SSEReader{r: bufio.NewReaderSize(r, 4<<10)}
}

// Next returns the next event: its raw bytes (through the blank line that
// ends it) and its data (data: lines joined by \n). Both are valid until the
// next call. At the end of the stream it returns io.EOF; a stream cut in
// the middle of an event returns io.ErrUnexpectedEOF.
func (s *SSEReader) Next() (raw, data []byte, err error) {
	s.raw, s.data = s.raw[:0], s.data[:0]
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && len(s.raw) > 0 {
				if hasData {
					// A last event without its blank line: still an event.
					return s.raw, s.data, nil
				}
				return nil, nil, io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		s.raw = append(s.raw, line...)
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			if len(s.raw) == len(line) {
				s.raw = s.raw[:0] // blank lines between events
				continue
			}
			return s.raw, s.data, nil
		}
		if v, ok := bytes.CutPrefix(content, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, v...)
			hasData = true
		}
		if len(s.raw) > MaxEventBytes {
			return nil, nil, ErrEventTooLarge
		}
	}
}

func (s *SSEReader) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(long) > MaxEventBytes {
				return nil, ErrEventTooLarge
			}
			line, err = s.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err == io.EOF && len(line) > 0 {
		return line, nil
	}
	return line, err
}

// EventReady reports whether a whole next event is already buffered, so a
// relay can write it before flushing: fewer writes, and no event ever
// waits for more bytes to arrive.
func (s *SSEReader) EventReady() bool {
	n := s.r.Buffered()
	if n == 0 {
		return false
	}
	buf, _ := s.r.Peek(n)
	return bytes.Contains(buf, []byte("\n\n")) || bytes.Contains(buf, []byte("\n\r\n"))
}

// Done reports whether data is the end-of-stream marker.
func Done(data []byte) bool { return bytes.Equal(data, []byte("[DONE]")) }

// TokenUsage is the usage object of an OpenAI response or chunk.
type TokenUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// UsageOf returns the usage object in a response or chunk, if it has one.
// An unescaped "usage" followed by a colon can only be a key (inside a
// JSON string the quotes would be escaped), and the top-level usage comes
// last: so only that value is decoded, not the whole answer.
func UsageOf(body []byte) (TokenUsage, bool) {
	i := bytes.LastIndex(body, []byte(`"usage"`))
	if i < 0 {
		return TokenUsage{}, false
	}
	j := skipSpace(body, i+len(`"usage"`))
	if j >= len(body) || body[j] != ':' {
		return TokenUsage{}, false
	}
	j = skipSpace(body, j+1)
	if j >= len(body) || body[j] != '{' {
		return TokenUsage{}, false // null, or not an object
	}
	var u TokenUsage
	if json.Unmarshal(body[j:skipValue(body, j)], &u) != nil {
		return TokenUsage{}, false
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u, true
}
