package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/carbon"
)

// Defaults for what a file leaves out.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDataDir         = "./data"
	DefaultMaxBodyBytes    = 16 << 20
	DefaultMaxUploadBytes  = 20 << 20
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultReserveMaxTokens is the completion a budget reserves when a
	// request sets no max_tokens and the context length is unknown.
	DefaultReserveMaxTokens = 4096
	DefaultMaxAttempts      = 3
	DefaultRetryWindow      = 30 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultTotalTimeout     = 300 * time.Second
)

// Routing strategies.
const (
	StrategyShuffle        = "shuffle"
	StrategyRoundRobin     = "round_robin"
	StrategyLeastInflight  = "least_inflight"
	StrategyPrefixAffinity = "prefix_affinity"
)

var strategies = []string{StrategyShuffle, StrategyRoundRobin, StrategyLeastInflight, StrategyPrefixAffinity}

// defaultURLs of providers that have a public endpoint.
var defaultURLs = map[guichet.ProviderType]string{
	guichet.ProviderOpenAI:  "https://api.openai.com",
	guichet.ProviderMistral: "https://api.mistral.ai",
	guichet.ProviderAlbert:  "https://albert.api.etalab.gouv.fr",
}

// providerServes is which model types each provider type can serve.
var providerServes = map[guichet.ProviderType][]guichet.ModelType{
	guichet.ProviderVLLM:     guichet.ModelTypes,
	guichet.ProviderTEI:      {guichet.TextEmbeddings, guichet.TextClassification},
	guichet.ProviderOpenAI:   {guichet.TextGeneration, guichet.ImageTextToText, guichet.TextEmbeddings, guichet.SpeechRecognition},
	guichet.ProviderMistral:  {guichet.TextGeneration, guichet.ImageTextToText, guichet.TextEmbeddings, guichet.SpeechRecognition},
	guichet.ProviderAlbert:   guichet.ModelTypes,
	guichet.ProviderLlamaCpp: {guichet.TextGeneration, guichet.ImageTextToText, guichet.TextEmbeddings, guichet.TextClassification},
	guichet.ProviderOllama:   {guichet.TextGeneration, guichet.ImageTextToText, guichet.TextEmbeddings},
}

// normalize applies defaults, maps OpenGateLLM spellings onto guichet's,
// and checks every value. It returns every problem it finds.
func (c *Config) normalize() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}

	c.Server.Listen = orString(c.Server.Listen, DefaultListen)
	c.Server.DataDir = orString(c.Server.DataDir, DefaultDataDir)
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Server.MaxUploadBytes == 0 {
		c.Server.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	}
	c.fromOpenGateLLM()
	c.Storage.RedisPrefix = orString(c.Storage.RedisPrefix, "guichet:")
	c.Limits.OnRedisDown = orString(c.Limits.OnRedisDown, FailClosed)
	if c.Limits.OnRedisDown != FailClosed && c.Limits.OnRedisDown != FailLocal {
		bad("limits.on_redis_down", "want %s or %s, not %q", FailClosed, FailLocal, c.Limits.OnRedisDown)
	}
	if c.Limits.ReserveMaxTokens == 0 {
		c.Limits.ReserveMaxTokens = DefaultReserveMaxTokens
	}
	if c.Limits.ReserveMaxTokens < 0 {
		bad("limits.reserve_max_tokens", "must be a positive number of tokens")
	}
	if c.Ledger.RetentionDays != 0 && c.Ledger.RetentionDays < 31 {
		bad("ledger.retention_days", "must be 0 (keep every line) or at least 31 days (lines are dropped by the month)")
	}
	if r := c.Tracing.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		bad("tracing.sample_ratio", "must be between 0 and 1")
	}
	if e := c.Tracing.Endpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		bad("tracing.endpoint", "must be an http:// or https:// URL of an OTLP/HTTP collector, such as http://collector:4318")
	}
	c.Scheduler.normalize(bad)
	if c.Limits.MaxKeyDays < 0 {
		bad("limits.max_key_days", "must be 0 (no cap) or a number of days")
	}

	if len(c.Models) == 0 {
		bad("models", "at least one model is needed")
	}
	names := map[string]string{} // name or alias → path where it was declared
	claim := func(name, path string) {
		if name == "" || len(name) > 64 {
			bad(path, "a model name or alias needs 1 to 64 characters")
			return
		}
		if prev, dup := names[name]; dup {
			bad(path, "%q is already used at %s: names and aliases must be unique", name, prev)
			return
		}
		names[name] = path
	}
	for i, m := range c.Models {
		p := fmt.Sprintf("models[%d]", i)
		if m == nil {
			bad(p, "empty model entry")
			continue
		}
		claim(m.Name, p+".name")
		for j, a := range m.Aliases {
			claim(a, fmt.Sprintf("%s.aliases[%d]", p, j))
		}
		ps = append(ps, m.normalize(p)...)
	}
	for i, m := range c.Models {
		if m == nil {
			continue
		}
		for j, f := range m.Fallbacks {
			fp := fmt.Sprintf("models[%d].fallbacks[%d]", i, j)
			target := c.Model(f)
			switch {
			case target == nil:
				bad(fp, "no model is named %q", f)
			case target == m:
				bad(fp, "a model cannot fall back to itself")
			case !compatibleTypes(m.Type, target.Type):
				bad(fp, "%q is a %s model; a %s model can only fall back to a model of the same kind", f, target.Type, m.Type)
			}
		}
	}
	if c.RAG.EmbeddingModel != "" {
		if m := c.Model(c.RAG.EmbeddingModel); m == nil {
			bad("rag.embedding_model", "no model is named %q", c.RAG.EmbeddingModel)
		} else if m.Type != string(guichet.TextEmbeddings) {
			bad("rag.embedding_model", "%q is a %s model; the embedding model must be text-embeddings-inference", m.Name, m.Type)
		}
	}
	if c.Storage.Postgres != "" && !strings.HasPrefix(c.Storage.Postgres, "postgres") {
		bad("storage.postgres", "want a postgres:// or postgresql:// URL")
	}
	if c.Storage.Redis != "" && !strings.HasPrefix(c.Storage.Redis, "redis") {
		bad("storage.redis", "want a redis:// or rediss:// URL")
	}
	if c.Storage.Redis != "" && c.Storage.Postgres == "" {
		bad("storage.redis", "cluster mode needs storage.postgres too: replicas share their keys and users there")
	}
	return ps
}

