package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/store"
)

// Credit guard timings, from the seed's CreditBalanceGuard.
const (
	creditSnapshotTTL = 2 * time.Second // how long a fetched balance is trusted
	creditFetchWait   = time.Second     // a missing snapshot is fetched within this, or the request passes
	creditBlockFor    = 5 * time.Minute // an exhausted account stays blocked this long (a top-up lifts it)
)

var errInsufficientCredit = newError(http.StatusTooManyRequests, api.TypeInsufficientQuota, "insufficient_quota", "",
	"You exceeded your current quota: the prepaid credit balance is exhausted. Top up to continue.")

// creditGuard refuses requests of a user (or, for users without an account, their tenant) whose
// prepaid balance is exhausted, before the upstream call. It reads cached snapshots, never
// blocks on a slow store beyond creditFetchWait, and lets requests through on any store error
// (fail-open, as the seed asks). Subjects with no account are postpaid and never refused.
//
// The bound: a balance can go below zero by at most what the requests admitted while the last
// snapshot still showed credit cost — those in flight plus those admitted within
// creditSnapshotTTL of the snapshot — since charges land when their usage records are written.
type creditGuard struct {
	store store.Store

	mu      sync.Mutex
	entries map[string]creditEntry // "user/<id>" or "tenant/<id>"
}

type creditEntry struct {
	exists       bool
	positive     bool
	fetched      time.Time
	blockedUntil time.Time
}

func newCreditGuard(st store.Store, changes *Changes) *creditGuard {
	g := &creditGuard{store: st, entries: map[string]creditEntry{}}
	if changes != nil {
		changes.Register("credits", func(_ context.Context, subject string) error {
			g.forget(subject)
			return nil
		}, func(context.Context) error {
			g.mu.Lock()
			g.entries = map[string]creditEntry{}
			g.mu.Unlock()
			return nil
		})
	}
	return g
}

func (g *creditGuard) forget(subject string) {
	g.mu.Lock()
	delete(g.entries, subject)
	g.mu.Unlock()
}

// check returns errInsufficientCredit when the request must not start.
func (g *creditGuard) check(ctx context.Context, userID, tenantID string) error {
	if g == nil {
		return nil
	}
	if userID != "" {
		e, ok := g.entry(ctx, "user", userID)
		if !ok {
			return nil // store trouble: fail open
		}
		if e.exists {
			return g.verdict("user/"+userID, e)
		}
	}
	e, ok := g.entry(ctx, "tenant", tenantID)
	if !ok || !e.exists {
		return nil
	}
	return g.verdict("tenant/"+tenantID, e)
}

func (g *creditGuard) verdict(subject string, e creditEntry) error {
	now := time.Now()
	if now.Before(e.blockedUntil) {
		return errInsufficientCredit
	}
	if !e.positive {
		g.mu.Lock()
		e.blockedUntil = now.Add(creditBlockFor)
		g.entries[subject] = e
		g.mu.Unlock()
		return errInsufficientCredit
	}
	return nil
}

// entry returns the subject's cached snapshot, fetching it when stale; ok is false when the store
// could not answer in time.
func (g *creditGuard) entry(ctx context.Context, typ, id string) (creditEntry, bool) {
	subject := typ + "/" + id
	now := time.Now()
	g.mu.Lock()
	e, ok := g.entries[subject]
	g.mu.Unlock()
	if ok && (now.Before(e.blockedUntil) || now.Sub(e.fetched) < creditSnapshotTTL) {
		return e, true
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), creditFetchWait)
	defer cancel()
	a, err := g.store.CreditAccountOf(fctx, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e = creditEntry{fetched: now, blockedUntil: e.blockedUntil}
	case err != nil:
		return creditEntry{}, false
	default:
		e = creditEntry{exists: true, positive: a.BalancePicoUSD != nil && a.BalancePicoUSD.Sign() > 0, fetched: now, blockedUntil: e.blockedUntil}
	}
	g.mu.Lock()
	g.entries[subject] = e
	g.mu.Unlock()
	return e, true
}

// CreditsChanged lifts any block on a subject ("user/<id>" or "tenant/<id>") here and on every
// replica: the admin API calls it after a top-up or adjustment.
func (g *Gateway) CreditsChanged(ctx context.Context, subjectType, subjectID string) error {
	if g.changes == nil {
		g.credits.forget(subjectType + "/" + subjectID)
		return nil
	}
	return g.changes.Announce(ctx, "credits", subjectType+"/"+strings.TrimSpace(subjectID))
}
