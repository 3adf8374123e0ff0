package main

import (
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/admin/admintest"
)

// The admin API end to end: every resource through the real admin listener of a real gateway,
// once on the embedded SQLite store and once on PostgreSQL with Redis quotas. This file has the
// tenants, users and keys steps; e2e_admin_audit_test.go the tokens, the quota, price and credit
// changes and the audit log. Tenant scope against real traffic is in e2e_admin_authz_test.go, a
// key's lifecycle across two gateway processes in e2e_admin_lifecycle_test.go, and the helpers in
// e2e_admin_helpers_test.go. What needs no gateway (the authorization matrix, filters and bodies
// under attack) is the admin package's own test; the raw client is admin/admintest.

// admWorld is what one run of TestAdminResourcesEndToEnd builds up, step by step.
type admWorld struct {
	t     *testing.T
	e     *env
	c     *admintest.Client
	start time.Time
	// secrets are every plaintext key and token made: none may show up in a list, a GET or the
	// audit log.
	secrets []string
	k1ID    string // the key followed through update, rotation and revocation
	// k1RequestID is the X-Request-Id of k1's creation, which its audit entry must keep.
	k1RequestID string
	adminID     string // an unscoped admin token's id, the actor of some changes
}

func TestAdminResourcesEndToEnd(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		w := &admWorld{t: t, e: e, c: newAdmClient(t, e), start: time.Now().UTC().Add(-2 * time.Second)}
		w.tenants()
		w.users()
		w.keys()
		w.tokens()
		w.policiesPricesCredits()
		w.auditLog()
	})
}

