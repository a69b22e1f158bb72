package main

import (
	"bytes"
	"encoding/json"
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

	hooks := &serveHooks{listening: func(addr, master string) {
		// A user's key, not the master key: collections need an owner.
		key, err := demoUser("http://"+addr, master)
		if err != nil {
			fmt.Fprintln(os.Stderr, "guichet demo: creating the demo user:", err)
			key = master
		}
		fmt.Fprintf(os.Stderr, `
guichet demo is serving the API on http://%[1]s in front of guichet-sim.
Every answer is SIMULATED ("guichet-sim simulated answer: ..."), not from a model.

  export GUICHET_KEY=%[2]s   # demo@example.org's key (the master key is above)
  curl -N http://%[1]s/v1/chat/completions -H "Authorization: Bearer $GUICHET_KEY" \
    -H 'Content-Type: application/json' \
    -d '{"model":"sim-chat","stream":true,"messages":[{"role":"user","content":"Bonjour !"}]}'

  models:   curl http://%[1]s/v1/models -H "Authorization: Bearer $GUICHET_KEY"
  API docs: http://%[1]s/docs

`, addr, key)
	}}
	return serve([]string{"--dev", "--listen", *listen}, hooks)
}

// demoUser makes (or finds, on a second run) the role "demo" (every
// model, public collections allowed) and the user demo@example.org,
// through the admin API, and returns a new key of theirs.
func demoUser(base, master string) (string, error) {
	call := func(method, path string, body, out any) (int, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+master)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode, nil
	}
	type object struct {
		ID    int64  `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
		Token string `json:"token"`
	}
	var list struct{ Data []object }
	find := func(path string, match func(object) bool) int64 {
		list.Data = nil
		call("GET", path, nil, &list)
		for _, o := range list.Data {
			if match(o) {
				return o.ID
			}
		}
		return 0
	}
	role := find("/v1/admin/roles?limit=100", func(o object) bool { return o.Name == "demo" })
	if role == 0 {
		var r object
		if _, err := call("POST", "/v1/admin/roles", map[string]any{"name": "demo", "permissions": []string{"create_public_collection"},
			"limits": []map[string]any{{"model": "*", "type": "rpm", "value": nil}}}, &r); err != nil {
			return "", err
		}
		role = r.ID
	}
	user := find("/v1/admin/users?email=demo@example.org", func(o object) bool { return o.Email == "demo@example.org" })
	if user == 0 {
		var u object
		if _, err := call("POST", "/v1/admin/users", map[string]any{"email": "demo@example.org", "name": "Demo", "role": role}, &u); err != nil {
			return "", err
		}
		user = u.ID
	}
	var k object
	st, err := call("POST", "/v1/admin/tokens", map[string]any{"name": "demo", "user": user}, &k)
	if err == nil && (st != http.StatusCreated || k.Token == "") {
		err = fmt.Errorf("POST /v1/admin/tokens answered %d", st)
	}
	return k.Token, err
}
