package quota

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ResilientOptions configures Resilient. Zero values mean the defaults.
type ResilientOptions struct {
	// Timeout bounds every Redis call (default 50ms): no request waits longer on a dead Redis.
	// The client must honour context deadlines (go-redis ContextTimeoutEnabled, which
	// NewRedisClient sets), or a hung server holds a call until its read timeout.
	Timeout time.Duration
	// FailClosed reports whether a dimension refuses requests while Redis is down (nil: every
	// dimension fails open).
	FailClosed func(dim string) bool
	// Replicas is the number of gateway replicas (default 1). While Redis is down each replica
	// enforces ceil(limit ÷ Replicas) locally, so together they stay near the limit.
	Replicas int
	// ProbeInterval is how often a down Redis is pinged (default 1s).
	ProbeInterval time.Duration
	// MaxPending bounds the settlements queued for replay while Redis does not take them
	// (default 50,000); beyond it the oldest are dropped and counted, and their slots free with
	// the lease TTL.
	MaxPending int
	// Limiter configures the local fallback limiter.
	Limiter LimiterOptions
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Log receives the up/down transitions (nil: slog.Default()).
	Log *slog.Logger
}

// ErrSettleDropped is returned by Settle when a Redis lease's settlement could be neither
// delivered nor queued (the limiter is closed): its slots free when the lease expires.
var ErrSettleDropped = errors.New("quota: settlement dropped: redis did not take it and the limiter is closed")

// ErrRedisDown is returned by the admin calls (Usage, ClearSession) while Redis is unreachable:
// unlike admission, they have no local answer worth giving.
var ErrRedisDown = errors.New("quota: redis is unreachable")

// Resilient is the Limiter for production: Redis while it answers, a bounded local limiter while
// it does not. The first failed or timed-out call marks Redis down; from then on requests are
// decided locally without touching Redis at all (so none waits on it) until a background PING
// succeeds. Local decisions are Degraded and their leases Local, so they settle locally.
//
// A release is never lost to a slow or absent Redis: a settlement of a Redis lease that cannot be
// delivered (Redis down, or the call failed or timed out) is queued and replayed with backoff
// until Redis takes it or the lease would have expired anyway. So is the undoing of an
// admission whose call failed: a slow Redis may still run it after the caller gave up and
// decided locally, and its lease must not hold a slot for the lease TTL. Replays are
// idempotent (see settleQueue). A single slow call still sends admissions to the local limiter
// until the next probe: fail-open is what the fallback is for, and with releases replayed a
// false alarm costs at most one ProbeInterval of local decisions.
type Resilient struct {
	redis    *Redis
	local    *Memory
	opts     ResilientOptions
	leaseTTL time.Duration
	metrics  resilientMetrics
	up       atomic.Bool
	pending  *settleQueue

	stop       chan struct{}
	done       chan struct{} // the prober has ended
	replayDone chan struct{} // the replayer has ended
	closeOnce  sync.Once
}

// Replay of queued settlements: backoff between failed attempts, entries per pipeline.
const (
	replayMinBackoff = 100 * time.Millisecond
	replayMaxBackoff = 5 * time.Second
	replayBatch      = 500
)

var (
	_ Limiter        = (*Resilient)(nil)
	_ UsageReader    = (*Resilient)(nil)
	_ SessionClearer = (*Resilient)(nil)
)

// NewResilient wraps r and starts the prober; Close stops it.
func NewResilient(r *Redis, opts ResilientOptions) *Resilient {
	if opts.Timeout <= 0 {
		opts.Timeout = 50 * time.Millisecond
	}
	if opts.FailClosed == nil {
		opts.FailClosed = func(string) bool { return false }
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 50_000
	}
	x := &Resilient{
		redis:      r,
		local:      NewMemory(opts.Limiter),
		opts:       opts,
		leaseTTL:   opts.Limiter.withDefaults().LeaseTTL,
		metrics:    newResilientMetrics(opts.Registerer),
		pending:    newSettleQueue(opts.MaxPending),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		replayDone: make(chan struct{}),
	}
	r.admitTrip, r.settleTrip = x.call, x.timed
	x.up.Store(true)
	x.metrics.up.Set(1)
	go x.probe()
	go x.replay()
	return x
}

// Healthy reports whether Redis is up, for /health/ready.
func (x *Resilient) Healthy() bool { return x.up.Load() }

