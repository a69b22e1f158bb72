package guichet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Permission is a right a role grants beyond calling models.
type Permission string

const (
	PermAdmin                  Permission = "admin"
	PermCreatePublicCollection Permission = "create_public_collection"
	PermReadMetric             Permission = "read_metric"
	PermProvideModels          Permission = "provide_models"
)

// Permissions lists every permission in a stable order.
var Permissions = []Permission{PermAdmin, PermCreatePublicCollection, PermReadMetric, PermProvideModels}

// Valid reports whether p is a known permission.
func (p Permission) Valid() bool {
	for _, k := range Permissions {
		if p == k {
			return true
		}
	}
	return false
}

// LimitType is what a limit counts.
type LimitType string

const (
	RequestsPerMinute LimitType = "rpm"
	RequestsPerDay    LimitType = "rpd"
	TokensPerMinute   LimitType = "tpm" // input tokens
	TokensPerDay      LimitType = "tpd" // input tokens
	Concurrent        LimitType = "concurrent"
)

// LimitTypes lists every limit type in a stable order.
var LimitTypes = []LimitType{RequestsPerMinute, RequestsPerDay, TokensPerMinute, TokensPerDay, Concurrent}

// Valid reports whether t is a known limit type.
func (t LimitType) Valid() bool {
	for _, k := range LimitTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Window is the span a rate limit counts over; 0 for Concurrent.
func (t LimitType) Window() time.Duration {
	switch t {
	case RequestsPerMinute, TokensPerMinute:
		return time.Minute
	case RequestsPerDay, TokensPerDay:
		return 24 * time.Hour
	}
	return 0
}

// AllModels, as a Limit's model, applies to every model, for each limit
// type the model has no entry of its own for.
const AllModels = "*"

// Limit caps one model's use by each user of a role. A role reaches a
// model only through its limits: a model with no entry (its own or "*")
// is invisible to the role. Value nil means unlimited and 0 forbidden, as
// in OpenGateLLM.
type Limit struct {
	Model string    `json:"model"`
	Type  LimitType `json:"type"`
	Value *int64    `json:"value"`
}

// Amount is money in nano-units (1e-9) of the currency model prices are
// given in: integers, so budgets add up exactly.
type Amount int64

// AmountPerUnit is the number of Amount in one unit of currency.
const AmountPerUnit = 1_000_000_000

// AmountOf converts units of currency to an Amount.
func AmountOf(units float64) Amount { return Amount(math.Round(units * AmountPerUnit)) }

// Units converts an Amount to units of currency.
func (a Amount) Units() float64 { return float64(a) / AmountPerUnit }

func (a Amount) String() string { return strconv.FormatFloat(a.Units(), 'f', -1, 64) }

// Of is the price of a request at these costs (per million tokens).
func (c Costs) Of(promptTokens, completionTokens int64) Amount {
	// price per million tokens × 1e9 nano-units / 1e6 tokens = price × 1e3 per token
	return Amount(math.Round(float64(promptTokens)*c.PromptTokens*1e3 + float64(completionTokens)*c.CompletionTokens*1e3))
}

// Free reports whether the model costs nothing.
func (c Costs) Free() bool { return c.PromptTokens == 0 && c.CompletionTokens == 0 }

// Organization groups users; it is the tenant the scheduler shares
// GPUs between, and it may have a budget of its own.
type Organization struct {
	ID      int64
	Name    string
	Budget  *Amount // remaining; nil = unlimited
	Created time.Time
	Updated time.Time
}

// Role carries permissions and per-model limits.
type Role struct {
	ID          int64
	Name        string
	Permissions []Permission
	Limits      []Limit
	Created     time.Time
	Updated     time.Time
}

// Has reports whether the role grants p (admin grants everything).
func (r *Role) Has(p Permission) bool {
	for _, k := range r.Permissions {
		if k == p || k == PermAdmin {
			return true
		}
	}
	return false
}

// ModelLimits returns the role's limits on model, type by type: the
// model's own entry, else the "*" entry of that type; and whether the role
// may see the model at all (it has an entry, its own or "*").
func (r *Role) ModelLimits(model string) (limits []Limit, visible bool) {
	for _, l := range r.Limits {
		if l.Model == model {
			limits = append(limits, l)
		}
	}
	own := len(limits)
	for _, l := range r.Limits {
		if l.Model != AllModels {
			continue
		}
		overridden := false
		for _, o := range limits[:own] {
			overridden = overridden || o.Type == l.Type
		}
		if !overridden {
			limits = append(limits, l)
		}
	}
	return limits, limits != nil
}

// User is a person or an application calling guichet.
type User struct {
	ID             int64
	Email          string
	Name           string
	RoleID         int64
	OrganizationID int64   // 0: none
	Budget         *Amount // remaining; nil = unlimited
	Expires        *time.Time
	Priority       int // higher goes first in the scheduler's queue
	Created        time.Time
	Updated        time.Time
}

// Expired reports whether the user's account has expired at now.
func (u *User) Expired(now time.Time) bool { return u.Expires != nil && !now.Before(*u.Expires) }

// KeyHash is the SHA-256 of an API key: the only form a key is stored in.
type KeyHash [32]byte

// Key is an API key's record. The secret itself is shown once, at
// creation; Prefix (its first characters) is what lists display.
type Key struct {
	ID      int64
	UserID  int64
	Name    string
	Prefix  string
	Hash    KeyHash
	Expires *time.Time
	Created time.Time
}

// Expired reports whether the key has expired at now.
func (k *Key) Expired(now time.Time) bool { return k.Expires != nil && !now.Before(*k.Expires) }

// Principal is who is calling, with everything admission needs, loaded
// from memory on the hot path.
type Principal struct {
	Master       bool // the operator's master key: every right, no limit, no budget
	Key          *Key // nil for the master key
	User         *User
	Role         *Role
	Organization *Organization // nil if the user has none
}

// Errors a store returns; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict") // a unique name taken, or an object still in use
)

