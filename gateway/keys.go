package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/apikey"
	"github.com/llmgate/llmgate/store"
)

// keyFromRequest finds the key in the headers OpenAI, Azure and Anthropic SDKs use.
func keyFromRequest(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			return strings.TrimSpace(a[7:])
		}
		return ""
	}
	if k := r.Header.Get("Api-Key"); k != "" {
		return k
	}
	return r.Header.Get("X-Api-Key")
}

// Identity is what a key resolves to: the key and the subjects it counts against.
type Identity struct {
	Key    store.APIKey
	Tier   string // the user's tier; empty for a key without a user
	models map[string]struct{}
	// tenantModels is the allowlist of the key's tenant: both lists must allow a model.
	tenantModels map[string]struct{}
}

// Allows reports whether the key may use a public model: its own allowlist and its tenant's.
func (id *Identity) Allows(model string) bool {
	return allowedBy(id.models, model) && allowedBy(id.tenantModels, model)
}

// allowedBy reports whether an allowlist lets a model through (an empty one lets every model).
func allowedBy(list map[string]struct{}, model string) bool {
	if len(list) == 0 {
		return true
	}
	_, ok := list[model]
	return ok
}

func setOf(names []string) map[string]struct{} {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}

// keyCache resolves key hashes to identities with a short TTL, so the store sees one query per key
// per TTL, and a revocation is visible within TTL. Unknown hashes are cached too (negative
// caching), apart from the valid ones so that a flood of unknown keys never pushes a valid key
// out; concurrent misses for one hash share a single store query. A store query for a key not
// known as valid costs the client's address one lookup from its budget (refunded when the key
// turns out valid), so distinct made-up keys cannot turn into a stream of store queries.
type keyCache struct {
	store     keyReader
	ttl       time.Duration
	negTTL    time.Duration
	maxItems  int // valid keys remembered at most
	maxMisses int // unknown keys remembered at most
	now       func() time.Time
	metrics   *Metrics
	lookups   *lookupBudget // nil: unbounded

	mu      sync.RWMutex
	entries map[string]keyEntry  // hash → identity of a valid key (also revoked or expired ones)
	misses  map[string]time.Time // hash → until when it is known as unknown
	flight  singleflight.Group
}

type keyEntry struct {
	id      *Identity
	expires time.Time
}

func newKeyCache(s keyReader, ttl, negTTL time.Duration, lookupsPerMinute int, m *Metrics) *keyCache {
	return &keyCache{store: s, ttl: ttl, negTTL: negTTL, maxItems: 100_000, maxMisses: 50_000, now: time.Now, metrics: m,
		lookups: newLookupBudget(lookupsPerMinute), entries: make(map[string]keyEntry), misses: make(map[string]time.Time)}
}

// resolve returns the identity of a plaintext key sent from addr (a RemoteAddr), or an *Error
// for the client.
func (c *keyCache) resolve(ctx context.Context, plaintext, addr string) (*Identity, error) {
	if plaintext == "" {
		return nil, errNoKey
	}
	if !apikey.Plausible(plaintext) {
		c.metrics.keyLookups.WithLabelValues("rejected").Inc()
		return nil, errBadKey
	}
	// The hash is looked up from a stack buffer; its string is made only for a key the cache
	// does not serve.
	var hb [apikey.HashLen]byte
	sum := apikey.AppendHash(hb[:0], plaintext)
	now := c.now()
	c.mu.RLock()
	e, known := c.entries[string(sum)]
	missUntil, missed := c.misses[string(sum)]
	c.mu.RUnlock()
	if known && now.Before(e.expires) {
		c.metrics.keyHits.Inc()
		return check(e.id, now)
	}
	if !known && missed && now.Before(missUntil) {
		c.metrics.keyLookups.WithLabelValues("negative").Inc()
		return nil, errBadKey
	}
	hash := string(sum)
	// Refreshing a key known as valid is free; any other key spends its address's budget.
	if !known {
		if wait, ok := c.lookups.take(addr, now); !ok {
			c.metrics.keyLookups.WithLabelValues("refused").Inc()
			err := newError(http.StatusTooManyRequests, api.TypeRateLimit, "too_many_key_lookups", "",
				"Too many requests with unknown API keys from this address; retry later.")
			err.retryAfter = wait
			return nil, err
		}
	}
	v, err, _ := c.flight.Do(hash, func() (any, error) { return c.lookup(ctx, hash) })
	if err != nil {
		return nil, err
	}
	id := v.(*Identity)
	if id == nil {
		return nil, errBadKey
	}
	if !known {
		c.lookups.refund(addr)
	}
	return check(id, now)
}

