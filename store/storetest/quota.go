package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// policy returns a policy of (typ, id, model) with the given limits.
func policy(typ, id, model string, rpm, tpm, perDay, concurrent *int64) store.QuotaPolicy {
	return store.QuotaPolicy{SubjectType: typ, SubjectID: id, Model: model, RPM: rpm, TPM: tpm,
		TokensPerDay: perDay, Concurrent: concurrent}
}

func mustPutPolicy(t *testing.T, s store.Store, p store.QuotaPolicy) {
	t.Helper()
	if err := s.PutQuotaPolicy(ctx(t), p); err != nil {
		t.Fatalf("PutQuotaPolicy(%s): %v", policyKey(p), err)
	}
}

func listPolicies(t *testing.T, s store.Store, typ, id string) []store.QuotaPolicy {
	t.Helper()
	ps, err := s.QuotaPolicies(ctx(t), typ, id)
	if err != nil {
		t.Fatalf("QuotaPolicies(%q, %q): %v", typ, id, err)
	}
	return ps
}

// onePolicy returns the policy of (typ, id, model), failing t when there is not exactly one.
func onePolicy(t *testing.T, s store.Store, typ, id, model string) store.QuotaPolicy {
	t.Helper()
	var found []store.QuotaPolicy
	for _, p := range listPolicies(t, s, typ, id) {
		if p.Model == model {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d policies of (%q, %q, %q), want 1: %+v", len(found), typ, id, model, found)
	}
	return found[0]
}

func policyKey(p store.QuotaPolicy) string {
	return fmt.Sprintf("(%q, %q, %q)", p.SubjectType, p.SubjectID, p.Model)
}

func policyKeys(ps []store.QuotaPolicy) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = policyKey(p)
	}
	return out
}

// comparePolicies is the documented order: subject type, subject id, model, each in byte order.
func comparePolicies(a, b store.QuotaPolicy) int {
	return cmp.Or(strings.Compare(a.SubjectType, b.SubjectType),
		strings.Compare(a.SubjectID, b.SubjectID), strings.Compare(a.Model, b.Model))
}

// assertPolicy compares everything but UpdatedAt, telling a nil limit or budget from 0.
func assertPolicy(t *testing.T, got, want store.QuotaPolicy) {
	t.Helper()
	if got.SubjectType != want.SubjectType || got.SubjectID != want.SubjectID ||
		got.Model != want.Model || !limitEqual(got.RPM, want.RPM) || !limitEqual(got.TPM, want.TPM) ||
		!limitEqual(got.TokensPerDay, want.TokensPerDay) || !limitEqual(got.Concurrent, want.Concurrent) ||
		!limitEqual(got.BudgetDayMicroUSD, want.BudgetDayMicroUSD) ||
		!limitEqual(got.BudgetMonthMicroUSD, want.BudgetMonthMicroUSD) {
		t.Errorf("policy = %s\nwant     %s", fmtPolicy(got), fmtPolicy(want))
	}
}

