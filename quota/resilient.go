package quota

import (
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
	// Limiter configures the local fallback limiter.
	Limiter LimiterOptions
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Log receives the up/down transitions (nil: slog.Default()).
	Log *slog.Logger
}

// ErrRedisDown is returned by the admin calls (Usage, ClearSession) while Redis is unreachable:
// unlike admission, they have no local answer worth giving.
var ErrRedisDown = errors.New("quota: redis is unreachable")

// Resilient is the Limiter for production: Redis while it answers, a bounded local limiter while
// it does not. The first failed or timed-out call marks Redis down; from then on requests are
// decided locally without touching Redis at all (so none waits on it) until a background PING
// succeeds. Local decisions are Degraded and their leases Local, so they settle locally.
type Resilient struct {
	redis   *Redis
	local   *Memory
	opts    ResilientOptions
	metrics resilientMetrics
	up      atomic.Bool

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

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
	x := &Resilient{
		redis:   r,
		local:   NewMemory(opts.Limiter),
		opts:    opts,
		metrics: newResilientMetrics(opts.Registerer),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	x.up.Store(true)
	x.metrics.up.Set(1)
	go x.probe()
	return x
}

// Healthy reports whether Redis is up, for /health/ready.
func (x *Resilient) Healthy() bool { return x.up.Load() }

// Close stops the prober. The limiter still answers afterwards, but never notices Redis return.
func (x *Resilient) Close() {
	x.closeOnce.Do(func() { close(x.stop) })
	<-x.done
}

// Admit implements Limiter.
func (x *Resilient) Admit(ctx context.Context, req Request) (Result, error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	if x.up.Load() {
		var res Result
		err := x.call(ctx, func(ctx context.Context) (err error) {
			res, err = x.redis.Admit(ctx, req)
			return err
		})
		if err == nil {
			x.metrics.decided(res)
			return res, nil
		}
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

// Settle implements Limiter. A Redis lease that cannot be settled (Redis down) is dropped and
// counted: its slots free when it expires, and its reservation stands in place of the real
// count.
func (x *Resilient) Settle(ctx context.Context, lease *Lease, used Spent) error {
	switch {
	case lease == nil:
		return nil
	case lease.Local:
		return x.local.Settle(ctx, lease, used)
	case !x.up.Load():
		x.metrics.dropped.Inc()
		return nil
	}
	// The caller waits at most the Timeout, like every Redis call on the request path (the
	// settlement itself is still sent, see Redis.Settle), and a slow settlement does not send
	// admissions to the fallback: admissions judge Redis's health.
	cctx, cancel := context.WithTimeout(ctx, x.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := x.redis.Settle(cctx, lease, used)
	x.metrics.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		x.metrics.dropped.Inc()
	}
	return err
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

// call runs one Redis call under the Timeout, records its latency, and marks Redis down when it
// fails for any reason but the caller's own cancellation.
func (x *Resilient) call(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, x.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := f(cctx)
	x.metrics.latency.Observe(time.Since(start).Seconds())
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
		if err == nil && x.up.CompareAndSwap(false, true) {
			x.metrics.up.Set(1)
			x.opts.Log.Info("quota: redis is back, deciding there again")
		}
	}
}

// resilientMetrics are Resilient's Prometheus series.
type resilientMetrics struct {
	decisions *prometheus.CounterVec // dimension, result
	fallback  *prometheus.CounterVec // policy
	dropped   prometheus.Counter
	latency   prometheus.Histogram
	up        prometheus.Gauge
}

func newResilientMetrics(reg prometheus.Registerer) resilientMetrics {
	return resilientMetrics{
		decisions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_quota_decisions_total",
			Help: "Admission decisions by result (admitted, rejected) and refusing dimension (none when admitted).",
		}, []string{"dimension", "result"})),
		fallback: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_quota_fallback_decisions_total",
			Help: "Admission decisions made without Redis, by policy: open (local limiter) or closed (refused).",
		}, []string{"policy"})),
		dropped: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "llmgate_quota_dropped_settlements_total",
			Help: "Settlements of Redis leases dropped because Redis was unreachable; the leases expire by TTL.",
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
}

func (m resilientMetrics) decided(res Result) {
	if res.Allowed {
		m.decisions.WithLabelValues("none", "admitted").Inc()
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
