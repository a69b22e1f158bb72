package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Prices of the model chat, per million tokens: one token is 1e6 and 3e6
// nano-units (guichet.Amount), so every cost below is an exact integer.
const (
	mixedPromptPrice     = 1000
	mixedCompletionPrice = 3000
)

func nanoOf(units float64) int64 { return int64(math.Round(units * 1e9)) }

func mixedCost(prompt, completion int64) int64 {
	return prompt*mixedPromptPrice*1000 + completion*mixedCompletionPrice*1000
}

// costIn reads the cost guichet adds to a usage object.
func costIn(rawUsage string) (int64, bool) {
	var u struct {
		Cost *float64 `json:"cost"`
	}
	if json.Unmarshal([]byte(rawUsage), &u) != nil || u.Cost == nil {
		return 0, false
	}
	return nanoOf(*u.Cost), true
}

// mixedCall is one request of the mixed run, as its client saw it.
type mixedCall struct {
	kind     string
	id       string // X-Request-Id
	status   int    // what the ledger should say: the answer's status, 499 for a client that left, 502 for a stream cut after its first byte
	partial  bool   // a stream that ended before its usage chunk (cancelled or cut)
	ppPrompt bool   // its prompt is partialPrompt
	// The answer's usage (status 200): what the client was told.
	prompt, completion, cost int64
	received                 int64 // content chunks the client received (partial streams)
	problem                  string
}

// partialPrompt is the prompt of every stream that ends early, and of
// some streams that complete: those tell what the simulator counts for it.
const partialPrompt = "Tell me a very long story about a lighthouse keeper and the sea."

// adminLine is a line of GET /v1/admin/usage.
type adminLine struct {
	RequestID string `json:"request_id"`
	Provider  string `json:"provider"`
	Endpoint  string `json:"endpoint"`
	Status    int    `json:"status"`
	Cancelled bool   `json:"cancelled"`
	Usage     struct {
		PromptTokens     int64   `json:"prompt_tokens"`
		CompletionTokens int64   `json:"completion_tokens"`
		Cost             float64 `json:"cost"`
	} `json:"usage"`
}

type adminUsageList struct {
	Data   []adminLine `json:"data"`
	Totals struct {
		Requests         int64   `json:"requests"`
		PromptTokens     int64   `json:"prompt_tokens"`
		CompletionTokens int64   `json:"completion_tokens"`
		Cost             float64 `json:"cost"`
	} `json:"totals"`
}

// ledgerLines reads every line of the ledger, oldest first (ties by
// request id, then attempt: a request's line precedes its attempt lines),
// and the totals.
func ledgerLines(t *testing.T, g *process) ([]adminLine, adminUsageList) {
	t.Helper()
	var all []adminLine
	var first adminUsageList
	for offset := 0; ; offset += 100 {
		var page adminUsageList
		url := fmt.Sprintf("%s/v1/admin/usage?limit=100&offset=%d&order_by=time&order_direction=asc", g.URL(), offset)
		if code := getJSON(t, url, masterKey, &page); code != http.StatusOK {
			t.Fatalf("/v1/admin/usage: status %d", code)
		}
		if offset == 0 {
			first = page
		}
		all = append(all, page.Data...)
		if len(page.Data) < 100 {
			return all, first
		}
	}
}

// simTokens reads a simulator's vLLM counters: prompt and generation
// tokens, summed over its served names.
func simTokens(t *testing.T, sim *process) (prompt, generation int64) {
	t.Helper()
	resp, err := http.Get(sim.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "vllm:prompt_tokens_total{"):
			dst = &prompt
		case strings.HasPrefix(line, "vllm:generation_tokens_total{"):
			dst = &generation
		default:
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("simulator metric %q: %v", line, err)
		}
		*dst += int64(v)
	}
	return prompt, generation
}

