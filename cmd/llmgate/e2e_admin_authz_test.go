package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/store"
)

// The admin API's authorization, stated here on its own terms rather than read from the code's
// access table: who may call which route, and what a token scoped to a tenant sees.

// authzRoute is one admin route as this test expects it to be guarded.
type authzRoute struct {
	// billing: the billing role may use it.
	billing bool
	// global: it changes what every tenant shares, so a tenant-scoped token may not use it.
	global bool
	// optional: registered only when its feature is configured (deployments).
	optional bool
	// probes are concrete requests of the route. Their ids name nothing, or belong to the
	// scoped tokens' own tenant, and their bodies fail validation where that is possible, so an
	// allowed probe changes little.
	probes []authzProbe
}

type authzProbe struct {
	path string
	body any
	// global marks a probe a tenant-scoped token may not make although the route is not global
	// (a tenant's own quota policy).
	global bool
}

// Ids used by the matrix's probes.
const (
	authzTenant = "authz-a" // the scoped tokens' tenant
	authzOther  = "authz-b"
	authzNone   = "authz-none" // names nothing
)

// authzTable is the expectation, keyed by method and gin route pattern. Every route the admin
// handler registers under /admin/ must be here.
func authzTable() map[string]authzRoute {
	get := func(path string) []authzProbe { return []authzProbe{{path: path}} }
	with := func(path string, body any) []authzProbe { return []authzProbe{{path: path, body: body}} }
	return map[string]authzRoute{
		"GET /admin/openapi.yaml": {billing: true, probes: get("/admin/openapi.yaml")},

		"POST /admin/tenants":       {global: true, probes: with("/admin/tenants", map[string]any{"id": "bad id!", "name": "x"})},
		"GET /admin/tenants":        {probes: get("/admin/tenants")},
		"GET /admin/tenants/:id":    {probes: get("/admin/tenants/" + authzNone)},
		"PATCH /admin/tenants/:id":  {global: true, probes: with("/admin/tenants/"+authzNone, map[string]any{"name": "x"})},
		"DELETE /admin/tenants/:id": {global: true, probes: get("/admin/tenants/" + authzNone)},

		"POST /admin/users":       {probes: with("/admin/users", map[string]any{"id": "bad id!"})},
		"GET /admin/users":        {probes: get("/admin/users")},
		"GET /admin/users/:id":    {probes: get("/admin/users/" + authzNone)},
		"PATCH /admin/users/:id":  {probes: with("/admin/users/"+authzNone, map[string]any{"tier": "open"})},
		"DELETE /admin/users/:id": {probes: get("/admin/users/" + authzNone)},

		"POST /admin/keys":            {probes: with("/admin/keys", map[string]any{"name": "bad\u0001name"})},
		"GET /admin/keys":             {probes: get("/admin/keys")},
		"GET /admin/keys/:id":         {probes: get("/admin/keys/" + authzNone)},
		"PATCH /admin/keys/:id":       {probes: with("/admin/keys/"+authzNone, map[string]any{"name": "x"})},
		"POST /admin/keys/:id/rotate": {probes: get("/admin/keys/" + authzNone + "/rotate")},
		"DELETE /admin/keys/:id":      {probes: get("/admin/keys/" + authzNone)},

		"POST /admin/tokens":       {probes: with("/admin/tokens", map[string]any{"name": "", "role": "viewer"})},
		"GET /admin/tokens":        {probes: get("/admin/tokens")},
		"GET /admin/tokens/:id":    {probes: get("/admin/tokens/" + authzNone)},
		"DELETE /admin/tokens/:id": {probes: get("/admin/tokens/" + authzNone)},

		"GET /admin/audit-log": {probes: get("/admin/audit-log")},

		"PUT /admin/quota/policy/:userId":        {probes: with("/admin/quota/policy/"+authzNone, map[string]any{"userRpm": -1})},
		"GET /admin/quota/policy/:userId":        {probes: get("/admin/quota/policy/" + authzNone)},
		"DELETE /admin/quota/policy/:userId":     {probes: get("/admin/quota/policy/" + authzNone)},
		"GET /admin/quota/usage/:userId":         {probes: get("/admin/quota/usage/" + authzNone)},
		"DELETE /admin/quota/session/:sessionId": {probes: get("/admin/quota/session/" + authzNone)},
		"GET /admin/quota/policies":              {probes: get("/admin/quota/policies")},
		"PUT /admin/quota/policies/:subjectType/:subjectId": {probes: []authzProbe{
			{path: "/admin/quota/policies/user/" + authzNone, body: map[string]any{"rpm": -1}},
			// a tenant's own limits bound everything in it: not for a token scoped to it
			{path: "/admin/quota/policies/tenant/" + authzTenant, body: map[string]any{"rpm": 100000}, global: true},
			{path: "/admin/quota/policies/tenant/" + authzOther, body: map[string]any{"rpm": 100000}, global: true},
		}},
		"GET /admin/quota/policies/:subjectType/:subjectId": {probes: get("/admin/quota/policies/user/" + authzNone)},
		"DELETE /admin/quota/policies/:subjectType/:subjectId": {probes: []authzProbe{
			{path: "/admin/quota/policies/user/" + authzNone},
			{path: "/admin/quota/policies/tenant/" + authzOther, global: true},
			{path: "/admin/quota/policies/tenant/" + authzTenant, global: true},
		}},

		"GET /admin/pricing":        {billing: true, probes: get("/admin/pricing")},
		"GET /admin/pricing/*model": {billing: true, probes: get("/admin/pricing/authz/none")},
		"PUT /admin/pricing/*model": {billing: true, global: true, probes: with("/admin/pricing/authz-model", map[string]any{"input_per_million": "-1", "output_per_million": "1"})},

		"GET /admin/audit":                           {billing: true, probes: get("/admin/audit")},
		"GET /admin/audit/:traceId":                  {billing: true, probes: get("/admin/audit/" + authzNone)},
		"GET /admin/billing/summary":                 {billing: true, probes: get("/admin/billing/summary?month=2026-01")},
		"GET /admin/billing/records.csv":             {billing: true, probes: get("/admin/billing/records.csv")},
		"GET /admin/credits/:subjectType/:subjectId": {billing: true, probes: get("/admin/credits/user/" + authzNone)},
		"POST /admin/credits/:subjectType/:subjectId/topup": {billing: true, global: true,
			probes: with("/admin/credits/user/"+authzNone+"/topup", map[string]any{"amount_usd": "0"})},
		"POST /admin/credits/:subjectType/:subjectId/adjust": {billing: true, global: true,
			probes: with("/admin/credits/user/"+authzNone+"/adjust", map[string]any{"amount_usd": "0"})},

		"GET /admin/deployments":        {optional: true, probes: get("/admin/deployments")},
		"GET /admin/deployments/*id":    {optional: true, probes: get("/admin/deployments/authz/none")},
		"PATCH /admin/deployments/*id":  {optional: true, global: true, probes: with("/admin/deployments/authz/none", map[string]any{"weight": -1})},
		"DELETE /admin/deployments/*id": {optional: true, global: true, probes: get("/admin/deployments/authz/none")},
	}
}