// fromOpenGateLLM maps the dependencies and settings sections.
func (c *Config) fromOpenGateLLM() {
	if d := c.Dependencies; d != nil {
		if d.Postgres != nil && c.Storage.Postgres == "" {
			u := d.Postgres.URL
			u = strings.Replace(u, "postgresql+asyncpg://", "postgresql://", 1)
			c.Storage.Postgres = u
		}
		if r := d.Redis; r != nil && c.Storage.Redis == "" {
			c.Storage.Redis = r.URL
			if r.URL == "" {
				host, port := orString(r.Host, "localhost"), r.Port
				if port == 0 {
					port = 6379
				}
				u := url.URL{Scheme: "redis", Host: fmt.Sprintf("%s:%d", host, port), Path: fmt.Sprintf("/%d", r.DB)}
				if r.Password != "" {
					u.User = url.UserPassword("", r.Password.Value())
				}
				c.Storage.Redis = u.String()
			}
		}
	}
	if s := c.Settings; s != nil && c.RAG.EmbeddingModel == "" {
		c.RAG.EmbeddingModel = s.VectorStoreModel
	}
	if s := c.Settings; s != nil && s.AuthMaxTokenExpirationDays != nil && c.Limits.MaxKeyDays == 0 {
		c.Limits.MaxKeyDays = *s.AuthMaxTokenExpirationDays
	}
}

// MasterKeyFromFile is OpenGateLLM's settings.auth_master_key, if any.
func (c *Config) MasterKeyFromFile() string {
	if c.Settings == nil {
		return ""
	}
	return c.Settings.AuthMasterKey.Value()
}

