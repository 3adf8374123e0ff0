package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// statsRec is a record for the UsageStats tests: cost in pico-USD (< 0: unpriced).
func statsRec(id, tenant, user, model string, status int, cost int64, at time.Time) store.UsageRecord {
	r := store.UsageRecord{RequestID: id, KeyID: "k-" + user, UserID: user, TenantID: tenant, Model: model,
		Deployment: "openai/" + model, Endpoint: "chat/completions", Status: status, PromptTokens: 10,
		CompletionTokens: 2, UsageSource: "provider", StartedAt: at, EndedAt: at.Add(time.Second)}
	if cost >= 0 {
		r.CostPicoUSD = &cost
	}
	return r
}

// statsLine renders a UsageStat for comparison.
func statsLine(st store.UsageStat) string {
	b := ""
	if !st.Bucket.IsZero() {
		b = st.Bucket.Format(time.RFC3339)
	}
	return fmt.Sprintf("%s|%s req=%d err=%d 429=%d in=%d out=%d cost=%s", b, st.Group, st.Requests, st.Errors,
		st.RateLimited, st.PromptTokens, st.CompletionTokens, st.CostPicoUSD)
}

func testUsageStats(t *testing.T, s store.Store) {
	utc := func(m time.Month, d, h, min int) time.Time { return time.Date(2026, m, d, h, min, 0, 0, time.UTC) }
	// Given in a zone west of UTC: the 01:00 UTC record is the evening before there, and must
	// still fall in its UTC day.
	west := time.FixedZone("EST", -5*3600)
	insert(t, s, []store.UsageRecord{
		statsRec("s1", store.DefaultTenant, "u1", "a", 200, 5, utc(4, 15, 10, 5).In(west)),
		statsRec("s2", store.DefaultTenant, "u1", "b", 429, -1, utc(4, 15, 10, 40)),
		statsRec("s3", "t2", "u2", "a", 500, 7, utc(4, 15, 11, 10)),
		statsRec("s4", "t2", "u2", "a", 200, 3, utc(4, 16, 1, 0).In(west)),
		statsRec("s5", store.DefaultTenant, "u1", "b", 200, 1, utc(5, 1, 0, 30)),
	}, 5)
	cases := []struct {
		name string
		f    store.UsageStatsFilter
		want []string
	}{
		{"hour", store.UsageStatsFilter{Bucket: store.BucketHour}, []string{
			"2026-04-15T10:00:00Z| req=2 err=1 429=1 in=20 out=4 cost=5",
			"2026-04-15T11:00:00Z| req=1 err=1 429=0 in=10 out=2 cost=7",
			"2026-04-16T01:00:00Z| req=1 err=0 429=0 in=10 out=2 cost=3",
			"2026-05-01T00:00:00Z| req=1 err=0 429=0 in=10 out=2 cost=1"}},
		{"day", store.UsageStatsFilter{Bucket: store.BucketDay}, []string{
			"2026-04-15T00:00:00Z| req=3 err=2 429=1 in=30 out=6 cost=12",
			"2026-04-16T00:00:00Z| req=1 err=0 429=0 in=10 out=2 cost=3",
			"2026-05-01T00:00:00Z| req=1 err=0 429=0 in=10 out=2 cost=1"}},
		{"month of model a", store.UsageStatsFilter{Bucket: store.BucketMonth, Model: "a"}, []string{
			"2026-04-01T00:00:00Z| req=3 err=1 429=0 in=30 out=6 cost=15"}},
		{"day in range", store.UsageStatsFilter{Bucket: store.BucketDay, From: utc(4, 15, 10, 30), To: utc(4, 16, 1, 0)}, []string{
			"2026-04-15T00:00:00Z| req=2 err=2 429=1 in=20 out=4 cost=7"}},
		{"whole range", store.UsageStatsFilter{}, []string{"| req=5 err=2 429=1 in=50 out=10 cost=16"}},
		{"users by spend", store.UsageStatsFilter{GroupBy: store.GroupUser}, []string{
			"|u2 req=2 err=1 429=0 in=20 out=4 cost=10",
			"|u1 req=3 err=1 429=1 in=30 out=6 cost=6"}},
		{"top tenant", store.UsageStatsFilter{GroupBy: store.GroupTenant, Limit: 1}, []string{
			"|t2 req=2 err=1 429=0 in=20 out=4 cost=10"}},
		{"tenants in April 15", store.UsageStatsFilter{GroupBy: store.GroupTenant, From: utc(4, 15, 0, 0), To: utc(4, 16, 0, 0)}, []string{
			"|t2 req=1 err=1 429=0 in=10 out=2 cost=7",
			"|default req=2 err=1 429=1 in=20 out=4 cost=5"}},
		// Equal cost: more requests first, then the id.
		{"models", store.UsageStatsFilter{GroupBy: store.GroupModel, From: utc(4, 15, 10, 0), To: utc(4, 15, 11, 0)}, []string{
			"|a req=1 err=0 429=0 in=10 out=2 cost=5",
			"|b req=1 err=1 429=1 in=10 out=2 cost=0"}},
		{"keys of one tenant by day", store.UsageStatsFilter{Bucket: store.BucketDay, GroupBy: store.GroupKey, TenantID: "t2"}, []string{
			"2026-04-15T00:00:00Z|k-u2 req=1 err=1 429=0 in=10 out=2 cost=7",
			"2026-04-16T00:00:00Z|k-u2 req=1 err=0 429=0 in=10 out=2 cost=3"}},
		{"one user", store.UsageStatsFilter{UserID: "u1", KeyID: "k-u1"}, []string{"| req=3 err=1 429=1 in=30 out=6 cost=6"}},
		{"nothing", store.UsageStatsFilter{Bucket: store.BucketHour, UserID: "nobody"}, nil},
	}
	for _, tc := range cases {
		got, err := s.UsageStats(ctx(t), tc.f)
		if err != nil {
			t.Fatalf("%s: UsageStats: %v", tc.name, err)
		}
		var lines []string
		for _, st := range got {
			lines = append(lines, statsLine(st))
		}
		if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: UsageStats =\n%s\nwant\n%s", tc.name, strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	for _, f := range []store.UsageStatsFilter{{Bucket: "week"}, {GroupBy: "session"}, {GroupBy: "model; DROP TABLE usage_records"}} {
		if _, err := s.UsageStats(ctx(t), f); err == nil {
			t.Errorf("UsageStats(%+v): no error", f)
		}
	}
}