// openRoutes are served on the admin listener without a token.
var openRoutes = []string{"GET /health/live", "GET /health/ready", "GET /metrics"}

// authzPrincipal is a caller of the matrix.
type authzPrincipal struct {
	name   string
	token  string
	role   string // "" for callers that must get 401
	scoped bool
}

// allowed is this test's own statement of the access rules.
func (p authzPrincipal) allowed(method string, r authzRoute, pr authzProbe) bool {
	var ok bool
	switch p.role {
	case "admin":
		ok = true
	case "viewer":
		ok = method == http.MethodGet
	case "billing":
		ok = r.billing
	}
	if p.scoped && (r.global || pr.global) {
		ok = false
	}
	return ok
}

// adminRoutes lists the routes the admin listener's gin engine registers.
func adminRoutes(t *testing.T, e *env) map[string]bool {
	t.Helper()
	h, ok := e.app.admin.Handler.(interface{ Routes() gin.RoutesInfo })
	if !ok {
		t.Fatalf("the admin listener's handler (%T) cannot list its routes", e.app.admin.Handler)
	}
	out := map[string]bool{}
	for _, ri := range h.Routes() {
		out[ri.Method+" "+ri.Path] = true
	}
	return out
}

// authzSetup makes the matrix's tenants, users and tokens and returns every caller.
func authzSetup(t *testing.T, c *admClient) []authzPrincipal {
	t.Helper()
	for _, id := range []string{authzTenant, authzOther} {
		c.must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": "Tenant " + id})
	}
	tok := func(name, role, tenant string) string {
		return c.must(201, "POST", "/admin/tokens", map[string]any{"name": name, "role": role, "tenant_id": tenant}).JSON("token").String()
	}
	revoked := tok("revoked", "admin", "")
	for _, it := range c.must(200, "GET", "/admin/tokens?name=revoked", nil).JSON("data").Array() {
		c.must(200, "DELETE", "/admin/tokens/"+it.Get("id").String(), nil)
	}
	return []authzPrincipal{
		{name: "no token"},
		{name: "wrong token", token: "wrong-token-wrong-token-wrong-token-0123"},
		{name: "unknown lga token", token: "lga-" + strings.Repeat("ab", 32)},
		{name: "revoked token", token: revoked},
		{name: "bootstrap", token: testAdminToken, role: "admin"},
		{name: "admin token", token: tok("admin", "admin", ""), role: "admin"},
		{name: "viewer", token: tok("viewer", "viewer", ""), role: "viewer"},
		{name: "billing", token: tok("billing", "billing", ""), role: "billing"},
		{name: "scoped admin", token: tok("scoped-admin", "admin", authzTenant), role: "admin", scoped: true},
		{name: "scoped viewer", token: tok("scoped-viewer", "viewer", authzTenant), role: "viewer", scoped: true},
		{name: "scoped billing", token: tok("scoped-billing", "billing", authzTenant), role: "billing", scoped: true},
	}
}

