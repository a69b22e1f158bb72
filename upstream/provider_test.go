package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/config"
	"github.com/guichet/guichet/sim"
)

func newProvider(typ, url, model string, mt guichet.ModelType) *Provider {
	one := 1.0
	pc := &config.Provider{Type: typ, URL: url, ModelName: model, Weight: &one, Timeouts: config.Timeouts{
		Connect: config.Duration(time.Second), FirstByte: config.Duration(time.Second), Idle: config.Duration(time.Second), Total: config.Duration(5 * time.Second),
	}}
	return New("p#0", mt, pc)
}

func TestProbesLearnLimitsAndCatchMisconfiguration(t *testing.T) {
	srv := httptest.NewServer(sim.New(sim.Config{Models: []string{"served"}, MaxModelLen: 8192, EmbeddingDim: 256}))
	defer srv.Close()
	ctx := context.Background()

	vllm := newProvider("vllm", srv.URL, "served", guichet.TextEmbeddings)
	if err := vllm.ProbeOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if vllm.MaxContext() != 8192 || vllm.VectorSize() != 256 || !vllm.Healthy() {
		t.Errorf("max context %d, vector size %d, healthy %v", vllm.MaxContext(), vllm.VectorSize(), vllm.Healthy())
	}
	tei := newProvider("tei", srv.URL, "served", guichet.TextEmbeddings)
	if err := tei.ProbeOnce(ctx); err != nil || tei.MaxContext() != 8192 {
		t.Errorf("tei probe: %v, max context %d", err, tei.MaxContext())
	}

	wrong := newProvider("vllm", srv.URL, "other", guichet.TextGeneration)
	err := wrong.ProbeOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), `does not serve "other" (it serves: served`) || wrong.Healthy() {
		t.Errorf("wrong model_name: %v (healthy %v)", err, wrong.Healthy())
	}
	if wrong.LastError() == "" {
		t.Error("no reason recorded for /ready and the logs")
	}
	wrongTEI := newProvider("tei", srv.URL, "other", guichet.TextEmbeddings)
	if err := wrongTEI.ProbeOnce(ctx); err == nil || !strings.Contains(err.Error(), "check model_name") {
		t.Errorf("wrong TEI model: %v", err)
	}
}

func TestCircuitOpensAfterConsecutiveFailuresOnly(t *testing.T) {
	p := newProvider("vllm", "http://127.0.0.1:1", "m", guichet.TextGeneration)
	boom := errors.New("boom")
	p.Failed(boom)
	p.Failed(boom)
	p.Succeeded() // a success in between resets the count
	p.Failed(boom)
	p.Failed(boom)
	if !p.Healthy() {
		t.Fatal("opened after 2 consecutive failures")
	}
	p.Failed(boom)
	if p.Healthy() {
		t.Fatal("still closed after 3 consecutive failures")
	}
	if !strings.Contains(p.LastError(), "boom") {
		t.Errorf("reason %q", p.LastError())
	}
}

func TestWatchClosesTheCircuitWhenTheServerIsBack(t *testing.T) {
	old := MinBackoff
	MinBackoff = 10 * time.Millisecond
	defer func() { MinBackoff = old }()
	srv := httptest.NewServer(sim.New(sim.Config{Models: []string{"m"}}))
	defer srv.Close()
	p := newProvider("vllm", srv.URL, "m", guichet.TextGeneration)
	for i := 0; i < FailureThreshold; i++ {
		p.Failed(errors.New("transient"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan bool, 4)
	go p.Watch(ctx, func(p *Provider) { changed <- p.Healthy() })
	select {
	case up := <-changed:
		if !up {
			t.Fatal("changed to down")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the watcher did not re-probe")
	}
}

type slowBody struct{ closed chan struct{} }

func (b *slowBody) Read(p []byte) (int, error) { <-b.closed; return 0, io.EOF }
func (b *slowBody) Close() error               { return nil }

func TestIdleTimeoutCancels(t *testing.T) {
	body := &slowBody{closed: make(chan struct{})}
	r := WithIdleTimeout(body, 30*time.Millisecond, func() { close(body.closed) })
	start := time.Now()
	r.Read(make([]byte, 1))
	if d := time.Since(start); d < 30*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle timeout fired after %v", d)
	}
	r.Close()
}

func TestH2CProvider(t *testing.T) {
	var protos sync.Map
	handler := sim.New(sim.Config{Models: []string{"m"}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		handler.ServeHTTP(w, r)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	one := 1.0
	p := New("p#0", guichet.TextGeneration, &config.Provider{Type: "vllm", URL: srv.URL, ModelName: "m", Weight: &one, H2C: true,
		Timeouts: config.Timeouts{Connect: config.Duration(time.Second), FirstByte: config.Duration(time.Second), Total: config.Duration(time.Second)}})
	if err := p.ProbeOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := protos.Load("HTTP/2.0"); !ok {
		t.Errorf("h2c provider did not speak HTTP/2")
	}
}