// tenants: create with models and limits, get, list with q and pages, patch with null clearing,
// delete refused while in use and allowed after, the default tenant never.
func (w *admWorld) tenants() {
	t, c := w.t, w.c
	acme := c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "acme", "name": "Acme Corp",
		"models": []string{"gpt-test", "other", "gpt-test"}, "metadata": map[string]string{"plan": "gold"},
		"limits": map[string]any{"rpm": 100, "tpm": 10_000_000, "budget_usd_per_day": "5.5"}})
	if got := acme.JSON("models").String(); got != `["gpt-test","other"]` {
		t.Errorf("models %s: want the allowlist without its duplicate", got)
	}
	if acme.JSON("limits.rpm").Int() != 100 || acme.JSON("limits.tpm").Int() != 10_000_000 ||
		acme.JSON("limits.budget_usd_per_day").Float() != 5.5 || acme.JSON("metadata.plan").String() != "gold" ||
		acme.JSON("name").String() != "Acme Corp" || acme.JSON("created_at").String() == "" || acme.JSON("deleted_at").Exists() && acme.JSON("deleted_at").Type != gjson.Null {
		t.Errorf("created tenant: %s", acme.Body)
	}
	got := c.Must(200, "GET", "/admin/tenants/acme", nil)
	for _, f := range []string{"name", "models", "limits.rpm", "limits.budget_usd_per_day", "metadata"} {
		if got.JSON(f).Raw != acme.JSON(f).Raw {
			t.Errorf("GET tenant %s = %s, created as %s", f, got.JSON(f).Raw, acme.JSON(f).Raw)
		}
	}
	c.Refused(409, "id", "POST", "/admin/tenants", map[string]any{"id": "acme", "name": "again"})
	c.Refused(400, "id", "POST", "/admin/tenants", map[string]any{"id": "bad id!", "name": "x"})
	c.Refused(400, "name", "POST", "/admin/tenants", map[string]any{"id": "noname", "name": " "})
	c.Refused(400, "limits.rpm", "POST", "/admin/tenants", map[string]any{"id": "neg", "name": "x", "limits": map[string]any{"rpm": -1}})
	c.Refused(400, "models[1]", "POST", "/admin/tenants", map[string]any{"id": "m", "name": "x", "models": []string{"ok", ""}})
	c.Refused(404, "id", "GET", "/admin/tenants/no-such-tenant", nil)
	auto := c.Must(201, "POST", "/admin/tenants", map[string]any{"name": "No id given"})
	if !strings.HasPrefix(auto.JSON("id").String(), "ten_") {
		t.Errorf("a tenant made without an id got %q", auto.JSON("id").String())
	}
	for _, id := range []string{"beta", "gamma", "delta", "doomed"} {
		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": "Tenant " + id,
			"models": []string{"gpt-test"}, "limits": map[string]any{"rpm": 1000}, "metadata": map[string]string{"k": "v"}})
	}
	c.Must(200, "PATCH", "/admin/tenants/beta", map[string]any{"models": nil, "limits": nil})

	// pages: follow next_offset to the end; together they are the whole list, in id order
	all := c.Must(200, "GET", "/admin/tenants?limit=1000", nil)
	allIDs := all.IDs()
	if !slices.IsSorted(allIDs) || !slices.Contains(allIDs, "default") || len(allIDs) != 7 {
		t.Errorf("tenants %v: want 7 in id order, the default one among them", allIDs)
	}
	var paged []string
	for off, pages := 0, 0; ; pages++ {
		p := c.Must(200, "GET", "/admin/tenants?limit=2&offset="+strconv.Itoa(off), nil)
		paged = append(paged, p.IDs()...)
		if !p.JSON("has_more").Bool() {
			if p.JSON("next_offset").Type != gjson.Null {
				t.Errorf("last page has next_offset %s", p.JSON("next_offset").Raw)
			}
			break
		}
		if p.JSON("next_offset").Int() != int64(off+2) || len(p.IDs()) != 2 || pages > 10 {
			t.Fatalf("page at %d: %s", off, p.Body)
		}
		off = int(p.JSON("next_offset").Int())
	}
	if !slices.Equal(paged, allIDs) {
		t.Errorf("paged %v, whole list %v", paged, allIDs)
	}
	c.Refused(400, "limit", "GET", "/admin/tenants?limit=0", nil)
	c.Refused(400, "offset", "GET", "/admin/tenants?offset=-1", nil)
	if ids := c.Must(200, "GET", "/admin/tenants?q=amm", nil).IDs(); !slices.Equal(ids, []string{"gamma"}) {
		t.Errorf("q=amm: %v, want [gamma]", ids)
	}
	if ids := c.Must(200, "GET", "/admin/tenants?q=Acme+Co", nil).IDs(); !slices.Equal(ids, []string{"acme"}) {
		t.Errorf("q=Acme Co (the name): %v, want [acme]", ids)
	}

	// patch: named fields replace, null clears, absent ones stay
	p := c.Must(200, "PATCH", "/admin/tenants/gamma", map[string]any{"name": "Gamma 2", "models": nil, "limits": nil, "metadata": nil})
	if p.JSON("name").String() != "Gamma 2" || p.JSON("models").Raw != "[]" || p.JSON("limits").Type != gjson.Null ||
		p.JSON("metadata").Raw != "{}" || p.JSON("updated_at").Type == gjson.Null {
		t.Errorf("patched with nulls: %s", p.Body)
	}
	if g := c.Must(200, "GET", "/admin/tenants/gamma", nil); g.JSON("models").Raw != "[]" || g.JSON("limits").Type != gjson.Null || g.JSON("metadata").Raw != "{}" {
		t.Errorf("the nulls did not stick: %s", g.Body)
	}
	if ps := c.Must(200, "GET", "/admin/quota/policies/tenant/gamma", nil); len(ps.JSON("data").Array()) != 0 {
		t.Errorf("limits: null left the tenant's policy behind: %s", ps.Body)
	}
	p = c.Must(200, "PATCH", "/admin/tenants/delta", map[string]any{"models": []string{"gpt-test", "other"},
		"limits": map[string]any{"rpm": 7}, "metadata": map[string]string{"tier": "x"}})
	if p.JSON("models").String() != `["gpt-test","other"]` || p.JSON("limits.rpm").Int() != 7 || p.JSON("metadata").Raw != `{"tier":"x"}` ||
		p.JSON("name").String() != "Tenant delta" {
		t.Errorf("patched delta: %s", p.Body)
	}
	c.Refused(400, "limits.tpm", "PATCH", "/admin/tenants/delta", map[string]any{"limits": map[string]any{"tpm": -5}})
	c.Refused(404, "id", "PATCH", "/admin/tenants/no-such-tenant", map[string]any{"name": "x"})

	// delete: refused while a user or a key lives, allowed after; never the default tenant
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "u-doomed", "tenant_id": "doomed"})
	k := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "doomed-key", "tenant_id": "doomed"})
	w.secrets = append(w.secrets, k.JSON("key").String())
	c.Refused(409, "id", "DELETE", "/admin/tenants/doomed", nil)
	c.Must(200, "DELETE", "/admin/users/u-doomed", nil)
	c.Refused(409, "id", "DELETE", "/admin/tenants/doomed", nil) // the key without a user lives on
	c.Must(200, "DELETE", "/admin/keys/"+k.JSON("id").String(), nil)
	d := c.Must(200, "DELETE", "/admin/tenants/doomed", nil)
	if d.JSON("deleted_at").Type == gjson.Null {
		t.Errorf("deleted tenant: %s", d.Body)
	}
	if g := c.Must(200, "GET", "/admin/tenants/doomed", nil); g.JSON("deleted_at").Type == gjson.Null {
		t.Errorf("a deleted tenant reads as live: %s", g.Body)
	}
	if ids := c.Must(200, "GET", "/admin/tenants?limit=1000", nil).IDs(); slices.Contains(ids, "doomed") {
		t.Errorf("the list shows a deleted tenant: %v", ids)
	}
	if ids := c.Must(200, "GET", "/admin/tenants?limit=1000&include_deleted=true", nil).IDs(); !slices.Contains(ids, "doomed") {
		t.Errorf("include_deleted=true does not show the deleted tenant: %v", ids)
	}
	c.Refused(404, "id", "DELETE", "/admin/tenants/doomed", nil)
	c.Refused(409, "id", "PATCH", "/admin/tenants/doomed", map[string]any{"name": "back"})
	c.Refused(400, "tenant_id", "POST", "/admin/users", map[string]any{"id": "u-late", "tenant_id": "doomed"})
	c.Refused(409, "id", "DELETE", "/admin/tenants/default", nil)
	c.Must(200, "GET", "/admin/tenants/default", nil)
}

