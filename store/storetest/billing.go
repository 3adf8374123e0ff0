package storetest

import (
	"cmp"
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// rec describes a priced record for the billing tests; toRecord fills in the rest.
type rec struct {
	id                 string
	at                 time.Time
	tenant, user, key  string
	model              string
	cost               *int64
	charge             bool
	prompt, completion int64
	cached, reasoning  int64
	cacheWrite         int64
	// unrouted marks a request that reached no model (no deployment was tried): it stays in the
	// usage records but counts in no rollup.
	unrouted bool
}

func (r rec) toRecord() store.UsageRecord {
	u := store.UsageRecord{
		RequestID: r.id, TenantID: r.tenant, UserID: r.user, KeyID: r.key, Model: r.model,
		UpstreamModel: r.model, Provider: "up", Deployment: "up/" + r.model,
		Endpoint: "chat/completions", Status: 200, UsageSource: "provider",
		PromptTokens: r.prompt, CompletionTokens: r.completion, CachedTokens: r.cached,
		ReasoningTokens: r.reasoning, CacheWriteTokens: r.cacheWrite, CostPicoUSD: r.cost, Charge: r.charge,
		StartedAt: r.at, EndedAt: r.at.Add(time.Second),
	}
	if r.unrouted {
		u.UpstreamModel, u.Provider, u.Deployment, u.UsageSource, u.Status = "", "", "", "", 404
	}
	return u
}

// paidBy names the payer of each record to be charged as billing decides it when accts are the
// credit accounts that exist: the user's account, else the tenant's, else none. The store only
// persists what a record names.
func paidBy(recs []store.UsageRecord, accts ...store.CreditAccount) []store.UsageRecord {
	has := func(typ, id string) bool {
		for _, a := range accts {
			if a.SubjectType == typ && a.SubjectID == id && id != "" {
				return true
			}
		}
		return false
	}
	for i := range recs {
		r := &recs[i]
		switch {
		case !r.Charge:
		case has("user", r.UserID):
			r.PayerType, r.PayerID = "user", r.UserID
		case has("tenant", r.TenantID):
			r.PayerType, r.PayerID = "tenant", r.TenantID
		}
	}
	return recs
}

func records(rs ...rec) []store.UsageRecord {
	out := make([]store.UsageRecord, len(rs))
	for i, r := range rs {
		out[i] = r.toRecord()
	}
	return out
}

// billingMix returns n records spread over three users, two tenants, two keys, three models and
// two UTC days, with costs (some nil), token counts and every fifth record not to be charged.
func billingMix(prefix string, n int) []store.UsageRecord {
	out := make([]store.UsageRecord, n)
	for i := range out {
		r := rec{
			id:     fmt.Sprintf("%s-%04d", prefix, i),
			at:     t0.Add(time.Duration(i/7%2)*24*time.Hour + time.Duration(i)*time.Second),
			tenant: []string{store.DefaultTenant, "acme"}[i%2], user: []string{"u1", "u2", "u3"}[i%3],
			key: []string{"k1", "k2"}[i%2], model: []string{"gpt-4o", "claude", "gemini"}[i/2%3],
			prompt: int64(100 + i), completion: int64(2 * i), cached: int64(i % 7), reasoning: int64(i % 5),
			cacheWrite: int64(i % 3), charge: i%5 != 4,
		}
		if i%4 != 3 {
			r.cost = ptr(int64(1_000_003 * (i + 1)))
		}
		out[i] = r.toRecord()
	}
	return out
}

// wantRollups computes the billing_record rows of a set of records: duplicates (same request id
// and start, to the microsecond) count once, records that reached no model not at all, records
// without a cost in a row of their own with no cost, days are UTC, ordered as BillingRecords
// orders.
func wantRollups(recs []store.UsageRecord) []store.DailyUsage {
	type key struct {
		day                       time.Time
		tenant, user, apiKey, mdl string
		priced                    bool
	}
	seen := map[string]bool{}
	sums := map[key]*store.DailyUsage{}
	for _, r := range recs {
		id := r.RequestID + "@" + r.StartedAt.Truncate(time.Microsecond).UTC().String()
		if seen[id] {
			continue
		}
		seen[id] = true
		if !r.ReachedModel() {
			continue
		}
		y, m, d := r.StartedAt.UTC().Date()
		k := key{time.Date(y, m, d, 0, 0, 0, 0, time.UTC), r.TenantID, r.UserID, r.KeyID, r.Model, r.CostPicoUSD != nil}
		u := sums[k]
		if u == nil {
			u = &store.DailyUsage{Day: k.day, TenantID: k.tenant, UserID: k.user, KeyID: k.apiKey, Model: k.mdl}
			if k.priced {
				u.CostPicoUSD = new(big.Int)
			}
			sums[k] = u
		}
		u.Requests++
		u.PromptTokens += r.PromptTokens
		u.CompletionTokens += r.CompletionTokens
		u.CachedTokens += r.CachedTokens
		u.ReasoningTokens += r.ReasoningTokens
		u.CacheWriteTokens += r.CacheWriteTokens
		if r.CostPicoUSD != nil {
			u.CostPicoUSD.Add(u.CostPicoUSD, big.NewInt(*r.CostPicoUSD))
		}
	}
	out := make([]store.DailyUsage, 0, len(sums))
	for _, u := range sums {
		out = append(out, *u)
	}
	slices.SortFunc(out, compareRollups)
	return out
}

func compareRollups(a, b store.DailyUsage) int {
	return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.TenantID, b.TenantID),
		strings.Compare(a.UserID, b.UserID), strings.Compare(a.KeyID, b.KeyID),
		strings.Compare(a.Model, b.Model), -cmp.Compare(b2i(a.Priced()), b2i(b.Priced())))
}

