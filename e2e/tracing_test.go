package e2e

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestTracesFollowTheJourney: with tracing.endpoint set, a chat request
// is one server span continuing the client's traceparent, with a child
// per step and an attempt span whose context reaches the model server;
// no key and no content is exported. Spans are flushed at SIGTERM.
func TestTracesFollowTheJourney(t *testing.T) {
	var mu sync.Mutex
	var spans []*tracepb.Span
	var raw bytes.Buffer
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collector.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("collector got %s %s (%d bytes) it cannot read", r.Method, r.URL.Path, len(body))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		raw.Write(body)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil)
	}))
	defer otlp.Close()

	sim := startSim(t, "--model", "m")
	g := startGuichet(t, "tracing: {endpoint: \""+otlp.URL+"\"}\nmodels:\n  - name: chat\n    type: text-generation\n    providers:\n"+provider("vllm", sim, "m"))
	adminCLI(t, g, "role create users --limit *:rpm=null")
	adminCLI(t, g, "user create tracy@example.org --role users")
	key := keyPattern.FindString(adminCLI(t, g, "key create tracy@example.org"))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	secret := "le secret de la question"
	c := client(g, option.WithAPIKey(key), option.WithHeader("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"))
	if _, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
		Model: "chat", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(secret)},
	}); err != nil {
		t.Fatal(err)
	}
	var last struct {
		Headers map[string]string `json:"headers"`
	}
	getJSON(t, sim.URL()+"/sim/last-request", "", &last)

	g.cmd.Process.Signal(syscall.SIGTERM)
	g.cmd.Wait()
	mu.Lock()
	defer mu.Unlock()

	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			byName[s.Name] = s
		}
	}
	root := byName["POST /v1/chat/completions"]
	if root == nil {
		t.Fatalf("no server span in the client's trace; spans: %v", names(spans))
	}
	if hex.EncodeToString(root.ParentSpanId) != "00f067aa0ba902b7" || root.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("server span: parent %x kind %v", root.ParentSpanId, root.Kind)
	}
	for _, step := range []string{"authenticate", "decode", "admit", "send", "respond", "settle"} {
		s := byName[step]
		if s == nil {
			t.Errorf("no %s span; spans: %v", step, names(spans))
			continue
		}
		if step != "authenticate" && !bytes.Equal(s.ParentSpanId, root.SpanId) {
			t.Errorf("%s is not a child of the request span", step)
		}
	}
	attempt := byName["attempt"]
	if attempt == nil || byName["send"] == nil || !bytes.Equal(attempt.ParentSpanId, byName["send"].SpanId) {
		t.Fatalf("no attempt span under send; spans: %v", names(spans))
	}
	// The model server got the attempt's context: its logs join the trace.
	if want := "00-" + traceID + "-" + hex.EncodeToString(attempt.SpanId) + "-01"; last.Headers["Traceparent"] != want {
		t.Errorf("traceparent sent upstream %q, want %q", last.Headers["Traceparent"], want)
	}
	attrs := map[string]string{}
	for _, a := range root.Attributes {
		attrs[a.Key] = a.Value.String()
	}
	for _, k := range []string{"gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "guichet.user.id", "http.response.status_code"} {
		if attrs[k] == "" {
			t.Errorf("request span lacks %s: %v", k, attrs)
		}
	}
	for _, leak := range []string{key, key[len(key)-20:], secret, masterKey} {
		if bytes.Contains(raw.Bytes(), []byte(leak)) {
			t.Errorf("exported spans contain %q", leak)
		}
	}
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
