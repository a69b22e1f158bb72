package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// adminCLI runs `guichet admin COMMAND` on the data dir of a running
// guichet, as an operator would, and returns its output.
func adminCLI(t *testing.T, g *process, command string) string {
	t.Helper()
	dir := filepath.Dir(g.config)
	out, err := exec.Command(filepath.Join(bin, "guichet"), append([]string{"admin", "--config", g.config, "--data", dir}, strings.Fields(command)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("guichet admin %s: %v\n%s", command, err, out)
	}
	return string(out)
}

var keyPattern = regexp.MustCompile(`sk-[0-9A-Za-z]{43}`)

// TestOperatorCLIAgainstARunningServer: an operator creates a role, a
// user and a key with `guichet admin` while guichet runs (embedded, same
// SQLite file); the user calls with the OpenAI SDK, meets its limit and
// its budget as SDK errors; a revocation from the CLI takes effect.
func TestOperatorCLIAgainstARunningServer(t *testing.T) {
	sim := startSim(t, "--model", "m", "--output-tokens", "10")
	g := startGuichet(t, "models:\n  - name: chat\n    type: text-generation\n    costs: {prompt_tokens: 1000, completion_tokens: 1000}\n    providers:\n"+provider("vllm", sim, "m"))
	adminCLI(t, g, "role create agents --limit chat:rpm=2 --limit *:concurrent=4")
	adminCLI(t, g, "user create alice@example.org --role agents --budget 0.1")
	key := keyPattern.FindString(adminCLI(t, g, "key create alice@example.org --name sdk"))
	if key == "" {
		t.Fatal("guichet admin key create printed no key")
	}
	c := client(g, option.WithAPIKey(key))
	chat := func() error {
		_, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
			Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
			MaxTokens: openai.Int(10),
		})
		return err
	}
	// The server sees the new key at once (an unknown key is looked up).
	for i := 0; i < 2; i++ {
		if err := chat(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var apiErr *openai.Error
	if err := chat(); !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("third request against rpm=2: %v", err)
	}

	// The budget: 0.1 at 1000 per million tokens is about 5 requests of
	// ~20 tokens. A role without the rpm limit shows it running out.
	adminCLI(t, g, "role create spenders --limit *:rpm=null")
	adminCLI(t, g, "user create bob@example.org --role spenders --budget 0.05")
	bobKey := keyPattern.FindString(adminCLI(t, g, "key create bob@example.org"))
	bob := client(g, option.WithAPIKey(bobKey))
	var served int
	for ; served < 20; served++ {
		_, err := bob.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
			Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}, MaxTokens: openai.Int(10),
		})
		if errors.As(err, &apiErr) && apiErr.StatusCode == 402 && apiErr.Code == "insufficient_budget" {
			break
		}
		if err != nil {
			t.Fatalf("bob's request %d: %v", served, err)
		}
	}
	if served == 0 || served == 20 {
		t.Fatalf("bob was served %d requests on a budget of 0.05", served)
	}

	// Revoked from the CLI: refused within a second or so (the server
	// polls the store's version every second).
	ids := regexp.MustCompile(`(?m)^(\d+)\s+\d+\s+sdk\s`).FindStringSubmatch(adminCLI(t, g, "keys alice@example.org"))
	if ids == nil {
		t.Fatal("the key is not listed")
	}
	adminCLI(t, g, "key revoke "+ids[1])
	revoked := time.Now()
	for {
		err := chat()
		if errors.As(err, &apiErr) && apiErr.StatusCode == 401 {
			break
		}
		if time.Since(revoked) > 3*time.Second {
			t.Fatalf("a key revoked with the CLI still works after %s: %v", time.Since(revoked), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