// users: create with every field, duplicates, field errors naming the field, list filters, patch,
// no move between tenants, delete revoking the user's keys.
func (w *admWorld) users() {
	t, c, e := w.t, w.c, w.e
	a := c.Must(201, "POST", "/admin/users", map[string]any{"id": "u-alice", "tenant_id": "acme", "tier": "tiny",
		"email": "alice@example.com", "external_id": "ext-alice", "metadata": map[string]string{"team": "red"}})
	if a.JSON("tenant_id").String() != "acme" || a.JSON("tier").String() != "tiny" || a.JSON("email").String() != "alice@example.com" ||
		a.JSON("external_id").String() != "ext-alice" || a.JSON("metadata.team").String() != "red" || a.JSON("deleted_at").Type != gjson.Null {
		t.Errorf("created user: %s", a.Body)
	}
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "u-bob", "tenant_id": "acme", "email": "bob@example.org", "external_id": "ext-bob"})
	carol := c.Must(201, "POST", "/admin/users", map[string]any{"id": "u-carol", "tenant_id": "beta"})
	if carol.JSON("tier").String() != "open" {
		t.Errorf("a user made without a tier got %q, want the default tier", carol.JSON("tier").String())
	}
	// an external id is unique within a tenant, not across tenants
	c.Refused(409, "-", "POST", "/admin/users", map[string]any{"id": "u-alice", "tenant_id": "beta"})
	c.Refused(409, "-", "POST", "/admin/users", map[string]any{"id": "u-alice2", "tenant_id": "acme", "external_id": "ext-alice"})
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "u-dave", "tenant_id": "beta", "external_id": "ext-alice"})
	for _, tc := range []struct {
		param string
		body  map[string]any
	}{
		{"tier", map[string]any{"id": "u-x", "tier": "platinum"}},
		{"email", map[string]any{"id": "u-x", "email": "alice.example.com"}},
		{"email", map[string]any{"id": "u-x", "email": "a b@example.com"}},
		{"email", map[string]any{"id": "u-x", "email": "a@b@example.com"}},
		{"id", map[string]any{"id": "has space"}},
		{"id", map[string]any{"id": strings.Repeat("x", 129)}},
		{"tenant_id", map[string]any{"id": "u-x", "tenant_id": "no-such-tenant"}},
		{"external_id", map[string]any{"id": "u-x", "external_id": "tab\there"}},
		{"metadata", map[string]any{"id": "u-x", "metadata": map[string]string{"": "v"}}},
	} {
		c.Refused(400, tc.param, "POST", "/admin/users", tc.body)
	}
	if g := c.Must(200, "GET", "/admin/users/u-alice", nil); g.JSON("email").String() != "alice@example.com" || g.JSON("metadata.team").String() != "red" {
		t.Errorf("GET user: %s", g.Body)
	}
	c.Refused(404, "id", "GET", "/admin/users/no-such-user", nil)

	for q, want := range map[string][]string{
		"tenant_id=acme":                       {"u-alice", "u-bob"},
		"tier=tiny":                            {"u-alice"},
		"email=example.com":                    {"u-alice"},
		"email=%40example.":                    {"u-alice", "u-bob"},
		"q=carol":                              {"u-carol"},
		"q=ext-bo":                             {"u-bob"},
		"external_id=ext-alice":                {"u-alice", "u-dave"},
		"external_id=ext-al":                   {}, // exact, not a substring
		"tenant_id=beta&external_id=ext-alice": {"u-dave"},
		"tenant_id=beta&tier=open":             {"u-carol", "u-dave"},
	} {
		if ids := c.Must(200, "GET", "/admin/users?limit=1000&"+q, nil).IDs(); !admintest.SameSet(ids, want) {
			t.Errorf("users?%s = %v, want %v", q, ids, want)
		}
	}

	p := c.Must(200, "PATCH", "/admin/users/u-alice", map[string]any{"tier": "open", "email": "alice@corp.example", "metadata": nil, "tenant_id": "acme"})
	if p.JSON("tier").String() != "open" || p.JSON("email").String() != "alice@corp.example" || p.JSON("metadata").Raw != "{}" ||
		p.JSON("external_id").String() != "ext-alice" || p.JSON("updated_at").Type == gjson.Null {
		t.Errorf("patched user: %s", p.Body)
	}
	c.Refused(400, "tenant_id", "PATCH", "/admin/users/u-alice", map[string]any{"tenant_id": "beta"})
	c.Refused(400, "tier", "PATCH", "/admin/users/u-alice", map[string]any{"tier": "gold"})
	c.Refused(400, "email", "PATCH", "/admin/users/u-alice", map[string]any{"email": "nope"})
	c.Refused(409, "external_id", "PATCH", "/admin/users/u-alice", map[string]any{"external_id": "ext-bob"})
	if g := c.Must(200, "GET", "/admin/users/u-alice", nil); g.JSON("tenant_id").String() != "acme" || g.JSON("tier").String() != "open" {
		t.Errorf("after refused patches: %s", g.Body)
	}

	// deleting a user revokes its keys: refused on the public API within the key-cache TTL
	k := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "bob's", "user_id": "u-bob"})
	w.secrets = append(w.secrets, k.JSON("key").String())
	if st := admChat(e, k.JSON("key").String(), "gpt-test"); st != 200 {
		t.Fatalf("bob's key: HTTP %d", st)
	}
	del := c.Must(200, "DELETE", "/admin/users/u-bob", nil)
	if del.JSON("deleted_at").Type == gjson.Null {
		t.Errorf("deleted user: %s", del.Body)
	}
	took := admWaitChat(t, e, k.JSON("key").String(), "gpt-test", 401, 5*time.Second, "a deleted user's key to be refused")
	t.Logf("a deleted user's key was refused after %v", took)
	if g := c.Must(200, "GET", "/admin/keys/"+k.JSON("id").String(), nil); g.JSON("status").String() != "revoked" {
		t.Errorf("a deleted user's key: %s", g.Body)
	}
	if ids := c.Must(200, "GET", "/admin/users?tenant_id=acme", nil).IDs(); slices.Contains(ids, "u-bob") {
		t.Errorf("the list shows a deleted user: %v", ids)
	}
	if ids := c.Must(200, "GET", "/admin/users?tenant_id=acme&include_deleted=true", nil).IDs(); !slices.Contains(ids, "u-bob") {
		t.Errorf("include_deleted=true hides the deleted user: %v", ids)
	}
	c.Refused(404, "id", "DELETE", "/admin/users/u-bob", nil)
	c.Refused(409, "id", "PATCH", "/admin/users/u-bob", map[string]any{"tier": "open"})
	c.Refused(409, "user_id", "POST", "/admin/keys", map[string]any{"name": "for a deleted user", "user_id": "u-bob"})
	// a deleted user's external id is free again in its tenant
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "u-bob2", "tenant_id": "acme", "external_id": "ext-bob"})
}

