package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- helpers ---

func newSim(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func post(t testing.TB, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, b
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// sseEvents splits an SSE body into its data payloads, checking framing.
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.SplitAfter(string(body), "\n\n") {
		if ev == "" {
			continue
		}
		if !strings.HasPrefix(ev, "data: ") || !strings.HasSuffix(ev, "\n\n") {
			t.Fatalf("bad SSE event %q", ev)
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(ev, "data: "), "\n\n"))
	}
	return out
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type toolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string  `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

type chatMsg struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	ToolCalls []toolCall `json:"tool_calls"`
}

type chatResp struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int             `json:"index"`
		Message      chatMsg         `json:"message"`
		Delta        *chatMsg        `json:"delta"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
		Text         *string         `json:"text"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- tokenizer ---

func TestCountTokens(t *testing.T) {
	for text, want := range map[string]int{
		"":                              0,
		"   ":                           0,
		"hello":                         1,
		"Hello, world!":                 4,
		"guichet-sim simulated answer:": 6,
		" café au lait 42x":             4,
		"a\nb\tc  ":                     3,
		"😀😀":                            2,
		`{"a": 1}`:                      7,
	} {
		if got := CountTokens(text); got != want {
			t.Errorf("CountTokens(%q) = %d, want %d", text, got, want)
		}
		if got := strings.Join(splitTokens(text), ""); got != strings.TrimRight(text, " \t\n") {
			t.Errorf("splitTokens(%q) joins to %q", text, got)
		}
	}
}

// --- chat ---

func TestChatNonStream(t *testing.T) {
	_, url := newSim(t, Config{})
	resp, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":"Hello, world!"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content-type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	r := decode[chatResp](t, b)
	if !strings.HasPrefix(r.ID, "chatcmpl-") || len(r.ID) != len("chatcmpl-")+32 || r.Object != "chat.completion" || r.Model != "sim-model" || r.Created == 0 {
		t.Fatalf("bad envelope: %s", b)
	}
	if len(r.Choices) != 1 || r.Choices[0].Message.Role != "assistant" || r.Choices[0].Message.Content == nil ||
		string(r.Choices[0].Logprobs) != "null" || *r.Choices[0].FinishReason != "stop" {
		t.Fatalf("bad choice: %s", b)
	}
	content := *r.Choices[0].Message.Content
	if !strings.HasPrefix(content, "guichet-sim simulated answer:") {
		t.Errorf("content does not say it is simulated: %q", content)
	}
	wantPrompt := CountTokens("Be brief.") + CountTokens("Hello, world!") + 2*4
	if r.Usage.PromptTokens != wantPrompt || r.Usage.CompletionTokens != 16 ||
		r.Usage.TotalTokens != wantPrompt+16 || CountTokens(content) != 16 {
		t.Errorf("usage %+v (want prompt %d); content has %d tokens", r.Usage, wantPrompt, CountTokens(content))
	}

	// Deterministic for the same seed and request, streamed or not.
	_, b2 := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[
		{"role":"system","content":"Be brief."},
		{"role":"user","content":"Hello, world!"}],"stream":false}`)
	if c2 := *decode[chatResp](t, b2).Choices[0].Message.Content; c2 != content {
		t.Errorf("not deterministic: %q vs %q", content, c2)
	}
}

// streamChat returns the chunks of a streamed chat answer (without [DONE],
// which it checks).
func streamChat(t *testing.T, url, body string) []chatResp {
	t.Helper()
	resp, b := post(t, url+"/v1/chat/completions", body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content-type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	events := sseEvents(t, b)
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %s", b)
	}
	var chunks []chatResp
	for _, ev := range events[:len(events)-1] {
		c := decode[chatResp](t, []byte(ev))
		if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Fatalf("bad chunk %s", ev)
		}
		chunks = append(chunks, c)
	}
	return chunks
}

func TestChatStreamFraming(t *testing.T) {
	_, url := newSim(t, Config{OutputTokens: 7})
	for _, withUsage := range []bool{false, true} {
		body := `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],"stream":true}`
		if withUsage {
			body = `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}`
		}
		chunks := streamChat(t, url, body)
		first := chunks[0].Choices[0]
		if first.Delta == nil || first.Delta.Role != "assistant" || first.Delta.Content == nil || *first.Delta.Content != "" || first.FinishReason != nil {
			t.Fatalf("first chunk is not the role chunk: %+v", chunks[0])
		}
		var pieces []string
		i := 1
		for ; i < len(chunks) && chunks[i].Choices[0].FinishReason == nil; i++ {
			d := chunks[i].Choices[0].Delta
			if d.Content == nil || *d.Content == "" || chunks[i].Usage != nil {
				t.Fatalf("chunk %d is not a token chunk: %+v", i, chunks[i])
			}
			pieces = append(pieces, *d.Content)
		}
		if i >= len(chunks) || *chunks[i].Choices[0].FinishReason != "stop" {
			t.Fatalf("no finish chunk")
		}
		rest := chunks[i+1:]
		if !withUsage {
			if len(rest) != 0 {
				t.Fatalf("unexpected chunks after finish: %+v", rest)
			}
			if len(pieces) != 7 {
				t.Fatalf("%d pieces, want 7", len(pieces))
			}
			continue
		}
		if len(rest) != 1 || len(rest[0].Choices) != 0 || rest[0].Usage == nil {
			t.Fatalf("want one usage chunk with no choices, got %+v", rest)
		}
		u := rest[0].Usage
		if u.CompletionTokens != len(pieces) || u.CompletionTokens != 7 || u.PromptTokens != CountTokens("Hi")+4 ||
			CountTokens(strings.Join(pieces, "")) != len(pieces) {
			t.Fatalf("usage %+v vs %d pieces", u, len(pieces))
		}
	}
}

