package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/sim"
	"github.com/guichet/guichet/tokens"
)

// An upstream that ignores stream_options (older or non-vLLM servers)
// still gives the client a closing usage chunk before [DONE], counted by
// guichet: one token per streamed piece, or the tokenizer's count when a
// piece holds several; the prompt as estimated at admission.
func TestStreamWithoutUpstreamUsageGetsOne(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"data":[{"id":"m"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, piece := range []string{"Bon", "jour", " à tous, comment allez-vous ?"} {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", piece)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer upstream.Close()
	s := serverFor(t, `
models:
  - name: chat
    type: text-generation
    providers: [{type: openai, url: "`+upstream.URL+`", model_name: m}]
`)
	w := do(s, "POST", "/v1/chat/completions", `{"model":"chat","stream":true,"messages":[{"role":"user","content":"x"}]}`, "application/json")
	events := strings.Split(strings.TrimSpace(w.Body.String()), "\n\n")
	if len(events) != 5 {
		t.Fatalf("%d events:\n%s", len(events), w.Body)
	}
	if events[4] != "data: [DONE]" {
		t.Errorf("last event %q", events[4])
	}
	prompt := tokens.Chat([]openai.ChatMessage{{Role: "user", Content: json.RawMessage(`"x"`)}}, nil)
	completion := 2 + tokens.Text(" à tous, comment allez-vous ?")
	if prompt < 1 || completion < 5 {
		t.Fatalf("the tokenizer counts %d and %d", prompt, completion)
	}
	want := fmt.Sprintf(`data: {"choices":[],"created":1,"id":"c1","model":"m","object":"chat.completion.chunk","usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"cost":0,"carbon":null,"counted_by_guichet":true}}`,
		prompt, completion, prompt+completion)
	if events[3] != want {
		t.Errorf("usage chunk:\n%s\nwant\n%s", events[3], want)
	}
}

// Every answer's usage carries cost (the model's prices) and carbon (the
// EcoLogits estimate; null without the model's parameters), streamed or
// not, as OpenGateLLM's usage objects do.
func TestUsageCarriesCostAndCarbon(t *testing.T) {
	upstream := httptest.NewServer(sim.New(sim.Config{Models: []string{"m", "e"}, OutputTokens: 10}))
	defer upstream.Close()
	s := serverFor(t, `
models:
  - name: chat
    type: text-generation
    costs: {prompt_tokens: 2, completion_tokens: 6}
    carbon: {total_params: 8, active_params: 8, zone: FRA}
    providers: [{type: vllm, url: "`+upstream.URL+`", model_name: m}]
  - name: bare
    type: text-generation
    providers: [{type: vllm, url: "`+upstream.URL+`", model_name: m}]
  - name: embed
    type: text-embeddings-inference
    costs: {prompt_tokens: 1}
    providers: [{type: vllm, url: "`+upstream.URL+`", model_name: e}]
`)
	type usage struct {
		PromptTokens     int64    `json:"prompt_tokens"`
		CompletionTokens int64    `json:"completion_tokens"`
		Cost             *float64 `json:"cost"`
		Carbon           *struct {
			KWh     float64 `json:"kWh"`
			KgCO2eq float64 `json:"kgCO2eq"`
		} `json:"carbon"`
	}
	check := func(name string, u usage, prices [2]float64, wantCarbon bool) {
		t.Helper()
		want := (float64(u.PromptTokens)*prices[0] + float64(u.CompletionTokens)*prices[1]) / 1e6
		if u.Cost == nil || math.Abs(*u.Cost-want) > 1e-12 {
			t.Errorf("%s: cost %v, want %v for %+v", name, u.Cost, want, u)
		}
		if wantCarbon != (u.Carbon != nil) {
			t.Errorf("%s: carbon %+v, want present: %v", name, u.Carbon, wantCarbon)
		}
		if u.Carbon != nil && (u.Carbon.KWh <= 0 || u.Carbon.KgCO2eq <= 0) {
			t.Errorf("%s: carbon %+v", name, u.Carbon)
		}
	}
	var body struct{ Usage usage }
	w := do(s, "POST", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"Bonjour"}]}`, "application/json")
	json.Unmarshal(w.Body.Bytes(), &body)
	check("chat", body.Usage, [2]float64{2, 6}, true)
	w = do(s, "POST", "/v1/chat/completions", `{"model":"bare","messages":[{"role":"user","content":"Bonjour"}]}`, "application/json")
	json.Unmarshal(w.Body.Bytes(), &body)
	check("no parameters", body.Usage, [2]float64{0, 0}, false)
	w = do(s, "POST", "/v1/embeddings", `{"model":"embed","input":"Bonjour"}`, "application/json")
	json.Unmarshal(w.Body.Bytes(), &body)
	check("embeddings", body.Usage, [2]float64{1, 0}, false)

	w = do(s, "POST", "/v1/chat/completions", `{"model":"chat","stream":true,"messages":[{"role":"user","content":"Bonjour"}]}`, "application/json")
	events := strings.Split(strings.TrimSpace(w.Body.String()), "\n\n")
	var chunk struct{ Usage *usage }
	json.Unmarshal([]byte(strings.TrimPrefix(events[len(events)-2], "data: ")), &chunk)
	if chunk.Usage == nil || chunk.Usage.CompletionTokens != 10 {
		t.Fatalf("final chunk %s", events[len(events)-2])
	}
	check("stream", *chunk.Usage, [2]float64{2, 6}, true)
}

// A request that needed a fallback leaves its line and one line per
// upstream attempt, linked by the request id.
func TestLedgerHasALinePerAttempt(t *testing.T) {
	upstream := httptest.NewServer(sim.New(sim.Config{Models: []string{"m"}, OutputTokens: 5}))
	defer upstream.Close()
	s := serverFor(t, `
models:
  - name: chat
    type: text-generation
    providers: [{type: vllm, url: "`+upstream.URL+`", model_name: m}]
  - name: broken
    type: text-generation
    fallbacks: [chat]
    providers: [{type: vllm, url: "http://127.0.0.1:1", model_name: gone}]
`)
	w := do(s, "POST", "/v1/chat/completions", `{"model":"broken","messages":[{"role":"user","content":"x"}]}`, "application/json")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	id := w.Header().Get("X-Request-Id")
	var lines []guichet.UsageLine
	for deadline := time.Now().Add(5 * time.Second); len(lines) < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		lines, _ = s.usage.Usage(context.Background(), guichet.UsageFilter{}, guichet.Page{Limit: 10})
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want the request's and two attempts': %+v", len(lines), lines)
	}
	byAttempt := map[int]guichet.UsageLine{}
	for _, l := range lines {
		if l.RequestID != id {
			t.Fatalf("line of request %q, want %q", l.RequestID, id)
		}
		byAttempt[l.Attempt] = l
	}
	if r := byAttempt[0]; r.Model != "broken" || r.CompletionTokens != 5 || r.Status != 200 {
		t.Errorf("the request's line: %+v", r)
	}
	if a := byAttempt[1]; a.Model != "broken" || a.ProviderModel != "gone" || a.Status != 502 || a.CompletionTokens != 0 {
		t.Errorf("the failed attempt's line: %+v", a)
	}
	if a := byAttempt[2]; a.Model != "chat" || a.Status != 200 {
		t.Errorf("the fallback attempt's line: %+v", a)
	}
}

// A provider that reports no usage: guichet counts the tokens offline,
// says so, and bills and records them.
func TestAnswerWithoutUsageIsCountedOffline(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"data":[{"id":"m"}]}`)
			return
		}
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello world"},"finish_reason":"stop"}]}`)
	}))
	defer upstream.Close()
	s := serverFor(t, `
models:
  - name: chat
    type: text-generation
    costs: {prompt_tokens: 1000000, completion_tokens: 1000000}
    providers: [{type: openai, url: "`+upstream.URL+`", model_name: m}]
`)
	w := do(s, "POST", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"hello world"}]}`, "application/json")
	var body struct {
		Usage struct {
			PromptTokens     int64   `json:"prompt_tokens"`
			CompletionTokens int64   `json:"completion_tokens"`
			Cost             float64 `json:"cost"`
			Counted          bool    `json:"counted_by_guichet"`
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// "hello world" is 2 tokens; a chat adds 3 per message and 3 for the reply.
	u := body.Usage
	if !u.Counted || u.CompletionTokens != 2 || u.PromptTokens != 2+3+3 || u.Cost != float64(u.PromptTokens+u.CompletionTokens) {
		t.Fatalf("usage %+v", u)
	}
}