// TestLedgerTotalsEqualWhatTheSimulatorReported: over a mixed, concurrent
// run (non-streamed and streamed chats and completions, attempts retried
// on another provider, model-server 400s, a moment when every provider
// fails, a stream cut after its first byte, and clients that leave
// mid-stream), the ledger has one line per request, and its token and
// cost totals are what the answers said and what the model servers
// counted — exactly where guichet can know, within stated bounds where it
// cannot.
func TestLedgerTotalsEqualWhatTheSimulatorReported(t *testing.T) {
	// faulty fails every attempt before any byte (a 500, or a 429): each
	// request it gets first is retried on healthy. Validation comes before
	// the faults in the simulator, so a request too long for the context
	// gets its 400 from either. Paced tokens let clients leave mid-stream.
	simArgs := []string{"--model", "m", "--output-tokens", "24", "--itl", "15ms", "--max-model-len", "512"}
	faulty := startSim(t, append(simArgs, "--error-rate", "0.3", "--error-status", "500", "--rate-limit-rate", "1")...)
	healthySim := startSim(t, simArgs...)
	g := startGuichet(t, fmt.Sprintf("models:\n  - name: chat\n    type: text-generation\n    costs: {prompt_tokens: %d, completion_tokens: %d}\n    providers:\n",
		mixedPromptPrice, mixedCompletionPrice)+provider("vllm", faulty, "m")+provider("vllm", healthySim, "m"))
	adminCLI(t, g, "role create users --limit *:rpm=null")
	adminCLI(t, g, "user create mixed@example.org --role users")
	key := keyPattern.FindString(adminCLI(t, g, "key create mixed@example.org"))
	c := client(g, option.WithAPIKey(key))

	idOf := func(resp *http.Response) string {
		if resp == nil {
			return ""
		}
		return resp.Header.Get("X-Request-Id")
	}
	statusOf := func(err error) int {
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			return apiErr.StatusCode
		}
		return 0
	}
	user := func(s string) []openai.ChatCompletionMessageParamUnion {
		return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s)}
	}
	tooLong := strings.Repeat("word ", 600) // over the simulators' 512-token context

	chat := func(kind, prompt string, maxTokens int64) func(context.Context) mixedCall {
		return func(cctx context.Context) mixedCall {
			x := mixedCall{kind: kind, ppPrompt: prompt == partialPrompt}
			var raw *http.Response
			r, err := c.Chat.Completions.New(cctx, openai.ChatCompletionNewParams{Model: "chat", Messages: user(prompt), MaxTokens: openai.Int(maxTokens)}, option.WithResponseInto(&raw))
			x.id = idOf(raw)
			if err != nil {
				x.status = statusOf(err)
				if x.status == 0 {
					x.problem = err.Error()
				}
				return x
			}
			x.status, x.prompt, x.completion = http.StatusOK, r.Usage.PromptTokens, r.Usage.CompletionTokens
			var ok bool
			if x.cost, ok = costIn(r.Usage.RawJSON()); !ok {
				x.problem = "no cost in the answer's usage: " + r.Usage.RawJSON()
			}
			return x
		}
	}
	// chatStream reads a stream; stopAfter > 0 leaves after that many
	// content chunks.
	chatStream := func(kind, prompt string, maxTokens int64, stopAfter int64) func(context.Context) mixedCall {
		return func(cctx context.Context) mixedCall {
			x := mixedCall{kind: kind, ppPrompt: prompt == partialPrompt}
			cctx, cancel := context.WithCancel(cctx)
			defer cancel()
			params := openai.ChatCompletionNewParams{Model: "chat", Messages: user(prompt)}
			if maxTokens > 0 {
				params.MaxTokens = openai.Int(maxTokens)
			}
			var raw *http.Response
			stream := c.Chat.Completions.NewStreaming(cctx, params, option.WithResponseInto(&raw))
			defer stream.Close()
			sawUsage := false
			for stream.Next() {
				ch := stream.Current()
				if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
					x.received++
				}
				if u := ch.Usage; u.TotalTokens > 0 {
					sawUsage = true
					x.prompt, x.completion = u.PromptTokens, u.CompletionTokens
					var ok bool
					if x.cost, ok = costIn(u.RawJSON()); !ok {
						x.problem = "no cost in the usage chunk: " + u.RawJSON()
					}
				}
				if stopAfter > 0 && x.received == stopAfter {
					cancel() // the client leaves mid-stream
					x.id, x.status, x.partial = idOf(raw), 499, true
					return x
				}
			}
			x.id = idOf(raw)
			err := stream.Err()
			switch {
			case err == nil && sawUsage:
				x.status = http.StatusOK
			case err == nil:
				x.problem = "a stream without a usage chunk"
			case statusOf(err) != 0: // refused before the stream began
				x.status = statusOf(err)
			case strings.Contains(err.Error(), "ended the stream early"):
				x.status, x.partial = http.StatusBadGateway, true
			default:
				x.problem = err.Error()
			}
			return x
		}
	}
	completion := func(kind, prompt string, maxTokens int64, stream bool) func(context.Context) mixedCall {
		return func(cctx context.Context) mixedCall {
			x := mixedCall{kind: kind}
			params := openai.CompletionNewParams{Model: "chat", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)}, MaxTokens: openai.Int(maxTokens)}
			var raw *http.Response
			if !stream {
				r, err := c.Completions.New(cctx, params, option.WithResponseInto(&raw))
				x.id = idOf(raw)
				if err != nil {
					x.problem = err.Error()
					return x
				}
				x.status, x.prompt, x.completion = http.StatusOK, r.Usage.PromptTokens, r.Usage.CompletionTokens
				var ok bool
				if x.cost, ok = costIn(r.Usage.RawJSON()); !ok {
					x.problem = "no cost in the answer's usage: " + r.Usage.RawJSON()
				}
				return x
			}
			s := c.Completions.NewStreaming(cctx, params, option.WithResponseInto(&raw))
			defer s.Close()
			for s.Next() {
				if u := s.Current().Usage; u.TotalTokens > 0 {
					x.status, x.prompt, x.completion = http.StatusOK, u.PromptTokens, u.CompletionTokens
					var ok bool
					if x.cost, ok = costIn(u.RawJSON()); !ok {
						x.problem = "no cost in the usage chunk: " + u.RawJSON()
					}
				}
			}
			x.id = idOf(raw)
			if err := s.Err(); err != nil {
				x.problem = err.Error()
			} else if x.status == 0 {
				x.problem = "a stream without a usage chunk"
			}
			return x
		}
	}

	// Phase 1: a concurrent mix.
	var jobs []func(context.Context) mixedCall
	for i := int64(0); i < 12; i++ {
		jobs = append(jobs, chat("chat", fmt.Sprintf("Question %d: how far is the moon?", i), 4+i%9))
		jobs = append(jobs, chatStream("chat stream", partialPrompt, 6+i%7, 0))
	}
	for i := int64(0); i < 4; i++ {
		jobs = append(jobs, completion("completion", fmt.Sprintf("Once upon a time %d", i), 5+i, false))
		jobs = append(jobs, completion("completion stream", fmt.Sprintf("It was a dark night %d", i), 7+i, true))
	}
	for i := 0; i < 6; i++ {
		jobs = append(jobs, chatStream("cancelled stream", partialPrompt, 0, 3))
	}
	jobs = append(jobs, chat("too long", tooLong, 8), chatStream("too long stream", tooLong, 8, 0))

	var mu sync.Mutex
	var calls []mixedCall
	run := func(job func(context.Context) mixedCall) {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		x := job(cctx)
		mu.Lock()
		calls = append(calls, x)
		mu.Unlock()
	}
	work := make(chan func(context.Context) mixedCall)
	var wg sync.WaitGroup
	for w := 0; w < 10; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range work {
				run(job)
			}
		}()
	}
	if len(jobs)%7 == 0 {
		t.Fatal("the interleaving needs a job count prime with 7")
	}
	for i := range jobs {
		// Interleave kinds: streams, cancellations and errors overlap.
		work <- jobs[(i*7)%len(jobs)]
	}
	close(work)
	wg.Wait()

	// Phase 2, one request at a time: every provider fails before any
	// byte (two failures in a row leave healthy's circuit closed, so each
	// of these requests reaches a provider), then a stream is cut by the
	// model server after its first bytes.
	setFaults(t, healthySim, `{"error_rate":1,"error_status":500}`)
	run(chat("all providers fail", "Is anybody there?", 8))
	run(chatStream("all providers fail, stream", "Is anybody there?", 8, 0))
	setFaults(t, healthySim, `{"cut_rate":1,"cut_after_tokens":3}`)
	run(chatStream("cut stream", partialPrompt, 0, 0))
	setFaults(t, healthySim, `{}`)

	byID := map[string]*mixedCall{}
	var want struct{ ok, cancelled, partial, refused int }
	for i := range calls {
		x := &calls[i]
		if x.problem != "" || x.id == "" || x.status == 0 {
			t.Fatalf("%s (request %q): status %d, %s", x.kind, x.id, x.status, x.problem)
		}
		if byID[x.id] != nil {
			t.Fatalf("request id %s answered twice", x.id)
		}
		byID[x.id] = x
		switch {
		case x.status == http.StatusOK:
			want.ok++
		case x.partial:
			want.partial++
			if x.status == 499 {
				want.cancelled++
			}
		default:
			want.refused++
		}
		wantStatus := map[string]func(int) bool{
			"too long":                   func(s int) bool { return s == http.StatusBadRequest },
			"too long stream":            func(s int) bool { return s == http.StatusBadRequest },
			"all providers fail":         func(s int) bool { return s == http.StatusBadGateway || s == http.StatusServiceUnavailable },
			"all providers fail, stream": func(s int) bool { return s == http.StatusBadGateway || s == http.StatusServiceUnavailable },
			"cancelled stream":           func(s int) bool { return s == 499 },
			"cut stream":                 func(s int) bool { return s == http.StatusBadGateway },
		}[x.kind]
		if wantStatus == nil {
			wantStatus = func(s int) bool { return s == http.StatusOK }
		}
		if !wantStatus(x.status) {
			t.Fatalf("%s (request %s): status %d", x.kind, x.id, x.status)
		}
		if x.kind == "cut stream" && x.received != 3 {
			t.Fatalf("the cut stream delivered %d content chunks, want the 3 before the cut", x.received)
		}
	}

	// The simulators are done (cancelled streams included) before their
	// counters are read: every request they received has its outcome.
	waitFor(t, "the simulators to finish every request", 5*time.Second, func() bool {
		for _, sim := range []*process{faulty, healthySim} {
			if s := stats(t, sim); s.Running != 0 || s.Completed+s.Cancelled+s.Failed != s.Requests {
				return false
			}
		}
		return true
	})
	sa, sb := stats(t, faulty), stats(t, healthySim)
	pa, ga := simTokens(t, faulty)
	pb, gb := simTokens(t, healthySim)
	simPrompt, simGen := pa+pb, ga+gb
	if pa != 0 || ga != 0 || sa.Completed != 0 {
		t.Errorf("the faulty simulator generated: %d prompt, %d generation tokens, %d completed", pa, ga, sa.Completed)
	}

	// The ledger writer flushes every 200 ms; a request's line and its
	// attempt lines may land in different batches. Wait until every
	// request has its line and the line count holds still.
	var lines []adminLine
	var list adminUsageList
	waitFor(t, "the ledger to have every request's line", 10*time.Second, func() bool {
		_, l := ledgerLines(t, g)
		return l.Totals.Requests >= int64(len(calls))
	})
	for prev, deadline := -1, time.Now().Add(10*time.Second); ; prev = len(lines) {
		lines, list = ledgerLines(t, g)
		if len(lines) == prev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger's line count is still changing: %d lines", len(lines))
		}
		time.Sleep(500 * time.Millisecond) // more than two flushes
	}

	// (c) One request line per request; attempt lines only for requests
	// that had several attempts. Lines come by request id, the request's
	// own line (attempt 0) first.
	groups := map[string][]adminLine{}
	var order []string
	for _, l := range lines {
		if groups[l.RequestID] == nil {
			order = append(order, l.RequestID)
		}
		groups[l.RequestID] = append(groups[l.RequestID], l)
	}
	if len(order) != len(calls) || list.Totals.Requests != int64(len(calls)) {
		t.Fatalf("%d requests made; the ledger has %d request ids and totals.requests = %d (%d lines)", len(calls), len(order), list.Totals.Requests, len(lines))
	}
	var upstreamAttempts, retried, attemptLines int64
	for _, id := range order {
		x := byID[id]
		if x == nil {
			t.Fatalf("ledger line for request %s, which no client made", id)
		}
		grp := groups[id]
		if n := len(grp) - 1; n == 1 {
			t.Errorf("%s (request %s): a single attempt line", x.kind, id)
		} else if n >= 2 {
			retried++
			attemptLines += int64(n)
			upstreamAttempts += int64(n)
			for _, a := range grp[1:] {
				if a.Usage.PromptTokens != 0 || a.Usage.CompletionTokens != 0 || a.Usage.Cost != 0 || a.Provider == "" || a.Cancelled {
					t.Errorf("%s (request %s): attempt line %+v (tokens and cost stay on the request's line)", x.kind, id, a)
				}
			}
		} else {
			upstreamAttempts++ // every request here reached a provider
		}
	}
	if retried == 0 {
		t.Error("no request was retried: the run did not exercise retries")
	}
	// Every attempt guichet recorded is a request a simulator received,
	// and the other way round.
	if upstreamAttempts != sa.Requests+sb.Requests {
		t.Errorf("the ledger shows %d upstream attempts; the simulators received %d (%d + %d)", upstreamAttempts, sa.Requests+sb.Requests, sa.Requests, sb.Requests)
	}

	// Per request: the line says what the client was told.
	var ledgerPrompt, ledgerCompletion, ledgerCost int64
	var okPrompt, okCompletion, okCost int64 // completed requests, as the answers said
	var partialLedgerCompletion, partialReceived int64
	var partialPrompts []int64
	var ppPrompt int64 = -1 // what the simulator counts for partialPrompt
	var ok, cancelled int
	for _, id := range order {
		x, l := byID[id], groups[id][0]
		ledgerPrompt += l.Usage.PromptTokens
		ledgerCompletion += l.Usage.CompletionTokens
		ledgerCost += nanoOf(l.Usage.Cost)
		if c := nanoOf(l.Usage.Cost); c != mixedCost(l.Usage.PromptTokens, l.Usage.CompletionTokens) {
			t.Errorf("%s (request %s): cost %d nano for %d+%d tokens, want %d", x.kind, id, c, l.Usage.PromptTokens, l.Usage.CompletionTokens, mixedCost(l.Usage.PromptTokens, l.Usage.CompletionTokens))
		}
		if l.Status != x.status || l.Cancelled != (x.status == 499) {
			t.Errorf("%s (request %s): ledger status %d, cancelled %v; the client saw %d", x.kind, id, l.Status, l.Cancelled, x.status)
		}
		switch {
		case x.status == http.StatusOK:
			// (a) exact: the line is the answer's usage and cost.
			ok++
			okPrompt += x.prompt
			okCompletion += x.completion
			okCost += x.cost
			if l.Usage.PromptTokens != x.prompt || l.Usage.CompletionTokens != x.completion || nanoOf(l.Usage.Cost) != x.cost {
				t.Errorf("%s (request %s): ledger %d+%d tokens, cost %d nano; the answer said %d+%d, %d", x.kind, id,
					l.Usage.PromptTokens, l.Usage.CompletionTokens, nanoOf(l.Usage.Cost), x.prompt, x.completion, x.cost)
			}
			if x.ppPrompt {
				if ppPrompt >= 0 && ppPrompt != x.prompt {
					t.Errorf("the simulator counted %d then %d prompt tokens for the same prompt", ppPrompt, x.prompt)
				}
				ppPrompt = x.prompt
			}
		case x.partial:
			// (b) The stream ended before the model server's usage chunk:
			// guichet bills what it relayed (one token per content chunk)
			// and estimates the prompt, which vLLM reports only at the
			// end. At least what the client received; never more than
			// the simulator generated (checked on the sums below).
			if x.status == 499 {
				cancelled++
			}
			partialLedgerCompletion += l.Usage.CompletionTokens
			partialReceived += x.received
			partialPrompts = append(partialPrompts, l.Usage.PromptTokens)
			if l.Usage.PromptTokens <= 0 || l.Usage.CompletionTokens < x.received || l.Usage.CompletionTokens > 24 {
				t.Errorf("%s (request %s): ledger %d prompt, %d completion tokens; the client received %d content chunks of at most 24",
					x.kind, id, l.Usage.PromptTokens, l.Usage.CompletionTokens, x.received)
			}
			if x.kind == "cut stream" && l.Usage.CompletionTokens != 3 {
				// Exact: the simulator generated 3 tokens, sent and
				// relayed, then dropped the connection.
				t.Errorf("cut stream (request %s): %d completion tokens billed; the simulator generated 3, the client received 3", id, l.Usage.CompletionTokens)
			}
		default:
			// Refused before any token: nothing billed.
			if l.Usage.PromptTokens != 0 || l.Usage.CompletionTokens != 0 {
				t.Errorf("%s (request %s): status %d billed %d+%d tokens", x.kind, id, l.Status, l.Usage.PromptTokens, l.Usage.CompletionTokens)
			}
		}
	}
	if ok != want.ok || cancelled != want.cancelled || len(partialPrompts) != want.partial || cancelled == 0 {
		t.Fatalf("%d completed, %d partial and %d cancelled lines, want %d, %d and %d", ok, len(partialPrompts), cancelled, want.ok, want.partial, want.cancelled)
	}
	if ppPrompt < 0 {
		t.Fatal("no completed stream told what the simulator counts for the partial streams' prompt")
	}

	// The simulators' request counters: exact.
	if sa.Completed+sb.Completed != int64(want.ok) || sa.Cancelled+sb.Cancelled != int64(want.cancelled) {
		t.Errorf("the simulators completed %d and saw %d cancelled; the ledger has %d lines 200 and %d lines 499",
			sa.Completed+sb.Completed, sa.Cancelled+sb.Cancelled, want.ok, want.cancelled)
	}

	// The ledger's totals are the sums of its lines (attempt lines carry
	// nothing), and of the user's daily sums.
	if list.Totals.PromptTokens != ledgerPrompt || list.Totals.CompletionTokens != ledgerCompletion || nanoOf(list.Totals.Cost) != ledgerCost {
		t.Errorf("totals %+v; the request lines sum to %d+%d tokens, cost %d nano", list.Totals, ledgerPrompt, ledgerCompletion, ledgerCost)
	}
	var daily struct {
		Data []struct {
			Requests         int64   `json:"requests"`
			PromptTokens     int64   `json:"prompt_tokens"`
			CompletionTokens int64   `json:"completion_tokens"`
			Cost             float64 `json:"cost"`
		} `json:"data"`
	}
	if code := getJSON(t, g.URL()+"/v1/me/usage/daily", key, &daily); code != http.StatusOK {
		t.Fatalf("/v1/me/usage/daily: status %d", code)
	}
	var dr, dp, dc, dcost int64
	for _, d := range daily.Data {
		dr, dp, dc, dcost = dr+d.Requests, dp+d.PromptTokens, dc+d.CompletionTokens, dcost+nanoOf(d.Cost)
	}
	if dr != int64(len(calls)) || dp != ledgerPrompt || dc != ledgerCompletion || dcost != ledgerCost {
		t.Errorf("the user's daily sums: %d requests, %d+%d tokens, cost %d nano; the ledger: %d, %d+%d, %d", dr, dp, dc, dcost, len(calls), ledgerPrompt, ledgerCompletion, ledgerCost)
	}

	// (a) + (d) against the simulators' own counters.
	//
	// Prompt tokens, exact on both sides: the simulators counted the
	// completed requests' prompts (as their answers said) plus one
	// partialPrompt per partial stream, and nothing for an attempt that
	// failed or was refused before generating.
	partials := int64(len(partialPrompts))
	if simPrompt != okPrompt+partials*ppPrompt {
		t.Errorf("the simulators counted %d prompt tokens; the completed answers said %d, plus %d partial streams of %d = %d",
			simPrompt, okPrompt, partials, ppPrompt, okPrompt+partials*ppPrompt)
	}
	// On the ledger side, completed lines are exact (checked per line);
	// a partial stream's prompt is guichet's offline estimate (vLLM
	// reports the prompt only in the usage chunk, which never came), the
	// same for the same prompt. So the ledger's prompt total differs from
	// the simulators' by exactly the sum of (estimate - counted) over the
	// partial lines — an estimator's error, not a lost or doubled line.
	for _, p := range partialPrompts {
		if p != partialPrompts[0] {
			t.Errorf("partial streams of one prompt billed different prompt estimates: %v", partialPrompts)
			break
		}
	}
	if got, want := ledgerPrompt-simPrompt, sumInts(partialPrompts)-partials*ppPrompt; got != want {
		t.Errorf("ledger prompt tokens %d - simulators' %d = %d, want the partial lines' estimation error %d", ledgerPrompt, simPrompt, got, want)
	}
	// Generation tokens: the simulators generated the completed answers'
	// tokens (exact) plus, for each partial stream, the tokens it emitted
	// before it saw the cancellation or cut. Of these, the client
	// received partialReceived, guichet relayed (and billed) at least
	// that, and none that was never generated:
	//   okCompletion + partialReceived <= ledger completion <= simulators' generation,
	// so the simulators' total exceeds the ledger's by at most the tokens
	// generated for partial streams but never delivered to their client:
	//   0 <= simGen - ledgerCompletion <= simGen - okCompletion - partialReceived.
	// (Not an equality: a token in flight between the simulator and
	// guichet when the client left was generated but never relayed.)
	partialGenerated := simGen - okCompletion
	t.Logf("%d requests: %d completed, %d partial streams (%d cancelled), %d refused; %d retried (%d attempt lines), %d upstream attempts",
		len(calls), ok, partials, cancelled, want.refused, retried, attemptLines, upstreamAttempts)
	t.Logf("simulators: %d prompt, %d generation tokens; ledger: %d prompt, %d completion tokens, cost %d nano",
		simPrompt, simGen, ledgerPrompt, ledgerCompletion, ledgerCost)
	t.Logf("partial streams: client received %d content chunks, ledger billed %d completion tokens, simulators generated %d; prompts estimated %v (the simulator counts %d each)",
		partialReceived, partialLedgerCompletion, partialGenerated, partialPrompts, ppPrompt)
	if ledgerCompletion-partialLedgerCompletion != okCompletion {
		t.Errorf("completed lines sum to %d completion tokens; the answers said %d", ledgerCompletion-partialLedgerCompletion, okCompletion)
	}
	if partialLedgerCompletion < partialReceived || partialLedgerCompletion > partialGenerated {
		t.Errorf("partial streams: the ledger billed %d completion tokens; want between the %d the clients received and the %d the simulators generated for them",
			partialLedgerCompletion, partialReceived, partialGenerated)
	}
	if d := simGen - ledgerCompletion; d < 0 || d > partialGenerated-partialReceived {
		t.Errorf("simulators' generation %d - ledger completion %d = %d, want within [0, %d] (tokens generated for partial streams, never delivered)",
			simGen, ledgerCompletion, d, partialGenerated-partialReceived)
	}
	// Cost: the ledger's total is the completed answers' costs plus the
	// partial lines' (each line's cost is its tokens at the model's
	// prices, checked above).
	var partialCost int64
	for _, id := range order {
		if x, l := byID[id], groups[id][0]; x.partial {
			partialCost += nanoOf(l.Usage.Cost)
		}
	}
	if ledgerCost != okCost+partialCost {
		t.Errorf("ledger cost %d nano; the completed answers said %d, the partial lines %d", ledgerCost, okCost, partialCost)
	}
}

func sumInts(v []int64) int64 {
	var s int64
	for _, n := range v {
		s += n
	}
	return s
}