// Page selects a slice of a list.
type Page struct {
	Offset  int
	Limit   int    // 0: the default (10); at most 100
	OrderBy string // id, name, created, updated (users also email); "" = id
	Desc    bool
}

// Window is the page's offset and limit as every store applies them:
// limit 0 means 10, more than 100 means 100, negatives are an error.
func (p Page) Window() (offset, limit int, err error) {
	if p.Offset < 0 || p.Limit < 0 {
		return 0, 0, fmt.Errorf("invalid page: offset %d, limit %d", p.Offset, p.Limit)
	}
	switch limit = p.Limit; {
	case limit == 0:
		limit = 10
	case limit > 100:
		limit = 100
	}
	return p.Offset, limit, nil
}

// UserFilter narrows a user list; zero fields do not filter.
type UserFilter struct {
	RoleID         int64
	OrganizationID int64
	Email          string
}

// IdentityStore keeps organizations, roles, users and keys. SQLite and
// PostgreSQL implement it; one conformance suite (storetest) runs on both.
// Create methods set ID, Created and Updated on the object given. Every
// successful change except Spend advances Version.
type IdentityStore interface {
	CreateOrganization(ctx context.Context, o *Organization) error
	Organization(ctx context.Context, id int64) (*Organization, error)
	Organizations(ctx context.Context, p Page) ([]*Organization, error)
	UpdateOrganization(ctx context.Context, o *Organization) error
	// DeleteOrganization fails with ErrConflict while users belong to it.
	DeleteOrganization(ctx context.Context, id int64) error

	CreateRole(ctx context.Context, r *Role) error
	Role(ctx context.Context, id int64) (*Role, error)
	RoleByName(ctx context.Context, name string) (*Role, error)
	Roles(ctx context.Context, p Page) ([]*Role, error)
	UpdateRole(ctx context.Context, r *Role) error
	// DeleteRole fails with ErrConflict while users have it.
	DeleteRole(ctx context.Context, id int64) error

	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id int64) (*User, error)
	UserByEmail(ctx context.Context, email string) (*User, error)
	Users(ctx context.Context, f UserFilter, p Page) ([]*User, error)
	CountUsers(ctx context.Context, f UserFilter) (int64, error)
	UpdateUser(ctx context.Context, u *User) error
	// DeleteUser deletes the user's keys too.
	DeleteUser(ctx context.Context, id int64) error

	CreateKey(ctx context.Context, k *Key) error
	Key(ctx context.Context, id int64) (*Key, error)
	KeyByHash(ctx context.Context, h KeyHash) (*Key, error)
	// Keys lists a user's keys (every key when userID is 0).
	Keys(ctx context.Context, userID int64, p Page) ([]*Key, error)
	// UpdateKey changes a key's name and expiry (nothing else of a key
	// ever changes).
	UpdateKey(ctx context.Context, k *Key) error
	DeleteKey(ctx context.Context, id int64) error

	// Spend takes amount off the remaining budget of the user and of the
	// organization (each only if it has a budget; never below zero), in
	// one transaction.
	Spend(ctx context.Context, userID, organizationID int64, amount Amount) error

	// Version is a counter every change advances: replicas compare it to
	// drop cached identities another replica changed.
	Version(ctx context.Context) (int64, error)

	Close() error
}

