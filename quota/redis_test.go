package quota_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
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

// ownRedis is a client of a redis-server of the test's own (stopped when the test ends), for a
// test that counts every script run in it or stalls it, and that server's address.
func ownRedis(t testing.TB) (*redis.Client, string) {
	own, stop := testsvc.Redis()
	t.Cleanup(stop)
	addr := own.Addr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c, addr
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

// redisCounters reads what a request costs Redis: script runs (EVAL, EVALSHA: one per
// round trip of the limiter) and redis-server's CPU time (user + system).
func redisCounters(tb testing.TB, c *redis.Client) (scripts int64, cpu time.Duration) {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var secs float64
	for _, line := range strings.Split(info, "\r\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch name {
		case "cmdstat_evalsha", "cmdstat_eval":
			calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			scripts += n
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			secs += f
		}
	}
	return scripts, time.Duration(secs * float64(time.Second))
}

// BenchmarkRedisAdmitSettleCost: BenchmarkRedisAdmit at 32 callers, reporting Redis's cost per
// request: script runs (round trips) and redis-server CPU. Run it alone: the CPU is the
// server's, whoever else uses it.
func BenchmarkRedisAdmitSettleCost(b *testing.B) {
	for _, proto := range []int{3, 2} {
		b.Run(fmt.Sprintf("resp%d", proto), func(b *testing.B) {
			c := redis.NewClient(&redis.Options{Addr: shared.Addr(b), ContextTimeoutEnabled: true, Protocol: proto})
			b.Cleanup(func() { c.Close() })
			benchmarkAdmitSettleCost(b, c, quota.LimiterOptions{})
		})
	}
	b.Run("resp3-leases", func(b *testing.B) {
		c := redis.NewClient(&redis.Options{Addr: shared.Addr(b), ContextTimeoutEnabled: true})
		b.Cleanup(func() { c.Close() })
		benchmarkAdmitSettleCost(b, c, quota.LimiterOptions{PermitLeases: quota.PermitLeaseOptions{Enabled: true}})
	})
}

func benchmarkAdmitSettleCost(b *testing.B, c *redis.Client, opts quota.LimiterOptions) {
	l := quota.NewRedis(c, opts)
	subjects := benchSubjects(quotatest.Tenant(b))
	var seq atomic.Int64
	b.SetParallelism(32 / max(1, runtime.GOMAXPROCS(0)))
	s0, cpu0 := redisCounters(b, c)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := strconv.FormatInt(seq.Add(1), 10)
			res, err := l.Admit(ctx, quota.Request{ID: id, Subjects: subjects, Tokens: 100})
			if err != nil || !res.Allowed {
				b.Fatalf("%+v, %v", res, err)
			}
			if err := l.Settle(ctx, res.Lease, quota.Spent{Tokens: 80}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	s1, cpu1 := redisCounters(b, c)
	b.ReportMetric(float64(s1-s0)/float64(b.N), "scripts/op")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "redis-µs/op")
}

// TestRedisSettlementsRideAdmissions: under concurrent load a settlement costs no script run of
// its own: it rides along with the next admission of the tenant, so Redis runs about one
// script per request, and every settlement still lands (slots freed, tokens corrected).
func TestRedisSettlementsRideAdmissions(t *testing.T) {
	t.Parallel()
	c, _ := ownRedis(t) // the test counts every script run in it
	l := quota.NewRedis(c, quota.LimiterOptions{})
	subjects := benchSubjects(quotatest.Tenant(t))
	ctx := context.Background()
	warm, err := l.Admit(ctx, quota.Request{ID: "warm", Subjects: subjects, Tokens: 10}) // loads the scripts
	if err != nil || !warm.Allowed {
		t.Fatalf("warm-up: %+v, %v", warm, err)
	}
	if err := l.Settle(ctx, warm.Lease, quota.Spent{Tokens: 1}); err != nil {
		t.Fatal(err)
	}
	before, _ := redisCounters(t, c)
	reads := commandCalls(t, c, "hmget")
	const workers, each = 16, 50
	var wg sync.WaitGroup
	var errs atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("r-%d-%d", w, i), Subjects: subjects, Tokens: 10})
				if err != nil || !res.Allowed {
					errs.Add(1)
					continue
				}
				if err := l.Settle(ctx, res.Lease, quota.Spent{Tokens: 1}); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	after, _ := redisCounters(t, c)
	if errs.Load() > 0 {
		t.Fatalf("%d admissions or settlements failed", errs.Load())
	}
	perRequest := float64(after-before) / (workers * each)
	t.Logf("%.2f script runs per request", perRequest)
	if perRequest > 1.5 { // a script per admission and one per settlement would be 2
		t.Errorf("%.2f script runs per request, want about 1: settlements are not carried by admissions", perRequest)
	}
	// Admission reads each subject's token hash once (HMGET); a settlement carried in the same
	// second corrects it there instead of reading it again: 3 subjects, well under 6 reads.
	hmget := float64(commandCalls(t, c, "hmget")-reads) / (workers * each)
	t.Logf("%.2f token hash reads per request", hmget)
	if hmget > 4.5 {
		t.Errorf("%.2f HMGET per request: carried settlements read the token hashes again", hmget)
	}
	if u := usage(t, l, subjects[0]); u.Concurrent != 0 || u.TokensMinute != 1+workers*each || u.Requests != 1+workers*each {
		t.Errorf("usage %+v: want %d requests and tokens, none in flight", u, 1+workers*each)
	}
}

