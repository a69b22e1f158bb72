// Command rateload sends POST requests at a fixed rate (open loop: each
// request is scheduled by the clock, not by the previous answer) and prints,
// as JSON, the latency p50/p99/p99.9 counted from the scheduled send time, so
// a stalled server shows up as latency instead of silently lowering the rate
// (wrk's closed loop hides that: "coordinated omission").
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/v1/chat/completions", "URL to POST to")
	key := flag.String("key", "", "bearer token sent in Authorization")
	model := flag.String("model", "bench-chat", "model name in the request")
	rate := flag.Float64("rate", 2000, "requests per second")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "sent at the same rate before measuring, not counted")
	maxInflight := flag.Int64("max-inflight", 5000, "requests in flight beyond which new ones are dropped (counted as errors)")
	timeline := flag.Bool("timeline", false, "print each second's p50/p99/max, in-flight and new connections to stderr")
	flag.Parse()

	var dials atomic.Int64 // a rising count means keep-alive is not keeping up
	dialer := &net.Dialer{Timeout: 5 * time.Second}

	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}`, *model)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 4096, // keep-alive: a connection per request in flight, reused
			DisableCompression:  true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}

	var (
		mu       sync.Mutex
		lat      []time.Duration
		second   []time.Duration // this second's latencies, for -timeline
		errs     int
		dropped  int
		firstErr string
		inflight atomic.Int64
		wg       sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*dur)
	sent := 0
	if *timeline {
		go func() {
			for t := time.Tick(time.Second); ; {
				<-t
				mu.Lock()
				s := second
				second = nil
				mu.Unlock()
				fmt.Fprintf(os.Stderr, "rateload %5.1fs: %5d done p50 %8.2f ms p99 %8.2f ms max %8.2f ms, in flight %5d, connections opened %d\n",
					time.Since(start).Seconds(), len(s), pct(s, 50), pct(s, 99), pct(s, 100), inflight.Load(), dials.Load())
			}
		}()
	}
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		counted := !at.Before(measureFrom)
		if inflight.Load() >= *maxInflight {
			if counted {
				mu.Lock()
				dropped++
				mu.Unlock()
			}
			continue
		}
		if counted {
			sent++
		}
		inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Add(-1)
			err := post(client, *url, *key, body)
			d := time.Since(at) // from the scheduled time, not the actual send
			mu.Lock()
			defer mu.Unlock()
			if err == nil && *timeline {
				second = append(second, d)
			}
			if !counted {
				return
			}
			if err != nil {
				errs++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			lat = append(lat, d)
		}()
	}
	wg.Wait()

	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"rate":         *rate,
		"seconds":      dur.Seconds(),
		"sent":         sent,
		"ok":           len(lat),
		"errors":       errs,
		"dropped":      dropped,
		"first_error":  firstErr,
		"p50_ms":       pct(lat, 50),
		"p99_ms":       pct(lat, 99),
		"p999_ms":      pct(lat, 99.9),
		"max_ms":       pct(lat, 100),
		"achieved_rps": float64(len(lat)) / dur.Seconds(),
		"connections":  dials.Load(),
	})
}

func post(c *http.Client, url, key, body string) error {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
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