// b2i orders true before false once negated.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fmtRollups(us []store.DailyUsage) string {
	var b strings.Builder
	for _, u := range us {
		fmt.Fprintf(&b, "\n  %s %q %q %q %q: %d requests, tokens %d/%d/%d/%d/%d, cost %v",
			u.Day.Format(time.DateOnly), u.TenantID, u.UserID, u.KeyID, u.Model, u.Requests,
			u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens, u.CacheWriteTokens, u.CostPicoUSD)
	}
	return b.String()
}

func billing(t *testing.T, s store.Store, f store.BillingFilter) []store.DailyUsage {
	t.Helper()
	us, err := s.BillingRecords(ctx(t), f)
	if err != nil {
		t.Fatalf("BillingRecords(%+v): %v", f, err)
	}
	for _, u := range us {
		if u.Day.Location() != time.UTC || !u.Day.Equal(u.Day.Truncate(24*time.Hour)) {
			t.Fatalf("BillingRecords: row %+v: want a day at midnight UTC", u)
		}
	}
	return us
}

func assertRollups(t *testing.T, what string, got, want []store.DailyUsage) {
	t.Helper()
	if g, w := fmtRollups(got), fmtRollups(want); g != w {
		t.Errorf("%s: rollups%s\nwant%s", what, g, w)
	}
}

