package providers

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestBalancerBreaker: failures open a deployment's breaker after consecutive_failures; excused
// outcomes count neither way; the status shows it all; a change of breaker settings starts a
// fresh breaker but keeps what was measured.
func TestBalancerBreaker(t *testing.T) {
	b := NewBalancer(prometheus.NewRegistry())
	d := &Deployment{ID: "d", ProviderName: "p", Model: "m", Weight: 1, Enabled: true,
		Breaker: BreakerConfig{}.withDefaults(BreakerConfig{ConsecutiveFailures: 2, OpenFor: time.Hour})}
	for i, end := range []func(Attempt){
		func(a Attempt) { a.Failed("connect timeout") },
		func(a Attempt) { a.Excused() },
		func(a Attempt) { a.Failed("http 500") },
	} {
		a, ok := b.Acquire(d)
		if !ok {
			t.Fatalf("attempt %d refused", i)
		}
		end(a)
	}
	if _, ok := b.Acquire(d); ok {
		t.Fatal("two failures in a row (an excused outcome between them) left the breaker closed")
	}
	st := b.Status(d)
	if st.Breaker != "open" || st.Available || st.Failed != 2 || st.Succeeded != 0 || st.LastFailure == nil || st.LastFailure.Reason != "http 500" {
		t.Errorf("status %+v", st)
	}
	changed := *d
	changed.Breaker.ConsecutiveFailures = 3
	a, ok := b.Acquire(&changed)
	if !ok {
		t.Fatal("new breaker settings did not start a fresh breaker")
	}
	a.ObserveTTFT(40 * time.Millisecond)
	a.Succeeded()
	if st := b.Status(&changed); st.Breaker != "closed" || st.Failed != 2 || st.Succeeded != 1 || st.TTFTMs != 40 {
		t.Errorf("after the change: %+v", st)
	}
}

// TestBalancerOrder: within each priority group, latency puts the fastest measured (and the
// unmeasured first), cost the cheapest (unpriced last); weighted keeps the order given.
func TestBalancerOrder(t *testing.T) {
	b := NewBalancer(nil)
	mk := func(id, model string, prio int) *Deployment {
		return &Deployment{ID: id, Model: model, Priority: prio, Breaker: BreakerConfig{}.withDefaults(BreakerConfig{})}
	}
	slow, fast, fresh, later := mk("slow", "dear", 0), mk("fast", "cheap", 0), mk("fresh", "free", 0), mk("later", "cheapest", 1)
	for d, ms := range map[*Deployment]int{slow: 300, fast: 20, later: 1} {
		a, _ := b.Acquire(d)
		a.ObserveTTFT(time.Duration(ms) * time.Millisecond)
		a.Succeeded()
	}
	prices := map[string]int64{"dear": 30, "cheap": 10, "cheapest": 1}
	price := func(m string) (int64, bool) { p, ok := prices[m]; return p, ok }
	ids := func(ds []*Deployment) (out []string) {
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	cands := []*Deployment{slow, fast, fresh, later}
	for _, tc := range []struct {
		strategy string
		want     []string
	}{
		{StrategyWeighted, []string{"slow", "fast", "fresh", "later"}},
		{StrategyLatency, []string{"fresh", "fast", "slow", "later"}},
		{StrategyCost, []string{"fast", "slow", "fresh", "later"}},
	} {
		if got := ids(b.Order(cands, tc.strategy, price)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.strategy, got, tc.want)
		}
	}
	if got := ids(cands); !slices.Equal(got, []string{"slow", "fast", "fresh", "later"}) {
		t.Errorf("Order changed its argument: %v", got)
	}
}
