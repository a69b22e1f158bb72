// Command idlestreams measures what idle streams cost a proxy: it opens -n
// streaming chat requests (at -rate per second, spread over several loopback
// source addresses so the client side never runs out of ephemeral ports),
// waits until every one has received its first SSE event, then reads the
// resident memory and open file count of the processes given by -pids, holds
// the streams for -hold, closes them all and reads them again after -settle.
// It prints one JSON object.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/v1/chat/completions", "chat completions URL")
	key := flag.String("key", "", "bearer token sent in Authorization")
	model := flag.String("model", "bench-chat", "model name in the request")
	n := flag.Int("n", 10000, "streams to hold open at once")
	rate := flag.Float64("rate", 2000, "streams opened per second")
	sources := flag.Int("sources", 8, "source addresses 127.0.0.2 … 127.0.0.(1+N) used round-robin")
	pids := flag.String("pids", "", "processes to measure, as name=pid,name=pid")
	timeout := flag.Duration("timeout", 120*time.Second, "give up waiting for first events after this")
	hold := flag.Duration("hold", 2*time.Second, "time the streams stay open after the last first event")
	settle := flag.Duration("settle", 3*time.Second, "wait after closing before measuring again")
	flag.Parse()

	watch := map[string]int{}
	for _, kv := range strings.Split(*pids, ",") {
		if name, p, ok := strings.Cut(kv, "="); ok {
			if pid, err := strconv.Atoi(p); err == nil {
				watch[name] = pid
			}
		}
	}

	var next atomic.Uint32
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	client := &http.Client{Transport: &http.Transport{
		Proxy:              nil,
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := *dialer
			if *sources > 0 {
				ip := net.IPv4(127, 0, 0, byte(2+int(next.Add(1))%*sources))
				d.LocalAddr = &net.TCPAddr{IP: ip}
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"Hold this stream open."}]}`, *model)

	ctx, cancel := context.WithCancel(context.Background())
	var (
		firsts, errs atomic.Int64
		errMu        sync.Mutex
		firstErr     string
		got          = make(chan struct{}, *n)
		wg           sync.WaitGroup
	)
	fail := func(err error) {
		if ctx.Err() != nil {
			return // we closed it
		}
		errs.Add(1)
		errMu.Lock()
		if firstErr == "" {
			firstErr = err.Error()
		}
		errMu.Unlock()
		got <- struct{}{}
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / *rate)
	for i := range *n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", *url, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if *key != "" {
				req.Header.Set("Authorization", "Bearer "+*key)
			}
			resp, err := client.Do(req)
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
				fail(fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b)))
				return
			}
			r := bufio.NewReader(resp.Body)
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					fail(fmt.Errorf("before the first event: %w", err))
					return
				}
				if bytes.HasPrefix(line, []byte("data:")) {
					break
				}
			}
			firsts.Add(1)
			got <- struct{}{}
			io.Copy(io.Discard, r) // hold the stream until we cancel
		}()
	}
	openedIn := time.Duration(0)
	timer := time.After(*timeout)
wait:
	for range *n {
		select {
		case <-got:
		case <-timer:
			break wait
		}
	}
	openedIn = time.Since(start)
	time.Sleep(*hold)
	open := measure(watch)

	cancel()
	wg.Wait()
	client.CloseIdleConnections()
	time.Sleep(*settle)
	closed := measure(watch)

	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requested":          *n,
		"first_events":       firsts.Load(),
		"errors":             errs.Load(),
		"first_error":        firstErr,
		"open_seconds":       openedIn.Seconds(),
		"while_open":         open,
		"after_close_settle": closed,
	})
}

type procInfo struct {
	RSSKB   int64 `json:"rss_kb"`
	HWMKB   int64 `json:"hwm_kb"`
	FDs     int   `json:"fds"`
	Threads int64 `json:"threads"`
}

// measure reads VmRSS, VmHWM, Threads and the open file count of each pid.
func measure(watch map[string]int) map[string]procInfo {
	out := map[string]procInfo{}
	for name, pid := range watch {
		var pi procInfo
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				f := strings.Fields(l)
				if len(f) < 2 {
					continue
				}
				v, _ := strconv.ParseInt(f[1], 10, 64)
				switch f[0] {
				case "VmRSS:":
					pi.RSSKB = v
				case "VmHWM:":
					pi.HWMKB = v
				case "Threads:":
					pi.Threads = v
				}
			}
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			pi.FDs = len(ents)
		}
		out[name] = pi
	}
	return out
}