// testBillingRollups: a batch over several users, keys, models, tenants and days lands in one
// rollup row per UTC day and group, and BillingRecords filters and pages them.
func testBillingRollups(t *testing.T, s store.Store) {
	recs := billingMix("r", 60)
	// Local days are not billing days: each of these starts on 16 April in India, but only the
	// last on 16 April UTC.
	ist := t0.Location()
	recs = append(recs, records(
		rec{id: "late-1", at: time.Date(2026, 4, 16, 2, 0, 0, 0, ist), tenant: "acme", user: "u1",
			key: "k1", model: "gpt-4o", cost: ptr(int64(7)), prompt: 1},
		rec{id: "late-2", at: time.Date(2026, 4, 16, 5, 29, 59, 999999000, ist), tenant: "acme",
			user: "u1", key: "k1", model: "gpt-4o", cost: ptr(int64(11)), prompt: 2},
		rec{id: "late-3", at: time.Date(2026, 4, 16, 5, 30, 0, 0, ist), tenant: "acme", user: "u1",
			key: "k1", model: "gpt-4o", prompt: 4},
	)...)
	slices.Reverse(recs) // order within a batch does not matter
	insert(t, s, recs, len(recs))

	want := wantRollups(recs)
	if len(want) < 10 {
		t.Fatalf("test bug: only %d rollup groups", len(want))
	}
	assertRollups(t, "all", billing(t, s, store.BillingFilter{}), want)

	day15 := time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
	day16 := day15.AddDate(0, 0, 1)
	keep := func(ok func(u store.DailyUsage) bool) []store.DailyUsage {
		var out []store.DailyUsage
		for _, u := range want {
			if ok(u) {
				out = append(out, u)
			}
		}
		return out
	}
	cases := []struct {
		name string
		f    store.BillingFilter
		want []store.DailyUsage
	}{
		{"user", store.BillingFilter{UserID: "u2"}, keep(func(u store.DailyUsage) bool { return u.UserID == "u2" })},
		{"tenant", store.BillingFilter{TenantID: "acme"}, keep(func(u store.DailyUsage) bool { return u.TenantID == "acme" })},
		{"key and model", store.BillingFilter{KeyID: "k2", Model: "claude"},
			keep(func(u store.DailyUsage) bool { return u.KeyID == "k2" && u.Model == "claude" })},
		{"from a day", store.BillingFilter{From: day16}, keep(func(u store.DailyUsage) bool { return u.Day.Equal(day16) })},
		{"to a day, exclusive", store.BillingFilter{To: day16}, keep(func(u store.DailyUsage) bool { return u.Day.Equal(day15) })},
		// From and To are instants whose UTC day counts: 16 April 03:00 in India is 15 April UTC.
		{"days of instants in another zone", store.BillingFilter{From: time.Date(2026, 4, 16, 3, 0, 0, 0, ist),
			To: time.Date(2026, 4, 16, 23, 0, 0, 0, ist)}, keep(func(u store.DailyUsage) bool { return u.Day.Equal(day15) })},
		{"page", store.BillingFilter{Limit: 3, Offset: 2}, want[2:5]},
		{"no match", store.BillingFilter{UserID: "nobody"}, nil},
	}
	for _, tc := range cases {
		assertRollups(t, tc.name, billing(t, s, tc.f), tc.want)
	}
}

// testBillingOnlyReachedModels: requests that reached no model (an unknown model string, a
// refusal before any deployment was tried) are kept as usage records but make no rollup row and
// count in no rollup, whatever model string they carry; in the same batch as routed ones.
func testBillingOnlyReachedModels(t *testing.T, s store.Store) {
	recs := records(
		rec{id: "routed-1", at: t0, tenant: "acme", user: "u1", key: "k1", model: "gpt-4o", cost: ptr(int64(5)), prompt: 3},
		rec{id: "typo-1", at: t0, tenant: "acme", user: "u1", key: "k1", model: "gtp-4o", unrouted: true},
		rec{id: "typo-2", at: t0, tenant: "acme", user: "u1", key: "k1", model: "anything a client types", unrouted: true},
		rec{id: "refused", at: t0, tenant: "acme", user: "u1", key: "k1", model: "gpt-4o", unrouted: true, prompt: 9},
		rec{id: "routed-2", at: t0.Add(time.Second), tenant: "acme", user: "u1", key: "k1", model: "gpt-4o", cost: ptr(int64(7)), prompt: 4},
	)
	insert(t, s, recs, len(recs))
	insert(t, s, records(rec{id: "typo-3", at: t0, tenant: "acme", user: "u2", key: "k2", model: "nope", unrouted: true}), 1)
	got := billing(t, s, store.BillingFilter{})
	assertRollups(t, "rollups", got, wantRollups(recs))
	if len(got) != 1 || got[0].Model != "gpt-4o" || got[0].Requests != 2 || got[0].PromptTokens != 7 {
		t.Errorf("rollups %s: want one gpt-4o row of the two routed requests", fmtRollups(got))
	}
	if n := len(listUsage(t, s, store.UsageFilter{TenantID: "acme"})); n != len(recs)+1 {
		t.Errorf("usage records: %d, want all %d kept", n, len(recs)+1)
	}
}

