package sim

import (
	"net/http"
	"sync"
	"time"
)

// Text generation shared by chat and completions: a request is first
// planned (every choice's tokens decided up front), then played out with
// the configured latencies, streamed or not.

// choicePlan is one choice's answer.
type choicePlan struct {
	pieces []string // the generated tokens (tool call: of the arguments)
	finish string   // "stop", "length" or "tool_calls"
	// A tool call when toolName is set.
	toolID, toolName string
}

// genJob is a planned generation request.
type genJob struct {
	chat            bool
	id              string
	model           *modelCounters
	name            string // the requested model name, echoed back
	created         int64
	prompt          int
	choices         []choicePlan
	stream          bool
	includeUsage    bool
	continuousUsage bool

	priority int            // the request's priority field (0 when absent)
	prefix   []promptBlocks // per prompt, when the prefix cache is on
	cached   int            // prompt tokens found in the prefix cache, reported in usage
}

// lengthSpec is what the client asked about the answer's length.
type lengthSpec struct {
	maxTokens int  // 0 when not given
	ignoreEOS bool // vLLM's ignore_eos: generate exactly max_tokens
	ctxLeft   int  // room left in the context window
}

// growth says whether an answer with a size of its own (a tool call, a
// quoted tool result, a JSON document) may run longer when more tokens are
// wanted.
type growth int

const (
	growNever  growth = iota // a document: its size is its size
	growExact                // only to honour max_tokens in "max_tokens" mode or with ignore_eos
	growAlways               // free text
)

// plannedLen decides how many tokens a choice gets and why it stops.
// natural is the answer's own size (0 for free text).
func (s *Server) plannedLen(ls lengthSpec, natural int, g growth) (int, string) {
	exact := ls.maxTokens > 0 && (s.cfg.OutputMode == "max_tokens" || ls.ignoreEOS)
	var want int
	switch {
	case exact:
		want = ls.maxTokens
	case s.cfg.OutputMode == "random":
		want = 1 + s.randIntn(s.cfg.OutputTokens)
	default:
		want = s.cfg.OutputTokens
	}
	if natural > 0 {
		switch {
		case g == growAlways || g == growExact && exact:
			want = max(want, natural)
		default:
			want = natural
		}
	}
	limit := ls.ctxLeft
	if ls.maxTokens > 0 {
		limit = min(limit, ls.maxTokens)
	}
	switch {
	case want > limit:
		return max(limit, 0), "length"
	case exact && want == ls.maxTokens:
		return want, "length" // like vLLM with ignore_eos: stopped by max_tokens
	}
	return want, "stop"
}

// Content kinds, planned per choice from a prng seeded by the request.

func (s *Server) planLorem(ls lengthSpec, p *prng) choicePlan {
	k, fin := s.plannedLen(ls, 0, growAlways)
	return choicePlan{pieces: appendLorem(make([]string, 0, k), k, p), finish: fin}
}

// planEcho repeats the source tokens, cycling when more are wanted.
func (s *Server) planEcho(ls lengthSpec, src []string, p *prng) choicePlan {
	if len(src) == 0 {
		return s.planLorem(ls, p)
	}
	k, fin := s.plannedLen(ls, 0, growAlways)
	out := make([]string, 0, k)
	for i := 0; len(out) < k; i++ {
		t := src[i%len(src)]
		if i >= len(src) && i%len(src) == 0 && !isSpaceRune(rune(t[0])) {
			t = " " + t // keep the wrapped-around word a token of its own
		}
		out = append(out, t)
	}
	return choicePlan{pieces: out, finish: fin}
}

// planSentence says a whole sentence (then lorem words if max_tokens must
// be reached exactly).
func (s *Server) planSentence(ls lengthSpec, sentence []string, p *prng) choicePlan {
	k, fin := s.plannedLen(ls, len(sentence), growExact)
	out := make([]string, 0, k)
	out = append(out, sentence[:min(k, len(sentence))]...)
	return choicePlan{pieces: appendLoremWords(out, k-len(out), p), finish: fin}
}

// planFixed emits a document of fixed size (tool arguments, a JSON
// document); only max_tokens or the context can truncate it.
func (s *Server) planFixed(ls lengthSpec, doc []string) choicePlan {
	k, fin := s.plannedLen(ls, len(doc), growNever)
	return choicePlan{pieces: doc[:k], finish: fin}
}

