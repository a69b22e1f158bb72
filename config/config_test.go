package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestOpenGateLLMConfigLoadsUnchanged(t *testing.T) {
	data, err := os.ReadFile("testdata/opengatellm.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("opengatellm.yml", data, env(map[string]string{"VLLM_API_KEY": "sk-vllm-secret", "POSTGRES_HOST": "db"}))
	if err != nil {
		t.Fatalf("OpenGateLLM config rejected:\n%v", err)
	}
	if cfg.Format != "opengatellm" {
		t.Errorf("format = %q, want opengatellm", cfg.Format)
	}
	large := cfg.Model("mistralai/Mistral-Small-3.1-24B-Instruct-2503")
	if large == nil || large.Name != "albert-large" {
		t.Fatalf("alias lookup failed: %+v", large)
	}
	if large.Routing.Strategy != StrategyRoundRobin {
		t.Errorf("routing_strategy not mapped: %q", large.Routing.Strategy)
	}
	// OpenGateLLM bills the highest provider price.
	if large.Costs.PromptTokens != 0.2 || large.Costs.CompletionTokens != 0.8 {
		t.Errorf("costs = %+v, want max over providers {0.2 0.8}", *large.Costs)
	}
	if large.Carbon.Zone != "FRA" || large.Carbon.TotalParams != 24 || large.Carbon.ActiveParams != 24 {
		t.Errorf("carbon = %+v", *large.Carbon)
	}
	vllm, oai := large.Providers[0], large.Providers[1]
	if vllm.Timeouts.Total.D() != 120*time.Second {
		t.Errorf("timeout: 120 (seconds) read as %v", vllm.Timeouts.Total.D())
	}
	if vllm.Key.Value() != "sk-vllm-secret" || vllm.Key.String() == "sk-vllm-secret" {
		t.Errorf("key not substituted or not redacted: %q / %s", vllm.Key.Value(), vllm.Key)
	}
	if oai.URL != "https://api.openai.com" || oai.Key.Value() != "sk-not-set" {
		t.Errorf("openai defaults: url %q key %q", oai.URL, oai.Key.Value())
	}
	emb := cfg.Model("embeddings-small")
	if emb.Carbon.ActiveParams != 0.5 {
		t.Errorf("active params not filled from total: %+v", *emb.Carbon)
	}
	if cfg.RAG.EmbeddingModel != "embeddings-small" {
		t.Errorf("vector_store_model not mapped: %q", cfg.RAG.EmbeddingModel)
	}
	if cfg.Storage.Postgres != "postgresql://postgres:changeme@db:5432/api" {
		t.Errorf("postgres url = %q", cfg.Storage.Postgres)
	}
	if !strings.HasPrefix(cfg.Storage.Redis, "redis://:changeme@localhost:6379") {
		t.Errorf("redis url = %q", cfg.Storage.Redis)
	}
	if !cfg.Storage.Cluster() {
		t.Error("dependencies.postgres/redis should mean cluster mode")
	}
	// Keys with no meaning in guichet are listed once, by path.
	var warning string
	for _, w := range cfg.Warnings {
		if strings.Contains(w, "ignored") {
			warning = w
		}
	}
	for _, key := range []string{"dependencies.postgres.pool_size", "dependencies.elasticsearch", "settings.swagger_title", "settings.log_level"} {
		if !strings.Contains(warning, key) {
			t.Errorf("warning %q does not list %s", warning, key)
		}
	}
	if strings.Contains(warning, "vector_store_model") || strings.Contains(warning, "routing_strategy") {
		t.Errorf("warning lists keys guichet uses: %q", warning)
	}
}

func TestTyposAreRejectedWithPathAndHint(t *testing.T) {
	src := `
server:
  listen: 127.0.0.1:9000
models:
  - name: chat
    type: text-generation
    providers:
      - type: vllm
        url: http://127.0.0.1:8000
        tiemout: 30
        weight: heavy
  - name: chat
    type: text-genration
    routing: {strategy: fastest}
    providers: []
`
	_, err := Parse("typo.yml", []byte(src), env(nil))
	if err == nil {
		t.Fatal("a config with typos was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "models[0].providers[0].tiemout (line 10)") || !strings.Contains(msg, `did you mean "timeout"`) {
		t.Errorf("unknown key not reported with path, line and hint:\n%s", msg)
	}
	if !strings.Contains(msg, "models[0].providers[0].weight") || !strings.Contains(msg, `"heavy" is not a number`) {
		t.Errorf("type error not reported with its path:\n%s", msg)
	}

	fixed := strings.Replace(strings.Replace(src, "tiemout", "timeout", 1), "heavy", "2", 1)
	_, err = Parse("typo.yml", []byte(fixed), env(nil))
	if err == nil {
		t.Fatal("semantic errors accepted")
	}
	msg = err.Error()
	for _, want := range []string{
		`models[1].name: "chat" is already used at models[0].name`,
		`models[1].type: "text-genration" is not a model type`,
		`models[1].routing.strategy: "fastest" is not a routing strategy`,
		`models[1].providers: a model needs at least one provider`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing problem %q in:\n%s", want, msg)
		}
	}
}

func TestEnvSubstitution(t *testing.T) {
	src := `
# a comment with ${NOT_EXPANDED} stays a comment
models:
  - name: ${MODEL_NAME:-fallback-name}
    type: text-generation
    providers:
      - type: vllm
        url: ${VLLM_URL}
        key: ${EMPTY_KEY:-from-default}
        model_name: ${UNSET_NAME}
`
	cfg, err := Parse("env.yml", []byte(src), env(map[string]string{"VLLM_URL": "http://gpu-1:8000/", "EMPTY_KEY": ""}))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Models[0]
	if m.Name != "fallback-name" {
		t.Errorf("default not used: %q", m.Name)
	}
	p := m.Providers[0]
	if p.URL != "http://gpu-1:8000" {
		t.Errorf("url = %q", p.URL)
	}
	if p.Key.Value() != "from-default" {
		t.Errorf("empty variable should count as unset: %q", p.Key.Value())
	}
	if p.ModelName != "fallback-name" {
		t.Errorf("unset model_name should default to the model's name: %q", p.ModelName)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "UNSET_NAME") || strings.Contains(cfg.Warnings[0], "NOT_EXPANDED") {
		t.Errorf("warnings = %q", cfg.Warnings)
	}
}

func TestFallbacksAndEmbeddingModelAreChecked(t *testing.T) {
	src := `
models:
  - name: chat
    type: text-generation
    fallbacks: [embed, ghost, chat]
    providers: [{type: vllm, url: "http://a:1"}]
  - name: embed
    type: text-embeddings-inference
    providers: [{type: tei, url: "http://b:1"}, {type: tei}]
rag:
  embedding_model: chat
`
	_, err := Parse("fb.yml", []byte(src), env(nil))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"models[0].fallbacks[0]: \"embed\" is a text-embeddings-inference model",
		"models[0].fallbacks[1]: no model is named \"ghost\"",
		"models[0].fallbacks[2]: a model cannot fall back to itself",
		"models[1].providers[1].url: a tei provider needs a url",
		"rag.embedding_model: \"chat\" is a text-generation model",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadExample()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ExampleModels {
		if cfg.Model(name) == nil {
			t.Errorf("example lacks %s", name)
		}
	}
	if cfg.Format != "guichet" || len(cfg.Warnings) != 0 {
		t.Errorf("format %q warnings %q", cfg.Format, cfg.Warnings)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	s := Secret("sk-very-secret")
	for _, out := range []string{s.String(), s.GoString()} {
		if strings.Contains(out, "very-secret") {
			t.Errorf("secret printed: %s", out)
		}
	}
	b, _ := s.MarshalJSON()
	if strings.Contains(string(b), "very-secret") {
		t.Errorf("secret marshalled: %s", b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("models:\n  - name: a\n    type: text-generation\n    providers: [{type: vllm, url: 'http://x:1'}]\n"))
	f.Add([]byte("settings: {x: 1}\nmodels: []\n"))
	f.Add([]byte("models: [{name: ${A:-b}, fallbacks: [a]}]"))
	f.Add([]byte("- 1\n- 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yml", data, env(nil))
		if err == nil && len(cfg.Models) == 0 {
			t.Fatal("a config without models was accepted")
		}
	})
}

func TestUnknownKeysAndBadValuesAreReportedTogether(t *testing.T) {
	src := `
models:
  - name: chat
    type: text-generation
    fallback: [other]
    providers: [{type: vllm}]
`
	_, err := Parse("both.yml", []byte(src), env(nil))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`models[0].fallback (line 5): unknown key "fallback"; did you mean "fallbacks"?`, "models[0].providers[0].url: a vllm provider needs a url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestCarbonZoneMustHaveAMix(t *testing.T) {
	_, err := Parse("t.yml", []byte(`
models:
  - name: m
    type: text-generation
    carbon: {total_params: 8, zone: ATL}
    providers: [{type: vllm, url: "http://x"}]
`), func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), `models[0].carbon.zone: no electricity mix for zone "ATL"`) || !strings.Contains(err.Error(), "FRA") {
		t.Fatalf("unknown zone: %v", err)
	}
}