func TestChatContinuousUsage(t *testing.T) {
	_, url := newSim(t, Config{OutputTokens: 5})
	chunks := streamChat(t, url, `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],"stream":true,
		"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`)
	tokens := 0
	for i, c := range chunks {
		if c.Usage == nil {
			t.Fatalf("chunk %d has no usage", i)
		}
		if len(c.Choices) == 1 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
			tokens++
		}
		if c.Usage.CompletionTokens != tokens {
			t.Fatalf("chunk %d: completion_tokens %d, want %d", i, c.Usage.CompletionTokens, tokens)
		}
	}
}

func TestChatN(t *testing.T) {
	_, url := newSim(t, Config{OutputTokens: 4})
	_, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],"n":2}`)
	r := decode[chatResp](t, b)
	if len(r.Choices) != 2 || r.Choices[0].Index != 0 || r.Choices[1].Index != 1 || r.Usage.CompletionTokens != 8 {
		t.Fatalf("n=2: %s", b)
	}

	chunks := streamChat(t, url, `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],"n":2,"stream":true,"stream_options":{"include_usage":true}}`)
	pieces := map[int]int{}
	finished := map[int]bool{}
	var order []int
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil && *ch.Delta.Content != "" {
				pieces[ch.Index]++
				order = append(order, ch.Index)
			}
			if ch.FinishReason != nil {
				finished[ch.Index] = true
			}
		}
	}
	if pieces[0] != 4 || pieces[1] != 4 || !finished[0] || !finished[1] {
		t.Fatalf("pieces %v finished %v", pieces, finished)
	}
	if order[0] != 0 || order[1] != 1 || order[2] != 0 {
		t.Errorf("tokens not interleaved per index: %v", order)
	}
	if u := chunks[len(chunks)-1].Usage; u == nil || u.CompletionTokens != 8 {
		t.Errorf("usage %+v, want 8 completion tokens", u)
	}
}

func TestOutputModes(t *testing.T) {
	chat := func(url, extra string) (int, string) {
		_, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}]`+extra+`}`)
		r := decode[chatResp](t, b)
		return r.Usage.CompletionTokens, *r.Choices[0].FinishReason
	}
	_, fixed := newSim(t, Config{OutputTokens: 10})
	if n, f := chat(fixed, `,"max_tokens":3`); n != 3 || f != "length" {
		t.Errorf("fixed capped: %d %s", n, f)
	}
	if n, f := chat(fixed, `,"max_completion_tokens":30`); n != 10 || f != "stop" {
		t.Errorf("fixed: %d %s", n, f)
	}
	_, exact := newSim(t, Config{OutputTokens: 10, OutputMode: "max_tokens"})
	if n, f := chat(exact, `,"max_tokens":25`); n != 25 || f != "length" {
		t.Errorf("max_tokens mode: %d %s", n, f)
	}
	if n, _ := chat(exact, ``); n != 10 {
		t.Errorf("max_tokens mode without max_tokens: %d", n)
	}
	_, random := newSim(t, Config{OutputTokens: 6, OutputMode: "random", Seed: 3})
	seen := map[int]bool{}
	for range 40 {
		n, _ := chat(random, ``)
		if n < 1 || n > 6 {
			t.Fatalf("random length %d out of 1..6", n)
		}
		seen[n] = true
	}
	if len(seen) < 3 {
		t.Errorf("random lengths not varied: %v", seen)
	}
	_, small := newSim(t, Config{MaxModelLen: 10, OutputTokens: 16})
	if n, f := chat(small, ``); n != 10-(1+4) || f != "length" {
		t.Errorf("context-capped: %d %s", n, f)
	}
}

