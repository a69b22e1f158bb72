package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// oneSimConfig serves every kind of model from one vLLM simulator, plus
// two TEI simulators (a TEI server serves one model).
func oneSimConfig(sim, teiEmbed, teiRerank *process) string {
	return `
models:
  - name: chat
    type: text-generation
    aliases: [mistralai/Mistral-Small-3.1-24B-Instruct-2503]
    costs: {prompt_tokens: 1, completion_tokens: 2}
    providers:
` + provider("vllm", sim, "sim-chat") + `
  - name: embed
    type: text-embeddings-inference
    providers:
` + provider("tei", teiEmbed, "sim-embed") + provider("vllm", sim, "sim-embed") + `
  - name: rerank-tei
    type: text-classification
    providers:
` + provider("tei", teiRerank, "sim-rerank") + `
  - name: rerank-vllm
    type: text-classification
    providers:
` + provider("vllm", sim, "sim-rerank") + `
  - name: whisper
    type: automatic-speech-recognition
    providers:
` + provider("vllm", sim, "sim-whisper")
}

func startOneSim(t *testing.T) (*process, *process) {
	sim := startSim(t, "--model", "sim-chat,sim-embed,sim-rerank,sim-whisper", "--output-tokens", "12", "--max-model-len", "2048")
	teiEmbed := startSim(t, "--model", "sim-embed")
	teiRerank := startSim(t, "--model", "sim-rerank")
	g := startGuichet(t, oneSimConfig(sim, teiEmbed, teiRerank))
	return sim, g
}

func TestChatWithTheOpenAISDK(t *testing.T) {
	_, g := startOneSim(t)
	c := client(g)

	t.Run("non-streamed", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Bonjour, qui es-tu ?")},
		})
		if err != nil {
			t.Fatal(err)
		}
		content := resp.Choices[0].Message.Content
		if !strings.HasPrefix(content, "guichet-sim simulated answer:") {
			t.Errorf("answer not labelled as simulated: %q", content)
		}
		if resp.Usage.CompletionTokens != 12 || resp.Usage.PromptTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+12 {
			t.Errorf("usage = %+v", resp.Usage)
		}
	})

	t.Run("streamed, by alias with a slash", func(t *testing.T) {
		stream := c.Chat.Completions.NewStreaming(ctx(t), openai.ChatCompletionNewParams{
			Model:    "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Raconte une histoire")},
		})
		acc := openai.ChatCompletionAccumulator{}
		chunks, sawUsage := 0, false
		for stream.Next() {
			ch := stream.Current()
			acc.AddChunk(ch)
			chunks++
			if ch.Usage.TotalTokens > 0 {
				sawUsage = true
				if len(ch.Choices) != 0 {
					t.Errorf("usage chunk carries choices: %+v", ch.Choices)
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		// The client did not ask for include_usage: guichet sends it anyway.
		if !sawUsage {
			t.Error("stream did not end with a usage chunk")
		}
		if acc.Usage.CompletionTokens != 12 {
			t.Errorf("usage = %+v", acc.Usage)
		}
		if !strings.HasPrefix(acc.Choices[0].Message.Content, "guichet-sim simulated answer:") || chunks < 12 {
			t.Errorf("content %q in %d chunks", acc.Choices[0].Message.Content, chunks)
		}
	})

	t.Run("tools round trip", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{
			Model:    "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Quel temps fait-il à Lyon ?")},
			Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name:        "get_weather",
				Description: openai.String("Weather of a city"),
				Parameters: shared.FunctionParameters{
					"type":       "object",
					"properties": map[string]any{"city": map[string]any{"type": "string"}},
					"required":   []string{"city"},
				},
			})},
		}
		resp, err := c.Chat.Completions.New(ctx(t), params)
		if err != nil {
			t.Fatal(err)
		}
		msg := resp.Choices[0].Message
		if resp.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" {
			t.Fatalf("no tool call: %+v", resp.Choices[0])
		}
		var args map[string]any
		if err := json.Unmarshal([]byte(msg.ToolCalls[0].Function.Arguments), &args); err != nil || args["city"] == nil {
			t.Fatalf("arguments %q: %v", msg.ToolCalls[0].Function.Arguments, err)
		}
		params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage("12°C, nuageux", msg.ToolCalls[0].ID))
		resp, err = c.Chat.Completions.New(ctx(t), params)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Choices[0].Message.Content, "12°C, nuageux") {
			t.Errorf("tool result not used: %q", resp.Choices[0].Message.Content)
		}
	})

	t.Run("multimodal and json mode", func(t *testing.T) {
		resp, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
			Model: "chat",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
				openai.TextContentPart("Décris l'image"),
				openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,iVBORw0KGgo="}),
			})},
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
			N:              openai.Int(2),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 2 {
			t.Fatalf("n=2 gave %d choices", len(resp.Choices))
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(resp.Choices[1].Message.Content), &v); err != nil {
			t.Errorf("json mode answer is not JSON: %q", resp.Choices[1].Message.Content)
		}
	})
}

