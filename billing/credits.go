package billing

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Guard timings. A snapshot is refreshed after two seconds and a missing one fetched within one,
// as a credit balance guard must not slow requests down; an exhausted account stays blocked for
// five minutes unless a top-up lifts it.
const (
	snapshotTTL       = 2 * time.Second  // a snapshot older than this is refreshed in the background
	snapshotFetchWait = time.Second      // a missing snapshot is fetched within this, or the request passes
	creditBlockFor    = 5 * time.Minute  // an account the ledger shows exhausted stays blocked (a top-up lifts it)
	snapshotForget    = 10 * time.Minute // snapshots and blocks unused this long are forgotten
)

// ErrInsufficientCredit is the guard's refusal of a request whose payer the ledger shows
// exhausted (or that is blocked since it was).
var ErrInsufficientCredit = errors.New("billing: the prepaid credit balance is exhausted")

// LedgerReader is what the guard reads of the store: credit accounts and the spend of subjects.
type LedgerReader interface {
	CreditAccountOf(ctx context.Context, subjectType, subjectID string) (store.CreditAccount, error)
	Spend(ctx context.Context, f store.SpendFilter) (month, day *big.Int, err error)
}

// Payer is billing's decision of who pays for a request: the credit account charged for it, with
// the ledger's figures as the guard last saw them.
type Payer struct {
	// Known is false when the ledger could not say in time: the request passes (fail-open) and
	// the usage record leaves the payer to be named when it is written (see Ledger).
	Known bool
	// Kind and ID name the subject whose account pays; Kind is "" when neither the user nor the
	// tenant has an account: the request is postpaid and no credit is charged for it.
	Kind quota.Kind
	ID   string
	// Balance and Charged are the account's balance and total of charges, nano-USD, floored.
	Balance, Charged int64
}

// Mark writes the decision into a usage record: the account its cost is charged to, and no
// charge at all when nobody has an account. A record the policy exempts (Charge false) stays
// exempt; a record whose payer is not known keeps Charge and names no payer.
func (p Payer) Mark(r *store.UsageRecord) {
	switch {
	case !p.Known:
	case p.Kind == "":
		r.Charge = false
	default:
		r.PayerType, r.PayerID = string(p.Kind), p.ID
	}
}

// Money adds the payer's credit account figures to its subject's Money (m may be nil).
func (p Payer) Money(m *quota.Money) *quota.Money {
	if m == nil {
		m = &quota.Money{}
	}
	m.Credit, m.Balance, m.Charged = true, p.Balance, p.Charged
	return m
}

// choosePayer is the one rule of who pays: the user's credit account when it has one, else the
// tenant's; nobody when neither has one. account reports whether a subject has an account;
// known is false when it could not say.
func choosePayer(userID, tenantID string, account func(kind quota.Kind, id string) (exists, known bool)) (quota.Kind, string, bool) {
	for _, s := range [...]struct {
		kind quota.Kind
		id   string
	}{{quota.KindUser, userID}, {quota.KindTenant, tenantID}} {
		if s.id == "" {
			continue
		}
		exists, known := account(s.kind, s.id)
		if !known {
			return "", "", false
		}
		if exists {
			return s.kind, s.id, true
		}
	}
	return "", "", true
}

// PayerAccount reads the credit account that pays for requests of user (may be empty) in tenant
// from the ledger itself, not from a snapshot; ok is false when neither has one.
func PayerAccount(ctx context.Context, r LedgerReader, userID, tenantID string) (a store.CreditAccount, ok bool, err error) {
	kind, _, known := choosePayer(userID, tenantID, func(kind quota.Kind, id string) (bool, bool) {
		got, e := r.CreditAccountOf(ctx, string(kind), id)
		switch {
		case errors.Is(e, store.ErrNotFound):
			return false, true
		case e != nil:
			err = e
			return false, false
		}
		a = got
		return true, true
	})
	if !known {
		return store.CreditAccount{}, false, err
	}
	return a, kind != "", nil
}