func TestEchoAndMultimodal(t *testing.T) {
	_, url := newSim(t, Config{Content: "echo", OutputTokens: 6})
	_, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":[
		{"type":"text","text":"look at"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"this"}]}]}`)
	r := decode[chatResp](t, b)
	if want := 4 + CountTokens("look at") + CountTokens("this") + 64; r.Usage.PromptTokens != want {
		t.Errorf("prompt tokens %d, want %d", r.Usage.PromptTokens, want)
	}
	if got := *r.Choices[0].Message.Content; got != "look at\nthis look at\nthis" {
		t.Errorf("echo %q", got)
	}
}

func TestChatTools(t *testing.T) {
	_, url := newSim(t, Config{})
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
		"properties":{"city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},"extra":{"type":"object"}}}}},
		{"type":"function","function":{"name":"other","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]`
	_, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Weather in Paris?"}],`+tools+`}`)
	r := decode[chatResp](t, b)
	msg := r.Choices[0].Message
	if *r.Choices[0].FinishReason != "tool_calls" || msg.Content != nil || len(msg.ToolCalls) != 1 {
		t.Fatalf("not a tool call: %s", b)
	}
	tc := msg.ToolCalls[0]
	if !strings.HasPrefix(tc.ID, "chatcmpl-tool-") || tc.Type != "function" || tc.Function.Name != "get_weather" {
		t.Fatalf("bad tool call %+v", tc)
	}
	args := decode[map[string]any](t, []byte(*tc.Function.Arguments))
	if args["city"] != "sim" || args["days"] != 1.0 || args["metric"] != true || args["extra"] != nil || len(args) != 4 {
		t.Errorf("arguments %v", args)
	}
	if r.Usage.CompletionTokens != CountTokens(*tc.Function.Arguments) {
		t.Errorf("completion tokens %d for arguments %q", r.Usage.CompletionTokens, *tc.Function.Arguments)
	}

	// A named tool_choice picks that function; "none" answers in text.
	_, b = post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"q"}],`+tools+
		`,"tool_choice":{"type":"function","function":{"name":"other"}}}`)
	if r := decode[chatResp](t, b); r.Choices[0].Message.ToolCalls[0].Function.Name != "other" {
		t.Errorf("named tool_choice ignored: %s", b)
	}
	_, b = post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"q"}],`+tools+`,"tool_choice":"none"}`)
	if r := decode[chatResp](t, b); r.Choices[0].Message.Content == nil || len(r.Choices[0].Message.ToolCalls) != 0 {
		t.Errorf("tool_choice none still calls: %s", b)
	}

	// After the tool's answer, the model answers in text quoting it.
	_, b = post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Weather in Paris?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"x","content":"Sunny, 22 C"}],`+tools+`}`)
	r = decode[chatResp](t, b)
	if c := r.Choices[0].Message.Content; c == nil || *c != "guichet-sim received the tool result: Sunny, 22 C" ||
		*r.Choices[0].FinishReason != "stop" || r.Usage.CompletionTokens != CountTokens(*c) {
		t.Errorf("tool result answer: %s", b)
	}

	// Streamed: a header delta with id and name, then argument pieces.
	chunks := streamChat(t, url, `{"model":"sim-model","messages":[{"role":"user","content":"Weather?"}],`+tools+
		`,"stream":true,"stream_options":{"include_usage":true}}`)
	var argsText strings.Builder
	pieces, headers := 0, 0
	var finish string
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil || *tc.Index != 0 {
					t.Fatalf("tool call delta without index 0: %+v", tc)
				}
				if tc.ID != "" {
					headers++
					if tc.Type != "function" || tc.Function.Name != "get_weather" || tc.Function.Arguments == nil || *tc.Function.Arguments != "" {
						t.Fatalf("bad header delta %+v", tc)
					}
					continue
				}
				pieces++
				argsText.WriteString(*tc.Function.Arguments)
			}
		}
	}
	if headers != 1 || finish != "tool_calls" {
		t.Fatalf("headers %d finish %q", headers, finish)
	}
	if !json.Valid([]byte(argsText.String())) {
		t.Fatalf("streamed arguments are not JSON: %q", argsText.String())
	}
	if u := chunks[len(chunks)-1].Usage; u == nil || u.CompletionTokens != pieces {
		t.Errorf("usage %+v for %d pieces", u, pieces)
	}
}

func TestChatResponseFormat(t *testing.T) {
	_, url := newSim(t, Config{})
	_, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"json_object"}}`)
	r := decode[chatResp](t, b)
	var obj struct {
		Simulated bool   `json:"simulated"`
		Text      string `json:"text"`
	}
	if c := *r.Choices[0].Message.Content; json.Unmarshal([]byte(c), &obj) != nil || !obj.Simulated || CountTokens(c) != r.Usage.CompletionTokens {
		t.Fatalf("json_object content %q", c)
	}
	_, b = post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Hi"}],
		"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":["integer","null"]}}}}}}`)
	r = decode[chatResp](t, b)
	if c := *r.Choices[0].Message.Content; c != `{"name": "sim", "age": 1}` {
		t.Errorf("json_schema content %q", c)
	}
}

func TestChatErrors(t *testing.T) {
	_, url := newSim(t, Config{MaxModelLen: 20})
	for _, tc := range []struct {
		body   string
		status int
		in     string
	}{
		{`{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "The model `nope` does not exist."},
		{`{"model":"sim-model"}`, 400, "messages"},
		{`{"model":"sim-model","messages":[{"content":"x"}]}`, 400, "role"},
		{`{"model":"sim-model","messages":"x"}`, 400, "messages"},
		{`{"model":"sim-model","messages":[{"role":"user","content":"x"}],"n":0}`, 400, "n must"},
		{`{"model":"sim-model","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens"},
		{`{"model":"sim-model","messages":[{"role":"user","content":"` + strings.Repeat("w ", 30) + `"}]}`, 400, "maximum context length is 20 tokens"},
		{`{"model":"sim-model","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`, 400, "tools"},
		{`not json`, 400, "invalid JSON"},
	} {
		resp, b := post(t, url+"/v1/chat/completions", tc.body)
		var e struct {
			Error struct {
				Message string          `json:"message"`
				Type    string          `json:"type"`
				Param   json.RawMessage `json:"param"`
				Code    int             `json:"code"`
			} `json:"error"`
		}
		if resp.StatusCode != tc.status || json.Unmarshal(b, &e) != nil || e.Error.Code != tc.status ||
			!strings.Contains(e.Error.Message, tc.in) || string(e.Error.Param) != "null" || e.Error.Type == "" {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, b)
		}
	}
	big := `{"model":"sim-model","messages":[{"role":"user","content":"` + strings.Repeat("x", 33<<20) + `"}]}`
	if resp, _ := post(t, url+"/v1/chat/completions", big); resp.StatusCode != 413 {
		t.Errorf("33 MiB body: %d", resp.StatusCode)
	}
	if resp, b := get(t, url+"/v1/nothing"); resp.StatusCode != 404 || string(b) != `{"detail":"Not Found"}` {
		t.Errorf("unknown route: %d %s", resp.StatusCode, b)
	}
}

