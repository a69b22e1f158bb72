package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/routing"
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
				x.usage = st.bestUsage()
				w.Write(st.usageChunk(usageExtras(x, ans.Model)))
			}
			w.Write(raw)
			rc.Flush()
			s.settle(x, http.StatusOK)
			return
		}
		if st.observe(data) {
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
				x.usage = st.bestUsage() // what was generated is billed
				s.settle(x, http.StatusBadGateway)
				return
			}
			break
		}
	}
	x.usage = st.bestUsage()
	s.settle(x, 499)
}

// streamState follows a stream for its usage: the upstream's usage chunk
// when it sends one, else the count of content chunks (one token each on
// vLLM) as an estimate.
type streamState struct {
	sawUsage bool
	usage    openai.TokenUsage
	chunks   int64
	first    []byte // the first chunk, parsed only if a usage chunk must be made
}

// observe follows one event; it reports whether it was the usage chunk.
func (st *streamState) observe(data []byte) bool {
	if len(data) == 0 {
		return false // a comment or keep-alive
	}
	if u, ok := openai.UsageOf(data); ok {
		st.sawUsage, st.usage = true, u
		return true
	}
	st.chunks++
	if st.first == nil {
		st.first = append([]byte(nil), data...)
	}
	return false
}

func (st *streamState) bestUsage() openai.TokenUsage {
	if st.sawUsage {
		return st.usage
	}
	return openai.TokenUsage{CompletionTokens: st.chunks, TotalTokens: st.chunks}
}

// usageChunk is the closing usage chunk for an upstream that sent none,
// with the id, object, model and created of the stream's first chunk.
func (st *streamState) usageChunk(extras []openai.Member) []byte {
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
		"choices": []any{}, "usage": st.bestUsage(),
	})
	b, _ = openai.AddToUsage(b, extras...)
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
