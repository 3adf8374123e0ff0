package storetest

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

func ensureAccount(t *testing.T, s store.Store, typ, id string) store.CreditAccount {
	t.Helper()
	a, err := s.EnsureCreditAccount(ctx(t), typ, id)
	if err != nil {
		t.Fatalf("EnsureCreditAccount(%s, %s): %v", typ, id, err)
	}
	return a
}

func grant(t *testing.T, s store.Store, accountID string, amount int64) store.CreditEntry {
	t.Helper()
	return addCredit(t, s, accountID, "grant", big.NewInt(amount), "")
}

func addCredit(t *testing.T, s store.Store, accountID, kind string, amount *big.Int, note string) store.CreditEntry {
	t.Helper()
	e, err := s.AddCredit(ctx(t), accountID, kind, amount, note)
	if err != nil {
		t.Fatalf("AddCredit(%s, %s, %v): %v", accountID, kind, amount, err)
	}
	return e
}

func entries(t *testing.T, s store.Store, accountID string) []store.CreditEntry {
	t.Helper()
	es, err := s.CreditEntries(ctx(t), accountID, 1<<20, 0)
	if err != nil {
		t.Fatalf("CreditEntries(%s): %v", accountID, err)
	}
	return es
}

func fmtEntries(es []store.CreditEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  #%d %s %s %v %q %q %s", e.ID, e.AccountID, e.Kind, e.AmountPicoUSD,
			e.RequestID, e.Note, e.CreatedAt.Format(time.RFC3339Nano))
	}
	return b.String()
}

func assertBalance(t *testing.T, s store.Store, a store.CreditAccount, want *big.Int) {
	t.Helper()
	got, err := s.CreditAccountOf(ctx(t), a.SubjectType, a.SubjectID)
	if err != nil {
		t.Fatalf("CreditAccountOf(%s, %s): %v", a.SubjectType, a.SubjectID, err)
	}
	if got.BalancePicoUSD == nil || got.BalancePicoUSD.Cmp(want) != 0 {
		t.Errorf("balance of %s %s = %v, want %v", a.SubjectType, a.SubjectID, got.BalancePicoUSD, want)
	}
}

// assertCharged checks an account's running total of charges.
func assertCharged(t *testing.T, s store.Store, a store.CreditAccount, want *big.Int) {
	t.Helper()
	got, err := s.CreditAccountOf(ctx(t), a.SubjectType, a.SubjectID)
	if err != nil {
		t.Fatalf("CreditAccountOf(%s, %s): %v", a.SubjectType, a.SubjectID, err)
	}
	if got.ChargedPicoUSD == nil || got.ChargedPicoUSD.Cmp(want) != 0 {
		t.Errorf("charged total of %s %s = %v, want %v", a.SubjectType, a.SubjectID, got.ChargedPicoUSD, want)
	}
}

