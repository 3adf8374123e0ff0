package quota

import (
	"context"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func subj(id string, l Limits) Subject { return Subject{Kind: "key", ID: id, Tenant: "t", Limits: l} }

func TestRPMSlidingWindowIsExact(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(c.now)
	s := subj("k", Limits{RPM: 3})
	admit := func() Result {
		t.Helper()
		r, err := m.Admit(context.Background(), Request{Subjects: []Subject{s}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed {
			m.Release(context.Background(), r.Lease)
		}
		return r
	}
	for i := 0; i < 3; i++ {
		if r := admit(); !r.Allowed || r.RemainingRequests != int64(2-i) || r.LimitRequests != 3 {
			t.Fatalf("admission %d: %+v", i, r)
		}
		c.add(10 * time.Second)
	}
	// t=30s: three admitted at 0, 10, 20 s; the window holds them all
	r := admit()
	if r.Allowed || r.Dimension != DimRPM || r.RetryAfter != 30*time.Second {
		t.Fatalf("4th in window: %+v, want refused with RetryAfter 30s", r)
	}
	c.add(30 * time.Second) // t=60s: the admission at 0 s left the window
	if r := admit(); !r.Allowed {
		t.Fatalf("after the oldest expired: %+v", r)
	}
	if r := admit(); r.Allowed {
		t.Fatalf("only one slot freed, but a second request was admitted")
	}
}

func TestRefusalConsumesNothing(t *testing.T) {
	m := NewMemory(nil)
	user := Subject{Kind: "user", ID: "u", Tenant: "t", Limits: Limits{RPM: 10}}
	key := Subject{Kind: "key", ID: "k", Tenant: "t", Limits: Limits{Concurrent: 1}}
	r1, _ := m.Admit(context.Background(), Request{Subjects: []Subject{user, key}})
	if !r1.Allowed {
		t.Fatal("first refused")
	}
	for i := 0; i < 5; i++ { // refused on concurrency: must not use up the user's RPM
		if r, _ := m.Admit(context.Background(), Request{Subjects: []Subject{user, key}}); r.Allowed || r.Dimension != DimConcurrent {
			t.Fatalf("refusal %d: %+v", i, r)
		}
	}
	m.Release(context.Background(), r1.Lease)
	m.Release(context.Background(), r1.Lease) // a second release is a no-op
	if got := m.InFlight(key); got != 0 {
		t.Fatalf("in flight after release = %d", got)
	}
	r, _ := m.Admit(context.Background(), Request{Subjects: []Subject{user, key}})
	if !r.Allowed || r.RemainingRequests != 8 {
		t.Fatalf("after release: %+v, want allowed with 8 remaining (2 used)", r)
	}
}

func TestConcurrencyCapUnderLoad(t *testing.T) {
	m := NewMemory(nil)
	s := subj("k", Limits{Concurrent: 4})
	var mu sync.Mutex
	inFlight, peak, admitted := 0, 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				r, _ := m.Admit(context.Background(), Request{Subjects: []Subject{s}})
				if !r.Allowed {
					continue
				}
				mu.Lock()
				inFlight++
				admitted++
				peak = max(peak, inFlight)
				mu.Unlock()
				time.Sleep(50 * time.Microsecond)
				mu.Lock()
				inFlight--
				mu.Unlock()
				m.Release(context.Background(), r.Lease)
			}
		}()
	}
	wg.Wait()
	if peak > 4 || admitted == 0 || m.InFlight(s) != 0 {
		t.Fatalf("peak %d (cap 4), admitted %d, left in flight %d", peak, admitted, m.InFlight(s))
	}
}

func TestLimitChangeKeepsHistory(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(c.now)
	for i := 0; i < 5; i++ {
		if r, _ := m.Admit(context.Background(), Request{Subjects: []Subject{subj("k", Limits{RPM: 10})}}); !r.Allowed {
			t.Fatal("refused under limit")
		}
	}
	// lowering the limit to 3 must count the 5 already admitted
	if r, _ := m.Admit(context.Background(), Request{Subjects: []Subject{subj("k", Limits{RPM: 3})}}); r.Allowed {
		t.Fatal("admitted past a lowered limit")
	}
}

func TestSweepForgetsIdleSubjects(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(c.now)
	r, _ := m.Admit(context.Background(), Request{Subjects: []Subject{subj("idle", Limits{RPM: 5})}})
	m.Release(context.Background(), r.Lease)
	busy, _ := m.Admit(context.Background(), Request{Subjects: []Subject{subj("busy", Limits{Concurrent: 5})}})
	c.add(2 * time.Minute)
	m.Sweep()
	if _, ok := m.subjects["t/key/idle"]; ok {
		t.Error("idle subject kept")
	}
	if _, ok := m.subjects["t/key/busy"]; !ok {
		t.Error("subject with a request in flight forgotten")
	}
	m.Release(context.Background(), busy.Lease)
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