// keys: create with everything, never beyond the tenant, the tenant's allowlist and a key's rpm
// enforced on the public API, list filters, patch, rotate, revoke, expiry.
func (w *admWorld) keys() {
	t, c, e := w.t, w.c, w.e
	exp := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "short-lived", "tenant_id": "beta", "expires_at": futureRFC3339(2 * time.Second)})
	w.secrets = append(w.secrets, exp.JSON("key").String())

	expires := futureRFC3339(24 * time.Hour)
	k1 := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "k1-main", "user_id": "u-alice", "models": []string{"gpt-test"},
		"limits": map[string]any{"rpm": 5, "tpm": 50_000}, "metadata": map[string]string{"env": "prod"}, "expires_at": expires})
	w.k1ID = k1.JSON("id").String()
	w.k1RequestID = k1.Header.Get("X-Request-Id")
	plain1 := k1.JSON("key").String()
	w.secrets = append(w.secrets, plain1)
	if !strings.HasPrefix(plain1, "sk-lg-") || !strings.HasPrefix(plain1, k1.JSON("prefix").String()) || len(k1.JSON("prefix").String()) >= len(plain1) ||
		k1.JSON("tenant_id").String() != "acme" || k1.JSON("user_id").String() != "u-alice" || k1.JSON("models").String() != `["gpt-test"]` ||
		k1.JSON("limits.rpm").Int() != 5 || k1.JSON("limits.tpm").Int() != 50_000 || k1.JSON("metadata.env").String() != "prod" ||
		k1.JSON("status").String() != "active" || k1.JSON("expires_at").Type == gjson.Null {
		t.Errorf("created key: %s", k1.Body)
	}
	g := c.Must(200, "GET", "/admin/keys/"+w.k1ID, nil)
	if g.JSON("key").Exists() || g.JSON("limits.rpm").Int() != 5 || g.JSON("name").String() != "k1-main" {
		t.Errorf("GET key (must show no secret): %s", g.Body)
	}
	c.Refused(404, "id", "GET", "/admin/keys/no-such-key", nil)

	// nobody makes a key with models or limits beyond its tenant's (acme: gpt-test and other;
	// rpm 100, tpm 10M, 5.5 USD a day)
	for _, tc := range []struct {
		param string
		body  map[string]any
	}{
		{"models[0]", map[string]any{"user_id": "u-alice", "models": []string{"slow"}}},
		{"models[1]", map[string]any{"tenant_id": "acme", "models": []string{"gpt-test", "slow"}}},
		{"limits.rpm", map[string]any{"tenant_id": "acme", "limits": map[string]any{"rpm": 101}}},
		{"limits.rpm", map[string]any{"tenant_id": "acme", "limits": map[string]any{"rpm": 0}}}, // unlimited is beyond 100
		{"limits.tpm", map[string]any{"user_id": "u-alice", "limits": map[string]any{"tpm": 10_000_001}}},
		{"limits.budget_usd_per_day", map[string]any{"tenant_id": "acme", "limits": map[string]any{"budget_usd_per_day": "5.500001"}}},
		{"limits.rpm", map[string]any{"tenant_id": "acme", "limits": map[string]any{"rpm": -1}}},
		{"limits.budget_usd_per_month", map[string]any{"tenant_id": "acme", "limits": map[string]any{"budget_usd_per_month": "1.0000001"}}},
		{"tenant_id", map[string]any{"user_id": "u-alice", "tenant_id": "beta"}},
		{"tenant_id", map[string]any{"tenant_id": "no-such-tenant"}},
		{"expires_at", map[string]any{"tenant_id": "beta", "expires_at": "2001-01-01T00:00:00Z"}},
		{"user_id", map[string]any{"user_id": "bad user id"}},
	} {
		c.Refused(400, tc.param, "POST", "/admin/keys", tc.body)
	}
	c.Refused(400, "models[0]", "PATCH", "/admin/keys/"+w.k1ID, map[string]any{"models": []string{"slow"}})
	c.Refused(400, "limits.rpm", "PATCH", "/admin/keys/"+w.k1ID, map[string]any{"limits": map[string]any{"rpm": 500}})
	c.Refused(400, "rpm", "PUT", "/admin/quota/policies/key/"+w.k1ID, map[string]any{"rpm": 500})
	c.Refused(400, "rpm", "PUT", "/admin/quota/policies/user/u-alice", map[string]any{"rpm": 0})
	if g := c.Must(200, "GET", "/admin/keys/"+w.k1ID, nil); g.JSON("limits.rpm").Int() != 5 || g.JSON("models").String() != `["gpt-test"]` {
		t.Errorf("a refused change changed the key: %s", g.Body)
	}

	// the tenant's allowlist binds a key that has none of its own
	open := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "acme-any", "tenant_id": "acme"})
	w.secrets = append(w.secrets, open.JSON("key").String())
	if st := admChat(e, open.JSON("key").String(), "gpt-test"); st != 200 {
		t.Errorf("acme key, model in the tenant's allowlist: HTTP %d", st)
	}
	resp := e.post(t.Context(), "/chat/completions", open.JSON("key").String(), []byte(`{"model":"slow","messages":[{"role":"user","content":"hi"}]}`))
	if resp.StatusCode != 403 {
		t.Errorf("acme key, model outside the tenant's allowlist: HTTP %d, want 403", resp.StatusCode)
	}
	if _, code, _ := apiError(t, resp); code != "model_not_allowed" {
		t.Errorf("code %q, want model_not_allowed", code)
	}

	// a key's own rpm is enforced on the public API
	lim := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "rpm-2", "tenant_id": "beta", "limits": map[string]any{"rpm": 2}})
	w.secrets = append(w.secrets, lim.JSON("key").String())
	for i, want := range []int{200, 200, 429} {
		resp := e.post(t.Context(), "/chat/completions", lim.JSON("key").String(), []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("rpm-2 key, request %d: HTTP %d, want %d", i+1, resp.StatusCode, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}

	// list filters
	for q, want := range map[string][]string{
		"name=k1-":  {w.k1ID},
		"name=main": {w.k1ID},
		"prefix=" + url.QueryEscape(k1.JSON("prefix").String()): {w.k1ID},
		"user_id=u-alice":                {w.k1ID},
		"user_id=u-alice&status=revoked": {},
		"tenant_id=acme&status=active":   {w.k1ID, open.JSON("id").String()},
		"tenant_id=beta&name=rpm":        {lim.JSON("id").String()},
	} {
		if ids := c.Must(200, "GET", "/admin/keys?limit=1000&"+q, nil).IDs(); !admintest.SameSet(ids, want) {
			t.Errorf("keys?%s = %v, want %v", q, ids, want)
		}
	}
	c.Refused(400, "status", "GET", "/admin/keys?status=deleted", nil)

	// patch: replace what is named, clear what is null
	p := c.Must(200, "PATCH", "/admin/keys/"+w.k1ID, map[string]any{"name": "k1-renamed", "metadata": map[string]string{"env": "staging"},
		"expires_at": nil, "limits": map[string]any{"rpm": 40}, "models": []string{"gpt-test", "other"}})
	if p.JSON("name").String() != "k1-renamed" || p.JSON("metadata.env").String() != "staging" || p.JSON("expires_at").Type != gjson.Null ||
		p.JSON("limits.rpm").Int() != 40 || p.JSON("limits.tpm").Type != gjson.Null || p.JSON("models").String() != `["gpt-test","other"]` ||
		p.JSON("key").Exists() || p.JSON("prefix").String() != k1.JSON("prefix").String() {
		t.Errorf("patched key: %s", p.Body)
	}
	if st := admChat(e, plain1, "other"); st != 200 {
		t.Errorf("k1 after its allowlist grew to other: HTTP %d (within the key cache TTL?)", st)
	}

	// rotate with grace: both secrets work; rotate without grace: only the newest
	r1 := c.Must(200, "POST", "/admin/keys/"+w.k1ID+"/rotate", map[string]any{"grace_seconds": 600})
	plain2 := r1.JSON("key").String()
	w.secrets = append(w.secrets, plain2)
	ends := r1.JSON("previous_key_expires_at").Time()
	if plain2 == plain1 || !strings.HasPrefix(plain2, r1.JSON("prefix").String()) || r1.JSON("prefix").String() == k1.JSON("prefix").String() ||
		ends.Before(time.Now().Add(590*time.Second)) || ends.After(time.Now().Add(610*time.Second)) || r1.JSON("status").String() != "active" {
		t.Errorf("rotated key: %s", r1.Body)
	}
	for name, k := range map[string]string{"old": plain1, "new": plain2} {
		if st := admChat(e, k, "gpt-test"); st != 200 {
			t.Errorf("within the grace period the %s secret answers HTTP %d", name, st)
		}
	}
	if ids := c.Must(200, "GET", "/admin/keys?prefix="+url.QueryEscape(r1.JSON("prefix").String()), nil).IDs(); !slices.Equal(ids, []string{w.k1ID}) {
		t.Errorf("the new prefix finds %v", ids)
	}
	r2 := c.Must(200, "POST", "/admin/keys/"+w.k1ID+"/rotate", map[string]any{"grace_seconds": 0})
	plain3 := r2.JSON("key").String()
	w.secrets = append(w.secrets, plain3)
	admWaitChat(t, e, plain2, "gpt-test", 401, 5*time.Second, "the second secret to stop after a rotation without grace")
	admWaitChat(t, e, plain1, "gpt-test", 401, 5*time.Second, "the first secret to stop too")
	if st := admChat(e, plain3, "gpt-test"); st != 200 {
		t.Errorf("the newest secret: HTTP %d", st)
	}
	c.Refused(400, "grace_seconds", "POST", "/admin/keys/"+w.k1ID+"/rotate", map[string]any{"grace_seconds": -1})
	c.Refused(400, "grace_seconds", "POST", "/admin/keys/"+w.k1ID+"/rotate", map[string]any{"grace_seconds": 30*24*3600 + 1})
	c.Refused(404, "id", "POST", "/admin/keys/no-such-key/rotate", nil)

	// revoke: at once, idempotent, final
	rv := c.Must(200, "DELETE", "/admin/keys/"+w.k1ID, nil)
	if rv.JSON("status").String() != "revoked" || rv.JSON("revoked_at").Type == gjson.Null || rv.JSON("key").Exists() {
		t.Errorf("revoked key: %s", rv.Body)
	}
	took := admWaitChat(t, e, plain3, "gpt-test", 401, 5*time.Second, "the revoked key to be refused")
	t.Logf("revocation seen by the public API after %v", took)
	again := c.Must(200, "DELETE", "/admin/keys/"+w.k1ID, nil)
	if again.JSON("revoked_at").String() != rv.JSON("revoked_at").String() {
		t.Errorf("revoking again moved revoked_at: %s → %s", rv.JSON("revoked_at"), again.JSON("revoked_at"))
	}
	c.Refused(409, "id", "PATCH", "/admin/keys/"+w.k1ID, map[string]any{"name": "zombie"})
	c.Refused(409, "id", "POST", "/admin/keys/"+w.k1ID+"/rotate", nil)
	if ids := c.Must(200, "GET", "/admin/keys?user_id=u-alice&status=revoked", nil).IDs(); !slices.Equal(ids, []string{w.k1ID}) {
		t.Errorf("status=revoked: %v", ids)
	}

	// expiry (the short-lived key was made 2 s ahead at the start of this step)
	admWaitChat(t, e, exp.JSON("key").String(), "gpt-test", 401, 10*time.Second, "the expired key to be refused")
	if ids := c.Must(200, "GET", "/admin/keys?status=expired", nil).IDs(); !slices.Equal(ids, []string{exp.JSON("id").String()}) {
		t.Errorf("status=expired: %v", ids)
	}
	if g := c.Must(200, "GET", "/admin/keys/"+exp.JSON("id").String(), nil); g.JSON("status").String() != "expired" {
		t.Errorf("expired key: %s", g.Body)
	}
}