// testBillingUnpriced: records without a cost (an unpriced model, a cost that could not be
// computed) sum into a rollup row of their own with no cost, beside the priced row of the same
// group, never into the priced row as $0; Spend counts only the priced rows' cost.
func testBillingUnpriced(t *testing.T, s store.Store) {
	base := rec{at: t0, tenant: "acme", user: "u1", key: "k1", model: "gpt-4o"}
	with := func(id string, cost *int64, prompt, completion, cacheWrite int64) rec {
		r := base
		r.id, r.cost, r.prompt, r.completion, r.cacheWrite = id, cost, prompt, completion, cacheWrite
		return r
	}
	recs := records(
		with("unpriced-1", nil, 10, 20, 3),
		with("priced-1", ptr(int64(500)), 1, 2, 0),
		with("unpriced-2", nil, 100, 200, 0),
	)
	insert(t, s, recs, len(recs))
	insert(t, s, records(with("priced-2", ptr(int64(7)), 4, 5, 1)), 1) // a later batch adds to the priced row
	got := billing(t, s, store.BillingFilter{})
	day := time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
	want := []store.DailyUsage{
		{Day: day, TenantID: "acme", UserID: "u1", KeyID: "k1", Model: "gpt-4o", Requests: 2,
			PromptTokens: 5, CompletionTokens: 7, CacheWriteTokens: 1, CostPicoUSD: big.NewInt(507)},
		{Day: day, TenantID: "acme", UserID: "u1", KeyID: "k1", Model: "gpt-4o", Requests: 2,
			PromptTokens: 110, CompletionTokens: 220, CacheWriteTokens: 3},
	}
	assertRollups(t, "priced and unpriced", got, want)
	month, today, err := s.Spend(ctx(t), store.SpendFilter{SubjectType: "user", SubjectID: "u1", Day: t0})
	if err != nil || month.Int64() != 507 || today.Int64() != 507 {
		t.Errorf("Spend: month %v day %v err %v, want 507 pico-USD (the unpriced rows cost nothing known)", month, today, err)
	}
}

// ledgerState is everything InsertUsage may change besides the usage rows themselves.
type ledgerState struct {
	usage    int
	rollups  string
	accounts string // balances and ledgers, by account
}

func snapshot(t *testing.T, s store.Store, accts ...store.CreditAccount) ledgerState {
	t.Helper()
	var b strings.Builder
	for _, a := range accts {
		got, err := s.CreditAccountOf(ctx(t), a.SubjectType, a.SubjectID)
		if err != nil {
			t.Fatalf("CreditAccountOf(%s %s): %v", a.SubjectType, a.SubjectID, err)
		}
		fmt.Fprintf(&b, "\n%s %s balance %v, charged %v:%s", a.SubjectType, a.SubjectID,
			got.BalancePicoUSD, got.ChargedPicoUSD, fmtEntries(entries(t, s, a.ID)))
	}
	return ledgerState{usage: countUsage(t, s), rollups: fmtRollups(billing(t, s, store.BillingFilter{})),
		accounts: b.String()}
}

func assertSnapshot(t *testing.T, what string, got, want ledgerState) {
	t.Helper()
	if got.usage != want.usage {
		t.Errorf("%s: %d usage rows, want %d", what, got.usage, want.usage)
	}
	if got.rollups != want.rollups {
		t.Errorf("%s: rollups changed:%s\nwant%s", what, got.rollups, want.rollups)
	}
	if got.accounts != want.accounts {
		t.Errorf("%s: accounts changed:%s\nwant%s", what, got.accounts, want.accounts)
	}
}

