// Command goproxy is the floor for any Go gateway: net/http/httputil's
// ReverseProxy with a bearer-token check, the request body read before it is
// sent on, and nothing else. bench/run.sh runs
// it beside nginx and guichet so that guichet's cost can be split into what
// Go's net/http costs anyway and what guichet adds on top.
package main

import (
	"bytes"
	"crypto/subtle"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:8001", "upstream base URL")
	key := flag.String("key", os.Getenv("GOPROXY_KEY"), "bearer token clients must send (empty: none)")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Header.Del("Authorization") },
		FlushInterval: -1, // stream each write at once, like proxy_buffering off
		Transport: &http.Transport{ // as guichet's upstream transport
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
	want := []byte("Bearer " + *key)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *key != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, `{"error":{"message":"invalid key"}}`, http.StatusUnauthorized)
			return
		}
		// Read the request body first, as any gateway that looks at it does
		// (guichet does). Streaming it instead races with the response: once
		// the response headers are flushed, net/http closes the request body
		// under the transport's writer, which then drops the upstream
		// connection ("use of closed network connection") on ~0.2% of streams.
		body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil {
			http.Error(w, `{"error":{"message":"reading the request"}}`, http.StatusBadRequest)
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "goproxy listening on http://%s -> %s\n", ln.Addr(), target)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.Serve(ln))
}
