// Package quotatest is the conformance suite of quota.Limiter: every implementation (Memory,
// Redis single node and Cluster, Resilient) must pass it, which is what makes them
// interchangeable. It runs on real time with short windows, every subtest in parallel under its
// own tenant, so the suite takes a few seconds and needs no clean store between runs.
package quotatest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/quota"
)

// NewLimiter makes the limiter under test. A subtest calls it once with the options it needs.
type NewLimiter func(t *testing.T, opts quota.LimiterOptions) quota.Limiter

// Short windows keep the suite fast. Token tests that must not see a bucket leave the window
// use tokenWindow: tokens are counted per second, so a bucket can leave as early as
// window - 1 s after the reservation.
const (
	window      = 2 * time.Second
	tokenWindow = 4 * time.Second
	leaseTTL    = time.Second
	// slack covers Redis TIME vs the test's clock and scheduling under -race.
	slack = 150 * time.Millisecond
)

// Run runs the conformance suite against the limiters newLimiter makes.
func Run(t *testing.T, newLimiter NewLimiter) {
	var wg sync.WaitGroup
	for _, tc := range []struct {
		name string
		opts quota.LimiterOptions
		run  func(e *env)
	}{
		{"RPMExactUnderConcurrency", quota.LimiterOptions{Window: 10 * time.Second}, func(e *env) {
			Exactness(e.t, []quota.Limiter{e.l}, e.tenant, 50)
		}},
		{"RPMSlidingWindow", quota.LimiterOptions{Window: window}, testRPMSlidingWindow},
		{"RefusalConsumesNothing", quota.LimiterOptions{Window: tokenWindow}, testRefusalConsumesNothing},
		{"ConcurrencyCap", quota.LimiterOptions{}, testConcurrencyCap},
		{"ConcurrencyUnderLoad", quota.LimiterOptions{}, testConcurrencyUnderLoad},
		{"ExpiredLeaseFrees", quota.LimiterOptions{LeaseTTL: leaseTTL}, testExpiredLeaseFrees},
		{"RenewKeepsAlive", quota.LimiterOptions{LeaseTTL: leaseTTL}, testRenewKeepsAlive},
		{"ExpiredLeaseSettlesOnce", quota.LimiterOptions{Window: tokenWindow, LeaseTTL: leaseTTL}, testExpiredLeaseSettlesOnce},
		{"TPMReserveRefundOvercharge", quota.LimiterOptions{Window: tokenWindow}, testTPM},
		{"TPMWindowSlides", quota.LimiterOptions{Window: window}, testTPMWindowSlides},
		{"SettleAfterWindow", quota.LimiterOptions{Window: window}, testSettleAfterWindow},
		{"TokensPerDay", quota.LimiterOptions{Window: tokenWindow}, testTokensPerDay},
		{"ModelNarrowedSubjects", quota.LimiterOptions{}, testModelNarrowed},
		{"EndpointNarrowedSubjects", quota.LimiterOptions{}, testEndpointNarrowed},
		{"EndpointRPMExactUnderConcurrency", quota.LimiterOptions{Window: 10 * time.Second}, func(e *env) {
			ExactnessOf(e.t, []quota.Limiter{e.l}, quota.Subject{Kind: "user", ID: "hot", Tenant: e.tenant,
				Endpoint: "embeddings", Limits: quota.Limits{RPM: 30}})
		}},
		{"Windows", quota.LimiterOptions{Window: tokenWindow}, testWindows},
		{"UsageWithoutLimits", quota.LimiterOptions{Window: tokenWindow}, testUsageWithoutLimits},
		{"ClearSession", quota.LimiterOptions{Window: tokenWindow}, testClearSession},
		{"DoubleSettle", quota.LimiterOptions{Window: tokenWindow}, testDoubleSettle},
		{"InvalidRequests", quota.LimiterOptions{}, testInvalidRequests},
		{"BudgetReserveRefund", quota.LimiterOptions{}, testBudgetReserveRefund},
		{"BudgetLedgerFigures", quota.LimiterOptions{}, testBudgetLedgerFigures},
		{"CreditReservation", quota.LimiterOptions{}, testCreditReservation},
		{"CreditLedgerCatchesUp", quota.LimiterOptions{}, testCreditLedgerCatchesUp},
		{"CreditExactUnderConcurrency", quota.LimiterOptions{}, testCreditConcurrent},
	} {
		// The subtests mostly sleep, so they all run at once whatever -parallel says (t.Run may
		// be called from several goroutines).
		wg.Go(func() {
			t.Run(tc.name, func(t *testing.T) {
				tc.run(&env{t: t, l: newLimiter(t, tc.opts), tenant: Tenant(t)})
			})
		})
	}
	wg.Wait()
}

