// Package upstream talks to model servers: one pooled HTTP client per
// provider, the endpoint paths of each server type, health probes and the
// circuit that takes a failing provider out and puts it back.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
)

// FailureThreshold is how many consecutive failed requests open the circuit.
const FailureThreshold = 3

// Probe pacing: a healthy provider is re-probed every ProbeInterval; an
// unhealthy one with exponential backoff between the two bounds.
var (
	ProbeInterval  = 15 * time.Second
	MinBackoff     = 250 * time.Millisecond
	MaxBackoff     = 30 * time.Second
	StartupTimeout = 3 * time.Second
)

// Provider is one upstream server of one model.
type Provider struct {
	ID             string // model name and index, for logs and metrics
	Type           guichet.ProviderType
	URL            string
	ModelName      string
	Weight         float64
	MaxConcurrency int64
	Timeouts       config.Timeouts
	KWhPerToken    float64 // measured energy per output token; 0: estimate it
	// PriorityScheduling: the server runs vLLM's priority scheduling.
	PriorityScheduling bool

	modelType guichet.ModelType
	key       string
	client    *http.Client

	inflight    atomic.Int64
	learntLimit atomic.Int64
	down        atomic.Bool
	failures    atomic.Int32
	maxContext  atomic.Int64
	vectorSize  atomic.Int64
	wake        chan struct{}

	mu      sync.Mutex
	lastErr string
}

