package upstream

import (
	"io"
	"time"
)

// idleReader cancels the request when no bytes arrive for a while: a model
// server that stops sending mid-stream must not hold a client forever.
type idleReader struct {
	io.ReadCloser
	timer *time.Timer
	d     time.Duration
}

// WithIdleTimeout wraps body so that cancel runs when no read completes
// within d. The timer starts at once (the first chunk counts too).
func WithIdleTimeout(body io.ReadCloser, d time.Duration, cancel func()) io.ReadCloser {
	if d <= 0 {
		return body
	}
	return &idleReader{ReadCloser: body, timer: time.AfterFunc(d, cancel), d: d}
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	return r.ReadCloser.Close()
}