// Close stops the prober and the replayer, then tries once more (for at most a second) to
// deliver the settlements still queued; those it cannot are dropped and counted. The limiter
// still answers afterwards, but never notices Redis return, and a settlement it cannot deliver
// at once is dropped.
func (x *Resilient) Close() {
	x.closeOnce.Do(func() {
		close(x.stop)
		<-x.done
		<-x.replayDone
		ctx, cancel := context.WithTimeout(context.Background(), settleSendTimeout)
		_ = x.drain(ctx)
		x.redis.GiveBack(ctx)
		cancel()
		x.dropped("shutdown", x.pending.close())
		x.metrics.pending.Set(0)
	})
	<-x.done
	<-x.replayDone
}

// Admit implements Limiter.
func (x *Resilient) Admit(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	if x.up.Load() {
		// Redis.Admit runs what goes past a permit lease through x.call (see NewResilient): one
		// admitted from a lease makes no call.
		res, err := x.redis.Admit(ctx, req)
		if err == nil {
			x.metrics.decided(res)
			return res, nil
		}
		// Redis may have run the admission anyway (a slow or paused server runs what it has
		// read, after the caller stopped waiting): undo it, should it have taken a lease. Its
		// admission time is unknown (0): settle.lua reads it from the lease.
		x.enqueue(&Lease{ID: req.ID, Subjects: req.Subjects, Reserved: req.Tokens, ReservedCost: min(req.Cost, MaxMoney)}, Spent{})
		if ctx.Err() != nil { // the caller gave up: no decision is needed
			return Result{}, err
		}
	}
	res, err := x.admitLocally(ctx, req)
	if err == nil {
		x.metrics.decided(res)
	}
	return res, err
}

// admitLocally decides without Redis: refused if a subject has a limit on a fail-closed
// dimension, otherwise by the local limiter with every limit divided among the replicas.
func (x *Resilient) admitLocally(ctx context.Context, req Request) (Result, error) {
	subjects := make([]Subject, len(req.Subjects))
	for i, s := range req.Subjects {
		l := &s.Limits
		for _, d := range [...]struct {
			name  string
			limit *int64
		}{{DimRPM, &l.RPM}, {DimTPM, &l.TPM}, {DimTokensPerDay, &l.TokensPerDay}, {DimConcurrent, &l.Concurrent}} {
			if *d.limit == 0 {
				continue
			}
			if x.opts.FailClosed(d.name) {
				x.metrics.fallback.WithLabelValues("closed").Inc()
				return Result{Dimension: d.name, Subject: s.Key(), RetryAfter: time.Second, Degraded: true}, nil
			}
			*d.limit = (*d.limit + int64(x.opts.Replicas) - 1) / int64(x.opts.Replicas)
		}
		subjects[i] = s
	}
	req.Subjects = subjects
	res, err := x.local.Admit(ctx, req)
	if err != nil {
		return Result{}, err
	}
	x.metrics.fallback.WithLabelValues("open").Inc()
	res.Degraded = true
	if res.Lease != nil {
		res.Lease.Local = true
	}
	return res, nil
}

// Settle implements Limiter. A Redis lease that cannot be settled now (Redis down, or the call
// failed or timed out) is queued and replayed until Redis takes it or the lease expires. A
// settlement dropped (the queue full, see MaxPending, or the limiter closed) is counted; its
// slots free when the lease expires, and its reservation stands in place of the real count.
// Settle returns ErrSettleDropped when its own settlement was dropped.
func (x *Resilient) Settle(ctx context.Context, lease *Lease, used Spent) error {
	switch {
	case lease == nil:
		return nil
	case lease.Local:
		return x.local.Settle(ctx, lease, used)
	}
	if x.up.Load() {
		// Redis.Settle runs what it sends through x.timed (see NewResilient): one settled
		// into a permit lease sends nothing.
		if err := x.redis.Settle(ctx, lease, used); err == nil {
			return nil
		}
	}
	if !x.enqueue(lease, used) {
		return ErrSettleDropped
	}
	return nil
}

