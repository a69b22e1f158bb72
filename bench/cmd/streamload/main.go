// Command streamload measures a proxy's cost per streamed answer: it keeps
// -c streaming chat requests in flight for -d, reads each SSE answer to
// "data: [DONE]" and prints, as JSON, how many completed, how many failed,
// and the time to the first SSE event and to the end (p50/p99).
// It exists because wrk cannot measure time to first event on a stream.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/v1/chat/completions", "chat completions URL")
	key := flag.String("key", "", "bearer token sent in Authorization")
	model := flag.String("model", "bench-chat", "model name in the request")
	conc := flag.Int("c", 64, "concurrent streams")
	dur := flag.Duration("d", 10*time.Second, "how long to keep opening streams")
	flag.Parse()

	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}`, *model)
	client := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: *conc,
			DisableCompression:  true,
		},
	}

	var (
		mu          sync.Mutex
		ttfe, total []time.Duration
		errs        int
		firstErr    string
	)
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				first, all, err := stream(client, *url, *key, body)
				mu.Lock()
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				} else {
					ttfe = append(ttfe, first)
					total = append(total, all)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond) // do not spin on a dead server
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(deadline.Add(-*dur))

	out := map[string]any{
		"streams":         len(total),
		"errors":          errs,
		"first_error":     firstErr,
		"seconds":         elapsed.Seconds(),
		"streams_per_s":   float64(len(total)) / elapsed.Seconds(),
		"ttfe_p50_ms":     pct(ttfe, 50),
		"ttfe_p99_ms":     pct(ttfe, 99),
		"total_p50_ms":    pct(total, 50),
		"total_p99_ms":    pct(total, 99),
		"concurrency":     *conc,
		"duration_flag":   dur.String(),
		"ttfe_definition": "request sent -> first 'data:' line read",
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// stream runs one streaming request and returns the time to the first SSE
// data line and to "data: [DONE]".
func stream(c *http.Client, url, key, body string) (first, total time.Duration, err error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return 0, 0, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		if first == 0 {
			first = time.Since(start)
		}
		if bytes.Equal(bytes.TrimSpace(line[5:]), []byte("[DONE]")) {
			// Drain what is left so the connection goes back to the pool.
			io.Copy(io.Discard, resp.Body)
			return first, time.Since(start), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	return 0, 0, fmt.Errorf("stream ended without data: [DONE]")
}

// pct is the p-th percentile of d in milliseconds (nearest rank).
func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}
