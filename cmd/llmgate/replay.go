package main

import (
	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/replay"
)

// newCache builds the response cache: in Redis when the gateway has one (every replica shares
// it), else in this process's memory, bounded by response_cache.max_memory_bytes.
func newCache(cfg Config, rdb redis.UniversalClient) *replay.Cache {
	o := cfg.ResponseCache.WithDefaults()
	if rdb != nil {
		return replay.NewCache(replay.NewRedis(rdb), o)
	}
	return replay.NewCache(replay.NewMemory(o.MaxMemoryBytes), o)
}

// newIdempotency builds the idempotency records, in Redis or in memory as newCache does.
func newIdempotency(cfg Config, rdb redis.UniversalClient) *replay.Idempotency {
	o := cfg.Idempotency.WithDefaults()
	if rdb != nil {
		return replay.NewIdempotency(replay.NewRedis(rdb), o)
	}
	return replay.NewIdempotency(replay.NewMemory(o.MaxMemoryBytes), o)
}
