// Package quota decides whether a request may start. Subjects (API key, user, tenant, session,
// optionally narrowed to one model) have four rate dimensions: requests per minute, tokens per
// minute, tokens per day and concurrent requests; and three money dimensions: a USD budget per
// day and per month, and a prepaid credit balance (see Money). Two implementations share one contract, checked by the
// quotatest suite: Memory (one process, the embedded default) and Redis (many replicas, one Lua
// script per admission, Redis TIME as the clock). Resilient wraps Redis with a bounded local
// fallback for when Redis is unreachable.
package quota

import (
	"context"
	"time"
)

// Dimensions a request can be refused on.
const (
	DimRPM          = "rpm"
	DimTPM          = "tpm"
	DimTokensPerDay = "tokens_per_day"
	DimConcurrent   = "concurrent"
	DimBudgetDay    = "budget_day"
	DimBudgetMonth  = "budget_month"
	DimCredit       = "credit"
)

// Kind is what sort of party a subject is. The store spells it as a quota policy's or a credit
// account's subject type, and Redis keys and usage figures carry it, so the spellings are fixed.
type Kind string

// The kinds of subject.
const (
	KindUser    Kind = "user"
	KindKey     Kind = "key"
	KindTenant  Kind = "tenant"
	KindSession Kind = "session"
)

// Limits of one subject. Zero means unlimited.
type Limits struct {
	RPM          int64 `yaml:"rpm" json:"rpm"`
	TPM          int64 `yaml:"tpm" json:"tpm"`
	TokensPerDay int64 `yaml:"tokens_per_day" json:"tokens_per_day"`
	Concurrent   int64 `yaml:"concurrent" json:"concurrent"`
}

// Subject is one party a request counts against. Every subject of one request belongs to the
// same tenant, so a Redis Cluster keeps all of a request's counters in one slot.
type Subject struct {
	Kind   Kind
	ID     string
	Tenant string
	// Model, when set, narrows the subject to requests for that public model: "user alice on
	// gpt-4o" is counted apart from "user alice".
	Model string
	// Endpoint, when set, narrows the subject to requests to that endpoint ("embeddings",
	// "images/generations"…): "user alice on embeddings" is counted apart from "user alice", and
	// from "user alice on gpt-4o".
	Endpoint string
	Limits   Limits
	// Money, when set, adds the subject's budgets and credit balance to the decision.
	Money *Money
	// Origin says where Limits come from (SubjectsOf fills it); limiters ignore it.
	Origin Origin
}

// Money is what a subject may spend, in nano-USD (10⁻⁹ USD: exact in the Lua scripts' doubles up
// to $9M, and finer than any single token's price). The ledger (the store) is the truth; a
// limiter's counters only add what the ledger has not seen yet: the reservations of requests in
// flight and the costs settled but not yet written. So the caller passes the ledger's figures
// with every request, and a limiter counts max(its counter, the ledger's figure): a counter that
// was lost (a Redis flush, a restart of the embedded gateway) restarts from the ledger, and a
// ledger that lags behind is covered by the counter.
type Money struct {
	// BudgetDay and BudgetMonth cap the spend per UTC day and calendar month (UTC); 0: none.
	BudgetDay, BudgetMonth int64
	// Day is the UTC day (days since the epoch) the spend figures were read for: they count only
	// while it is the limiter's current day (SpentMonth: while it is in the current month).
	Day                  int64
	SpentDay, SpentMonth int64
	// Credit marks the subject as a prepaid account: Balance is the ledger's balance and Charged
	// the total of the charges the ledger has applied to it.
	//
	// A request is refused when a budget is spent, or the balance used up, counting the charges
	// the ledger has not applied yet and the reservations of the requests in flight. So spend
	// goes past a budget, and a balance below zero, by at most one request's reservation (the
	// last one admitted) plus what requests cost beyond their reservations.
	Credit           bool
	Balance, Charged int64
}

// Key identifies the subject's counters: tenant, kind, id, model and endpoint.
func (s Subject) Key() string {
	k := s.Tenant + "/" + string(s.Kind) + "/" + s.ID
	if s.Model != "" {
		k += "@" + s.Model
	}
	if s.Endpoint != "" {
		k += "#" + s.Endpoint
	}
	return k
}