func TestEmbeddingsRerankTranscription(t *testing.T) {
	_, g := startOneSim(t)
	c := client(g)

	resp, err := c.Embeddings.New(ctx(t), openai.EmbeddingNewParams{
		Model: "embed",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"le chat dort", "le chat dort sur le canapé"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || len(resp.Data[0].Embedding) != 384 {
		t.Fatalf("embeddings: %d vectors of %d", len(resp.Data), len(resp.Data[0].Embedding))
	}
	// base64 (what the Python SDK asks for by default) decodes to the same.
	raw := postJSON(t, g, "/v1/embeddings", `{"model":"embed","input":"le chat dort","encoding_format":"base64"}`, http.StatusOK)
	var b64 struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	json.Unmarshal(raw, &b64)
	bs, _ := base64.StdEncoding.DecodeString(b64.Data[0].Embedding)
	if len(bs) != 384*4 || math.Abs(float64(math.Float32frombits(binary.LittleEndian.Uint32(bs)))-resp.Data[0].Embedding[0]) > 1e-6 {
		t.Errorf("base64 embedding differs from the float one")
	}
	postJSON(t, g, "/v1/embeddings", `{"model":"embed","input":[[12,15,99]],"dimensions":64}`, http.StatusOK)

	for _, model := range []string{"rerank-tei", "rerank-vllm"} {
		raw := postJSON(t, g, "/v1/rerank", `{"model":"`+model+`","query":"chat","documents":["un chien","le chat noir","une voiture"],"top_n":2}`, http.StatusOK)
		var rr struct {
			Model   string `json:"model"`
			Results []struct {
				Index int     `json:"index"`
				Score float64 `json:"relevance_score"`
			} `json:"results"`
		}
		json.Unmarshal(raw, &rr)
		if len(rr.Results) != 2 || rr.Results[0].Index != 1 || rr.Results[0].Score < rr.Results[1].Score {
			t.Errorf("%s: rerank results %s", model, raw)
		}
	}
	legacy := postJSON(t, g, "/v1/rerank", `{"model":"rerank-tei","prompt":"chat","input":["un chien","le chat noir"]}`, http.StatusOK)
	if !bytes.Contains(legacy, []byte(`"object":"rerank"`)) || !bytes.Contains(legacy, []byte(`"score"`)) {
		t.Errorf("legacy rerank shape: %s", legacy)
	}

	tr, err := c.Audio.Transcriptions.New(ctx(t), openai.AudioTranscriptionNewParams{
		Model: "whisper",
		File:  openai.File(bytes.NewReader(bytes.Repeat([]byte{1}, 64000)), "speech.mp3", "audio/mpeg"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tr.Text, "64000 bytes") {
		t.Errorf("transcription %q: the file did not reach the model server whole", tr.Text)
	}
	for _, format := range []string{"text", "srt", "vtt", "verbose_json"} {
		body, ct := multipartBody(t, map[string]string{"model": "whisper", "response_format": format}, 1000)
		resp := post(t, g, "/v1/audio/transcriptions", ct, body)
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", format, resp.StatusCode)
		}
		resp.Body.Close()
	}
}

func TestModelsEndpoint(t *testing.T) {
	_, g := startOneSim(t)
	c := client(g)
	page, err := c.Models.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 5 {
		t.Fatalf("%d models", len(page.Data))
	}
	var m struct {
		ID               string                                           `json:"id"`
		Type             string                                           `json:"type"`
		Aliases          []string                                         `json:"aliases"`
		MaxContextLength int                                              `json:"max_context_length"`
		Costs            struct{ PromptTokens, CompletionTokens float64 } `json:"costs"`
	}
	getJSON(t, g.URL()+"/v1/models/mistralai/Mistral-Small-3.1-24B-Instruct-2503", masterKey, &m)
	if m.ID != "chat" || m.Type != "text-generation" || m.MaxContextLength != 2048 || len(m.Aliases) != 1 {
		t.Errorf("model = %+v", m)
	}
	raw, _ := json.Marshal(page)
	if strings.Contains(string(raw), "127.0.0.1") {
		t.Error("/v1/models reveals provider URLs")
	}
}

func TestErrorsMapToTheSDKsTypes(t *testing.T) {
	_, g := startOneSim(t)
	c := client(g)
	chat := func(c openai.Client, model string) error {
		_, err := c.Chat.Completions.New(ctx(t), openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
		})
		return err
	}
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"unknown model", chat(c, "gpt-99"), 404, "model_not_found"},
		{"wrong model type", chat(c, "embed"), 422, "wrong_model_type"},
		{"bad key", chat(client(g, option.WithAPIKey("sk-wrong")), "chat"), 401, "invalid_api_key"},
	}
	for _, tc := range cases {
		var apiErr *openai.Error
		if !errors.As(tc.err, &apiErr) {
			t.Errorf("%s: %v is not an *openai.Error", tc.name, tc.err)
			continue
		}
		if apiErr.StatusCode != tc.status || apiErr.Code != tc.code || apiErr.Message == "" {
			t.Errorf("%s: status %d code %q message %q", tc.name, apiErr.StatusCode, apiErr.Code, apiErr.Message)
		}
	}

	// Raw HTTP: what the SDK cannot send.
	for _, tc := range []struct {
		body, want string
		status     int
	}{
		{`{"model":"chat","messages":[`, "not valid JSON", 400},
		{`[1,2]`, "must be a JSON object", 400},
		{`{"model":"chat"}`, "messages: is required", 422},
		{`{"model":"chat","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role", 422},
		{`{"model":"chat","messages":[{"role":"user","content":"x"}],"temperature":7}`, "temperature: must be between 0 and 2", 422},
		{`{"model":"chat","messages":[{"role":"user","content":"x"}],"n":"two"}`, "n: must be a whole number", 422},
	} {
		raw := postJSON(t, g, "/v1/chat/completions", tc.body, tc.status)
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
			Detail string `json:"detail"`
		}
		json.Unmarshal(raw, &e)
		if !strings.Contains(e.Error.Message, tc.want) || e.Detail != e.Error.Message {
			t.Errorf("%s → %s (want %q in message and detail)", tc.body, raw, tc.want)
		}
	}
	big := `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 17<<20) + `"}]}`
	postJSON(t, g, "/v1/chat/completions", big, http.StatusRequestEntityTooLarge)

	// A prompt longer than the context: the upstream's 400 comes through.
	long := `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("mot ", 3000) + `"}]}`
	raw := postJSON(t, g, "/v1/chat/completions", long, http.StatusBadRequest)
	if !bytes.Contains(raw, []byte("context")) {
		t.Errorf("upstream 400 not passed through: %s", raw)
	}
	// Missing key, public endpoints.
	resp := post(t, g, "/v1/chat/completions", "application/json", strings.NewReader(`{}`), "")
	if resp.StatusCode != 401 {
		t.Errorf("no key: %d", resp.StatusCode)
	}
	resp.Body.Close()
	for _, path := range []string{"/health", "/ready", "/openapi.json", "/docs/"} {
		r, err := http.Get(g.URL() + path)
		if err != nil || r.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", path, err, r.StatusCode)
		}
		r.Body.Close()
	}
}

