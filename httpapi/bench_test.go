package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/identity"
	"github.com/guichet/guichet/ledger"
	"github.com/guichet/guichet/openai"
	"github.com/guichet/guichet/tokens"

	"github.com/guichet/guichet/sim"
	"github.com/guichet/guichet/sqlite"
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

// BenchmarkAdmissionSteps is what identity and quotas add to a request in
// embedded mode: authenticate a user key (from memory), admit it, then
// settle. "all" has an rpm, a tpm and a concurrency limit and a budget
// (so the input tokens are estimated); "requests" has rpm and concurrency
// only (no estimate). go test -bench AdmissionSteps -cpu 1 ./httpapi
func BenchmarkAdmissionSteps(b *testing.B) {
	for _, c := range []struct{ name, limits, budget string }{
		{"all", `[{"model":"chat","type":"rpm","value":1000000000},{"model":"chat","type":"tpm","value":1000000000},{"model":"chat","type":"concurrent","value":1000}]`, `{"budget":1000000}`},
		{"requests", `[{"model":"chat","type":"rpm","value":1000000000},{"model":"chat","type":"concurrent","value":1000}]`, `{"budget":null}`},
	} {
		b.Run(c.name, func(b *testing.B) { benchAdmission(b, c.limits, c.budget) })
	}
}

func benchAdmission(b *testing.B, limits, budget string) {
	tn := newTenancy(b, limits)
	tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/users/%d", tn.aliceID), budget, 200)
	s := tn.s
	model := s.models.Lookup("chat")
	// The system prompt repeats (as in a real product); the question
	// differs every time, so its tokens are counted every time.
	bodies := make([]*openai.Request, 1000)
	for i := range bodies {
		var gerr *guichet.Error
		bodies[i], gerr = openai.DecodeChat([]byte(`{"model":"chat","messages":[{"role":"system","content":"Tu es un assistant de l'administration. Réponds en français, brièvement, et cite tes sources."},{"role":"user","content":"Bonjour, peux-tu résumer le texte numéro ` + strconv.Itoa(i) + ` ?"}],"max_tokens":16}`))
		if gerr != nil {
			b.Fatal(gerr)
		}
	}
	w := httptest.NewRecorder()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p, err := s.identity.Authenticate(ctx, tn.alice)
		if err != nil {
			b.Fatal(err)
		}
		req := bodies[i%len(bodies)]
		x := &exchange{id: "bench-" + strconv.Itoa(i), endpoint: guichet.EndpointChat, principal: p, estimate: -1,
			countInput: func() int64 { return tokens.Chat(req.Messages, nil) }}
		if gerr := s.admit(ctx, w.Header(), x, model, req.MaxTokens); gerr != nil {
			b.Fatal(gerr)
		}
		x.usage.PromptTokens, x.usage.CompletionTokens = 20, 16
		s.release(x, 200, model.Costs.Of(20, 16))
	}
}

// BenchmarkChatAsLimitedUser is BenchmarkChat with a user key whose role
// has rpm, tpm and concurrency limits and whose user has a budget: the
// difference is what identity and quotas cost a whole request.
func BenchmarkChatAsLimitedUser(b *testing.B) {
	tn := newTenancy(b, `[{"model":"chat","type":"rpm","value":1000000000},{"model":"chat","type":"tpm","value":1000000000},{"model":"chat","type":"concurrent","value":1000}]`)
	tn.call(key, "PATCH", fmt.Sprintf("/v1/admin/users/%d", tn.aliceID), `{"budget":1000000}`, 200)
	body := `{"model":"chat","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}`
	b.ReportAllocs()
	for b.Loop() {
		if w := tn.do(tn.alice, "POST", "/v1/chat/completions", body); w.Code != 200 {
			b.Fatalf("status %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkChatAsMaster is the same request with the master key (no
// limits, no budget), through the same in-process server.
func BenchmarkChatAsMaster(b *testing.B) {
	tn := newTenancy(b, `[]`)
	body := `{"model":"chat","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}`
	b.ReportAllocs()
	for b.Loop() {
		if w := tn.do(key, "POST", "/v1/chat/completions", body); w.Code != 200 {
			b.Fatalf("status %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkLedgerLine is the accounting path's cost on the request:
// billed tokens, cost, the carbon estimate and the line handed to the
// ledger writer (whose store writes happen in the background).
// go test -bench LedgerLine -cpu 1 ./httpapi
func BenchmarkLedgerLine(b *testing.B) {
	s := serverFor(b, `
models:
  - name: chat
    type: text-generation
    costs: {prompt_tokens: 1, completion_tokens: 3}
    carbon: {total_params: 8, zone: FRA}
    providers: [{type: vllm, url: "http://127.0.0.1:1"}]
`)
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	w, err := ledger.New(store, b.TempDir(), s.log, ledger.Options{QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	s.ledger = w
	m := s.models.Lookup("chat")
	p := identity.Master
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := &exchange{id: "bench-" + strconv.Itoa(i), endpoint: guichet.EndpointChat, principal: p, estimate: -1, start: time.Now(), model: "chat"}
		x.usage.PromptTokens, x.usage.CompletionTokens = 20, 16
		prompt, completion := x.billed(200)
		s.record(x, m, 200, prompt, completion, m.Costs.Of(prompt, completion))
	}
}