// Tenant returns a tenant name of its own for t, so tests sharing a store never meet.
func Tenant(t testing.TB) string {
	return t.Name() + "-" + rand.Text()[:8]
}

// Exactness hammers limiters (replicas sharing one store) from many goroutines with requests
// for one key limited to limit RPM and checks that exactly limit are admitted, and that the
// refused consumed nothing (the user, counted without a limit, saw only the admitted). The
// limiters' window must outlast the hammering.
func Exactness(t *testing.T, limiters []quota.Limiter, tenant string, limit int64) {
	t.Helper()
	ExactnessOf(t, limiters, quota.Subject{Kind: "key", ID: "hot", Tenant: tenant, Limits: quota.Limits{RPM: limit}})
}

// ExactnessOf is Exactness for any subject limited by RPM (a narrowed one: to a model, to an
// endpoint): exactly its limit is admitted, across every limiter.
func ExactnessOf(t *testing.T, limiters []quota.Limiter, key quota.Subject) {
	t.Helper()
	limit := key.Limits.RPM
	user := quota.Subject{Kind: "user", ID: "u", Tenant: key.Tenant}
	const workers, attempts = 24, 10
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			l := limiters[w%len(limiters)]
			for range attempts {
				res, err := l.Admit(context.Background(), quota.Request{ID: newID(), Subjects: []quota.Subject{user, key}, Tokens: 1})
				switch {
				case err != nil:
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				case res.Degraded:
					mu.Lock()
					errs = append(errs, errors.New("a decision was made without the shared store"))
					mu.Unlock()
				case res.Allowed:
					admitted.Add(1)
					l.Settle(context.Background(), res.Lease, quota.Spent{Tokens: 1})
				case res.Dimension != quota.DimRPM || res.RetryAfter <= 0:
					mu.Lock()
					errs = append(errs, fmt.Errorf("refusal %+v, want rpm with a RetryAfter", res))
					mu.Unlock()
				default:
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if admitted.Load() != limit || refused.Load() != workers*attempts-limit {
		t.Fatalf("admitted %d, refused %d of %d in %v; want exactly %d admitted",
			admitted.Load(), refused.Load(), workers*attempts, elapsed, limit)
	}
	if u := usage(t, limiters[0], user); u.Requests != limit || u.Concurrent != 0 || u.TokensMinute != limit {
		t.Fatalf("user usage %+v: want %d requests and tokens, none in flight", u, limit)
	}
}

// env is one subtest's limiter and tenant.
type env struct {
	t      *testing.T
	l      quota.Limiter
	tenant string
}

func (e *env) subject(kind quota.Kind, id string, l quota.Limits) quota.Subject {
	return quota.Subject{Kind: kind, ID: id, Tenant: e.tenant, Limits: l}
}

func (e *env) admit(tokens int64, subjects ...quota.Subject) quota.Result {
	e.t.Helper()
	res, err := e.l.Admit(context.Background(), quota.Request{ID: newID(), Subjects: subjects, Tokens: tokens})
	if err != nil {
		e.t.Fatalf("Admit: %v", err)
	}
	if res.Degraded {
		e.t.Fatalf("Admit decided without the shared store: %+v", res)
	}
	if res.Allowed != (res.Lease != nil) || res.Allowed != (res.Dimension == "") {
		e.t.Fatalf("inconsistent result %+v", res)
	}
	return res
}

// mustAdmit admits or fails the test.
func (e *env) mustAdmit(tokens int64, subjects ...quota.Subject) *quota.Lease {
	e.t.Helper()
	res := e.admit(tokens, subjects...)
	if !res.Allowed {
		e.t.Fatalf("refused: %+v", res)
	}
	return res.Lease
}

// mustRefuse checks the refusing dimension and subject, and returns the result.
func (e *env) mustRefuse(dim string, s quota.Subject, tokens int64, subjects ...quota.Subject) quota.Result {
	e.t.Helper()
	res := e.admit(tokens, subjects...)
	if res.Allowed || res.Dimension != dim || res.Subject != s.Key() {
		e.t.Fatalf("got %+v, want refused on %s by %s", res, dim, s.Key())
	}
	return res
}

func (e *env) settle(l *quota.Lease, used int64) {
	e.t.Helper()
	if err := e.l.Settle(context.Background(), l, quota.Spent{Tokens: used}); err != nil {
		e.t.Fatalf("Settle: %v", err)
	}
}

func (e *env) usage(s quota.Subject) quota.Usage {
	e.t.Helper()
	return usage(e.t, e.l, s)
}

func usage(t *testing.T, l quota.Limiter, s quota.Subject) quota.Usage {
	t.Helper()
	r, ok := l.(quota.UsageReader)
	if !ok {
		t.Skip("the limiter does not implement quota.UsageReader")
	}
	u, err := r.Usage(context.Background(), s)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

func (e *env) wantUsage(s quota.Subject, want quota.Usage) {
	e.t.Helper()
	if got := e.usage(s); got != want {
		e.t.Fatalf("usage of %s = %+v, want %+v", s.Key(), got, want)
	}
}

// within fails unless lo <= d <= hi.
func (e *env) within(what string, d, lo, hi time.Duration) {
	e.t.Helper()
	if d < lo || d > hi {
		e.t.Fatalf("%s = %v, want within [%v, %v]", what, d, lo, hi)
	}
}

func newID() string { return rand.Text() }

func testRPMSlidingWindow(e *env) {
	key := e.subject("key", "k", quota.Limits{RPM: 2})
	start := time.Now()
	first := e.admit(0, key)
	if !first.Allowed || first.Requests != (quota.Window{Limit: 2, Remaining: 1, Reset: window}) {
		e.t.Fatalf("first: %+v", first)
	}
	if r := e.admit(0, key); !r.Allowed || r.Requests.Remaining != 0 {
		e.t.Fatalf("second: %+v", r)
	}
	r := e.mustRefuse(quota.DimRPM, key, 0, key)
	e.within("RetryAfter", r.RetryAfter, window-time.Since(start)-slack, window)
	if r.Requests.Limit != 2 || r.Requests.Remaining != 0 {
		e.t.Fatalf("refused window %+v", r.Requests)
	}
	time.Sleep(r.RetryAfter + 20*time.Millisecond)
	e.mustAdmit(0, key)
}

func testRefusalConsumesNothing(e *env) {
	user := e.subject("user", "u", quota.Limits{RPM: 10, TPM: 1000, TokensPerDay: 10_000})
	key := e.subject("key", "k", quota.Limits{Concurrent: 1})
	lease := e.mustAdmit(100, user, key)
	for range 5 {
		if r := e.mustRefuse(quota.DimConcurrent, key, 100, user, key); r.RetryAfter != 0 {
			e.t.Fatalf("concurrency refusal with RetryAfter %v, want 0", r.RetryAfter)
		}
	}
	e.wantUsage(user, quota.Usage{Requests: 1, Concurrent: 1, TokensMinute: 100, TokensDay: 100})
	e.settle(lease, 100)
	r := e.admit(100, user, key)
	if !r.Allowed || r.Requests.Remaining != 8 || r.Tokens.Remaining != 800 {
		e.t.Fatalf("after settle: %+v, want 8 requests and 800 tokens remaining", r)
	}
	// A refusal by a later subject leaves the earlier ones untouched too.
	first := e.subject("key", "first", quota.Limits{Concurrent: 5})
	last := e.subject("user", "last", quota.Limits{RPM: 1})
	e.mustAdmit(10, first, last)
	e.mustRefuse(quota.DimRPM, last, 10, first, last)
	e.wantUsage(first, quota.Usage{Requests: 1, Concurrent: 1, TokensMinute: 10, TokensDay: 10})
}

func testConcurrencyCap(e *env) {
	key := e.subject("key", "k", quota.Limits{Concurrent: 2})
	a, b := e.mustAdmit(0, key), e.mustAdmit(0, key)
	e.mustRefuse(quota.DimConcurrent, key, 0, key)
	e.settle(a, 0)
	c := e.mustAdmit(0, key)
	e.wantUsage(key, quota.Usage{Requests: 3, Concurrent: 2})
	e.settle(b, 0)
	e.settle(c, 0)
	e.wantUsage(key, quota.Usage{Requests: 3})
}

func testConcurrencyUnderLoad(e *env) {
	const limit = 3
	key := e.subject("key", "k", quota.Limits{Concurrent: limit})
	var inFlight, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 15 {
				res, err := e.l.Admit(context.Background(), quota.Request{ID: newID(), Subjects: []quota.Subject{key}})
				if err != nil || !res.Allowed {
					continue
				}
				n := inFlight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				admitted.Add(1)
				time.Sleep(200 * time.Microsecond)
				inFlight.Add(-1)
				e.l.Settle(context.Background(), res.Lease, quota.Spent{Tokens: 0})
			}
		})
	}
	wg.Wait()
	if peak.Load() > limit || admitted.Load() == 0 {
		e.t.Fatalf("peak %d in flight (cap %d), %d admitted", peak.Load(), limit, admitted.Load())
	}
	if u := e.usage(key); u.Concurrent != 0 {
		e.t.Fatalf("%d leases left after every request settled", u.Concurrent)
	}
}

