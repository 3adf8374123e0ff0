package replay

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Store of gateways that share a Redis (single node, Sentinel or Cluster): every
// operation is one command or one script on one key, so it runs on the key's slot.
type Redis struct {
	c redis.UniversalClient
}

var _ Store = (*Redis)(nil)

// NewRedis makes a store on c.
func NewRedis(c redis.UniversalClient) *Redis { return &Redis{c: c} }

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return r.c.Set(ctx, key, val, ttl).Err()
}

// claimScript is SET NX that returns the value already there: one round trip tells a new claim
// from a running or a finished request.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`)

// finishScript replaces the value only if it is still the caller's claim (a claim that expired
// and was taken by another request is left to it).
var finishScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 0`)

// releaseScript deletes the key only if it still holds the caller's claim.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`)

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, key string, val []byte, ttl time.Duration) ([]byte, error) {
	v, err := claimScript.Run(ctx, r.c, []string{key}, val, ttl.Milliseconds()).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, _ := v.(string)
	return []byte(s), nil
}

// Finish implements Store.
func (r *Redis) Finish(ctx context.Context, key string, claim, val []byte, ttl time.Duration) error {
	return finishScript.Run(ctx, r.c, []string{key}, claim, val, ttl.Milliseconds()).Err()
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, key string, claim []byte) error {
	return releaseScript.Run(ctx, r.c, []string{key}, claim).Err()
}
