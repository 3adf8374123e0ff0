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
// top-up announces itself (topic "credits").
type moneyBook struct {
	store  store.Store
	flight singleflight.Group

	mu       sync.Mutex
	accounts map[string]*accountSnap // "user/<id>" or "tenant/<id>"
	spends   map[string]*spendSnap   // policyKey(type, id, model)
}

type accountSnap struct {
	fetched      time.Time
	used         time.Time
	exists       bool
	balance      int64 // nano-USD, floored
	charged      int64 // nano-USD, floored
	blockedUntil time.Time
}

type spendSnap struct {
	fetched, used     time.Time
	day               int64 // UTC day the figures are for
	spentDay, spentMo int64 // nano-USD, floored
}

func newMoneyBook(st store.Store, changes *Changes) *moneyBook {
	b := &moneyBook{store: st, accounts: map[string]*accountSnap{}, spends: map[string]*spendSnap{}}
	if changes != nil {
		changes.Register("credits", func(_ context.Context, subject string) error {
			b.forget(subject)
			return nil
		}, func(context.Context) error {
			b.mu.Lock()
			b.accounts = map[string]*accountSnap{}
			b.mu.Unlock()
			return nil
		})
	}
	return b
}

func (b *moneyBook) forget(subject string) {
	b.mu.Lock()
	delete(b.accounts, subject)
	b.mu.Unlock()
}

// payer returns the credit account that pays for a request of user (may be empty) in tenant:
// the user's when it has one, else the tenant's; ok is false when neither has one or the ledger
// could not say. err is errInsufficientCredit when the ledger shows the account exhausted.
func (b *moneyBook) payer(ctx context.Context, userID, tenantID string) (kind string, a accountSnap, ok bool, err error) {
	if b == nil {
		return "", accountSnap{}, false, nil
	}
	if userID != "" {
		a, known := b.account(ctx, "user", userID)
		if !known {
			return "", accountSnap{}, false, nil // store trouble: fail open
		}
		if a.exists {
			return "user", a, true, b.verdict("user/"+userID, a)
		}
	}
	a, known := b.account(ctx, "tenant", tenantID)
	if !known || !a.exists {
		return "", accountSnap{}, false, nil
	}
	return "tenant", a, true, b.verdict("tenant/"+tenantID, a)
}

func (b *moneyBook) verdict(subject string, a accountSnap) error {
	now := time.Now()
	if now.Before(a.blockedUntil) {
		return errInsufficientCredit
	}
	if a.balance <= 0 {
		b.mu.Lock()
		if e := b.accounts[subject]; e != nil {
			e.blockedUntil = now.Add(creditBlockFor)
		}
		b.mu.Unlock()
		return errInsufficientCredit
	}
	return nil
}

// account returns a subject's snapshot; known is false when the store could not answer in time
// and nothing was cached.
func (b *moneyBook) account(ctx context.Context, typ, id string) (accountSnap, bool) {
	subject := typ + "/" + id
	now := time.Now()
	b.mu.Lock()
	e := b.accounts[subject]
	if e != nil {
		e.used = now
		snap := *e
		b.mu.Unlock()
		if now.Sub(snap.fetched) >= moneySnapshotTTL && now.After(snap.blockedUntil) {
			go b.fetchAccount(context.Background(), typ, id) //nolint:contextcheck // outlives the request on purpose
		}
		return snap, true
	}
	b.mu.Unlock()
	return b.fetchAccount(ctx, typ, id)
}

// fetchAccount reads an account from the store (one read per subject at a time) and caches it.
func (b *moneyBook) fetchAccount(ctx context.Context, typ, id string) (accountSnap, bool) {
	subject := typ + "/" + id
	v, err, _ := b.flight.Do("a\x00"+subject, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), moneyFetchWait)
		defer cancel()
		a, err := b.store.CreditAccountOf(fctx, typ, id)
		now := time.Now()
		snap := accountSnap{fetched: now, used: now}
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			snap.exists = true
			snap.balance = picoToNano(a.BalancePicoUSD)
			snap.charged = picoToNano(a.ChargedPicoUSD)
		}
		b.mu.Lock()
		if old := b.accounts[subject]; old != nil {
			snap.blockedUntil = old.blockedUntil
		}
		cached := snap
		b.accounts[subject] = &cached
		b.mu.Unlock()
		return snap, nil
	})
	if err != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		if e := b.accounts[subject]; e != nil {
			return *e, true // keep serving the last snapshot
		}
		return accountSnap{}, false
	}
	return v.(accountSnap), true
}

// spend returns the ledger's spend of a subject today and this month; ok is false when the
// store could not answer in time and nothing was cached.
func (b *moneyBook) spend(ctx context.Context, typ, id, model string) (spendSnap, bool) {
	k := policyKey(typ, id, model)
	now := time.Now()
	b.mu.Lock()
	e := b.spends[k]
	if e != nil {
		e.used = now
		snap := *e
		b.mu.Unlock()
		if now.Sub(snap.fetched) >= moneySnapshotTTL || snap.day != utcDay(now) {
			go b.fetchSpend(context.Background(), typ, id, model) //nolint:contextcheck // outlives the request on purpose
		}
		return snap, true
	}
	b.mu.Unlock()
	return b.fetchSpend(ctx, typ, id, model)
}

func (b *moneyBook) fetchSpend(ctx context.Context, typ, id, model string) (spendSnap, bool) {
	k := policyKey(typ, id, model)
	v, err, _ := b.flight.Do("s\x00"+k, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), moneyFetchWait)
		defer cancel()
		now := time.Now()
		month, day, err := b.store.Spend(fctx, store.SpendFilter{SubjectType: typ, SubjectID: id, Model: model, Day: now})
		if err != nil {
			return nil, err
		}
		snap := spendSnap{fetched: now, used: now, day: utcDay(now), spentDay: picoToNano(day), spentMo: picoToNano(month)}
		b.mu.Lock()
		cached := snap
		b.spends[k] = &cached
		b.mu.Unlock()
		return snap, nil
	})
	if err != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		if e := b.spends[k]; e != nil {
			return *e, true
		}
		return spendSnap{}, false
	}
	return v.(spendSnap), true
}

// sweep forgets snapshots unused for moneyForget, so the book holds the active subjects only.
func (b *moneyBook) sweep() {
	cut := time.Now().Add(-moneyForget)
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, e := range b.accounts {
		if e.used.Before(cut) && e.blockedUntil.Before(cut) {
			delete(b.accounts, k)
		}
	}
	for k, e := range b.spends {
		if e.used.Before(cut) {
			delete(b.spends, k)
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
	return g.changes.Announce(ctx, "credits", subjectType+"/"+strings.TrimSpace(subjectID))
}