// testChargedTotal: an account's total of charges starts at 0 and rises by exactly what
// InsertUsage charges it, in the same write that lowers its balance by as much, whether the
// record names the user's account or, for a user without one, its tenant's. Records not to be
// charged or without a cost, a replayed batch, a request recorded again under another start time,
// and grants, refunds and adjustments leave it alone.
func testChargedTotal(t *testing.T, s store.Store) {
	payer := ensureAccount(t, s, "user", "payer")
	acme := ensureAccount(t, s, "tenant", "acme")
	for _, a := range []store.CreditAccount{payer, acme} {
		if a.ChargedPicoUSD == nil || a.ChargedPicoUSD.Sign() != 0 {
			t.Errorf("new account %s %s: charged total %v, want 0", a.SubjectType, a.SubjectID, a.ChargedPicoUSD)
		}
	}
	grant(t, s, payer.ID, 1_000_000)
	addCredit(t, s, acme.ID, "adjust", big.NewInt(-5), "")
	assertCharged(t, s, payer, new(big.Int))
	assertCharged(t, s, acme, new(big.Int))

	batch := records(
		rec{id: "c1", at: t0, tenant: "acme", user: "payer", key: "k1", model: "m", cost: ptr(int64(100)), charge: true},
		rec{id: "c2", at: t0, tenant: "acme", user: "payer", key: "k1", model: "m2", cost: ptr(int64(23)), charge: true},
		rec{id: "c3", at: t0, tenant: "acme", user: "guest", key: "k2", model: "m", cost: ptr(int64(400)), charge: true},
		rec{id: "c4", at: t0, tenant: "acme", user: "", key: "k3", model: "m", cost: ptr(int64(5000)), charge: true},
		rec{id: "c5", at: t0, tenant: "acme", user: "payer", key: "k1", model: "m", cost: ptr(int64(60_000)), charge: false},
		rec{id: "c6", at: t0, tenant: "acme", user: "guest", key: "k2", model: "m", cost: nil, charge: true},
		rec{id: "c7", at: t0, tenant: "lonely", user: "stranger", key: "k4", model: "m", cost: ptr(int64(700_000)), charge: true},
	)
	paidBy(batch, payer, acme)
	insert(t, s, batch, len(batch))
	assertBalance(t, s, payer, big.NewInt(1_000_000-123))
	assertCharged(t, s, payer, big.NewInt(123))
	assertBalance(t, s, acme, big.NewInt(-5-5400))
	assertCharged(t, s, acme, big.NewInt(5400))

	before := snapshot(t, s, payer, acme)
	insert(t, s, batch, 0)
	again := rec{id: "c1", at: t0.Add(time.Hour), tenant: "acme", user: "payer", key: "k1", model: "m", cost: ptr(int64(100)), charge: true}
	insert(t, s, paidBy(records(again), payer, acme), 1) // a new usage row, but r1 is charged already
	after := snapshot(t, s, payer, acme)
	if after.accounts != before.accounts {
		t.Errorf("replayed batch and re-recorded request: accounts changed:%s\nwant%s", after.accounts, before.accounts)
	}

	addCredit(t, s, payer.ID, "refund", big.NewInt(23), "")
	addCredit(t, s, payer.ID, "adjust", big.NewInt(-77), "")
	grant(t, s, acme.ID, 10_000)
	assertBalance(t, s, payer, big.NewInt(1_000_000-123+23-77))
	assertCharged(t, s, payer, big.NewInt(123))
	assertBalance(t, s, acme, big.NewInt(-5-5400+10_000))
	assertCharged(t, s, acme, big.NewInt(5400))

	// Later charges add to the total; one to be charged at cost 0 adds nothing, and is no error.
	insert(t, s, paidBy(records(
		rec{id: "c8", at: t0.AddDate(0, 0, 1), tenant: "acme", user: "payer", key: "k1", model: "m", cost: ptr(int64(1_000)), charge: true},
		rec{id: "c9", at: t0.AddDate(0, 0, 1), tenant: "acme", user: "guest", key: "k2", model: "m", cost: ptr(int64(0)), charge: true},
	), payer, acme), 2)
	assertBalance(t, s, payer, big.NewInt(1_000_000-123+23-77-1_000))
	assertCharged(t, s, payer, big.NewInt(1_123))
	assertCharged(t, s, acme, big.NewInt(5400))
	if a, err := s.EnsureCreditAccount(ctx(t), "user", "payer"); err != nil || a.ChargedPicoUSD == nil ||
		a.ChargedPicoUSD.Cmp(big.NewInt(1_123)) != 0 {
		t.Errorf("EnsureCreditAccount of an existing account = %+v, %v; want its charged total 1123", a, err)
	}
}