// Quota admits requests against rate limits, concurrency caps and budget
// reservations, all checked and taken at once (nothing is consumed when
// one check refuses), and settles them when the request ends. An
// in-process implementation serves embedded mode and a Redis one (one
// script call per admission) serves cluster mode; one conformance suite
// (quota/quotatest) runs on both.
type Quota interface {
	// Admit checks and takes everything a asks for. A refusal is a
	// Decision with Allowed false, not an error; an error means the
	// quota backend itself failed.
	Admit(ctx context.Context, a *Admission) (Decision, error)
	// Settle ends an admitted request: held counters and the budget
	// reservations are released, token counters are corrected to the
	// real input tokens, and the real cost is taken off the balances.
	Settle(ctx context.Context, a *Admission, s Settlement) error
	// ForgetBalance drops a budget's live balance, so the next admission
	// loads it again (after an operator changed the budget).
	ForgetBalance(ctx context.Context, budgetKey string) error
}

// Admission is what one request asks of the quota.
type Admission struct {
	ID       string // unique per request
	Counters []Counter
	Budgets  []BudgetHold
	// Lease bounds how long held counters and reservations survive a
	// replica that dies before settling.
	Lease time.Duration
}

// Counter is one limit a request counts against.
type Counter struct {
	Key    string        // e.g. "rpm:u42:llama"; the backend adds its own prefix
	Limit  int64         // at most this much in any Window
	Window time.Duration // sliding window (ignored when Held)
	Cost   int64         // 1 for requests; the input token estimate for token limits
	Held   bool          // a concurrency slot, released at Settle
	Tokens bool          // corrected to Settlement.InputTokens at Settle
}

// BudgetHold reserves a worst-case amount on one budget.
type BudgetHold struct {
	Key     string // "u42", "o7"
	Reserve Amount
	// Load reads the remaining balance from the store, when the quota
	// backend does not hold it yet (first use, or after ForgetBalance).
	Load func(ctx context.Context) (Amount, error)
}

// Decision is the quota's answer to an admission.
type Decision struct {
	Allowed bool
	// Refused is the index of the counter that refused, or -1-i for
	// budget i; meaningless when Allowed.
	Refused    int
	RetryAfter time.Duration // when the refused check could pass
	// Counters has, for each counter, what is left after this request
	// (or, on refusal, before it) and when its window has fully emptied.
	Counters []CounterState
	// Balances is each budget's remaining balance minus reservations.
	Balances []Amount
}

// CounterState is a counter's state for X-RateLimit-* headers.
type CounterState struct {
	Remaining int64
	Reset     time.Duration
}

// Settlement is what a request really used.
type Settlement struct {
	// InputTokens is the real prompt token count token counters are
	// corrected to; negative when unknown (the estimate then stands).
	InputTokens int64
	Cost        Amount // real cost, taken off every budget held
}