// Request is one admission question.
type Request struct {
	// ID is the request's unique id: the member of the RPM log and the concurrency lease.
	ID       string
	Subjects []Subject
	// Tokens is the reservation: the prompt estimate plus the most the answer may use. Settle
	// replaces it with the real count.
	Tokens int64
	// Cost is the money reservation in nano-USD (the token reservation at the model's price):
	// it counts against the budgets and credit of the subjects that have Money, for the
	// requests that come after, until Settle replaces it with the real cost.
	Cost int64
}

// Spent is what a request used, for Settle.
type Spent struct {
	Tokens int64
	// Cost (nano-USD) counts against budgets; Charge is the part charged to a credit account
	// (the whole cost, or 0 where the charging policy exempts the request).
	Cost, Charge int64
}

// Window describes one rate dimension for OpenAI's x-ratelimit-* headers.
type Window struct {
	Limit     int64         // 0: no limit applies
	Remaining int64         // after this request
	Reset     time.Duration // until the window is fully replenished
}

// Result is the answer to Admit. When Allowed is false nothing was consumed.
type Result struct {
	Allowed bool
	// Dimension and Subject (Subject.Key) name what refused the request.
	Dimension string
	Subject   string
	// RetryAfter is when the refusing dimension has room for this request again; 0 when that
	// cannot be known (concurrency frees when a request ends; a reservation larger than the
	// limit never fits).
	RetryAfter time.Duration
	// Requests and Tokens describe the tightest RPM and TPM windows among the subjects.
	Requests Window
	Tokens   Window
	// Lease must be passed to Settle when the request ends, whatever the ending. Nil when refused.
	Lease *Lease
	// Degraded is set when the decision was made without the shared store (Redis down): by a
	// local limiter with divided limits (fail open) or by refusing (fail closed).
	Degraded bool
}

// Lease is what an admitted request holds: its concurrency slots and its token reservation. The
// fields are for the implementation that issued it.
type Lease struct {
	ID       string
	Subjects []Subject
	Reserved int64
	// ReservedCost is the money reservation (nano-USD), Request.Cost.
	ReservedCost int64
	// AdmittedAt is the limiter's clock at admission (Redis TIME for Redis), in Unix
	// milliseconds: settlement corrects the token bucket the reservation went into.
	AdmittedAt int64
	// Local marks a lease issued by a fallback limiter, so it is settled there.
	Local bool
	// permit is the permit lease the request was admitted from (Redis with permit leases), and
	// slot and gen its slot there and the slot's use.
	permit *permitLease
	slot   int
	gen    uint64
}

// Limiter admits requests. Implementations are safe for concurrent use.
type Limiter interface {
	// Admit checks every dimension of every subject atomically and consumes nothing unless all
	// pass: an RPM slot, the token reservation (minute and day) and a concurrency lease.
	Admit(ctx context.Context, req Request) (Result, error)
	// Settle ends a request: frees its concurrency slots and replaces its reservations with the
	// tokens and money actually used (a refund, or a further charge: a request that used more
	// than it reserved is counted in full). Safe with a nil lease; a second call is a no-op.
	Settle(ctx context.Context, lease *Lease, used Spent) error
	// Renew extends the concurrency leases of long-running requests by the lease TTL.
	Renew(ctx context.Context, leases []*Lease) error
}

// Usage is a subject's current consumption, for the admin API.
type Usage struct {
	Requests     int64 `json:"requests"`      // admitted in the current window
	Concurrent   int64 `json:"concurrent"`    // live leases
	TokensMinute int64 `json:"tokens_minute"` // in the current window
	TokensDay    int64 `json:"tokens_day"`    // today (UTC)
}

// UsageReader is implemented by limiters that can report a subject's usage.
type UsageReader interface {
	Usage(ctx context.Context, s Subject) (Usage, error)
}

// SessionClearer is implemented by limiters that can forget a session's counters.
type SessionClearer interface {
	ClearSession(ctx context.Context, tenant, sessionID string) error
}
