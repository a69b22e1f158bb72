package httpapi

import (
	"encoding/csv"
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

// usageFilter reads start_time, end_time and endpoint; for an
// administrator's view also user and organization.
func usageFilter(r *http.Request, admin bool) (f guichet.UsageFilter, gerr *guichet.Error) {
	if admin {
		if f.UserID, gerr = queryID(r, "user"); gerr == nil {
			f.OrganizationID, gerr = queryID(r, "organization")
		}
		if gerr != nil {
			return f, gerr
		}
	}
	q := r.URL.Query()
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"start_time", &f.From}, {"end_time", &f.To}, {"date_from", &f.From}, {"date_to", &f.To}} {
		if v := q.Get(t.name); v != "" {
			secs, err := strconv.ParseInt(v, 10, 64)
			if err != nil || secs < 0 {
				return f, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be unix seconds, not %q", t.name, v).WithParam(t.name)
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
			return f, errorf(http.StatusUnprocessableEntity, "invalid_value", "endpoint must be one of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank, /v1/audio/transcriptions, not %q", v).WithParam("endpoint")
		}
	}
	return f, nil
}

// ledgerReady answers 503 when the server keeps no ledger.
func (s *Server) ledgerReady(w http.ResponseWriter) bool {
	if s.usage == nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "no_ledger", "this server keeps no usage ledger"))
		return false
	}
	return true
}

func meUsageOf(l guichet.UsageLine) MeUsage {
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
	return u
}

// meUsage lists the caller's ledger lines, newest first (format=csv: all
// of them, as CSV).
func (s *Server) meUsage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return
	}
	if !s.ledgerReady(w) {
		return
	}
	f, gerr := usageFilter(r, false)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	f.UserID = p.User.ID
	if r.URL.Query().Get("format") == "csv" {
		s.usageCSV(w, r, f)
		return
	}
	page, gerr := parsePage(r)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	page.OrderBy, page.Desc = "time", true
	lines, err := s.usage.Usage(r.Context(), f, page)
	if err != nil {
		writeError(w, s.storeError(err, "usage", ""))
		return
	}
	out := MeUsageList{Object: "list", Data: make([]MeUsage, 0, len(lines))}
	for _, l := range lines {
		out.Data = append(out.Data, meUsageOf(l))
	}
	writeJSON(w, http.StatusOK, out)
}

// UsageTotals sums a selection of the ledger.
type UsageTotals struct {
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	Cost             float64 `json:"cost"`
	KWh              float64 `json:"kWh"`
	KgCO2eq          float64 `json:"kgCO2eq"`
}

// AdminUsage is a ledger line as administrators see it.
type AdminUsage struct {
	MeUsage
	RequestID    string `json:"request_id"`
	User         int64  `json:"user"`
	Organization int64  `json:"organization"`
	Provider     string `json:"provider"`
	Cancelled    bool   `json:"cancelled"`
}

// AdminUsageList is GET /v1/admin/usage's answer.
type AdminUsageList struct {
	Object string       `json:"object" enum:"list"`
	Data   []AdminUsage `json:"data"`
	Totals UsageTotals  `json:"totals" doc:"Sums over every line the filters select (not only this page)."`
}

func totalsOf(t guichet.UsageTotals) UsageTotals {
	return UsageTotals{Requests: t.Requests, PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens, Cost: t.Cost.Units(), KWh: t.KWh, KgCO2eq: t.KgCO2eq}
}

// adminUsage lists every user's lines (filters user, organization,
// endpoint, start_time, end_time), with the totals (format=csv: CSV).
func (s *Server) adminUsage(w http.ResponseWriter, r *http.Request) {
	if !s.ledgerReady(w) {
		return
	}
	f, gerr := usageFilter(r, true)
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		s.usageCSV(w, r, f)
		return
	}
	page, gerr := parsePage(r, "time", "cost", "total_tokens")
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	if r.URL.Query().Get("order_by") == "" {
		page.OrderBy, page.Desc = "time", true
	}
	lines, err := s.usage.Usage(r.Context(), f, page)
	if err != nil {
		writeError(w, s.storeError(err, "usage", ""))
		return
	}
	totals, err := s.usage.UsageTotals(r.Context(), f)
	if err != nil {
		writeError(w, s.storeError(err, "usage", ""))
		return
	}
	out := AdminUsageList{Object: "list", Data: make([]AdminUsage, 0, len(lines)), Totals: totalsOf(totals)}
	for _, l := range lines {
		out.Data = append(out.Data, AdminUsage{MeUsage: meUsageOf(l), RequestID: l.RequestID, User: l.UserID, Organization: l.OrganizationID, Provider: l.Provider, Cancelled: l.Cancelled})
	}
	writeJSON(w, http.StatusOK, out)
}