// chargedTo returns the sum of the costs of the distinct records that are to be charged and have
// a cost, among those for which belongs is true.
func chargedTo(recs []store.UsageRecord, belongs func(r store.UsageRecord) bool) *big.Int {
	sum, seen := new(big.Int), map[string]bool{}
	for _, r := range recs {
		if seen[r.RequestID] || !r.Charge || r.CostPicoUSD == nil || !belongs(r) {
			continue
		}
		seen[r.RequestID] = true
		sum.Add(sum, big.NewInt(*r.CostPicoUSD))
	}
	return sum
}

// testBillingReplay: a replayed batch, in any order, changes no rollup, balance or ledger entry;
// a batch mixing replayed and new records counts and charges only the new ones.
func testBillingReplay(t *testing.T, s store.Store) {
	u1 := ensureAccount(t, s, "user", "u1")
	acme := ensureAccount(t, s, "tenant", "acme")
	grant(t, s, u1.ID, 1_000_000_000_000)

	batch := paidBy(billingMix("b", 40), u1, acme)
	insert(t, s, batch, len(batch))
	first := snapshot(t, s, u1, acme)

	insert(t, s, batch, 0)
	assertSnapshot(t, "replayed batch", snapshot(t, s, u1, acme), first)
	reordered := slices.Clone(batch)
	slices.Reverse(reordered)
	insert(t, s, reordered[:25], 0)
	assertSnapshot(t, "replayed part of the batch, reversed", snapshot(t, s, u1, acme), first)

	more := paidBy(billingMix("c", 30), u1, acme)
	mixed := append(slices.Clone(batch[10:30]), more...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
	insert(t, s, mixed, len(more))
	all := append(slices.Clone(batch), more...)
	assertRollups(t, "after a mixed batch", billing(t, s, store.BillingFilter{}), wantRollups(all))

	// u1 pays for its own records; acme pays for those of its other users (u2, u3). The grant
	// moved u1's balance but is no charge.
	chargedU1 := chargedTo(all, func(r store.UsageRecord) bool { return r.UserID == "u1" })
	chargedAcme := chargedTo(all, func(r store.UsageRecord) bool { return r.UserID != "u1" && r.TenantID == "acme" })
	wantU1 := new(big.Int).Sub(big.NewInt(1_000_000_000_000), chargedU1)
	wantAcme := new(big.Int).Neg(chargedAcme)
	assertBalance(t, s, u1, wantU1)
	assertBalance(t, s, acme, wantAcme)
	assertCharged(t, s, u1, chargedU1)
	assertCharged(t, s, acme, chargedAcme)
	if n, want := len(entries(t, s, u1.ID))+len(entries(t, s, acme.ID)), 1+chargeCount(all, "u1", "acme"); n != want {
		t.Errorf("%d ledger entries, want %d (one grant and one charge per charged record)", n, want)
	}
	insert(t, s, mixed, 0)
	assertBalance(t, s, u1, wantU1)
	assertCharged(t, s, u1, chargedU1)
}

// chargeCount counts the distinct records charged to the user's or the tenant's account.
func chargeCount(recs []store.UsageRecord, user, tenant string) int {
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Charge && r.CostPicoUSD != nil && (r.UserID == user || r.TenantID == tenant) {
			seen[r.RequestID] = true
		}
	}
	return len(seen)
}

