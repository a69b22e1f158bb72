package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet/sim"
)

func scheduled(t *testing.T, simCfg sim.Config, extra string) (*Server, *httptest.Server) {
	t.Helper()
	up := httptest.NewServer(sim.New(simCfg))
	t.Cleanup(up.Close)
	return serverFor(t, extra+`
models:
  - name: chat
    type: text-generation
    providers: [{type: vllm, url: "`+up.URL+`", model_name: m, max_concurrency: 1, priority_scheduling: true}]
`), up
}

// Batch requests (service_tier flex, or the header) reach a vLLM that runs
// priority scheduling with a lower priority; interactive ones without.
func TestBatchRequestsCarryVLLMPriority(t *testing.T) {
	s, up := scheduled(t, sim.Config{Models: []string{"m"}, PriorityScheduling: true}, "")
	lastPriority := func() any {
		var last struct{ Body string }
		resp, err := http.Get(up.URL + "/sim/last-request")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&last)
		var body map[string]any
		json.Unmarshal([]byte(last.Body), &body)
		return body["priority"]
	}
	for _, c := range []struct {
		name, body, header string
		want               any
	}{
		{"interactive", `{"model":"chat","messages":[{"role":"user","content":"x"}]}`, "", nil},
		{"service_tier flex", `{"model":"chat","service_tier":"flex","messages":[{"role":"user","content":"x"}]}`, "", 1.0},
		{"header", `{"model":"chat","messages":[{"role":"user","content":"x"}]}`, "batch", 1.0},
		{"header says interactive", `{"model":"chat","service_tier":"flex","messages":[{"role":"user","content":"x"}]}`, "interactive", nil},
	} {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+key)
		if c.header != "" {
			req.Header.Set("X-Guichet-Class", c.header)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", c.name, w.Code, w.Body)
		}
		if got := lastPriority(); got != c.want {
			t.Errorf("%s: priority sent %v, want %v", c.name, got, c.want)
		}
	}
}

// Over capacity, a tenant's queue is bounded: the request past the bound
// gets a 429 that says what to do, with a Retry-After; the queue shows in
// /v1/admin/scheduler.
func TestTenantQueueBoundAnd429(t *testing.T) {
	s, _ := scheduled(t, sim.Config{Models: []string{"m"}, TTFT: 400 * time.Millisecond}, "scheduler: {max_queued_per_tenant: 1}\n")
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ { // one runs, one waits
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := do(s, "POST", "/v1/chat/completions", chatBody, "application/json"); w.Code != 200 {
				t.Errorf("queued request: %d %s", w.Code, w.Body)
			}
		}()
	}
	var view SchedulerView
	for deadline := time.Now().Add(5 * time.Second); view.Models["chat"].Queued != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never one running and one queued: %+v", view.Models["chat"])
		}
		json.Unmarshal(do(s, "GET", "/v1/admin/scheduler", "", "").Body.Bytes(), &view)
	}
	if v := view.Models["chat"]; !view.Enabled || v.Capacity != 1 || v.Running != 1 || len(v.Tenants) != 1 || v.Tenants[0].Tenant != "master" {
		t.Fatalf("scheduler view: %+v", view)
	}
	w := do(s, "POST", "/v1/chat/completions", chatBody, "application/json")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "already waiting") {
		t.Fatalf("third request: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	wg.Wait()
}