// TestAdminAuthorizationMatrix: no token / wrong token / viewer / billing / admin / tenant-scoped
// callers × every admin route.
func TestAdminAuthorizationMatrix(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		c := newAdmClient(t, e)
		table := authzTable()
		registered := adminRoutes(t, e)
		var unclassified []string
		for r := range registered {
			if strings.Contains(r, " /admin/") {
				if _, ok := table[r]; !ok {
					unclassified = append(unclassified, r)
				}
			} else if !slices.Contains(openRoutes, r) {
				unclassified = append(unclassified, r+" (outside /admin/)")
			}
		}
		sort.Strings(unclassified)
		for _, r := range unclassified {
			t.Errorf("the admin listener registers %s, which this test's authorization table does not classify", r)
		}
		for r, spec := range table {
			if !registered[r] && !spec.optional {
				t.Errorf("the authorization table names %s, which the admin listener does not register", r)
			}
		}
		for _, r := range openRoutes {
			if !registered[r] {
				t.Errorf("%s is not registered", r)
			}
			path := strings.TrimPrefix(r, "GET ")
			for _, tok := range []string{"", "wrong-token-wrong-token-wrong-token-0123"} {
				if got := c.as(tok).do("GET", path, nil); got.Status != 200 {
					t.Errorf("%s with token %q: HTTP %d, want 200 (no token needed)", r, tok, got.Status)
				}
			}
		}

		callers := authzSetup(t, c)
		checked := 0
		for _, p := range callers {
			pc := c.as(p.token)
			for pattern, r := range table {
				if !registered[pattern] {
					continue
				}
				method := strings.SplitN(pattern, " ", 2)[0]
				for _, pr := range r.probes {
					got := pc.do(method, pr.path, pr.body)
					what := p.name + ": " + method + " " + pr.path
					checked++
					switch {
					case p.role == "":
						checkAdmError(t, got, 401, "", what)
					case !p.allowed(method, r, pr):
						checkAdmError(t, got, 403, "-", what)
					case got.Status == 401 || got.Status == 403 || got.Status >= 500:
						t.Errorf("%s: HTTP %d, want it allowed: %.300s", what, got.Status, got.Body)
					}
				}
			}
		}
		t.Logf("%d requests checked against the matrix", checked)

		// Allowed means served: the real answer for a few routes of each role.
		by := map[string]*admClient{}
		for _, p := range callers {
			by[p.name] = c.as(p.token)
		}
		month := time.Now().UTC().Format("2006-01")
		by["bootstrap"].must(201, "POST", "/admin/tenants", map[string]any{"id": "authz-made", "name": "made"})
		by["admin token"].must(200, "GET", "/admin/keys", nil)
		by["admin token"].must(201, "POST", "/admin/users", map[string]any{"id": "authz-user", "tenant_id": authzOther})
		by["admin token"].must(200, "PATCH", "/admin/tenants/authz-made", map[string]any{"name": "made 2"})
		by["viewer"].must(200, "GET", "/admin/users", nil)
		by["viewer"].must(200, "GET", "/admin/audit-log", nil)
		by["viewer"].must(200, "GET", "/admin/tenants/"+authzTenant, nil)
		by["billing"].must(200, "GET", "/admin/pricing", nil)
		by["billing"].must(200, "PUT", "/admin/pricing/authz-model", map[string]any{"input_per_million": "1", "output_per_million": "2"})
		by["billing"].must(200, "GET", "/admin/pricing/authz-model", nil)
		by["billing"].must(200, "POST", "/admin/credits/tenant/"+authzTenant+"/topup", map[string]any{"amount_usd": "3"})
		by["billing"].must(200, "POST", "/admin/credits/tenant/"+authzTenant+"/adjust", map[string]any{"amount_usd": "-1"})
		by["billing"].must(200, "GET", "/admin/billing/summary?month="+month, nil)
		if r := by["billing"].must(200, "GET", "/admin/billing/records.csv", nil); !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
			t.Errorf("records.csv Content-Type %q", r.Header.Get("Content-Type"))
		}
		by["billing"].must(200, "GET", "/admin/audit", nil)
		by["billing"].must(200, "GET", "/admin/openapi.yaml", nil)
		if u := by["scoped admin"].must(201, "POST", "/admin/users", map[string]any{"id": "authz-scoped-user"}); u.JSON("tenant_id").String() != authzTenant {
			t.Errorf("a user made by a scoped token went to tenant %q", u.JSON("tenant_id").String())
		}
		if k := by["scoped admin"].must(201, "POST", "/admin/keys", map[string]any{"name": "scoped"}); k.JSON("tenant_id").String() != authzTenant {
			t.Errorf("a key made by a scoped token went to tenant %q", k.JSON("tenant_id").String())
		}
		by["scoped admin"].must(200, "PUT", "/admin/quota/policies/user/authz-scoped-user", map[string]any{"rpm": 5})
		by["scoped viewer"].must(200, "GET", "/admin/users", nil)
		by["scoped viewer"].must(200, "GET", "/admin/tenants/"+authzTenant, nil)
		if b := by["scoped billing"].must(200, "GET", "/admin/credits/tenant/"+authzTenant, nil); b.JSON("balance_usd").Float() != 2 {
			t.Errorf("tenant balance after +3 and -1: %s", b.Body)
		}
		by["scoped billing"].must(200, "GET", "/admin/billing/records.csv", nil)
	})
}