// testCharges: a charged record is charged to the account it names (here as billing names them:
// its user's, else its tenant's, else nobody's); a record not to be charged, or without a cost,
// is charged nothing.
func testCharges(t *testing.T, s store.Store) {
	payer := ensureAccount(t, s, "user", "payer")
	acme := ensureAccount(t, s, "tenant", "acme")
	def := ensureAccount(t, s, "tenant", store.DefaultTenant) // never charged: no record below is in it
	grant(t, s, payer.ID, 1_000_000)
	recs := records(
		rec{id: "r1", at: t0, tenant: "acme", user: "payer", key: "k1", model: "m", cost: ptr(int64(100)), charge: true},
		rec{id: "r2", at: t0, tenant: "acme", user: "guest", key: "k2", model: "m", cost: ptr(int64(200)), charge: true},
		rec{id: "r3", at: t0, tenant: "lonely", user: "guest2", key: "k3", model: "m", cost: ptr(int64(300)), charge: true},
		rec{id: "r4", at: t0, tenant: "acme", user: "payer", key: "k1", model: "m", cost: ptr(int64(400)), charge: false},
		rec{id: "r5", at: t0, tenant: "acme", user: "payer", key: "k1", model: "m", cost: nil, charge: true},
		rec{id: "r6", at: t0, tenant: "acme", user: "", key: "k4", model: "m", cost: ptr(int64(600)), charge: true},
	)
	paidBy(recs, payer, acme, def)
	insert(t, s, recs, len(recs))

	assertBalance(t, s, payer, big.NewInt(1_000_000-100))
	assertBalance(t, s, acme, big.NewInt(-200-600))
	es := entries(t, s, payer.ID)
	if len(es) != 2 || es[0].Kind != "charge" || es[1].Kind != "grant" {
		t.Fatalf("payer's ledger:%s\nwant the charge of r1, then the grant", fmtEntries(es))
	}
	assertCharge(t, es[0], payer.ID, "r1", 100)
	es = entries(t, s, acme.ID)
	slices.SortFunc(es, func(a, b store.CreditEntry) int { return strings.Compare(a.RequestID, b.RequestID) })
	if len(es) != 2 {
		t.Fatalf("acme's ledger:%s\nwant the charges of r2 and r6", fmtEntries(es))
	}
	assertCharge(t, es[0], acme.ID, "r2", 200)
	assertCharge(t, es[1], acme.ID, "r6", 600)
	if es := entries(t, s, ensureAccount(t, s, "tenant", store.DefaultTenant).ID); len(es) != 0 {
		t.Errorf("the default tenant was charged:%s", fmtEntries(es))
	}
	// An account made later is not charged for records written before it existed.
	lonely := ensureAccount(t, s, "tenant", "lonely")
	insert(t, s, recs, 0)
	assertBalance(t, s, lonely, new(big.Int))
}

func assertCharge(t *testing.T, e store.CreditEntry, accountID, requestID string, cost int64) {
	t.Helper()
	if e.Kind != "charge" || e.AccountID != accountID || e.RequestID != requestID ||
		e.AmountPicoUSD == nil || e.AmountPicoUSD.Cmp(big.NewInt(-cost)) != 0 || e.ID == 0 || e.CreatedAt.IsZero() {
		t.Errorf("charge entry %+v, want account %s, request %s, amount %d, an id and a time",
			e, accountID, requestID, -cost)
	}
}

// testChargeOncePerRequest: the ledger keys charges by request id alone, so a request recorded
// again under another start time (a new usage row, counted in the rollups) is not charged again.
func testChargeOncePerRequest(t *testing.T, s store.Store) {
	a := ensureAccount(t, s, "user", "u1")
	first := rec{id: "req-1", at: t0, tenant: "acme", user: "u1", key: "k1", model: "m", cost: ptr(int64(500)), charge: true}
	again := first
	again.at = t0.Add(time.Hour)
	insert(t, s, paidBy(records(first), a), 1)
	insert(t, s, paidBy(records(again), a), 1)
	assertBalance(t, s, a, big.NewInt(-500))
	if es := entries(t, s, a.ID); len(es) != 1 {
		t.Errorf("ledger:%s\nwant one charge", fmtEntries(es))
	}
	if us := billing(t, s, store.BillingFilter{}); len(us) != 1 || us[0].Requests != 2 ||
		us[0].CostPicoUSD.Cmp(big.NewInt(1000)) != 0 {
		t.Errorf("rollups%s\nwant one row of 2 requests costing 1000", fmtRollups(us))
	}
	// Both in one batch, under yet other start times: still one charge.
	third, fourth := first, first
	third.at, fourth.at = t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	insert(t, s, paidBy(records(third, fourth), a), 2)
	assertBalance(t, s, a, big.NewInt(-500))
}