// New builds a provider from its configuration.
func New(id string, modelType guichet.ModelType, c *config.Provider) *Provider {
	t := c.Timeouts
	tr := &http.Transport{
		Proxy:                 nil, // model servers are reached directly, never through HTTP_PROXY
		DialContext:           (&net.Dialer{Timeout: t.Connect.D(), KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   t.Connect.D(),
		ResponseHeaderTimeout: t.FirstByte.D(),
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // bodies pass through as they are
		ForceAttemptHTTP2:     true,
	}
	if c.H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &Provider{
		ID:                 id,
		Type:               guichet.ProviderType(c.Type),
		URL:                c.URL,
		ModelName:          c.ModelName,
		Weight:             *c.Weight,
		MaxConcurrency:     int64(c.MaxConcurrency),
		PriorityScheduling: c.PriorityScheduling,
		Timeouts:           t,
		KWhPerToken:        c.KWhPerToken,
		modelType:          modelType,
		key:                c.Key.Value(),
		client:             &http.Client{Transport: tr, CheckRedirect: noRedirects},
		wake:               make(chan struct{}, 1),
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Path is the upstream path of a gateway endpoint for this server type.
func (p *Provider) Path(e guichet.Endpoint) string {
	if e == guichet.EndpointRerank && p.Type == guichet.ProviderTEI {
		return "/rerank"
	}
	return string(e)
}

// NewRequest builds a request to path on this provider, with its key.
func (p *Provider) NewRequest(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.URL+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept-Encoding", "identity")
	if p.key != "" {
		req.Header.Set("Authorization", "Bearer "+p.key)
	}
	return req, nil
}

// Do sends a request built by NewRequest.
func (p *Provider) Do(req *http.Request) (*http.Response, error) { return p.client.Do(req) }

// Healthy reports whether the circuit is closed.
func (p *Provider) Healthy() bool { return !p.down.Load() }

// Inflight is the number of requests this gateway has running on p.
func (p *Provider) Inflight() int64 { return p.inflight.Load() }

// Acquire takes a slot; false when p is at its max_concurrency.
func (p *Provider) Acquire() bool {
	n := p.inflight.Add(1)
	if p.MaxConcurrency > 0 && n > p.MaxConcurrency {
		p.inflight.Add(-1)
		return false
	}
	return true
}

// Release gives a slot back.
func (p *Provider) Release() { p.inflight.Add(-1) }

// Limit is how many requests p runs well at once: its max_concurrency,
// else what was learnt from its gauges; 0 when unknown (no limit).
func (p *Provider) Limit() int64 {
	if p.MaxConcurrency > 0 {
		return p.MaxConcurrency
	}
	return p.learntLimit.Load()
}

// Full reports whether p is at its max_concurrency.
func (p *Provider) Full() bool {
	return p.MaxConcurrency > 0 && p.inflight.Load() >= p.MaxConcurrency
}

// MaxContext is the context length learnt from the last probe (0: unknown).
func (p *Provider) MaxContext() int64 { return p.maxContext.Load() }

// VectorSize is the embedding size learnt from the probe (0: unknown).
func (p *Provider) VectorSize() int64 { return p.vectorSize.Load() }

// LastError is why the provider is down, for /ready.
func (p *Provider) LastError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// Succeeded resets the failure count after a good answer.
func (p *Provider) Succeeded() {
	if p.failures.Load() != 0 {
		p.failures.Store(0)
	}
}

// Failed counts a failed request; enough in a row open the circuit.
func (p *Provider) Failed(err error) {
	if p.failures.Add(1) >= FailureThreshold && p.down.CompareAndSwap(false, true) {
		p.setErr(fmt.Sprintf("%d requests failed in a row, last: %v", FailureThreshold, err))
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *Provider) setErr(s string) {
	p.mu.Lock()
	p.lastErr = s
	p.mu.Unlock()
}

// Watch probes p until ctx ends: every ProbeInterval while healthy, with
// backoff while down. It closes the circuit when a probe succeeds.
func (p *Provider) Watch(ctx context.Context, onChange func(*Provider)) {
	backoff := MinBackoff
	for {
		wait := ProbeInterval
		if p.down.Load() {
			wait = backoff
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-p.wake:
			timer.Stop()
			backoff = MinBackoff
			continue // the circuit just opened: start the backoff
		case <-timer.C:
		}
		was := p.Healthy()
		if err := p.ProbeOnce(ctx); err != nil {
			backoff = min(backoff*2, MaxBackoff)
		} else {
			backoff = MinBackoff
		}
		if was != p.Healthy() && onChange != nil {
			onChange(p)
		}
	}
}

// ProbeOnce checks the provider serves its model and learns its limits.
func (p *Provider) ProbeOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(p.Timeouts.Total.D(), 10*time.Second))
	defer cancel()
	err := p.probe(ctx)
	if err != nil {
		p.down.Store(true)
		p.setErr(err.Error())
		return err
	}
	p.failures.Store(0)
	p.down.Store(false)
	p.setErr("")
	return nil
}

func (p *Provider) probe(ctx context.Context) error {
	if p.Type == guichet.ProviderTEI {
		var info struct {
			ModelID        string `json:"model_id"`
			MaxInputLength int64  `json:"max_input_length"`
		}
		if err := p.getJSON(ctx, "/info", &info); err != nil {
			return err
		}
		if info.ModelID != p.ModelName {
			return fmt.Errorf("serves %q, not %q (check model_name)", info.ModelID, p.ModelName)
		}
		p.maxContext.Store(info.MaxInputLength)
	} else {
		var list struct {
			Data []struct {
				ID               string   `json:"id"`
				Aliases          []string `json:"aliases"`
				MaxModelLen      int64    `json:"max_model_len"`
				MaxContextLength int64    `json:"max_context_length"`
				ContextLength    int64    `json:"context_length"`
			} `json:"data"`
		}
		if err := p.getJSON(ctx, "/v1/models", &list); err != nil {
			return err
		}
		var ids []string
		found := false
		for _, m := range list.Data {
			ids = append(ids, m.ID)
			if m.ID == p.ModelName || (p.Type == guichet.ProviderAlbert && contains(m.Aliases, p.ModelName)) {
				p.maxContext.Store(max(m.MaxModelLen, m.MaxContextLength, m.ContextLength))
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("does not serve %q (it serves: %s; check model_name)", p.ModelName, strings.Join(ids, ", "))
		}
	}
	if p.modelType == guichet.TextEmbeddings && p.vectorSize.Load() == 0 {
		return p.probeVectorSize(ctx)
	}
	return nil
}

func (p *Provider) probeVectorSize(ctx context.Context) error {
	body := fmt.Sprintf(`{"model":%q,"input":"hello world"}`, p.ModelName)
	req, err := p.NewRequest(ctx, http.MethodPost, "/v1/embeddings", strings.NewReader(body), "application/json")
	if err != nil {
		return err
	}
	var out struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := p.doJSON(req, &out); err != nil {
		return fmt.Errorf("embedding probe: %w", err)
	}
	if len(out.Data) == 0 || len(out.Data[0].Embedding) == 0 {
		return errors.New("embedding probe: empty answer")
	}
	p.vectorSize.Store(int64(len(out.Data[0].Embedding)))
	return nil
}

func (p *Provider) getJSON(ctx context.Context, path string, v any) error {
	req, err := p.NewRequest(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	return p.doJSON(req, v)
}

func (p *Provider) doJSON(req *http.Request, v any) error {
	resp, err := p.Do(req)
	if err != nil {
		return describe(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", req.URL.Path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: unreadable answer: %v", req.URL.Path, err)
	}
	return nil
}

// describe turns a transport error into a short reason, without the URL's
// query or any header.
func describe(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("timed out")
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case strings.Contains(err.Error(), "connection refused"):
		return errors.New("connection refused")
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap()
	}
	return err
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