func TestUnknownFieldsReachTheModelServerByteExact(t *testing.T) {
	sim, g := startOneSim(t)
	body := `{"model":"chat","messages":[{"role":"user","content":"hi"}],"guided_json":{"type":"object","properties":{"a":{"type":"integer"}}},"min_tokens":3,"chat_template_kwargs":{"enable_thinking":false},"top_k":  40}`
	postJSON(t, g, "/v1/chat/completions", body, http.StatusOK)
	var last struct {
		Body string `json:"body"`
	}
	getJSON(t, sim.URL()+"/sim/last-request", "", &last)
	for _, want := range []string{
		`"model":"sim-chat"`,
		`"guided_json":{"type":"object","properties":{"a":{"type":"integer"}}}`,
		`"min_tokens":3`,
		`"chat_template_kwargs":{"enable_thinking":false}`,
		`"top_k":40`, // a value keeps its bytes, the space after the colon is the scanner's
	} {
		if !strings.Contains(last.Body, want) && !(want == `"top_k":40` && strings.Contains(last.Body, `"top_k":  40`)) {
			t.Errorf("upstream body lacks %s:\n%s", want, last.Body)
		}
	}
	// Streams ask upstream for usage, keeping the client's other options.
	stream := post(t, g, "/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"chat","stream":true,"stream_options":{"continuous_usage_stats":true},"messages":[{"role":"user","content":"hi"}]}`))
	io.Copy(io.Discard, stream.Body)
	stream.Body.Close()
	getJSON(t, sim.URL()+"/sim/last-request", "", &last)
	if !strings.Contains(last.Body, `"stream_options":{"continuous_usage_stats":true,"include_usage":true}`) {
		t.Errorf("stream_options not merged: %s", last.Body)
	}
}

func post(t *testing.T, g *process, path, contentType string, body io.Reader, key ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.URL()+path, body)
	req.Header.Set("Content-Type", contentType)
	k := masterKey
	if len(key) > 0 {
		k = key[0]
	}
	if k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func postJSON(t *testing.T, g *process, path, body string, status int) []byte {
	t.Helper()
	resp := post(t, g, path, "application/json", strings.NewReader(body))
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Errorf("POST %s: status %d, want %d: %.300s", path, resp.StatusCode, status, raw)
	}
	return raw
}

