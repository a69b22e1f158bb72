package sim

import (
	"strconv"
	"unicode/utf8"
)

// Responses on the hot path are built by appending to byte slices rather
// than by reflection: the simulator is the baseline of gateway benchmarks
// and must cost as little as possible per token.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Like Python's json (which
// vLLM and TEI use) non-ASCII is written as UTF-8; invalid UTF-8 becomes
// U+FFFD, and U+2028/U+2029 are escaped for JavaScript consumers.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// appendJSONPieces appends the concatenation of pieces as one JSON string.
func appendJSONPieces(b []byte, pieces []string) []byte {
	b = append(b, '"')
	for _, p := range pieces {
		b = appendJSONStringBody(b, p)
	}
	return append(b, '"')
}

// appendJSONStringBody appends s escaped, without the quotes.
func appendJSONStringBody(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	return append(b, s[start:]...)
}

func appendInt(b []byte, v int) []byte { return strconv.AppendInt(b, int64(v), 10) }

// appendUsage appends vLLM's usage object (its field order).
func appendUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = appendInt(b, prompt)
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, prompt+completion)
	b = append(b, `,"completion_tokens":`...)
	b = appendInt(b, completion)
	return append(b, '}')
}

// appendUsageCached is appendUsage with the prompt tokens found in the
// prefix cache. Like vLLM (with --enable-prompt-tokens-details), the
// details appear only when some were: cached is 0 when the cache is off.
func appendUsageCached(b []byte, prompt, completion, cached int) []byte {
	if cached <= 0 {
		return appendUsage(b, prompt, completion)
	}
	b = appendUsage(b, prompt, completion)
	b = append(b[:len(b)-1], `,"prompt_tokens_details":{"cached_tokens":`...)
	b = appendInt(b, cached)
	return append(b, "}}"...)
}

// appendFloat32 writes the shortest decimal that reads back as the same
// float32, as Python does for float32 tensors turned into lists.
func appendFloat32(b []byte, f float32) []byte {
	return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
}

// newID returns prefix followed by 32 hex digits, unique per server.
func (s *Server) newID(prefix string) string {
	n := s.idCounter.Add(1)
	a := splitmix64(s.idSalt + n)
	c := splitmix64(s.idSalt ^ n ^ 0x5bd1e995)
	b := make([]byte, 0, len(prefix)+32)
	b = append(b, prefix...)
	for _, v := range [2]uint64{a, c} {
		for i := 60; i >= 0; i -= 4 {
			b = append(b, hexDigits[(v>>uint(i))&0xf])
		}
	}
	return string(b)
}
