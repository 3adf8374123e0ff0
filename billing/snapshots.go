package billing

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// snapshots caches values read from the store, by key. A cached value is served at once, and
// read again in the background once stale says so; a key seen for the first time is read within
// snapshotFetchWait. One read per key runs at a time, and a read that fails keeps the last value.
type snapshots[T any] struct {
	flight singleflight.Group
	mu     sync.Mutex
	m      map[string]*snapshot[T]
}

type snapshot[T any] struct {
	val           T
	fetched, used time.Time
}

// get returns key's value; known is false when it could not be read and nothing was cached.
func (c *snapshots[T]) get(ctx context.Context, key string, stale func(v T, fetched, now time.Time) bool,
	read func(context.Context) (T, error)) (v T, known bool) {
	now := time.Now()
	c.mu.Lock()
	if e := c.m[key]; e != nil {
		e.used = now
		v, fetched := e.val, e.fetched
		c.mu.Unlock()
		if stale(v, fetched, now) {
			go c.fetch(context.Background(), key, read) //nolint:contextcheck // outlives the request on purpose
		}
		return v, true
	}
	c.mu.Unlock()
	return c.fetch(ctx, key, read)
}

func (c *snapshots[T]) fetch(ctx context.Context, key string, read func(context.Context) (T, error)) (T, bool) {
	v, err, _ := c.flight.Do(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), snapshotFetchWait)
		defer cancel()
		v, err := read(fctx)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*snapshot[T]{}
		}
		c.m[key] = &snapshot[T]{val: v, fetched: now, used: now}
		c.mu.Unlock()
		return v, nil
	})
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e := c.m[key]; e != nil {
			return e.val, true // keep serving the last value
		}
		var zero T
		return zero, false
	}
	return v.(T), true
}

// peek returns key's cached value without marking it used or refreshing it.
func (c *snapshots[T]) peek(key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil {
		return e.val, true
	}
	var zero T
	return zero, false
}

func (c *snapshots[T]) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *snapshots[T]) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

func (c *snapshots[T]) sweep(cut time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.used.Before(cut) {
			delete(c.m, k)
		}
	}
}