func (m *Model) normalize(p string) Problems {
	var ps Problems
	bad := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	mt := guichet.ModelType(m.Type)
	if !mt.Valid() {
		bad(p+".type", "%q is not a model type; use one of %s", m.Type, joinTypes(guichet.ModelTypes))
	}
	m.OwnedBy = orString(m.OwnedBy, "guichet")

	// Routing: guichet's routing.strategy, else OpenGateLLM's keys.
	switch {
	case m.Routing.Strategy != "":
	case m.RoutingStrategy != "":
		m.Routing.Strategy = m.RoutingStrategy
	case m.LoadBalancingStrategy == "least_busy":
		m.Routing.Strategy = StrategyLeastInflight
	case m.LoadBalancingStrategy != "":
		m.Routing.Strategy = m.LoadBalancingStrategy
	case mt == guichet.TextGeneration || mt == guichet.ImageTextToText:
		// Chats repeat their prefix turn after turn: send them where it
		// is cached (with a load guard).
		m.Routing.Strategy = StrategyPrefixAffinity
	default:
		m.Routing.Strategy = StrategyShuffle
	}
	if !contains(strategies, m.Routing.Strategy) {
		bad(p+".routing.strategy", "%q is not a routing strategy; use one of %s", m.Routing.Strategy, strings.Join(strategies, ", "))
	}
	if m.Routing.MaxAttempts < 0 {
		bad(p+".routing.max_attempts", "must be 1 or more")
	}
	if m.Routing.MaxAttempts == 0 {
		m.Routing.MaxAttempts = DefaultMaxAttempts
	}
	if m.Routing.RetryWindow == 0 {
		m.Routing.RetryWindow = Duration(DefaultRetryWindow)
	}

	if len(m.Providers) == 0 {
		bad(p+".providers", "a model needs at least one provider")
	}
	for i, pr := range m.Providers {
		pp := fmt.Sprintf("%s.providers[%d]", p, i)
		if pr == nil {
			bad(pp, "empty provider entry")
			continue
		}
		ps = append(ps, pr.normalize(pp, m.Name, mt)...)
	}
	m.resolveCosts()
	m.resolveCarbon(p, bad)
	return ps
}

// resolveCosts: costs:, else the router keys of OpenGateLLM 0.4, else the
// highest per-provider price (OpenGateLLM 0.1 bills the max over providers).
func (m *Model) resolveCosts() {
	if m.Costs != nil {
		return
	}
	c := Costs{}
	if m.CostPromptTokens != nil {
		c.PromptTokens = *m.CostPromptTokens
	}
	if m.CostCompletionTokens != nil {
		c.CompletionTokens = *m.CostCompletionTokens
	}
	for _, pr := range m.Providers {
		if pr == nil {
			continue
		}
		if pr.ModelCostPromptTokens != nil {
			c.PromptTokens = max(c.PromptTokens, *pr.ModelCostPromptTokens)
		}
		if pr.ModelCostCompletionTokens != nil {
			c.CompletionTokens = max(c.CompletionTokens, *pr.ModelCostCompletionTokens)
		}
	}
	m.Costs = &c
}

func (m *Model) resolveCarbon(p string, bad func(string, string, ...any)) {
	if m.Costs.PromptTokens < 0 || m.Costs.CompletionTokens < 0 {
		bad(p+".costs", "prices cannot be negative")
	}
	if m.Carbon == nil {
		c := Carbon{}
		for _, pr := range m.Providers {
			if pr == nil {
				continue
			}
			c.Zone = firstOf(c.Zone, pr.ModelCarbonFootprintZone, pr.ModelHostingZone)
			c.TotalParams = firstNum(c.TotalParams, pr.ModelCarbonFootprintTotalParams, pr.ModelTotalParams)
			c.ActiveParams = firstNum(c.ActiveParams, pr.ModelCarbonFootprintActiveParams, pr.ModelActiveParams)
		}
		m.Carbon = &c
	}
	c := m.Carbon
	// OpenGateLLM fills each parameter count from the other when missing.
	if c.TotalParams == 0 {
		c.TotalParams = c.ActiveParams
	}
	if c.ActiveParams == 0 {
		c.ActiveParams = c.TotalParams
	}
	c.Zone = orString(strings.ToUpper(c.Zone), "WOR")
	if _, ok := carbon.MixOf(c.Zone); !ok {
		bad(p+".carbon.zone", "no electricity mix for zone %q: use one of %s (ISO 3166-1 alpha-3; EUR = EU average, WOR = world)", c.Zone, strings.Join(carbon.Zones(), ", "))
	}
	if c.TotalParams < 0 || c.ActiveParams < 0 || c.ActiveParams > c.TotalParams {
		bad(p+".carbon", "parameter counts must be positive and active_params ≤ total_params")
	}
}

