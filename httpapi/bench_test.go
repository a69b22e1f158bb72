package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/guichet/guichet/sim"
)

// benchServer is guichet in front of an in-process zero-latency simulator.
func benchServer(b *testing.B) *httptest.Server {
	upstream := httptest.NewServer(sim.New(sim.Config{Models: []string{"m"}, OutputTokens: 16}))
	b.Cleanup(upstream.Close)
	g := httptest.NewServer(serverFor(b, `
models:
  - name: chat
    type: text-generation
    providers: [{type: vllm, url: "`+upstream.URL+`", model_name: m}]
`))
	b.Cleanup(g.Close)
	return g
}

func benchChat(b *testing.B, stream bool) {
	g := benchServer(b)
	body := `{"model":"chat","messages":[{"role":"system","content":"Tu es un assistant."},{"role":"user","content":"Bonjour, peux-tu résumer ce texte ?"}],"temperature":0.2,"max_tokens":16`
	if stream {
		body += `,"stream":true`
	}
	body += "}"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", g.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// The figures include the simulator and the client, all in one process:
// compare runs of the same benchmark, and use bench/run.sh for the gateway
// alone against nginx.
func BenchmarkChat(b *testing.B)       { benchChat(b, false) }
func BenchmarkChatStream(b *testing.B) { benchChat(b, true) }