func testExpiredLeaseFrees(e *env) {
	key := e.subject("key", "k", quota.Limits{Concurrent: 1})
	e.mustAdmit(0, key) // never settled: its gateway died
	e.mustRefuse(quota.DimConcurrent, key, 0, key)
	time.Sleep(leaseTTL + slack)
	e.wantUsage(key, quota.Usage{Requests: 1})
	e.mustAdmit(0, key)
}

func testRenewKeepsAlive(e *env) {
	key := e.subject("key", "k", quota.Limits{Concurrent: 1})
	lease := e.mustAdmit(0, key)
	for range 5 { // 1.5 s, longer than the TTL
		time.Sleep(leaseTTL * 3 / 10)
		if err := e.l.Renew(context.Background(), []*quota.Lease{lease, nil}); err != nil {
			e.t.Fatalf("Renew: %v", err)
		}
		e.mustRefuse(quota.DimConcurrent, key, 0, key)
	}
	if err := e.l.Renew(context.Background(), nil); err != nil {
		e.t.Fatalf("Renew of nothing: %v", err)
	}
	time.Sleep(leaseTTL + slack)
	e.mustAdmit(0, key)
}

func testExpiredLeaseSettlesOnce(e *env) {
	key := e.subject("key", "k", quota.Limits{TPM: 1000})
	lease := e.mustAdmit(500, key)
	time.Sleep(leaseTTL + slack) // expired, but its bucket is still in the window
	e.settle(lease, 100)
	e.settle(lease, 100)
	e.wantUsage(key, quota.Usage{Requests: 1, TokensMinute: 100, TokensDay: 100})
}

