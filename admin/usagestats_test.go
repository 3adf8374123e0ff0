package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// statsRecord is a usage record for the usage statistics tests; cost in pico-USD, < 0 unpriced.
func statsRecord(id, tenant, user, model string, status int, cost int64, at time.Time) store.UsageRecord {
	r := store.UsageRecord{RequestID: id, KeyID: "k-" + user, UserID: user, TenantID: tenant, Model: model,
		Deployment: "up/" + model, Endpoint: "chat/completions", Status: status, PromptTokens: 100,
		CompletionTokens: 10, UsageSource: "provider", StartedAt: at, EndedAt: at.Add(time.Second)}
	if cost >= 0 {
		r.CostPicoUSD = &cost
	}
	return r
}

// TestUsageSeries: the sums of every hour, day or month of a range, gaps filled with zeros and
// the range widened to whole buckets, with a total; errors and 429s counted apart; bad
// parameters named.
func TestUsageSeries(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
		if _, err := s.store.InsertUsage(context.Background(), []store.UsageRecord{
			statsRecord("r1", store.DefaultTenant, "u1", "gpt-test", 200, 1_500_000, at(10, 9, 5)),
			statsRecord("r2", store.DefaultTenant, "u1", "gpt-test", 429, -1, at(10, 9, 50)),
			statsRecord("r3", "other", "u2", "gpt-big", 502, 0, at(10, 11, 0)),
			statsRecord("r4", "other", "u2", "gpt-big", 200, 4_000_000_000_000, at(11, 0, 1)),
		}); err != nil {
			t.Fatal(err)
		}
		r := c.Must(200, "GET", "/admin/usage/series?bucket=hour&from=2026-03-10T09:30:00Z&to=2026-03-10T11:10:00Z", nil)
		if got := r.JSON("data.#.start").String(); got != `["2026-03-10T09:00:00Z","2026-03-10T10:00:00Z","2026-03-10T11:00:00Z"]` {
			t.Errorf("hour buckets = %s: %s", got, r.Body)
		}
		if got := r.JSON("data.#.requests").String(); got != `[2,0,1]` {
			t.Errorf("requests = %s", got)
		}
		if got := r.JSON("data.#.errors").String() + r.JSON("data.#.rate_limited").String() + r.JSON("data.#.cost_usd").String(); got != `[1,0,1][1,0,0]["0.0000015","0","0"]` {
			t.Errorf("errors, 429s, costs = %s", got)
		}
		if r.JSON("from").String() != "2026-03-10T09:00:00Z" || r.JSON("to").String() != "2026-03-10T12:00:00Z" ||
			r.JSON("bucket").String() != "hour" || r.JSON("total.requests").Int() != 3 || r.JSON("total.prompt_tokens").Int() != 300 {
			t.Errorf("envelope: %s", r.Body)
		}
		d := c.Must(200, "GET", "/admin/usage/series?bucket=day&from=2026-03-10&to=2026-03-12", nil)
		if got := d.JSON("data.#.cost_usd").String(); got != `["0.0000015","4"]` || d.JSON("total.cost_usd").String() != "4.0000015" {
			t.Errorf("days: %s", d.Body)
		}
		m := c.Must(200, "GET", "/admin/usage/series?bucket=month&from=2026-03-05&to=2026-03-06&user_id=u2", nil)
		if got := m.JSON("data.#.requests").String(); got != `[2]` || m.JSON("data.0.start").String() != "2026-03-01T00:00:00Z" {
			t.Errorf("the month of u2: %s", m.Body)
		}
		if n := len(c.Must(200, "GET", "/admin/usage/series?bucket=day", nil).JSON("data").Array()); n != 30 {
			t.Errorf("the default day series has %d buckets, want 30", n)
		}
		if n := len(c.Must(200, "GET", "/admin/usage/series", nil).JSON("data").Array()); n != 24 {
			t.Errorf("the default series has %d buckets, want 24 hours", n)
		}

		c.Refused(400, "bucket", "GET", "/admin/usage/series?bucket=week", nil)
		c.Refused(400, "from", "GET", "/admin/usage/series?from=2026-03-12&to=2026-03-10", nil)
		c.Refused(400, "from", "GET", "/admin/usage/series?bucket=hour&from=2020-01-01&to=2026-01-01", nil)
		c.Refused(400, "to", "GET", "/admin/usage/series?to=tomorrow", nil)

		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "other", "name": "other"})
		scoped := c.As(c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "v", "role": "viewer", "tenant_id": "other"}).JSON("token").String())
		mine := scoped.Must(200, "GET", "/admin/usage/series?bucket=day&from=2026-03-10&to=2026-03-12", nil)
		if got := mine.JSON("data.#.requests").String(); got != `[1,1]` {
			t.Errorf("a token scoped to other sees requests %s, want only its tenant's: %s", got, mine.Body)
		}
		scoped.Refused(403, "tenant_id", "GET", "/admin/usage/series?tenant_id=default", nil)
	})
}