var (
	jsonObjectHead = splitTokens(`{"simulated":true,"text":"`)
	jsonObjectTail = []string{`"`, `}`}
)

// planJSONObject answers {"simulated":true,"text":"<lorem>"}: valid JSON
// unless max_tokens cuts it.
func (s *Server) planJSONObject(ls lengthSpec, p *prng) choicePlan {
	frame := len(jsonObjectHead) + len(jsonObjectTail)
	k, fin := s.plannedLen(ls, frame+len(loremPrefix), growAlways)
	full := max(k, frame+len(loremPrefix))
	out := make([]string, 0, full)
	out = append(out, jsonObjectHead...)
	out = appendLorem(out, full-frame, p)
	out = append(out, jsonObjectTail...)
	return choicePlan{pieces: out[:k], finish: fin}
}

// --- playing a job out ---

// pacer waits for absolute deadlines (no drift over long answers), with
// one reusable timer, and gives up when the client goes away.
type pacer struct {
	t    *time.Timer
	done <-chan struct{}
}

func (p *pacer) until(at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	if p.t == nil {
		p.t = time.NewTimer(d)
	} else {
		p.t.Reset(d)
	}
	select {
	case <-p.t.C:
		return true
	case <-p.done:
		p.t.Stop()
		return false
	}
}

func (p *pacer) stop() {
	if p.t != nil {
		p.t.Stop()
	}
}

// startStream sends a stream's status and headers. Like vLLM (whose
// server sends them as soon as the request is accepted), a queued or
// prefilling stream has its headers before its first token.
func startStream(w *respWriter) {
	writeStreamHeader(w)
	w.Flush()
}

