package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"github.com/guichet/guichet"
)

// Request is what the gateway needs to know of an inference request; the
// body itself travels on as Object, rewritten only where it must be.
type Request struct {
	Object   Object
	Model    string
	Stream   bool
	Messages []ChatMessage // chat only
	// MaxTokens is max_completion_tokens or max_tokens; 0 when absent.
	MaxTokens int64
}

// invalid reports a field problem: 422, as OpenGateLLM does.
func invalid(param, format string, args ...any) *guichet.Error {
	return guichet.Errorf(http.StatusUnprocessableEntity, "invalid_value", "%s: %s", param, fmt.Sprintf(format, args...)).WithParam(param)
}

// field decodes o[key] into v when present; absent or null leaves v alone.
func field(o Object, key string, v any, want string) *guichet.Error {
	raw := o.Get(key)
	if raw == nil || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return invalid(key, "must be %s", want)
	}
	return nil
}

func parse(body []byte) (Object, *guichet.Error) {
	o, err := ParseObject(body)
	if err != nil {
		return nil, guichet.Errorf(http.StatusBadRequest, "invalid_json", "%s", err.Error())
	}
	return o, nil
}

// common scans a body and decodes model and stream, shared by every
// inference body.
func common(body []byte) (*Request, *guichet.Error) {
	o, gerr := parse(body)
	if gerr != nil {
		return nil, gerr
	}
	r := &Request{Object: o}
	if err := field(o, "model", &r.Model, "a string: the name or alias of a model (see GET /v1/models)"); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, invalid("model", "is required: the name or alias of a model (see GET /v1/models)")
	}
	if err := field(o, "stream", &r.Stream, "true or false"); err != nil {
		return nil, err
	}
	if raw := o.Get("stream_options"); raw != nil && string(raw) != "null" {
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &so) != nil {
			return nil, invalid("stream_options", "must be an object such as {\"include_usage\": true}")
		}
	}
	for _, key := range []string{"max_completion_tokens", "max_tokens"} {
		var n float64
		if json.Unmarshal(o.Get(key), &n) == nil && n >= 1 && n <= 1<<30 && r.MaxTokens == 0 {
			r.MaxTokens = int64(n) // range and type errors are reported by sampling
		}
	}
	return r, nil
}

func checkRange(o Object, key string, lo, hi float64, integer bool) *guichet.Error {
	var v float64
	want := "a number"
	if integer {
		want = "a whole number"
	}
	if err := field(o, key, &v, want); err != nil {
		return err
	}
	if !o.Has(key) {
		return nil
	}
	if integer && v != float64(int64(v)) {
		return invalid(key, "must be a whole number")
	}
	if v < lo || v > hi {
		return invalid(key, "must be between %g and %g", lo, hi)
	}
	return nil
}

// sampling checks the parameters shared by chat and completions.
func sampling(o Object) *guichet.Error {
	checks := []struct {
		key     string
		lo, hi  float64
		integer bool
	}{
		{"n", 1, 128, true},
		{"max_tokens", 1, 1 << 30, true},
		{"max_completion_tokens", 1, 1 << 30, true},
		{"temperature", 0, 2, false},
		{"top_p", 0, 1, false},
		{"presence_penalty", -2, 2, false},
		{"frequency_penalty", -2, 2, false},
	}
	for _, c := range checks {
		if err := checkRange(o, c.key, c.lo, c.hi, c.integer); err != nil {
			return err
		}
	}
	if raw := o.Get("stop"); raw != nil && string(raw) != "null" {
		var s string
		var list []string
		if json.Unmarshal(raw, &s) != nil && json.Unmarshal(raw, &list) != nil {
			return invalid("stop", "must be a string or a list of strings")
		}
	}
	return nil
}

// ChatMessage is one message of a chat request (for validation and docs).
type ChatMessage struct {
	Role       string          `json:"role" enum:"system,developer,user,assistant,tool,function" doc:"Who wrote the message."`
	Content    json.RawMessage `json:"content,omitempty" doc:"A string, or a list of content parts (text, image_url, input_audio, file)."`
	Name       string          `json:"name,omitempty"`
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID *string         `json:"tool_call_id,omitempty"`
}