func multipartBody(t *testing.T, fields map[string]string, fileBytes int) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "audio.wav")
	fw.Write(bytes.Repeat([]byte{0}, fileBytes))
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestSecretsStayOutOfLogsAndAnswers(t *testing.T) {
	const providerKey = "sk-provider-secret-never-shown-7f3a"
	sim := startSim(t, "--model", "m")
	g := startGuichet(t, `
models:
  - name: chat
    type: text-generation
    providers:
`+provider("vllm", sim, "m", "key: "+providerKey)+`
      - type: vllm
        url: http://user:url-password-9c1e@127.0.0.1:1
        model_name: m
`)
	postJSON(t, g, "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"x"}]}`, http.StatusOK)
	var last struct {
		Headers map[string]string `json:"headers"`
	}
	getJSON(t, sim.URL()+"/sim/last-request", "", &last)
	if last.Headers["Authorization"] != "Bearer "+providerKey {
		t.Errorf("the provider key did not reach the provider: %q", last.Headers["Authorization"])
	}
	var models, ready json.RawMessage
	getJSON(t, g.URL()+"/v1/models", masterKey, &models)
	getJSON(t, g.URL()+"/ready", "", &ready)
	for where, text := range map[string]string{"logs": g.Logs(), "/v1/models": string(models), "/ready": string(ready)} {
		for _, secret := range []string{providerKey, "url-password-9c1e", masterKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain a secret: %s", where, secret)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	_, g := startOneSim(t)
	postJSON(t, g, "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"x"}]}`, http.StatusOK)
	postJSON(t, g, "/v1/chat/completions", `{"model":"ghost","messages":[{"role":"user","content":"x"}]}`, http.StatusNotFound)
	postJSON(t, g, "/v1/chat/completions", `{"model":"chat","stream":true,"messages":[{"role":"user","content":"x"}]}`, http.StatusOK)
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/metrics", nil)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a key: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+masterKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="chat#0",gen_ai_request_model="chat",http_response_status_code="200"} 2`,
		// no label per made-up name
		`gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="",gen_ai_request_model="",http_response_status_code="404"} 1`,
		`gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="chat#0",gen_ai_request_model="chat",gen_ai_token_type="output"} 24`,
		`gen_ai_server_time_to_first_token_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="chat#0",gen_ai_request_model="chat"} 1`,
		`gen_ai_server_time_per_output_token_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="chat#0",gen_ai_request_model="chat"} 1`,
		`guichet_provider_up{model="chat",provider="chat#0"} 1`,
		`guichet_provider_requests_in_flight{model="chat",provider="chat#0"} 0`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
