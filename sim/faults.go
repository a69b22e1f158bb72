package sim

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Faults are injected failures; all rates are in [0,1] and drawn per
// inference request, independently, in the order of the fields.
type Faults struct {
	ErrorRate      float64 `json:"error_rate"`       // answer ErrorStatus (default 500) with an error body before any byte
	ErrorStatus    int     `json:"error_status"`     //
	RateLimitRate  float64 `json:"rate_limit_rate"`  // answer 429 with Retry-After: 1
	HangRate       float64 `json:"hang_rate"`        // accept, then never answer (until the client goes away)
	CutRate        float64 `json:"cut_rate"`         // drop the connection mid-answer (streaming: after CutAfterTokens tokens)
	CutAfterTokens int     `json:"cut_after_tokens"` // default 2
	SlowReadBPS    int     `json:"slow_read_bps"`    // if >0, read request bodies at this many bytes/second
}

// SetFaults replaces the injected faults (rates are clamped to [0,1],
// defaults filled in).
func (s *Server) SetFaults(f Faults) {
	f.ErrorRate = clamp01(f.ErrorRate)
	f.RateLimitRate = clamp01(f.RateLimitRate)
	f.HangRate = clamp01(f.HangRate)
	f.CutRate = clamp01(f.CutRate)
	if f.ErrorStatus < 400 || f.ErrorStatus > 599 {
		f.ErrorStatus = http.StatusInternalServerError
	}
	if f.CutAfterTokens <= 0 {
		f.CutAfterTokens = 2
	}
	f.SlowReadBPS = max(f.SlowReadBPS, 0)
	s.faults.Store(&f)
}

func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(&http.Request{Body: http.MaxBytesReader(w, r.Body, 1<<20), ContentLength: r.ContentLength})
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read body: "+err.Error())
		return
	}
	var f Faults
	if e := decodeJSON(body, &f); e != nil {
		writeError(w, e.status, e.msg)
		return
	}
	for _, v := range []float64{f.ErrorRate, f.RateLimitRate, f.HangRate, f.CutRate} {
		if !(v >= 0 && v <= 1) {
			writeError(w, http.StatusBadRequest, "fault rates must be within [0,1]")
			return
		}
	}
	if f.ErrorStatus != 0 && (f.ErrorStatus < 400 || f.ErrorStatus > 599) {
		writeError(w, http.StatusBadRequest, "error_status must be a 4xx or 5xx status")
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, s.faults.Load())
}

// drawn is the fate of one request.
type drawn struct {
	err, rateLimit, hang, cut bool
	errStatus, cutAfter       int
}

func (s *Server) drawFaults() drawn {
	f := s.faults.Load()
	d := drawn{errStatus: f.ErrorStatus, cutAfter: f.CutAfterTokens}
	if f.ErrorRate == 0 && f.RateLimitRate == 0 && f.HangRate == 0 && f.CutRate == 0 {
		return d // the benchmark path: no lock
	}
	s.rngMu.Lock()
	d.err = s.rng.Float64() < f.ErrorRate
	d.rateLimit = s.rng.Float64() < f.RateLimitRate
	d.hang = s.rng.Float64() < f.HangRate
	d.cut = s.rng.Float64() < f.CutRate
	s.rngMu.Unlock()
	return d
}

// randIntn draws from the server's seeded generator.
func (s *Server) randIntn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// admit applies the answer-before-any-work faults, then waits for a slot.
// When ok is false the request has been answered (or abandoned) and out
// says how it ended; otherwise the caller must call release. queued, if
// set, is called when the request starts waiting in the queue; priority
// orders the queue (see scheduler).
func (s *Server) admit(w http.ResponseWriter, r *http.Request, m *modelCounters, priority int, tei bool, queued func()) (d drawn, out outcome, ok bool) {
	d = s.drawFaults()
	switch {
	case d.err:
		msg := "guichet-sim injected fault: simulated server error"
		if tei {
			writeTEIError(w, d.errStatus, "backend", msg)
		} else {
			writeError(w, d.errStatus, msg)
		}
		return d, outFailed, false
	case d.rateLimit:
		w.Header().Set("Retry-After", "1")
		msg := "guichet-sim injected fault: simulated rate limit"
		if tei {
			writeTEIError(w, http.StatusTooManyRequests, "overloaded", msg)
		} else {
			writeError(w, http.StatusTooManyRequests, msg)
		}
		return d, outFailed, false
	case d.hang:
		<-r.Context().Done()
		return d, outFailed, false
	}
	switch err := s.sched.acquire(r.Context(), m, priority, queued); err {
	case nil:
		return d, outCompleted, true
	case errQueueFull:
		msg := "guichet-sim: the waiting queue is full"
		if tei {
			writeTEIError(w, http.StatusTooManyRequests, "overloaded", "Model is overloaded")
		} else {
			writeError(w, http.StatusServiceUnavailable, msg)
		}
		return d, outFailed, false
	default:
		return d, outCancelled, false
	}
}

// --- slow reads ---

// slowBody throttles the request body when SlowReadBPS is set, to simulate
// a server that drains uploads slowly.
func (s *Server) slowBody(r *http.Request) io.ReadCloser {
	bps := s.faults.Load().SlowReadBPS
	if bps <= 0 {
		return r.Body
	}
	return &slowReader{rc: r.Body, ctx: r.Context(), bps: bps, start: time.Now()}
}

type slowReader struct {
	rc    io.ReadCloser
	ctx   context.Context
	bps   int
	start time.Time
	read  int64
}

func (sr *slowReader) Read(p []byte) (int, error) {
	// Small reads (a tenth of a second's worth) keep the pace smooth.
	if chunk := max(sr.bps/10, 1); len(p) > chunk {
		p = p[:chunk]
	}
	due := sr.start.Add(time.Duration(float64(sr.read) / float64(sr.bps) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-sr.ctx.Done():
			t.Stop()
			return 0, sr.ctx.Err()
		}
	}
	n, err := sr.rc.Read(p)
	sr.read += int64(n)
	return n, err
}

func (sr *slowReader) Close() error { return sr.rc.Close() }