// testBillingConcurrentOverlap: goroutines inserting overlapping batches, each in its own order,
// never count or charge a record twice: the rollups are those of the distinct records and the
// balances their charges. In PostgreSQL this also shows overlapping batches do not deadlock.
func testBillingConcurrentOverlap(t *testing.T, s store.Store) {
	u1 := ensureAccount(t, s, "user", "u1")
	u2 := ensureAccount(t, s, "user", "u2")
	acme := ensureAccount(t, s, "tenant", "acme")
	all := paidBy(billingMix("x", 300), u1, u2, acme)
	const writers = 6
	var wg sync.WaitGroup
	news := make([]int, writers*2)
	errs := make([]error, len(news))
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for round := range 2 {
				// 120 records from a start that differs by writer and round, wrapping around.
				from := w*40 + round*100
				batch := make([]store.UsageRecord, 120)
				for i := range batch {
					batch[i] = all[(from+i)%len(all)]
				}
				rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				news[w*2+round], errs[w*2+round] = s.InsertUsage(ctx(t), batch)
			}
		})
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("InsertUsage of writer %d: %v", i/2, err)
		}
		total += news[i]
	}
	// Whatever the writers missed between them comes now, so the expected totals are all's.
	n, err := s.InsertUsage(ctx(t), all)
	if err != nil {
		t.Fatalf("InsertUsage(all): %v", err)
	}
	if total += n; total != len(all) {
		t.Errorf("writers reported %d new records in all, want %d", total, len(all))
	}
	if got := countUsage(t, s); got != len(all) {
		t.Errorf("%d usage rows, want %d", got, len(all))
	}
	assertRollups(t, "after concurrent overlapping batches", billing(t, s, store.BillingFilter{}), wantRollups(all))
	for _, a := range []store.CreditAccount{u1, u2} {
		charged := chargedTo(all, func(r store.UsageRecord) bool { return r.UserID == a.SubjectID })
		assertBalance(t, s, a, new(big.Int).Neg(charged))
		assertCharged(t, s, a, charged)
		if got, want := len(entries(t, s, a.ID)), chargeCount(all, a.SubjectID, ""); got != want {
			t.Errorf("%s has %d ledger entries, want %d", a.SubjectID, got, want)
		}
	}
	charged := chargedTo(all, func(r store.UsageRecord) bool { return r.UserID == "u3" && r.TenantID == "acme" })
	assertBalance(t, s, acme, new(big.Int).Neg(charged))
	assertCharged(t, s, acme, charged)
}

// spend calls Spend, failing t on an error or a nil sum.
func spend(t *testing.T, s store.Store, f store.SpendFilter) (month, day *big.Int) {
	t.Helper()
	month, day, err := s.Spend(ctx(t), f)
	if err != nil {
		t.Fatalf("Spend(%+v): %v", f, err)
	}
	if month == nil || day == nil {
		t.Fatalf("Spend(%+v) = %v, %v: want two sums", f, month, day)
	}
	return month, day
}