// testBigMoney: costs near the int64 maximum are exact in rollups, balances, the accounts' totals
// of charges and the ledger; sums beyond int64 are exact too, or, for a store with Int64Money,
// fail and change nothing.
func testBigMoney(t *testing.T, s store.Store, cfg config) {
	const top = math.MaxInt64
	a := ensureAccount(t, s, "user", "whale")
	grant(t, s, a.ID, top)
	r1 := rec{id: "big-1", at: t0, tenant: "acme", user: "whale", key: "k", model: "m", cost: ptr(int64(top - 7)), charge: true}
	r2 := rec{id: "big-2", at: t0.AddDate(0, 0, 1), tenant: "acme", user: "whale", key: "k", model: "m", cost: ptr(int64(top - 11)), charge: true}
	insert(t, s, paidBy(records(r1), a), 1)
	assertBalance(t, s, a, big.NewInt(7))
	assertCharged(t, s, a, big.NewInt(top-7))

	bigTop := big.NewInt(top)
	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)
	// r3 falls in r1's rollup row, whose cost then passes int64.
	r3 := r1
	r3.id = "big-3"
	if cfg.int64Money {
		// r2 would leave the balance in range (7 − (2⁶³−12)) but take the account's total of
		// charges past it.
		before := snapshot(t, s, a)
		for _, r := range []rec{r2, r3} {
			if _, err := s.InsertUsage(ctx(t), paidBy(records(r), a)); err == nil {
				t.Errorf("InsertUsage of %s, taking a money sum beyond int64: no error", r.id)
			}
		}
		if _, err := s.AddCredit(ctx(t), a.ID, "grant", huge, ""); err == nil {
			t.Errorf("AddCredit(10³⁰): no error")
		}
		assertSnapshot(t, "after writes beyond int64", snapshot(t, s, a), before)
		addCredit(t, s, a.ID, "adjust", big.NewInt(-top), "") // to 7 − (2⁶³−1): in range
		before = snapshot(t, s, a)
		if _, err := s.AddCredit(ctx(t), a.ID, "adjust", big.NewInt(-top), ""); err == nil {
			t.Errorf("AddCredit taking the balance below int64: no error")
		}
		assertSnapshot(t, "after an adjustment beyond int64", snapshot(t, s, a), before)
		return
	}
	insert(t, s, paidBy(records(r2), a), 1)
	assertBalance(t, s, a, big.NewInt(-top+18))
	twice := new(big.Int).Sub(new(big.Int).Mul(bigTop, big.NewInt(2)), big.NewInt(18))
	assertCharged(t, s, a, twice)

	sum := new(big.Int)
	for _, u := range billing(t, s, store.BillingFilter{UserID: "whale"}) {
		sum.Add(sum, u.CostPicoUSD)
	}
	if sum.Cmp(twice) != 0 {
		t.Errorf("rollup costs sum to %v, want %v", sum, twice)
	}
	es := entries(t, s, a.ID)
	if len(es) != 3 || es[0].AmountPicoUSD.Cmp(big.NewInt(-(top-11))) != 0 ||
		es[2].AmountPicoUSD.Cmp(bigTop) != 0 {
		t.Errorf("ledger:%s\nwant the two charges, then the grant, exact", fmtEntries(es))
	}

	insert(t, s, paidBy(records(r3), a), 1)
	us := billing(t, s, store.BillingFilter{UserID: "whale", To: t0.AddDate(0, 0, 1)})
	if want := new(big.Int).Sub(new(big.Int).Mul(bigTop, big.NewInt(2)), big.NewInt(14)); len(us) != 1 ||
		us[0].CostPicoUSD.Cmp(want) != 0 || us[0].Requests != 2 {
		t.Errorf("rollup of r1 and r3:%s\nwant 2 requests costing %v", fmtRollups(us), want)
	}
	balance := big.NewInt(-top + 18)
	balance.Sub(balance, big.NewInt(top-7))
	assertBalance(t, s, a, balance)
	assertCharged(t, s, a, new(big.Int).Add(twice, big.NewInt(top-7)))
	balance.Sub(balance, bigTop)
	addCredit(t, s, a.ID, "adjust", new(big.Int).Neg(bigTop), "beyond int64")
	assertBalance(t, s, a, balance)
	e := addCredit(t, s, a.ID, "grant", huge, "")
	assertBalance(t, s, a, balance.Add(balance, huge))
	assertCharged(t, s, a, new(big.Int).Add(twice, big.NewInt(top-7)))
	if es := entries(t, s, a.ID); es[0].ID != e.ID || es[0].AmountPicoUSD.Cmp(huge) != 0 {
		t.Errorf("newest entry %s, want the grant of %v", fmtEntries(es[:1]), huge)
	}
}