// enqueue queues a settlement for replay; false (counted) when it could not be queued.
func (x *Resilient) enqueue(lease *Lease, used Spent) bool {
	if len(lease.Subjects) == 0 {
		return true // nothing in Redis to settle
	}
	ok, evicted := x.pending.push(pendingSettle{lease: lease, used: used, deadline: time.Now().Add(x.leaseTTL)})
	x.dropped("queue_full", evicted)
	if ok {
		x.metrics.queued.Inc()
	} else {
		reason := "queue_full"
		select {
		case <-x.stop:
			reason = "shutdown"
		default:
		}
		x.dropped(reason, 1)
	}
	x.metrics.pending.Set(float64(x.pending.len()))
	return ok
}

func (x *Resilient) dropped(reason string, n int) {
	if n > 0 {
		x.metrics.dropped.WithLabelValues(reason).Add(float64(n))
	}
}

// replay delivers the queued settlements while Redis is up, backing off after a failed attempt
// (100 ms doubling to 5 s). While Redis is down it only drops the entries whose leases have
// expired; the prober delivers the rest when Redis answers again, before admissions go back to
// it.
func (x *Resilient) replay() {
	defer close(x.replayDone)
	backoff := replayMinBackoff
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false // an attempt is due when the timer fires
	for {
		if !armed && x.pending.len() > 0 {
			timer.Reset(backoff)
			armed = true
		}
		select {
		case <-x.stop:
			return
		case <-x.pending.wake:
			continue // an armed timer stays: arrivals do not postpone a due attempt
		case <-timer.C:
			armed = false
		}
		if !x.up.Load() {
			x.dropped("expired", x.pending.expire(time.Now()))
			x.metrics.pending.Set(float64(x.pending.len()))
			backoff = min(x.opts.ProbeInterval, replayMaxBackoff) // the next sweep
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), settleSendTimeout)
		err := x.drain(ctx)
		cancel()
		if err != nil {
			backoff = min(2*backoff, replayMaxBackoff)
		} else {
			backoff = replayMinBackoff
		}
	}
}

// drain sends the queued settlements, one pipeline per replayBatch, until the queue is empty or
// a pipeline fails (its failed entries are queued again, at the head).
func (x *Resilient) drain(ctx context.Context) error {
	defer func() { x.metrics.pending.Set(float64(x.pending.len())) }()
	for {
		batch, expired := x.pending.take(replayBatch, time.Now())
		x.dropped("expired", expired)
		if len(batch) == 0 {
			return nil
		}
		leases := make([]*Lease, len(batch))
		used := make([]Spent, len(batch))
		for i, p := range batch {
			leases[i], used[i] = p.lease, p.used
		}
		start := time.Now()
		errs := x.redis.settleNow(ctx, leases, used)
		x.metrics.latency.Observe(time.Since(start).Seconds())
		var failed []pendingSettle
		var firstErr error
		for i, err := range errs {
			if err != nil {
				failed = append(failed, batch[i])
				firstErr = cmp.Or(firstErr, err)
			}
		}
		x.pending.done(len(batch), failed)
		if firstErr != nil {
			return firstErr
		}
	}
}

// Renew implements Limiter. Redis leases are not renewed while Redis is down: they may expire
// there, which undercounts at worst, for at most one lease TTL after Redis returns.
func (x *Resilient) Renew(ctx context.Context, leases []*Lease) error {
	var local, shared []*Lease
	for _, l := range leases {
		switch {
		case l == nil:
		case l.Local:
			local = append(local, l)
		default:
			shared = append(shared, l)
		}
	}
	if err := x.local.Renew(ctx, local); err != nil {
		return err
	}
	if len(shared) == 0 || !x.up.Load() {
		return nil
	}
	return x.call(ctx, func(ctx context.Context) error { return x.redis.Renew(ctx, shared) })
}

// Usage implements UsageReader from Redis; ErrRedisDown while it is down.
func (x *Resilient) Usage(ctx context.Context, s Subject) (Usage, error) {
	if !x.up.Load() {
		return Usage{}, ErrRedisDown
	}
	var u Usage
	err := x.call(ctx, func(ctx context.Context) (err error) {
		u, err = x.redis.Usage(ctx, s)
		return err
	})
	return u, err
}

// ClearSession implements SessionClearer in both limiters; ErrRedisDown if Redis could not be
// cleared.
func (x *Resilient) ClearSession(ctx context.Context, tenant, sessionID string) error {
	x.local.ClearSession(ctx, tenant, sessionID)
	if !x.up.Load() {
		return ErrRedisDown
	}
	return x.call(ctx, func(ctx context.Context) error { return x.redis.ClearSession(ctx, tenant, sessionID) })
}

