package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The clients: streaming chat completions over plain HTTP, read as SSE.
// Per request they record the time to the first content token, the
// content chunks received (the simulator streams one token per chunk),
// the end, the status and, on a refusal, Retry-After.

var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	MaxIdleConns:        2048,
	MaxIdleConnsPerHost: 2048,
	DisableCompression:  true,
	IdleConnTimeout:     30 * time.Second,
}}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatBody struct {
	Model         string         `json:"model"`
	Stream        bool           `json:"stream"`
	MaxTokens     int            `json:"max_tokens"`
	Messages      []message      `json:"messages"`
	ServiceTier   string         `json:"service_tier,omitempty"`
	StreamOptions map[string]any `json:"stream_options"`
}

// result is one request as its client saw it.
type result struct {
	start, first, end time.Time // first: zero when no content token arrived
	tokens            int       // content chunks received
	maxTokens         int       // the answer's length asked for
	status            int       // HTTP status; 0 when the request failed before one
	retryAfter        time.Duration
	prompt, cached    int    // usage.prompt_tokens and its cached_tokens
	text              string // the answer, when asked for
	complete          bool   // the stream ended with [DONE]
}

func (r result) ttft() time.Duration {
	if r.first.IsZero() {
		return -1
	}
	return r.first.Sub(r.start)
}

func (r result) rejected() bool {
	return r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable
}

type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		PromptTokensDetails *struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

// stream sends one streaming chat request to url with key and reads it to
// the end; onToken is called at every content chunk.
func stream(ctx context.Context, url, key string, body []byte, keepText bool, onToken func()) result {
	r := result{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		r.end = time.Now()
		return r
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := httpClient.Do(req)
	if err != nil {
		r.end = time.Now()
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		if s, err := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64); err == nil {
			r.retryAfter = time.Duration(s * float64(time.Second))
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		r.end = time.Now()
		return r
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		data := bytes.TrimSpace(line[5:])
		if bytes.Equal(data, []byte("[DONE]")) {
			r.complete = true
			break
		}
		var c chunk
		if json.Unmarshal(data, &c) != nil {
			continue
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content == "" {
				continue
			}
			now := time.Now()
			if r.first.IsZero() {
				r.first = now
			}
			r.tokens++
			if onToken != nil {
				onToken()
			}
			if keepText {
				text.WriteString(ch.Delta.Content)
			}
		}
		if c.Usage != nil {
			r.prompt = c.Usage.PromptTokens
			if d := c.Usage.PromptTokensDetails; d != nil {
				r.cached = d.CachedTokens
			}
		}
	}
	r.end = time.Now()
	r.text = text.String()
	return r
}

// recorder gathers a tenant's results and its tokens over time, in
// buckets of bucketWidth from the phase's origin.
type recorder struct {
	name    string
	origin  time.Time
	buckets []atomic.Int64

	mu      sync.Mutex
	results []result
}

const bucketWidth = 50 * time.Millisecond

func newRecorder(name string, origin time.Time, span time.Duration) *recorder {
	return &recorder{name: name, origin: origin, buckets: make([]atomic.Int64, int(span/bucketWidth)+1)}
}

func (r *recorder) token() {
	i := int(time.Since(r.origin) / bucketWidth)
	if i >= 0 && i < len(r.buckets) {
		r.buckets[i].Add(1)
	}
}

func (r *recorder) add(res result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
}

// tokensIn is the tokens received within [from, to) (offsets from the
// origin, rounded to buckets).
func (r *recorder) tokensIn(from, to time.Duration) int64 {
	var n int64
	for i := int(from / bucketWidth); i < int(to/bucketWidth) && i < len(r.buckets); i++ {
		n += r.buckets[i].Load()
	}
	return n
}

// startedIn is the results of requests sent within [from, to).
func (r *recorder) startedIn(from, to time.Duration) []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []result
	for _, x := range r.results {
		if d := x.start.Sub(r.origin); d >= from && d < to {
			out = append(out, x)
		}
	}
	return out
}

// words makes n pseudo-random lowercase words: n tokens for the
// simulator's tokenizer (a run of letters with its leading space).
func words(rng *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n * 7)
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		for range 3 + rng.IntN(6) {
			b.WriteByte(byte('a' + rng.IntN(26)))
		}
	}
	return b.String()
}
