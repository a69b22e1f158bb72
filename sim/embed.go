package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Simulated embeddings are feature hashes: lower-cased words and their
// character trigrams are hashed into signed buckets, then the vector is
// unit-normalised. Deterministic, cheap, and texts that share words or
// spellings get similar vectors, which makes rerank and RAG demos behave
// plausibly.

const (
	wordWeight    = 1.0
	trigramWeight = 0.5
)

func addFeature(v []float64, h uint64, w float64) {
	h = splitmix64(h)
	if h>>63 == 1 {
		w = -w
	}
	v[h%uint64(len(v))] += w
}

// rawEmbedding is the un-normalised feature vector of a prompt.
func rawEmbedding(p prompt, dim int) []float64 {
	v := make([]float64, dim)
	if p.isIDs {
		for i, id := range p.ids {
			addFeature(v, fnv64Uint(fnvOffset, uint64(id)), wordWeight)
			if i > 0 {
				addFeature(v, fnv64Uint(fnv64Uint(fnvOffset^1, uint64(p.ids[i-1])), uint64(id)), trigramWeight)
			}
		}
		return v
	}
	text := strings.ToLower(p.text)
	for i := 0; i < len(text); {
		r, n := runeAt(text, i)
		if !isWordRune(r) {
			i += n
			continue
		}
		j := i + n
		for j < len(text) {
			r, n = runeAt(text, j)
			if !isWordRune(r) {
				break
			}
			j += n
		}
		word := text[i:j]
		addFeature(v, fnv64(fnvOffset, word), wordWeight)
		// Trigrams of " word ", so that prefixes and suffixes count too.
		at := func(k int) byte {
			if k == 0 || k == len(word)+1 {
				return ' '
			}
			return word[k-1]
		}
		for k := 0; k+3 <= len(word)+2; k++ {
			h := uint64(fnvOffset ^ 2)
			for _, c := range [3]byte{at(k), at(k + 1), at(k + 2)} {
				h = (h ^ uint64(c)) * 1099511628211
			}
			addFeature(v, h, trigramWeight)
		}
		i = j
	}
	return v
}

// normalize scales v to unit length; a zero vector becomes the first basis
// vector so that every embedding is a unit vector.
func normalize(v []float64) {
	var sum float64
	for _, x := range v {
		sum += x * x
	}
	if sum == 0 {
		v[0] = 1
		return
	}
	inv := 1 / math.Sqrt(sum)
	for i := range v {
		v[i] *= inv
	}
}

func (s *Server) embedding(p prompt) []float64 {
	v := rawEmbedding(p, s.cfg.EmbeddingDim)
	normalize(v)
	return v
}

func cosine(a, b []float64) float64 {
	var d float64
	for i := range a {
		d += a[i] * b[i]
	}
	return d
}

// --- vLLM /v1/embeddings ---

type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

