package quota

import (
	"errors"
	"fmt"
	"time"
)

// LimiterOptions configures Memory and Redis alike, so both enforce the same windows.
type LimiterOptions struct {
	// Window is the span of the RPM log and of the TPM buckets (default time.Minute). It is
	// rounded up to whole seconds, because tokens are counted in one-second buckets, and capped
	// at an hour, so the scripts never handle more than 3600 buckets in one call.
	Window time.Duration
	// LeaseTTL is how long a concurrency lease lives without Renew (default 30s): the time a
	// gateway killed mid-request keeps its slots.
	LeaseTTL time.Duration
	// PermitLeases lets Redis admit the requests of busy subjects from leases (see
	// PermitLeaseOptions); Memory ignores it.
	PermitLeases PermitLeaseOptions
	// Now is Memory's clock (nil: time.Now). Redis ignores it: Redis TIME is the one clock of
	// every replica.
	Now func() time.Time
}

func (o LimiterOptions) withDefaults() LimiterOptions {
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	o.Window = min((o.Window + time.Second - 1).Truncate(time.Second), time.Hour)
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// leaseTombstone is how long a lease is remembered after it expired. An expired lease holds no
// slot, but a late Settle (a request that outlived its lease because renewals failed) still
// corrects its tokens, once: the lease's presence is what makes a second Settle a no-op.
const leaseTombstone = time.Hour

// dayMillis is one UTC day: the tokens-per-day counter resets at UTC midnight.
const dayMillis = 24 * 60 * 60 * 1000

// Errors for requests that break the contract; they are the caller's bugs, not Redis failures.
var (
	ErrNoRequestID    = errors.New("quota: request has no ID")
	ErrMixedTenants   = errors.New("quota: request subjects belong to different tenants")
	errNegativeLimit  = errors.New("quota: negative limit")
	errNegativeTokens = errors.New("quota: negative token or cost reservation")
)

// validate rejects requests no implementation can decide: without an ID there is no lease and no
// RPM log member, and subjects of several tenants would not share one Redis Cluster slot.
func validate(req Request) error {
	if req.ID == "" {
		return ErrNoRequestID
	}
	if req.Tokens < 0 || req.Cost < 0 {
		return errNegativeTokens
	}
	for _, s := range req.Subjects {
		if s.Tenant != req.Subjects[0].Tenant {
			return ErrMixedTenants
		}
		if l := s.Limits; l.RPM < 0 || l.TPM < 0 || l.TokensPerDay < 0 || l.Concurrent < 0 {
			return fmt.Errorf("%w for %s", errNegativeLimit, s.Key())
		}
		if m := s.Money; m != nil && (m.BudgetDay < 0 || m.BudgetMonth < 0) {
			return fmt.Errorf("%w for %s", errNegativeLimit, s.Key())
		}
	}
	return nil
}

// dimensions in the order they are checked within one subject; the index is the dimension's
// code in the admission script's reply. The first refusing subject, and within it the first
// refusing dimension, is reported: rate limits first, because they can name a RetryAfter.
var dimensions = [...]string{DimRPM, DimTPM, DimTokensPerDay, DimConcurrent, DimBudgetDay, DimBudgetMonth, DimCredit}

// MaxMoney caps the money figures handed to a limiter, in nano-USD: 2⁵³, the largest integer the
// Redis scripts' doubles hold exactly ($9M). A balance above it is plenty; a spend above it is
// far past any budget a limiter can enforce to the nano-dollar.
const MaxMoney = 1 << 53

// monthOf returns the calendar month (UTC) of a UTC day as year×12 + month − 1, as admit.lua's
// monthOf does.
func monthOf(day int64) int64 {
	t := time.UnixMilli(day * dayMillis).UTC()
	return int64(t.Year())*12 + int64(t.Month()) - 1
}

// Period ends, for a refusal's RetryAfter: the next UTC midnight and the first of next month.
func nextDay(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func nextMonth(now time.Time) time.Time {
	y, m, _ := now.UTC().Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
}

// moneyRetry is how long a money refusal lasts: a budget until its period ends, a credit
// balance until someone tops it up (unknown: 0).
func moneyRetry(dim string, nowMs int64) time.Duration {
	now := time.UnixMilli(nowMs)
	switch dim {
	case DimBudgetDay:
		return nextDay(now).Sub(now)
	case DimBudgetMonth:
		return nextMonth(now).Sub(now)
	}
	return 0
}

// ms converts milliseconds to a Duration.
func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