// --- completions ---

func TestCompletions(t *testing.T) {
	_, url := newSim(t, Config{OutputTokens: 5})
	for body, wantPrompt := range map[string]int{
		`"prompt":"Hello there"`:        2,
		`"prompt":["a b","c"]`:          3,
		`"prompt":[1,2,3]`:              3,
		`"prompt":[[1,2],[3,4,5]]`:      5,
		`"prompt":"x","n":2`:            1,
		`"prompt":"x","max_tokens":200`: 1,
	} {
		_, b := post(t, url+"/v1/completions", `{"model":"sim-model",`+body+`}`)
		r := decode[chatResp](t, b)
		if !strings.HasPrefix(r.ID, "cmpl-") || r.Object != "text_completion" || r.Usage == nil || r.Usage.PromptTokens != wantPrompt {
			t.Errorf("%s: %s", body, b)
			continue
		}
		sum := 0
		for i, c := range r.Choices {
			if c.Index != i || c.Text == nil || string(c.Logprobs) != "null" {
				t.Errorf("%s: bad choice %d: %s", body, i, b)
			}
			sum += CountTokens(*c.Text)
		}
		if sum != r.Usage.CompletionTokens {
			t.Errorf("%s: %d tokens in texts, usage says %d", body, sum, r.Usage.CompletionTokens)
		}
	}

	resp, b := post(t, url+"/v1/completions", `{"model":"sim-model","prompt":"Hi","stream":true,"stream_options":{"include_usage":true}}`)
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content-type %q", resp.Header.Get("Content-Type"))
	}
	events := sseEvents(t, b)
	if events[len(events)-1] != "[DONE]" {
		t.Fatal("no [DONE]")
	}
	pieces := 0
	var last chatResp
	for _, ev := range events[:len(events)-1] {
		c := decode[chatResp](t, []byte(ev))
		if c.Object != "text_completion" {
			t.Fatalf("chunk object %q", c.Object)
		}
		if len(c.Choices) == 1 && *c.Choices[0].Text != "" {
			pieces++
		}
		last = c
	}
	if pieces != 5 || last.Usage == nil || last.Usage.CompletionTokens != 5 || len(last.Choices) != 0 {
		t.Errorf("%d pieces, last chunk %+v", pieces, last)
	}
	if resp, _ := post(t, url+"/v1/completions", `{"model":"sim-model","prompt":[]}`); resp.StatusCode != 400 {
		t.Errorf("empty prompt list: %d", resp.StatusCode)
	}
}

// --- embeddings, rerank, TEI ---

