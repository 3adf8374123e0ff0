package gateway

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Ledger snapshot timings. The first two are the seed's CreditBalanceGuard's.
const (
	moneySnapshotTTL = 2 * time.Second // a snapshot older than this is refreshed in the background
	moneyFetchWait   = time.Second     // a missing snapshot is fetched within this, or the request passes
	creditBlockFor   = 5 * time.Minute // an account the ledger shows exhausted stays blocked (a top-up lifts it)
	moneyForget      = 10 * time.Minute
)

var errInsufficientCredit = newError(http.StatusTooManyRequests, api.TypeInsufficientQuota, "insufficient_quota", "",
	"You exceeded your current quota: the prepaid credit balance is exhausted. Top up to continue.")

// moneyBook gives admission what the ledger says a subject may spend: the credit account of a
// request's payer (its user's, or else its tenant's, as the ledger charges them) and the spend of
// the subjects that have a budget. It reads cached snapshots of the store, refreshed in the
// background once older than moneySnapshotTTL; a subject seen for the first time is fetched
// within moneyFetchWait, and when the store cannot answer the request passes without that check
// (fail-open, as the seed asks). The limiter adds to these figures what the ledger has not seen
// yet (quota.Money), so the snapshots may lag without letting spend through.
//
// Subjects with no account are postpaid and never refused for credit. An account the ledger
// shows at or below zero is refused before admission and blocked for creditBlockFor, unless a
// top-up announces itself (changes.Credits).
type moneyBook struct {
	store    store.Store
	accounts snapshots[accountSnap] // "user/<id>" or "tenant/<id>"
	spends   snapshots[spendSnap]   // policyKey(type, id, model)

	mu      sync.Mutex
	blocked map[string]time.Time // subject → refused without asking until then
}

type accountSnap struct {
	exists  bool
	balance int64 // nano-USD, floored
	charged int64 // nano-USD, floored
}

type spendSnap struct {
	day               int64 // UTC day the figures are for
	spentDay, spentMo int64 // nano-USD, floored
}

func newMoneyBook(st store.Store, bus *changes.Bus) *moneyBook {
	b := &moneyBook{store: st, blocked: map[string]time.Time{}}
	if bus != nil {
		bus.Register(changes.Credits, func(_ context.Context, subject string) error {
			b.forget(subject)
			return nil
		}, func(context.Context) error {
			b.accounts.clear()
			b.mu.Lock()
			b.blocked = map[string]time.Time{}
			b.mu.Unlock()
			return nil
		})
	}
	return b
}

// forget drops a subject's account snapshot and lifts its block.
func (b *moneyBook) forget(subject string) {
	b.accounts.forget(subject)
	b.mu.Lock()
	delete(b.blocked, subject)
	b.mu.Unlock()
}

// payer returns the credit account that pays for a request of user (may be empty) in tenant:
// the user's when it has one, else the tenant's; kind is "" when neither has one or the ledger
// could not say. err is errInsufficientCredit when the ledger shows the account exhausted.
func (b *moneyBook) payer(ctx context.Context, userID, tenantID string) (kind quota.Kind, a accountSnap, err error) {
	if b == nil {
		return "", accountSnap{}, nil
	}
	if userID != "" {
		a, known := b.account(ctx, quota.KindUser, userID)
		if !known {
			return "", accountSnap{}, nil // store trouble: fail open
		}
		if a.exists {
			return quota.KindUser, a, b.verdict("user/"+userID, a)
		}
	}
	a, known := b.account(ctx, quota.KindTenant, tenantID)
	if !known || !a.exists {
		return "", accountSnap{}, nil
	}
	return quota.KindTenant, a, b.verdict("tenant/"+tenantID, a)
}

// verdict refuses a subject that is blocked, or whose snapshot shows the balance used up (and
// then blocks it for creditBlockFor).
func (b *moneyBook) verdict(subject string, a accountSnap) error {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.blocked[subject]) {
		return errInsufficientCredit
	}
	if a.balance <= 0 {
		b.blocked[subject] = now.Add(creditBlockFor)
		return errInsufficientCredit
	}
	return nil
}

func (b *moneyBook) isBlocked(subject string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return now.Before(b.blocked[subject])
}

// account returns a subject's snapshot; known is false when the store could not answer in time
// and nothing was cached. A blocked subject's snapshot is not refreshed: it is refused anyway.
func (b *moneyBook) account(ctx context.Context, typ quota.Kind, id string) (accountSnap, bool) {
	subject := string(typ) + "/" + id
	return b.accounts.get(ctx, subject, func(s accountSnap, fetched, now time.Time) bool {
		return now.Sub(fetched) >= moneySnapshotTTL && !b.isBlocked(subject, now)
	}, func(ctx context.Context) (accountSnap, error) {
		a, err := b.store.CreditAccountOf(ctx, string(typ), id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return accountSnap{}, nil
		case err != nil:
			return accountSnap{}, err
		}
		return accountSnap{exists: true, balance: picoToNano(a.BalancePicoUSD), charged: picoToNano(a.ChargedPicoUSD)}, nil
	})
}

// spend returns the ledger's spend of a subject today and this month; ok is false when the
// store could not answer in time and nothing was cached.
func (b *moneyBook) spend(ctx context.Context, typ, id, model string) (spendSnap, bool) {
	return b.spends.get(ctx, quota.PolicyKey(quota.Kind(typ), id, model), func(s spendSnap, fetched, now time.Time) bool {
		return now.Sub(fetched) >= moneySnapshotTTL || s.day != utcDay(now)
	}, func(ctx context.Context) (spendSnap, error) {
		now := time.Now()
		month, day, err := b.store.Spend(ctx, store.SpendFilter{SubjectType: typ, SubjectID: id, Model: model, Day: now})
		if err != nil {
			return spendSnap{}, err
		}
		return spendSnap{day: utcDay(now), spentDay: picoToNano(day), spentMo: picoToNano(month)}, nil
	})
}