// TestAdminTenantScope: a token scoped to a tenant reads and changes only that tenant's users,
// keys, tokens, policies, usage and audit entries; the other tenant's objects do not exist for it.
func TestAdminTenantScope(t *testing.T) {
	adminStores(t, func(t *testing.T, e *env) {
		c := newAdmClient(t, e)
		const tA, tB = "scope-a", "scope-b"
		for _, id := range []string{tA, tB} {
			c.must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": id})
		}
		c.must(201, "POST", "/admin/users", map[string]any{"id": "ua", "tenant_id": tA})
		c.must(201, "POST", "/admin/users", map[string]any{"id": "ub", "tenant_id": tB})
		kA := c.must(201, "POST", "/admin/keys", map[string]any{"name": "ka", "user_id": "ua"})
		kB := c.must(201, "POST", "/admin/keys", map[string]any{"name": "kb", "user_id": "ub"})
		c.must(200, "PUT", "/admin/quota/policies/user/ua", map[string]any{"rpm": 50})
		c.must(200, "PUT", "/admin/quota/policies/user/ub", map[string]any{"rpm": 50})
		c.must(200, "POST", "/admin/credits/user/ub/topup", map[string]any{"amount_usd": "5"})
		mkTok := func(name, role, tenant string) admResp {
			return c.must(201, "POST", "/admin/tokens", map[string]any{"name": name, "role": role, "tenant_id": tenant})
		}
		saR, svR, sbR, unR := mkTok("sa", "admin", tA), mkTok("sv", "viewer", tA), mkTok("sb", "admin", tB), mkTok("un", "admin", "")
		sa, sv, sb, un := c.as(saR.JSON("token").String()), c.as(svR.JSON("token").String()), c.as(sbR.JSON("token").String()), c.as(unR.JSON("token").String())

		// usage in both tenants
		for _, k := range []admResp{kA, kB} {
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
			sa.refused(404, "-", "GET", path, nil)
			sv.refused(404, "-", "GET", path, nil)
		}
		sb.refused(404, "-", "GET", "/admin/users/ua", nil)
		sa.must(200, "GET", "/admin/users/ua", nil)
		sa.must(200, "GET", "/admin/tenants/"+tA, nil)

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
			for name, cl := range map[string]*admClient{"scoped admin": sa, "scoped viewer": sv} {
				r := cl.must(200, "GET", lc.path, nil)
				items := r.JSON("data").Array()
				if len(items) == 0 {
					t.Errorf("%s: %s is empty", name, lc.path)
				}
				for _, it := range items {
					if it.Get(lc.field).String() != tA {
						t.Errorf("%s: %s shows another tenant's item: %s", name, lc.path, it.Raw)
					}
				}
				if lc.mustHave != "" && !slices.Contains(r.ids(), lc.mustHave) {
					t.Errorf("%s: %s lacks %s", name, lc.path, lc.mustHave)
				}
			}
		}
		if ps := sa.must(200, "GET", "/admin/quota/policies", nil); !sameSet(subjects(ps), []string{"user/ua"}) {
			t.Errorf("scoped quota policies: %v, want [user/ua]", subjects(ps))
		}
		if ps := c.must(200, "GET", "/admin/quota/policies", nil); !slices.Contains(subjects(ps), "user/ub") {
			t.Errorf("unscoped quota policies lack user/ub: %v", subjects(ps))
		}
		au := sa.must(200, "GET", "/admin/audit?size=1000", nil)
		if n := len(au.JSON("data").Array()); n != 1 || au.JSON("data.0.key_id").String() != kA.JSON("id").String() {
			t.Errorf("scoped usage audit: %s", au.Body)
		}
		if n := len(c.must(200, "GET", "/admin/audit?size=1000", nil).JSON("data").Array()); n < 2 {
			t.Errorf("unscoped usage audit: %d records, want both tenants'", n)
		}
		if traceB != "" {
			if r := sa.must(200, "GET", "/admin/audit/"+traceB, nil); len(r.JSON("data").Array()) != 0 {
				t.Errorf("a scoped token reads another tenant's trace: %s", r.Body)
			}
			if r := c.must(200, "GET", "/admin/audit/"+traceB, nil); len(r.JSON("data").Array()) != 1 {
				t.Errorf("trace of kB: %s", r.Body)
			}
		}
		waitFor(t, 10*time.Second, "the billing rollups", func() bool {
			return c.must(200, "GET", "/admin/billing/summary?month="+month, nil).JSON("total.requests").Int() >= 2
		})
		if s := sa.must(200, "GET", "/admin/billing/summary?month="+month, nil); s.JSON("total.requests").Int() != 1 {
			t.Errorf("scoped billing summary: %s", s.Body)
		}
		csv := sa.must(200, "GET", "/admin/billing/records.csv", nil).Body
		if !strings.Contains(csv, ","+tA+",") || strings.Contains(csv, tB) {
			t.Errorf("scoped records.csv:\n%s", csv)
		}

		// asking for the other tenant is refused, for its own allowed
		for _, path := range []string{"/admin/users?tenant_id=" + tB, "/admin/keys?tenant_id=" + tB, "/admin/tokens?tenant_id=" + tB,
			"/admin/audit-log?tenant_id=" + tB, "/admin/audit?tenantId=" + tB, "/admin/billing/summary?month=" + month + "&tenantId=" + tB,
			"/admin/billing/records.csv?tenantId=" + tB} {
			sa.refused(403, "-", "GET", path, nil)
			sv.refused(403, "-", "GET", path, nil)
			sa.must(200, "GET", strings.ReplaceAll(path, tB, tA), nil)
		}
		sa.refused(403, "tenantId", "DELETE", "/admin/quota/session/s1?tenantId="+tB, nil)
		sa.must(204, "DELETE", "/admin/quota/session/s1", nil)

		// no making or changing anything in the other tenant
		sa.refused(403, "tenant_id", "POST", "/admin/users", map[string]any{"id": "sneaky", "tenant_id": tB})
		sa.refused(403, "tenant_id", "POST", "/admin/keys", map[string]any{"name": "sneaky", "tenant_id": tB})
		sa.refused(404, "user_id", "POST", "/admin/keys", map[string]any{"name": "sneaky", "user_id": "ub"})
		sa.refused(403, "tenant_id", "POST", "/admin/tokens", map[string]any{"name": "sneaky", "role": "admin", "tenant_id": tB})
		sa.refused(404, "-", "PATCH", "/admin/users/ub", map[string]any{"tier": "open"})
		sa.refused(404, "-", "DELETE", "/admin/users/ub", nil)
		sa.refused(404, "-", "PATCH", "/admin/keys/"+kB.JSON("id").String(), map[string]any{"name": "x"})
		sa.refused(404, "-", "POST", "/admin/keys/"+kB.JSON("id").String()+"/rotate", nil)
		sa.refused(404, "-", "DELETE", "/admin/keys/"+kB.JSON("id").String(), nil)
		sa.refused(404, "-", "DELETE", "/admin/tokens/"+unR.JSON("id").String(), nil)
		sa.refused(404, "-", "DELETE", "/admin/tokens/"+sbR.JSON("id").String(), nil)
		sa.refused(404, "-", "PUT", "/admin/quota/policy/ub", map[string]any{"userRpm": 1})
		sa.refused(404, "-", "PUT", "/admin/quota/policies/key/"+kB.JSON("id").String(), map[string]any{"rpm": 1})
		sa.refused(404, "-", "DELETE", "/admin/quota/policies/user/ub", nil)
		sa.refused(403, "-", "PUT", "/admin/quota/policies/tenant/"+tA, map[string]any{"rpm": 1})
		sa.refused(403, "-", "PUT", "/admin/quota/policies/tenant/"+tB, map[string]any{"rpm": 1})
		sa.refused(403, "-", "PATCH", "/admin/tenants/"+tA, map[string]any{"name": "mine"})
		sa.refused(403, "-", "POST", "/admin/credits/user/ua/topup", map[string]any{"amount_usd": "1"})
		sa.refused(403, "-", "PUT", "/admin/pricing/gpt-test", map[string]any{"input_per_million": "0", "output_per_million": "0"})
		sv.refused(403, "-", "POST", "/admin/users", map[string]any{"id": "viewer-made"})
		sv.refused(403, "-", "DELETE", "/admin/keys/"+kA.JSON("id").String(), nil)
		if st := admChat(e, kB.JSON("key").String(), "gpt-test"); st != 200 {
			t.Errorf("the other tenant's key after the scoped token's attempts: HTTP %d", st)
		}
		un.must(200, "GET", "/admin/tokens/"+unR.JSON("id").String(), nil)
		if g := c.must(200, "GET", "/admin/users/ub", nil); g.JSON("deleted_at").Type != gjson.Null || g.JSON("tier").String() != "open" {
			t.Errorf("ub after the scoped token's attempts: %s", g.Body)
		}

		// ...but everything in its own
		if tok := sa.must(201, "POST", "/admin/tokens", map[string]any{"name": "mine", "role": "admin"}); tok.JSON("tenant_id").String() != tA {
			t.Errorf("a token made by a scoped token is scoped to %q, want %q", tok.JSON("tenant_id").String(), tA)
		}
		if k := sa.must(201, "POST", "/admin/keys", map[string]any{"name": "new-user-key", "user_id": "ua-new"}); k.JSON("tenant_id").String() != tA {
			t.Errorf("a key for a new user made by a scoped token: %s", k.Body)
		}
		if u := c.must(200, "GET", "/admin/users/ua-new", nil); u.JSON("tenant_id").String() != tA {
			t.Errorf("the user made along with the key: %s", u.Body)
		}
		sa.must(200, "PUT", "/admin/quota/policy/ua", map[string]any{"userRpm": 20})
		sa.must(200, "PATCH", "/admin/users/ua", map[string]any{"email": "ua@example.com"})
		sa.must(200, "POST", "/admin/keys/"+kA.JSON("id").String()+"/rotate", map[string]any{"grace_seconds": 60})

		// the audit log names the scoped token as the actor, and only its tenant sees the entries
		mine := sa.must(200, "GET", "/admin/audit-log?actor="+saR.JSON("id").String(), nil).JSON("data").Array()
		if len(mine) < 5 {
			t.Errorf("the scoped token's own changes: %d audit entries, want at least 5", len(mine))
		}
		for _, en := range mine {
			if en.Get("tenant_id").String() != tA {
				t.Errorf("a scoped token's change recorded for tenant %q: %s", en.Get("tenant_id").String(), en.Raw)
			}
		}
		if n := len(sb.must(200, "GET", "/admin/audit-log?actor="+saR.JSON("id").String(), nil).JSON("data").Array()); n != 0 {
			t.Errorf("tenant %s's token sees %d of tenant %s's audit entries", tB, n, tA)
		}
	})
}

