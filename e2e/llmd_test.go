package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// startLLMD starts llm-d-inference-sim, the vLLM simulator of the llm-d
// project, to check guichet against a second, independent rendering of
// vLLM's wire format. The binary is built by the test script from
// tools/llmdsim; its path comes in GUICHET_LLMD_SIM.
func startLLMD(t *testing.T) string {
	path := os.Getenv("GUICHET_LLMD_SIM")
	if path == "" {
		if os.Getenv("GUICHET_REQUIRE_ALL") != "" {
			t.Fatal("GUICHET_LLMD_SIM is not set: the test script builds llm-d-inference-sim and sets it")
		}
		t.Skip("GUICHET_LLMD_SIM not set: run ./test to build llm-d-inference-sim and include this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(path, "--model", "llmd-model", "--served-model-name", "llmd-model",
		"--port", strconv.Itoa(port), "--force-dummy-tokenizer", "--mode", "echo",
		"--time-to-first-token", "10ms", "--inter-token-latency", "1ms", "--max-model-len", "4096")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, "llm-d-inference-sim to start", 30*time.Second, func() bool {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return url
}

func TestAgainstLLMDInferenceSim(t *testing.T) {
	url := startLLMD(t)
	g := startGuichet(t, `
models:
  - name: chat
    type: text-generation
    providers:
      - type: vllm
        url: `+url+`
        model_name: llmd-model
`)
	c := client(g)
	var m struct {
		MaxContextLength int `json:"max_context_length"`
	}
	getJSON(t, g.URL()+"/v1/models/chat", masterKey, &m)
	if m.MaxContextLength != 4096 {
		t.Errorf("max_context_length from llm-d's /v1/models = %d, want 4096", m.MaxContextLength)
	}

	resp, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
		Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("echo this back")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Choices[0].Message.Content, "echo this back") || resp.Usage.CompletionTokens == 0 {
		t.Errorf("non-streamed: %q, usage %+v", resp.Choices[0].Message.Content, resp.Usage)
	}

	stream := c.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
		Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream this back")},
	})
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(acc.Choices[0].Message.Content, "stream this back") {
		t.Errorf("streamed content %q", acc.Choices[0].Message.Content)
	}
	// guichet asked llm-d for include_usage: its usage chunk came through.
	if acc.Usage.CompletionTokens == 0 || acc.Usage.PromptTokens == 0 {
		t.Errorf("no usage from llm-d's stream: %+v", acc.Usage)
	}

	comp, err := c.Completions.New(ctx(t), openai.CompletionNewParams{
		Model: "chat", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("complete me")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.Choices) == 0 || comp.Choices[0].Text == "" {
		t.Errorf("completion: %+v", comp)
	}
}
