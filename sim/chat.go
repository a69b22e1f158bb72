package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type streamOptions struct {
	IncludeUsage         bool `json:"include_usage"`
	ContinuousUsageStats bool `json:"continuous_usage_stats"`
}

type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	N                   *int            `json:"n"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	IgnoreEOS           bool            `json:"ignore_eos"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ResponseFormat      *responseFormat `json:"response_format"`
	Priority            json.RawMessage `json:"priority"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type chatTool struct {
	Type     string        `json:"type"`
	Function *toolFunction `json:"function"`
}

type toolFunction struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

type contentPart struct {
	Type     string  `json:"type"`
	Text     *string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// messageText returns a message's text parts and its images' URLs.
func messageText(raw json.RawMessage, idx int) (texts, images []string, e *apiError) {
	raw = bytes.TrimSpace(raw)
	field := "messages[" + itoa(idx) + "].content"
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, nil, nil
	case raw[0] == '"':
		if s, ok := plainJSONString(raw); ok {
			return []string{s}, nil, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, badRequest("invalid `" + field + "`: " + err.Error())
		}
		return []string{s}, nil, nil
	case raw[0] == '[':
		var parts []contentPart
		if err := json.Unmarshal(raw, &parts); err != nil {
			return nil, nil, badRequest("invalid `" + field + "`: expected a string or a list of content parts")
		}
		for i, p := range parts {
			switch p.Type {
			case "text":
				if p.Text == nil {
					return nil, nil, badRequest("`" + field + "[" + itoa(i) + "].text` is required for a text part")
				}
				texts = append(texts, *p.Text)
			case "image_url":
				url := ""
				if p.ImageURL != nil {
					url = p.ImageURL.URL
				}
				images = append(images, url)
			default:
				return nil, nil, badRequest("unsupported content part type `" + p.Type + "` in `" + field + "`")
			}
		}
		return texts, images, nil
	}
	return nil, nil, badRequest("invalid `" + field + "`: expected a string or a list of content parts")
}

// plainJSONString reads a JSON string without escapes directly: the
// common case, and the body was already validated by the outer Unmarshal.
func plainJSONString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// validN checks n (default 1).
func validN(n *int) (int, *apiError) {
	if n == nil {
		return 1, nil
	}
	if *n < 1 {
		return 0, badRequest("n must be at least 1, got " + itoa(*n) + ".")
	}
	if *n > maxChoices {
		return 0, badRequest("n must be at most " + itoa(maxChoices) + " on guichet-sim, got " + itoa(*n) + ".")
	}
	return *n, nil
}

// validMaxTokens returns max_tokens (0 when absent).
func validMaxTokens(v *int, name string) (int, *apiError) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 {
		return 0, badRequest(name + " must be at least 1, got " + itoa(*v) + ".")
	}
	return *v, nil
}

// parsePriority reads vLLM's priority field (an integer, default 0; lower
// is served earlier). Like pydantic, a number with a zero fractional part
// (5.0, 1e2) counts as an integer; anything else that is not an integer is
// refused.
func parsePriority(raw json.RawMessage) (int, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		kind := "object"
		switch c {
		case '"':
			kind = "string"
		case 't', 'f':
			kind = "bool"
		case 'n':
			kind = "null"
		case '[':
			kind = "array"
		}
		return 0, badRequest("invalid type for field `priority`: expected an integer, got JSON " + kind)
	}
	if v, err := strconv.ParseInt(string(raw), 10, 0); err == nil {
		return int(v), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, badRequest("invalid `priority`: expected an integer, got " + string(raw))
	case f != math.Trunc(f):
		return 0, badRequest("invalid `priority`: Input should be a valid integer, got a number with a fractional part")
	case f < math.MinInt64 || f >= math.MaxInt64 || math.IsInf(f, 0):
		return 0, badRequest("invalid `priority`: integer out of range")
	}
	return int(f), nil
}

func (s *Server) chat(w *respWriter, r *http.Request, body []byte) outcome {
	return s.planAndGenerate(w, r, body, s.planChat)
}

// planAndGenerate validates and plans a generation request, waits for a
// slot and plays the answer out: chat and completions differ only in plan.
func (s *Server) planAndGenerate(w *respWriter, r *http.Request, body []byte, plan func([]byte) (*genJob, *apiError)) outcome {
	job, e := plan(body)
	if e == nil && job.priority != 0 && !s.cfg.PriorityScheduling {
		// vLLM's engine refuses it, after the request has been rendered.
		e = badRequest("Got priority " + itoa(job.priority) + " but Priority scheduling is not enabled.")
	}
	if e != nil {
		writeError(w, e.status, e.msg)
		return outFailed
	}
	d, out, ok := s.admit(w, r, job.model, job.priority, false, job.queued(w))
	if !ok {
		return out
	}
	return s.generate(w, r, job, d)
}

// planChat validates a chat request and plans its answer.
func (s *Server) planChat(body []byte) (*genJob, *apiError) {
	var req chatRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	m, e := s.model(req.Model)
	if e != nil {
		return nil, e
	}
	if req.Messages == nil {
		return nil, badRequest("`messages` is required")
	}
	if len(req.Messages) == 0 {
		return nil, badRequest("`messages` must not be empty")
	}
	n, e := validN(req.N)
	if e != nil {
		return nil, e
	}
	maxTok, e := validMaxTokens(req.MaxCompletionTokens, "max_completion_tokens")
	if e != nil {
		return nil, e
	}
	if maxTok == 0 {
		if maxTok, e = validMaxTokens(req.MaxTokens, "max_tokens"); e != nil {
			return nil, e
		}
	}
	if req.StreamOptions != nil && !req.Stream {
		return nil, badRequest("Stream options can only be defined when `stream=True`.")
	}
	priority, e := parsePriority(req.Priority)
	if e != nil {
		return nil, e
	}

	// Prompt tokens, the seed of the lorem text, what to echo, and the
	// prompt's blocks for the prefix cache (see prefix.go).
	prompt := 0
	seed := fnv64Uint(fnv64(fnvOffset, m.name), uint64(s.cfg.Seed))
	var lastUser, lastText []string
	var hb *blockHasher
	if s.cache != nil {
		h := newBlockHasher(s.cfg.BlockTokens, m.name)
		hb = &h
	}
	for i, msg := range req.Messages {
		if msg.Role == "" {
			return nil, badRequest("`messages[" + itoa(i) + "].role` is required")
		}
		texts, images, e := messageText(msg.Content, i)
		if e != nil {
			return nil, e
		}
		prompt += 4 + len(images)*imageTokens
		seed = fnv64(seed, msg.Role)
		for _, t := range texts {
			prompt += CountTokens(t)
			seed = fnv64(fnv64(seed, "\x00"), t)
		}
		if hb != nil {
			hb.add(tokChatStart)
			hb.add(fnv64(fnvOffset, msg.Role))
			hb.add(tokChatSep)
			for _, t := range texts {
				hb.text(t)
			}
			for _, url := range images {
				hb.image(url)
			}
			hb.add(tokChatEnd)
		}
		if msg.Role == "user" {
			lastUser = texts
		}
		lastText = texts
	}
	if prompt > s.cfg.MaxModelLen {
		return nil, contextError(s.cfg.MaxModelLen, prompt)
	}
	lastRole := req.Messages[len(req.Messages)-1].Role

	tool, e := chooseTool(&req)
	if e != nil {
		return nil, e
	}
	if lastRole == "tool" {
		tool = nil // the model has the tool's result: it answers in text
	}
	var schemaDoc []string
	jsonObject := false
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			jsonObject = true
		case "json_schema":
			if rf.JSONSchema == nil {
				return nil, badRequest("`response_format.json_schema` is required when type is json_schema")
			}
			if doc := fillSchema(rf.JSONSchema.Schema); doc != "" {
				schemaDoc = splitTokens(doc)
			} else {
				jsonObject = true
			}
		default:
			return nil, badRequest("unsupported `response_format.type` `" + rf.Type + "`")
		}
	}

	job := &genJob{
		chat:     true,
		id:       s.newID("chatcmpl-"),
		model:    m,
		name:     m.name,
		created:  time.Now().Unix(),
		prompt:   prompt,
		choices:  make([]choicePlan, n),
		stream:   req.Stream,
		priority: priority,
	}
	if hb != nil {
		job.prefix = []promptBlocks{hb.result()}
	}
	if o := req.StreamOptions; o != nil {
		job.includeUsage = o.IncludeUsage
		job.continuousUsage = o.ContinuousUsageStats
	}
	ls := lengthSpec{maxTokens: maxTok, ignoreEOS: req.IgnoreEOS, ctxLeft: s.cfg.MaxModelLen - prompt}

	var toolDoc, sentence, echo []string
	switch {
	case tool != nil:
		toolDoc = splitTokens(fillSchema(tool.Parameters))
		if len(toolDoc) == 0 {
			toolDoc = []string{"{", "}"}
		}
	case schemaDoc != nil || jsonObject:
	case lastRole == "tool":
		sentence = splitTokens("guichet-sim received the tool result: " + strings.Join(lastText, "\n"))
	case s.cfg.Content == "echo":
		echo = splitTokens(strings.Join(lastUser, "\n"))
	}
	for i := range job.choices {
		p := &prng{s: splitmix64(seed + uint64(i))}
		c := &job.choices[i]
		switch {
		case tool != nil:
			*c = s.planFixed(ls, toolDoc)
			c.toolName = tool.Name
			c.toolID = s.newID("chatcmpl-tool-")
			if c.finish == "stop" {
				c.finish = "tool_calls"
			}
		case schemaDoc != nil:
			*c = s.planFixed(ls, schemaDoc)
		case jsonObject:
			*c = s.planJSONObject(ls, p)
		case sentence != nil:
			*c = s.planSentence(ls, sentence, p)
		case s.cfg.Content == "echo":
			*c = s.planEcho(ls, echo, p)
		default:
			*c = s.planLorem(ls, p)
		}
	}
	return job, nil
}

// chooseTool returns the function the answer calls, or nil for a text
// answer.
func chooseTool(req *chatRequest) (*toolFunction, *apiError) {
	for i, t := range req.Tools {
		if t.Function == nil || t.Function.Name == "" {
			return nil, badRequest("`tools[" + itoa(i) + "].function.name` is required")
		}
		if t.Type != "" && t.Type != "function" {
			return nil, badRequest("unsupported `tools[" + itoa(i) + "].type` `" + t.Type + "`")
		}
	}
	choice := bytes.TrimSpace(req.ToolChoice)
	if len(choice) == 0 || string(choice) == "null" {
		if len(req.Tools) == 0 {
			return nil, nil
		}
		return req.Tools[0].Function, nil // "auto"
	}
	if choice[0] == '"' {
		var c string
		if err := json.Unmarshal(choice, &c); err != nil {
			return nil, badRequest("invalid `tool_choice`")
		}
		switch c {
		case "none":
			return nil, nil
		case "auto":
		case "required":
			if len(req.Tools) == 0 {
				return nil, badRequest("When using `tool_choice`, `tools` must be set.")
			}
		default:
			return nil, badRequest("`tool_choice` must be none, auto, required or a named function, got `" + c + "`")
		}
		if len(req.Tools) == 0 {
			return nil, nil
		}
		return req.Tools[0].Function, nil
	}
	var named struct {
		Type     string `json:"type"`
		Function *struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(choice, &named); err != nil || named.Function == nil || named.Function.Name == "" {
		return nil, badRequest("invalid `tool_choice`: expected a string or {\"type\":\"function\",\"function\":{\"name\":...}}")
	}
	for _, t := range req.Tools {
		if t.Function.Name == named.Function.Name {
			return t.Function, nil
		}
	}
	return nil, badRequest("Tool '" + named.Function.Name + "' has not been passed in `tools`.")
}

// fillSchema builds a JSON object from a JSON schema's properties, in
// their order: string → "sim", number/integer → 1, boolean → true, enum →
// its first value, anything else → null. It returns "" when the schema has
// no properties.
func fillSchema(schema json.RawMessage) string {
	var top struct {
		Properties json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(schema, &top) != nil || len(top.Properties) == 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(top.Properties))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	b := []byte{'{'}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := t.(string)
		var prop struct {
			Type json.RawMessage   `json:"type"`
			Enum []json.RawMessage `json:"enum"`
		}
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			return ""
		}
		_ = json.Unmarshal(raw, &prop)
		if len(b) > 1 {
			b = append(b, ", "...)
		}
		b = appendJSONString(b, key)
		b = append(b, ": "...)
		if len(prop.Enum) > 0 {
			var c bytes.Buffer
			if json.Compact(&c, prop.Enum[0]) == nil {
				b = append(b, c.Bytes()...)
				continue
			}
		}
		switch schemaType(prop.Type) {
		case "string":
			b = append(b, `"sim"`...)
		case "number", "integer":
			b = append(b, '1')
		case "boolean":
			b = append(b, "true"...)
		default:
			b = append(b, "null"...)
		}
	}
	return string(append(b, '}'))
}

// schemaType reads "type": a name, or the first non-null of a list.
func schemaType(raw json.RawMessage) string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, t := range many {
			if t != "null" {
				return t
			}
		}
	}
	return ""
}