type embResp struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Index     int             `json:"index"`
		Object    string          `json:"object"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage usage `json:"usage"`
}

func floats(t *testing.T, raw json.RawMessage) []float32 {
	t.Helper()
	return decode[[]float32](t, raw)
}

func dot(a, b []float32) float64 {
	var d float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
	}
	return d
}

func TestEmbeddings(t *testing.T) {
	_, url := newSim(t, Config{})
	texts := `["The cat sat on the mat","The cat sat on a mat","Quarterly revenue grew by 4 percent","The cat sat on the mat"]`
	_, b := post(t, url+"/v1/embeddings", `{"model":"sim-model","input":`+texts+`}`)
	r := decode[embResp](t, b)
	if !strings.HasPrefix(r.ID, "embd-") || r.Object != "list" || len(r.Data) != 4 || r.Usage.CompletionTokens != 0 ||
		r.Usage.PromptTokens != r.Usage.TotalTokens || r.Usage.PromptTokens != 6+6+6+6 {
		t.Fatalf("envelope: %s", b)
	}
	var vecs [][]float32
	for i, d := range r.Data {
		v := floats(t, d.Embedding)
		if d.Index != i || d.Object != "embedding" || len(v) != 384 || math.Abs(dot(v, v)-1) > 1e-5 {
			t.Fatalf("vector %d: len %d norm² %f", i, len(v), dot(v, v))
		}
		vecs = append(vecs, v)
	}
	if dot(vecs[0], vecs[3]) < 0.99999 {
		t.Error("same text, different vectors")
	}
	if near, far := dot(vecs[0], vecs[1]), dot(vecs[0], vecs[2]); near < 0.5 || near <= far+0.3 {
		t.Errorf("similar texts %.3f, unrelated %.3f", near, far)
	}

	// base64 carries the same float32 values.
	_, b = post(t, url+"/v1/embeddings", `{"model":"sim-model","input":"The cat sat on the mat","encoding_format":"base64"}`)
	var s string
	if err := json.Unmarshal(decode[embResp](t, b).Data[0].Embedding, &s); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 384*4 {
		t.Fatalf("base64: %v, %d bytes", err, len(raw))
	}
	for i := range 384 {
		if f := math.Float32frombits(binary.LittleEndian.Uint32(raw[i*4:])); f != vecs[0][i] {
			t.Fatalf("base64 float %d = %v, float format %v", i, f, vecs[0][i])
		}
	}

	// dimensions truncates and re-normalises.
	_, b = post(t, url+"/v1/embeddings", `{"model":"sim-model","input":"The cat sat on the mat and looked at the dog","dimensions":64}`)
	if v := floats(t, decode[embResp](t, b).Data[0].Embedding); len(v) != 64 || math.Abs(dot(v, v)-1) > 1e-5 {
		t.Errorf("dimensions: len %d norm² %f", len(v), dot(v, v))
	}
	if resp, _ := post(t, url+"/v1/embeddings", `{"model":"sim-model","input":"x","dimensions":385}`); resp.StatusCode != 400 {
		t.Errorf("dimensions > EmbeddingDim: %d", resp.StatusCode)
	}
	// Token ids.
	_, b = post(t, url+"/v1/embeddings", `{"model":"sim-model","input":[[1,2,3],[4,5]]}`)
	if r := decode[embResp](t, b); len(r.Data) != 2 || r.Usage.PromptTokens != 5 {
		t.Errorf("token ids: %s", b)
	}
	if resp, _ := post(t, url+"/v1/embeddings", `{"model":"other","input":"x"}`); resp.StatusCode != 404 {
		t.Errorf("unknown model: %d", resp.StatusCode)
	}
}

func TestRerank(t *testing.T) {
	_, url := newSim(t, Config{})
	docs := `["Paris is the capital of France","Bananas are yellow","The capital of France is Paris, a large city"]`
	for _, path := range []string{"/v1/rerank", "/rerank"} {
		_, b := post(t, url+path, `{"model":"sim-model","query":"What is the capital of France?","documents":`+docs+`,"top_n":2}`)
		var r struct {
			ID      string `json:"id"`
			Model   string `json:"model"`
			Usage   usage  `json:"usage"`
			Results []struct {
				Index    int `json:"index"`
				Document struct {
					Text string `json:"text"`
				} `json:"document"`
				RelevanceScore float64 `json:"relevance_score"`
			} `json:"results"`
		}
		if err := json.Unmarshal(b, &r); err != nil || !strings.HasPrefix(r.ID, "rerank-") || len(r.Results) != 2 || r.Usage.TotalTokens == 0 {
			t.Fatalf("%s: %s", path, b)
		}
		if r.Results[0].RelevanceScore < r.Results[1].RelevanceScore || r.Results[0].Index == 1 || r.Results[1].Index == 1 ||
			r.Results[0].RelevanceScore > 1 || r.Results[1].RelevanceScore < 0 || r.Results[0].Document.Text == "" {
			t.Errorf("%s: ranking %s", path, b)
		}
	}

	_, b := post(t, url+"/rerank", `{"query":"What is the capital of France?","texts":`+docs+`,"return_text":true}`)
	var tei []struct {
		Index int     `json:"index"`
		Score float64 `json:"score"`
		Text  *string `json:"text"`
	}
	if err := json.Unmarshal(b, &tei); err != nil || len(tei) != 3 || tei[2].Index != 1 || tei[0].Text == nil ||
		tei[0].Score < tei[1].Score || tei[1].Score < tei[2].Score {
		t.Fatalf("TEI rerank: %s", b)
	}
	_, b = post(t, url+"/rerank", `{"query":"capital","texts":["capital city","bananas"],"raw_scores":true}`)
	tei = nil
	if err := json.Unmarshal(b, &tei); err != nil || tei[0].Text != nil || tei[0].Score <= 0 {
		t.Errorf("TEI raw scores: %s", b)
	}
	if resp, b := post(t, url+"/rerank", `{"query":"q","texts":[]}`); resp.StatusCode != 400 || !strings.Contains(string(b), `"error_type":"empty"`) {
		t.Errorf("TEI empty texts: %d %s", resp.StatusCode, b)
	}
}

func TestTEIEmbedAndInfo(t *testing.T) {
	_, url := newSim(t, Config{Models: []string{"bge-m3"}, EmbeddingDim: 8, MaxModelLen: 5})
	_, b := post(t, url+"/embed", `{"inputs":["hello world","hello"]}`)
	vecs := decode[[][]float32](t, b)
	if len(vecs) != 2 || len(vecs[0]) != 8 || math.Abs(dot(vecs[0], vecs[0])-1) > 1e-5 {
		t.Fatalf("/embed: %s", b)
	}
	_, b = post(t, url+"/embed", `{"inputs":"hello"}`)
	if v := decode[[][]float32](t, b); len(v) != 1 || dot(v[0], vecs[1]) < 0.9999 {
		t.Errorf("/embed single: %s", b)
	}
	if resp, b := post(t, url+"/embed", `{"inputs":"a b c d e f g"}`); resp.StatusCode != 413 || !strings.Contains(string(b), "validation") {
		t.Errorf("too long: %d %s", resp.StatusCode, b)
	}
	if resp, _ := post(t, url+"/embed", `{"inputs":"a b c d e f g","truncate":true}`); resp.StatusCode != 200 {
		t.Errorf("truncate: %d", resp.StatusCode)
	}
	_, b = get(t, url+"/info")
	info := decode[map[string]any](t, b)
	if info["model_id"] != "bge-m3" || info["max_input_length"] != 5.0 || info["max_client_batch_size"] != 32.0 || info["version"] != "guichet-sim" {
		t.Errorf("/info: %s", b)
	}
}

// --- audio ---

func wav(seconds float64) []byte {
	const rate, byteRate = 16000, 32000 // 16-bit mono
	data := int(seconds * byteRate)
	b := make([]byte, 44+data)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], byteRate)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	return b
}

func transcribe(t *testing.T, url string, file []byte, fields map[string]string) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "audio.wav")
	_, _ = fw.Write(file)
	_ = mw.Close()
	resp, err := http.Post(url+"/v1/audio/transcriptions", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTranscription(t *testing.T) {
	_, url := newSim(t, Config{Models: []string{"whisper"}})
	audio := wav(2.5)
	want := "guichet-sim simulated transcription of a 2.5s audio file (80044 bytes)."

	_, b := transcribe(t, url, audio, map[string]string{"model": "whisper"})
	var j struct {
		Text  string `json:"text"`
		Usage struct {
			Type    string `json:"type"`
			Seconds int    `json:"seconds"`
		} `json:"usage"`
	}
	if json.Unmarshal([]byte(b), &j) != nil || j.Text != want || j.Usage.Type != "duration" || j.Usage.Seconds != 3 {
		t.Errorf("json: %s", b)
	}
	resp, b := transcribe(t, url, audio, map[string]string{"model": "whisper", "response_format": "text"})
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || strings.TrimSpace(b) != want {
		t.Errorf("text: %q", b)
	}
	_, b = transcribe(t, url, audio, map[string]string{"model": "whisper", "response_format": "verbose_json", "language": "fr", "temperature": "0.2"})
	var v struct {
		Task     string  `json:"task"`
		Language string  `json:"language"`
		Duration float64 `json:"duration"`
		Text     string  `json:"text"`
		Segments []struct {
			ID          int     `json:"id"`
			Start       float64 `json:"start"`
			End         float64 `json:"end"`
			Text        string  `json:"text"`
			Tokens      []int   `json:"tokens"`
			Temperature float64 `json:"temperature"`
		} `json:"segments"`
	}
	if json.Unmarshal([]byte(b), &v) != nil || v.Task != "transcribe" || v.Language != "fr" || v.Duration != 2.5 ||
		len(v.Segments) != 1 || v.Segments[0].End != 2.5 || v.Segments[0].Tokens == nil || v.Segments[0].Temperature != 0.2 {
		t.Errorf("verbose_json: %s", b)
	}
	if _, b = transcribe(t, url, audio, map[string]string{"model": "whisper", "response_format": "srt"}); b != "1\n00:00:00,000 --> 00:00:02,500\n"+want+"\n\n" {
		t.Errorf("srt: %q", b)
	}
	if _, b = transcribe(t, url, audio, map[string]string{"model": "whisper", "response_format": "vtt"}); b != "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n"+want+"\n\n" {
		t.Errorf("vtt: %q", b)
	}
	// Not a WAV file: bytes/16000 seconds.
	if _, b = transcribe(t, url, make([]byte, 8000), map[string]string{"model": "whisper", "response_format": "text"}); !strings.Contains(b, "0.5s audio file (8000 bytes)") {
		t.Errorf("raw bytes: %q", b)
	}
	if resp, _ := transcribe(t, url, audio, map[string]string{"model": "nope"}); resp.StatusCode != 404 {
		t.Errorf("unknown model: %d", resp.StatusCode)
	}
	if resp, _ := transcribe(t, url, audio, map[string]string{"response_format": "mp3"}); resp.StatusCode != 400 {
		t.Errorf("bad response_format: %d", resp.StatusCode)
	}
}

// --- saturation, cancellation, faults ---

// startChats sends n requests in the background; cancel ends them.
func startChats(t *testing.T, url string, n int, body string) (cancel func(), errs chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errs = make(chan error, n)
	for range n {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	return cancel, errs
}

func TestSaturationAndCancellation(t *testing.T) {
	s, url := newSim(t, Config{MaxConcurrency: 1, TTFT: time.Minute})
	cancel, errs := startChats(t, url, 3, `{"model":"sim-model","messages":[{"role":"user","content":"x"}]}`)
	defer cancel()
	waitFor(t, "1 running, 2 waiting", func() bool { st := s.Stats(); return st.Running == 1 && st.Waiting == 2 })

	_, b := get(t, url+"/sim/stats")
	if st := decode[Stats](t, b); st.Requests != 3 || st.Running != 1 || st.Waiting != 2 {
		t.Errorf("/sim/stats: %s", b)
	}
	_, b = get(t, url+"/metrics")
	for _, line := range []string{
		`vllm:num_requests_running{model_name="sim-model"} 1.0`,
		`vllm:num_requests_waiting{model_name="sim-model"} 2.0`,
		`vllm:gpu_cache_usage_perc{model_name="sim-model"} 1.0`,
		`# TYPE vllm:prompt_tokens_total counter`,
		`# TYPE vllm:generation_tokens_total counter`,
		`vllm:request_success_total{finished_reason="stop",model_name="sim-model"} 0.0`,
	} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", line, b)
		}
	}

	cancel()
	for range 3 {
		if err := <-errs; err == nil {
			t.Error("a cancelled request succeeded")
		}
	}
	waitFor(t, "3 cancelled", func() bool { st := s.Stats(); return st.Cancelled == 3 && st.Running == 0 && st.Waiting == 0 })
}