// testListCreditAccounts: accounts by subject type and id, narrowed by type and by tenant (the
// tenant's own account and its users'), paged.
func testListCreditAccounts(t *testing.T, s store.Store) {
	for _, id := range []string{"ta", "tb"} {
		mustCreateTenant(t, s, id)
	}
	mustCreateUser(t, s, store.User{ID: "ua1", TenantID: "ta"})
	mustCreateUser(t, s, store.User{ID: "ua2", TenantID: "ta"})
	mustCreateUser(t, s, store.User{ID: "ub1", TenantID: "tb"})
	for _, sub := range [][2]string{{"user", "ub1"}, {"tenant", "ta"}, {"user", "ua2"}, {"tenant", "tb"}, {"user", "ua1"}, {"user", "gone"}} {
		a := ensureAccount(t, s, sub[0], sub[1])
		grant(t, s, a.ID, int64(len(sub[1])))
	}
	list := func(f store.CreditAccountFilter) string {
		t.Helper()
		as, err := s.ListCreditAccounts(ctx(t), f)
		if err != nil {
			t.Fatalf("ListCreditAccounts(%+v): %v", f, err)
		}
		var out []string
		for _, a := range as {
			out = append(out, a.SubjectType+"/"+a.SubjectID+"="+a.BalancePicoUSD.String())
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		f    store.CreditAccountFilter
		want string
	}{
		{store.CreditAccountFilter{}, "tenant/ta=2 tenant/tb=2 user/gone=4 user/ua1=3 user/ua2=3 user/ub1=3"},
		{store.CreditAccountFilter{SubjectType: "user", Limit: 2, Offset: 1}, "user/ua1=3 user/ua2=3"},
		{store.CreditAccountFilter{TenantID: "ta"}, "tenant/ta=2 user/ua1=3 user/ua2=3"},
		{store.CreditAccountFilter{TenantID: "tb", SubjectType: "user"}, "user/ub1=3"},
		{store.CreditAccountFilter{TenantID: "nobody"}, ""},
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("ListCreditAccounts(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}
