package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// BulkItem is one document of a JSON bulk import: its text (a single
// page), optional title and optional metadata, attached to all its chunks.
// Metadata numbers are int64 when they are integers that fit, float64
// otherwise; nested objects and lists are map[string]any and []any.
type BulkItem struct {
	Text     string         `json:"text"`
	Title    string         `json:"title,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

const maxBulkProblems = 10

const bulkShape = `[{"text": "...", "title": "...", "metadata": {...}}, ...]`

// ParseBulk reads OpenGateLLM's JSON bulk format: a list of objects with
// "text" (required, a non-empty string), "title" (optional string) and
// "metadata" (optional object); other keys are ignored. The list may hold
// at most lim.MaxPages items. Every problem found (up to 10) is reported
// in one *Error, as "item N: ..." with N counted from 1.
func ParseBulk(data []byte, lim Limits) (items []BulkItem, err error) {
	lim = lim.withDefaults()
	defer func() {
		if r := recover(); r != nil {
			items, err = nil, &Error{Reason: "the JSON file could not be read; check that it is " + bulkShape, Err: fmt.Errorf("parse bulk: panic: %v", r)}
		}
	}()
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errorf("the JSON file is empty; it must be a list of documents like %s", bulkShape)
	}
	if !utf8.Valid(data) {
		return nil, errorf("the JSON file is not valid UTF-8; save it as UTF-8 and upload it again")
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return nil, errorf("the JSON file must be a list of documents like %s, but it is %s", bulkShape, jsonKind(te.Value))
		}
		return nil, jsonSyntaxError(data, err)
	}
	if len(raw) == 0 {
		return nil, errorf("the JSON file is an empty list; it must hold at least one document like %s", bulkShape)
	}
	if len(raw) > lim.MaxPages {
		return nil, errorf("the JSON file holds %d documents, more than the limit of %d; split it into smaller files", len(raw), lim.MaxPages)
	}

	var problems []string
	problem := func(i int, format string, args ...any) {
		if len(problems) < maxBulkProblems {
			problems = append(problems, fmt.Sprintf("item %d: ", i+1)+fmt.Sprintf(format, args...))
		}
	}
	var total int64
	items = make([]BulkItem, 0, len(raw))
	for i, r := range raw {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r, &obj); err != nil || obj == nil {
			problem(i, "must be an object like {\"text\": \"...\"}, not %s", jsonKindOf(r))
			continue
		}
		var it BulkItem
		switch t, ok := obj["text"]; {
		case !ok || isNull(t):
			problem(i, `"text" is required`)
		case json.Unmarshal(t, &it.Text) != nil:
			problem(i, `"text" must be a string, not %s`, jsonKindOf(t))
		case strings.TrimSpace(strings.ReplaceAll(it.Text, "\x00", "")) == "":
			problem(i, `"text" is empty`)
		}
		if t, ok := obj["title"]; ok && !isNull(t) {
			if json.Unmarshal(t, &it.Title) != nil {
				problem(i, `"title" must be a string, not %s`, jsonKindOf(t))
			}
		}
		if m, ok := obj["metadata"]; ok && !isNull(m) {
			var md map[string]any
			dec := json.NewDecoder(bytes.NewReader(m))
			dec.UseNumber()
			if dec.Decode(&md) != nil || md == nil {
				problem(i, `"metadata" must be an object, not %s`, jsonKindOf(m))
			} else {
				it.Metadata = convertNumbers(md).(map[string]any)
			}
		}
		// NUL is legal in JSON strings but not in PostgreSQL text.
		it.Text = strings.Trim(normalizeNewlines(strings.ReplaceAll(it.Text, "\x00", "")), "\n")
		it.Title = strings.ReplaceAll(it.Title, "\x00", "")
		total += int64(len(it.Text))
		if total > lim.MaxExpandedBytes {
			return nil, tooMuchText(lim)
		}
		items = append(items, it)
	}
	if len(problems) > 0 {
		more := ""
		if len(problems) == maxBulkProblems {
			more = "; …"
		}
		return nil, errorf("the JSON file is not a valid list of documents like %s: %s%s", bulkShape, strings.Join(problems, "; "), more)
	}
	return items, nil
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }

// jsonKind names what encoding/json reported in UnmarshalTypeError.Value.
func jsonKind(v string) string {
	switch v {
	case "object":
		return "an object"
	case "array":
		return "a list"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "null":
		return "null"
	}
	if strings.HasPrefix(v, "number") {
		return "a number"
	}
	return v
}

func jsonKindOf(r json.RawMessage) string {
	b := bytes.TrimSpace(r)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func jsonSyntaxError(data []byte, err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset >= int64(len(data)) {
		return wrapf(err, "the file is not valid JSON (it ends too early); fix it and upload it again")
	}
	if errors.As(err, &se) {
		off := min(max(se.Offset-1, 0), int64(len(data)))
		line := 1 + bytes.Count(data[:off], []byte("\n"))
		col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
		return wrapf(err, "the file is not valid JSON (line %d, column %d: %s); fix it and upload it again", line, col, se.Error())
	}
	return wrapf(err, "the file is not valid JSON (%s); fix it and upload it again", err.Error())
}

// convertNumbers turns json.Number into int64 when the number is an
// integer that fits, float64 otherwise.
func convertNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = convertNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = convertNumbers(e)
		}
		return x
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return x.String()
	}
	return v
}