func testTPM(e *env) {
	key := e.subject("key", "k", quota.Limits{TPM: 1000})
	user := e.subject("user", "u", quota.Limits{}) // counted without a limit
	start := time.Now()
	a := e.mustAdmit(600, key, user)
	r := e.mustRefuse(quota.DimTPM, key, 500, key, user)
	e.within("RetryAfter", r.RetryAfter, tokenWindow-time.Second-time.Since(start)-slack, tokenWindow)
	if r.Tokens != (quota.Window{Limit: 1000, Remaining: 400, Reset: r.RetryAfter}) {
		e.t.Fatalf("refused tokens window %+v, want 400 remaining, reset %v", r.Tokens, r.RetryAfter)
	}
	if r := e.mustRefuse(quota.DimTPM, key, 1001, key); r.RetryAfter != 0 {
		e.t.Fatalf("reservation over the limit: RetryAfter %v, want 0 (never fits)", r.RetryAfter)
	}
	e.settle(a, 100) // refund 500
	e.wantUsage(user, quota.Usage{Requests: 1, TokensMinute: 100, TokensDay: 100})
	b := e.mustAdmit(500, key, user)
	e.settle(b, 900) // used more than reserved: counted in full
	e.wantUsage(key, quota.Usage{Requests: 2, TokensMinute: 1000, TokensDay: 1000})
	e.wantUsage(user, quota.Usage{Requests: 2, TokensMinute: 1000, TokensDay: 1000})
	e.mustRefuse(quota.DimTPM, key, 1, key)
}

