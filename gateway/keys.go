package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/llmgate/llmgate/store"
)

// KeyPrefix starts every API key llmgate issues, so a key is recognisable (and secret scanners
// can find leaked ones).
const KeyPrefix = "sk-lg-"

// keyAlphabet is base62: keys survive copy-paste, URLs and shells.
const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// keyBodyLen is 43 base62 characters ≈ 256 bits.
const keyBodyLen = 43

// displayPrefixLen is how much of a key is stored in clear for display.
const displayPrefixLen = len(KeyPrefix) + 6

// NewKeySecret makes a fresh API key: its plaintext (shown once), the hex SHA-256 that is stored,
// and the display prefix.
func NewKeySecret() (plaintext, hash, prefix string) {
	var buf [keyBodyLen]byte
	// rejection sampling keeps every character uniformly likely
	out := make([]byte, 0, keyBodyLen)
	for len(out) < keyBodyLen {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		for _, b := range buf {
			if b < 248 && len(out) < keyBodyLen { // 248 = 4×62
				out = append(out, keyAlphabet[b%62])
			}
		}
	}
	plaintext = KeyPrefix + string(out)
	return plaintext, HashKey(plaintext), plaintext[:displayPrefixLen]
}

// HashKey is how a key is stored and looked up: hex SHA-256 of the plaintext. Keys carry 256 bits
// of randomness, so a fast hash is enough (no password stretching needed).
func HashKey(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// plausibleKey rejects strings that cannot be a key before any lookup, so garbage in a flood of
// bad requests never reaches the cache map or the store.
func plausibleKey(k string) bool {
	if len(k) < 8 || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

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
// caching), and concurrent misses for one hash share a single store query.
type keyCache struct {
	store    store.Store
	ttl      time.Duration
	negTTL   time.Duration
	maxItems int
	now      func() time.Time
	metrics  *Metrics

	mu      sync.RWMutex
	entries map[string]keyEntry
	flight  singleflight.Group
}

type keyEntry struct {
	id      *Identity // nil: the hash is unknown
	expires time.Time
}

func newKeyCache(s store.Store, ttl, negTTL time.Duration, m *Metrics) *keyCache {
	return &keyCache{store: s, ttl: ttl, negTTL: negTTL, maxItems: 100_000, now: time.Now, metrics: m,
		entries: make(map[string]keyEntry)}
}

// resolve returns the identity of a plaintext key, or an *Error for the client.
func (c *keyCache) resolve(ctx context.Context, plaintext string) (*Identity, error) {
	if plaintext == "" {
		return nil, errNoKey
	}
	if !plausibleKey(plaintext) {
		c.metrics.keyLookups.WithLabelValues("rejected").Inc()
		return nil, errBadKey
	}
	hash := HashKey(plaintext)
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[hash]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		if e.id == nil {
			c.metrics.keyLookups.WithLabelValues("negative").Inc()
			return nil, errBadKey
		}
		c.metrics.keyLookups.WithLabelValues("cache").Inc()
		return check(e.id, now)
	}
	v, err, _ := c.flight.Do(hash, func() (any, error) { return c.load(ctx, hash) })
	if err != nil {
		return nil, err
	}
	id := v.(*Identity)
	if id == nil {
		return nil, errBadKey
	}
	return check(id, now)
}

// staleRetry is how long a key served stale (the store is down) is trusted before the store is
// asked again.
const staleRetry = time.Second

// load queries the store and caches the answer, positive or negative. When the store cannot
// answer, a key this cache knew as valid keeps working (served stale, the store asked again
// every staleRetry): requests go on through a database outage — their usage is spooled — and a
// revocation cannot happen while the store is down anyway. An unknown key gets errStoreDown.
func (c *keyCache) load(ctx context.Context, hash string) (*Identity, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	now := c.now()
	c.metrics.keyLookups.WithLabelValues("store").Inc()
	k, err := c.store.KeyBySecret(ctx, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		c.put(hash, keyEntry{expires: now.Add(c.negTTL)})
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

func (c *keyCache) put(hash string, e keyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.maxItems {
		// Bounded memory under a flood of distinct keys: drop expired entries, and if that is not
		// enough, start over (the store absorbs one query per live key).
		now := c.now()
		for h, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, h)
			}
		}
		if len(c.entries) >= c.maxItems {
			c.entries = make(map[string]keyEntry)
		}
	}
	c.entries[hash] = e
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
