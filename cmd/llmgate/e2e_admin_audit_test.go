package main

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/admin/admintest"
)

// The later steps of TestAdminResourcesEndToEnd: admin tokens, the quota, pricing and credit
// changes, and the admin audit log that must record every change of the run.

// tokens: one of each role, shown once, listed by prefix only; each works; revocation and expiry
// end them.
func (w *admWorld) tokens() {
	t, c := w.t, w.c
	made := map[string]admintest.Resp{}
	for _, role := range []string{"admin", "viewer", "billing"} {
		r := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "t-" + role, "role": role})
		plain := r.JSON("token").String()
		w.secrets = append(w.secrets, plain)
		if !strings.HasPrefix(plain, "lga-") || len(plain) < 32 || !strings.HasPrefix(plain, r.JSON("prefix").String()) ||
			len(r.JSON("prefix").String()) >= len(plain)/2 || r.JSON("role").String() != role || r.JSON("tenant_id").String() != "" ||
			r.JSON("created_by").String() != "bootstrap" || r.JSON("revoked_at").Type != gjson.Null {
			t.Errorf("created %s token: %s", role, r.Body)
		}
		made[role] = r
	}
	w.adminID = made["admin"].JSON("id").String()
	list := c.Must(200, "GET", "/admin/tokens?limit=1000", nil)
	for role, r := range made {
		if !slices.Contains(list.IDs(), r.JSON("id").String()) {
			t.Errorf("the %s token is not listed", role)
		}
		if g := c.Must(200, "GET", "/admin/tokens/"+r.JSON("id").String(), nil); g.JSON("token").Exists() || g.JSON("prefix").String() != r.JSON("prefix").String() {
			t.Errorf("GET token: %s", g.Body)
		}
	}
	for _, it := range list.JSON("data").Array() {
		if it.Get("token").Exists() || it.Get("prefix").String() == "" {
			t.Errorf("listed token: %s", it.Raw)
		}
	}
	if ids := c.Must(200, "GET", "/admin/tokens?role=viewer", nil).IDs(); !slices.Equal(ids, []string{made["viewer"].JSON("id").String()}) {
		t.Errorf("tokens?role=viewer: %v", ids)
	}
	if ids := c.Must(200, "GET", "/admin/tokens?name=t-bill", nil).IDs(); !slices.Equal(ids, []string{made["billing"].JSON("id").String()}) {
		t.Errorf("tokens?name=t-bill: %v", ids)
	}

	// each works, with its role's reach
	admin, viewer, billing := c.As(made["admin"].JSON("token").String()), c.As(made["viewer"].JSON("token").String()), c.As(made["billing"].JSON("token").String())
	admin.Must(201, "POST", "/admin/users", map[string]any{"id": "u-by-token", "tenant_id": "beta"})
	child := admin.Must(201, "POST", "/admin/tokens", map[string]any{"name": "child", "role": "viewer"})
	w.secrets = append(w.secrets, child.JSON("token").String())
	if child.JSON("created_by").String() != w.adminID {
		t.Errorf("a token made by a token: created_by %q, want %q", child.JSON("created_by").String(), w.adminID)
	}
	viewer.Must(200, "GET", "/admin/keys", nil)
	viewer.Refused(403, "", "POST", "/admin/users", map[string]any{"id": "u-no"})
	billing.Must(200, "GET", "/admin/pricing", nil)
	billing.Refused(403, "", "GET", "/admin/users", nil)
	if g := c.Must(200, "GET", "/admin/tokens/"+w.adminID, nil); g.JSON("last_used_at").Type == gjson.Null {
		t.Errorf("a used token has no last_used_at: %s", g.Body)
	}

	for _, tc := range []struct {
		param string
		body  map[string]any
	}{
		{"role", map[string]any{"name": "x", "role": "root"}},
		{"role", map[string]any{"name": "x"}},
		{"name", map[string]any{"name": "", "role": "viewer"}},
		{"expires_at", map[string]any{"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}},
		{"tenant_id", map[string]any{"name": "x", "role": "viewer", "tenant_id": "no-such-tenant"}},
		{"tenant_id", map[string]any{"name": "x", "role": "viewer", "tenant_id": "doomed"}}, // deleted
	} {
		c.Refused(400, tc.param, "POST", "/admin/tokens", tc.body)
	}
	c.Refused(400, "role", "GET", "/admin/tokens?role=root", nil)
	c.Refused(404, "id", "GET", "/admin/tokens/no-such-token", nil)

	// revocation: refused within the token cache's TTL (at once on this replica)
	rv := c.Must(200, "DELETE", "/admin/tokens/"+made["viewer"].JSON("id").String(), nil)
	if rv.JSON("revoked_at").Type == gjson.Null || rv.JSON("token").Exists() {
		t.Errorf("revoked token: %s", rv.Body)
	}
	start := time.Now()
	waitFor(t, 3*time.Second, "the revoked token to be refused", func() bool { return viewer.Do("GET", "/admin/keys", nil).Status == 401 })
	t.Logf("a revoked admin token was refused after %v", time.Since(start))
	admintest.CheckError(t, viewer.Do("GET", "/admin/keys", nil), 401, "", "revoked token")
	if again := c.Must(200, "DELETE", "/admin/tokens/"+made["viewer"].JSON("id").String(), nil); again.JSON("revoked_at").String() != rv.JSON("revoked_at").String() {
		t.Errorf("revoking a token again moved revoked_at")
	}

	// expiry
	soon := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "soon", "role": "viewer", "expires_at": futureRFC3339(3 * time.Second)})
	w.secrets = append(w.secrets, soon.JSON("token").String())
	st := c.As(soon.JSON("token").String())
	st.Must(200, "GET", "/admin/keys", nil)
	waitFor(t, 10*time.Second, "the expired token to be refused", func() bool { return st.Do("GET", "/admin/keys", nil).Status == 401 })
	for _, bad := range []string{"lga-short", "lga-" + strings.Repeat("0", 64), made["viewer"].JSON("prefix").String()} {
		c.As(bad).Refused(401, "", "GET", "/admin/keys", nil)
	}
}

