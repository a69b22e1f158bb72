package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// GPU-like behaviour: batch-dependent decoding, prefill cost and the
// prefix cache, priority scheduling.

type usageDetails struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (u usageDetails) cached() int {
	if u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// timedPost posts body and returns its usage and how long it took.
func timedPost(t *testing.T, url, body string) (usageDetails, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, b := post(t, url, body)
	d := time.Since(start)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
	}
	var v struct {
		Usage usageDetails `json:"usage"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v.Usage, d
}

func completionBody(prompt string) string {
	b, _ := json.Marshal(map[string]any{"model": "sim-model", "prompt": prompt, "max_tokens": 1})
	return string(b)
}

func TestITLPerRunning(t *testing.T) {
	s, url := newSim(t, Config{ITL: 2 * time.Millisecond, ITLPerRunning: 2 * time.Millisecond, OutputTokens: 20})
	stream := `{"model":"sim-model","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`
	plain := `{"model":"sim-model","messages":[{"role":"user","content":"x"}]}`
	measure := func(body string) time.Duration {
		start := time.Now()
		resp, b := post(t, url+"/v1/chat/completions", body)
		d := time.Since(start)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"completion_tokens":20`) {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return d
	}
	aloneStream, alonePlain := measure(stream), measure(plain)

	// Three long answers keep the batch at four.
	cancel, errs := startChats(t, url, 3, `{"model":"sim-model","messages":[{"role":"user","content":"y"}],"stream":true,"ignore_eos":true,"max_tokens":3000}`)
	waitFor(t, "3 running", func() bool { return s.Stats().Running == 3 })
	crowdedStream, crowdedPlain := measure(stream), measure(plain)
	cancel()
	for range 3 {
		<-errs
	}

	// 19 token steps at 2 ms alone, at 2 + 2×3 ms in a batch of four.
	for _, c := range []struct {
		name           string
		alone, crowded time.Duration
	}{{"stream", aloneStream, crowdedStream}, {"non-stream", alonePlain, crowdedPlain}} {
		t.Logf("%s: alone %v, in a batch of 4 %v", c.name, c.alone, c.crowded)
		if c.crowded < 19*8*time.Millisecond {
			t.Errorf("%s in a batch of 4 took %v, want at least %v", c.name, c.crowded, 19*8*time.Millisecond)
		}
		if float64(c.alone) >= 0.8*float64(c.crowded) {
			t.Errorf("%s alone took %v, in a batch of 4 %v: want alone < 0.8× crowded", c.name, c.alone, c.crowded)
		}
	}
	waitFor(t, "the batch ended", func() bool { return s.Stats().Running == 0 })
}

func TestITLPerRunningFollowsTheBatch(t *testing.T) {
	// A stream that starts in a batch speeds up when the batch empties.
	s, url := newSim(t, Config{ITL: time.Millisecond, ITLPerRunning: 20 * time.Millisecond, OutputTokens: 40})
	cancel, errs := startChats(t, url, 3, `{"model":"sim-model","messages":[{"role":"user","content":"y"}],"stream":true,"ignore_eos":true,"max_tokens":3000}`)
	waitFor(t, "3 running", func() bool { return s.Stats().Running == 3 })
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	resp, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"x"}]}`)
	d := time.Since(start)
	for range 3 {
		<-errs
	}
	// Crowded all along it would take 39 × 61 ms ≈ 2.4 s; alone after
	// ~100 ms, well under a second.
	if resp.StatusCode != 200 || d > 1500*time.Millisecond || d < 100*time.Millisecond {
		t.Errorf("%v: %d %s", d, resp.StatusCode, b)
	}
}

func TestPrefixCache(t *testing.T) {
	s, url := newSim(t, Config{PrefixCacheBlocks: 64, BlockTokens: 4, PrefillPerToken: 20 * time.Millisecond})
	p := "a b c d e f g h i j" // 10 tokens: 2 full blocks
	u1, d1 := timedPost(t, url+"/v1/completions", completionBody(p))
	u2, d2 := timedPost(t, url+"/v1/completions", completionBody(p))
	if u1.PromptTokens != 10 || u1.PromptTokensDetails != nil || u2.cached() != 8 {
		t.Errorf("usages %+v then %+v: want 8 cached tokens the second time, no details the first", u1, u2)
	}
	// 10 tokens to prefill at 20 ms, then 2.
	t.Logf("cold %v, warm %v", d1, d2)
	if d1 < 200*time.Millisecond || float64(d2) >= 0.75*float64(d1) {
		t.Errorf("TTFT %v then %v: want at least 200 ms, then much shorter", d1, d2)
	}
	if st := s.Stats(); st.PrefixCacheQueries != 20 || st.PrefixCacheHits != 8 {
		t.Errorf("stats %+v", st)
	}

	// Only the first block is shared.
	if u, _ := timedPost(t, url+"/v1/completions", completionBody("a b c d x y z w v u")); u.cached() != 4 {
		t.Errorf("shared first block: %+v", u)
	}
	// A prompt of exactly two cached blocks: like vLLM, its last token is
	// computed anyway, so only the first block counts.
	if u, _ := timedPost(t, url+"/v1/completions", completionBody("a b c d e f g h")); u.cached() != 4 {
		t.Errorf("whole prompt cached: %+v", u)
	}
	// Token ids are prompts too.
	ids := `{"model":"sim-model","prompt":[1,2,3,4,5,6],"max_tokens":1}`
	timedPost(t, url+"/v1/completions", ids)
	if u, _ := timedPost(t, url+"/v1/completions", ids); u.cached() != 4 {
		t.Errorf("token ids: %+v", u)
	}

	_, b := get(t, url+"/sim/stats")
	var st map[string]int64
	if err := json.Unmarshal(b, &st); err != nil || st["prefix_cache_queries"] != 10+10+10+8+6+6 || st["prefix_cache_hits"] != 8+4+4+4 {
		t.Errorf("/sim/stats: %s", b)
	}
	_, b = get(t, url+"/metrics")
	for _, line := range []string{
		"# TYPE vllm:prefix_cache_queries_total counter",
		`vllm:prefix_cache_queries_total{model_name="sim-model"} 50.0`,
		"# TYPE vllm:prefix_cache_hits_total counter",
		`vllm:prefix_cache_hits_total{model_name="sim-model"} 20.0`,
		`vllm:prompt_tokens_total{model_name="sim-model"} 50.0`,
	} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", line, b)
		}
	}
}