func usage(t *testing.T, l quota.Limiter, s quota.Subject) quota.Usage {
	t.Helper()
	u, err := l.(quota.UsageReader).Usage(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// commandCalls is INFO commandstats' count of calls of one command (scripts' calls included).
func commandCalls(t *testing.T, c *redis.Client, name string) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			v, _, _ = strings.Cut(v, ",")
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// TestRedisSettleOutlastsAStalledServer: a settlement whose caller is still waiting is not given
// up after the send's own bound: a Redis that stalls longer (a slow script, a loaded machine)
// still gets it, as a caller without a deadline expects.
func TestRedisSettleOutlastsAStalledServer(t *testing.T) {
	t.Parallel()
	c, addr := ownRedis(t) // the stall must not slow other tests
	l := quota.NewRedis(c, quota.LimiterOptions{})
	s := quota.Subject{Kind: quota.KindKey, ID: "stalled", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 1}}
	ctx := context.Background()
	res, err := l.Admit(ctx, quota.Request{ID: "a", Subjects: []quota.Subject{s}, Tokens: 1})
	if err != nil || !res.Allowed {
		t.Fatalf("admit: %+v, %v", res, err)
	}
	// A script that keeps the server busy for 1.5 s: every other command waits for it.
	staller := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { staller.Close() })
	stalled := make(chan error, 1)
	go func() {
		stalled <- staller.Eval(ctx, `local s = redis.call('TIME'); local a = s[1] * 1000000 + s[2]
while true do local n = redis.call('TIME'); if n[1] * 1000000 + n[2] - a > 1500000 then return 1 end end`, nil).Err()
	}()
	time.Sleep(100 * time.Millisecond)
	if err := l.Settle(ctx, res.Lease, quota.Spent{Tokens: 1}); err != nil {
		t.Errorf("Settle during a 1.5 s stall: %v", err)
	}
	if err := <-stalled; err != nil {
		t.Fatalf("stall: %v", err)
	}
	if u := usage(t, l, s); u.Concurrent != 0 {
		t.Errorf("%d leases still held after the settlement returned", u.Concurrent)
	}
}

// leaseOpts turns permit leases on.
func leaseOpts(o quota.LimiterOptions) quota.LimiterOptions {
	o.PermitLeases = quota.PermitLeaseOptions{Enabled: true, Duration: 200 * time.Millisecond}
	return o
}

// TestRedisPermitLeaseConformance: with permit leases on, Redis keeps the whole contract, on a
// single node and on a Cluster: a lease is taken only where no limit is near, and Usage gives
// back the tenant's leases first.
func TestRedisPermitLeaseConformance(t *testing.T) {
	t.Parallel()
	for name, client := range map[string]func(*testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return newClient(t) },
		"cluster": func(t *testing.T) redis.UniversalClient { return newClusterClient(t) },
	} {
		t.Run(name, func(t *testing.T) {
			quotatest.Run(t, func(t *testing.T, opts quota.LimiterOptions) quota.Limiter {
				return quota.NewRedis(client(t), leaseOpts(opts))
			})
		})
	}
}

// TestRedisPermitLeasesExactAcrossReplicas: three replicas taking leases admit exactly the
// limit between them.
func TestRedisPermitLeasesExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	for name, client := range map[string]func(*testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return newClient(t) },
		"cluster": func(t *testing.T) redis.UniversalClient { return newClusterClient(t) },
	} {
		t.Run(name, func(t *testing.T) {
			opts := leaseOpts(quota.LimiterOptions{Window: 10 * time.Second})
			var replicas []quota.Limiter
			for range 3 {
				replicas = append(replicas, quota.NewRedis(client(t), opts))
			}
			quotatest.Exactness(t, replicas, quotatest.Tenant(t), 60)
		})
	}
}