// policiesPricesCredits makes the quota, pricing and credit changes the audit log must show.
func (w *admWorld) policiesPricesCredits() {
	t, c := w.t, w.c
	c.Must(200, "PUT", "/admin/quota/policy/u-alice", map[string]any{"userRpm": 50, "userConcurrent": 4})
	if g := c.Must(200, "GET", "/admin/quota/policy/u-alice", nil); g.JSON("effective.userRpm").Int() != 50 || g.JSON("effective.userConcurrent").Int() != 4 {
		t.Errorf("user policy: %s", g.Body)
	}
	c.Must(204, "DELETE", "/admin/quota/policy/u-alice", nil)
	c.Must(200, "PUT", "/admin/quota/policies/user/u-carol", map[string]any{"rpm": 30, "budget_usd_per_month": "12.5"})
	p := c.Must(200, "PUT", "/admin/pricing/audit-model", map[string]any{"input_per_million": "1.25", "output_per_million": 2.5})
	if p.JSON("input_per_million").Float() != 1.25 || p.JSON("output_per_million").Float() != 2.5 {
		t.Errorf("price: %s", p.Body)
	}
	g := c.Must(200, "POST", "/admin/credits/user/u-carol/topup", map[string]any{"amount_usd": "10", "note": "welcome"})
	if g.JSON("balance_usd").Float() != 10 {
		t.Errorf("after a 10 USD top-up: %s", g.Body)
	}
	a := c.Must(200, "POST", "/admin/credits/user/u-carol/adjust", map[string]any{"amount_usd": "-2.5", "note": "refund reversed"})
	if a.JSON("balance_usd").Float() != 7.5 {
		t.Errorf("after a -2.5 USD adjustment: %s", a.Body)
	}
	c.Refused(400, "amount_usd", "POST", "/admin/credits/user/u-carol/topup", map[string]any{"amount_usd": "-1"})
	c.Must(204, "DELETE", "/admin/quota/session/s-1", nil)
}