func price(model string, from time.Time, in, out int64, version string) store.ModelPrice {
	return store.ModelPrice{Model: model, InputPerM: in, OutputPerM: out, CachedInputPerM: in / 2,
		ReasoningPerM: out * 2, EffectiveFrom: from, Version: version}
}

func fmtPrices(ps []store.ModelPrice) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  %s %s %d/%d/%d/%d/%d images %v audio %d chars %d request %d from %s", p.Model, p.Version, p.InputPerM,
			p.OutputPerM, p.CachedInputPerM, p.ReasoningPerM, p.CacheWritePerM, p.ImagePrices, p.AudioSecond, p.CharactersPerM, p.Request,
			p.EffectiveFrom.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}

// testPrices: Prices(at) is, per model, the latest version effective at or before at, at several
// instants; PriceHistory lists a model's versions newest first; every field round-trips.
func testPrices(t *testing.T, s store.Store) {
	c := ctx(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	gpt1 := price("gpt-4o", base, 2_500_000, 10_000_000, "gpt-1")
	gpt2 := price("gpt-4o", base.Add(30*day).In(t0.Location()), 2_000_000, 8_000_000, "gpt-2")
	gpt3 := price("gpt-4o", base.Add(60*day+time.Microsecond), 1, 2, "gpt-3")
	claude := price("claude", base.Add(10*day), 3_000_000, 15_000_000, "claude-1")
	claude.CacheWritePerM = 3_750_000                                // a cache-write price round-trips
	gemini := price("gemini", base.Add(90*day), 0, 0, "gemini-free") // free is a price, not no price
	// Unit prices round-trip beside the token prices (an image model priced per image and per
	// request; audio and speech prices on another version).
	gpt2.ImagePrices = map[string]int64{"1024x1024": 40_000, "hd/1024x1024": 80_000, "default": 1}
	gpt2.Request = 7
	gpt3.AudioSecond, gpt3.CharactersPerM = 100, 15_000_000
	for _, p := range []store.ModelPrice{gpt3, gpt1, claude, gemini, gpt2} {
		if err := s.PutPrice(c, p); err != nil {
			t.Fatalf("PutPrice(%s): %v", p.Version, err)
		}
	}
	cases := []struct {
		at   time.Time
		want []store.ModelPrice
	}{
		{base.Add(-time.Microsecond), nil},
		{base, []store.ModelPrice{gpt1}}, // effective_from is inclusive
		{base.Add(10*day - time.Microsecond), []store.ModelPrice{gpt1}},
		{base.Add(10 * day).In(t0.Location()), []store.ModelPrice{claude, gpt1}},
		{base.Add(45 * day), []store.ModelPrice{claude, gpt2}},
		{base.Add(60 * day), []store.ModelPrice{claude, gpt2}},
		{base.Add(60*day + time.Microsecond), []store.ModelPrice{claude, gpt3}},
		{base.Add(365 * day), []store.ModelPrice{claude, gemini, gpt3}},
	}
	for _, tc := range cases {
		got, err := s.Prices(c, tc.at)
		if err != nil {
			t.Fatalf("Prices(%v): %v", tc.at, err)
		}
		if g, w := fmtPrices(got), fmtPrices(tc.want); g != w {
			t.Errorf("Prices(%v):%s\nwant%s", tc.at, g, w)
		}
	}
	hist, err := s.PriceHistory(c, "gpt-4o")
	if err != nil {
		t.Fatalf("PriceHistory: %v", err)
	}
	if g, w := fmtPrices(hist), fmtPrices([]store.ModelPrice{gpt3, gpt2, gpt1}); g != w {
		t.Errorf("PriceHistory(gpt-4o):%s\nwant%s", g, w)
	}
	for _, p := range hist {
		if p.EffectiveFrom.Location() != time.UTC {
			t.Errorf("EffectiveFrom %v is not in UTC", p.EffectiveFrom)
		}
	}
	if hist, err := s.PriceHistory(c, "unknown"); err != nil || len(hist) != 0 {
		t.Errorf("PriceHistory(unknown) = %v, %v; want none", hist, err)
	}
}

// testPriceConflict: a second version at the same (model, effective_from) is ErrConflict and
// leaves the first; invalid prices are refused.
func testPriceConflict(t *testing.T, s store.Store) {
	c := ctx(t)
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	first := price("gpt-4o", at, 1, 2, "v1")
	if err := s.PutPrice(c, first); err != nil {
		t.Fatalf("PutPrice: %v", err)
	}
	if err := s.PutPrice(c, price("gpt-4o", at.In(t0.Location()), 3, 4, "v2")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutPrice at the same instant: err = %v, want ErrConflict", err)
	}
	if err := s.PutPrice(c, price("claude", at, 3, 4, "c1")); err != nil {
		t.Errorf("PutPrice of another model at the same instant: %v", err)
	}
	for _, bad := range []store.ModelPrice{price("", at, 1, 1, "x"), price("m", time.Time{}, 1, 1, "x"),
		price("m", at, -1, 1, "x")} {
		if err := s.PutPrice(c, bad); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("PutPrice(%+v): err = %v, want a validation error", bad, err)
		}
	}
	got, err := s.PriceHistory(c, "gpt-4o")
	if err != nil || fmtPrices(got) != fmtPrices([]store.ModelPrice{first}) {
		t.Errorf("PriceHistory after the conflict = %s, %v; want only the first", fmtPrices(got), err)
	}
}

