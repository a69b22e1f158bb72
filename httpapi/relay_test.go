package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An upstream that ignores stream_options (older or non-vLLM servers)
// still gives the client a closing usage chunk before [DONE].
func TestStreamWithoutUpstreamUsageGetsOne(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"data":[{"id":"m"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, piece := range []string{"Bon", "jour", " !"} {
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
	want := `data: {"choices":[],"created":1,"id":"c1","model":"m","object":"chat.completion.chunk","usage":{"prompt_tokens":0,"completion_tokens":3,"total_tokens":3}}`
	if events[3] != want {
		t.Errorf("usage chunk:\n%s\nwant\n%s", events[3], want)
	}
}
