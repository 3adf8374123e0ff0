package quota_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/quota/quotatest"
)

func TestResilientConformance(t *testing.T) {
	t.Parallel()
	quotatest.Run(t, func(t *testing.T, opts quota.LimiterOptions) quota.Limiter {
		// A generous timeout: under -race a slow call would fall back and fail the suite's
		// no-degraded-decision checks.
		x := quota.NewResilient(quota.NewRedis(newClient(t), opts), quota.ResilientOptions{Timeout: 2 * time.Second, Limiter: opts})
		t.Cleanup(x.Close)
		return x
	})
}

// TestResilientRedisOutage stops Redis under load: decisions follow the policy (fail open with
// the limit divided by the replicas, fail closed refused), none waits long, and once Redis is
// back decisions are exact again within 5 s. Nothing leaks.
func TestResilientRedisOutage(t *testing.T) {
	addr := outage.Addr(t)
	// The restarted redis-server's waiter belongs to testsvc, not to the limiter.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/llmgate/llmgate/internal/testsvc.startProcess.func1"))
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	defer client.Close()
	reg := prometheus.NewRegistry()
	opts := quota.LimiterOptions{Window: 10 * time.Second}
	x := quota.NewResilient(quota.NewRedis(client, opts), quota.ResilientOptions{
		Timeout:       100 * time.Millisecond, // above 50ms: -race on 2 cores
		FailClosed:    func(dim string) bool { return dim == quota.DimConcurrent },
		Replicas:      3,
		ProbeInterval: 100 * time.Millisecond,
		Limiter:       opts,
		Registerer:    reg,
		Log:           slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	defer x.Close()
	ctx := context.Background()
	tenant := quotatest.Tenant(t)
	open := quota.Subject{Kind: "key", ID: "open", Tenant: tenant, Limits: quota.Limits{RPM: 30}}
	closed := quota.Subject{Kind: "key", ID: "closed", Tenant: tenant, Limits: quota.Limits{Concurrent: 5}}
	var seq int
	admit := func(s quota.Subject) quota.Result {
		t.Helper()
		seq++
		res, err := x.Admit(ctx, quota.Request{ID: fmt.Sprint("single-", seq), Subjects: []quota.Subject{s}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	before := admit(closed)
	if !before.Allowed || before.Degraded || !x.Healthy() {
		t.Fatalf("with Redis up: %+v, healthy %v", before, x.Healthy())
	}

	outage.Stop(t)
	var mu sync.Mutex
	var slowest time.Duration
	var admitted, degraded, total int
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 10 {
				start := time.Now()
				res, err := x.Admit(ctx, quota.Request{ID: fmt.Sprint("load-", w, "-", i), Subjects: []quota.Subject{open}})
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				total++
				if err == nil && res.Allowed {
					admitted++
				}
				if err == nil && res.Degraded {
					degraded++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// No admission waits on the dead Redis beyond its timeout (50 ms here) for long: the bound
	// only tells a hang from a slow, shared machine.
	if slowest > 3*time.Second {
		t.Errorf("slowest admission with Redis down took %v", slowest)
	}
	if admitted != 10 || degraded != total {
		t.Errorf("fail open: %d admitted, %d of %d degraded; want ceil(30/3) = 10, all degraded", admitted, degraded, total)
	}
	if x.Healthy() {
		t.Error("Healthy with Redis down")
	}
	if r := admit(closed); r.Allowed || !r.Degraded || r.Dimension != quota.DimConcurrent || r.RetryAfter <= 0 {
		t.Errorf("fail closed: %+v, want refused on concurrency with a RetryAfter", r)
	}
	if err := x.Settle(ctx, before.Lease, quota.Spent{Tokens: 0}); err != nil { // Redis lease: queued for replay
		t.Errorf("Settle of a Redis lease while down: %v", err)
	}
	if n := metric(t, reg, "llmgate_quota_pending_settlements"); n < 1 {
		t.Errorf("%v settlements pending while Redis is down, want the Redis lease's", n)
	}
	if _, err := x.Usage(ctx, open); !errors.Is(err, quota.ErrRedisDown) {
		t.Errorf("Usage while down: %v, want ErrRedisDown", err)
	}
	for name, want := range map[string]float64{
		`llmgate_quota_redis_up`:                                           0,
		`llmgate_quota_fallback_decisions_total{policy="open"}`:            float64(total),
		`llmgate_quota_fallback_decisions_total{policy="closed"}`:          1,
		`llmgate_quota_decisions_total{dimension="rpm",result="rejected"}`: float64(total - 10),
		`llmgate_quota_dropped_settlements_total{reason="queue_full"}`:     0,
	} {
		if got := metric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	outage.Start(t)
	back := time.Now()
	for r := admit(closed); r.Degraded; r = admit(closed) {
		if time.Since(back) > 5*time.Second {
			t.Fatal("still deciding locally 5 s after Redis returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !x.Healthy() || metric(t, reg, "llmgate_quota_redis_up") != 1 {
		t.Error("Redis is back but not reported up")
	}
	quotatest.Exactness(t, []quota.Limiter{x}, quotatest.Tenant(t), 20)
}

// metric returns the value of one series, named as in the exposition format.
func metric(t *testing.T, g prometheus.Gatherer, series string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if seriesName(f.GetName(), m) == series {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func seriesName(name string, m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return name
	}
	name += "{"
	for i, l := range m.GetLabel() {
		if i > 0 {
			name += ","
		}
		name += l.GetName() + `="` + l.GetValue() + `"`
	}
	return name + "}"
}

// TestResilientTimesRoundTripsOnly: llmgate_quota_redis_seconds times calls to Redis; a request
// admitted and settled from a permit lease makes none, so it adds no sample (and no deadline to
// make).
func TestResilientTimesRoundTripsOnly(t *testing.T) {
	t.Parallel()
	c, _ := ownRedis(t) // the test counts every script run in it
	reg := prometheus.NewRegistry()
	opts := leaseOpts(quota.LimiterOptions{})
	x := quota.NewResilient(quota.NewRedis(c, opts), quota.ResilientOptions{Timeout: 2 * time.Second, Limiter: opts, Registerer: reg})
	t.Cleanup(x.Close)
	subjects := benchSubjects(quotatest.Tenant(t))
	before, _ := redisCounters(t, c)
	const workers, each = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res, err := x.Admit(context.Background(), quota.Request{ID: fmt.Sprintf("r-%d-%d", w, i), Subjects: subjects, Tokens: 10})
				if err != nil || !res.Allowed || res.Degraded {
					t.Errorf("admission: %+v, %v", res, err)
					return
				}
				if err := x.Settle(context.Background(), res.Lease, quota.Spent{Tokens: 3}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	scripts, _ := redisCounters(t, c)
	scripts -= before
	var samples uint64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "llmgate_quota_redis_seconds" {
			samples = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Logf("%d latency samples, %d script runs, %d requests", samples, scripts, workers*each)
	// A call, or a wait for the lease another admission is asking for, is timed: a few more
	// samples than script runs, far fewer than requests.
	if samples == 0 || samples > workers*each/4 {
		t.Errorf("%d latency samples for %d script runs in Redis and %d requests; want about one per call", samples, scripts, workers*each)
	}
}
