package replay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// IdempotencyOptions is the config file's `idempotency` section. Zero values mean the defaults
// in brackets.
type IdempotencyOptions struct {
	// Enabled turns the Idempotency-Key header on [true]; off, the header is ignored.
	Enabled *bool `yaml:"enabled"`
	// TTL is how long a completed request's answer is kept for its retries [24h].
	TTL time.Duration `yaml:"ttl"`
	// LockTTL is how long a request in flight holds its key [10m]: a gateway that dies mid-request
	// frees the key after it. A request still running past it may be run again by a retry.
	LockTTL time.Duration `yaml:"lock_ttl"`
	// MaxEntryBytes is the largest answer kept for retries [4 MiB]: a larger answer frees its key
	// (a retry runs again).
	MaxEntryBytes int `yaml:"max_entry_bytes"`
	// MaxMemoryBytes bounds the in-process records, without Redis [64 MiB]: the least recently
	// used go first.
	MaxMemoryBytes int64 `yaml:"max_memory_bytes"`
}

// WithDefaults fills the zero values.
func (o IdempotencyOptions) WithDefaults() IdempotencyOptions {
	if o.Enabled == nil {
		on := true
		o.Enabled = &on
	}
	if o.TTL <= 0 {
		o.TTL = 24 * time.Hour
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 10 * time.Minute
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = 4 << 20
	}
	if o.MaxMemoryBytes <= 0 {
		o.MaxMemoryBytes = 64 << 20
	}
	return o
}

// Idempotency keeps the answers of requests sent with an Idempotency-Key, per API key, so that
// a retry gets the first answer instead of a second upstream call.
type Idempotency struct {
	opts  IdempotencyOptions
	store Store
}

// NewIdempotency makes the idempotency records on s.
func NewIdempotency(s Store, o IdempotencyOptions) *Idempotency {
	return &Idempotency{opts: o.WithDefaults(), store: s}
}

// Options are the options, defaults filled.
func (i *Idempotency) Options() IdempotencyOptions { return i.opts }

// Stored values: a claim of a request in flight, or a finished request's answer; both carry the
// fingerprint of the request that holds the key.
const (
	statePending = 'P'
	stateDone    = 'D'
)

// Claim is a request's hold on its idempotency key, which it ends with Finish or Release.
type Claim struct {
	key string
	val []byte
}

// Begun is what Begin found.
type Begun struct {
	// Claim is set when the key was free: the request runs, and Finish or Release ends the claim.
	Claim *Claim
	// Entry is the answer of the request that completed under the key: replay it.
	Entry *Entry
	// Busy: a request under the key is still running.
	Busy bool
	// Mismatch: the key was used with a different request (another body, endpoint or model).
	Mismatch bool
}

// Begin looks up the key idemKey of API key keyID (of tenant) for a request with fingerprint
// fp, and claims it when it is free.
func (i *Idempotency) Begin(ctx context.Context, tenant, keyID, idemKey string, fp [32]byte) (Begun, error) {
	h := sha256.Sum256([]byte(idemKey))
	key := "llmgate:idem:" + tag(tenant) + ":" + keyID + ":" + hex.EncodeToString(h[:])
	val := make([]byte, 0, 1+32+16)
	val = append(append(val, statePending), fp[:]...)
	val = append(val, rand.Text()[:16]...)
	cur, err := i.store.Claim(ctx, key, val, i.opts.LockTTL)
	if err != nil {
		return Begun{}, err
	}
	if cur == nil {
		return Begun{Claim: &Claim{key: key, val: val}}, nil
	}
	if len(cur) < 33 || !bytes.Equal(cur[1:33], fp[:]) {
		return Begun{Mismatch: true}, nil
	}
	if cur[0] == statePending {
		return Begun{Busy: true}, nil
	}
	e, err := decodeEntry(cur[33:])
	if err != nil {
		return Begun{}, err
	}
	return Begun{Entry: e}, nil
}

// Fits reports whether an answer of n bytes may be kept.
func (i *Idempotency) Fits(n int) bool { return n <= i.opts.MaxEntryBytes }

// Finish keeps e as the answer under c's key for the TTL; an answer too large to keep releases
// the key instead.
func (i *Idempotency) Finish(ctx context.Context, c *Claim, e *Entry) error {
	if !i.Fits(e.Size()) {
		return i.Release(ctx, c)
	}
	enc := e.encode()
	val := make([]byte, 0, 33+len(enc))
	val = append(append(append(val, stateDone), c.val[1:33]...), enc...)
	return i.store.Finish(ctx, c.key, c.val, val, i.opts.TTL)
}

// Release frees c's key: the request failed, and a retry runs again.
func (i *Idempotency) Release(ctx context.Context, c *Claim) error {
	return i.store.Release(ctx, c.key, c.val)
}