func TestQueueFIFOAndFull(t *testing.T) {
	s, url := newSim(t, Config{MaxConcurrency: 1, MaxQueue: 1, TTFT: 300 * time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var codes []int
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"x"}]}`)
			mu.Lock()
			codes = append(codes, resp.StatusCode)
			mu.Unlock()
		}()
		// Let each request settle (running, waiting, refused) before the next.
		waitFor(t, "arrival", func() bool { st := s.Stats(); return st.Running+st.Waiting+st.Failed == int64(i+1) })
	}
	wg.Wait()
	ok, full := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 503:
			full++
		}
	}
	if ok != 2 || full != 1 {
		t.Errorf("codes %v: want two 200 and one 503", codes)
	}
	if st := s.Stats(); st.Completed != 2 || st.Failed != 1 || st.Running != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestStreamCancellation(t *testing.T) {
	s, url := newSim(t, Config{ITL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions",
		strings.NewReader(`{"model":"sim-model","messages":[{"role":"user","content":"x"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// The role chunk and the first token come at TTFT, then nothing for a minute.
	br := bufio.NewReader(resp.Body)
	for range 2 {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Running != 1 {
		t.Fatalf("running %d", st.Running)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "cancelled", func() bool { st := s.Stats(); return st.Cancelled == 1 && st.Running == 0 })
}

func TestFaults(t *testing.T) {
	s, url := newSim(t, Config{})
	chatBody := `{"model":"sim-model","messages":[{"role":"user","content":"x"}]}`
	streamBody := `{"model":"sim-model","messages":[{"role":"user","content":"x"}],"stream":true}`
	put := func(f string) {
		req, _ := http.NewRequest("PUT", url+"/sim/faults", strings.NewReader(f))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("PUT /sim/faults %s: %v %v", f, err, resp)
		}
		resp.Body.Close()
	}

	put(`{"error_rate":1}`)
	if resp, b := post(t, url+"/v1/chat/completions", chatBody); resp.StatusCode != 500 || !strings.Contains(string(b), `"code":500`) {
		t.Errorf("error fault: %d %s", resp.StatusCode, b)
	}
	put(`{"error_rate":1,"error_status":502}`)
	if resp, _ := post(t, url+"/v1/embeddings", `{"model":"sim-model","input":"x"}`); resp.StatusCode != 502 {
		t.Errorf("error fault 502: %d", resp.StatusCode)
	}
	_, b := get(t, url+"/sim/faults")
	if f := decode[Faults](t, b); f.ErrorRate != 1 || f.ErrorStatus != 502 || f.CutAfterTokens != 2 {
		t.Errorf("GET /sim/faults: %s", b)
	}

	put(`{"rate_limit_rate":1}`)
	if resp, _ := post(t, url+"/v1/chat/completions", chatBody); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("rate limit fault: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	put(`{"hang_rate":1}`)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(chatBody))
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang fault: %v", err)
	}
	cancel()

	put(`{"cut_rate":1,"cut_after_tokens":3}`)
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("cut stream ended cleanly: %s", b)
	}
	if n := strings.Count(string(b), `"content":"`) - 1; n != 3 || strings.Contains(string(b), "[DONE]") {
		t.Errorf("cut after %d tokens, want 3: %s", n, b)
	}
	if _, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody)); err == nil {
		t.Error("cut non-stream request got a response")
	}

	put(`{"slow_read_bps":2000}`)
	start := time.Now()
	if resp, _ := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"`+strings.Repeat("x", 600)+`"}]}`); resp.StatusCode != 200 {
		t.Errorf("slow read: %d", resp.StatusCode)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("slow read of ~650 bytes at 2000 B/s took %v", d)
	}

	put(`{}`)
	if resp, _ := post(t, url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Errorf("faults cleared: %d", resp.StatusCode)
	}
	waitFor(t, "fault accounting", func() bool {
		st := s.Stats()
		return st.Failed == 6 && st.Completed == 2 && st.Requests == 8 && st.Running == 0
	})

	req, _ = http.NewRequest("PUT", url+"/sim/faults", strings.NewReader(`{"error_rate":2}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("rate 2 accepted: %v", resp)
	}
}

