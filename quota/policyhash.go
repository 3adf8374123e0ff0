package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/store"
)

// The policy hash of a user (PolicyHashPrefix + userId) is the book's mirror of the user's
// model-less limits, and an input too: another system may write it directly (HSET), as the
// governance service of the original design does, and every replica must then apply it. The
// hashes are polled rather than watched through keyspace notifications: notifications need the
// server's notify-keyspace-events (which managed Redis services often lock), and a Redis Cluster
// sends them from each node to that node's subscribers only. A poll reads every hash with SCAN on
// each master, which costs a pass over the keyspace per round.
//
// A hash whose limits differ from the user's stored policy is stored as an API write would store
// it: the four limits from the hash (an absent field inherits), the rest of the policy (budgets)
// kept, announced to every replica. The store stays the source of truth for every other
// decision: a hash that disappeared (a flushed or restarted Redis) is written again from the
// store rather than taken to clear the limits, and a policy changed in the last hashSettle is
// left for a later round, since the API writes the store before the hash and a replica must not
// take the old hash for another system's write (nor a hash a deletion has not yet removed for one
// that was never stored).

// hashSettle is how long after a policy's last store write its hash is left alone.
const hashSettle = 2 * time.Second

// DefaultPolicyHashPoll is how often the policy hashes are read when Options.PolicyHashPoll is 0.
const DefaultPolicyHashPoll = 2 * time.Second

// hashField names one limit as the hash (and the user policy body of the admin API) spells it.
type hashField struct {
	name string
	of   func(p *store.QuotaPolicy) **int64
}

var hashFields = [...]hashField{
	{"userRpm", func(p *store.QuotaPolicy) **int64 { return &p.RPM }},
	{"userConcurrent", func(p *store.QuotaPolicy) **int64 { return &p.Concurrent }},
	{"userTpm", func(p *store.QuotaPolicy) **int64 { return &p.TPM }},
	{"userTokensPerDay", func(p *store.QuotaPolicy) **int64 { return &p.TokensPerDay }},
}

// hashLimits reads the limits of a policy hash into a policy's limit fields. A negative value is
// unlimited (0): the other system writes -1 for that. Fields other than the four are ignored.
func hashLimits(h map[string]string) (store.QuotaPolicy, error) {
	var p store.QuotaPolicy
	for _, f := range hashFields {
		s, ok := h[f.name]
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return p, fmt.Errorf("field %s: %q is not an integer", f.name, s)
		}
		v = max(v, 0)
		*f.of(&p) = &v
	}
	return p, nil
}

// sameLimits reports whether two policies have the same four limits.
func sameLimits(a, b store.QuotaPolicy) bool {
	for _, f := range hashFields {
		x, y := *f.of(&a), *f.of(&b)
		if (x == nil) != (y == nil) || (x != nil && *x != *y) {
			return false
		}
	}
	return true
}

// hasLimits reports whether a policy sets any of the four limits (and so has a hash).
func hasLimits(p store.QuotaPolicy) bool {
	return !sameLimits(p, store.QuotaPolicy{})
}

// WatchHashes applies the policy hashes written by other systems, reading them every `every`
// (DefaultPolicyHashPoll when 0), until ctx ends. It does nothing without Redis.
func (b *PolicyBook) WatchHashes(ctx context.Context, every time.Duration, log *slog.Logger) {
	if b.redis == nil {
		return
	}
	if every <= 0 {
		every = DefaultPolicyHashPoll
	}
	if log == nil {
		log = slog.Default()
	}
	w := hashWatch{b: b, log: log, bad: map[string]string{}}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, max(every, 5*time.Second))
			if err := w.round(rctx); err != nil && ctx.Err() == nil {
				log.Warn("reading the quota policy hashes failed; next round", "err", err)
			}
			cancel()
		}
	}
}

// hashWatch is the state of WatchHashes between rounds.
type hashWatch struct {
	b   *PolicyBook
	log *slog.Logger
	bad map[string]string // user → the malformed hash last warned about, so it is warned once
}

