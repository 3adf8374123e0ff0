package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// quotaParts is the quota machinery of a running gateway: the limiter (in-memory, or Redis behind
// the resilient fallback), the policy book and their background work.
type quotaParts struct {
	kind      string // "memory" or "redis"
	limiter   quota.Limiter
	policies  *gateway.PolicyBook
	changes   *gateway.Changes
	memory    *quota.Memory    // set without Redis
	resilient *quota.Resilient // set with Redis
	client    redis.UniversalClient
	closeOnce sync.Once
}

func newQuota(ctx context.Context, cfg Config, st store.Store, reg prometheus.Registerer, log *slog.Logger) (*quotaParts, error) {
	o := cfg.Quota.WithDefaults()
	lo := quota.LimiterOptions{LeaseTTL: o.LeaseTTL}
	q := &quotaParts{kind: "memory"}
	if cfg.RedisURL == "" {
		q.memory = quota.NewMemory(lo)
		q.limiter = q.memory
	} else {
		// go-redis logs every failed dial on its own; the resilient limiter already reports Redis
		// going down and coming back, so the library's lines go to debug.
		redis.SetLogger(redisLog{log})
		c, err := quota.NewRedisClient(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := c.Ping(pctx).Err(); err != nil {
			// Start anyway: the fallback decides while Redis is away, and the prober notices
			// its return.
			log.Warn("redis is not answering at start; quotas run on the local fallback until it does", "err", err)
		}
		cancel()
		q.kind, q.client = "redis", c
		q.resilient = quota.NewResilient(quota.NewRedis(c, lo), quota.ResilientOptions{
			Timeout: o.RedisTimeout, FailClosed: o.FailClosed, Replicas: o.Replicas, Limiter: lo,
			Registerer: reg, Log: log})
		q.limiter = q.resilient
	}
	q.changes = gateway.NewChanges(q.client, log)
	book, err := gateway.NewPolicyBook(ctx, st, q.client, q.changes)
	if err != nil {
		q.close()
		return nil, fmt.Errorf("quota policies: %w", err)
	}
	q.policies = book
	return q, nil
}

// healthy is false while quota decisions are made without Redis.
func (q *quotaParts) healthy() bool {
	return q.resilient == nil || q.resilient.Healthy()
}

// run does the background work until ctx ends: lease renewal, applying other replicas' admin
// changes and, for the in-memory limiter, forgetting idle subjects.
func (q *quotaParts) run(ctx context.Context, gw *gateway.Gateway) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); gw.Run(ctx) }()
	go func() {
		defer wg.Done()
		poll := time.Second
		if q.client != nil {
			poll = 500 * time.Millisecond
		}
		q.changes.Watch(ctx, poll)
	}()
	if q.memory != nil {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
				q.memory.Sweep()
			}
		}
	}
	wg.Wait()
}

func (q *quotaParts) close() {
	q.closeOnce.Do(func() {
		if q.resilient != nil {
			q.resilient.Close()
		}
		if q.client != nil {
			_ = q.client.Close()
		}
	})
}

// redisLog sends go-redis's internal log lines to slog at debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