// auditLog: every change above is in /admin/audit-log with its actor, action, target, tenant and
// secret-free before and after; the filters narrow it; no secret shows anywhere.
func (w *admWorld) auditLog() {
	t, c := w.t, w.c
	all := c.Must(200, "GET", "/admin/audit-log?limit=1000", nil)
	entries := all.JSON("data").Array()
	actions := map[string]int{}
	for _, en := range entries {
		actions[en.Get("action").String()]++
		if en.Get("request_id").String() == "" || en.Get("at").String() == "" || en.Get("actor").String() == "" || en.Get("target").String() == "" {
			t.Errorf("incomplete audit entry: %s", en.Raw)
		}
	}
	for _, a := range []string{"tenant.create", "tenant.update", "tenant.delete", "user.create", "user.update", "user.delete",
		"key.create", "key.update", "key.rotate", "key.revoke", "token.create", "token.revoke",
		"quota_policy.put", "quota_policy.delete", "price.put", "credit.grant", "credit.adjust", "quota_session.clear"} {
		if actions[a] == 0 {
			t.Errorf("no %s entry in the audit log (actions: %v)", a, actions)
		}
	}
	find := func(action, target string) gjson.Result {
		for _, en := range entries {
			if en.Get("action").String() == action && en.Get("target").String() == target {
				return en
			}
		}
		t.Errorf("no %s entry for %s", action, target)
		return gjson.Result{}
	}
	if en := find("tenant.create", "acme"); en.Get("actor").String() != "bootstrap" || en.Get("tenant_id").String() != "acme" ||
		en.Get("before").Type != gjson.Null || en.Get("after.name").String() != "Acme Corp" || en.Get("after.limits.rpm").Int() != 100 {
		t.Errorf("tenant.create: %s", en.Raw)
	}
	if en := find("user.update", "u-alice"); en.Get("before.tier").String() != "tiny" || en.Get("after.tier").String() != "open" || en.Get("tenant_id").String() != "acme" {
		t.Errorf("user.update: %s", en.Raw)
	}
	if en := find("user.create", "u-by-token"); en.Get("actor").String() != w.adminID || en.Get("tenant_id").String() != "beta" {
		t.Errorf("a change made with a token must name the token (%s): %s", w.adminID, en.Raw)
	}
	if en := find("key.create", w.k1ID); en.Get("after.name").String() != "k1-main" || en.Get("tenant_id").String() != "acme" ||
		en.Get("after.key").Exists() || en.Get("after.prefix").String() == "" || en.Get("request_id").String() != w.k1RequestID || w.k1RequestID == "" {
		t.Errorf("key.create: %s", en.Raw)
	}
	if en := find("key.revoke", w.k1ID); en.Get("before.status").String() != "active" || en.Get("after.status").String() != "revoked" {
		t.Errorf("key.revoke: %s", en.Raw)
	}
	if en := find("quota_policy.put", "user/u-carol"); en.Get("tenant_id").String() != "beta" || en.Get("after.0.rpm").Int() != 30 {
		t.Errorf("quota_policy.put: %s", en.Raw)
	}
	if en := find("price.put", "audit-model"); en.Get("tenant_id").String() != "" || en.Get("after.input_per_million").Float() != 1.25 {
		t.Errorf("price.put: %s", en.Raw)
	}
	if en := find("credit.grant", "user/u-carol"); en.Get("tenant_id").String() != "beta" || en.Get("before.balance_usd").Float() != 0 || en.Get("after.balance_usd").Float() != 10 {
		t.Errorf("credit.grant: %s", en.Raw)
	}
	revokes := 0
	for _, en := range entries {
		if en.Get("action").String() == "key.revoke" && en.Get("target").String() == w.k1ID {
			revokes++
		}
	}
	if revokes != 1 {
		t.Errorf("revoking a key twice wrote %d key.revoke entries, want 1", revokes)
	}

	// no secret anywhere: the audit log, the lists, the single reads
	bodies := map[string]string{"audit-log": all.Body,
		"keys":   c.Must(200, "GET", "/admin/keys?limit=1000", nil).Body,
		"tokens": c.Must(200, "GET", "/admin/tokens?limit=1000", nil).Body,
		"key":    c.Must(200, "GET", "/admin/keys/"+w.k1ID, nil).Body}
	for name, body := range bodies {
		for _, s := range w.secrets {
			if s != "" && strings.Contains(body, s) {
				t.Errorf("%s shows a secret (%.10s…)", name, s)
			}
		}
	}

	// filters
	count := func(q string) (int, []gjson.Result) {
		r := c.Must(200, "GET", "/admin/audit-log?limit=1000&"+q, nil)
		es := r.JSON("data").Array()
		return len(es), es
	}
	n, es := count("actor=" + w.adminID)
	if n != 2 { // u-by-token, and the child token
		t.Errorf("actor=%s: %d entries, want 2", w.adminID, n)
	}
	for _, en := range es {
		if en.Get("actor").String() != w.adminID {
			t.Errorf("actor filter let through %s", en.Raw)
		}
	}
	n, es = count("action=key.")
	want := 0
	for a, k := range actions {
		if strings.HasPrefix(a, "key.") {
			want += k
		}
	}
	if n != want || n == 0 {
		t.Errorf("action=key.: %d entries, want %d", n, want)
	}
	for _, en := range es {
		if !strings.HasPrefix(en.Get("action").String(), "key.") {
			t.Errorf("action=key. let through %s", en.Get("action"))
		}
	}
	if n, _ := count("action=key.rotate"); n != actions["key.rotate"] || n != 2 {
		t.Errorf("action=key.rotate: %d, want 2", n)
	}
	if n, _ := count("action=key"); n != 0 {
		t.Errorf("action=key (exact, no such action): %d entries", n)
	}
	n, es = count("target=" + w.k1ID)
	if n != 5 { // create, update, two rotations, revoke
		t.Errorf("target=k1: %d entries, want 5", n)
	}
	n, es = count("tenant_id=acme")
	if n == 0 {
		t.Errorf("tenant_id=acme: nothing")
	}
	for _, en := range es {
		if en.Get("tenant_id").String() != "acme" {
			t.Errorf("tenant_id=acme let through %s", en.Raw)
		}
	}
	if n, _ := count("from=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))); n != 0 {
		t.Errorf("from=in an hour: %d entries", n)
	}
	if n, _ := count("to=" + url.QueryEscape(w.start.Add(-time.Hour).Format(time.RFC3339Nano))); n != 0 {
		t.Errorf("to=before the test: %d entries", n)
	}
	// from is inclusive, to exclusive: split the log at the time of its middle entry
	mid := entries[len(entries)/2].Get("at").Time()
	var after, before int
	for _, en := range entries {
		if en.Get("at").Time().Before(mid) {
			before++
		} else {
			after++
		}
	}
	midQ := url.QueryEscape(mid.Format(time.RFC3339Nano))
	if n, _ := count("from=" + midQ); n != after {
		t.Errorf("from=%s: %d entries, want %d", mid.Format(time.RFC3339Nano), n, after)
	}
	if n, _ := count("to=" + midQ); n != before {
		t.Errorf("to=%s: %d entries, want %d", mid.Format(time.RFC3339Nano), n, before)
	}
	if n, _ := count("from=" + url.QueryEscape(w.start.Add(-time.Hour).Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano))); n != len(entries) {
		t.Errorf("from..to around the test: %d entries, want %d", n, len(entries))
	}
	c.Refused(400, "from", "GET", "/admin/audit-log?from=yesterday", nil)
	p := c.Must(200, "GET", "/admin/audit-log?limit=3", nil)
	if len(p.JSON("data").Array()) != 3 || !p.JSON("has_more").Bool() || p.JSON("next_offset").Int() != 3 {
		t.Errorf("audit-log?limit=3: has_more %s next_offset %s", p.JSON("has_more"), p.JSON("next_offset"))
	}
	// newest first
	for i := 1; i < len(entries); i++ {
		if entries[i].Get("at").Time().After(entries[i-1].Get("at").Time()) {
			t.Errorf("audit log not newest first at %d", i)
			break
		}
	}
}
