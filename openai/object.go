// Package openai reads and rewrites OpenAI wire formats without decoding
// what the gateway does not need: request bodies are scanned once, the few
// fields guichet acts on are decoded, and everything else is forwarded
// byte-exact (vLLM has many extra parameters).
package openai

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Member is one top-level "key": value of a JSON object. Raw aliases the
// original body.
type Member struct {
	Key string
	Raw []byte
	// quoted is the key as it was written (with its quotes), so a rewrite
	// keeps it byte for byte; nil for members the gateway adds.
	quoted []byte
}

// Object is a JSON object's members in their original order.
type Object []Member

// ErrNotObject is returned for a body that is valid JSON but not an object.
var ErrNotObject = errors.New("the request body must be a JSON object")

// ParseObject scans a JSON object's top level. It checks that body is valid
// JSON first, so the scanner below can stay simple.
func ParseObject(body []byte) (Object, error) {
	if !json.Valid(body) {
		return nil, syntaxError(body)
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, ErrNotObject
	}
	obj := make(Object, 0, 16)
	i = skipSpace(body, i+1)
	for i < len(body) && body[i] != '}' {
		keyEnd := skipString(body, i)
		key := body[i:keyEnd]
		i = skipSpace(body, keyEnd)
		i = skipSpace(body, i+1) // ':'
		valEnd := skipValue(body, i)
		obj = append(obj, Member{Key: unquote(key), Raw: body[i:valEnd], quoted: key})
		i = skipSpace(body, valEnd)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return obj, nil
}

// Get returns the raw value of key (the last one if repeated, as
// encoding/json does), or nil.
func (o Object) Get(key string) []byte {
	var raw []byte
	for _, m := range o {
		if m.Key == key {
			raw = m.Raw
		}
	}
	return raw
}

// Has reports whether key is present and not null.
func (o Object) Has(key string) bool {
	raw := o.Get(key)
	return raw != nil && string(raw) != "null"
}

// AppendWith writes the object to dst with the given members replaced (or
// added at the end when absent). Every other member is copied byte-exact.
func (o Object) AppendWith(dst []byte, replace ...Member) []byte {
	dst = append(dst, '{')
	done := make([]bool, len(replace))
	first := true
	write := func(m Member, raw []byte) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if m.quoted != nil {
			dst = append(dst, m.quoted...)
		} else {
			q, _ := json.Marshal(m.Key) // JSON's quoting, not Go's (\x7f is not JSON)
			dst = append(dst, q...)
		}
		dst = append(dst, ':')
		dst = append(dst, raw...)
	}
outer:
	for _, m := range o {
		for j, r := range replace {
			if r.Key == m.Key {
				if !done[j] {
					write(m, r.Raw)
					done[j] = true
				}
				continue outer
			}
		}
		write(m, m.Raw)
	}
	for j, r := range replace {
		if !done[j] {
			write(r, r.Raw)
		}
	}
	return append(dst, '}')
}

func unquote(raw []byte) string {
	// Fast path: plain ASCII keys are the norm; escapes and other bytes
	// are decoded as encoding/json does (invalid UTF-8 becomes U+FFFD).
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			var s string
			_ = json.Unmarshal(raw, &s)
			return s
		}
	}
	return string(raw[1 : len(raw)-1])
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the (valid) JSON value at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
			i++
		}
		return i
	}
}

// SyntaxError says where a body stops being JSON.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "the request body is not valid JSON: " + e.Msg + " (at byte " + strconv.FormatInt(e.Offset, 10) + ")"
}

func syntaxError(body []byte) error {
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SyntaxError{Offset: se.Offset, Msg: se.Error()}
	}
	return &SyntaxError{Offset: int64(len(body)), Msg: "unexpected end of input"}
}

// AddToUsage returns body with extra members set in its top-level usage
// object (everything else byte-exact), and false (body unchanged) when
// body has no usage object.
func AddToUsage(body []byte, extra ...Member) ([]byte, bool) {
	o, err := ParseObject(body)
	if err != nil {
		return body, false
	}
	raw := o.Get("usage")
	if len(raw) == 0 || raw[0] != '{' {
		return body, false
	}
	u, err := ParseObject(raw)
	if err != nil {
		return body, false
	}
	usage := u.AppendWith(make([]byte, 0, len(raw)+96), extra...)
	return o.AppendWith(make([]byte, 0, len(body)+96), Member{Key: "usage", Raw: usage}), true
}
