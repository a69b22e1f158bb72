package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

type meUsage struct {
	Data []struct {
		Model    string `json:"model"`
		Endpoint string `json:"endpoint"`
		Status   int    `json:"status"`
		Usage    struct {
			PromptTokens     int64   `json:"prompt_tokens"`
			CompletionTokens int64   `json:"completion_tokens"`
			Cost             float64 `json:"cost"`
			Carbon           *struct {
				KWh float64 `json:"kWh"`
			} `json:"carbon"`
		} `json:"usage"`
	} `json:"data"`
}

// usageOf reads the first 100 lines of GET /v1/me/usage for key.
func usageOf(t *testing.T, g *process, key string) meUsage {
	t.Helper()
	var u meUsage
	if code := getJSON(t, g.URL()+"/v1/me/usage?limit=100", key, &u); code != 200 {
		t.Fatalf("/v1/me/usage: status %d", code)
	}
	return u
}

// TestLedgerMatchesWhatTheModelServerReported: every request a user makes
// (streamed or not) has its line, with the tokens the provider reported,
// the cost the answer showed and a carbon estimate; the lines survive a
// SIGTERM and a restart.
func TestLedgerMatchesWhatTheModelServerReported(t *testing.T) {
	sim := startSim(t, "--model", "m", "--output-tokens", "12")
	g := startGuichet(t, "models:\n  - name: chat\n    type: text-generation\n    costs: {prompt_tokens: 1000, completion_tokens: 2000}\n    carbon: {total_params: 8, zone: FRA}\n    providers:\n"+provider("vllm", sim, "m"))
	adminCLI(t, g, "role create users --limit *:rpm=null")
	adminCLI(t, g, "user create ana@example.org --role users")
	key := keyPattern.FindString(adminCLI(t, g, "key create ana@example.org"))
	c := client(g, option.WithAPIKey(key))

	var prompt, completion int64
	var cost float64
	for i := 0; i < 3; i++ {
		r, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
			Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Bonjour, combien font deux et deux ?")},
		})
		if err != nil {
			t.Fatal(err)
		}
		prompt += r.Usage.PromptTokens
		completion += r.Usage.CompletionTokens
		var extra struct{ Cost float64 }
		json.Unmarshal([]byte(r.Usage.RawJSON()), &extra)
		cost += extra.Cost
	}
	stream := c.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
		Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Et trois et trois ?")},
	})
	for stream.Next() {
		if u := stream.Current().Usage; u.TotalTokens > 0 {
			prompt += u.PromptTokens
			completion += u.CompletionTokens
			var extra struct{ Cost float64 }
			json.Unmarshal([]byte(u.RawJSON()), &extra)
			cost += extra.Cost
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}

	// SIGTERM: the queued lines are flushed before exit; a new server on
	// the same data dir reads them.
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.cmd.Wait()
	if !strings.Contains(g.Logs(), "usage ledger flushed") {
		t.Fatalf("no flush at shutdown:\n%s", g.Logs())
	}
	u := usageOf(t, restartGuichet(t, g), key)
	if len(u.Data) != 4 {
		t.Fatalf("%d ledger lines for 4 requests: %+v", len(u.Data), u.Data)
	}
	var lp, lc int64
	var lcost float64
	for _, l := range u.Data {
		lp += l.Usage.PromptTokens
		lc += l.Usage.CompletionTokens
		lcost += l.Usage.Cost
		if l.Status != 200 || l.Model != "chat" || l.Endpoint != "/v1/chat/completions" || l.Usage.Carbon == nil || l.Usage.Carbon.KWh <= 0 {
			t.Errorf("line %+v", l)
		}
	}
	if lp != prompt || lc != completion || lcost < cost-1e-12 || lcost > cost+1e-12 {
		t.Fatalf("ledger: %d prompt, %d completion tokens, cost %v; the answers said %d, %d, %v", lp, lc, lcost, prompt, completion, cost)
	}
}

// TestSIGTERMUnderLoadKeepsEveryLine: streams are in flight when guichet
// gets SIGTERM; it finishes them, flushes the ledger, and every stream a
// client received whole has its line after a restart.
func TestSIGTERMUnderLoadKeepsEveryLine(t *testing.T) {
	sim := startSim(t, "--model", "m", "--output-tokens", "30", "--itl", "20ms")
	g := startGuichet(t, "models:\n  - name: chat\n    type: text-generation\n    providers:\n"+provider("vllm", sim, "m"))
	adminCLI(t, g, "role create users --limit *:rpm=null")
	adminCLI(t, g, "user create load@example.org --role users")
	key := keyPattern.FindString(adminCLI(t, g, "key create load@example.org"))
	var wg sync.WaitGroup
	var complete atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", g.URL()+"/v1/chat/completions", strings.NewReader(`{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // refused once the server began to stop
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == 200 && strings.HasSuffix(strings.TrimSpace(string(b)), "data: [DONE]") {
				complete.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // every stream is under way
	g.cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	g.cmd.Wait()
	if complete.Load() == 0 {
		t.Fatal("no stream completed: graceful shutdown did not let them finish")
	}
	u := usageOf(t, restartGuichet(t, g), key)
	if int64(len(u.Data)) != complete.Load() {
		t.Fatalf("%d streams completed, %d ledger lines", complete.Load(), len(u.Data))
	}
	for _, l := range u.Data {
		if l.Usage.CompletionTokens != 30 {
			t.Errorf("a line with %d completion tokens, want 30", l.Usage.CompletionTokens)
		}
	}
}
