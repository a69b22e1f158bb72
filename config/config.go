// Package config loads guichet's YAML configuration: its own format, and
// OpenGateLLM's config.yml as it is. Loading never stops at the first
// problem: every problem is reported with its YAML path.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a whole guichet configuration.
type Config struct {
	Server  Server  `yaml:"server"`
	Storage Storage `yaml:"storage"`
	Limits  Limits  `yaml:"limits"`
	Ledger  Ledger  `yaml:"ledger"`
	Tracing Tracing `yaml:"tracing"`
	// Scheduler shares saturated models fairly between tenants.
	Scheduler Scheduler `yaml:"scheduler"`
	RAG       RAG       `yaml:"rag"`
	Models    []*Model  `yaml:"models"`

	// OpenGateLLM sections, read for compatibility (see opengatellm.go).
	Dependencies *OGLDependencies `yaml:"dependencies"`
	Settings     *OGLSettings     `yaml:"settings"`
	Playground   yaml.Node        `yaml:"playground"` // the OpenGateLLM UI's section: ignored

	// Format is "guichet" or "opengatellm" (detected).
	Format string `yaml:"-"`
	// Warnings are things worth one line in the start-up log.
	Warnings []string `yaml:"-"`
}

// Server holds the HTTP listener's settings.
type Server struct {
	Listen string `yaml:"listen"`
	// DataDir holds the embedded SQLite database and spill files.
	DataDir string `yaml:"data_dir"`
	// MaxBodyBytes bounds JSON request bodies (default 16 MiB).
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// MaxUploadBytes bounds multipart uploads such as audio (default 20 MiB).
	MaxUploadBytes Size `yaml:"max_upload_bytes"`
	// ShutdownTimeout bounds the wait for in-flight requests on stop.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Storage selects cluster mode: with a PostgreSQL DSN and a Redis URL,
// guichet keeps its state there instead of in the data dir.
type Storage struct {
	Postgres string `yaml:"postgres"`
	Redis    string `yaml:"redis"`
	// RedisPrefix starts every Redis key and channel guichet uses
	// (default "guichet:"), so deployments can share one Redis.
	RedisPrefix string `yaml:"redis_prefix"`
}

// Cluster reports whether shared storage is configured.
func (s Storage) Cluster() bool { return s.Postgres != "" || s.Redis != "" }

// Limits holds admission settings: what rate limits and budgets do when
// their backend fails, and how much a budget reserves.
type Limits struct {
	// OnRedisDown is fail_closed (default: requests that have limits are
	// refused with 503 while Redis is unreachable) or local (each replica
	// applies the limits on its own until Redis is back).
	OnRedisDown string `yaml:"on_redis_down"`
	// ReserveMaxTokens is the completion a budget reserves for a request
	// without max_tokens, when the model's context length is unknown
	// (default 4096).
	ReserveMaxTokens int64 `yaml:"reserve_max_tokens"`
	// MaxKeyDays caps the lifetime of API keys; 0 lets keys never expire.
	MaxKeyDays int `yaml:"max_key_days"`
}

// Ledger holds the usage ledger's settings.
type Ledger struct {
	// RetentionDays is how long usage lines are kept (0: forever). The
	// daily sums stay. PostgreSQL drops whole months, so lines may stay
	// up to a month longer.
	RetentionDays int `yaml:"retention_days"`
}

// Tracing sends OpenTelemetry traces (one span per step of each request)
// to an OTLP/HTTP collector. Off unless an endpoint is set here or in the
// standard OTEL_EXPORTER_OTLP_ENDPOINT environment variable.
type Tracing struct {
	// Endpoint is the collector's base URL, e.g. http://collector:4318.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces kept (default 1); a request
	// that arrives with a sampled traceparent is always traced.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// Headers are sent with every export (an API key for a hosted backend).
	Headers map[string]string `yaml:"headers"`
}

// Scheduler is the fair queue in front of each model's providers: when
// they run all they can, requests wait in guichet and leave in a fair
// order between tenants (organizations, or users without one).
type Scheduler struct {
	// Enabled is true by default; false sends every request on at once
	// (first come, first served, in the model servers' own queues).
	Enabled *bool `yaml:"enabled"`
	// QueueTimeout is the longest an interactive request waits (default
	// 30s); BatchQueueTimeout, a batch one (default 10m). A request sure
	// to wait longer is refused at once with a Retry-After.
	QueueTimeout      Duration `yaml:"queue_timeout"`
	BatchQueueTimeout Duration `yaml:"batch_queue_timeout"`
	// MaxQueuedPerTenant bounds one tenant's waiting requests per model
	// (default 1000).
	MaxQueuedPerTenant int `yaml:"max_queued_per_tenant"`
	// InteractiveReserve is the share of a model's capacity that batch
	// requests may not take (default 0.2).
	InteractiveReserve *float64 `yaml:"interactive_reserve"`
	// OutputWeight is what an output token costs in the fair share,
	// relative to an input token (default 2, as in the VTC paper).
	OutputWeight float64 `yaml:"output_weight"`
	// Weights give tenants a bigger or smaller share (default 1): by
	// organization name, and by role name for users with no organization.
	Weights struct {
		Organizations map[string]float64 `yaml:"organizations"`
		Roles         map[string]float64 `yaml:"roles"`
	} `yaml:"weights"`
	// BatchRoles are roles whose requests are batch unless they say
	// otherwise (a request says so with service_tier "flex" or the
	// header X-Guichet-Class: batch).
	BatchRoles []string `yaml:"batch_roles"`
}

// On reports whether the scheduler is enabled.
func (s Scheduler) On() bool { return s.Enabled == nil || *s.Enabled }

// Modes of Limits.OnRedisDown.
const (
	FailClosed = "fail_closed"
	FailLocal  = "local"
)

// RAG holds retrieval settings.
type RAG struct {
	// EmbeddingModel is the model used to vectorise documents.
	EmbeddingModel string `yaml:"embedding_model"`
}

// Model is one public model name, load-balanced over providers.
type Model struct {
	Name      string   `yaml:"name"`
	Type      string   `yaml:"type"`
	Aliases   []string `yaml:"aliases"`
	OwnedBy   string   `yaml:"owned_by"`
	Routing   Routing  `yaml:"routing"`
	Fallbacks []string `yaml:"fallbacks"`
	Costs     *Costs   `yaml:"costs"`
	Carbon    *Carbon  `yaml:"carbon"`

	Providers []*Provider `yaml:"providers"`

	// OpenGateLLM spellings of the same settings.
	RoutingStrategy       string   `yaml:"routing_strategy"`
	LoadBalancingStrategy string   `yaml:"load_balancing_strategy"`
	CostPromptTokens      *float64 `yaml:"cost_prompt_tokens"`
	CostCompletionTokens  *float64 `yaml:"cost_completion_tokens"`
}

// Routing says how a model picks among its providers and retries.
type Routing struct {
	// Strategy is shuffle (weighted random), round_robin or least_inflight.
	Strategy string `yaml:"strategy"`
	// MaxAttempts bounds upstream attempts per request, fallbacks included.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryWindow bounds the time spent retrying before the first byte.
	RetryWindow Duration `yaml:"retry_window"`
}

// Costs are prices per million tokens.
type Costs struct {
	PromptTokens     float64 `yaml:"prompt_tokens"`
	CompletionTokens float64 `yaml:"completion_tokens"`
}

// Carbon parameters of a model, for the energy and emissions estimate.
type Carbon struct {
	TotalParams  float64 `yaml:"total_params"`  // billions
	ActiveParams float64 `yaml:"active_params"` // billions
	Zone         string  `yaml:"zone"`          // ISO 3166-1 alpha-3 or WOR
}

// Provider is one upstream server of a model.
type Provider struct {
	Type      string   `yaml:"type"`
	URL       string   `yaml:"url"`
	Key       Secret   `yaml:"key"`
	ModelName string   `yaml:"model_name"`
	Timeouts  Timeouts `yaml:"timeouts"`
	// Timeout is OpenGateLLM's single timeout (seconds): the total.
	Timeout Duration `yaml:"timeout"`
	Weight  *float64 `yaml:"weight"`
	// MaxConcurrency is how many requests the provider runs well at once.
	// 0: learnt from a vLLM server's own gauges (requests waiting in its
	// queue), unlimited for other servers.
	MaxConcurrency int `yaml:"max_concurrency"`
	// PriorityScheduling: the server runs vLLM with
	// --scheduling-policy priority; guichet then sends batch requests
	// with a lower priority.
	PriorityScheduling bool `yaml:"priority_scheduling"`
	// H2C speaks HTTP/2 without TLS to the upstream (prior knowledge).
	H2C bool `yaml:"h2c"`
	// KWhPerToken is a measured energy per output token on this provider
	// (servers and cooling included); it replaces the estimate from the
	// model's parameters.
	KWhPerToken float64 `yaml:"kwh_per_token"`

	// OpenGateLLM per-provider cost and carbon keys (0.1 and 0.4 spellings).
	ModelCostPromptTokens            *float64 `yaml:"model_cost_prompt_tokens"`
	ModelCostCompletionTokens        *float64 `yaml:"model_cost_completion_tokens"`
	ModelCarbonFootprintZone         string   `yaml:"model_carbon_footprint_zone"`
	ModelCarbonFootprintTotalParams  *float64 `yaml:"model_carbon_footprint_total_params"`
	ModelCarbonFootprintActiveParams *float64 `yaml:"model_carbon_footprint_active_params"`
	ModelHostingZone                 string   `yaml:"model_hosting_zone"`
	ModelTotalParams                 *float64 `yaml:"model_total_params"`
	ModelActiveParams                *float64 `yaml:"model_active_params"`
}

// Timeouts of one provider. Zero means the default.
type Timeouts struct {
	Connect   Duration `yaml:"connect"`    // TCP (and TLS) connect
	FirstByte Duration `yaml:"first_byte"` // request sent → response headers
	Idle      Duration `yaml:"idle"`       // between two chunks of a stream
	Total     Duration `yaml:"total"`      // whole request
}

// Secret is a string that never prints: logs and dumps see "[redacted]".
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the secret too.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalJSON never writes the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Value is the secret itself, for the one place that sends it upstream.
func (s Secret) Value() string { return string(s) }

// Duration reads "30s", "2m" or a bare number of seconds (OpenGateLLM).
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 30s or a number of seconds")
	}
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		if secs < 0 {
			return fmt.Errorf("duration %q is negative", n.Value)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration: write it like 30s, 1m30s or 300 (seconds)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size reads a byte count: 1048576, "512KiB", "16MiB", "1GiB", "10MB".
type Size int64

func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// ParseSize reads a byte count with an optional unit.
func ParseSize(text string) (int64, error) {
	t := strings.TrimSpace(text)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size: write it like 1048576, 512KiB or 16MiB", text)
	}
	return v * mult, nil
}
