package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
	"github.com/guichet/guichet/tokens"
)

// relayStream sends a streamed request and relays its events one by one;
// an event is flushed as soon as no other is waiting behind it. Nothing is written to the client until the upstream's
// first event arrived, so a provider that fails before it is retried.
// The stream always ends with a usage chunk, then data: [DONE].
func (s *Server) relayStream(w http.ResponseWriter, r *http.Request, x *exchange, model *routing.Model, call routing.Call) {
	var events *openai.SSEReader
	var firstRaw, firstData []byte // valid until the next events.Next()
	call.Check = func(resp *http.Response) error {
		events = openai.NewSSEReader(resp.Body)
		var err error
		firstRaw, firstData, err = events.Next()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	ans := s.send(w, r, x, model, call)
	if ans == nil {
		return
	}
	defer ans.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	x.ttft = time.Since(x.start)

	var st streamState
	raw, data := firstRaw, firstData
	for {
		if openai.Done(data) {
			if !st.sawUsage {
				x.usage = st.counted(x)
				w.Write(st.usageChunk(x.usage, usageExtras(x, ans.Model)))
			}
			if x.searchResults != nil {
				w.Write(st.searchChunk(x.searchResults))
			}
			w.Write(raw)
			rc.Flush()
			s.settle(x, http.StatusOK)
			return
		}
		if !st.observe(data) {
			x.ticket.Charge(1) // the fair share counts output as it streams
		} else {
			// The usage chunk: it carries cost and carbon too.
			x.usage = st.usage
			if b, ok := openai.AddToUsage(data, usageExtras(x, ans.Model)...); ok {
				raw = append(append([]byte("data: "), b...), '\n', '\n')
			}
		}
		if _, err := w.Write(raw); err != nil {
			break // the client left; its context cancels the upstream
		}
		// Flush unless the next event is already here: it is written at
		// once and flushed with this one.
		if !events.EventReady() {
			if err := rc.Flush(); err != nil {
				break
			}
		}
		var err error
		raw, data, err = events.Next()
		if err != nil {
			if r.Context().Err() == nil {
				// The upstream broke after bytes went out: no retry is
				// possible; tell the client in OpenAI's format.
				w.Write(streamError(err))
				w.Write([]byte("data: [DONE]\n\n"))
				rc.Flush()
				x.usage = st.bestUsage(x) // what was generated is billed
				s.settle(x, http.StatusBadGateway)
				return
			}
			break
		}
	}
	x.usage = st.bestUsage(x)
	s.settle(x, 499)
}

// streamState follows a stream for its usage: the upstream's usage chunk
// when it sends one; otherwise (a provider without usage, or a client that
// left before it) guichet counts what was streamed.
type streamState struct {
	sawUsage bool
	usage    openai.TokenUsage
	first    []byte // the first chunk, parsed only if a usage chunk must be made

	text   []byte  // the generated text streamed so far, up to maxCountedText
	pieces []int32 // where each event's generated text ends in text
	beyond int64   // events with text past maxCountedText: one token each
}

// maxCountedText bounds the text a stream keeps for counting.
const maxCountedText = 1 << 20

// observe follows one event; it reports whether it was the usage chunk.
func (st *streamState) observe(data []byte) bool {
	if len(data) == 0 {
		return false // a comment or keep-alive
	}
	if u, ok := openai.UsageOf(data); ok {
		st.sawUsage, st.usage = true, u
		return true
	}
	if st.first == nil {
		st.first = append([]byte(nil), data...)
	}
	n := len(st.text)
	if n >= maxCountedText {
		if len(openai.AppendGenerated(nil, data)) > 0 {
			st.beyond++
		}
		return false
	}
	if st.text = openai.AppendGenerated(st.text, data); len(st.text) > n {
		st.pieces = append(st.pieces, int32(len(st.text)))
	}
	return false
}

// counted is the stream's usage as guichet counts it: the prompt as
// estimated at admission, and the output from the events that carried
// text. Servers that stream one token per event (vLLM, llama.cpp, Ollama,
// and Albert relaying vLLM) are counted one token per event, which is
// exact; for the others each event's text is counted with the tokenizer
// (at least one token).
func (st *streamState) counted(x *exchange) openai.TokenUsage {
	completion := st.beyond + int64(len(st.pieces))
	if !tokenPerEvent[x.providerType] {
		completion = st.beyond
		from := 0
		for _, end := range st.pieces {
			completion += max(1, tokens.Text(string(st.text[from:end])))
			from = int(end)
		}
	}
	prompt := x.inputTokens()
	return openai.TokenUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// tokenPerEvent are the provider types that stream one token per event.
var tokenPerEvent = map[guichet.ProviderType]bool{
	guichet.ProviderVLLM: true, guichet.ProviderLlamaCpp: true, guichet.ProviderOllama: true, guichet.ProviderAlbert: true,
}

// bestUsage is the provider's usage if it sent one, else the count.
func (st *streamState) bestUsage(x *exchange) openai.TokenUsage {
	if st.sawUsage {
		return st.usage
	}
	return st.counted(x)
}

// usageChunk is the closing usage chunk for an upstream that sent none,
// with the id, object, model and created of the stream's first chunk.
func (st *streamState) usageChunk(u openai.TokenUsage, extras []openai.Member) []byte {
	var head struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Created int64  `json:"created"`
	}
	json.Unmarshal(st.first, &head)
	if head.Object == "" {
		head.Object = "chat.completion.chunk"
	}
	b, _ := json.Marshal(map[string]any{
		"id": head.ID, "object": head.Object, "created": head.Created, "model": head.Model,
		"choices": []any{}, "usage": u,
	})
	b, _ = openai.AddToUsage(b, append(extras, openai.Member{Key: "counted_by_guichet", Raw: []byte("true")})...)
	return append(append([]byte("data: "), b...), '\n', '\n')
}

// searchChunk is the stream's last chunk before [DONE] when the chat
// searched: no choices, the passages used as search_results.
func (st *streamState) searchChunk(hits []SearchHit) []byte {
	var head struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Created int64  `json:"created"`
	}
	json.Unmarshal(st.first, &head)
	b, _ := json.Marshal(map[string]any{"id": head.ID, "object": "chat.completion.chunk", "created": head.Created, "model": head.Model, "choices": []any{}})
	o, _ := openai.ParseObject(b)
	b = o.AppendWith(nil, searchResultsMember(hits))
	return append(append([]byte("data: "), b...), '\n', '\n')
}

func streamError(err error) []byte {
	msg := "the model server broke the stream"
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		msg = "the model server ended the stream early"
	case errors.Is(err, openai.ErrEventTooLarge):
		msg = "the model server sent an event too large to relay"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": "api_error", "param": nil, "code": "upstream_stream_broken",
	}})
	return append(append([]byte("data: "), b...), '\n', '\n')
}
