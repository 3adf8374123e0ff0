// Package quota decides whether a request may start: requests per minute and concurrent requests
// per subject (key, user, tenant), with limits from tier defaults. Two implementations share one
// contract: Memory (the embedded default, one process) and, with its own issue, Redis (many
// replicas).
package quota

import (
	"context"
	"time"
)

// Dimensions a request can be refused on.
const (
	DimRPM        = "rpm"
	DimConcurrent = "concurrent"
)

// Limits of one subject. Zero means unlimited.
type Limits struct {
	RPM          int64 `yaml:"rpm" json:"rpm"`
	TPM          int64 `yaml:"tpm" json:"tpm"`
	TokensPerDay int64 `yaml:"tokens_per_day" json:"tokens_per_day"`
	Concurrent   int64 `yaml:"concurrent" json:"concurrent"`
}

// Subject is one party a request counts against.
type Subject struct {
	Kind   string // "key", "user" or "tenant"
	ID     string
	Tenant string // every subject belongs to one tenant (the Redis hash tag)
	Limits Limits
}

// Key identifies the subject in counters: kind and id, namespaced by tenant.
func (s Subject) Key() string { return s.Tenant + "/" + s.Kind + "/" + s.ID }

// Request is one admission question.
type Request struct {
	Subjects []Subject
}

// Result is the answer to Admit. When Allowed is false nothing was consumed.
type Result struct {
	// Allowed reports whether every dimension of every subject passed.
	Allowed bool
	// Dimension and Subject name what refused the request (empty when allowed).
	Dimension string
	Subject   string
	// RetryAfter is how long until the refusing dimension has room again (0 for concurrency,
	// which frees when a request ends, not at a known time).
	RetryAfter time.Duration
	// LimitRequests, RemainingRequests and ResetRequests describe the tightest RPM limit among
	// the subjects, for OpenAI's x-ratelimit-*-requests headers. LimitRequests 0 means none.
	LimitRequests     int64
	RemainingRequests int64
	ResetRequests     time.Duration
	// Lease must be passed to Release when the request ends, whatever the ending.
	Lease *Lease
}

// Lease is the concurrency slots a running request holds.
type Lease struct {
	subjects []Subject
}

// Limiter admits requests. Implementations are safe for concurrent use.
type Limiter interface {
	// Admit checks every dimension of every subject and consumes nothing unless all pass.
	Admit(ctx context.Context, req Request) (Result, error)
	// Release frees the lease's concurrency slots. It is safe to call with a nil lease.
	Release(ctx context.Context, lease *Lease) error
}

// Options is the `quota` section of the config: the limits of each tier, and which tier applies
// to a user or key that names none.
type Options struct {
	// Enabled turns admission on (default true).
	Enabled *bool `yaml:"enabled"`
	// DefaultTier applies to users without a tier and to keys without a user (default "free").
	DefaultTier string `yaml:"default_tier"`
	// Tiers maps a tier name to its limits; the seed's free/pro/enterprise are the defaults.
	Tiers map[string]Limits `yaml:"tiers"`
}

// DefaultTiers are the seed's tiers: free 20 rpm / 100k tokens a day / 2 concurrent; pro 100 / 2M
// / 10; enterprise 500 / unlimited / 50.
func DefaultTiers() map[string]Limits {
	return map[string]Limits{
		"free":       {RPM: 20, TokensPerDay: 100_000, Concurrent: 2},
		"pro":        {RPM: 100, TokensPerDay: 2_000_000, Concurrent: 10},
		"enterprise": {RPM: 500, Concurrent: 50},
	}
}

// WithDefaults fills the zero fields.
func (o Options) WithDefaults() Options {
	if o.Enabled == nil {
		t := true
		o.Enabled = &t
	}
	if o.DefaultTier == "" {
		o.DefaultTier = "free"
	}
	if len(o.Tiers) == 0 {
		o.Tiers = DefaultTiers()
	}
	return o
}

// TierLimits returns the limits of a tier, falling back to the default tier for an empty or
// unknown name.
func (o Options) TierLimits(tier string) Limits {
	if l, ok := o.Tiers[tier]; ok {
		return l
	}
	return o.Tiers[o.DefaultTier]
}