// TestRedisPermitLeasesCutRoundTrips: under concurrent load on one set of subjects, leases
// admit most requests without Redis, so Redis runs far fewer than one script per request and
// the RPM log holds a member per lease, not per request; every request is still counted, every
// slot freed and every token settled.
func TestRedisPermitLeasesCutRoundTrips(t *testing.T) {
	t.Parallel()
	c, _ := ownRedis(t) // the test counts every script run in it
	l := quota.NewRedis(c, leaseOpts(quota.LimiterOptions{}))
	tenant := quotatest.Tenant(t)
	subjects := benchSubjects(tenant)
	ctx := context.Background()
	before, _ := redisCounters(t, c)
	const workers, each = 16, 100
	var wg sync.WaitGroup
	var errs atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("r-%d-%d", w, i), Subjects: subjects, Tokens: 10})
				if err != nil || !res.Allowed {
					errs.Add(1)
					continue
				}
				if err := l.Settle(ctx, res.Lease, quota.Spent{Tokens: 3}); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	after, _ := redisCounters(t, c)
	if errs.Load() > 0 {
		t.Fatalf("%d admissions or settlements failed", errs.Load())
	}
	members := int64(0)
	for _, suffix := range []string{":r", ":rl"} {
		n, err := c.ZCard(ctx, "{t:"+tenant+"}:q:key:k"+suffix).Result()
		if err != nil {
			t.Fatal(err)
		}
		members += n
	}
	perRequest := float64(after-before) / (workers * each)
	t.Logf("%.2f script runs per request, %d RPM log members for %d requests", perRequest, members, workers*each)
	if perRequest > 0.5 {
		t.Errorf("%.2f script runs per request, want well under 1: requests are not admitted from leases", perRequest)
	}
	if members > workers*each/4 {
		t.Errorf("%d RPM log members for %d requests, want a member per lease", members, workers*each)
	}
	for _, s := range subjects {
		if u := usage(t, l, s); u.Concurrent != 0 || u.Requests != workers*each || u.TokensMinute != 3*workers*each || u.TokensDay != 3*workers*each {
			t.Errorf("usage of %s %+v: want %d requests, %d tokens, none in flight", s.Key(), u, workers*each, 3*workers*each)
		}
	}
}

// TestRedisPermitLeaseLogExpires: once a subject's lease log has expired with nothing purging
// it meanwhile (no admission), the requests it counted are not counted any longer.
func TestRedisPermitLeaseLogExpires(t *testing.T) {
	t.Parallel()
	l := quota.NewRedis(newClient(t), leaseOpts(quota.LimiterOptions{Window: 2 * time.Second}))
	s := quota.Subject{Kind: quota.KindKey, ID: "expiring", Tenant: quotatest.Tenant(t), Limits: quota.Limits{RPM: 10_000}}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("e-%d-%d", w, i), Subjects: []quota.Subject{s}})
				if err != nil || !res.Allowed {
					t.Errorf("admit: %+v, %v", res, err)
					return
				}
				_ = l.Settle(ctx, res.Lease, quota.Spent{})
			}
		})
	}
	wg.Wait()
	if u := usage(t, l, s); u.Requests != 400 {
		t.Fatalf("usage %+v, want 400 requests", u)
	}
	time.Sleep(3500 * time.Millisecond) // the window and the lease log's expiry
	res, err := l.Admit(ctx, quota.Request{ID: "after", Subjects: []quota.Subject{s}})
	if err != nil || !res.Allowed || res.Requests.Remaining != 9_999 {
		t.Fatalf("after the window: %+v, %v; want 9999 requests remaining", res, err)
	}
}