func testCreditAccounts(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreditAccountOf(c, "user", "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreditAccountOf before any: err = %v, want ErrNotFound", err)
	}
	a := ensureAccount(t, s, "user", "u1")
	if a.ID == "" || a.SubjectType != "user" || a.SubjectID != "u1" || a.BalancePicoUSD == nil ||
		a.BalancePicoUSD.Sign() != 0 || a.CreatedAt.IsZero() || a.UpdatedAt.IsZero() {
		t.Errorf("new account = %+v, want an id, the subject, a zero balance and times", a)
	}
	grant(t, s, a.ID, 42)
	again := ensureAccount(t, s, "user", "u1")
	if again.ID != a.ID || again.BalancePicoUSD.Cmp(big.NewInt(42)) != 0 {
		t.Errorf("second EnsureCreditAccount = %+v, want the same account with its balance of 42", again)
	}
	if got, err := s.CreditAccountOf(c, "user", "u1"); err != nil || got.ID != a.ID {
		t.Errorf("CreditAccountOf = %+v, %v; want %s", got, err, a.ID)
	}
	if tn := ensureAccount(t, s, "tenant", "u1"); tn.ID == a.ID {
		t.Errorf("tenant u1 and user u1 share account %s", a.ID)
	}
	for _, bad := range [][2]string{{"key", "k1"}, {"", "u1"}, {"user", ""}} {
		if _, err := s.EnsureCreditAccount(c, bad[0], bad[1]); err == nil {
			t.Errorf("EnsureCreditAccount(%q, %q): no error", bad[0], bad[1])
		}
	}
}