// --- control and simple endpoints ---

func TestControlEndpoints(t *testing.T) {
	_, url := newSim(t, Config{Models: []string{"a", "b"}, MaxModelLen: 1000})
	if resp, b := get(t, url+"/health"); resp.StatusCode != 200 || len(b) != 0 {
		t.Errorf("/health: %d %q", resp.StatusCode, b)
	}
	if _, b := get(t, url+"/version"); string(b) != `{"version":"guichet-sim"}` {
		t.Errorf("/version: %s", b)
	}
	_, b := get(t, url+"/v1/models")
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string          `json:"id"`
			Object      string          `json:"object"`
			OwnedBy     string          `json:"owned_by"`
			Root        string          `json:"root"`
			Parent      json.RawMessage `json:"parent"`
			MaxModelLen int             `json:"max_model_len"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &models) != nil || models.Object != "list" || len(models.Data) != 2 || models.Data[1].ID != "b" ||
		models.Data[0].OwnedBy != "guichet-sim" || models.Data[0].MaxModelLen != 1000 || string(models.Data[0].Parent) != "null" {
		t.Errorf("/v1/models: %s", b)
	}

	if resp, _ := get(t, url+"/sim/last-request"); resp.StatusCode != 404 {
		t.Errorf("last-request before any: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(`{"model":"b","messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer upstream-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(err, resp)
	}
	resp.Body.Close()
	_, b = get(t, url+"/sim/last-request")
	var last struct {
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if json.Unmarshal(b, &last) != nil || last.Path != "/v1/chat/completions" || last.Headers["Authorization"] != "Bearer upstream-key" ||
		last.Body != `{"model":"b","messages":[{"role":"user","content":"x"}]}` {
		t.Errorf("last-request: %s", b)
	}
	if resp, _ := get(t, url+"/v1/chat/completions"); resp.StatusCode != 405 {
		t.Errorf("GET chat: %d", resp.StatusCode)
	}
}

// --- fuzzing ---

func FuzzChatRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"sim-model","messages":[{"role":"user","content":"Hello"}]}`,
		`{"model":"sim-model","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}],"stream":true,"n":3,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`,
		`{"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"a":{"type":"string"},"b":{"enum":[1,2]}}}}}],"tool_choice":"required","max_tokens":5}`,
		`{"messages":[{"role":"tool","content":"r"}],"response_format":{"type":"json_schema","json_schema":{"schema":{"properties":{"x":{"type":["null","number"]}}}}}}`,
		`{"messages":[{"role":"user","content":null}],"max_completion_tokens":1,"ignore_eos":true,"response_format":{"type":"json_object"}}`,
		`{"messages":[]}`, `[]`, `null`, ``, `{"n":1e99}`,
	} {
		f.Add([]byte(seed))
	}
	s := New(Config{MaxModelLen: 64, Content: "echo"})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
		s.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code >= 500 || (rec.Code >= 300 && rec.Code < 400) {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		if rec.Code == 200 && !json.Valid(rec.Body.Bytes()) && !strings.HasSuffix(rec.Body.String(), "data: [DONE]\n\n") {
			t.Fatalf("invalid answer for %q: %s", body, rec.Body.Bytes())
		}
	})
}