// maxCSVLines bounds one export; narrow the time range for more.
const maxCSVLines = 1_000_000

// usageCSV streams the selected lines as CSV, oldest first.
func (s *Server) usageCSV(w http.ResponseWriter, r *http.Request, f guichet.UsageFilter) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"time", "request_id", "organization", "user", "key", "endpoint", "model", "provider_model", "provider", "status",
		"prompt_tokens", "completion_tokens", "cost", "kwh", "kgco2eq", "latency_ms", "ttft_ms", "cancelled"})
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'g', -1, 64)
	}
	for offset := 0; offset < maxCSVLines; offset += 100 {
		lines, err := s.usage.Usage(r.Context(), f, guichet.Page{Offset: offset, Limit: 100, OrderBy: "time"})
		if err != nil {
			s.log.Error("usage CSV export cut short", "err", err)
			break // the header is out: the client sees a short file
		}
		for _, l := range lines {
			cw.Write([]string{l.Time.Format(time.RFC3339Nano), l.RequestID, itoa(l.OrganizationID), itoa(l.UserID), itoa(l.KeyID), string(l.Endpoint),
				l.Model, l.ProviderModel, l.Provider, strconv.Itoa(l.Status), itoa(l.PromptTokens), itoa(l.CompletionTokens), l.Cost.String(),
				opt(l.KWh), opt(l.KgCO2eq), itoa(l.Latency.Milliseconds()), itoa(l.TTFT.Milliseconds()), strconv.FormatBool(l.Cancelled)})
		}
		if len(lines) < 100 {
			break
		}
	}
	cw.Flush()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// LegacyUsage is a line of OpenGateLLM's July 2025 GET /v1/usage.
type LegacyUsage struct {
	ID               string   `json:"id" doc:"The request id."`
	Datetime         int64    `json:"datetime"`
	Duration         int64    `json:"duration" doc:"Milliseconds."`
	TimeToFirstToken *int64   `json:"time_to_first_token" doc:"Milliseconds; null when not streamed."`
	UserID           int64    `json:"user_id"`
	TokenID          int64    `json:"token_id"`
	Endpoint         string   `json:"endpoint"`
	Method           string   `json:"method"`
	Model            string   `json:"model" doc:"The model's name on the provider."`
	RequestModel     string   `json:"request_model"`
	PromptTokens     int64    `json:"prompt_tokens"`
	CompletionTokens int64    `json:"completion_tokens"`
	TotalTokens      int64    `json:"total_tokens"`
	Cost             float64  `json:"cost"`
	Status           int      `json:"status"`
	KWhMin           *float64 `json:"kwh_min" doc:"guichet gives the central estimate as min and max."`
	KWhMax           *float64 `json:"kwh_max"`
	KgCO2eqMin       *float64 `json:"kgco2eq_min"`
	KgCO2eqMax       *float64 `json:"kgco2eq_max"`
}

// LegacyUsageList is GET /v1/usage's answer.
type LegacyUsageList struct {
	Object           string        `json:"object" enum:"list"`
	Data             []LegacyUsage `json:"data"`
	Total            int64         `json:"total"`
	TotalRequests    int64         `json:"total_requests"`
	TotalAlbertCoins float64       `json:"total_albert_coins" doc:"The total cost."`
	TotalTokens      int64         `json:"total_tokens"`
	TotalCO2         float64       `json:"total_co2" doc:"Grams of CO2eq: a sum (OpenGateLLM gave an average)."`
	Page             int           `json:"page"`
	Limit            int           `json:"limit"`
	TotalPages       int64         `json:"total_pages"`
	HasMore          bool          `json:"has_more"`
}