func (s *Server) embeddings(w *respWriter, r *http.Request, body []byte) outcome {
	var req embeddingsRequest
	e := decodeJSON(body, &req)
	var m *modelCounters
	var inputs []prompt
	if e == nil {
		m, e = s.model(req.Model)
	}
	if e == nil {
		inputs, e = parseInputs(req.Input, "input")
	}
	dim := s.cfg.EmbeddingDim
	if e == nil && req.Dimensions != nil {
		if d := *req.Dimensions; d < 1 || d > s.cfg.EmbeddingDim {
			e = badRequest("`dimensions` must be between 1 and " + itoa(s.cfg.EmbeddingDim) + " for model `" + m.name + "`, got " + itoa(d))
		} else {
			dim = d
		}
	}
	if e == nil && req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		e = badRequest("`encoding_format` must be float or base64, got `" + req.EncodingFormat + "`")
	}
	tokens := 0
	for _, p := range inputs {
		if e != nil {
			break
		}
		t := p.tokens()
		if t > s.cfg.MaxModelLen {
			e = contextError(s.cfg.MaxModelLen, t)
		}
		tokens += t
	}
	if e != nil {
		writeError(w, e.status, e.msg)
		return outFailed
	}
	release, out, ok := s.startPooled(w, r, m, false)
	if !ok {
		return out
	}
	defer release()

	b := make([]byte, 0, 64+len(inputs)*dim*12)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, s.newID("embd-"))
	b = append(b, `,"object":"list","created":`...)
	b = appendInt(b, int(time.Now().Unix()))
	b = append(b, `,"model":`...)
	b = append(b, m.quoted...)
	b = append(b, `,"data":[`...)
	raw := make([]byte, dim*4)
	for i, p := range inputs {
		v := s.embedding(p)
		if dim < len(v) { // Matryoshka-style: truncate, then re-normalise
			v = v[:dim]
			normalize(v)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, i)
		b = append(b, `,"object":"embedding","embedding":`...)
		if req.EncodingFormat == "base64" {
			for j, x := range v {
				binary.LittleEndian.PutUint32(raw[j*4:], math.Float32bits(float32(x)))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = appendVector(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `],"usage":{"prompt_tokens":`...)
	b = appendInt(b, tokens)
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, tokens)
	b = append(b, `,"completion_tokens":0}}`...)
	writeJSONBytes(w, http.StatusOK, b)
	s.pooled(m, tokens)
	return outCompleted
}

func appendVector(b []byte, v []float64) []byte {
	b = append(b, '[')
	for j, x := range v {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendFloat32(b, float32(x))
	}
	return append(b, ']')
}

// prefill waits TTFT: a pooling request's whole latency. It reports false
// when the client went away.
// startPooled admits a pooling request (embeddings, rerank, audio), waits
// its prefill time and plays a drawn cut. When ok, the caller must call
// release; otherwise the answer (or the lack of one) is already settled.
func (s *Server) startPooled(w http.ResponseWriter, r *http.Request, m *modelCounters, tei bool) (release func(), out outcome, ok bool) {
	d, out, ok := s.admit(w, r, m, 0, tei, nil)
	if !ok {
		return nil, out, false
	}
	release = func() { s.sched.release(m) }
	switch {
	case !s.prefill(r):
		release()
		return nil, outCancelled, false
	case d.cut:
		release()
		return nil, outCut, false
	}
	return release, outCompleted, true
}

func (s *Server) prefill(r *http.Request) bool {
	if s.cfg.TTFT <= 0 {
		return true
	}
	p := pacer{done: r.Context().Done()}
	defer p.stop()
	return p.until(time.Now().Add(s.cfg.TTFT))
}

// pooled accounts a successful pooling request in the metrics.
func (s *Server) pooled(m *modelCounters, promptTokens int) {
	m.promptToks.Add(int64(promptTokens))
	m.okStop.Add(1)
}

// --- TEI ---

// writeTEIError answers in TEI's error format.
func writeTEIError(w http.ResponseWriter, status int, typ, msg string) {
	b := make([]byte, 0, 48+len(msg))
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"error_type":`...)
	b = appendJSONString(b, typ)
	b = append(b, '}')
	writeJSONBytes(w, status, b)
}

const teiMaxBatch = 32

type teiEmbedRequest struct {
	Inputs    json.RawMessage `json:"inputs"`
	Normalize *bool           `json:"normalize"`
	Truncate  bool            `json:"truncate"`
}

// teiCheck applies TEI's input validation (413 "validation" errors). With
// truncate the prompt is cut to the maximum input length instead.
func (s *Server) teiCheck(p *prompt, truncate bool) (string, bool) {
	n := p.tokens()
	if n <= s.cfg.MaxModelLen {
		return "", true
	}
	if !truncate {
		return "Input validation error: `inputs` must have less than " + itoa(s.cfg.MaxModelLen) +
			" tokens. Given: " + itoa(n), false
	}
	if p.isIDs {
		p.ids = p.ids[:s.cfg.MaxModelLen]
	} else {
		end := 0
		for range s.cfg.MaxModelLen {
			end, _ = scanToken(p.text, end)
		}
		p.text = p.text[:end]
	}
	return "", true
}

func (s *Server) teiEmbed(w *respWriter, r *http.Request, body []byte) outcome {
	var req teiEmbedRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeTEIError(w, http.StatusUnprocessableEntity, "validation", "Failed to deserialize the JSON body: "+err.Error())
		return outFailed
	}
	if in := bytes.TrimSpace(req.Inputs); string(in) == "[]" || string(in) == `""` {
		writeTEIError(w, http.StatusBadRequest, "empty", "`inputs` cannot be empty")
		return outFailed
	}
	inputs, e := parseInputs(req.Inputs, "inputs")
	if e != nil {
		writeTEIError(w, http.StatusUnprocessableEntity, "validation", e.msg)
		return outFailed
	}
	if len(inputs) > teiMaxBatch {
		writeTEIError(w, http.StatusRequestEntityTooLarge, "validation",
			"batch size "+itoa(len(inputs))+" > maximum allowed batch size "+itoa(teiMaxBatch))
		return outFailed
	}
	tokens := 0
	for i := range inputs {
		if msg, ok := s.teiCheck(&inputs[i], req.Truncate); !ok {
			writeTEIError(w, http.StatusRequestEntityTooLarge, "validation", msg)
			return outFailed
		}
		tokens += inputs[i].tokens()
	}
	m := s.models[0]
	release, out, ok := s.startPooled(w, r, m, true)
	if !ok {
		return out
	}
	defer release()
	b := make([]byte, 0, 2+len(inputs)*s.cfg.EmbeddingDim*12)
	b = append(b, '[')
	for i, p := range inputs {
		v := rawEmbedding(p, s.cfg.EmbeddingDim)
		if req.Normalize == nil || *req.Normalize {
			normalize(v)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendVector(b, v)
	}
	b = append(b, ']')
	writeJSONBytes(w, http.StatusOK, b)
	s.pooled(m, tokens)
	return outCompleted
}

// --- rerank: vLLM/Cohere and TEI shapes ---

type rerankRequest struct {
	Model     string            `json:"model"`
	Query     *string           `json:"query"`
	Documents []json.RawMessage `json:"documents"`
	TopN      int               `json:"top_n"`

	// TEI
	Texts      []string `json:"texts"`
	RawScores  bool     `json:"raw_scores"`
	ReturnText bool     `json:"return_text"`
	Truncate   bool     `json:"truncate"`
}

type scored struct {
	index int
	text  string
	score float64
}

// relevance maps the cosine of the simulated embeddings to [0,1].
func (s *Server) relevance(query []float64, doc string) float64 {
	c := cosine(query, s.embedding(prompt{text: doc}))
	return math.Max(0, math.Min(1, (c+1)/2))
}

func rankDesc(results []scored) {
	slices.SortStableFunc(results, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
}

func (s *Server) rerank(w *respWriter, r *http.Request, body []byte) outcome {
	var probe struct {
		Texts json.RawMessage `json:"texts"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.Texts != nil {
		return s.teiRerank(w, r, body)
	}
	var req rerankRequest
	e := decodeJSON(body, &req)
	var m *modelCounters
	if e == nil {
		m, e = s.model(req.Model)
	}
	if e == nil && req.Query == nil {
		e = badRequest("`query` is required")
	}
	if e == nil && req.Documents == nil {
		e = badRequest("`documents` is required")
	}
	if e == nil && req.TopN < 0 {
		e = badRequest("`top_n` must not be negative")
	}
	docs := make([]string, len(req.Documents))
	for i, raw := range req.Documents {
		if e != nil {
			break
		}
		if raw = bytes.TrimSpace(raw); len(raw) > 0 && raw[0] == '{' {
			var d struct {
				Text *string `json:"text"`
			}
			if json.Unmarshal(raw, &d) != nil || d.Text == nil {
				e = badRequest("`documents[" + itoa(i) + "]` must be a string or an object with a `text` string")
			} else {
				docs[i] = *d.Text
			}
		} else if json.Unmarshal(raw, &docs[i]) != nil {
			e = badRequest("`documents[" + itoa(i) + "]` must be a string or an object with a `text` string")
		}
	}
	if e != nil {
		writeError(w, e.status, e.msg)
		return outFailed
	}
	qTokens := CountTokens(*req.Query)
	tokens := 0
	for _, d := range docs {
		pair := qTokens + CountTokens(d)
		if pair > s.cfg.MaxModelLen {
			e := contextError(s.cfg.MaxModelLen, pair)
			writeError(w, e.status, e.msg)
			return outFailed
		}
		tokens += pair
	}
	release, out, ok := s.startPooled(w, r, m, false)
	if !ok {
		return out
	}
	defer release()
	q := s.embedding(prompt{text: *req.Query})
	results := make([]scored, len(docs))
	for i, doc := range docs {
		results[i] = scored{index: i, text: doc, score: s.relevance(q, doc)}
	}
	rankDesc(results)
	if req.TopN > 0 && req.TopN < len(results) {
		results = results[:req.TopN]
	}
	b := make([]byte, 0, 128+len(body))
	b = append(b, `{"id":`...)
	b = appendJSONString(b, s.newID("rerank-"))
	b = append(b, `,"model":`...)
	b = append(b, m.quoted...)
	b = append(b, `,"usage":{"total_tokens":`...)
	b = appendInt(b, tokens)
	b = append(b, `},"results":[`...)
	for i, res := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, res.index)
		b = append(b, `,"document":{"text":`...)
		b = appendJSONString(b, res.text)
		b = append(b, `},"relevance_score":`...)
		b = appendFloat32(b, float32(res.score))
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	writeJSONBytes(w, http.StatusOK, b)
	s.pooled(m, tokens)
	return outCompleted
}