func testTPMWindowSlides(e *env) {
	key := e.subject("key", "k", quota.Limits{TPM: 1000})
	e.mustAdmit(1000, key)
	r := e.mustRefuse(quota.DimTPM, key, 1, key)
	e.within("RetryAfter", r.RetryAfter, window-time.Second-slack, window)
	time.Sleep(r.RetryAfter + 20*time.Millisecond)
	if r := e.admit(1000, key); !r.Allowed || r.Tokens.Remaining != 0 {
		e.t.Fatalf("after the window slid: %+v, want the whole limit back", r)
	}
}

func testSettleAfterWindow(e *env) {
	key := e.subject("key", "k", quota.Limits{})
	a, b := e.mustAdmit(500, key), e.mustAdmit(100, key)
	time.Sleep(window + slack) // both buckets left the window
	e.settle(a, 0)             // the minute refund is moot; the day's is not
	e.wantUsage(key, quota.Usage{Concurrent: 1, TokensDay: 100})
	e.settle(b, 300) // the extra 200 count now
	e.wantUsage(key, quota.Usage{TokensMinute: 200, TokensDay: 300})
}

func testTokensPerDay(e *env) {
	key := e.subject("key", "k", quota.Limits{TokensPerDay: 1000})
	a := e.admit(600, key)
	if !a.Allowed || a.Tokens != (quota.Window{}) || a.Requests != (quota.Window{}) {
		e.t.Fatalf("%+v: want admitted, no RPM or TPM window", a)
	}
	r := e.mustRefuse(quota.DimTokensPerDay, key, 500, key)
	now := time.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	e.within("RetryAfter", r.RetryAfter, midnight.Sub(now)-time.Second, midnight.Sub(now)+time.Second)
	if r := e.mustRefuse(quota.DimTokensPerDay, key, 1001, key); r.RetryAfter != 0 {
		e.t.Fatalf("reservation over the limit: RetryAfter %v, want 0", r.RetryAfter)
	}
	e.settle(a.Lease, 100)
	e.mustAdmit(500, key)
	e.wantUsage(key, quota.Usage{Requests: 2, Concurrent: 1, TokensMinute: 600, TokensDay: 600})
}

func testModelNarrowed(e *env) {
	onA := quota.Subject{Kind: "user", ID: "u", Tenant: e.tenant, Model: "model-a", Limits: quota.Limits{RPM: 1}}
	onB, plain := onA, onA
	onB.Model, plain.Model = "model-b", ""
	// An id that looks like another subject's model must not share its counters.
	lookalike := quota.Subject{Kind: "user", ID: "u@model-a", Tenant: e.tenant, Limits: quota.Limits{RPM: 1}}
	e.mustAdmit(0, onA)
	e.mustRefuse(quota.DimRPM, onA, 0, onA)
	e.mustAdmit(0, onB)
	e.mustAdmit(0, plain)
	e.mustAdmit(0, lookalike)
	e.wantUsage(onA, quota.Usage{Requests: 1, Concurrent: 1})
}

// testEndpointNarrowed: a subject narrowed to an endpoint has counters of its own, apart from
// the plain subject, from other endpoints, from the same name as a model, and from ids that
// look like a narrowed key.
func testEndpointNarrowed(e *env) {
	onEmb := quota.Subject{Kind: "user", ID: "u", Tenant: e.tenant, Endpoint: "embeddings", Limits: quota.Limits{RPM: 1}}
	onChat, plain, asModel := onEmb, onEmb, onEmb
	onChat.Endpoint, plain.Endpoint = "chat/completions", ""
	asModel.Endpoint, asModel.Model = "", "embeddings"
	both := onEmb
	both.Model = "m"
	lookalike := quota.Subject{Kind: "user", ID: "u#embeddings", Tenant: e.tenant, Limits: quota.Limits{RPM: 1}}
	e.mustAdmit(0, onEmb)
	e.mustRefuse(quota.DimRPM, onEmb, 0, onEmb)
	e.mustRefuse(quota.DimRPM, onEmb, 0, plain, onEmb) // refused as a whole: plain consumed nothing
	for _, s := range []quota.Subject{onChat, plain, asModel, both, lookalike} {
		e.mustAdmit(0, s)
	}
	e.wantUsage(onEmb, quota.Usage{Requests: 1, Concurrent: 1})
	e.wantUsage(plain, quota.Usage{Requests: 1, Concurrent: 1})
}

