package routing

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/upstream"
)

// Model is a public model name and the providers that serve it.
type Model struct {
	Name      string
	Type      guichet.ModelType
	Aliases   []string
	OwnedBy   string
	Costs     guichet.Costs
	Carbon    guichet.Carbon
	Created   int64
	Providers []*upstream.Provider
	Fallbacks []*Model

	strategy    Strategy
	maxAttempts int
	retryWindow time.Duration
	onAttempt   func(p *upstream.Provider, outcome string)
}

// MaxContext is the smallest context length its providers reported.
func (m *Model) MaxContext() int64 {
	var out int64
	for _, p := range m.Providers {
		if c := p.MaxContext(); c > 0 && (out == 0 || c < out) {
			out = c
		}
	}
	return out
}

// Capacity is how many requests the model's healthy providers run well
// at once; 0 when one of them has no known limit (the scheduler then
// never holds requests back).
func (m *Model) Capacity() int {
	total := 0
	for _, p := range m.Providers {
		if !p.Healthy() {
			continue
		}
		limit := p.Limit()
		if limit <= 0 {
			return 0
		}
		total += int(limit)
	}
	return total
}

// WantsPrefix reports whether the model routes by prompt prefix (then
// calls should carry Call.Prefix).
func (m *Model) WantsPrefix() bool {
	_, ok := m.strategy.(*PrefixAffinity)
	return ok && len(m.Providers) > 1
}

// Healthy counts the providers whose circuit is closed.
func (m *Model) Healthy() int {
	n := 0
	for _, p := range m.Providers {
		if p.Healthy() {
			n++
		}
	}
	return n
}

// Registry is the set of models, looked up by name or alias. It is built
// once from the configuration and read without locks on the hot path.
type Registry struct {
	Models []*Model
	byName map[string]*Model
}

// NewRegistry builds models and providers from a validated configuration.
func NewRegistry(cfg *config.Config) *Registry {
	r := &Registry{byName: map[string]*Model{}}
	now := time.Now().Unix()
	for _, mc := range cfg.Models {
		m := &Model{
			Name:        mc.Name,
			Type:        guichet.ModelType(mc.Type),
			Aliases:     mc.Aliases,
			OwnedBy:     mc.OwnedBy,
			Costs:       guichet.Costs{PromptTokens: mc.Costs.PromptTokens, CompletionTokens: mc.Costs.CompletionTokens},
			Carbon:      guichet.Carbon{TotalParams: mc.Carbon.TotalParams, ActiveParams: mc.Carbon.ActiveParams, Zone: mc.Carbon.Zone},
			Created:     now,
			strategy:    NewStrategy(mc.Routing.Strategy),
			maxAttempts: mc.Routing.MaxAttempts,
			retryWindow: mc.Routing.RetryWindow.D(),
		}
		for i, pc := range mc.Providers {
			m.Providers = append(m.Providers, upstream.New(fmt.Sprintf("%s#%d", mc.Name, i), m.Type, pc))
		}
		r.Models = append(r.Models, m)
		r.byName[m.Name] = m
		for _, a := range m.Aliases {
			r.byName[a] = m
		}
	}
	for i, mc := range cfg.Models {
		for _, f := range mc.Fallbacks {
			r.Models[i].Fallbacks = append(r.Models[i].Fallbacks, r.byName[f])
		}
	}
	return r
}

// Observe registers f to hear of every upstream attempt and its outcome:
// ok, client_error, server_error, overloaded, timeout, unreachable,
// auth_refused. Call it before serving.
func (r *Registry) Observe(f func(p *upstream.Provider, outcome string)) {
	for _, m := range r.Models {
		m.onAttempt = f
	}
}

// Lookup finds a model by name or alias.
func (r *Registry) Lookup(name string) *Model { return r.byName[name] }

// Providers lists every provider of every model.
func (r *Registry) Providers() []*upstream.Provider {
	var out []*upstream.Provider
	for _, m := range r.Models {
		out = append(out, m.Providers...)
	}
	return out
}

// Start probes every provider once (in parallel, bounded by
// upstream.StartupTimeout: a provider that is down does not stop guichet),
// then keeps watching them until ctx ends.
func (r *Registry) Start(ctx context.Context, onChange func(*upstream.Provider)) {
	var wg sync.WaitGroup
	for _, p := range r.Providers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, upstream.StartupTimeout)
			defer cancel()
			_ = p.ProbeOnce(pctx)
			if onChange != nil {
				onChange(p)
			}
		}()
	}
	wg.Wait()
	for _, p := range r.Providers() {
		go p.Watch(ctx, onChange)
		if p.LearnsLimit() {
			go p.LearnLimit(ctx)
		}
	}
}
