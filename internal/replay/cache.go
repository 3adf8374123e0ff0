package replay

import (
	"context"
	"encoding/hex"
	"time"
)

// CacheOptions is the config file's `response_cache` section. Zero values mean the defaults in
// brackets.
type CacheOptions struct {
	// Models are the public models whose answers are cached for every key ("*": every model)
	// [none]. Keys and tenants opt in on their own through the admin API (response_cache).
	Models []string `yaml:"models"`
	// TTL is how long an answer stays cached [1h].
	TTL time.Duration `yaml:"ttl"`
	// MaxEntryBytes is the largest answer kept (a larger one is answered as usual and not kept)
	// [1 MiB].
	MaxEntryBytes int `yaml:"max_entry_bytes"`
	// MaxMemoryBytes bounds what the in-process cache holds, without Redis [64 MiB]: the least
	// recently used answers go first. With Redis, its own maxmemory policy bounds the cache.
	MaxMemoryBytes int64 `yaml:"max_memory_bytes"`
	// PricePercent prices a cache hit at this percentage of what the answer's tokens cost at the
	// model's price [0: hits are free].
	PricePercent int `yaml:"price_percent"`
}

// WithDefaults fills the zero values.
func (o CacheOptions) WithDefaults() CacheOptions {
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = 1 << 20
	}
	if o.MaxMemoryBytes <= 0 {
		o.MaxMemoryBytes = 64 << 20
	}
	return o
}

// Cache is the response cache: answers by tenant and request fingerprint.
type Cache struct {
	opts   CacheOptions
	store  Store
	all    bool
	models map[string]bool
}

// NewCache makes the cache on s.
func NewCache(s Store, o CacheOptions) *Cache {
	c := &Cache{opts: o.WithDefaults(), store: s, models: map[string]bool{}}
	for _, m := range c.opts.Models {
		if m == "*" {
			c.all = true
		}
		c.models[m] = true
	}
	return c
}

// Options are the cache's options, defaults filled.
func (c *Cache) Options() CacheOptions { return c.opts }

// ForModel reports whether the config opts model in for every key.
func (c *Cache) ForModel(model string) bool { return c.all || c.models[model] }

// Key is the store key of a tenant's answer to a request with fingerprint fp.
func Key(tenant string, fp [32]byte) string {
	return "llmgate:cache:" + tag(tenant) + ":" + hex.EncodeToString(fp[:])
}

// Get returns the cached answer under key, or nil.
func (c *Cache) Get(ctx context.Context, key string) (*Entry, error) {
	b, err := c.store.Get(ctx, key)
	if err != nil || b == nil {
		return nil, err
	}
	return decodeEntry(b)
}

// Fits reports whether an answer of n bytes may be kept.
func (c *Cache) Fits(n int) bool { return n <= c.opts.MaxEntryBytes }

// Put keeps e under key for the TTL, unless it is too large.
func (c *Cache) Put(ctx context.Context, key string, e *Entry) error {
	if !c.Fits(e.Size()) {
		return nil
	}
	return c.store.Put(ctx, key, e.encode(), c.opts.TTL)
}
