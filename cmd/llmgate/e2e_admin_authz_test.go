package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/admin/admintest"
)

// A tenant-scoped admin token against traffic through the public API. The authorization matrix
// (who may call which route) is the admin package's own test (admin/authz_test.go).

// TestAdminTenantScope: a token scoped to a tenant reads and changes only that tenant's users,
// keys, tokens, policies, usage and audit entries; the other tenant's objects do not exist for it.
func TestAdminTenantScope(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		c := newAdmClient(t, e)
		const tA, tB = "scope-a", "scope-b"
		for _, id := range []string{tA, tB} {
			c.Must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": id})
		}
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "ua", "tenant_id": tA})
		c.Must(201, "POST", "/admin/users", map[string]any{"id": "ub", "tenant_id": tB})
		kA := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "ka", "user_id": "ua"})
		kB := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "kb", "user_id": "ub"})
		c.Must(200, "PUT", "/admin/quota/policies/user/ua", map[string]any{"rpm": 50})
		c.Must(200, "PUT", "/admin/quota/policies/user/ub", map[string]any{"rpm": 50})
		c.Must(200, "POST", "/admin/credits/user/ub/topup", map[string]any{"amount_usd": "5"})
		mkTok := func(name, role, tenant string) admintest.Resp {
			return c.Must(201, "POST", "/admin/tokens", map[string]any{"name": name, "role": role, "tenant_id": tenant})
		}
		saR, svR, sbR, unR := mkTok("sa", "admin", tA), mkTok("sv", "viewer", tA), mkTok("sb", "admin", tB), mkTok("un", "admin", "")
		sa, sv, sb, un := c.As(saR.JSON("token").String()), c.As(svR.JSON("token").String()), c.As(sbR.JSON("token").String()), c.As(unR.JSON("token").String())

		// usage in both tenants
		for _, k := range []admintest.Resp{kA, kB} {
			if st := admChat(e, k.JSON("key").String(), "gpt-test"); st != 200 {
				t.Fatalf("chat with %s: HTTP %d", k.JSON("name"), st)
			}
		}
		var traceB string
		for _, r := range e.allUsage(2) {
			if r.KeyID == kB.JSON("id").String() {
				traceB = r.TraceID
			}
		}
		month := time.Now().UTC().Format("2006-01")

		// the other tenant's objects do not exist for a scoped token
		for _, path := range []string{"/admin/users/ub", "/admin/keys/" + kB.JSON("id").String(),
			"/admin/tokens/" + sbR.JSON("id").String(), "/admin/tokens/" + unR.JSON("id").String(), "/admin/tenants/" + tB,
			"/admin/credits/user/ub", "/admin/quota/policy/ub", "/admin/quota/usage/ub", "/admin/quota/policies/user/ub",
			"/admin/quota/policies/key/" + kB.JSON("id").String()} {
			sa.Refused(404, "-", "GET", path, nil)
			sv.Refused(404, "-", "GET", path, nil)
		}
		sb.Refused(404, "-", "GET", "/admin/users/ua", nil)
		sa.Must(200, "GET", "/admin/users/ua", nil)
		sa.Must(200, "GET", "/admin/tenants/"+tA, nil)

		// lists hold the tenant's own objects only
		type listCheck struct {
			path, field string
			mustHave    string // an id the list must show
		}
		for _, lc := range []listCheck{
			{"/admin/users?limit=1000", "tenant_id", "ua"},
			{"/admin/keys?limit=1000", "tenant_id", kA.JSON("id").String()},
			{"/admin/tokens?limit=1000", "tenant_id", saR.JSON("id").String()},
			{"/admin/tenants?limit=1000", "id", tA},
			{"/admin/audit-log?limit=1000", "tenant_id", ""},
		} {
			for name, cl := range map[string]*admintest.Client{"scoped admin": sa, "scoped viewer": sv} {
				r := cl.Must(200, "GET", lc.path, nil)
				items := r.JSON("data").Array()
				if len(items) == 0 {
					t.Errorf("%s: %s is empty", name, lc.path)
				}
				for _, it := range items {
					if it.Get(lc.field).String() != tA {
						t.Errorf("%s: %s shows another tenant's item: %s", name, lc.path, it.Raw)
					}
				}
				if lc.mustHave != "" && !slices.Contains(r.IDs(), lc.mustHave) {
					t.Errorf("%s: %s lacks %s", name, lc.path, lc.mustHave)
				}
			}
		}
		if ps := sa.Must(200, "GET", "/admin/quota/policies", nil); !admintest.SameSet(subjects(ps), []string{"user/ua"}) {
			t.Errorf("scoped quota policies: %v, want [user/ua]", subjects(ps))
		}
		if ps := c.Must(200, "GET", "/admin/quota/policies", nil); !slices.Contains(subjects(ps), "user/ub") {
			t.Errorf("unscoped quota policies lack user/ub: %v", subjects(ps))
		}
		au := sa.Must(200, "GET", "/admin/audit?size=1000", nil)
		if n := len(au.JSON("data").Array()); n != 1 || au.JSON("data.0.key_id").String() != kA.JSON("id").String() {
			t.Errorf("scoped usage audit: %s", au.Body)
		}
		if n := len(c.Must(200, "GET", "/admin/audit?size=1000", nil).JSON("data").Array()); n < 2 {
			t.Errorf("unscoped usage audit: %d records, want both tenants'", n)
		}
		if traceB != "" {
			if r := sa.Must(200, "GET", "/admin/audit/"+traceB, nil); len(r.JSON("data").Array()) != 0 {
				t.Errorf("a scoped token reads another tenant's trace: %s", r.Body)
			}
			if r := c.Must(200, "GET", "/admin/audit/"+traceB, nil); len(r.JSON("data").Array()) != 1 {
				t.Errorf("trace of kB: %s", r.Body)
			}
		}
		waitFor(t, 10*time.Second, "the billing rollups", func() bool {
			return c.Must(200, "GET", "/admin/billing/summary?month="+month, nil).JSON("total.requests").Int() >= 2
		})
		if s := sa.Must(200, "GET", "/admin/billing/summary?month="+month, nil); s.JSON("total.requests").Int() != 1 {
			t.Errorf("scoped billing summary: %s", s.Body)
		}
		csv := sa.Must(200, "GET", "/admin/billing/records.csv", nil).Body
		if !strings.Contains(csv, ","+tA+",") || strings.Contains(csv, tB) {
			t.Errorf("scoped records.csv:\n%s", csv)
		}

		// asking for the other tenant is refused, for its own allowed
		for _, path := range []string{"/admin/users?tenant_id=" + tB, "/admin/keys?tenant_id=" + tB, "/admin/tokens?tenant_id=" + tB,
			"/admin/audit-log?tenant_id=" + tB, "/admin/audit?tenantId=" + tB, "/admin/billing/summary?month=" + month + "&tenantId=" + tB,
			"/admin/billing/records.csv?tenantId=" + tB} {
			sa.Refused(403, "-", "GET", path, nil)
			sv.Refused(403, "-", "GET", path, nil)
			sa.Must(200, "GET", strings.ReplaceAll(path, tB, tA), nil)
		}
		sa.Refused(403, "tenantId", "DELETE", "/admin/quota/session/s1?tenantId="+tB, nil)
		sa.Must(204, "DELETE", "/admin/quota/session/s1", nil)

		// no making or changing anything in the other tenant
		sa.Refused(403, "tenant_id", "POST", "/admin/users", map[string]any{"id": "sneaky", "tenant_id": tB})
		sa.Refused(403, "tenant_id", "POST", "/admin/keys", map[string]any{"name": "sneaky", "tenant_id": tB})
		sa.Refused(404, "user_id", "POST", "/admin/keys", map[string]any{"name": "sneaky", "user_id": "ub"})
		sa.Refused(403, "tenant_id", "POST", "/admin/tokens", map[string]any{"name": "sneaky", "role": "admin", "tenant_id": tB})
		sa.Refused(404, "-", "PATCH", "/admin/users/ub", map[string]any{"tier": "open"})
		sa.Refused(404, "-", "DELETE", "/admin/users/ub", nil)
		sa.Refused(404, "-", "PATCH", "/admin/keys/"+kB.JSON("id").String(), map[string]any{"name": "x"})
		sa.Refused(404, "-", "POST", "/admin/keys/"+kB.JSON("id").String()+"/rotate", nil)
		sa.Refused(404, "-", "DELETE", "/admin/keys/"+kB.JSON("id").String(), nil)
		sa.Refused(404, "-", "DELETE", "/admin/tokens/"+unR.JSON("id").String(), nil)
		sa.Refused(404, "-", "DELETE", "/admin/tokens/"+sbR.JSON("id").String(), nil)
		sa.Refused(404, "-", "PUT", "/admin/quota/policy/ub", map[string]any{"userRpm": 1})
		sa.Refused(404, "-", "PUT", "/admin/quota/policies/key/"+kB.JSON("id").String(), map[string]any{"rpm": 1})
		sa.Refused(404, "-", "DELETE", "/admin/quota/policies/user/ub", nil)
		sa.Refused(403, "-", "PUT", "/admin/quota/policies/tenant/"+tA, map[string]any{"rpm": 1})
		sa.Refused(403, "-", "PUT", "/admin/quota/policies/tenant/"+tB, map[string]any{"rpm": 1})
		sa.Refused(403, "-", "PATCH", "/admin/tenants/"+tA, map[string]any{"name": "mine"})
		sa.Refused(403, "-", "POST", "/admin/credits/user/ua/topup", map[string]any{"amount_usd": "1"})
		sa.Refused(403, "-", "PUT", "/admin/pricing/gpt-test", map[string]any{"input_per_million": "0", "output_per_million": "0"})
		sv.Refused(403, "-", "POST", "/admin/users", map[string]any{"id": "viewer-made"})
		sv.Refused(403, "-", "DELETE", "/admin/keys/"+kA.JSON("id").String(), nil)
		if st := admChat(e, kB.JSON("key").String(), "gpt-test"); st != 200 {
			t.Errorf("the other tenant's key after the scoped token's attempts: HTTP %d", st)
		}
		un.Must(200, "GET", "/admin/tokens/"+unR.JSON("id").String(), nil)
		if g := c.Must(200, "GET", "/admin/users/ub", nil); g.JSON("deleted_at").Type != gjson.Null || g.JSON("tier").String() != "open" {
			t.Errorf("ub after the scoped token's attempts: %s", g.Body)
		}

		// ...but everything in its own
		if tok := sa.Must(201, "POST", "/admin/tokens", map[string]any{"name": "mine", "role": "admin"}); tok.JSON("tenant_id").String() != tA {
			t.Errorf("a token made by a scoped token is scoped to %q, want %q", tok.JSON("tenant_id").String(), tA)
		}
		if k := sa.Must(201, "POST", "/admin/keys", map[string]any{"name": "new-user-key", "user_id": "ua-new"}); k.JSON("tenant_id").String() != tA {
			t.Errorf("a key for a new user made by a scoped token: %s", k.Body)
		}
		if u := c.Must(200, "GET", "/admin/users/ua-new", nil); u.JSON("tenant_id").String() != tA {
			t.Errorf("the user made along with the key: %s", u.Body)
		}
		sa.Must(200, "PUT", "/admin/quota/policy/ua", map[string]any{"userRpm": 20})
		sa.Must(200, "PATCH", "/admin/users/ua", map[string]any{"email": "ua@example.com"})
		sa.Must(200, "POST", "/admin/keys/"+kA.JSON("id").String()+"/rotate", map[string]any{"grace_seconds": 60})

		// the audit log names the scoped token as the actor, and only its tenant sees the entries
		mine := sa.Must(200, "GET", "/admin/audit-log?actor="+saR.JSON("id").String(), nil).JSON("data").Array()
		if len(mine) < 5 {
			t.Errorf("the scoped token's own changes: %d audit entries, want at least 5", len(mine))
		}
		for _, en := range mine {
			if en.Get("tenant_id").String() != tA {
				t.Errorf("a scoped token's change recorded for tenant %q: %s", en.Get("tenant_id").String(), en.Raw)
			}
		}
		if n := len(sb.Must(200, "GET", "/admin/audit-log?actor="+saR.JSON("id").String(), nil).JSON("data").Array()); n != 0 {
			t.Errorf("tenant %s's token sees %d of tenant %s's audit entries", tB, n, tA)
		}
	})
}

// subjects lists "type/id" of a policy list.
func subjects(r admintest.Resp) []string {
	var out []string
	for _, p := range r.JSON("data").Array() {
		out = append(out, p.Get("subject_type").String()+"/"+p.Get("subject_id").String())
	}
	return out
}