// Guard is the balance guard: it gives admission what the ledger says a subject may spend, the
// credit account of a request's payer and the spend of the subjects that have a budget. It
// reads cached snapshots of the store, refreshed in the background once older than snapshotTTL;
// a subject seen for the first time is fetched within snapshotFetchWait, and when the store
// cannot answer the request passes without that check (fail-open). The limiter adds to these
// figures what the ledger has not seen yet (quota.Money), so the snapshots may lag without
// letting spend through.
//
// Subjects with no account are postpaid and never refused for credit. An account the ledger
// shows at or below zero is refused before admission and blocked for creditBlockFor, unless a
// top-up announces itself (changes.Credits).
type Guard struct {
	store    LedgerReader
	changes  *changes.Bus
	accounts snapshots[accountSnap] // "user/<id>" or "tenant/<id>"
	spends   snapshots[spendSnap]   // type, id and model joined with NUL, which no id contains

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

// NewGuard returns a guard over the ledger, told about top-ups through bus (nil: this process
// only, through CreditsChanged).
func NewGuard(st LedgerReader, bus *changes.Bus) *Guard {
	g := &Guard{store: st, changes: bus, blocked: map[string]time.Time{}}
	if bus != nil {
		bus.Register(changes.Credits, func(_ context.Context, subject string) error {
			g.forget(subject)
			return nil
		}, func(context.Context) error {
			g.accounts.clear()
			g.mu.Lock()
			g.blocked = map[string]time.Time{}
			g.mu.Unlock()
			return nil
		})
	}
	return g
}

// CreditsChanged lifts any block on a subject here and on every replica: the admin API calls it
// after a top-up or adjustment.
func (g *Guard) CreditsChanged(ctx context.Context, kind quota.Kind, id string) error {
	subject := string(kind) + "/" + strings.TrimSpace(id)
	if g.changes == nil {
		g.forget(subject)
		return nil
	}
	return g.changes.Announce(ctx, changes.Credits, subject)
}

// forget drops a subject's account snapshot and lifts its block.
func (g *Guard) forget(subject string) {
	g.accounts.forget(subject)
	g.mu.Lock()
	delete(g.blocked, subject)
	g.mu.Unlock()
}

// Payer decides who pays for a request of user (may be empty) in tenant, by choosePayer's rule
// over the snapshots. The error is ErrInsufficientCredit when the ledger shows that account
// exhausted.
func (g *Guard) Payer(ctx context.Context, userID, tenantID string) (Payer, error) {
	var snap accountSnap
	kind, id, known := choosePayer(userID, tenantID, func(kind quota.Kind, id string) (bool, bool) {
		a, known := g.account(ctx, kind, id)
		snap = a
		return a.exists, known
	})
	if !known {
		return Payer{}, nil // store trouble: fail open
	}
	if kind == "" {
		return Payer{Known: true}, nil
	}
	p := Payer{Known: true, Kind: kind, ID: id, Balance: snap.balance, Charged: snap.charged}
	return p, g.verdict(string(kind)+"/"+id, snap)
}

// verdict refuses a subject that is blocked, or whose snapshot shows the balance used up (and
// then blocks it for creditBlockFor).
func (g *Guard) verdict(subject string, a accountSnap) error {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.blocked[subject]) {
		return ErrInsufficientCredit
	}
	if a.balance <= 0 {
		g.blocked[subject] = now.Add(creditBlockFor)
		return ErrInsufficientCredit
	}
	return nil
}

func (g *Guard) isBlocked(subject string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return now.Before(g.blocked[subject])
}

// account returns a subject's snapshot; known is false when the store could not answer in time
// and nothing was cached. A blocked subject's snapshot is not refreshed: it is refused anyway.
func (g *Guard) account(ctx context.Context, kind quota.Kind, id string) (accountSnap, bool) {
	subject := string(kind) + "/" + id
	return g.accounts.get(ctx, subject, func(s accountSnap, fetched, now time.Time) bool {
		return now.Sub(fetched) >= snapshotTTL && !g.isBlocked(subject, now)
	}, func(ctx context.Context) (accountSnap, error) {
		a, err := g.store.CreditAccountOf(ctx, string(kind), id)
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
func (g *Guard) spend(ctx context.Context, typ, id, model string) (spendSnap, bool) {
	return g.spends.get(ctx, typ+"\x00"+id+"\x00"+model, func(s spendSnap, fetched, now time.Time) bool {
		return now.Sub(fetched) >= snapshotTTL || s.day != utcDay(now)
	}, func(ctx context.Context) (spendSnap, error) {
		now := time.Now()
		month, day, err := g.store.Spend(ctx, store.SpendFilter{SubjectType: typ, SubjectID: id, Model: model, Day: now})
		if err != nil {
			return spendSnap{}, err
		}
		return spendSnap{day: utcDay(now), spentDay: picoToNano(day), spentMo: picoToNano(month)}, nil
	})
}

// BudgetMoney returns the Money of a subject whose policy sets a budget, with the ledger's
// spend; nil when the policy sets none.
func (g *Guard) BudgetMoney(ctx context.Context, p store.QuotaPolicy) *quota.Money {
	day, month := microToNano(p.BudgetDayMicroUSD), microToNano(p.BudgetMonthMicroUSD)
	if day == 0 && month == 0 {
		return nil
	}
	m := &quota.Money{BudgetDay: day, BudgetMonth: month}
	if s, ok := g.spend(ctx, p.SubjectType, p.SubjectID, p.Model); ok {
		m.Day, m.SpentDay, m.SpentMonth = s.day, s.spentDay, s.spentMo
	}
	return m
}

// Run forgets snapshots unused, and blocks ended, for snapshotForget, once a minute until ctx
// ends, so the guard holds the active subjects only.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.sweep()
		}
	}
}

func (g *Guard) sweep() {
	cut := time.Now().Add(-snapshotForget)
	g.accounts.sweep(cut)
	g.spends.sweep(cut)
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, until := range g.blocked {
		if until.Before(cut) {
			delete(g.blocked, k)
		}
	}
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

// CostNano floors a record's pico-USD cost to nano-USD, the unit of the limiter's money.
func CostNano(pico int64) int64 {
	if pico <= 0 {
		return 0
	}
	return min(pico/1000, quota.MaxMoney)
}