var roles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// DecodeChat validates a /v1/chat/completions body.
func DecodeChat(body []byte) (*Request, *guichet.Error) {
	r, gerr := common(body)
	if gerr != nil {
		return nil, gerr
	}
	o := r.Object
	var msgs []ChatMessage
	if err := field(o, "messages", &msgs, "a list of messages such as [{\"role\":\"user\",\"content\":\"Hello\"}]"); err != nil {
		return nil, err
	}
	r.Messages = msgs
	if len(msgs) == 0 {
		return nil, invalid("messages", "is required and needs at least one message, such as [{\"role\":\"user\",\"content\":\"Hello\"}]")
	}
	for i, m := range msgs {
		if err := checkMessage(i, m); err != nil {
			return nil, err
		}
	}
	if err := sampling(o); err != nil {
		return nil, err
	}
	if err := checkTools(o); err != nil {
		return nil, err
	}
	if raw := o.Get("response_format"); raw != nil && string(raw) != "null" {
		var rf struct {
			Type       string          `json:"type"`
			JSONSchema json.RawMessage `json:"json_schema"`
		}
		if json.Unmarshal(raw, &rf) != nil {
			return nil, invalid("response_format", "must be an object such as {\"type\":\"json_object\"}")
		}
		switch rf.Type {
		case "text", "json_object":
		case "json_schema":
			if len(rf.JSONSchema) == 0 || rf.JSONSchema[0] != '{' {
				return nil, invalid("response_format.json_schema", "is required with type json_schema and must be an object")
			}
		default:
			return nil, invalid("response_format.type", "must be text, json_object or json_schema, not %q", rf.Type)
		}
	}
	return r, nil
}

func checkMessage(i int, m ChatMessage) *guichet.Error {
	p := fmt.Sprintf("messages[%d]", i)
	if !roles[m.Role] {
		return invalid(p+".role", "must be one of system, developer, user, assistant, tool; got %q", m.Role)
	}
	if m.Role == "tool" && m.ToolCallID == nil {
		return invalid(p+".tool_call_id", "is required in a tool message: the id of the tool call it answers")
	}
	c := m.Content
	switch {
	case len(c) == 0 || string(c) == "null":
		if m.Role != "assistant" {
			return invalid(p+".content", "is required")
		}
	case c[0] == '"':
	case c[0] == '[':
		var parts []struct {
			Type     string          `json:"type"`
			Text     *string         `json:"text"`
			ImageURL json.RawMessage `json:"image_url"`
		}
		if json.Unmarshal(c, &parts) != nil {
			return invalid(p+".content", "must be a string or a list of content parts")
		}
		for j, part := range parts {
			pp := fmt.Sprintf("%s.content[%d]", p, j)
			switch part.Type {
			case "text":
				if part.Text == nil {
					return invalid(pp+".text", "is required in a text part")
				}
			case "image_url":
				var iu struct {
					URL string `json:"url"`
				}
				if json.Unmarshal(part.ImageURL, &iu) != nil || iu.URL == "" {
					return invalid(pp+".image_url.url", "is required in an image_url part (an https:// or data: URL)")
				}
			case "":
				return invalid(pp+".type", "is required (text, image_url, input_audio, file…)")
			}
		}
	default:
		return invalid(p+".content", "must be a string or a list of content parts")
	}
	return nil
}

func checkTools(o Object) *guichet.Error {
	var tools []struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := field(o, "tools", &tools, "a list of tools such as [{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]"); err != nil {
		return err
	}
	for i, t := range tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type == "" {
			return invalid(p+".type", "is required (function)")
		}
		if t.Type == "function" {
			if t.Function == nil || !toolName.MatchString(t.Function.Name) {
				return invalid(p+".function.name", "is required: 1 to 64 letters, digits, _ or -")
			}
		}
	}
	return nil
}

// DecodeCompletion validates a /v1/completions body.
func DecodeCompletion(body []byte) (*Request, *guichet.Error) {
	r, gerr := common(body)
	if gerr != nil {
		return nil, gerr
	}
	o := r.Object
	if err := checkTextOrTokens(o, "prompt"); err != nil {
		return nil, err
	}
	return r, sampling(o)
}