// round reads every policy hash and reconciles those that differ from the book.
func (w *hashWatch) round(ctx context.Context) error {
	hashes, err := w.b.readHashes(ctx)
	if err != nil {
		return err
	}
	for user, h := range hashes {
		limits, err := hashLimits(h)
		if err != nil {
			if fmt.Sprint(h) != w.bad[user] {
				w.bad[user] = fmt.Sprint(h)
				w.log.Warn("a quota policy hash holds a value that is not an integer; it is not applied",
					"key", PolicyHashPrefix+user, "err", err)
			}
			continue
		}
		delete(w.bad, user)
		have, ok := w.b.Lookup(KindUser, user, "")
		if ok && sameLimits(have, limits) || !ok && !hasLimits(limits) {
			continue
		}
		if err := w.reconcile(ctx, user, &limits); err != nil {
			return err
		}
	}
	// Users whose limits have a hash no longer: the mirror was lost, not the limits.
	var missing []string
	w.b.Each(func(p store.QuotaPolicy) {
		if _, found := hashes[p.SubjectID]; Kind(p.SubjectType) == KindUser && p.Model == "" && !found && hasLimits(p) {
			missing = append(missing, p.SubjectID)
		}
	})
	for _, user := range missing {
		if err := w.reconcile(ctx, user, nil); err != nil {
			return err
		}
	}
	return nil
}

// reconcile settles one user's hash (limits; nil when it has none) against the store.
func (w *hashWatch) reconcile(ctx context.Context, user string, limits *store.QuotaPolicy) error {
	b := w.b
	if b.changedSince(KindUser, user, hashSettle) {
		return nil // a change may not have reached the hash yet: next round
	}
	ps, err := b.store.QuotaPolicies(ctx, string(KindUser), user)
	if err != nil {
		return err
	}
	cur, found := store.QuotaPolicy{SubjectType: string(KindUser), SubjectID: user}, false
	for _, p := range ps {
		if p.Model == "" {
			cur, found = p, true
		}
	}
	if found && time.Since(cur.UpdatedAt) < hashSettle {
		return nil // an API write may not have reached the hash yet: next round
	}
	switch {
	case limits == nil && found && hasLimits(cur):
		return b.writeHash(ctx, user, cur, true)
	case limits == nil || sameLimits(cur, *limits):
		return b.reloadSubject(ctx, KindUser, user) // this replica's book was behind the store
	}
	p := cur
	for _, f := range hashFields {
		*f.of(&p) = *f.of(limits)
	}
	if err := b.store.PutQuotaPolicy(ctx, p); err != nil {
		return err
	}
	w.log.Info("applied a quota policy another system wrote to its Redis hash", "user", user,
		"rpm", fmtLimit(p.RPM), "concurrent", fmtLimit(p.Concurrent), "tpm", fmtLimit(p.TPM),
		"tokens_per_day", fmtLimit(p.TokensPerDay))
	// Announced like an API write, but not mirrored: the hash stays as the other system wrote it.
	return b.changes.Announce(ctx, changes.Policy, string(KindUser)+"/"+user)
}

func fmtLimit(v *int64) string {
	if v == nil {
		return "inherited"
	}
	return strconv.FormatInt(*v, 10)
}

// readHashes returns every policy hash by user id, from every master of a Redis Cluster.
func (b *PolicyBook) readHashes(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	var mu sync.Mutex
	read := func(ctx context.Context, c redis.Cmdable) error {
		var keys []string
		iter := c.Scan(ctx, 0, PolicyHashPrefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		pipe := c.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for i, k := range keys {
			h, err := cmds[i].Result()
			if user := strings.TrimPrefix(k, PolicyHashPrefix); err == nil && len(h) > 0 && user != "" {
				out[user] = h // a key gone between SCAN and HGETALL reads as empty: skipped
			}
		}
		return nil
	}
	var err error
	if cc, ok := b.redis.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return read(ctx, n) })
	} else {
		err = read(ctx, b.redis)
	}
	if err != nil {
		return nil, fmt.Errorf("policy hashes: %w", err)
	}
	return out, nil
}
