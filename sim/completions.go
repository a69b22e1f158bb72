package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	N             *int            `json:"n"`
	MaxTokens     *int            `json:"max_tokens"`
	IgnoreEOS     bool            `json:"ignore_eos"`
	Priority      json.RawMessage `json:"priority"`
}

// prompt is one prompt of a completions request: text or token ids.
type prompt struct {
	text  string
	ids   []int64
	isIDs bool
}

func (p prompt) tokens() int {
	if p.isIDs {
		return len(p.ids)
	}
	return CountTokens(p.text)
}

// parseInputs reads the four shapes OpenAI accepts for a prompt or an
// embedding input: a string, a list of strings, a list of token ids, a
// list of lists of token ids.
func parseInputs(raw json.RawMessage, field string) ([]prompt, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest("`" + field + "` is required")
	}
	bad := badRequest("invalid `" + field + "`: expected a string, a list of strings, a list of token ids or a list of lists of token ids")
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, bad
		}
		return []prompt{{text: s}}, nil
	case '[':
	default:
		return nil, bad
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, bad
	}
	if len(items) == 0 {
		return nil, badRequest("`" + field + "` must not be empty")
	}
	switch first := bytes.TrimSpace(items[0]); {
	case len(first) > 0 && first[0] == '"':
		var ss []string
		if json.Unmarshal(raw, &ss) != nil {
			return nil, bad
		}
		out := make([]prompt, len(ss))
		for i, s := range ss {
			out[i] = prompt{text: s}
		}
		return out, nil
	case len(first) > 0 && first[0] == '[':
		var lists [][]int64
		if json.Unmarshal(raw, &lists) != nil {
			return nil, bad
		}
		out := make([]prompt, len(lists))
		for i, ids := range lists {
			if e := checkIDs(ids, field); e != nil {
				return nil, e
			}
			out[i] = prompt{ids: ids, isIDs: true}
		}
		return out, nil
	default:
		var ids []int64
		if json.Unmarshal(raw, &ids) != nil {
			return nil, bad
		}
		if e := checkIDs(ids, field); e != nil {
			return nil, e
		}
		return []prompt{{ids: ids, isIDs: true}}, nil
	}
}

func checkIDs(ids []int64, field string) *apiError {
	if len(ids) == 0 {
		return badRequest("`" + field + "` must not contain an empty list of token ids")
	}
	for _, id := range ids {
		if id < 0 {
			return badRequest("`" + field + "` token ids must not be negative")
		}
	}
	return nil
}

func (s *Server) completions(w *respWriter, r *http.Request, body []byte) outcome {
	return s.planAndGenerate(w, r, body, s.planCompletions)
}

func (s *Server) planCompletions(body []byte) (*genJob, *apiError) {
	var req completionRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	m, e := s.model(req.Model)
	if e != nil {
		return nil, e
	}
	prompts, e := parseInputs(req.Prompt, "prompt")
	if e != nil {
		return nil, e
	}
	n, e := validN(req.N)
	if e != nil {
		return nil, e
	}
	if len(prompts)*n > maxChoices {
		return nil, badRequest("prompts × n must be at most " + itoa(maxChoices) + " on guichet-sim")
	}
	maxTok, e := validMaxTokens(req.MaxTokens, "max_tokens")
	if e != nil {
		return nil, e
	}
	if req.StreamOptions != nil && !req.Stream {
		return nil, badRequest("Stream options can only be defined when `stream=True`.")
	}
	priority, e := parsePriority(req.Priority)
	if e != nil {
		return nil, e
	}
	job := &genJob{
		id:       s.newID("cmpl-"),
		model:    m,
		name:     m.name,
		created:  time.Now().Unix(),
		choices:  make([]choicePlan, 0, len(prompts)*n),
		stream:   req.Stream,
		priority: priority,
	}
	if o := req.StreamOptions; o != nil {
		job.includeUsage = o.IncludeUsage
		job.continuousUsage = o.ContinuousUsageStats
	}
	base := fnv64Uint(fnv64(fnvOffset, m.name), uint64(s.cfg.Seed))
	// Like vLLM, choice index = prompt index × n + sample index, and the
	// usage sums over prompts.
	for _, p := range prompts {
		tok := p.tokens()
		if tok > s.cfg.MaxModelLen {
			return nil, contextError(s.cfg.MaxModelLen, tok)
		}
		job.prompt += tok
		if s.cache != nil {
			// Each prompt is a request of its own to vLLM's engine.
			hb := newBlockHasher(s.cfg.BlockTokens, m.name)
			if p.isIDs {
				for _, id := range p.ids {
					hb.tokenID(id)
				}
			} else {
				hb.text(p.text)
			}
			job.prefix = append(job.prefix, hb.result())
		}
		seed := fnv64(base, p.text)
		for _, id := range p.ids {
			seed = fnv64Uint(seed, uint64(id))
		}
		var echo []string
		if s.cfg.Content == "echo" && !p.isIDs {
			echo = splitTokens(p.text)
		}
		ls := lengthSpec{maxTokens: maxTok, ignoreEOS: req.IgnoreEOS, ctxLeft: s.cfg.MaxModelLen - tok}
		for j := range n {
			pr := &prng{s: splitmix64(seed + uint64(j))}
			if echo != nil {
				job.choices = append(job.choices, s.planEcho(ls, echo, pr))
			} else {
				job.choices = append(job.choices, s.planLorem(ls, pr))
			}
		}
	}
	return job, nil
}
