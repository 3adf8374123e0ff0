package quota_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/quota/quotatest"
)

// The tests below freeze the outage server with SIGSTOP (testsvc Pause), as a hung or overloaded
// Redis: calls time out, and what was sent meanwhile runs when it is resumed. They share that
// server, so none of them is parallel.

// pausable returns a Resilient on the outage server with short timeouts, its registry and a
// plain Redis limiter on the same server for checking what Redis holds.
func pausable(t *testing.T, opts quota.ResilientOptions) (*quota.Resilient, *prometheus.Registry, *quota.Redis) {
	t.Helper()
	outage.Start(t) // in case an earlier test left it stopped
	client := redis.NewClient(&redis.Options{Addr: outage.Addr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	check := redis.NewClient(&redis.Options{Addr: outage.Addr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { check.Close() })
	reg := prometheus.NewRegistry()
	if opts.Timeout == 0 {
		opts.Timeout = 300 * time.Millisecond // well above a call's latency under -race on 2 cores
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 100 * time.Millisecond
	}
	opts.Registerer = reg
	opts.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	x := quota.NewResilient(quota.NewRedis(client, opts.Limiter), opts)
	t.Cleanup(x.Close)
	return x, reg, quota.NewRedis(check, opts.Limiter)
}

// admitOne asks x for one request of tokens on s.
func admitOne(t *testing.T, x quota.Limiter, id string, tokens int64, s quota.Subject) quota.Result {
	t.Helper()
	res, err := x.Admit(context.Background(), quota.Request{ID: id, Subjects: []quota.Subject{s}, Tokens: tokens})
	if err != nil {
		t.Fatalf("admit %s: %v", id, err)
	}
	return res
}

// exactUsage reads s's usage from Redis itself, through a second client.
func exactUsage(t *testing.T, r *quota.Redis, s quota.Subject) quota.Usage {
	t.Helper()
	u, err := r.Usage(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// untilAdmittedByRedis admits on s until Redis (not the fallback) admits, failing after limit.
func untilAdmittedByRedis(t *testing.T, x *quota.Resilient, s quota.Subject, tokens int64, limit time.Duration) quota.Result {
	t.Helper()
	start := time.Now()
	for i := 0; ; i++ {
		res := admitOne(t, x, fmt.Sprint("after-", i), tokens, s)
		if res.Allowed && !res.Degraded {
			t.Logf("admitted by Redis %v after it came back", time.Since(start).Round(time.Millisecond))
			return res
		}
		if res.Allowed { // decided locally: Redis not noticed back yet
			if err := x.Settle(context.Background(), res.Lease, quota.Spent{}); err != nil {
				t.Fatal(err)
			}
		}
		if time.Since(start) > limit {
			t.Fatalf("%v after Redis came back, still %+v: slots held until the lease TTL", limit, res)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestResilientReleasesSlotsAfterPause: a subject capped at 3 holds 3 Redis leases when Redis
// freezes; an admission times out (Redis is marked down) and the 3 requests end while it is
// down. Once Redis is back their releases are replayed, so the subject is admitted by Redis
// again within a couple of seconds, not after the 30 s lease TTL, and every token count is
// settled exactly once.
func TestResilientReleasesSlotsAfterPause(t *testing.T) {
	x, reg, direct := pausable(t, quota.ResilientOptions{})
	ctx := context.Background()
	s := quota.Subject{Kind: "key", ID: "capped", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 3, TPM: 1_000_000}}
	var leases []*quota.Lease
	for i := range 3 {
		res := admitOne(t, x, fmt.Sprint("held-", i), 100, s)
		if !res.Allowed || res.Degraded {
			t.Fatalf("admission %d with Redis up: %+v", i, res)
		}
		leases = append(leases, res.Lease)
	}
	if res := admitOne(t, x, "fourth", 100, s); res.Allowed {
		t.Fatalf("a fourth request was admitted: %+v", res)
	}

	outage.Pause(t)
	during := admitOne(t, x, "during", 100, s) // times out: decided locally
	if !during.Allowed || !during.Degraded || x.Healthy() {
		t.Fatalf("admission with Redis frozen: %+v, healthy %v; want a local admission, Redis down", during, x.Healthy())
	}
	if err := x.Settle(ctx, during.Lease, quota.Spent{Tokens: 10}); err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if err := x.Settle(ctx, l, quota.Spent{Tokens: 10}); err != nil {
			t.Errorf("settle %s with Redis down: %v", l.ID, err)
		}
	}
	outage.Resume(t)

	res := untilAdmittedByRedis(t, x, s, 100, 3*time.Second)
	// Redis counts the new request alone: the 3 leases were released and settled to 10 tokens
	// each, and the admission that timed out (which Redis ran when it resumed) was undone.
	if u := exactUsage(t, direct, s); u.Concurrent != 1 || u.TokensMinute != 3*10+100 {
		t.Errorf("usage in Redis = %+v, want 1 concurrent and %d tokens", u, 3*10+100)
	}
	if err := x.Settle(ctx, res.Lease, quota.Spent{Tokens: 100}); err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{"queue_full", "expired", "shutdown"} {
		if n := metric(t, reg, `llmgate_quota_dropped_settlements_total{reason="`+reason+`"}`); n != 0 {
			t.Errorf("%v settlements dropped (%s)", n, reason)
		}
	}
}

// TestResilientUndoesTimedOutAdmission: an admission that times out is decided locally, but a
// frozen Redis still runs it when it resumes. Its lease must not hold the subject's only slot
// for the lease TTL.
func TestResilientUndoesTimedOutAdmission(t *testing.T) {
	x, _, direct := pausable(t, quota.ResilientOptions{})
	ctx := context.Background()
	s := quota.Subject{Kind: "key", ID: "single", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 1}}
	warm := admitOne(t, x, "warm", 5, s) // loads the scripts and leaves a pooled connection
	if !warm.Allowed || warm.Degraded {
		t.Fatalf("warm-up: %+v", warm)
	}
	if err := x.Settle(ctx, warm.Lease, quota.Spent{Tokens: 5}); err != nil {
		t.Fatal(err)
	}

	outage.Pause(t)
	res := admitOne(t, x, "timed-out", 100, s)
	if !res.Allowed || !res.Degraded {
		t.Fatalf("admission with Redis frozen: %+v, want a local admission", res)
	}
	if err := x.Settle(ctx, res.Lease, quota.Spent{Tokens: 100}); err != nil {
		t.Fatal(err)
	}
	outage.Resume(t)

	res = untilAdmittedByRedis(t, x, s, 7, 3*time.Second)
	// Redis ran the timed-out admission (its RPM log has 3 entries), then undid its lease and
	// its reservation: 5 tokens of the warm-up and the new request's 7.
	u := exactUsage(t, direct, s)
	if u.Requests != 3 {
		t.Fatalf("usage in Redis = %+v: the timed-out admission did not run there, the test proves nothing", u)
	}
	if u.Concurrent != 1 || u.TokensMinute != 5+7 {
		t.Errorf("usage in Redis = %+v, want the new request's lease alone and %d tokens", u, 5+7)
	}
	if err := x.Settle(ctx, res.Lease, quota.Spent{Tokens: 7}); err != nil {
		t.Fatal(err)
	}
}

// evalshaCalls reads how many EVALSHA calls the outage server has run.
func evalshaCalls(t *testing.T) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: outage.Addr(t)})
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls="); ok {
			n, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// TestResilientSettleReplayIsIdempotent: a settlement sent to a frozen Redis times out and is
// queued; when Redis resumes it runs the copy it had received, the queue replays it, and the
// caller settles once more. The lease frees one slot and its tokens are corrected once.
func TestResilientSettleReplayIsIdempotent(t *testing.T) {
	x, reg, direct := pausable(t, quota.ResilientOptions{})
	ctx := context.Background()
	s := quota.Subject{Kind: "key", ID: "replayed", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 3, TPM: 1_000_000}}
	warm := admitOne(t, x, "warm", 0, s)
	if err := x.Settle(ctx, warm.Lease, quota.Spent{}); err != nil { // loads settle.lua
		t.Fatal(err)
	}
	var leases []*quota.Lease
	for i := range 3 {
		res := admitOne(t, x, fmt.Sprint("held-", i), 100, s)
		if !res.Allowed || res.Degraded {
			t.Fatalf("admission %d: %+v", i, res)
		}
		leases = append(leases, res.Lease)
	}
	before := evalshaCalls(t)

	outage.Pause(t)
	if err := x.Settle(ctx, leases[0], quota.Spent{Tokens: 10}); err != nil {
		t.Fatalf("settle with Redis frozen: %v (want queued)", err)
	}
	if p := metric(t, reg, "llmgate_quota_pending_settlements"); p != 1 {
		t.Fatalf("%v settlements pending, want the one that timed out", p)
	}
	outage.Resume(t)
	waitPending(t, reg, 0, 5*time.Second)
	if err := x.Settle(ctx, leases[0], quota.Spent{Tokens: 10}); err != nil { // and once more
		t.Fatal(err)
	}
	if n := evalshaCalls(t) - before; n < 2 {
		t.Fatalf("the settlement ran %d times in Redis; the test needs it replayed", n)
	}
	if u := exactUsage(t, direct, s); u.Concurrent != 2 || u.TokensMinute != 100+100+10 {
		t.Errorf("usage in Redis = %+v, want 2 concurrent and %d tokens: a replay freed or refunded twice", u, 100+100+10)
	}
}

// waitPending waits until the pending settlements gauge reads want.
func waitPending(t *testing.T, reg prometheus.Gatherer, want float64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for metric(t, reg, "llmgate_quota_pending_settlements") != want {
		if time.Now().After(deadline) {
			t.Fatalf("pending settlements = %v after %v, want %v", metric(t, reg, "llmgate_quota_pending_settlements"), limit, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResilientSettleQueueBound: the queue holds MaxPending settlements, the newest; older ones
// are dropped and counted (their slots free with the lease TTL), and what was queued lands once
// Redis is back.
func TestResilientSettleQueueBound(t *testing.T) {
	x, reg, direct := pausable(t, quota.ResilientOptions{MaxPending: 3})
	ctx := context.Background()
	s := quota.Subject{Kind: "key", ID: "bounded", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 10}}
	var leases []*quota.Lease
	for i := range 4 {
		res := admitOne(t, x, fmt.Sprint("held-", i), 0, s)
		if !res.Allowed || res.Degraded {
			t.Fatalf("admission %d: %+v", i, res)
		}
		leases = append(leases, res.Lease)
	}
	outage.Pause(t)
	// Times out, marks Redis down, and queues the undoing of the admission: one place taken.
	if res := admitOne(t, x, "during", 0, s); !res.Degraded {
		t.Fatalf("admission with Redis frozen: %+v", res)
	}
	// The queue keeps the newest 3: the undoing and the first settlement are evicted.
	for _, l := range leases {
		if err := x.Settle(ctx, l, quota.Spent{}); err != nil {
			t.Errorf("settle %s: %v", l.ID, err)
		}
	}
	for name, want := range map[string]float64{
		`llmgate_quota_pending_settlements`:                            3,
		`llmgate_quota_queued_settlements_total`:                       5,
		`llmgate_quota_dropped_settlements_total{reason="queue_full"}`: 2,
	} {
		if got := metric(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	outage.Resume(t)
	waitPending(t, reg, 0, 5*time.Second)
	// Held until their TTL: the first lease, and the timed-out admission if Redis ran it when
	// it resumed (then its RPM log has a fifth entry).
	if u := exactUsage(t, direct, s); u.Concurrent != 1+(u.Requests-4) {
		t.Errorf("usage in Redis = %+v, want the evicted leases alone still held", u)
	}
}

// TestResilientSettleQueueExpires: a settlement still queued when its lease would have expired
// anyway is dropped and counted as expired.
func TestResilientSettleQueueExpires(t *testing.T) {
	x, reg, _ := pausable(t, quota.ResilientOptions{Limiter: quota.LimiterOptions{LeaseTTL: time.Second}})
	s := quota.Subject{Kind: "key", ID: "expiring", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 10}}
	held := admitOne(t, x, "held", 0, s)
	outage.Pause(t)
	if res := admitOne(t, x, "during", 0, s); !res.Degraded { // queues the undoing of the admission
		t.Fatalf("admission with Redis frozen: %+v", res)
	}
	if err := x.Settle(context.Background(), held.Lease, quota.Spent{}); err != nil {
		t.Fatal(err)
	}
	if p := metric(t, reg, "llmgate_quota_pending_settlements"); p != 2 {
		t.Fatalf("%v pending, want 2", p)
	}
	waitPending(t, reg, 0, 10*time.Second) // the lease TTL is 1 s
	if n := metric(t, reg, `llmgate_quota_dropped_settlements_total{reason="expired"}`); n != 2 {
		t.Errorf("%v dropped as expired, want 2", n)
	}
}

// TestResilientCloseDrains: Close sends what is queued when Redis answers again, and counts what
// it cannot send.
func TestResilientCloseDrains(t *testing.T) {
	for _, back := range []bool{true, false} {
		t.Run(fmt.Sprint("redis back ", back), func(t *testing.T) {
			// The prober never runs: only Close can deliver.
			x, reg, direct := pausable(t, quota.ResilientOptions{ProbeInterval: time.Hour})
			s := quota.Subject{Kind: "key", ID: "closing", Tenant: quotatest.Tenant(t), Limits: quota.Limits{Concurrent: 10}}
			held := admitOne(t, x, "held", 0, s)
			outage.Pause(t)
			// Times out and marks Redis down, so the settlement is queued without being sent:
			// two releases to deliver (the lease, and the admission Redis runs on resuming).
			if res := admitOne(t, x, "during", 0, s); !res.Degraded {
				t.Fatalf("admission with Redis frozen: %+v", res)
			}
			if err := x.Settle(context.Background(), held.Lease, quota.Spent{}); err != nil {
				t.Fatal(err)
			}
			if back {
				outage.Resume(t)
			}
			x.Close()
			if !back {
				if n := metric(t, reg, `llmgate_quota_dropped_settlements_total{reason="shutdown"}`); n != 2 {
					t.Errorf("%v dropped at shutdown, want 2", n)
				}
				outage.Resume(t)
				return
			}
			if u := exactUsage(t, direct, s); u.Concurrent != 0 {
				t.Errorf("usage in Redis after Close = %+v, want both leases released", u)
			}
			if n := metric(t, reg, "llmgate_quota_pending_settlements"); n != 0 {
				t.Errorf("%v pending after Close", n)
			}
		})
	}
}
