package quota

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source, so Memory's window arithmetic is checked to the millisecond
// (the quotatest suite checks the shared semantics on real time, with margins).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClockMemory() (*Memory, *clock) {
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	return NewMemory(LimiterOptions{Window: time.Minute, LeaseTTL: 30 * time.Second, Now: c.now}), c
}

func subj(id string, l Limits) Subject { return Subject{Kind: "key", ID: id, Tenant: "t", Limits: l} }

var seq int

func admit(t *testing.T, m *Memory, tokens int64, subjects ...Subject) Result {
	t.Helper()
	seq++
	r, err := m.Admit(context.Background(), Request{ID: fmt.Sprint("req-", seq), Subjects: subjects, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMemoryRPMSlidingWindowIsExact(t *testing.T) {
	m, c := newClockMemory()
	s := subj("k", Limits{RPM: 3})
	for i := range 3 {
		r := admit(t, m, 0, s)
		if !r.Allowed || r.Requests != (Window{Limit: 3, Remaining: int64(2 - i), Reset: time.Minute}) {
			t.Fatalf("admission %d: %+v", i, r)
		}
		m.Settle(context.Background(), r.Lease, Spent{Tokens: 0})
		c.add(10 * time.Second)
	}
	// t=30s: admitted at 0, 10, 20 s; the one at 0 s leaves the window at 60 s.
	r := admit(t, m, 0, s)
	if r.Allowed || r.Dimension != DimRPM || r.RetryAfter != 30*time.Second || r.Subject != "t/key/k" {
		t.Fatalf("4th in window: %+v, want refused with RetryAfter 30s", r)
	}
	if r.Requests != (Window{Limit: 3, Remaining: 0, Reset: 50 * time.Second}) {
		t.Fatalf("refused window %+v", r.Requests)
	}
	c.add(30*time.Second - time.Millisecond)
	if r := admit(t, m, 0, s); r.Allowed {
		t.Fatal("admitted 1 ms before the oldest admission left the window")
	}
	c.add(time.Millisecond)
	if r := admit(t, m, 0, s); !r.Allowed {
		t.Fatalf("after the oldest expired: %+v", r)
	}
	if r := admit(t, m, 0, s); r.Allowed {
		t.Fatal("only one slot freed, but a second request was admitted")
	}
}

func TestMemoryTokenBuckets(t *testing.T) {
	m, c := newClockMemory()
	s := subj("k", Limits{TPM: 1000, TokensPerDay: 1500})
	a := admit(t, m, 600, s).Lease // second 0
	c.add(20 * time.Second)
	b := admit(t, m, 300, s).Lease // second 20
	if r := admit(t, m, 200, s); r.Allowed || r.Dimension != DimTPM || r.RetryAfter != 40*time.Second {
		t.Fatalf("over TPM: %+v, want RetryAfter 40s (the 600 leave at 60 s)", r)
	}
	if r := admit(t, m, 1001, s); r.Allowed || r.Dimension != DimTPM || r.RetryAfter != 0 {
		t.Fatalf("reservation over the limit: %+v", r)
	}
	m.Settle(context.Background(), a, Spent{Tokens: 100}) // refund 500 into second 0's bucket
	if r := admit(t, m, 500, s); !r.Allowed || r.Tokens != (Window{Limit: 1000, Remaining: 100, Reset: time.Minute}) {
		t.Fatalf("after refund: %+v", r)
	}
	// day: 100 + 300 + 500 = 900 of 1500
	c.add(45 * time.Second) // second 65: bucket 0 left the window
	m.Settle(context.Background(), b, Spent{Tokens: 500})
	u, _ := m.Usage(context.Background(), s)
	if u.TokensMinute != 1000 || u.TokensDay != 1100 {
		t.Fatalf("usage %+v, want 1000 in the minute (300+200 charge, 500) and 1100 today", u)
	}
	c.add(16 * time.Second) // second 81: bucket 20 left too
	if r := admit(t, m, 401, s); r.Allowed || r.Dimension != DimTokensPerDay {
		t.Fatalf("over the day: %+v", r)
	} else if want := 12*time.Hour - 81*time.Second; r.RetryAfter != want {
		t.Fatalf("day RetryAfter %v, want %v (until UTC midnight)", r.RetryAfter, want)
	}
}

func TestMemoryLimitChangeKeepsHistory(t *testing.T) {
	m, _ := newClockMemory()
	for range 5 {
		if r := admit(t, m, 0, subj("k", Limits{RPM: 10})); !r.Allowed {
			t.Fatal("refused under limit")
		}
	}
	// Lowering the limit to 3 counts the 5 already admitted.
	if r := admit(t, m, 0, subj("k", Limits{RPM: 3})); r.Allowed || r.Requests.Remaining != 0 {
		t.Fatalf("admitted past a lowered limit: %+v", r)
	}
}

func TestMemorySweepForgetsIdleSubjects(t *testing.T) {
	m, c := newClockMemory()
	idle := admit(t, m, 0, subj("idle", Limits{RPM: 5}))
	m.Settle(context.Background(), idle.Lease, Spent{Tokens: 0})
	spent := admit(t, m, 10, subj("spent", Limits{}))
	m.Settle(context.Background(), spent.Lease, Spent{Tokens: 10})
	admit(t, m, 0, subj("busy", Limits{Concurrent: 5})) // never settled
	c.add(2 * time.Minute)
	m.Sweep()
	if _, ok := m.subjects["{t:t}:q:key:idle"]; ok {
		t.Error("idle subject kept")
	}
	if _, ok := m.subjects["{t:t}:q:key:spent"]; !ok {
		t.Error("subject with tokens today forgotten: its daily limit would reset")
	}
	if _, ok := m.subjects["{t:t}:q:key:busy"]; !ok {
		t.Error("subject with a lease forgotten")
	}
	c.add(leaseTombstone + time.Minute)
	m.Sweep()
	if _, ok := m.subjects["{t:t}:q:key:busy"]; ok {
		t.Error("subject kept after its lease expired and its tombstone passed")
	}
	c.add(24 * time.Hour)
	m.Sweep()
	if len(m.subjects) != 0 {
		t.Errorf("after a day, %d subjects left", len(m.subjects))
	}
}

func TestValidate(t *testing.T) {
	m, _ := newClockMemory()
	for name, req := range map[string]Request{
		"no id":          {Subjects: []Subject{subj("k", Limits{})}},
		"mixed tenants":  {ID: "x", Subjects: []Subject{subj("k", Limits{}), {Kind: "user", ID: "u", Tenant: "other"}}},
		"negative limit": {ID: "x", Subjects: []Subject{subj("k", Limits{RPM: -1})}},
	} {
		if _, err := m.Admit(context.Background(), req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestTierLimits(t *testing.T) {
	o := Options{}.WithDefaults()
	if !*o.Enabled || o.DefaultTier != "free" {
		t.Fatalf("defaults %+v", o)
	}
	if l := o.TierLimits("pro"); l.RPM != 100 || l.Concurrent != 10 || l.TokensPerDay != 2_000_000 {
		t.Errorf("pro = %+v", l)
	}
	if l := o.TierLimits("no-such-tier"); l != o.Tiers["free"] {
		t.Errorf("unknown tier = %+v, want free's", l)
	}
}