// legacyUsage is OpenGateLLM's July 2025 usage listing, for its clients:
// page/limit, order_by datetime|cost|total_tokens, date_from/date_to
// (default: the last 30 days), with totals.
func (s *Server) legacyUsage(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if p.Master {
		writeError(w, errMasterIsNoUser)
		return
	}
	if !s.ledgerReady(w) {
		return
	}
	q := r.URL.Query()
	num := func(name string, def, lo, hi int) (int, *guichet.Error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, errorf(http.StatusUnprocessableEntity, "invalid_value", "%s must be a whole number from %d to %d, not %q", name, lo, hi, v).WithParam(name)
		}
		return n, nil
	}
	limit, gerr := num("limit", 50, 1, 100)
	var page int
	if gerr == nil {
		page, gerr = num("page", 1, 1, 1<<30)
	}
	f := guichet.UsageFilter{}
	if gerr == nil {
		f, gerr = usageFilter(r, false)
	}
	if gerr != nil {
		writeError(w, gerr)
		return
	}
	f.UserID = p.User.ID
	if f.To.IsZero() {
		f.To = time.Now().UTC().Add(time.Second)
	}
	if f.From.IsZero() {
		f.From = f.To.Add(-30 * 24 * time.Hour)
	}
	order := map[string]string{"": "time", "datetime": "time", "cost": "cost", "total_tokens": "total_tokens"}[q.Get("order_by")]
	if order == "" {
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "order_by must be datetime, cost or total_tokens, not %q", q.Get("order_by")).WithParam("order_by"))
		return
	}
	desc := true
	switch q.Get("order_direction") {
	case "", "desc":
	case "asc":
		desc = false
	default:
		writeError(w, errorf(http.StatusUnprocessableEntity, "invalid_value", "order_direction must be asc or desc").WithParam("order_direction"))
		return
	}
	lines, err := s.usage.Usage(r.Context(), f, guichet.Page{Offset: (page - 1) * limit, Limit: limit, OrderBy: order, Desc: desc})
	if err != nil {
		writeError(w, s.storeError(err, "usage", ""))
		return
	}
	t, err := s.usage.UsageTotals(r.Context(), f)
	if err != nil {
		writeError(w, s.storeError(err, "usage", ""))
		return
	}
	out := LegacyUsageList{Object: "list", Data: make([]LegacyUsage, 0, len(lines)), Total: t.Requests, TotalRequests: t.Requests,
		TotalAlbertCoins: t.Cost.Units(), TotalTokens: t.PromptTokens + t.CompletionTokens, TotalCO2: t.KgCO2eq * 1000,
		Page: page, Limit: limit, TotalPages: (t.Requests + int64(limit) - 1) / int64(limit)}
	out.HasMore = int64(page) < out.TotalPages
	for _, l := range lines {
		u := LegacyUsage{ID: l.RequestID, Datetime: l.Time.Unix(), Duration: l.Latency.Milliseconds(), UserID: l.UserID, TokenID: l.KeyID,
			Endpoint: string(l.Endpoint), Method: "POST", Model: l.ProviderModel, RequestModel: l.Model, PromptTokens: l.PromptTokens,
			CompletionTokens: l.CompletionTokens, TotalTokens: l.PromptTokens + l.CompletionTokens, Cost: l.Cost.Units(), Status: l.Status,
			KWhMin: l.KWh, KWhMax: l.KWh, KgCO2eqMin: l.KgCO2eq, KgCO2eqMax: l.KgCO2eq}
		if l.TTFT > 0 {
			ms := l.TTFT.Milliseconds()
			u.TimeToFirstToken = &ms
		}
		out.Data = append(out.Data, u)
	}
	writeJSON(w, http.StatusOK, out)
}

// UsageDay is one day of one user's use of one model: sums.
type UsageDay struct {
	Day              string  `json:"day" doc:"UTC date, YYYY-MM-DD."`
	Organization     int64   `json:"organization"`
	User             int64   `json:"user"`
	Model            string  `json:"model"`
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	Cost             float64 `json:"cost"`
	KWh              float64 `json:"kWh"`
	KgCO2eq          float64 `json:"kgCO2eq"`
}

// UsageDayList is the answer of the daily usage endpoints.
type UsageDayList struct {
	Object string     `json:"object" enum:"list"`
	Data   []UsageDay `json:"data"`
}

// usageDaily answers daily sums by model: the caller's (me), or anyone's
// for administrators (filters user, organization).
func (s *Server) usageDaily(admin bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		if !admin && p.Master {
			writeError(w, errMasterIsNoUser)
			return
		}
		if !s.ledgerReady(w) {
			return
		}
		f, gerr := usageFilter(r, admin)
		if gerr != nil {
			writeError(w, gerr)
			return
		}
		if !admin {
			f.UserID = p.User.ID
		}
		days, err := s.usage.UsageDaily(r.Context(), f)
		if err != nil {
			writeError(w, s.storeError(err, "usage", ""))
			return
		}
		out := UsageDayList{Object: "list", Data: make([]UsageDay, 0, len(days))}
		for _, d := range days {
			out.Data = append(out.Data, UsageDay{Day: d.Day.Format(time.DateOnly), Organization: d.OrganizationID, User: d.UserID, Model: d.Model,
				Requests: d.Requests, PromptTokens: d.PromptTokens, CompletionTokens: d.CompletionTokens, TotalTokens: d.PromptTokens + d.CompletionTokens,
				Cost: d.Cost.Units(), KWh: d.KWh, KgCO2eq: d.KgCO2eq})
		}
		writeJSON(w, http.StatusOK, out)
	}
}