func writeStreamHeader(w *respWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// queued returns what to do when the job must wait for a slot.
func (job *genJob) queued(w *respWriter) func() {
	if !job.stream {
		return nil
	}
	return func() { startStream(w) }
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// putBuf returns a buffer to the pool unless it grew too big to keep.
func putBuf(bp *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

// generate plays job out; the caller has acquired a slot for job.model,
// which generate releases.
func (s *Server) generate(w *respWriter, r *http.Request, job *genJob, d drawn) (out outcome) {
	m := job.model
	defer s.sched.release(m)
	m.promptToks.Add(int64(job.prompt))

	maxK, total := 0, 0
	for i := range job.choices {
		maxK = max(maxK, len(job.choices[i].pieces))
		total += len(job.choices[i].pieces)
	}
	p := pacer{done: r.Context().Done()}
	defer p.stop()
	t0 := time.Now()
	ttft := s.prefillTime(job)
	paced := s.cfg.ITL > 0 || s.cfg.ITLPerRunning > 0

	if !job.stream {
		if s.cfg.ITLPerRunning == 0 {
			wait := ttft
			if maxK > 1 {
				wait += time.Duration(maxK-1) * s.cfg.ITL
			}
			if wait > 0 && !p.until(t0.Add(wait)) {
				return outCancelled
			}
		} else {
			// The batch may change while the answer is decoded: one
			// deadline per token step, as for a stream.
			next := t0.Add(ttft)
			if !p.until(next) {
				return outCancelled
			}
			for range maxK - 1 {
				next = next.Add(s.itl())
				if !p.until(next) {
					return outCancelled
				}
			}
		}
		if d.cut {
			return outCut
		}
		bp := bufPool.Get().(*[]byte)
		var b []byte
		if job.chat {
			b = appendChatResponse((*bp)[:0], job, total)
		} else {
			b = appendCompletionResponse((*bp)[:0], job, total)
		}
		writeJSONBytes(w, http.StatusOK, b)
		putBuf(bp, b)
		s.finished(job, total)
		return outCompleted
	}

	next := t0.Add(ttft) // the deadline of the next token
	if ttft > 0 {
		if !w.started {
			startStream(w)
		}
		if !p.until(next) {
			return outCancelled
		}
	}
	sw := newEventWriter(w, job, paced)
	defer sw.release()
	emitted := 0
	cut := func() outcome {
		sw.flush()
		m.genToks.Add(int64(emitted))
		return outCut
	}
	if job.chat {
		for i := range job.choices {
			sw.role(i)
		}
		for i := range job.choices {
			if c := &job.choices[i]; c.toolName != "" {
				sw.toolHeader(i, c)
			}
		}
	}
	for i := range job.choices {
		if len(job.choices[i].pieces) == 0 {
			if d.cut {
				return cut()
			}
			sw.finish(i, &job.choices[i])
		}
	}
	for step := 0; step < maxK; step++ {
		if step > 0 && paced {
			next = next.Add(s.itl())
			if !p.until(next) {
				m.genToks.Add(int64(emitted))
				return outCancelled
			}
		}
		for i := range job.choices {
			c := &job.choices[i]
			if step >= len(c.pieces) {
				continue
			}
			emitted++
			sw.completion = emitted
			sw.token(i, c, c.pieces[step])
			if d.cut && (emitted >= d.cutAfter || step == len(c.pieces)-1) {
				return cut()
			}
			if step == len(c.pieces)-1 {
				sw.finish(i, c)
			}
		}
		if sw.err != nil {
			m.genToks.Add(int64(emitted))
			return outCancelled
		}
	}
	if d.cut { // nothing was generated: still never finish the stream
		return cut()
	}
	if job.includeUsage {
		sw.usage()
	}
	sw.done()
	if sw.err != nil {
		m.genToks.Add(int64(emitted))
		return outCancelled
	}
	s.finished(job, total)
	return outCompleted
}

// itl is the inter-token latency of the next token step: ITL, plus
// ITLPerRunning for every other sequence running now.
func (s *Server) itl() time.Duration {
	d := s.cfg.ITL
	if k := s.cfg.ITLPerRunning; k > 0 {
		if n := s.running.Load(); n > 1 {
			d += time.Duration(n-1) * k
		}
	}
	return d
}

// finished accounts a successful generation in the metrics.
func (s *Server) finished(job *genJob, total int) {
	m := job.model
	m.genToks.Add(int64(total))
	length := false
	for i := range job.choices {
		length = length || job.choices[i].finish == "length"
	}
	if length {
		m.okLength.Add(1)
	} else {
		m.okStop.Add(1)
	}
}

// --- non-streamed bodies ---

func appendHead(b []byte, job *genJob, object string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, job.id)
	b = append(b, `,"object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = appendInt(b, int(job.created))
	b = append(b, `,"model":`...)
	return appendJSONString(b, job.name)
}

func appendChatResponse(b []byte, job *genJob, total int) []byte {
	b = appendHead(b, job, "chat.completion")
	b = append(b, `,"choices":[`...)
	for i := range job.choices {
		c := &job.choices[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, i)
		b = append(b, `,"message":{"role":"assistant","reasoning_content":null,"content":`...)
		if c.toolName != "" {
			b = append(b, `null,"tool_calls":[{"id":`...)
			b = appendJSONString(b, c.toolID)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendJSONString(b, c.toolName)
			b = append(b, `,"arguments":`...)
			b = appendJSONPieces(b, c.pieces)
			b = append(b, `}}]}`...)
		} else {
			b = appendJSONPieces(b, c.pieces)
			b = append(b, `,"tool_calls":[]}`...)
		}
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
		b = append(b, c.finish...)
		b = append(b, `","stop_reason":null}`...)
	}
	b = append(b, `],"usage":`...)
	b = appendUsageCached(b, job.prompt, total, job.cached)
	return append(b, '}')
}

func appendCompletionResponse(b []byte, job *genJob, total int) []byte {
	b = appendHead(b, job, "text_completion")
	b = append(b, `,"choices":[`...)
	for i := range job.choices {
		c := &job.choices[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, i)
		b = append(b, `,"text":`...)
		b = appendJSONPieces(b, c.pieces)
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
		b = append(b, c.finish...)
		b = append(b, `","stop_reason":null,"prompt_logprobs":null}`...)
	}
	b = append(b, `],"usage":`...)
	b = appendUsageCached(b, job.prompt, total, job.cached)
	return append(b, '}')
}

// --- server-sent events ---

// eventWriter writes one SSE event per chunk, reusing one buffer. Events
// are flushed one by one when tokens are paced; at zero inter-token
// latency they are coalesced (flushed at the first event and at the end),
// which a client cannot tell apart and saves a syscall per token.
type eventWriter struct {
	w          *respWriter
	job        *genJob
	head       []byte // `data: {"id":…,"model":…,"choices":[`
	headBuf    *[]byte
	buf        *[]byte
	flushEach  bool
	started    bool
	completion int // tokens so far, for continuous usage stats
	err        error
}

func newEventWriter(w *respWriter, job *genJob, flushEach bool) *eventWriter {
	bp := bufPool.Get().(*[]byte)
	object := "text_completion"
	if job.chat {
		object = "chat.completion.chunk"
	}
	head := append((*bp)[:0], "data: "...)
	head = appendHead(head, job, object)
	head = append(head, `,"choices":[`...)
	eb := bufPool.Get().(*[]byte)
	return &eventWriter{w: w, job: job, head: head, headBuf: bp, buf: eb, flushEach: flushEach}
}

func (e *eventWriter) release() {
	putBuf(e.buf, *e.buf)
	putBuf(e.headBuf, e.head)
}

// begin starts an event with the common head.
func (e *eventWriter) begin() []byte {
	return append((*e.buf)[:0], e.head...)
}

// end closes the choices array, adds usage when asked, and sends.
func (e *eventWriter) end(b []byte, withUsage bool) {
	b = append(b, ']')
	if withUsage {
		b = append(b, `,"usage":`...)
		b = appendUsage(b, e.job.prompt, e.completion)
	}
	b = append(b, "}\n\n"...)
	e.send(b)
}

func (e *eventWriter) send(b []byte) {
	*e.buf = b
	if e.err != nil {
		return
	}
	if !e.w.started {
		writeStreamHeader(e.w)
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = err
		return
	}
	if e.flushEach || !e.started {
		e.flush()
	}
	e.started = true
}

func (e *eventWriter) flush() {
	if e.err == nil {
		e.w.Flush()
	}
}

func appendChoiceIndex(b []byte, i int) []byte {
	b = append(b, `{"index":`...)
	return appendInt(b, i)
}

const choiceTail = `,"logprobs":null,"finish_reason":null}`

func (e *eventWriter) role(i int) {
	b := appendChoiceIndex(e.begin(), i)
	b = append(b, `,"delta":{"role":"assistant","content":""}`+choiceTail...)
	e.end(b, e.job.continuousUsage)
}

func (e *eventWriter) toolHeader(i int, c *choicePlan) {
	b := appendChoiceIndex(e.begin(), i)
	b = append(b, `,"delta":{"tool_calls":[{"index":0,"id":`...)
	b = appendJSONString(b, c.toolID)
	b = append(b, `,"type":"function","function":{"name":`...)
	b = appendJSONString(b, c.toolName)
	b = append(b, `,"arguments":""}}]}`+choiceTail...)
	e.end(b, e.job.continuousUsage)
}

func (e *eventWriter) token(i int, c *choicePlan, piece string) {
	b := appendChoiceIndex(e.begin(), i)
	switch {
	case !e.job.chat:
		b = append(b, `,"text":`...)
		b = appendJSONString(b, piece)
		b = append(b, `,"logprobs":null,"finish_reason":null,"stop_reason":null}`...)
	case c.toolName != "":
		b = append(b, `,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`...)
		b = appendJSONString(b, piece)
		b = append(b, `}}]}`+choiceTail...)
	default:
		b = append(b, `,"delta":{"content":`...)
		b = appendJSONString(b, piece)
		b = append(b, '}')
		b = append(b, choiceTail...)
	}
	e.end(b, e.job.continuousUsage)
}

func (e *eventWriter) finish(i int, c *choicePlan) {
	b := appendChoiceIndex(e.begin(), i)
	if e.job.chat {
		b = append(b, `,"delta":{}`...)
	} else {
		b = append(b, `,"text":""`...)
	}
	b = append(b, `,"logprobs":null,"finish_reason":"`...)
	b = append(b, c.finish...)
	b = append(b, `","stop_reason":null}`...)
	e.end(b, e.job.continuousUsage)
}

// usage sends the final usage chunk (empty choices): the only chunk that
// reports cached prompt tokens, as in vLLM.
func (e *eventWriter) usage() {
	b := append(e.begin(), `],"usage":`...)
	b = appendUsageCached(b, e.job.prompt, e.completion, e.job.cached)
	e.send(append(b, "}\n\n"...))
}

func (e *eventWriter) done() {
	e.send(append((*e.buf)[:0], "data: [DONE]\n\n"...))
	e.flush()
}