func limitEqual(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func fmtPolicy(p store.QuotaPolicy) string {
	return fmt.Sprintf("%s rpm=%v tpm=%v tokens/day=%v concurrent=%v budget/day=%v budget/month=%v updated=%v",
		policyKey(p), deref(p.RPM), deref(p.TPM), deref(p.TokensPerDay), deref(p.Concurrent),
		deref(p.BudgetDayMicroUSD), deref(p.BudgetMonthMicroUSD), p.UpdatedAt)
}

// testQuotaPolicyUpsert: a second Put of the same (subject, model) replaces every limit, including
// setting one back to NULL, instead of adding a row.
func testQuotaPolicyUpsert(t *testing.T, s store.Store) {
	if ps := listPolicies(t, s, "", ""); len(ps) != 0 {
		t.Fatalf("QuotaPolicies on an empty store = %+v, want none", ps)
	}
	first := policy("user", "u1", "gpt-4o", ptr(int64(60)), ptr(int64(100_000)), ptr(int64(1_000_000)), ptr(int64(4)))
	mustPutPolicy(t, s, first)
	assertPolicy(t, onePolicy(t, s, "user", "u1", "gpt-4o"), first)

	second := policy("user", "u1", "gpt-4o", nil, ptr(int64(200_000)), ptr(int64(0)), nil)
	mustPutPolicy(t, s, second)
	ps := listPolicies(t, s, "user", "u1")
	if len(ps) != 1 {
		t.Fatalf("after replacing: %d policies %v, want 1", len(ps), policyKeys(ps))
	}
	assertPolicy(t, ps[0], second)

	// Back from NULL to a value, and the every-model policy replaces the same way.
	third := policy("user", "u1", "gpt-4o", ptr(int64(1)), nil, nil, ptr(int64(0)))
	mustPutPolicy(t, s, third)
	assertPolicy(t, onePolicy(t, s, "user", "u1", "gpt-4o"), third)
	mustPutPolicy(t, s, policy("user", "u1", "", ptr(int64(10)), ptr(int64(10)), nil, nil))
	mustPutPolicy(t, s, policy("user", "u1", "", nil, nil, nil, nil))
	assertPolicy(t, onePolicy(t, s, "user", "u1", ""), policy("user", "u1", "", nil, nil, nil, nil))
	if ps := listPolicies(t, s, "", ""); len(ps) != 2 {
		t.Errorf("QuotaPolicies() = %v, want 2 policies", policyKeys(ps))
	}
}

// testQuotaPolicyModels: the every-model policy and model-specific ones of one subject are
// separate rows, and one subject's policies do not touch another's, even with the same id.
func testQuotaPolicyModels(t *testing.T, s store.Store) {
	all := policy("key", "k1", "", ptr(int64(100)), nil, nil, nil)
	gpt := policy("key", "k1", "gpt-4o", ptr(int64(10)), nil, nil, nil)
	claude := policy("key", "k1", "claude-sonnet", nil, ptr(int64(5000)), nil, nil)
	sameIDUser := policy("user", "k1", "", ptr(int64(7)), nil, nil, nil)
	for _, p := range []store.QuotaPolicy{gpt, all, sameIDUser, claude} {
		mustPutPolicy(t, s, p)
	}
	got := listPolicies(t, s, "key", "k1")
	want := []store.QuotaPolicy{all, claude, gpt} // every-model first, then by model
	if !slices.Equal(policyKeys(got), policyKeys(want)) {
		t.Fatalf("QuotaPolicies(key, k1) = %v, want %v", policyKeys(got), policyKeys(want))
	}
	for i := range want {
		assertPolicy(t, got[i], want[i])
	}
	// Replacing the every-model policy leaves the model-specific ones alone, and the reverse.
	mustPutPolicy(t, s, policy("key", "k1", "", ptr(int64(200)), nil, nil, nil))
	mustPutPolicy(t, s, policy("key", "k1", "gpt-4o", ptr(int64(20)), nil, nil, nil))
	assertPolicy(t, onePolicy(t, s, "key", "k1", ""), policy("key", "k1", "", ptr(int64(200)), nil, nil, nil))
	assertPolicy(t, onePolicy(t, s, "key", "k1", "gpt-4o"), policy("key", "k1", "gpt-4o", ptr(int64(20)), nil, nil, nil))
	assertPolicy(t, onePolicy(t, s, "key", "k1", "claude-sonnet"), claude)
	assertPolicy(t, onePolicy(t, s, "user", "k1", ""), sameIDUser)
}

// testQuotaPolicyList: every subject's policies when subjectType is empty, one subject's
// otherwise, in the documented order whatever the order they were written in.
func testQuotaPolicyList(t *testing.T, s store.Store) {
	var want []store.QuotaPolicy
	for _, typ := range []string{"user", "tenant", "key"} {
		// Ids and models whose byte order differs from a case-insensitive or natural order.
		for _, id := range []string{"b", "B", "a10", "a2", "a"} {
			for _, model := range []string{"gpt-4o", "", "Claude", "claude"} {
				want = append(want, policy(typ, id, model, ptr(int64(len(want))), nil, nil, nil))
			}
		}
	}
	// Write them in a scrambled order.
	for i := range want {
		mustPutPolicy(t, s, want[(i*7)%len(want)])
	}
	slices.SortFunc(want, comparePolicies)

	got := listPolicies(t, s, "", "")
	if !slices.Equal(policyKeys(got), policyKeys(want)) {
		t.Fatalf("QuotaPolicies() = %v\nwant %v", policyKeys(got), policyKeys(want))
	}
	for i := range want {
		assertPolicy(t, got[i], want[i])
	}
	if got := listPolicies(t, s, "", "a"); len(got) != len(want) {
		t.Errorf("QuotaPolicies(\"\", a) = %d policies, want all %d (an empty type means every subject)",
			len(got), len(want))
	}
	for _, subj := range [][2]string{{"tenant", "a"}, {"key", "B"}, {"user", "a10"}} {
		var one []store.QuotaPolicy
		for _, p := range want {
			if p.SubjectType == subj[0] && p.SubjectID == subj[1] {
				one = append(one, p)
			}
		}
		got := listPolicies(t, s, subj[0], subj[1])
		if !slices.Equal(policyKeys(got), policyKeys(one)) {
			t.Errorf("QuotaPolicies(%q, %q) = %v, want %v", subj[0], subj[1], policyKeys(got), policyKeys(one))
		}
	}
	for _, subj := range [][2]string{{"user", "c"}, {"user", ""}, {"group", "a"}, {"User", "a"}} {
		if got := listPolicies(t, s, subj[0], subj[1]); len(got) != 0 {
			t.Errorf("QuotaPolicies(%q, %q) = %v, want none", subj[0], subj[1], policyKeys(got))
		}
	}
}

// testQuotaPolicyLimits: nil (inherit) and 0 (unlimited) are different values and every
// combination of them, and the extremes of int64, round-trip exactly.
func testQuotaPolicyLimits(t *testing.T, s store.Store) {
	values := []*int64{nil, ptr(int64(0)), ptr(int64(1)), ptr(int64(-1)), ptr(int64(1<<63 - 1))}
	var want []store.QuotaPolicy
	for i := range 16 {
		// Each limit is nil or 0 by one bit of i, so all 16 combinations appear.
		pick := func(bit int) *int64 { return values[(i>>bit)&1] }
		want = append(want, policy("user", fmt.Sprintf("u%02d", i), "", pick(0), pick(1), pick(2), pick(3)))
	}
	for i, v := range values[2:] {
		want = append(want, policy("key", fmt.Sprintf("k%d", i), "m", v, v, v, v))
	}
	for _, p := range want {
		mustPutPolicy(t, s, p)
	}
	got := listPolicies(t, s, "", "")
	slices.SortFunc(want, comparePolicies)
	if len(got) != len(want) {
		t.Fatalf("QuotaPolicies() = %d policies, want %d", len(got), len(want))
	}
	for i := range want {
		assertPolicy(t, got[i], want[i])
	}
}

// budgeted returns p with the given day and month budgets.
func budgeted(p store.QuotaPolicy, day, month *int64) store.QuotaPolicy {
	p.BudgetDayMicroUSD, p.BudgetMonthMicroUSD = day, month
	return p
}

// testQuotaPolicyBudgets: the day and month budgets round-trip as the limits do (nil and 0 are
// different values, the extremes of int64 are kept), a second Put replaces them, nil included,
// and a model-specific policy keeps budgets of its own beside the every-model policy's.
func testQuotaPolicyBudgets(t *testing.T, s store.Store) {
	values := []*int64{nil, ptr(int64(0)), ptr(int64(1)), ptr(int64(2_500_000)), ptr(int64(1<<63 - 1))}
	var want []store.QuotaPolicy
	for i, day := range values {
		for j, month := range values {
			// Limits beside the budgets, so a budget cannot be read from a limit's column.
			p := policy("user", fmt.Sprintf("u%d%d", i, j), "", ptr(int64(7)), nil, ptr(int64(9)), nil)
			want = append(want, budgeted(p, day, month))
		}
	}
	for _, p := range want {
		mustPutPolicy(t, s, p)
	}
	got := listPolicies(t, s, "", "")
	if len(got) != len(want) {
		t.Fatalf("QuotaPolicies() = %d policies, want %d", len(got), len(want))
	}
	for i := range want {
		assertPolicy(t, got[i], want[i])
	}

	// Replacing: a value becomes another, a value becomes nil and nil a value, limits alike.
	first := budgeted(policy("tenant", "acme", "", nil, nil, nil, nil), ptr(int64(1_000_000)), ptr(int64(20_000_000)))
	mustPutPolicy(t, s, first)
	assertPolicy(t, onePolicy(t, s, "tenant", "acme", ""), first)
	for _, next := range []store.QuotaPolicy{
		budgeted(policy("tenant", "acme", "", nil, nil, nil, nil), ptr(int64(5)), nil),
		budgeted(policy("tenant", "acme", "", ptr(int64(60)), nil, nil, nil), nil, ptr(int64(0))),
		budgeted(policy("tenant", "acme", "", nil, nil, nil, nil), nil, nil),
		budgeted(policy("tenant", "acme", "", nil, nil, nil, nil), ptr(int64(0)), ptr(int64(3))),
	} {
		mustPutPolicy(t, s, next)
		assertPolicy(t, onePolicy(t, s, "tenant", "acme", ""), next)
	}

	// A model's policy and the every-model one hold their own budgets; writing one leaves the other.
	every := budgeted(policy("key", "k1", "", nil, nil, nil, nil), ptr(int64(100)), ptr(int64(1000)))
	gpt := budgeted(policy("key", "k1", "gpt-4o", nil, nil, nil, nil), ptr(int64(10)), nil)
	mustPutPolicy(t, s, every)
	mustPutPolicy(t, s, gpt)
	assertPolicy(t, onePolicy(t, s, "key", "k1", ""), every)
	assertPolicy(t, onePolicy(t, s, "key", "k1", "gpt-4o"), gpt)
	gpt = budgeted(gpt, nil, ptr(int64(50)))
	mustPutPolicy(t, s, gpt)
	assertPolicy(t, onePolicy(t, s, "key", "k1", ""), every)
	assertPolicy(t, onePolicy(t, s, "key", "k1", "gpt-4o"), gpt)
	every = budgeted(every, nil, nil)
	mustPutPolicy(t, s, every)
	assertPolicy(t, onePolicy(t, s, "key", "k1", ""), every)
	assertPolicy(t, onePolicy(t, s, "key", "k1", "gpt-4o"), gpt)
	if err := s.DeleteQuotaPolicy(ctx(t), "key", "k1", "gpt-4o"); err != nil {
		t.Fatalf("DeleteQuotaPolicy(key, k1, gpt-4o): %v", err)
	}
	assertPolicy(t, onePolicy(t, s, "key", "k1", ""), every)
}

// testQuotaPolicyDelete: Delete removes exactly the policy named, model "" being the every-model
// one, and reports ErrNotFound for one that does not exist.
func testQuotaPolicyDelete(t *testing.T, s store.Store) {
	c := ctx(t)
	mustPutPolicy(t, s, policy("user", "u1", "", ptr(int64(1)), nil, nil, nil))
	mustPutPolicy(t, s, policy("user", "u1", "gpt-4o", ptr(int64(2)), nil, nil, nil))
	mustPutPolicy(t, s, policy("user", "u2", "", ptr(int64(3)), nil, nil, nil))
	mustPutPolicy(t, s, policy("tenant", "u1", "", ptr(int64(4)), nil, nil, nil))

	if err := s.DeleteQuotaPolicy(c, "user", "u1", "gpt-4o"); err != nil {
		t.Fatalf("DeleteQuotaPolicy(user, u1, gpt-4o): %v", err)
	}
	if got := policyKeys(listPolicies(t, s, "", "")); !slices.Equal(got, []string{
		`("tenant", "u1", "")`, `("user", "u1", "")`, `("user", "u2", "")`}) {
		t.Errorf("after deleting the gpt-4o policy: %v", got)
	}
	if err := s.DeleteQuotaPolicy(c, "user", "u1", "gpt-4o"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteQuotaPolicy: err = %v, want ErrNotFound", err)
	}
	for _, k := range [][3]string{
		{"user", "u2", "gpt-4o"}, // the subject has only an every-model policy
		{"user", "nobody", ""},
		{"key", "u1", ""},
		{"", "", ""},
	} {
		if err := s.DeleteQuotaPolicy(c, k[0], k[1], k[2]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteQuotaPolicy(%q, %q, %q): err = %v, want ErrNotFound", k[0], k[1], k[2], err)
		}
	}
	if err := s.DeleteQuotaPolicy(c, "user", "u1", ""); err != nil {
		t.Fatalf("DeleteQuotaPolicy(user, u1, every model): %v", err)
	}
	if got := policyKeys(listPolicies(t, s, "", "")); !slices.Equal(got, []string{
		`("tenant", "u1", "")`, `("user", "u2", "")`}) {
		t.Errorf("after deleting the every-model policy of u1: %v", got)
	}
	// A deleted policy can be put again.
	mustPutPolicy(t, s, policy("user", "u1", "", nil, ptr(int64(9)), nil, nil))
	assertPolicy(t, onePolicy(t, s, "user", "u1", ""), policy("user", "u1", "", nil, ptr(int64(9)), nil, nil))
}

// testQuotaPolicyMetacharacters: subject ids and models full of SQL and LIKE metacharacters are
// stored and matched exactly, never as patterns, by QuotaPolicies and DeleteQuotaPolicy.
func testQuotaPolicyMetacharacters(t *testing.T, s store.Store) {
	c := ctx(t)
	nasty := []string{`%`, `_`, `a%`, `a_c`, `\`, `\%`, `'`, `' OR '1'='1`,
		`"; DROP TABLE quota_policies; --`, `$1`, `?`, "nul\x01byte", "ünïcødé ✓", "abc ", " abc"}
	// Plain values that a pattern, a case-insensitive or a space-trimming comparison would match.
	plain := []string{"abc", "ABC", "a", "aXc", "x", "shared"}
	// Every subject has an every-model policy, one for the model spelled like its id and one for a
	// model all subjects share.
	policies := func(i int, v string) []store.QuotaPolicy {
		return []store.QuotaPolicy{
			policy("user", v, "", ptr(int64(i)), nil, nil, nil),
			policy("user", v, "shared", nil, nil, ptr(int64(i)), nil),
			policy("user", v, v, nil, ptr(int64(i)), nil, nil),
		}
	}
	values := append(slices.Clone(nasty), plain...)
	for i, v := range values {
		for _, p := range policies(i, v) {
			mustPutPolicy(t, s, p)
		}
	}
	for i, v := range values {
		want := policies(i, v)
		slices.SortFunc(want, comparePolicies)
		want = slices.CompactFunc(want, func(a, b store.QuotaPolicy) bool { return policyKey(a) == policyKey(b) })
		got := listPolicies(t, s, "user", v)
		if !slices.Equal(policyKeys(got), policyKeys(want)) {
			t.Errorf("QuotaPolicies(user, %q) = %v, want %v", v, policyKeys(got), policyKeys(want))
			continue
		}
		if v == "shared" {
			continue // its "shared" policy was put twice, with different limits
		}
		for j := range want {
			assertPolicy(t, got[j], want[j])
		}
	}
	all := listPolicies(t, s, "", "")
	if total := 3*len(values) - 1; len(all) != total || !slices.IsSortedFunc(all, comparePolicies) {
		t.Errorf("QuotaPolicies() = %v, want %d policies in byte order", policyKeys(all), total)
	}

	// Each delete removes its own row and nothing a pattern would have matched: first the policy of
	// the model spelled like the id, then the every-model one.
	for _, v := range nasty {
		for _, model := range []string{v, ""} {
			if err := s.DeleteQuotaPolicy(c, "user", v, model); err != nil {
				t.Errorf("DeleteQuotaPolicy(user, %q, %q): %v", v, model, err)
			}
		}
	}
	for i, v := range values {
		want := policies(i, v)
		if slices.Contains(nasty, v) {
			want = want[1:2] // only the shared model's
		}
		slices.SortFunc(want, comparePolicies)
		want = slices.CompactFunc(want, func(a, b store.QuotaPolicy) bool { return policyKey(a) == policyKey(b) })
		if got := listPolicies(t, s, "user", v); !slices.Equal(policyKeys(got), policyKeys(want)) {
			t.Errorf("after the deletes, QuotaPolicies(user, %q) = %v, want %v", v, policyKeys(got), policyKeys(want))
		}
	}
}

// testQuotaPolicyUpdatedAt: Put sets UpdatedAt to the time of the call whatever the caller
// passes, to the microsecond in UTC, and a later Put moves it forward.
func testQuotaPolicyUpdatedAt(t *testing.T, s store.Store) {
	p := policy("tenant", "acme", "", ptr(int64(1)), nil, nil, nil)
	p.UpdatedAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) // ignored
	put := func() time.Time {
		t.Helper()
		before := time.Now().Truncate(time.Microsecond)
		mustPutPolicy(t, s, p)
		after := time.Now()
		got := onePolicy(t, s, "tenant", "acme", "").UpdatedAt
		if got.Before(before) || got.After(after) {
			t.Errorf("UpdatedAt = %v, want between %v and %v", got, before, after)
		}
		if got.Location() != time.UTC || !got.Equal(got.Truncate(time.Microsecond)) {
			t.Errorf("UpdatedAt = %v, want a UTC time to the microsecond", got)
		}
		return got
	}
	first := put()
	time.Sleep(2 * time.Millisecond)
	p.RPM = ptr(int64(2))
	second := put()
	if !second.After(first) {
		t.Errorf("UpdatedAt after replacing = %v, want after the first %v", second, first)
	}
	// A Put that changes no value is still an update.
	time.Sleep(2 * time.Millisecond)
	if third := put(); !third.After(second) {
		t.Errorf("UpdatedAt after an identical Put = %v, want after %v", third, second)
	}
	// Putting another model leaves this policy's UpdatedAt alone.
	time.Sleep(2 * time.Millisecond)
	last := onePolicy(t, s, "tenant", "acme", "").UpdatedAt
	mustPutPolicy(t, s, policy("tenant", "acme", "gpt-4o", nil, nil, nil, nil))
	if got := onePolicy(t, s, "tenant", "acme", "").UpdatedAt; !got.Equal(last) {
		t.Errorf("UpdatedAt of the every-model policy moved to %v when another model was put", got)
	}
}

// testQuotaPolicyConcurrentPut: writers racing on one policy (admin calls on several replicas)
// all succeed and leave one row holding one writer's values.
func testQuotaPolicyConcurrentPut(t *testing.T, s store.Store) {
	const writers = 8
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			for _, model := range []string{"", "gpt-4o"} {
				if err := s.PutQuotaPolicy(c, policy("key", "k1", model, ptr(int64(i)), nil, nil, nil)); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent PutQuotaPolicy: %v", err)
	}
	got := listPolicies(t, s, "key", "k1")
	if len(got) != 2 {
		t.Fatalf("QuotaPolicies(key, k1) = %v, want 2 policies", policyKeys(got))
	}
	for _, p := range got {
		if p.RPM == nil || *p.RPM < 0 || *p.RPM >= writers {
			t.Errorf("%s: RPM = %v, want one writer's value", policyKey(p), deref(p.RPM))
		}
	}
}