// --- benchmarks: the zero-latency baseline ---

// discardWriter is a minimal ResponseWriter, so that benchmarks measure
// the simulator rather than the recorder.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }
func (d *discardWriter) Flush()                      {}

func BenchmarkHandlers(b *testing.B) {
	s := New(Config{})
	for _, tc := range []struct{ name, path, body string }{
		{"chat", "/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Hello, how are you today?"}]}`},
		{"chat-stream", "/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"Hello, how are you today?"}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"completions", "/v1/completions", `{"model":"sim-model","prompt":"Hello, how are you today?"}`},
		{"embeddings", "/v1/embeddings", `{"model":"sim-model","input":"Hello, how are you today?"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			body := []byte(tc.body)
			req := httptest.NewRequest("POST", tc.path, nil)
			req.Header.Set("Content-Type", "application/json")
			rd := bytes.NewReader(body)
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				req.ContentLength = int64(len(body))
				clear(w.h)
				s.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatal(w.code)
				}
			}
		})
	}
}

func TestQueuedStreamGetsHeadersFirst(t *testing.T) {
	s, url := newSim(t, Config{MaxConcurrency: 1, TTFT: time.Minute})
	cancel, errs := startChats(t, url, 1, `{"model":"sim-model","messages":[{"role":"user","content":"x"}]}`)
	defer cancel()
	waitFor(t, "a running request", func() bool { return s.Stats().Running == 1 })

	ctx, cancelStream := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions",
		strings.NewReader(`{"model":"sim-model","messages":[{"role":"user","content":"x"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || s.Stats().Waiting != 1 {
		t.Errorf("queued stream: %d %q, stats %+v", resp.StatusCode, resp.Header.Get("Content-Type"), s.Stats())
	}
	cancelStream()
	resp.Body.Close()
	cancel()
	<-errs
	waitFor(t, "both cancelled", func() bool { st := s.Stats(); return st.Cancelled == 2 && st.Waiting == 0 && st.Running == 0 })
}
