package quota_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/testsvc"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/quota/quotatest"
)

var (
	shared  *testsvc.RedisServer        // the conformance suites and exactness tests
	outage  *testsvc.RedisServer        // stopped and restarted by the Resilient tests
	cluster *testsvc.RedisClusterServer // 3 masters
)

func TestMain(m *testing.M) {
	var stopShared, stopOutage, stopCluster func()
	shared, stopShared = testsvc.Redis()
	outage, stopOutage = testsvc.Redis()
	cluster, stopCluster = testsvc.RedisCluster()
	code := m.Run()
	stopShared()
	stopOutage()
	stopCluster()
	os.Exit(code)
}

// newClient connects to the shared Redis. Tests keep apart by tenant (quotatest.Tenant), so
// they share one database and run in parallel.
func newClient(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: shared.Addr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func newClusterClient(t testing.TB) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	quotatest.Run(t, func(t *testing.T, opts quota.LimiterOptions) quota.Limiter { return quota.NewMemory(opts) })
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	quotatest.Run(t, func(t *testing.T, opts quota.LimiterOptions) quota.Limiter {
		return quota.NewRedis(newClient(t), opts)
	})
}

func TestRedisClusterConformance(t *testing.T) {
	t.Parallel()
	quotatest.Run(t, func(t *testing.T, opts quota.LimiterOptions) quota.Limiter {
		return quota.NewRedis(newClusterClient(t), opts)
	})
}

// TestRedisExactAcrossReplicas: three limiters with clients of their own (three gateway
// replicas) sharing one Redis admit exactly the limit between them.
func TestRedisExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	opts := quota.LimiterOptions{Window: 10 * time.Second}
	var replicas []quota.Limiter
	for range 3 {
		replicas = append(replicas, quota.NewRedis(newClient(t), opts))
	}
	quotatest.Exactness(t, replicas, quotatest.Tenant(t), 40)
}

// TestRedisEndpointExactAcrossReplicas: a limit narrowed to one endpoint is exact across
// replicas too, on a single node and on a Cluster.
func TestRedisEndpointExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	opts := quota.LimiterOptions{Window: 10 * time.Second}
	for name, client := range map[string]func(*testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return newClient(t) },
		"cluster": func(t *testing.T) redis.UniversalClient { return newClusterClient(t) },
	} {
		t.Run(name, func(t *testing.T) {
			var replicas []quota.Limiter
			for range 3 {
				replicas = append(replicas, quota.NewRedis(client(t), opts))
			}
			quotatest.ExactnessOf(t, replicas, quota.Subject{Kind: quota.KindKey, ID: "hot", Tenant: quotatest.Tenant(t),
				Endpoint: "images/generations", Limits: quota.Limits{RPM: 40}})
		})
	}
}

func TestRedisClusterExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	opts := quota.LimiterOptions{Window: 10 * time.Second}
	var replicas []quota.Limiter
	for range 3 {
		replicas = append(replicas, quota.NewRedis(newClusterClient(t), opts))
	}
	quotatest.Exactness(t, replicas, quotatest.Tenant(t), 40)
}

// roundTrips counts the calls a client makes to Redis: one per command or pipeline.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRedisOneRoundTrip: once the scripts are cached, an admission, a settlement and a renewal
// of any number of leases are one round trip each.
func TestRedisOneRoundTrip(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	hook := &roundTrips{}
	c.AddHook(hook)
	l := quota.NewRedis(c, quota.LimiterOptions{})
	ctx := context.Background()
	tenant := quotatest.Tenant(t)
	subjects := benchSubjects(tenant)
	count := func(what string, f func() error) {
		t.Helper()
		before := hook.n.Load()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := hook.n.Load() - before; n != 1 {
			t.Errorf("%s: %d round trips, want 1", what, n)
		}
	}
	var leases []*quota.Lease
	for i := range 3 {
		if i == 0 { // the first run may load the scripts
			res, err := l.Admit(ctx, quota.Request{ID: "warm", Subjects: subjects, Tokens: 10})
			if err != nil || !res.Allowed {
				t.Fatalf("warm-up: %+v, %v", res, err)
			}
			leases = append(leases, res.Lease)
			l.Renew(ctx, leases)
			l.Settle(ctx, res.Lease, quota.Spent{Tokens: 5})
			leases = nil
		}
		count("Admit", func() error {
			res, err := l.Admit(ctx, quota.Request{ID: strconv.Itoa(i), Subjects: subjects, Tokens: 10})
			leases = append(leases, res.Lease)
			return err
		})
	}
	count("Renew", func() error { return l.Renew(ctx, leases) })
	for _, lease := range leases {
		count("Settle", func() error { return l.Settle(ctx, lease, quota.Spent{Tokens: 5}) })
	}
}

func benchSubjects(tenant string) []quota.Subject {
	return []quota.Subject{
		{Kind: "key", ID: "k", Tenant: tenant, Limits: quota.Limits{RPM: 1 << 40, TPM: 1 << 50, Concurrent: 1 << 20}},
		{Kind: "user", ID: "u", Tenant: tenant, Limits: quota.Limits{RPM: 1 << 40, TokensPerDay: 1 << 50}},
		{Kind: "tenant", ID: tenant, Tenant: tenant},
	}
}

// BenchmarkRedisAdmit: admit and settle a request of three subjects (key, user, tenant) with
// every dimension limited somewhere, in parallel as a gateway would.
func BenchmarkRedisAdmit(b *testing.B) {
	l := quota.NewRedis(newClient(b), quota.LimiterOptions{})
	subjects := benchSubjects(quotatest.Tenant(b))
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := strconv.FormatInt(seq.Add(1), 10) // unique: the tenant is the run's own
			res, err := l.Admit(ctx, quota.Request{ID: id, Subjects: subjects, Tokens: 100})
			if err != nil || !res.Allowed {
				b.Fatalf("%+v, %v", res, err)
			}
			if err := l.Settle(ctx, res.Lease, quota.Spent{Tokens: 80}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestSettlementsArePipelined: concurrent settlements share round trips, and every lease is
// released, also when some callers stop waiting.
func TestSettlementsArePipelined(t *testing.T) {
	c := newClient(t)
	var pipelines atomic.Int64
	c.AddHook(pipelineCounter{&pipelines})
	r := quota.NewRedis(c, quota.LimiterOptions{})
	tenant := quotatest.Tenant(t)
	const n = 64
	s := quota.Subject{Kind: "key", ID: "pipelined", Tenant: tenant, Limits: quota.Limits{Concurrent: n}}
	leases := make([]*quota.Lease, n)
	for i := range leases {
		res, err := r.Admit(context.Background(), quota.Request{ID: fmt.Sprintf("p-%d", i), Subjects: []quota.Subject{s}, Tokens: 1})
		if err != nil || !res.Allowed {
			t.Fatalf("admit %d: %v %+v", i, err, res)
		}
		leases[i] = res.Lease
	}
	pipelines.Store(0)
	var wg sync.WaitGroup
	for i, l := range leases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%8 == 0 { // some callers give up at once; their settlements must still land
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				ctx = cctx
			}
			_ = r.Settle(ctx, l, quota.Spent{Tokens: 1})
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, err := r.Usage(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if u.Concurrent == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d leases still held after every settlement", u.Concurrent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p := pipelines.Load(); p >= n {
		t.Errorf("%d settlements took %d pipelines: not batched", n, p)
	} else {
		t.Logf("%d concurrent settlements in %d pipelines", n, p)
	}
}

// pipelineCounter counts pipelines sent.
type pipelineCounter struct{ n *atomic.Int64 }

func (pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}