func TestPrefixCacheChat(t *testing.T) {
	s, url := newSim(t, Config{PrefixCacheBlocks: 1000, BlockTokens: 4})
	first := `{"model":"sim-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"http://x/1.png"}}]}]}`
	second := `{"model":"sim-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"http://x/1.png"}}]},` +
		`{"role":"assistant","content":"A cat."},{"role":"user","content":"And the dog?"}]}`
	otherImage := strings.Replace(second, "1.png", "2.png", 1)
	u1, _ := timedPost(t, url+"/v1/chat/completions", first)
	u2, _ := timedPost(t, url+"/v1/chat/completions", second)
	// The conversation so far is a prefix of the next turn: its full blocks hit.
	if u1.cached() != 0 || u2.cached() != u1.PromptTokens/4*4 || u2.cached() == 0 {
		t.Errorf("first turn %+v, second %+v", u1, u2)
	}
	// The image is part of the prefix.
	if u, _ := timedPost(t, url+"/v1/chat/completions", otherImage); u.cached() >= u2.cached() {
		t.Errorf("another image: %+v", u)
	}
	// The cache is queried with exactly the prompt tokens of the usage.
	if st := s.Stats(); st.PrefixCacheQueries != int64(u1.PromptTokens+2*u2.PromptTokens) {
		t.Errorf("queried %d tokens, prompts had %d+2×%d", st.PrefixCacheQueries, u1.PromptTokens, u2.PromptTokens)
	}

	// Streams report cached tokens in the final usage chunk only (the
	// whole prompt is cached by now: all but its last token count).
	stream := strings.Replace(second, `"messages"`, `"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"messages"`, 1)
	resp, b := post(t, url+"/v1/chat/completions", stream)
	events := sseEvents(t, b)
	if resp.StatusCode != 200 || len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	for _, ev := range events[:len(events)-2] {
		if strings.Contains(ev, "prompt_tokens_details") {
			t.Errorf("a continuous usage chunk reports cached tokens: %s", ev)
		}
	}
	var last struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   usageDetails      `json:"usage"`
	}
	if json.Unmarshal([]byte(events[len(events)-2]), &last) != nil || len(last.Choices) != 0 ||
		last.Usage.cached() != (u2.PromptTokens-1)/4*4 {
		t.Errorf("final usage chunk: %s", events[len(events)-2])
	}

	// Another served name caches on its own.
	s2, url2 := newSim(t, Config{Models: []string{"a", "b"}, PrefixCacheBlocks: 1000, BlockTokens: 4})
	body := `{"model":"a","messages":[{"role":"user","content":"one two three four five six seven eight"}]}`
	timedPost(t, url2+"/v1/chat/completions", body)
	if u, _ := timedPost(t, url2+"/v1/chat/completions", strings.Replace(body, `"a"`, `"b"`, 1)); u.cached() != 0 {
		t.Errorf("model b hit model a's blocks: %+v", u)
	}
	if s2.Stats().PrefixCacheHits != 0 {
		t.Errorf("stats %+v", s2.Stats())
	}
}

func TestPrefixCacheLRU(t *testing.T) {
	_, url := newSim(t, Config{PrefixCacheBlocks: 4, BlockTokens: 4})
	a, b, c := "a b c d e f g h i", "p q r s t u v w x", "k l m n o y z j q" // 2 blocks each
	hit := func(p string) int {
		u, _ := timedPost(t, url+"/v1/completions", completionBody(p))
		return u.cached()
	}
	for _, step := range []struct {
		prompt string
		want   int
	}{
		{a, 0}, {b, 0}, // full: a, b
		{a, 8}, // a is now the most recent
		{c, 0}, // evicts b
		{a, 8},
		{b, 0}, // evicted; now evicts c
		{c, 0},
	} {
		if got := hit(step.prompt); got != step.want {
			t.Fatalf("%q: %d cached tokens, want %d", step.prompt, got, step.want)
		}
	}
}

