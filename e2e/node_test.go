package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// TestNodeSDK runs e2e/node/check.mjs: the openai npm client against
// guichet, and a validation of /openapi.json against OpenAPI 3.1.
func TestNodeSDK(t *testing.T) {
	if _, err := os.Stat("node/node_modules/openai"); err != nil {
		if os.Getenv("GUICHET_REQUIRE_ALL") != "" {
			t.Fatal("e2e/node/node_modules is missing: the test script runs npm ci there")
		}
		t.Skip("e2e/node/node_modules missing: run ./test (it runs npm ci) to include the Node check")
	}
	sim := startSim(t, "--model", "m")
	g := startGuichet(t, `
models:
  - name: chat
    type: text-generation
    providers:
`+provider("vllm", sim, "m")+`
  - name: embed
    type: text-embeddings-inference
    providers:
`+provider("vllm", sim, "m"))
	out, err := exec.Command("node", "node/check.mjs", g.URL(), masterKey).CombinedOutput()
	if err != nil {
		t.Fatalf("node check failed: %v\n%s", err, out)
	}
}
