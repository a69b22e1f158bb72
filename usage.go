package guichet

import (
	"context"
	"time"
)

// UsageLine is one line of the usage ledger: one per served request, and
// one per upstream attempt when a retry or a fallback happened (linked by
// RequestID). It never holds prompt or answer content.
type UsageLine struct {
	Time             time.Time // when the request arrived (UTC)
	RequestID        string
	Attempt          int // 0: the request's line; 1…n: its upstream attempts, when there were several
	OrganizationID   int64
	UserID           int64
	KeyID            int64
	Endpoint         Endpoint
	Model            string // the model the client asked for (its configured name)
	ProviderModel    string // the model name on the provider that answered
	Provider         string // the provider's id
	Status           int    // HTTP status given to the client (499: the client left)
	PromptTokens     int64
	CompletionTokens int64
	Cost             Amount
	KWh              *float64 // nil: unknown (a model without parameters)
	KgCO2eq          *float64
	Latency          time.Duration // until the last byte
	TTFT             time.Duration // until the first streamed event; 0 when not streamed
	Cancelled        bool          // the client disconnected before the end
}

// UsageFilter selects ledger lines; zero fields do not filter. From is
// inclusive, To exclusive.
type UsageFilter struct {
	UserID         int64
	OrganizationID int64
	Endpoint       Endpoint
	From, To       time.Time
}

// UsageTotals sums the lines a filter selects.
type UsageTotals struct {
	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	Cost             Amount
	KWh              float64
	KgCO2eq          float64
}

// UsageDay sums one day (UTC) of one user's use of one model.
type UsageDay struct {
	Day              time.Time // midnight UTC
	OrganizationID   int64
	UserID           int64
	Model            string
	Requests         int64
	PromptTokens     int64
	CompletionTokens int64
	Cost             Amount
	KWh              float64
	KgCO2eq          float64
}

// MaxUsageDays bounds one UsageDaily answer.
const MaxUsageDays = 10000

// Ledger stores usage lines. SQLite and PostgreSQL implement it; one
// conformance suite (storetest) runs on both.
type Ledger interface {
	// Record writes lines in one batch. A line already recorded (same
	// RequestID and Attempt) is skipped, so replaying a batch after a
	// failure never counts a request twice.
	Record(ctx context.Context, lines []UsageLine) error
	// Usage lists lines, newest first unless p says otherwise (OrderBy
	// "time", "cost" or "total_tokens").
	Usage(ctx context.Context, f UsageFilter, p Page) ([]UsageLine, error)
	// UsageTotals sums the lines f selects.
	UsageTotals(ctx context.Context, f UsageFilter) (UsageTotals, error)
	// UsageDaily sums the lines f selects by day, organization, user and
	// model (sums, not averages), oldest day first, at most MaxUsageDays.
	UsageDaily(ctx context.Context, f UsageFilter) ([]UsageDay, error)
	// PruneUsage forgets lines older than before (retention). A store may
	// keep some a little longer: PostgreSQL drops whole months. The daily
	// sums stay.
	PruneUsage(ctx context.Context, before time.Time) error
}