func testWindows(e *env) {
	key := e.subject("key", "k", quota.Limits{RPM: 10, TPM: 5000})
	user := e.subject("user", "u", quota.Limits{RPM: 3, TPM: 1000})
	tenant := e.subject("tenant", "t", quota.Limits{})
	r := e.admit(100, key, user, tenant)
	if !r.Allowed || r.Requests != (quota.Window{Limit: 3, Remaining: 2, Reset: tokenWindow}) {
		e.t.Fatalf("requests window %+v, want the user's: 3, 2 remaining, reset %v", r.Requests, tokenWindow)
	}
	if r.Tokens.Limit != 1000 || r.Tokens.Remaining != 900 {
		e.t.Fatalf("tokens window %+v, want the user's: 1000, 900 remaining", r.Tokens)
	}
	e.within("tokens reset", r.Tokens.Reset, tokenWindow-time.Second, tokenWindow)
	// The key is tighter on tokens once the user's limit no longer applies.
	r = e.admit(4500, key, tenant)
	if !r.Allowed || r.Tokens.Limit != 5000 || r.Tokens.Remaining != 400 || r.Requests.Remaining != 8 {
		e.t.Fatalf("second: %+v, want 8 requests and 400 tokens of the key's remaining", r)
	}
	if r := e.admit(100, tenant); !r.Allowed || r.Requests != (quota.Window{}) || r.Tokens != (quota.Window{}) {
		e.t.Fatalf("no limits: %+v, want zero windows", r)
	}
}

func testUsageWithoutLimits(e *env) {
	tenant := e.subject("tenant", "t", quota.Limits{})
	a := e.mustAdmit(50, tenant)
	e.mustAdmit(50, tenant)
	e.mustAdmit(50, tenant)
	e.settle(a, 20)
	e.wantUsage(tenant, quota.Usage{Requests: 3, Concurrent: 2, TokensMinute: 120, TokensDay: 120})
	e.wantUsage(e.subject("tenant", "never-seen", quota.Limits{}), quota.Usage{})
}

func testClearSession(e *env) {
	c, ok := e.l.(quota.SessionClearer)
	if !ok {
		e.t.Skip("the limiter does not implement quota.SessionClearer")
	}
	session := e.subject("session", "s:1{x}", quota.Limits{RPM: 1})
	key := e.subject("key", "k", quota.Limits{})
	lease := e.mustAdmit(500, key, session)
	e.mustRefuse(quota.DimRPM, session, 0, session)
	if err := c.ClearSession(context.Background(), e.tenant, "s:1{x}"); err != nil {
		e.t.Fatalf("ClearSession: %v", err)
	}
	e.wantUsage(session, quota.Usage{})
	// The refund of a lease admitted before the clear never takes the session below zero.
	e.settle(lease, 0)
	e.wantUsage(session, quota.Usage{})
	e.wantUsage(key, quota.Usage{Requests: 1})
	e.mustAdmit(0, session)
}

func testDoubleSettle(e *env) {
	key := e.subject("key", "k", quota.Limits{TPM: 1000, Concurrent: 1})
	lease := e.mustAdmit(600, key)
	e.settle(lease, 100)
	e.settle(lease, 100)
	e.settle(lease, 0)
	e.settle(nil, 0)
	other := e.mustAdmit(0, key)
	e.settle(lease, 0) // must not free other's slot
	e.mustRefuse(quota.DimConcurrent, key, 0, key)
	e.settle(other, 0)
	e.wantUsage(key, quota.Usage{Requests: 2, TokensMinute: 100, TokensDay: 100})
}

func testInvalidRequests(e *env) {
	key := e.subject("key", "k", quota.Limits{RPM: 1})
	if _, err := e.l.Admit(context.Background(), quota.Request{Subjects: []quota.Subject{key}}); !errors.Is(err, quota.ErrNoRequestID) {
		e.t.Errorf("no ID: %v, want ErrNoRequestID", err)
	}
	other := quota.Subject{Kind: "user", ID: "u", Tenant: e.tenant + "-other"}
	if _, err := e.l.Admit(context.Background(), quota.Request{ID: newID(), Subjects: []quota.Subject{key, other}}); !errors.Is(err, quota.ErrMixedTenants) {
		e.t.Errorf("mixed tenants: %v, want ErrMixedTenants", err)
	}
	if r := e.admit(10); !r.Allowed {
		e.t.Errorf("no subjects: %+v, want admitted", r)
	}
	e.mustAdmit(0, key) // nothing above consumed the key's one request
}