func (s *Server) teiRerank(w *respWriter, r *http.Request, body []byte) outcome {
	var req rerankRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeTEIError(w, http.StatusUnprocessableEntity, "validation", "Failed to deserialize the JSON body: "+err.Error())
		return outFailed
	}
	switch {
	case req.Query == nil:
		writeTEIError(w, http.StatusUnprocessableEntity, "validation", "Failed to deserialize the JSON body: missing field `query`")
		return outFailed
	case len(req.Texts) == 0:
		writeTEIError(w, http.StatusBadRequest, "empty", "`texts` cannot be empty")
		return outFailed
	case len(req.Texts) > teiMaxBatch:
		writeTEIError(w, http.StatusRequestEntityTooLarge, "validation",
			"batch size "+itoa(len(req.Texts))+" > maximum allowed batch size "+itoa(teiMaxBatch))
		return outFailed
	}
	tokens := 0
	for _, t := range req.Texts {
		p := prompt{text: *req.Query + " " + t}
		if msg, ok := s.teiCheck(&p, req.Truncate); !ok {
			writeTEIError(w, http.StatusRequestEntityTooLarge, "validation", msg)
			return outFailed
		}
		tokens += p.tokens()
	}
	m := s.models[0]
	release, out, ok := s.startPooled(w, r, m, true)
	if !ok {
		return out
	}
	defer release()
	q := s.embedding(prompt{text: *req.Query})
	results := make([]scored, len(req.Texts))
	for i, t := range req.Texts {
		results[i] = scored{index: i, text: t, score: s.relevance(q, t)}
	}
	rankDesc(results)
	b := make([]byte, 0, 64*len(results))
	b = append(b, '[')
	for i, res := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = appendInt(b, res.index)
		if req.ReturnText {
			b = append(b, `,"text":`...)
			b = appendJSONString(b, res.text)
		}
		b = append(b, `,"score":`...)
		score := res.score
		if req.RawScores { // the logit whose sigmoid is the score
			p := math.Min(math.Max(score, 1e-6), 1-1e-6)
			score = math.Log(p / (1 - p))
		}
		b = appendFloat32(b, float32(score))
		b = append(b, '}')
	}
	b = append(b, ']')
	writeJSONBytes(w, http.StatusOK, b)
	s.pooled(m, tokens)
	return outCompleted
}