// testSpend: Spend sums the cost of one user's, key's or tenant's records, of every model or one,
// over the UTC day asked and over its calendar month: a record of another day of the month counts
// in the month only, one of the month before in neither, another subject's never; charged or not,
// a record's cost is spend. A subject without records has spent 0; an unknown subject type is an
// error.
func testSpend(t *testing.T, s store.Store) {
	ist := t0.Location()
	day := time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
	mine := func(id string, at time.Time, model string, cost *int64, charge bool) rec {
		return rec{id: id, at: at, tenant: "acme", user: "u1", key: "k1", model: model, cost: cost, charge: charge}
	}
	recs := records(
		// 15 April UTC: the day asked.
		mine("d1", day, "gpt-4o", ptr(int64(1)), true),
		mine("d2", day.Add(23*time.Hour+59*time.Minute), "claude", ptr(int64(20)), false),
		mine("d3", time.Date(2026, 4, 16, 5, 29, 0, 0, ist), "gpt-4o", ptr(int64(300)), true), // 15 April 23:59 UTC
		mine("d4", day.Add(time.Hour), "gpt-4o", nil, true),                                   // no price: no spend
		// Earlier in April: the month only.
		mine("m1", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), "gpt-4o", ptr(int64(4_000)), true),
		mine("m2", time.Date(2026, 4, 15, 5, 29, 0, 0, ist), "claude", ptr(int64(50_000)), true), // 14 April 23:59 UTC
		// March: neither.
		mine("p1", time.Date(2026, 3, 31, 23, 59, 59, 999999000, time.UTC), "gpt-4o", ptr(int64(600_000)), true),
		mine("p2", time.Date(2026, 4, 1, 5, 0, 0, 0, ist), "gpt-4o", ptr(int64(7_000_000)), true), // 31 March UTC
		// Other subjects, on the same days.
		rec{id: "o1", at: day, tenant: "acme", user: "u2", key: "k2", model: "gpt-4o", cost: ptr(int64(80_000_000))},
		rec{id: "o2", at: day, tenant: "other", user: "u3", key: "k3", model: "gpt-4o", cost: ptr(int64(900_000_000))},
		rec{id: "o3", at: day, tenant: "acme", user: "", key: "k4", model: "claude", cost: ptr(int64(10_000_000_000))},
	)
	insert(t, s, recs, len(recs))
	insert(t, s, recs, 0) // a replay counts nothing twice

	const (
		d      = 1 + 20 + 300
		month  = d + 4_000 + 50_000
		dGPT   = 1 + 300
		mGPT   = dGPT + 4_000
		dAcme  = d + 80_000_000 + 10_000_000_000
		mAcme  = month + 80_000_000 + 10_000_000_000
		dOther = 900_000_000
	)
	// At noon IST on 16 April it is still 15 April in UTC, the day that counts.
	asked := time.Date(2026, 4, 16, 3, 0, 0, 0, ist)
	cases := []struct {
		f                  store.SpendFilter
		wantMonth, wantDay int64
	}{
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Day: day}, month, d},
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Day: asked}, month, d},
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Day: day.Add(23*time.Hour + 59*time.Minute)}, month, d},
		{store.SpendFilter{SubjectType: "key", SubjectID: "k1", Day: day}, month, d},
		{store.SpendFilter{SubjectType: "tenant", SubjectID: "acme", Day: day}, mAcme, dAcme},
		{store.SpendFilter{SubjectType: "tenant", SubjectID: "other", Day: day}, dOther, dOther},
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Model: "gpt-4o", Day: day}, mGPT, dGPT},
		{store.SpendFilter{SubjectType: "key", SubjectID: "k1", Model: "claude", Day: day}, 20 + 50_000, 20},
		{store.SpendFilter{SubjectType: "tenant", SubjectID: "acme", Model: "claude", Day: day}, 20 + 50_000 + 10_000_000_000, 20 + 10_000_000_000},
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Model: "gemini", Day: day}, 0, 0},
		// 31 March: p1 and p2 are that day's and that month's; April's records are not.
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Day: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)},
			600_000 + 7_000_000, 600_000 + 7_000_000},
		// May: April's records are the month before.
		{store.SpendFilter{SubjectType: "user", SubjectID: "u1", Day: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}, 0, 0},
		// Subjects without records, and ids of one type that exist as another.
		{store.SpendFilter{SubjectType: "user", SubjectID: "nobody", Day: day}, 0, 0},
		{store.SpendFilter{SubjectType: "key", SubjectID: "u1", Day: day}, 0, 0},
		{store.SpendFilter{SubjectType: "tenant", SubjectID: "k1", Day: day}, 0, 0},
	}
	for _, tc := range cases {
		m, dd := spend(t, s, tc.f)
		if m.Cmp(big.NewInt(tc.wantMonth)) != 0 || dd.Cmp(big.NewInt(tc.wantDay)) != 0 {
			t.Errorf("Spend(%s %q, model %q, %s) = month %v, day %v; want %d, %d", tc.f.SubjectType,
				tc.f.SubjectID, tc.f.Model, tc.f.Day.Format(time.RFC3339), m, dd, tc.wantMonth, tc.wantDay)
		}
	}
	for _, typ := range []string{"", "users", "User", "session", "user' OR '1'='1"} {
		if m, dd, err := s.Spend(ctx(t), store.SpendFilter{SubjectType: typ, SubjectID: "u1", Day: day}); err == nil {
			t.Errorf("Spend(subject type %q) = %v, %v; want an error", typ, m, dd)
		}
	}
	// An empty id would sum every record without a user (user_id = ''): refused.
	if m, dd, err := s.Spend(ctx(t), store.SpendFilter{SubjectType: "user", Day: day}); err == nil {
		t.Errorf("Spend(user without an id) = %v, %v; want an error", m, dd)
	}
}