// today is the current UTC day, as the money figures name it.
func today() int64 { return time.Now().UTC().Unix() / 86400 }

// money admits a request reserving cost (nano-USD) and no tokens.
func (e *env) money(cost int64, subjects ...quota.Subject) quota.Result {
	e.t.Helper()
	res, err := e.l.Admit(context.Background(), quota.Request{ID: newID(), Subjects: subjects, Cost: cost})
	if err != nil {
		e.t.Fatalf("Admit: %v", err)
	}
	if res.Degraded || res.Allowed != (res.Lease != nil) || res.Allowed != (res.Dimension == "") {
		e.t.Fatalf("inconsistent or degraded result %+v", res)
	}
	return res
}

func (e *env) mustSpend(cost int64, s quota.Subject) *quota.Lease {
	e.t.Helper()
	res := e.money(cost, s)
	if !res.Allowed {
		e.t.Fatalf("cost %d refused: %+v", cost, res)
	}
	return res.Lease
}

func (e *env) mustNotSpend(dim string, cost int64, s quota.Subject) quota.Result {
	e.t.Helper()
	res := e.money(cost, s)
	if res.Allowed || res.Dimension != dim || res.Subject != s.Key() {
		e.t.Fatalf("cost %d: got %+v, want refused on %s by %s", cost, res, dim, s.Key())
	}
	return res
}

func (e *env) settleMoney(l *quota.Lease, cost, charge int64) {
	e.t.Helper()
	if err := e.l.Settle(context.Background(), l, quota.Spent{Cost: cost, Charge: charge}); err != nil {
		e.t.Fatalf("Settle: %v", err)
	}
}

// A budget counts reservations until Settle replaces them with the real cost; once the counted
// spend reaches it, requests are refused until the period ends, and a refusal consumes nothing.
func testBudgetReserveRefund(e *env) {
	key := e.subject("key", "k", quota.Limits{})
	key.Money = &quota.Money{BudgetDay: 1000, Day: today()}
	a := e.mustSpend(400, key)
	e.mustSpend(400, key)
	b := e.mustSpend(400, key) // 800 < 1000: admitted, the last one past the budget
	res := e.mustNotSpend(quota.DimBudgetDay, 0, key)
	now := time.Now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	e.within("budget_day RetryAfter", res.RetryAfter, time.Until(midnight)-time.Minute, time.Until(midnight)+time.Minute)
	e.settleMoney(a, 100, 100) // 400 reserved, 100 spent: 300 back → 900
	e.settleMoney(a, 0, 0)     // a second settlement is a no-op
	e.mustSpend(50, key)       // 950
	e.mustSpend(50, key)       // 1000
	e.mustNotSpend(quota.DimBudgetDay, 0, key)
	e.settleMoney(b, 0, 0) // 1000 - 400 = 600
	e.mustSpend(400, key)
	e.mustNotSpend(quota.DimBudgetDay, 1, key)

	month := e.subject("user", "u", quota.Limits{})
	month.Money = &quota.Money{BudgetMonth: 500, Day: today()}
	c := e.mustSpend(500, month)
	res = e.mustNotSpend(quota.DimBudgetMonth, 1, month)
	if res.RetryAfter < time.Until(midnight)-time.Minute {
		e.t.Fatalf("budget_month RetryAfter %v ends before today does", res.RetryAfter)
	}
	e.settleMoney(c, 700, 700) // spent more than reserved: counted in full → 700
	month.Money.BudgetMonth = 700
	e.mustNotSpend(quota.DimBudgetMonth, 0, month)
	month.Money.BudgetMonth = 701
	e.mustSpend(0, month)
}