// timed runs a call to Redis under the Timeout, like every Redis call on the request path, and
// records its latency. Settlements go through it alone: a slow settlement does not send
// admissions to the fallback, as admissions judge Redis's health. A timed-out settlement may
// still land (see Redis.Settle); the replay of its queued copy is then a no-op.
func (x *Resilient) timed(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, x.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := f(cctx)
	x.metrics.latency.Observe(time.Since(start).Seconds())
	return err
}

// call is timed, and marks Redis down when the call fails for any reason but the caller's own
// cancellation.
func (x *Resilient) call(ctx context.Context, f func(context.Context) error) error {
	err := x.timed(ctx, f)
	if err != nil && ctx.Err() == nil && x.up.CompareAndSwap(true, false) {
		x.metrics.up.Set(0)
		x.opts.Log.Warn("quota: redis unreachable, deciding locally", "err", err, "replicas", x.opts.Replicas)
	}
	return err
}

// probe pings a down Redis every ProbeInterval and marks it up once it answers; it also sweeps
// the local limiter so its memory stays bounded.
func (x *Resilient) probe() {
	defer close(x.done)
	tick := time.NewTicker(x.opts.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-x.stop:
			return
		case <-tick.C:
		}
		x.local.Sweep()
		if x.up.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), x.opts.Timeout)
		err := x.redis.Ping(ctx)
		cancel()
		if err != nil {
			continue
		}
		// Deliver what was queued before admissions go back to Redis, so that they see the
		// slots freed. Whatever fails here is left to the replayer.
		ctx, cancel = context.WithTimeout(context.Background(), settleSendTimeout)
		_ = x.drain(ctx)
		cancel()
		if x.up.CompareAndSwap(false, true) {
			x.pending.signal()
			x.metrics.up.Set(1)
			x.opts.Log.Info("quota: redis is back, deciding there again")
		}
	}
}

// resilientMetrics are Resilient's Prometheus series.
type resilientMetrics struct {
	decisions *prometheus.CounterVec // dimension, result
	admitted  prometheus.Counter     // decisions' ("none", "admitted"), the one of nearly every request
	fallback  *prometheus.CounterVec // policy
	dropped   *prometheus.CounterVec // reason
	queued    prometheus.Counter
	pending   prometheus.Gauge
	latency   prometheus.Histogram
	up        prometheus.Gauge
}

func newResilientMetrics(reg prometheus.Registerer) resilientMetrics {
	m := resilientMetrics{
		decisions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_quota_decisions_total",
			Help: "Admission decisions by result (admitted, rejected) and refusing dimension (none when admitted).",
		}, []string{"dimension", "result"})),
		fallback: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_quota_fallback_decisions_total",
			Help: "Admission decisions made without Redis, by policy: open (local limiter) or closed (refused).",
		}, []string{"policy"})),
		dropped: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_quota_dropped_settlements_total",
			Help: "Settlements of Redis leases never delivered, by reason: queue_full, expired (the lease expired first), shutdown. Their leases expire by TTL.",
		}, []string{"reason"})),
		queued: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmgate_quota_queued_settlements_total",
			Help: "Settlements of Redis leases, and undoings of admissions whose call failed, queued for replay because Redis did not take them at once.",
		})),
		pending: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "llmgate_quota_pending_settlements",
			Help: "Settlements queued for replay to Redis, quota.settle_queue at most.",
		})),
		latency: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "llmgate_quota_redis_seconds",
			Help:    "Latency of quota calls to Redis, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 12), // 100µs … 205ms
		})),
		up: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "llmgate_quota_redis_up",
			Help: "1 while quota decisions are made by Redis, 0 while they are made locally.",
		})),
	}
	// The fallback series exist from the start at 0, so that a dashboard or an alert reads "no
	// fallback" rather than no data before Redis ever failed.
	m.fallback.WithLabelValues("open")
	m.fallback.WithLabelValues("closed")
	m.admitted = m.decisions.WithLabelValues("none", "admitted")
	return m
}

func (m resilientMetrics) decided(res Result) {
	if res.Allowed {
		m.admitted.Inc()
	} else {
		m.decisions.WithLabelValues(res.Dimension, "rejected").Inc()
	}
}

// register registers c, or returns the collector already registered under its name, so that
// several limiters (tests, a reload) can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // same name, different shape: a programming error
	}
	return c
}