func TestPrefixCacheKeepsHeads(t *testing.T) {
	// A prompt longer than the cache keeps its first blocks.
	c := newPrefixCache(3)
	blocks := []uint64{10, 11, 12, 13}
	if h := c.lookup(blocks, 4); h != 0 {
		t.Fatalf("cold hit %d", h)
	}
	if h := c.lookup(blocks, 4); h != 3 {
		t.Errorf("hit %d blocks, want the first 3", h)
	}
	if h := c.lookup(blocks, 1); h != 1 {
		t.Errorf("capped hit %d", h)
	}
	if h := c.lookup([]uint64{99, 11}, 2); h != 0 {
		t.Errorf("a block hits only after its predecessors: %d", h)
	}
	if len(c.index) != 3 {
		t.Errorf("%d entries", len(c.index))
	}
}

func TestPrefillWithoutCache(t *testing.T) {
	s, url := newSim(t, Config{PrefillPerToken: 10 * time.Millisecond})
	u, d := timedPost(t, url+"/v1/completions", completionBody("one two three four five six seven eight nine ten"))
	if d < 100*time.Millisecond || u.PromptTokensDetails != nil {
		t.Errorf("10 tokens at 10 ms: %v, usage %+v", d, u)
	}
	if st := s.Stats(); st.PrefixCacheQueries != 0 || st.PrefixCacheHits != 0 {
		t.Errorf("stats %+v", st)
	}
	_, b := post(t, url+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`)
	if strings.Contains(string(b), "prompt_tokens_details") {
		t.Errorf("cache off: %s", b)
	}
}

func TestPriorityScheduling(t *testing.T) {
	// One slot. A long prompt holds it (prefill) until it is cancelled;
	// meanwhile requests queue with various priorities.
	s, url := newSim(t, Config{MaxConcurrency: 1, PriorityScheduling: true, PrefillPerToken: 10 * time.Millisecond})
	ctx, cancelBlocker := context.WithCancel(context.Background())
	defer cancelBlocker()
	blocker := `{"model":"sim-model","messages":[{"role":"user","content":"` + strings.Repeat("w ", 1000) + `"}]}`
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(blocker))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitFor(t, "the blocker running", func() bool { return s.Stats().Running == 1 })

	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, w := range []struct{ name, priority string }{
		{"p5", `,"priority":5`}, {"first-1", `,"priority":-1`}, {"none", ``}, {"second-1", `,"priority":-1`}, {"zero", `,"priority":0`},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := post(t, url+"/v1/chat/completions", `{"model":"sim-model","messages":[{"role":"user","content":"x"}]`+w.priority+`}`)
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", w.name, resp.StatusCode, b)
			}
			mu.Lock()
			order = append(order, w.name)
			mu.Unlock()
		}()
		waitFor(t, "queued", func() bool { return s.Stats().Waiting == int64(i+1) })
	}
	cancelBlocker()
	<-blocked
	wg.Wait()
	want := "first-1 second-1 none zero p5"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("served %s, want %s", got, want)
	}
}

func TestPriorityField(t *testing.T) {
	_, fcfs := newSim(t, Config{})
	_, prio := newSim(t, Config{PriorityScheduling: true})
	chat := func(p string) string {
		return `{"model":"sim-model","messages":[{"role":"user","content":"x"}],"priority":` + p + `}`
	}
	cmpl := func(p string) string { return `{"model":"sim-model","prompt":"x","priority":` + p + `}` }
	for _, tc := range []struct {
		url, path, body string
		status          int
		in              string
	}{
		{fcfs, "/v1/chat/completions", chat("3"), 400, "Got priority 3 but Priority scheduling is not enabled."},
		{fcfs, "/v1/completions", cmpl("-2"), 400, "Got priority -2 but Priority scheduling is not enabled."},
		{fcfs, "/v1/chat/completions", chat("0"), 200, ""},
		{fcfs, "/v1/chat/completions", chat(`"high"`), 400, "priority"},
		{prio, "/v1/chat/completions", chat("3"), 200, ""},
		{prio, "/v1/completions", cmpl("-7"), 200, ""},
		{prio, "/v1/completions", cmpl("2.0"), 200, ""},
		{prio, "/v1/chat/completions", chat("1.5"), 400, "valid integer"},
		{prio, "/v1/chat/completions", chat(`"1"`), 400, "got JSON string"},
		{prio, "/v1/chat/completions", chat("null"), 400, "got JSON null"},
		{prio, "/v1/completions", cmpl("true"), 400, "got JSON bool"},
		{prio, "/v1/completions", cmpl("1e30"), 400, "out of range"},
	} {
		resp, b := post(t, tc.url+tc.path, tc.body)
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Code    int    `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != tc.status || tc.status == 400 &&
			(e.Error.Code != 400 || e.Error.Type != "BadRequestError" || !strings.Contains(e.Error.Message, tc.in)) {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, resp.StatusCode, b)
		}
	}
}
