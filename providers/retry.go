package providers

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy is how a deployment is tried again itself after a retryable failure: a model with
// one deployment then survives a transient 429 or 503. The routing section sets it for every
// deployment, a model for its own, a deployment for itself; a zero field takes the level above.
// Retries of one deployment wait for every other deployment of the model to be tried first, so a
// healthy deployment answers before a failing one is waited for.
type RetryPolicy struct {
	// Retries is how many times a deployment is tried again after a retryable failure [3]; 0
	// turns retries off. It is a pointer so that a level can set 0 where the one above sets more.
	Retries *int `yaml:"retries"`
	// Backoff is the wait before the first retry; each further retry doubles it, within ±20%
	// jitter [1s: 1 s, 2 s, 4 s for three retries].
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps one wait [30s].
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// RetryAfterCap is the longest upstream Retry-After honoured: a shorter one replaces the
	// backoff, a longer one means the deployment is not retried (the request moves on) [10s].
	RetryAfterCap time.Duration `yaml:"retry_after_cap"`
}

// withDefaults fills p's unset fields from d, then from the built-in defaults.
func (p RetryPolicy) withDefaults(d RetryPolicy) RetryPolicy {
	out := RetryPolicy{
		Retries:       p.Retries,
		Backoff:       firstSet(p.Backoff, d.Backoff, time.Second),
		MaxBackoff:    firstSet(p.MaxBackoff, d.MaxBackoff, 30*time.Second),
		RetryAfterCap: firstSet(p.RetryAfterCap, d.RetryAfterCap, 10*time.Second),
	}
	if out.Retries == nil {
		out.Retries = d.Retries
	}
	if out.Retries == nil {
		n := defaultRetries
		out.Retries = &n
	}
	return out
}

// defaultRetries is the retry count of a policy that no level sets: with the default backoff,
// waits of about 1 s, 2 s and 4 s, enough for a transient 429 or 503 to pass.
const defaultRetries = 3

// maxRetries bounds a policy's retries: more would hold a request for minutes.
const maxRetries = 10

func validRetry(field string, p RetryPolicy) error {
	if p.Retries != nil && (*p.Retries < 0 || *p.Retries > maxRetries) {
		return fmt.Errorf("%s.retries: %d is outside 0..%d", field, *p.Retries, maxRetries)
	}
	if p.Backoff < 0 || p.MaxBackoff < 0 || p.RetryAfterCap < 0 {
		return fmt.Errorf("%s: durations must not be negative", field)
	}
	return nil
}

// Count is the number of retries the policy allows.
func (p RetryPolicy) Count() int {
	if p.Retries == nil {
		return 0
	}
	return *p.Retries
}

// RetryWait reports whether an attempt on d that ended with o may be made again on d itself, as
// its n-th retry (from 1), and how long to wait first. Only what Failover lets move on may be
// retried, and of the error statuses only the transient ones (408, 429, 5xx but 501 and 505):
// a 401 or a redirect will not mend itself. An upstream Retry-After within the policy's cap
// replaces the backoff; a longer one refuses the retry.
func RetryWait(d *Deployment, o Outcome, n int) (time.Duration, bool) {
	p := d.Retry
	if n < 1 || n > p.Count() || o.Permanent || !Failover(d, o) {
		return 0, false
	}
	if o.Kind == Answered && !transient(o.Status) {
		return 0, false
	}
	if o.RetryAfter > 0 {
		if o.RetryAfter > p.RetryAfterCap {
			return 0, false
		}
		return o.RetryAfter, true
	}
	w := p.Backoff << (n - 1)
	if w <= 0 || w > p.MaxBackoff { // overflow, or past the cap
		w = p.MaxBackoff
	}
	// ±20% jitter: replicas that failed together do not come back together.
	return time.Duration(float64(w) * (0.8 + 0.4*rand.Float64())), true
}

func transient(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return status >= 500
}

// RetryAfter reads an upstream's wish for a pause from its answer's headers: retry-after-ms
// (OpenAI, Azure) first, then Retry-After in seconds or as an HTTP date. 0 when there is none.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms > 0 && ms < 1e9 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < 1e6 {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
