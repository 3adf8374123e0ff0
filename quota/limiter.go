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
	errNegativeTokens = errors.New("quota: negative token reservation")
)

// validate rejects requests no implementation can decide: without an ID there is no lease and no
// RPM log member, and subjects of several tenants would not share one Redis Cluster slot.
func validate(req Request) error {
	if req.ID == "" {
		return ErrNoRequestID
	}
	if req.Tokens < 0 {
		return errNegativeTokens
	}
	for _, s := range req.Subjects {
		if s.Tenant != req.Subjects[0].Tenant {
			return ErrMixedTenants
		}
		if l := s.Limits; l.RPM < 0 || l.TPM < 0 || l.TokensPerDay < 0 || l.Concurrent < 0 {
			return fmt.Errorf("%w for %s", errNegativeLimit, s.Key())
		}
	}
	return nil
}

// dimensions in the order they are checked within one subject; the index is the dimension's
// code in the admission script's reply. The first refusing subject, and within it the first
// refusing dimension, is reported: rate limits first, because they can name a RetryAfter.
var dimensions = [...]string{DimRPM, DimTPM, DimTokensPerDay, DimConcurrent}

// ms converts milliseconds to a Duration.
func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
