package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// quotaParts is the quota machinery of a running gateway: the limiter (in-memory, or Redis behind
// the resilient fallback) and the policy book.
type quotaParts struct {
	kind      string // "memory" or "redis"
	limiter   quota.Limiter
	policies  *quota.PolicyBook
	memory    *quota.Memory    // set without Redis
	resilient *quota.Resilient // set with Redis
	hashPoll  time.Duration    // quota.policy_hash_poll
	log       *slog.Logger
	closeOnce sync.Once
}

// newRedis opens the client of redis_url (nil without one). It is shared by the quota limiter and
// the change bus.
func newRedis(ctx context.Context, cfg Config, log *slog.Logger) (redis.UniversalClient, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	// go-redis logs every failed dial on its own; the resilient limiter already reports Redis going
	// down and coming back, so the library's lines go to debug.
	redis.SetLogger(redisLog{log})
	c, err := quota.NewRedisClient(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis_url: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		// Start anyway: the fallback decides while Redis is away, and the prober notices its
		// return.
		log.Warn("redis is not answering at start; quotas run on the local fallback until it does", "err", err)
	}
	return c, nil
}

// newQuota builds the limiter on rdb (the in-memory one when rdb is nil) and the policy book.
func newQuota(ctx context.Context, cfg Config, st store.Store, rdb redis.UniversalClient, bus *changes.Bus,
	reg prometheus.Registerer, log *slog.Logger) (*quotaParts, error) {
	o := cfg.Quota.WithDefaults()
	lo := quota.LimiterOptions{LeaseTTL: o.LeaseTTL, PermitLeases: o.PermitLeases}
	q := &quotaParts{kind: "memory", hashPoll: o.PolicyHashPoll, log: log}
	if rdb == nil {
		q.memory = quota.NewMemory(lo)
		q.limiter = q.memory
	} else {
		q.kind = "redis"
		q.resilient = quota.NewResilient(quota.NewRedis(rdb, lo), quota.ResilientOptions{
			Timeout: o.RedisTimeout, FailClosed: o.FailClosed, Replicas: o.Replicas, MaxPending: o.SettleQueue,
			Limiter: lo, Registerer: reg, Log: log})
		q.limiter = q.resilient
	}
	book, err := quota.NewPolicyBook(ctx, st, rdb, bus)
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

// run forgets idle subjects of the in-memory limiter until ctx ends (Resilient sweeps its own);
// with Redis, it applies the policy hashes other systems write.
func (q *quotaParts) run(ctx context.Context) {
	if q.memory == nil {
		if q.hashPoll > 0 {
			q.policies.WatchHashes(ctx, q.hashPoll, q.log)
		}
		return
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			q.memory.Sweep()
		}
	}
}

func (q *quotaParts) close() {
	q.closeOnce.Do(func() {
		if q.resilient != nil {
			q.resilient.Close()
		}
	})
}

// redisLog sends go-redis's internal log lines to slog at debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