// checkTextOrTokens accepts a string, a list of strings, a list of token
// ids or a list of lists of token ids, none of them empty.
func checkTextOrTokens(o Object, key string) *guichet.Error {
	raw := o.Get(key)
	if raw == nil || string(raw) == "null" {
		return invalid(key, "is required: a string, a list of strings, or token ids")
	}
	var s string
	var ss []string
	var ids []int64
	var idss [][]int64
	switch {
	case json.Unmarshal(raw, &s) == nil:
		if s == "" {
			return invalid(key, "must not be empty")
		}
	case json.Unmarshal(raw, &ss) == nil:
		if len(ss) == 0 {
			return invalid(key, "must not be an empty list")
		}
	case json.Unmarshal(raw, &ids) == nil:
		if len(ids) == 0 {
			return invalid(key, "must not be an empty list")
		}
	case json.Unmarshal(raw, &idss) == nil:
		if len(idss) == 0 {
			return invalid(key, "must not be an empty list")
		}
		for i, l := range idss {
			if len(l) == 0 {
				return invalid(fmt.Sprintf("%s[%d]", key, i), "must not be an empty list")
			}
		}
	default:
		return invalid(key, "must be a string, a list of strings, a list of token ids or a list of lists of token ids")
	}
	return nil
}

// DecodeEmbeddings validates a /v1/embeddings body.
func DecodeEmbeddings(body []byte) (*Request, *guichet.Error) {
	r, gerr := common(body)
	if gerr != nil {
		return nil, gerr
	}
	o := r.Object
	if r.Stream {
		return nil, invalid("stream", "embeddings are not streamed: leave stream out")
	}
	if err := checkTextOrTokens(o, "input"); err != nil {
		return nil, err
	}
	var format string
	if err := field(o, "encoding_format", &format, "a string"); err != nil {
		return nil, err
	}
	if format != "" && format != "float" && format != "base64" {
		return nil, invalid("encoding_format", "must be float or base64, not %q", format)
	}
	if err := checkRange(o, "dimensions", 1, 65536, true); err != nil {
		return nil, err
	}
	return r, nil
}

// Rerank is a rerank request in either shape, normalised.
type Rerank struct {
	Model     string   `json:"model"`
	Query     string   `json:"query"`
	Documents []string `json:"documents"`
	TopN      int      `json:"top_n,omitempty"`
	// Legacy is true for OpenGateLLM's {prompt, input} shape, answered in
	// its {data:[{object:"rerank", score, index}]} shape.
	Legacy bool `json:"-"`
}

// DecodeRerank validates a /v1/rerank body, Cohere or legacy shape.
func DecodeRerank(body []byte) (*Rerank, *guichet.Error) {
	o, gerr := parse(body)
	if gerr != nil {
		return nil, gerr
	}
	r := &Rerank{}
	if err := field(o, "model", &r.Model, "a string"); err != nil {
		return nil, err
	}
	if r.Model == "" {
		return nil, invalid("model", "is required: the name or alias of a model (see GET /v1/models)")
	}
	queryKey, docsKey := "query", "documents"
	if !o.Has("query") && o.Has("prompt") {
		queryKey, docsKey, r.Legacy = "prompt", "input", true
	}
	if err := field(o, queryKey, &r.Query, "a string"); err != nil {
		return nil, err
	}
	if r.Query == "" {
		return nil, invalid(queryKey, "is required: the text to rank the documents against")
	}
	raw := o.Get(docsKey)
	var docs []json.RawMessage
	if raw == nil || json.Unmarshal(raw, &docs) != nil || len(docs) == 0 {
		return nil, invalid(docsKey, "is required: a non-empty list of texts")
	}
	for i, d := range docs {
		var s string
		var obj struct {
			Text *string `json:"text"`
		}
		switch {
		case json.Unmarshal(d, &s) == nil:
		case json.Unmarshal(d, &obj) == nil && obj.Text != nil:
			s = *obj.Text
		default:
			return nil, invalid(fmt.Sprintf("%s[%d]", docsKey, i), "must be a string or {\"text\": \"...\"}")
		}
		r.Documents = append(r.Documents, s)
	}
	if err := field(o, "top_n", &r.TopN, "a whole number"); err != nil {
		return nil, err
	}
	if r.TopN < 0 {
		return nil, invalid("top_n", "must be 1 or more")
	}
	return r, nil
}