// knowsKeys reports whether the cache holds any valid key, which it can serve while the store is
// down.
func (c *keyCache) knowsKeys() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries) > 0
}

// staleRetry is how long a key served stale (the store is down) is trusted before the store is
// asked again.
const staleRetry = time.Second

// load queries the store and caches the answer, positive or negative. When the store cannot
// answer, a key this cache knew as valid keeps working (served stale, the store asked again
// every staleRetry): requests go on through a database outage — their usage is spooled — and a
// revocation cannot happen while the store is down anyway. An unknown key gets errStoreDown.
// lookup is what one flight runs: the answer stored since the caller read the cache, else the
// store's. A request can read the cache just before a flight stores its answer and reach
// singleflight just after that flight ended; it must not query the store a second time.
func (c *keyCache) lookup(ctx context.Context, hash string) (*Identity, error) {
	now := c.now()
	c.mu.RLock()
	e, known := c.entries[hash]
	missUntil, missed := c.misses[hash]
	c.mu.RUnlock()
	switch {
	case known && now.Before(e.expires):
		return e.id, nil
	case !known && missed && now.Before(missUntil):
		return nil, nil
	}
	return c.load(ctx, hash)
}

func (c *keyCache) load(ctx context.Context, hash string) (*Identity, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	now := c.now()
	c.metrics.keyLookups.WithLabelValues("store").Inc()
	k, err := c.store.KeyBySecret(ctx, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		c.putMiss(hash, now.Add(c.negTTL))
		return (*Identity)(nil), nil
	}
	if err != nil {
		return c.stale(hash, now)
	}
	id := &Identity{Key: k}
	if k.UserID != "" {
		u, err := c.store.GetUser(ctx, k.UserID)
		switch {
		case err == nil:
			id.Tier = u.Tier
		case !errors.Is(err, store.ErrNotFound):
			return c.stale(hash, now)
		}
	}
	id.models, id.tenantModels = setOf(k.Models), setOf(k.TenantModels)
	c.put(hash, keyEntry{id: id, expires: now.Add(c.ttl)})
	return id, nil
}

// stale returns the last known identity of a valid key while the store is down.
func (c *keyCache) stale(hash string, now time.Time) (*Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok || e.id == nil {
		return nil, errStoreDown
	}
	e.expires = now.Add(staleRetry)
	c.entries[hash] = e
	c.metrics.keyLookups.WithLabelValues("stale").Inc()
	return e.id, nil
}

// put remembers a valid key. When full, it evicts the entry that expires first among a few
// sampled ones: memory stays bounded without a reset that would send every live key back to the
// store at once.
func (c *keyCache) put(hash string, e keyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.misses, hash)
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.maxItems {
		evictSampled(c.entries, func(e keyEntry) time.Time { return e.expires })
	}
	c.entries[hash] = e
}

// putMiss remembers an unknown key, and forgets it as valid (a key deleted meanwhile).
func (c *keyCache) putMiss(hash string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, hash)
	if _, ok := c.misses[hash]; !ok && len(c.misses) >= c.maxMisses {
		evictSampled(c.misses, func(t time.Time) time.Time { return t })
	}
	c.misses[hash] = until
}

// evictSamples is how many entries evictSampled looks at; Redis's approximated LRU samples 5.
const evictSamples = 8

// evictSampled deletes, of a few entries taken from m in Go's randomised iteration order, the one
// with the earliest time: close to evicting the oldest, at a constant cost.
func evictSampled[V any](m map[string]V, at func(V) time.Time) {
	var victim string
	var oldest time.Time
	n := 0
	for k, v := range m {
		if t := at(v); n == 0 || t.Before(oldest) {
			victim, oldest = k, t
		}
		if n++; n == evictSamples {
			break
		}
	}
	delete(m, victim)
}

func check(id *Identity, now time.Time) (*Identity, error) {
	if id.Key.RevokedAt != nil && !now.Before(*id.Key.RevokedAt) {
		return nil, errRevoked
	}
	if id.Key.ExpiresAt != nil && !now.Before(*id.Key.ExpiresAt) {
		return nil, errExpired
	}
	return id, nil
}