// TestUsageTop: the biggest spenders of a range by user, tenant, model or key, biggest first,
// limited; a scoped token sees its tenant only.
func TestUsageTop(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		at := func(d int) time.Time { return time.Date(2026, 3, d, 12, 0, 0, 0, time.UTC) }
		if _, err := s.store.InsertUsage(context.Background(), []store.UsageRecord{
			statsRecord("r1", store.DefaultTenant, "u1", "gpt-test", 200, 2_000_000, at(1)),
			statsRecord("r2", store.DefaultTenant, "u3", "gpt-test", 200, 1_000_000, at(2)),
			statsRecord("r3", "other", "u2", "gpt-big", 200, 5_000_000, at(3)),
			statsRecord("r4", "other", "u2", "gpt-big", 429, -1, at(4)),
			statsRecord("r5", "other", "u2", "gpt-big", 200, 9_000_000, time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)),
		}); err != nil {
			t.Fatal(err)
		}
		const march = "&from=2026-03-01&to=2026-04-01"
		users := c.Must(200, "GET", "/admin/usage/top?by=user"+march, nil)
		if got := users.JSON("data.#.id").String(); got != `["u2","u1","u3"]` {
			t.Errorf("users by spend = %s: %s", got, users.Body)
		}
		if users.JSON("data.0.cost_usd").String() != "0.000005" || users.JSON("data.0.requests").Int() != 2 ||
			users.JSON("data.0.rate_limited").Int() != 1 || users.JSON("by").String() != "user" {
			t.Errorf("the top user: %s", users.Body)
		}
		tenants := c.Must(200, "GET", "/admin/usage/top?by=tenant&limit=1"+march, nil)
		if got := tenants.JSON("data.#.id").String(); got != `["other"]` {
			t.Errorf("top tenant = %s", got)
		}
		models := c.Must(200, "GET", "/admin/usage/top?by=model&tenant_id=default"+march, nil)
		if got := models.JSON("data.#.id").String() + models.JSON("data.0.cost_usd").String(); got != `["gpt-test"]0.000003` {
			t.Errorf("models of default = %s", got)
		}
		if got := c.Must(200, "GET", "/admin/usage/top?by=key&model=gpt-big&from=2026-03-01&to=2026-05-01", nil).JSON("data.#.cost_usd").String(); got != `["0.000014"]` {
			t.Errorf("keys of gpt-big = %s", got)
		}
		if got := c.Must(200, "GET", "/admin/usage/top", nil).JSON("by").String(); got != "user" {
			t.Errorf("default by = %q", got)
		}

		c.Refused(400, "by", "GET", "/admin/usage/top?by=session", nil)
		c.Refused(400, "limit", "GET", "/admin/usage/top?limit=0", nil)
		c.Refused(400, "limit", "GET", "/admin/usage/top?limit=101", nil)
		c.Refused(400, "from", "GET", "/admin/usage/top?from=2026-04-01&to=2026-03-01", nil)

		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "other", "name": "other"})
		scoped := c.As(c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "b", "role": "billing", "tenant_id": "other"}).JSON("token").String())
		if got := scoped.Must(200, "GET", "/admin/usage/top?by=tenant"+march, nil).JSON("data.#.id").String(); got != `["other"]` {
			t.Errorf("a scoped token's top tenants = %s", got)
		}
		if got := scoped.Must(200, "GET", "/admin/usage/top?by=user"+march, nil).JSON("data.#.id").String(); got != `["u2"]` {
			t.Errorf("a scoped token's top users = %s", got)
		}
		scoped.Refused(403, "tenant_id", "GET", "/admin/usage/top?tenant_id=default", nil)
	})
}