// TestRedisGiveBackAtShutdown: a replica that stops gives back the permit leases it holds, so
// their unused slots do not stay held in Redis.
func TestRedisGiveBackAtShutdown(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	l := quota.NewRedis(c, quota.LimiterOptions{PermitLeases: quota.PermitLeaseOptions{Enabled: true, Duration: time.Second}})
	tenant := quotatest.Tenant(t)
	s := quota.Subject{Kind: quota.KindKey, ID: "stopping", Tenant: tenant, Limits: quota.Limits{Concurrent: 1000}}
	ctx := context.Background()
	for i := range 20 {
		res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("g-%d", i), Subjects: []quota.Subject{s}})
		if err != nil || !res.Allowed {
			t.Fatalf("admit: %+v, %v", res, err)
		}
		if err := l.Settle(ctx, res.Lease, quota.Spent{}); err != nil {
			t.Fatal(err)
		}
	}
	slots := func() int64 {
		n, err := c.ZCount(ctx, "{t:"+tenant+"}:q:key:stopping:c", fmt.Sprint(time.Now().UnixMilli()), "+inf").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := slots(); n == 0 {
		t.Fatal("no slots held before the shutdown: no lease was taken")
	}
	l.GiveBack(ctx)
	if n := slots(); n != 0 {
		t.Errorf("%d slots held after the leases were given back", n)
	}
}

