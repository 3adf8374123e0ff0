package quota

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/store"
)

// PolicyHashPrefix + userId is the Redis hash mirroring a user's model-less policy (fields userRpm,
// userConcurrent, userTpm, userTokensPerDay): the contract other systems read and write a user's
// limits through (a write by another system is applied by WatchHashes).
const PolicyHashPrefix = "ai:quota:policy:"

// PolicyStore is what the policy book needs of the store, the policies' source of truth.
type PolicyStore interface {
	QuotaPolicies(ctx context.Context, subjectType, subjectID string) ([]store.QuotaPolicy, error)
	PutQuotaPolicy(ctx context.Context, p store.QuotaPolicy) error
	DeleteQuotaPolicy(ctx context.Context, subjectType, subjectID, model string) error
}

// PolicyBook holds the quota policies (store.QuotaPolicy rows) of every subject in memory, so the
// request path never reads them from the store or Redis. The store is the source of truth;
// changes spread to every replica through the change bus (changes.Policy).
type PolicyBook struct {
	store   PolicyStore
	redis   redis.UniversalClient // nil without Redis: no mirror hash
	changes *changes.Bus

	mu    sync.RWMutex
	byKey map[string]store.QuotaPolicy // policyKey(subjectType, subjectID, model)
	// reloadedAt is when each subject's policies were last reloaded after a change, and reloadedAllAt
	// when all of them were: the hash watcher leaves a subject alone for a moment after, while the
	// change's own hash write may still be on its way.
	reloadedAt    map[string]time.Time // policyKey(kind, id, "")
	reloadedAllAt time.Time
}

// NewPolicyBook loads every policy from the store and registers with the change bus.
func NewPolicyBook(ctx context.Context, st PolicyStore, rdb redis.UniversalClient, bus *changes.Bus) (*PolicyBook, error) {
	b := &PolicyBook{store: st, redis: rdb, changes: bus}
	if err := b.reloadAll(ctx); err != nil {
		return nil, err
	}
	bus.Register(changes.Policy, func(ctx context.Context, arg string) error {
		typ, id, _ := strings.Cut(arg, "/") // ids may contain "/", types never do
		return b.reloadSubject(ctx, Kind(typ), id)
	}, b.reloadAll)
	return b, nil
}

// policyKey joins with NUL, which no id contains, so ids with "/" cannot collide.
func policyKey(kind Kind, subjectID, model string) string {
	return string(kind) + "\x00" + subjectID + "\x00" + model
}

// Lookup returns a subject's policy for a model ("" for the model-less one), as this replica
// applies it now. A nil book has no policies.
func (b *PolicyBook) Lookup(kind Kind, subjectID, model string) (store.QuotaPolicy, bool) {
	if b == nil {
		return store.QuotaPolicy{}, false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	p, ok := b.byKey[policyKey(kind, subjectID, model)]
	return p, ok
}

// Each calls fn with every policy the replica applies now, under the book's read lock: fn must
// not call back into the book. For readers that run off the request path (metrics at scrape).
func (b *PolicyBook) Each(fn func(store.QuotaPolicy)) {
	if b == nil {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, p := range b.byKey {
		fn(p)
	}
}

// ApplyPolicy overrides base with the policy's non-nil fields.
func ApplyPolicy(base Limits, p store.QuotaPolicy) Limits {
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&base.RPM, p.RPM)
	set(&base.TPM, p.TPM)
	set(&base.TokensPerDay, p.TokensPerDay)
	set(&base.Concurrent, p.Concurrent)
	return base
}

func (b *PolicyBook) reloadAll(ctx context.Context) error {
	all, err := b.store.QuotaPolicies(ctx, "", "")
	if err != nil {
		return err
	}
	m := make(map[string]store.QuotaPolicy, len(all))
	for _, p := range all {
		m[policyKey(Kind(p.SubjectType), p.SubjectID, p.Model)] = p
	}
	b.mu.Lock()
	b.byKey = m
	b.reloadedAllAt = time.Now()
	b.mu.Unlock()
	return nil
}

// reloadSubject replaces the cached policies of one subject with the store's.
func (b *PolicyBook) reloadSubject(ctx context.Context, kind Kind, subjectID string) error {
	ps, err := b.store.QuotaPolicies(ctx, string(kind), subjectID)
	if err != nil {
		return err
	}
	prefix := policyKey(kind, subjectID, "")
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.reloadedAt == nil {
		b.reloadedAt = map[string]time.Time{}
	}
	if len(b.reloadedAt) > 1024 { // only the last moments matter
		for k, at := range b.reloadedAt {
			if now.Sub(at) > time.Minute {
				delete(b.reloadedAt, k)
			}
		}
	}
	b.reloadedAt[prefix] = now
	for k := range b.byKey {
		if strings.HasPrefix(k, prefix) {
			delete(b.byKey, k)
		}
	}
	for _, p := range ps {
		b.byKey[policyKey(Kind(p.SubjectType), p.SubjectID, p.Model)] = p
	}
	return nil
}

// changedSince reports whether a subject's policies were reloaded after a change within d.
func (b *PolicyBook) changedSince(kind Kind, subjectID string, d time.Duration) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return time.Since(b.reloadedAllAt) < d || time.Since(b.reloadedAt[policyKey(kind, subjectID, "")]) < d
}

// Put stores a policy, applies it here at once, mirrors a user's model-less policy to the
// Redis hash and tells the other replicas.
func (b *PolicyBook) Put(ctx context.Context, p store.QuotaPolicy) error {
	if err := b.store.PutQuotaPolicy(ctx, p); err != nil {
		return err
	}
	return b.changed(ctx, Kind(p.SubjectType), p.SubjectID)
}

// Delete removes a policy everywhere, as Put adds one.
func (b *PolicyBook) Delete(ctx context.Context, kind Kind, subjectID, model string) error {
	if err := b.store.DeleteQuotaPolicy(ctx, string(kind), subjectID, model); err != nil {
		return err
	}
	return b.changed(ctx, kind, subjectID)
}

// Policies returns a subject's policies from the store (the source of truth).
func (b *PolicyBook) Policies(ctx context.Context, kind Kind, subjectID string) ([]store.QuotaPolicy, error) {
	return b.store.QuotaPolicies(ctx, string(kind), subjectID)
}

func (b *PolicyBook) changed(ctx context.Context, kind Kind, subjectID string) error {
	if err := b.changes.Announce(ctx, changes.Policy, string(kind)+"/"+subjectID); err != nil {
		return err
	}
	if b.redis != nil && kind == KindUser {
		return b.mirror(ctx, subjectID)
	}
	return nil
}

// mirror writes a user's model-less policy to ai:quota:policy:<userId> (deleted when there is
// none). Fields of limits that inherit from the tier are left out.
func (b *PolicyBook) mirror(ctx context.Context, userID string) error {
	p, ok := b.Lookup(KindUser, userID, "")
	return b.writeHash(ctx, userID, p, ok)
}

// writeHash replaces a user's hash with the limits of p (ok false: no policy, no hash).
func (b *PolicyBook) writeHash(ctx context.Context, userID string, p store.QuotaPolicy, ok bool) error {
	key := PolicyHashPrefix + userID
	fields := map[string]any{}
	if ok {
		for _, f := range hashFields {
			if v := *f.of(&p); v != nil {
				fields[f.name] = strconv.FormatInt(*v, 10)
			}
		}
	}
	pipe := b.redis.TxPipeline()
	pipe.Del(ctx, key)
	if len(fields) > 0 {
		pipe.HSet(ctx, key, fields)
	}
	_, err := pipe.Exec(ctx)
	return err
}