func (pr *Provider) normalize(pp, modelName string, mt guichet.ModelType) Problems {
	var ps Problems
	bad := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	pt := guichet.ProviderType(pr.Type)
	if !pt.Valid() {
		bad(pp+".type", "%q is not a provider type; use one of %s", pr.Type, joinProviderTypes())
	} else if mt.Valid() && !containsType(providerServes[pt], mt) {
		bad(pp+".type", "a %s provider cannot serve a %s model", pt, mt)
	}
	pr.URL = strings.TrimRight(orString(pr.URL, defaultURLs[pt]), "/")
	if pr.URL == "" {
		bad(pp+".url", "a %s provider needs a url, e.g. http://127.0.0.1:8000", pt)
	} else if u, err := url.Parse(pr.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(pp+".url", "%q is not an http:// or https:// URL", pr.URL)
	} else {
		// OpenGateLLM's urls are the domain only; guichet adds /v1 itself.
		pr.URL = strings.TrimSuffix(pr.URL, "/v1")
	}
	pr.ModelName = orString(pr.ModelName, modelName)
	if pr.Weight == nil {
		one := 1.0
		pr.Weight = &one
	} else if *pr.Weight < 0 {
		bad(pp+".weight", "must be 0 or more")
	}
	if pr.MaxConcurrency < 0 {
		bad(pp+".max_concurrency", "must be 0 (no limit) or more")
	}
	if pr.KWhPerToken < 0 || pr.KWhPerToken > 1 {
		bad(pp+".kwh_per_token", "must be a measured energy per output token in kWh, from 0 to 1 (e.g. 0.000002)")
	}
	t := &pr.Timeouts
	if t.Total == 0 {
		t.Total = orDuration(pr.Timeout, Duration(DefaultTotalTimeout))
	}
	t.Connect = orDuration(t.Connect, Duration(DefaultConnectTimeout))
	t.FirstByte = orDuration(t.FirstByte, t.Total)
	t.Idle = orDuration(t.Idle, Duration(DefaultIdleTimeout))
	return ps
}

// Model finds a model by name or alias.
func (c *Config) Model(name string) *Model {
	for _, m := range c.Models {
		if m == nil {
			continue
		}
		if m.Name == name || contains(m.Aliases, name) {
			return m
		}
	}
	return nil
}

// compatibleTypes: chat models may fall back to one another.
func compatibleTypes(a, b string) bool {
	chat := func(t string) bool {
		return t == string(guichet.TextGeneration) || t == string(guichet.ImageTextToText)
	}
	return a == b || (chat(a) && chat(b))
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func orDuration(v, def Duration) Duration {
	if v == 0 {
		return def
	}
	return v
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstNum(cur float64, vals ...*float64) float64 {
	if cur != 0 {
		return cur
	}
	for _, v := range vals {
		if v != nil && *v != 0 {
			return *v
		}
	}
	return 0
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func containsType(list []guichet.ModelType, t guichet.ModelType) bool {
	for _, k := range list {
		if k == t {
			return true
		}
	}
	return false
}

func joinTypes(ts []guichet.ModelType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func joinProviderTypes() string {
	s := make([]string, len(guichet.ProviderTypes))
	for i, t := range guichet.ProviderTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// Scheduler defaults.
const (
	DefaultQueueTimeout       = 30 * time.Second
	DefaultBatchQueueTimeout  = 10 * time.Minute
	DefaultMaxQueuedPerTenant = 1000
	DefaultInteractiveReserve = 0.2
	DefaultOutputWeight       = 2
)

func (s *Scheduler) normalize(bad func(path, format string, args ...any)) {
	if s.QueueTimeout == 0 {
		s.QueueTimeout = Duration(DefaultQueueTimeout)
	}
	if s.BatchQueueTimeout == 0 {
		s.BatchQueueTimeout = Duration(DefaultBatchQueueTimeout)
	}
	if s.QueueTimeout < 0 || s.BatchQueueTimeout < 0 {
		bad("scheduler.queue_timeout", "queue timeouts must be positive durations, such as 30s")
	}
	if s.MaxQueuedPerTenant == 0 {
		s.MaxQueuedPerTenant = DefaultMaxQueuedPerTenant
	}
	if s.MaxQueuedPerTenant < 0 {
		bad("scheduler.max_queued_per_tenant", "must be a positive number of requests")
	}
	if s.InteractiveReserve == nil {
		r := DefaultInteractiveReserve
		s.InteractiveReserve = &r
	}
	if r := *s.InteractiveReserve; r < 0 || r >= 1 {
		bad("scheduler.interactive_reserve", "must be a share of the capacity, at least 0 and below 1")
	}
	if s.OutputWeight == 0 {
		s.OutputWeight = DefaultOutputWeight
	}
	if s.OutputWeight < 0 {
		bad("scheduler.output_weight", "must be positive")
	}
	for kind, weights := range map[string]map[string]float64{"organizations": s.Weights.Organizations, "roles": s.Weights.Roles} {
		for name, w := range weights {
			if w <= 0 || w > 1000 {
				bad("scheduler.weights."+kind+"."+name, "a weight must be above 0 and at most 1000")
			}
		}
	}
}