// testCreditAccountConcurrentEnsure: callers racing to create one account get one account.
func testCreditAccountConcurrentEnsure(t *testing.T, s store.Store) {
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			a, err := s.EnsureCreditAccount(ctx(t), "tenant", "acme")
			ids[i], errs[i] = a.ID, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent EnsureCreditAccount: %v", err)
	}
	slices.Sort(ids)
	if distinct := slices.Compact(ids); len(distinct) != 1 {
		t.Errorf("concurrent EnsureCreditAccount made accounts %v, want one", distinct)
	}
}

// testAddCredit: grants, refunds and adjustments (negative ones too) move the balance and append
// entries, listed newest first and paged; charges, unknown kinds and senseless amounts are
// refused, and an unknown account is ErrNotFound; none of these writes anything.
func testAddCredit(t *testing.T, s store.Store) {
	c := ctx(t)
	a := ensureAccount(t, s, "user", "u1")
	other := ensureAccount(t, s, "user", "u2")
	amount := big.NewInt(1000)
	e1 := addCredit(t, s, a.ID, "grant", amount, "welcome")
	amount.SetInt64(1) // the entry and the balance took a copy
	e2 := addCredit(t, s, a.ID, "refund", big.NewInt(250), "")
	e3 := addCredit(t, s, a.ID, "adjust", big.NewInt(-300), "correction ' \\ %")
	grant(t, s, other.ID, 5)
	assertBalance(t, s, a, big.NewInt(950))
	if e1.AmountPicoUSD.Cmp(big.NewInt(1000)) != 0 || e1.Kind != "grant" || e1.Note != "welcome" ||
		e1.AccountID != a.ID || e1.RequestID != "" || e1.ID == 0 || e1.CreatedAt.IsZero() {
		t.Errorf("AddCredit returned %+v", e1)
	}
	if e1.ID >= e2.ID || e2.ID >= e3.ID || e2.CreatedAt.Before(e1.CreatedAt) || e3.CreatedAt.Before(e2.CreatedAt) {
		t.Errorf("entries %d, %d, %d at %v, %v, %v: want increasing ids and times",
			e1.ID, e2.ID, e3.ID, e1.CreatedAt, e2.CreatedAt, e3.CreatedAt)
	}

	refused := []struct {
		kind   string
		amount *big.Int
	}{{"charge", big.NewInt(-5)}, {"charge", big.NewInt(5)}, {"bonus", big.NewInt(5)}, {"", big.NewInt(5)},
		{"grant", big.NewInt(0)}, {"grant", big.NewInt(-5)}, {"refund", big.NewInt(-5)},
		{"adjust", big.NewInt(0)}, {"grant", nil}}
	for _, r := range refused {
		if _, err := s.AddCredit(c, a.ID, r.kind, r.amount, ""); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("AddCredit(%q, %v): err = %v, want a validation error", r.kind, r.amount, err)
		}
	}
	if _, err := s.AddCredit(c, "ca_nope", "grant", big.NewInt(5), ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddCredit to an unknown account: err = %v, want ErrNotFound", err)
	}
	assertBalance(t, s, a, big.NewInt(950))

	want := []store.CreditEntry{e3, e2, e1}
	if g, w := fmtEntries(entries(t, s, a.ID)), fmtEntries(want); g != w {
		t.Errorf("CreditEntries:%s\nwant%s", g, w)
	}
	paged, err := s.CreditEntries(c, a.ID, 2, 1)
	if err != nil {
		t.Fatalf("CreditEntries(limit 2, offset 1): %v", err)
	}
	if g, w := fmtEntries(paged), fmtEntries(want[1:]); g != w {
		t.Errorf("CreditEntries(limit 2, offset 1):%s\nwant%s", g, w)
	}
	if es, err := s.CreditEntries(c, "ca_nope", 0, 0); err != nil || len(es) != 0 {
		t.Errorf("CreditEntries(unknown) = %v, %v; want none", es, err)
	}
}