// The ledger's figures count when they are for the current period, and a counter never takes
// them back: the larger of the two applies.
func testBudgetLedgerFigures(e *env) {
	key := e.subject("key", "k", quota.Limits{})
	key.Money = &quota.Money{BudgetDay: 1000, BudgetMonth: 5000, Day: today(), SpentDay: 1000, SpentMonth: 1000}
	e.mustNotSpend(quota.DimBudgetDay, 0, key)
	key.Money.SpentDay = 900
	e.mustSpend(100, key)  // counter: 1000 today
	key.Money.SpentDay = 0 // a ledger that lags behind does not lower the counter
	e.mustNotSpend(quota.DimBudgetDay, 0, key)

	stale := e.subject("key", "stale", quota.Limits{})
	stale.Money = &quota.Money{BudgetDay: 1000, Day: today() - 1, SpentDay: 5000}
	e.mustSpend(999, stale) // yesterday's spend is not today's
	e.mustSpend(1, stale)
	e.mustNotSpend(quota.DimBudgetDay, 0, stale)

	monthly := e.subject("tenant", "t", quota.Limits{})
	monthly.Money = &quota.Money{BudgetDay: 1000, BudgetMonth: 1000, Day: today(), SpentMonth: 1000}
	e.mustNotSpend(quota.DimBudgetMonth, 0, monthly)
	monthly.Money.SpentMonth = 950
	e.mustSpend(50, monthly)
	e.mustNotSpend(quota.DimBudgetMonth, 0, monthly)
}

// A credit account admits a request while what is left, less the charges the ledger has not
// applied and the reservations in flight, is above zero; an exempt request is refunded in full.
func testCreditReservation(e *env) {
	u := e.subject("user", "u", quota.Limits{})
	u.Money = &quota.Money{Credit: true, Balance: 1000, Charged: 5000}
	var leases []*quota.Lease
	for range 3 {
		leases = append(leases, e.mustSpend(300, u))
	}
	last := e.mustSpend(300, u) // 100 left before it: admitted, 200 past zero at most
	e.mustNotSpend(quota.DimCredit, 0, u)
	e.settleMoney(leases[0], 300, 0) // exempt (an upstream fault): nothing charged → 100 left
	e.mustSpend(100, u)
	e.mustNotSpend(quota.DimCredit, 0, u)
	e.settleMoney(last, 40, 40) // 260 back
	e.mustSpend(260, u)
	e.mustNotSpend(quota.DimCredit, 0, u)

	poor := e.subject("tenant", "t", quota.Limits{})
	poor.Money = &quota.Money{Credit: true, Balance: 0, Charged: 0}
	e.mustNotSpend(quota.DimCredit, 0, poor)
	poor.Money.Balance = -5
	e.mustNotSpend(quota.DimCredit, 0, poor)
}

// Charges the ledger has applied are not counted twice: the counter is on the ledger's scale of
// total charges, so a ledger that catches up only moves figures from one side to the other.
func testCreditLedgerCatchesUp(e *env) {
	u := e.subject("user", "u", quota.Limits{})
	u.Money = &quota.Money{Credit: true, Balance: 1000, Charged: 7000}
	a := e.mustSpend(300, u)
	b := e.mustSpend(300, u)
	e.settleMoney(a, 250, 250)
	e.settleMoney(b, 250, 250)
	// The ledger has now applied both charges: balance 500, charged 7500.
	u.Money.Balance, u.Money.Charged = 500, 7500
	e.mustSpend(499, u)
	e.mustSpend(1, u)
	e.mustNotSpend(quota.DimCredit, 0, u)
	// A top-up shows in the balance alone.
	u.Money.Balance = 2500
	e.mustSpend(2000, u)
	e.mustNotSpend(quota.DimCredit, 0, u)
}

// Concurrent requests against a small balance: admitted while it lasts, counting the
// reservations in flight, and not one more.
func testCreditConcurrent(e *env) {
	u := e.subject("user", "u", quota.Limits{})
	u.Money = &quota.Money{Credit: true, Balance: 500, Charged: 0}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			res, err := e.l.Admit(context.Background(), quota.Request{ID: newID(), Subjects: []quota.Subject{u}, Cost: 30})
			if err != nil {
				e.t.Errorf("Admit: %v", err)
				return
			}
			if res.Allowed {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	// 16 × 30 = 480 leaves 20 > 0, so a 17th is admitted; after it nothing is left.
	if n := admitted.Load(); n != 17 {
		e.t.Fatalf("%d requests of 30 admitted against a balance of 500, want exactly 17", n)
	}
}
