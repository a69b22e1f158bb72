package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

func chatOnce(c openai.Client, t *testing.T, model string) error {
	_, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
		Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("bonjour")},
	})
	return err
}

func setFaults(t *testing.T, sim *process, faults string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, sim.URL()+"/sim/faults", strings.NewReader(faults))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode >= 300 {
		t.Fatalf("setting faults: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestProviderKilledUnderLoadIsRoutedAround(t *testing.T) {
	a := startSim(t, "--model", "m", "--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8")
	b := startSim(t, "--model", "m", "--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8")
	g := startGuichet(t, chatConfig("{strategy: round_robin}", provider("vllm", a, "m"), provider("vllm", b, "m")))
	c := client(g)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := chatOnce(c, t, "chat"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	b.Kill() // a GPU server dies in the middle of the load
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed after a provider died (first: %v)", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 50 {
		t.Errorf("only %d requests served", ok.Load())
	}
	// The dead provider's circuit opened: it is out of /ready.
	waitFor(t, "the circuit to open", 5*time.Second, func() bool { return healthy(t, g, "chat") == 1 })
	var r ready
	getJSON(t, g.URL()+"/ready", "", &r)
	if r.Status != "ready" {
		t.Errorf("status %q with one healthy provider left", r.Status)
	}
}

func TestCircuitOpensAndCloses(t *testing.T) {
	a := startSim(t, "--model", "m")
	addr := a.addr
	g := startGuichet(t, chatConfig("", provider("vllm", a, "m")))
	c := client(g)
	if err := chatOnce(c, t, "chat"); err != nil {
		t.Fatal(err)
	}
	a.Kill()
	// Each failed request counts; the third in a row opens the circuit.
	for i := 0; i < 3; i++ {
		var apiErr *openai.Error
		if err := chatOnce(c, t, "chat"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway {
			t.Fatalf("request %d to a dead provider: %v", i, err)
		}
	}
	waitFor(t, "the circuit to open", 5*time.Second, func() bool { return healthy(t, g, "chat") == 0 })
	// Open circuit: a fast 503 with Retry-After, no connection attempt.
	resp := post(t, g, "/v1/chat/completions", "application/json", strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"x"}]}`))
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("open circuit answered %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	var r ready
	if code := getJSON(t, g.URL()+"/ready", "", &r); code != http.StatusServiceUnavailable || r.Status != "unavailable" {
		t.Errorf("/ready = %d %q with no healthy provider", code, r.Status)
	}
	// The server comes back on the same address: the probe closes the circuit.
	startSimAt(t, addr, "--model", "m")
	waitFor(t, "the circuit to close", 10*time.Second, func() bool { return healthy(t, g, "chat") == 1 })
	if err := chatOnce(c, t, "chat"); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

func TestFallbacksAndRetries(t *testing.T) {
	broken := startSim(t, "--model", "big", "--error-rate", "1", "--error-status", "500")
	busy := startSim(t, "--model", "big", "--rate-limit-rate", "1")
	small := startSim(t, "--model", "small")
	g := startGuichet(t, `
models:
  - name: big
    type: text-generation
    fallbacks: [small]
    providers:
`+provider("vllm", broken, "big")+provider("vllm", busy, "big")+`
  - name: small
    type: text-generation
    providers:
`+provider("vllm", small, "small"))
	c := client(g)
	resp, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
		Model: "big", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "small" {
		t.Errorf("answer from %q, want the fallback small", resp.Model)
	}
	if s := stats(t, broken); s.Requests != 1 {
		t.Errorf("broken provider got %d requests, want 1", s.Requests)
	}
	if s := stats(t, busy); s.Requests != 1 {
		t.Errorf("busy provider got %d requests, want 1", s.Requests)
	}
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+masterKey)
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`guichet_upstream_attempts_total{outcome="server_error",provider="big#0"} 1`,
		`guichet_upstream_attempts_total{outcome="overloaded",provider="big#1"} 1`,
		`guichet_upstream_attempts_total{outcome="ok",provider="small#0"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// With the fallback overloaded too, the client gets 503 + Retry-After.
	setFaults(t, small, `{"rate_limit_rate":1}`)
	r := post(t, g, "/v1/chat/completions", "application/json", strings.NewReader(`{"model":"big","messages":[{"role":"user","content":"x"}]}`))
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("all overloaded: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

func TestStreamFailuresBeforeAndAfterTheFirstByte(t *testing.T) {
	cut := startSim(t, "--model", "m", "--output-tokens", "20", "--itl", "2ms", "--cut-rate", "1", "--cut-after-tokens", "3")
	g := startGuichet(t, chatConfig("", provider("vllm", cut, "m")))
	c := client(g)

	// After bytes went out: no retry, the stream ends with an error event.
	stream := c.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
		Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	got := 0
	for stream.Next() {
		got++
	}
	if stream.Err() == nil || !strings.Contains(stream.Err().Error(), "ended the stream early") {
		t.Errorf("cut stream: err = %v after %d chunks", stream.Err(), got)
	}
	if got == 0 {
		t.Error("no chunk before the cut")
	}
	if s := stats(t, cut); s.Requests != 1 {
		t.Errorf("a stream cut after the first byte was retried: %d upstream requests", s.Requests)
	}

	// Before the first byte: a second provider takes over, unseen.
	good := startSim(t, "--model", "m", "--output-tokens", "5")
	setFaults(t, cut, `{"error_rate":1,"error_status":502}`)
	g2 := startGuichet(t, chatConfig("{strategy: round_robin}", provider("vllm", cut, "m"), provider("vllm", good, "m")))
	c2 := client(g2)
	for i := 0; i < 4; i++ {
		stream := c2.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
			Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
		})
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if stream.Err() != nil || acc.Usage.CompletionTokens != 5 {
			t.Errorf("stream %d: %v, usage %+v", i, stream.Err(), acc.Usage)
		}
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	sim := startSim(t, "--model", "m", "--output-tokens", "1000", "--itl", "20ms")
	g := startGuichet(t, chatConfig("", provider("vllm", sim, "m")))
	cctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(cctx, http.MethodPost, g.URL()+"/v1/chat/completions",
		strings.NewReader(`{"model":"chat","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+masterKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for events := 0; events < 3 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data:") {
			events++
		}
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "the upstream to see the cancellation", 2*time.Second, func() bool {
		s := stats(t, sim)
		return s.Cancelled == 1 && s.Running == 0
	})
}

func TestTimeouts(t *testing.T) {
	hang := startSim(t, "--model", "m", "--hang-rate", "1")
	slow := startSim(t, "--model", "m", "--ttft", "10ms", "--itl", "2s", "--output-tokens", "3")
	g := startGuichet(t, `
models:
  - name: hang
    type: text-generation
    routing: {max_attempts: 1}
    providers:
`+provider("vllm", hang, "m", "timeouts: {first_byte: 300ms}")+`
  - name: slow
    type: text-generation
    providers:
`+provider("vllm", slow, "m", "timeouts: {idle: 300ms}"))
	start := time.Now()
	raw := postJSON(t, g, "/v1/chat/completions", `{"model":"hang","messages":[{"role":"user","content":"x"}]}`, http.StatusGatewayTimeout)
	if time.Since(start) > 5*time.Second {
		t.Errorf("first-byte timeout of 300ms took %v", time.Since(start))
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(raw, &e)
	if e.Error.Code != "upstream_timeout" {
		t.Errorf("hang: %s", raw)
	}
	// Idle between chunks: the stream ends with an error event.
	resp := post(t, g, "/v1/chat/completions", "application/json", strings.NewReader(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sawError := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"error"`) {
			sawError = true
		}
	}
	if !sawError {
		t.Error("an idle stream did not end with an error event")
	}
	waitFor(t, "the stalled upstream request to be cancelled", 3*time.Second, func() bool { return stats(t, slow).Cancelled == 1 })
}

func TestGracefulShutdownFinishesStreams(t *testing.T) {
	sim := startSim(t, "--model", "m", "--output-tokens", "30", "--itl", "20ms")
	g := startGuichet(t, chatConfig("", provider("vllm", sim, "m")))
	c := client(g)
	stream := c.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
		Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	g.cmd.Process.Signal(syscall.SIGTERM) // a rolling restart, mid-stream
	acc := openai.ChatCompletionAccumulator{}
	acc.AddChunk(stream.Current())
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Usage.CompletionTokens != 30 {
		t.Errorf("stream cut by the shutdown: %v, usage %+v", err, acc.Usage)
	}
	if err := g.cmd.Wait(); err != nil {
		t.Errorf("guichet did not exit cleanly: %v\n%s", err, g.Logs())
	}
	// New connections are refused once it stopped.
	if _, err := http.Get(g.URL() + "/health"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// max_concurrency holds: with the scheduler off, a request over it is
// refused at once; with it on, it waits in guichet (never in the model
// server's queue) and is sent when the slot frees, or refused with a
// Retry-After when its queue timeout passes first.
func TestMaxConcurrencyQueuesInGuichetOrRefuses(t *testing.T) {
	for _, c := range []struct {
		name, scheduler string
		status          int
	}{
		{"scheduler off", "scheduler: {enabled: false}\n", http.StatusServiceUnavailable},
		{"queue timeout", "scheduler: {queue_timeout: 300ms}\n", http.StatusServiceUnavailable},
		{"scheduler on", "", http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			sim := startSim(t, "--model", "m", "--ttft", "1s")
			g := startGuichet(t, c.scheduler+chatConfig("", provider("vllm", sim, "m", "max_concurrency: 1")))
			done := make(chan int)
			go func() { // no t.Fatal off the test goroutine: report the status
				req, _ := http.NewRequest(http.MethodPost, g.URL()+"/v1/chat/completions", strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"x"}]}`))
				req.Header.Set("Authorization", "Bearer "+masterKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			waitFor(t, "the first request to reach the simulator", 5*time.Second, func() bool { return stats(t, sim).Running == 1 })
			second := make(chan *http.Response)
			go func() {
				second <- post(t, g, "/v1/chat/completions", "application/json", strings.NewReader(`{"model":"chat","messages":[{"role":"user","content":"x"}]}`))
			}()
			var resp *http.Response
		wait:
			for {
				select {
				case resp = <-second:
					break wait
				case <-time.After(50 * time.Millisecond):
					if s := stats(t, sim); s.Running > 1 || s.Waiting > 0 {
						t.Fatalf("the model server runs %d and queues %d: the cap did not hold", s.Running, s.Waiting)
					}
				}
			}
			resp.Body.Close()
			if resp.StatusCode != c.status || (c.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "") {
				t.Errorf("second request over max_concurrency 1: %d, Retry-After %q; want %d", resp.StatusCode, resp.Header.Get("Retry-After"), c.status)
			}
			if code := <-done; code != http.StatusOK {
				t.Errorf("first request: %d", code)
			}
			want := int64(1)
			if c.status == http.StatusOK {
				want = 2
			}
			if s := stats(t, sim); s.Requests != want {
				t.Errorf("the simulator got %d requests, want %d", s.Requests, want)
			}
		})
	}
}