// TestAuditTraceFilter: the usage audit, its CSV export and the statistics' sibling filters
// narrow to one trace or one client request id alongside the other filters, so a search the
// console builds exports as it lists.
func TestAuditTraceFilter(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
		recs := []store.UsageRecord{
			statsRecord("t1", store.DefaultTenant, "u1", "gpt-test", 200, 1, at),
			statsRecord("t2", store.DefaultTenant, "u1", "gpt-test", 200, 1, at.Add(time.Minute)),
			statsRecord("t3", store.DefaultTenant, "u2", "gpt-test", 200, 1, at.Add(2*time.Minute)),
		}
		recs[0].TraceID, recs[1].TraceID, recs[2].TraceID = "trace-a", "trace-b", "trace-a"
		recs[1].ClientRequestID = "client-b"
		if _, err := s.store.InsertUsage(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		for q, want := range map[string]string{
			"traceId=trace-a":           `["t3","t1"]`,
			"traceId=trace-a&userId=u1": `["t1"]`,
			"clientRequestId=client-b":  `["t2"]`,
			"traceId=nothing":           `[]`,
		} {
			if got := c.Must(200, "GET", "/admin/audit?"+q, nil).JSON("data.#.request_id").String(); got != want {
				t.Errorf("audit?%s = %s, want %s", q, got, want)
			}
			csv := c.Must(200, "GET", "/admin/audit.csv?"+q, nil).Body
			if n := len(strings.Split(strings.TrimSpace(csv), "\n")) - 1; n != strings.Count(want, `"`)/2 {
				t.Errorf("audit.csv?%s: %d rows, want those of %s", q, n, want)
			}
		}
	})
}

// TestQuotaTiers: the configured tiers' default limits, by name, with the default tier and the
// session limits, for showing beside the policies that override them.
func TestQuotaTiers(t *testing.T) {
	s := newServer(t, backend{})
	c := s.client(t)
	r := c.Must(200, "GET", "/admin/quota/tiers", nil)
	if got := r.JSON("data.#.name").String(); got != `["open","single","tiny"]` {
		t.Errorf("tiers = %s: %s", got, r.Body)
	}
	if r.JSON("default_tier").String() != "open" || r.JSON(`data.#(name=="tiny").rpm`).Int() != 2 ||
		r.JSON(`data.#(name=="single").concurrent`).Int() != 1 || r.JSON(`data.#(name=="tiny").tokens_per_day`).Int() != 0 ||
		!r.JSON("session").IsObject() {
		t.Errorf("tiers: %s", r.Body)
	}
}

// TestCreditAccountsList: every credit balance, by subject, paged and narrowed by subject type
// and tenant; a scoped token sees its tenant's account and its users' only.
func TestCreditAccountsList(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "acct-a", "name": "a"})
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "acct-u1", "tenant_id": "acct-a"})
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "acct-u2"})
		c.Must(200, "POST", "/admin/credits/user/acct-u1/topup", map[string]any{"amount_usd": "2.5"})
		c.Must(200, "POST", "/admin/credits/user/acct-u2/topup", map[string]any{"amount_usd": "1"})
		c.Must(200, "POST", "/admin/credits/tenant/acct-a/topup", map[string]any{"amount_usd": "10"})

		all := c.Must(200, "GET", "/admin/credits", nil)
		if got := all.JSON("data.#.subject_id").String() + all.JSON("data.#.balance_usd").String(); got != `["acct-a","acct-u1","acct-u2"]["10","2.5","1"]` {
			t.Errorf("accounts = %s", got)
		}
		if all.JSON("data.0.subject_type").String() != "tenant" || all.JSON("data.0.account_id").String() == "" || all.JSON("object").String() != "list" {
			t.Errorf("account view: %s", all.Body)
		}
		p := c.Must(200, "GET", "/admin/credits?subject_type=user&limit=1", nil)
		if p.JSON("data.#.subject_id").String() != `["acct-u1"]` || !p.JSON("has_more").Bool() || p.JSON("next_offset").Int() != 1 {
			t.Errorf("a page of users: %s", p.Body)
		}
		if got := c.Must(200, "GET", "/admin/credits?tenant_id=acct-a", nil).JSON("data.#.subject_id").String(); got != `["acct-a","acct-u1"]` {
			t.Errorf("accounts of acct-a = %s", got)
		}
		c.Refused(400, "subject_type", "GET", "/admin/credits?subject_type=key", nil)
		c.Refused(400, "limit", "GET", "/admin/credits?limit=0", nil)

		scoped := c.As(c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "b", "role": "billing", "tenant_id": "acct-a"}).JSON("token").String())
		if got := scoped.Must(200, "GET", "/admin/credits", nil).JSON("data.#.subject_id").String(); got != `["acct-a","acct-u1"]` {
			t.Errorf("a scoped token sees %s", got)
		}
		scoped.Refused(403, "tenant_id", "GET", "/admin/credits?tenant_id=default", nil)
	})
}
