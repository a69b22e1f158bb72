package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/sim"
)

// demo serves the API on the bundled example configuration, in front of
// guichet-sim started in the same process: the whole API works on a fresh
// machine, and every answer says it comes from a simulator.
func demo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", firstSet(os.Getenv("GUICHET_LISTEN"), "127.0.0.1:8080"), "gateway listen address")
	simListen := fs.String("sim-listen", "127.0.0.1:0", "simulator listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *simListen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "guichet demo: simulator:", err)
		return 1
	}
	upstream := sim.New(sim.Config{
		Models:       config.ExampleModels,
		TTFT:         150 * time.Millisecond,
		ITL:          25 * time.Millisecond,
		OutputTokens: 40,
		OutputMode:   "random",
	})
	go http.Serve(ln, upstream)
	simURL := "http://" + ln.Addr().String()
	os.Setenv("GUICHET_SIM_URL", simURL)
	fmt.Fprintf(os.Stderr, "guichet demo: guichet-sim (an upstream simulator, not a model) listening on %s\n", simURL)

	hooks := &serveHooks{listening: func(addr, key string) {
		fmt.Fprintf(os.Stderr, `
guichet demo is serving the API on http://%[1]s in front of guichet-sim.
Every answer is SIMULATED ("guichet-sim simulated answer: ..."), not from a model.

  export GUICHET_KEY=%[2]s
  curl -N http://%[1]s/v1/chat/completions -H "Authorization: Bearer $GUICHET_KEY" \
    -H 'Content-Type: application/json' \
    -d '{"model":"sim-chat","stream":true,"messages":[{"role":"user","content":"Bonjour !"}]}'

  models:   curl http://%[1]s/v1/models -H "Authorization: Bearer $GUICHET_KEY"
  API docs: http://%[1]s/docs

`, addr, key)
	}}
	return serve([]string{"--dev", "--listen", *listen}, hooks)
}