// testCreditHistory: an account's ledger a page at a time from a point in time on (the admin
// API's 24h / 7d / 30d views), with the totals per kind of the same span.
func testCreditHistory(t *testing.T, s store.Store) {
	c := ctx(t)
	a := ensureAccount(t, s, "user", "u1")
	other := ensureAccount(t, s, "user", "u2")
	e1 := addCredit(t, s, a.ID, "grant", big.NewInt(1000), "")
	time.Sleep(5 * time.Millisecond) // distinct times, on every store's clock resolution
	e2 := addCredit(t, s, a.ID, "grant", big.NewInt(500), "")
	e3 := addCredit(t, s, a.ID, "adjust", big.NewInt(-300), "")
	e4 := addCredit(t, s, a.ID, "refund", big.NewInt(20), "")
	grant(t, s, other.ID, 7)

	since := e2.CreatedAt
	for _, tc := range []struct {
		since         time.Time
		limit, offset int
		want          []store.CreditEntry
	}{
		{time.Time{}, 100, 0, []store.CreditEntry{e4, e3, e2, e1}},
		{time.Time{}, 2, 1, []store.CreditEntry{e3, e2}},
		{time.Time{}, 2, 4, nil},
		{since, 100, 0, []store.CreditEntry{e4, e3, e2}},
		{since, 1, 2, []store.CreditEntry{e2}},
		{e4.CreatedAt.Add(time.Second), 100, 0, nil},
	} {
		got, err := s.CreditHistory(c, a.ID, tc.since, tc.limit, tc.offset)
		if err != nil {
			t.Fatalf("CreditHistory(since %v, %d, %d): %v", tc.since, tc.limit, tc.offset, err)
		}
		if g, w := fmtEntries(got), fmtEntries(tc.want); g != w {
			t.Errorf("CreditHistory(since %v, limit %d, offset %d):%s\nwant%s", tc.since, tc.limit, tc.offset, g, w)
		}
	}

	fmtTotals := func(ts []store.CreditTotal) string {
		var b strings.Builder
		for _, x := range ts {
			fmt.Fprintf(&b, " %s:%d:%v", x.Kind, x.Entries, x.AmountPicoUSD)
		}
		return b.String()
	}
	for _, tc := range []struct {
		since time.Time
		want  string
	}{
		{time.Time{}, " adjust:1:-300 grant:2:1500 refund:1:20"},
		{since, " adjust:1:-300 grant:1:500 refund:1:20"},
		{e4.CreatedAt.Add(time.Second), ""},
	} {
		got, err := s.CreditTotals(c, a.ID, tc.since)
		if err != nil {
			t.Fatalf("CreditTotals(since %v): %v", tc.since, err)
		}
		if g := fmtTotals(got); g != tc.want {
			t.Errorf("CreditTotals(since %v) =%s, want%s", tc.since, g, tc.want)
		}
	}
	if ts, err := s.CreditTotals(c, "ca_nope", time.Time{}); err != nil || len(ts) != 0 {
		t.Errorf("CreditTotals(unknown) = %v, %v; want none", ts, err)
	}
}