// subjects lists "type/id" of a policy list.
func subjects(r admResp) []string {
	var out []string
	for _, p := range r.JSON("data").Array() {
		out = append(out, p.Get("subject_type").String()+"/"+p.Get("subject_id").String())
	}
	return out
}

// TestAdminScopedTenantListBeyondAThousand: a scoped token lists its own tenant however many
// tenants sort before it. (The tenants are seeded through the store: a thousand API calls would
// only slow the test down.)
func TestAdminScopedTenantListBeyondAThousand(t *testing.T) {
	e := newEnv(t)
	c := newAdmClient(t, e)
	for i := 0; i < 1001; i++ {
		if err := e.app.store.CreateTenant(context.Background(), store.Tenant{ID: fmt.Sprintf("a%04d", i), Name: "filler"}); err != nil {
			t.Fatal(err)
		}
	}
	c.must(201, "POST", "/admin/tenants", map[string]any{"id": "zz-mine", "name": "mine"})
	scoped := c.as(c.must(201, "POST", "/admin/tokens", map[string]any{"name": "s", "role": "viewer", "tenant_id": "zz-mine"}).JSON("token").String())
	for _, q := range []string{"", "?q=mine", "?q=zz"} {
		if ids := scoped.must(200, "GET", "/admin/tenants"+q, nil).ids(); !slices.Equal(ids, []string{"zz-mine"}) {
			t.Errorf("GET /admin/tenants%s with a token scoped to zz-mine: %v, want [zz-mine]", q, ids)
		}
	}
	if ids := scoped.must(200, "GET", "/admin/tenants?q=filler", nil).ids(); len(ids) != 0 {
		t.Errorf("q=filler (not its tenant's name) shows %v", ids)
	}
}