// sweep forgets snapshots unused, and blocks ended, for moneyForget, so the book holds the
// active subjects only.
func (b *moneyBook) sweep() {
	cut := time.Now().Add(-moneyForget)
	b.accounts.sweep(cut)
	b.spends.sweep(cut)
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, until := range b.blocked {
		if until.Before(cut) {
			delete(b.blocked, k)
		}
	}
}

// snapshots caches values read from the store, by key. A cached value is served at once, and
// read again in the background once stale says so; a key seen for the first time is read within
// moneyFetchWait. One read per key runs at a time, and a read that fails keeps the last value.
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
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), moneyFetchWait)
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

// budgetMoney returns the Money of a subject whose policy sets a budget, with the ledger's
// spend; nil when the policy sets none.
func (b *moneyBook) budgetMoney(ctx context.Context, p store.QuotaPolicy) *quota.Money {
	day, month := microToNano(p.BudgetDayMicroUSD), microToNano(p.BudgetMonthMicroUSD)
	if day == 0 && month == 0 {
		return nil
	}
	m := &quota.Money{BudgetDay: day, BudgetMonth: month}
	if s, ok := b.spend(ctx, p.SubjectType, p.SubjectID, p.Model); ok {
		m.Day, m.SpentDay, m.SpentMonth = s.day, s.spentDay, s.spentMo
	}
	return m
}

// withCredit adds a credit account's figures to a subject's Money.
func withCredit(m *quota.Money, a accountSnap) *quota.Money {
	if m == nil {
		m = &quota.Money{}
	}
	m.Credit, m.Balance, m.Charged = true, a.balance, a.charged
	return m
}

func utcDay(t time.Time) int64 { return t.Unix() / 86400 }

// picoToNano floors pico-USD to nano-USD, within quota.MaxMoney. Flooring keeps the limiter's
// counters, which add each request's floored cost, at or below the ledger's floored totals, so
// the larger of the two is the ledger's once it has caught up: rounding never accumulates.
func picoToNano(v *big.Int) int64 {
	if v == nil {
		return 0
	}
	q := new(big.Int).Div(v, big.NewInt(1000)) // Euclidean: floors negatives too
	if !q.IsInt64() || q.Int64() > quota.MaxMoney {
		if v.Sign() < 0 {
			return -quota.MaxMoney
		}
		return quota.MaxMoney
	}
	return max(q.Int64(), -quota.MaxMoney)
}

func microToNano(v *int64) int64 {
	if v == nil || *v <= 0 {
		return 0
	}
	return min(*v, quota.MaxMoney/1000) * 1000
}

// costNano floors a record's pico-USD cost to nano-USD.
func costNano(pico int64) int64 {
	if pico <= 0 {
		return 0
	}
	return min(pico/1000, quota.MaxMoney)
}

// reserveCost is a request's money reservation in nano-USD, rounded up: its token reservation
// (prompt estimate at the input price, the rest at the output price) at the highest prices among
// the upstream models it may reach, or the public model's price when none of them has one. Zero
// when no price is known: such a request is not costed either.
func (x *exchange) reserveCost(req request, upstreams []string, tokens int64) int64 {
	var in, out int64
	found := false
	for _, models := range [][]string{upstreams, {req.model}} {
		for _, m := range models {
			if p, ok := x.g.prices.Lookup(m); ok {
				found = true
				in, out = max(in, p.InputPerM), max(out, p.OutputPerM, p.ReasoningPerM)
			}
		}
		if found {
			break
		}
	}
	if !found {
		return 0
	}
	prompt := min(tokens, int64(len(req.body)/4)+1)
	pico := new(big.Int).Mul(big.NewInt(prompt), big.NewInt(in))
	pico.Add(pico, new(big.Int).Mul(big.NewInt(tokens-prompt), big.NewInt(out)))
	nano := pico.Add(pico, big.NewInt(999)).Div(pico, big.NewInt(1000))
	if !nano.IsInt64() || nano.Int64() > quota.MaxMoney {
		return quota.MaxMoney
	}
	return nano.Int64()
}

// moneyRefusal is the 429 for a request refused on a money dimension: OpenAI's
// insufficient_quota, as for an exhausted balance. A budget names when it resets (Retry-After);
// a balance waits for a top-up.
func moneyRefusal(res quota.Result) *Error {
	msg := "You exceeded your current quota: the prepaid credit balance is used up, counting the requests still in flight. Top up to continue."
	switch res.Dimension {
	case quota.DimBudgetDay:
		msg = "The daily budget of " + res.Subject + " is spent (counting requests in flight). It resets at 00:00 UTC."
	case quota.DimBudgetMonth:
		msg = "The monthly budget of " + res.Subject + " is spent (counting requests in flight). It resets on the first of the month, 00:00 UTC."
	}
	e := newError(http.StatusTooManyRequests, api.TypeInsufficientQuota, "insufficient_quota", "", msg)
	e.retryAfter = res.RetryAfter
	return e
}

// CreditsChanged lifts any block on a subject ("user/<id>" or "tenant/<id>") here and on every
// replica: the admin API calls it after a top-up or adjustment.
func (g *Gateway) CreditsChanged(ctx context.Context, subjectType, subjectID string) error {
	if g.changes == nil {
		g.money.forget(subjectType + "/" + subjectID)
		return nil
	}
	return g.changes.Announce(ctx, changes.Credits, subjectType+"/"+strings.TrimSpace(subjectID))
}