// TestRedisLeaseLogCountsInOrder: the requests of a lease log member count until the window
// after its stamp has passed: a subject at its limit by a lease's requests alone is refused
// with a RetryAfter that ends when that member leaves the window, and admitted then.
func TestRedisLeaseLogCountsInOrder(t *testing.T) {
	t.Parallel()
	const window = 10 * time.Second
	c := newClient(t)
	l := quota.NewRedis(c, quota.LimiterOptions{Window: window})
	tenant := quotatest.Tenant(t)
	s := quota.Subject{Kind: quota.KindKey, ID: "k", Tenant: tenant, Limits: quota.Limits{RPM: 5}}
	ctx := context.Background()
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// A lease of 5 requests whose latest use was 8.5 s ago, as lease.lua leaves it.
	prefix := "{t:" + tenant + "}:q:key:k"
	stamp := now.Add(-8500 * time.Millisecond).UnixMilli()
	if err := c.ZAdd(ctx, prefix+":rl", redis.Z{Score: float64(stamp), Member: "~lease:5"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, prefix+":t", "L", 5).Err(); err != nil {
		t.Fatal(err)
	}
	c.PExpire(ctx, prefix+":rl", 20*time.Second)
	c.PExpire(ctx, prefix+":t", 20*time.Second)
	res, err := l.Admit(ctx, quota.Request{ID: "r", Subjects: []quota.Subject{s}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed || res.Dimension != quota.DimRPM || res.RetryAfter < time.Second || res.RetryAfter > 1600*time.Millisecond {
		t.Fatalf("%+v: want refused on rpm with a RetryAfter of about 1.5 s (the lease's requests leave then)", res)
	}
	if res.Requests.Reset < time.Second || res.Requests.Reset > 1600*time.Millisecond {
		t.Fatalf("requests window %+v: want a reset of about 1.5 s", res.Requests)
	}
	time.Sleep(res.RetryAfter + 50*time.Millisecond)
	if res, err := l.Admit(ctx, quota.Request{ID: "after", Subjects: []quota.Subject{s}}); err != nil || !res.Allowed || res.Requests.Remaining != 4 {
		t.Fatalf("after RetryAfter: %+v, %v; want admitted, 4 remaining", res, err)
	}
}

// TestRedisPermitLeaseRetryAfter: a refusal on RPM counts the requests of leases in the window
// in the order of their stamps: its RetryAfter is positive, no later than the window and the
// lease's span, and room has come by then.
func TestRedisPermitLeaseRetryAfter(t *testing.T) {
	t.Parallel()
	const window = 2 * time.Second
	l := quota.NewRedis(newClient(t), leaseOpts(quota.LimiterOptions{Window: window}))
	s := quota.Subject{Kind: quota.KindKey, ID: "retry", Tenant: quotatest.Tenant(t), Limits: quota.Limits{RPM: 40}}
	ctx := context.Background()
	var admitted atomic.Int64
	var mu sync.Mutex
	var refusal *quota.Result
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("t-%d-%d", w, i), Subjects: []quota.Subject{s}})
				switch {
				case err != nil:
					t.Error(err)
					return
				case res.Allowed:
					admitted.Add(1)
					_ = l.Settle(ctx, res.Lease, quota.Spent{})
				default:
					mu.Lock()
					if refusal == nil {
						refusal = &res
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 40 || refusal == nil {
		t.Fatalf("%d admitted of 80, refusal %+v; want exactly 40 and refusals", admitted.Load(), refusal)
	}
	if refusal.Dimension != quota.DimRPM || refusal.RetryAfter <= 0 || refusal.RetryAfter > window+200*time.Millisecond {
		t.Fatalf("refusal %+v: want rpm, RetryAfter within (0, %v]", refusal, window+200*time.Millisecond)
	}
	time.Sleep(refusal.RetryAfter + 50*time.Millisecond)
	if res, err := l.Admit(ctx, quota.Request{ID: "after", Subjects: []quota.Subject{s}}); err != nil || !res.Allowed {
		t.Fatalf("after RetryAfter: %+v, %v; want admitted", res, err)
	}
}

// TestRedisPermitLeaseTail: a request admitted from a lease that outlives it keeps its slot
// after the lease is given back, and is settled later like any other: its slot freed and its
// tokens corrected, once.
func TestRedisPermitLeaseTail(t *testing.T) {
	t.Parallel()
	l := quota.NewRedis(newClient(t), quota.LimiterOptions{Window: 4 * time.Second,
		PermitLeases: quota.PermitLeaseOptions{Enabled: true, Duration: 50 * time.Millisecond}})
	s := quota.Subject{Kind: quota.KindKey, ID: "tail", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 1000, TPM: 1_000_000}}
	ctx := context.Background()
	var leases []*quota.Lease
	for i := range 10 {
		res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("tail-%d", i), Subjects: []quota.Subject{s}, Tokens: 10})
		if err != nil || !res.Allowed {
			t.Fatalf("admit: %+v, %v", res, err)
		}
		leases = append(leases, res.Lease)
	}
	last := leases[9]
	if !strings.HasPrefix(last.ID, "~") {
		t.Fatalf("the last request was not admitted from a lease (id %q)", last.ID)
	}
	for _, lease := range leases[:9] {
		if err := l.Settle(ctx, lease, quota.Spent{Tokens: 3}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the lease is given back, the last request still running
	if u := usage(t, l, s); u != (quota.Usage{Requests: 10, Concurrent: 1, TokensMinute: 9*3 + 10, TokensDay: 9*3 + 10}) {
		t.Fatalf("usage %+v: want 10 requests, 1 running, 37 tokens", u)
	}
	for range 2 { // a second settlement is a no-op
		if err := l.Settle(ctx, last, quota.Spent{Tokens: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if u := usage(t, l, s); u != (quota.Usage{Requests: 10, TokensMinute: 30, TokensDay: 30}) {
		t.Fatalf("usage %+v: want 10 requests, none running, 30 tokens", u)
	}
}

// TestRedisLostLeaseIsGivenBack: an admission asking for a lease whose answer never came (its
// context ended while Redis was stalled; Redis ran it afterwards) does not leave the lease
// held: it is given back, slots and all.
func TestRedisLostLeaseIsGivenBack(t *testing.T) {
	t.Parallel()
	c, addr := ownRedis(t) // the stall must not slow other tests
	l := quota.NewRedis(c, quota.LimiterOptions{PermitLeases: quota.PermitLeaseOptions{Enabled: true, Duration: time.Second}})
	tenant := quotatest.Tenant(t)
	s := quota.Subject{Kind: quota.KindKey, ID: "lost", Tenant: tenant, Limits: quota.Limits{Concurrent: 1000}}
	ctx := context.Background()
	if res, err := l.Admit(ctx, quota.Request{ID: "first", Subjects: []quota.Subject{s}}); err != nil || !res.Allowed {
		t.Fatalf("admit: %+v, %v", res, err)
	}
	slots := func() int64 {
		n, err := c.ZCount(ctx, "{t:"+tenant+"}:q:key:lost:c", fmt.Sprint(time.Now().UnixMilli()), "+inf").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	staller := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { staller.Close() })
	stalled := make(chan error, 1)
	go func() {
		stalled <- staller.Eval(ctx, `local s = redis.call('TIME'); local a = s[1] * 1000000 + s[2]
while true do local n = redis.call('TIME'); if n[1] * 1000000 + n[2] - a > 400000 then return 1 end end`, nil).Err()
	}()
	time.Sleep(50 * time.Millisecond)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := l.Admit(tctx, quota.Request{ID: "lost", Subjects: []quota.Subject{s}})
	cancel()
	if err == nil {
		t.Fatal("the admission during the stall got an answer; want its context to end first")
	}
	if err := <-stalled; err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := slots(); n <= 1 {
		t.Skipf("Redis did not run the admission whose answer was lost (%d slots)", n)
	}
	time.Sleep(1500 * time.Millisecond) // past the give back, a lease span after the failure
	if n := slots(); n != 1 {
		t.Errorf("%d slots held, want 1 (the first request's): the lost lease was not given back", n)
	}
}
