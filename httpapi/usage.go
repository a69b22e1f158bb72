package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/guichet/guichet"
	"github.com/guichet/guichet/carbon"
)

// MeUsage is one line of GET /v1/me/usage (OpenGateLLM 0.4's shape).
type MeUsage struct {
	Object   string    `json:"object" enum:"me.usage"`
	Created  int64     `json:"created" doc:"Unix seconds when the request arrived."`
	Model    string    `json:"model"`
	Key      int64     `json:"key" doc:"The id of the API key used."`
	Endpoint string    `json:"endpoint"`
	Method   string    `json:"method" enum:"POST"`
	Status   int       `json:"status"`
	Usage    LineUsage `json:"usage"`
}

// LineUsage is a ledger line's usage.
type LineUsage struct {
	PromptTokens     int64          `json:"prompt_tokens"`
	CompletionTokens int64          `json:"completion_tokens"`
	TotalTokens      int64          `json:"total_tokens"`
	Cost             float64        `json:"cost"`
	Carbon           *carbon.Impact `json:"carbon" doc:"null when the model's parameters are unknown."`
	Metrics          LineMetrics    `json:"metrics"`
}

// LineMetrics are a request's timings, in milliseconds.
type LineMetrics struct {
	Latency int64  `json:"latency"`
	TTFT    *int64 `json:"ttft" doc:"Time to first token of a stream; null when not streamed."`
}

// MeUsageList is GET /v1/me/usage's answer.
type MeUsageList struct {
	Object string    `json:"object" enum:"list"`
	Data   []MeUsage `json:"data"`
}

var usageEndpoints = []guichet.Endpoint{guichet.EndpointChat, guichet.EndpointCompletions, guichet.EndpointEmbeddings, guichet.EndpointRerank, guichet.EndpointTranscription}

// meUsage lists the caller's ledger lines, newest first.
func (s *Server) meUsage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return
	}
	if s.usage == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "no_ledger", "this server keeps no usage ledger"))
		return
	}
	page, gerr := parsePage(r)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	page.OrderBy, page.Desc = "time", true
	f := guichet.UsageFilter{UserID: p.User.ID}
	q := r.URL.Query()
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"start_time", &f.From}, {"end_time", &f.To}} {
		if v := q.Get(t.name); v != "" {
			secs, err := strconv.ParseInt(v, 10, 64)
			if err != nil || secs < 0 {
				writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be unix seconds, not %q", t.name, v).WithParam(t.name))
				return
			}
			*t.dst = time.Unix(secs, 0).UTC()
		}
	}
	if v := q.Get("endpoint"); v != "" {
		f.Endpoint = guichet.Endpoint(v)
		known := false
		for _, e := range usageEndpoints {
			known = known || e == f.Endpoint
		}
		if !known {
			writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "endpoint must be one of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank, /v1/audio/transcriptions, not %q", v).WithParam("endpoint"))
			return
		}
	}
	lines, err := s.usage.Usage(r.Context(), f, page)
	if err != nil {
		writeError(w, s.storeError(err, "usage", ""))
		return
	}
	out := MeUsageList{Object: "list", Data: make([]MeUsage, 0, len(lines))}
	for _, l := range lines {
		u := MeUsage{Object: "me.usage", Created: l.Time.Unix(), Model: l.Model, Key: l.KeyID, Endpoint: string(l.Endpoint), Method: "POST", Status: l.Status,
			Usage: LineUsage{PromptTokens: l.PromptTokens, CompletionTokens: l.CompletionTokens, TotalTokens: l.PromptTokens + l.CompletionTokens,
				Cost: l.Cost.Units(), Metrics: LineMetrics{Latency: l.Latency.Milliseconds()}}}
		if l.KWh != nil && l.KgCO2eq != nil {
			u.Usage.Carbon = &carbon.Impact{KWh: *l.KWh, KgCO2eq: *l.KgCO2eq}
		}
		if l.TTFT > 0 {
			ms := l.TTFT.Milliseconds()
			u.Usage.Metrics.TTFT = &ms
		}
		out.Data = append(out.Data, u)
	}
	writeJSON(w, http.StatusOK, out)
}
