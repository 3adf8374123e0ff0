package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/admin/admintest"
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
	// ownSession: the caller's own console session (sign in, read it, sign out), open to every
	// role and not a resource the matrix can probe with a bearer token; session_test.go tests it.
	ownSession bool
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
		"GET /admin/session":      {billing: true, probes: get("/admin/session")},
		"POST /admin/session":     {ownSession: true},
		"DELETE /admin/session":   {ownSession: true},

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
		"GET /admin/quota/tiers":                 {probes: get("/admin/quota/tiers")},
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
		"GET /admin/audit.csv":                       {billing: true, probes: get("/admin/audit.csv?userId=" + authzNone)},
		"GET /admin/billing/summary":                 {billing: true, probes: get("/admin/billing/summary?month=2026-01")},
		"GET /admin/usage/series":                    {billing: true, probes: get("/admin/usage/series")},
		"GET /admin/usage/top":                       {billing: true, probes: get("/admin/usage/top")},
		"GET /admin/billing/records.csv":             {billing: true, probes: get("/admin/billing/records.csv")},
		"GET /admin/credits":                         {billing: true, probes: get("/admin/credits")},
		"GET /admin/credits/:subjectType/:subjectId": {billing: true, probes: get("/admin/credits/user/" + authzNone)},
		"GET /admin/credits/:subjectType/:subjectId/entries": {billing: true,
			probes: get("/admin/credits/user/" + authzNone + "/entries")},
		"POST /admin/credits/:subjectType/:subjectId/topup": {billing: true, global: true,
			probes: with("/admin/credits/user/"+authzNone+"/topup", map[string]any{"amount_usd": "0"})},
		"POST /admin/credits/:subjectType/:subjectId/adjust": {billing: true, global: true,
			probes: with("/admin/credits/user/"+authzNone+"/adjust", map[string]any{"amount_usd": "0"})},

		"GET /admin/alerts/thresholds":    {global: true, probes: get("/admin/alerts/thresholds")},
		"PUT /admin/alerts/thresholds":    {global: true, probes: with("/admin/alerts/thresholds", map[string]any{"budget_day": []int{0}})},
		"DELETE /admin/alerts/thresholds": {global: true, probes: get("/admin/alerts/thresholds")},
		"PUT /admin/alerts/thresholds/:subjectType/:subjectId": {global: true,
			probes: with("/admin/alerts/thresholds/tenant/"+authzTenant, map[string]any{"credit": []int{101}})},
		"DELETE /admin/alerts/thresholds/:subjectType/:subjectId": {global: true, probes: get("/admin/alerts/thresholds/tenant/" + authzTenant)},
		"POST /admin/alerts/webhooks":                             {global: true, probes: with("/admin/alerts/webhooks", map[string]any{"name": "x", "url": "ftp://x"})},
		"GET /admin/alerts/webhooks":                              {global: true, probes: get("/admin/alerts/webhooks")},
		"GET /admin/alerts/webhooks/:id":                          {global: true, probes: get("/admin/alerts/webhooks/" + authzNone)},
		"DELETE /admin/alerts/webhooks/:id":                       {global: true, probes: get("/admin/alerts/webhooks/" + authzNone)},
		"GET /admin/alerts/events":                                {probes: get("/admin/alerts/events")},
		"GET /admin/alerts/deliveries":                            {probes: get("/admin/alerts/deliveries")},

		"GET /admin/deployments":        {optional: true, probes: get("/admin/deployments")},
		"GET /admin/deployments/*id":    {optional: true, probes: get("/admin/deployments/authz/none")},
		"PATCH /admin/deployments/*id":  {optional: true, global: true, probes: with("/admin/deployments/authz/none", map[string]any{"weight": -1})},
		"DELETE /admin/deployments/*id": {optional: true, global: true, probes: get("/admin/deployments/authz/none")},
		"POST /admin/deployments/*id":   {optional: true, global: true, probes: with("/admin/deployments/authz/none/test", map[string]any{"endpoint": "x"})},

		"GET /admin/providers":          {optional: true, probes: get("/admin/providers")},
		"GET /admin/providers/:name":    {optional: true, probes: get("/admin/providers/authz-none")},
		"POST /admin/providers":         {optional: true, global: true, probes: with("/admin/providers", map[string]any{"name": "authz-p", "type": "mock"})},
		"PATCH /admin/providers/:name":  {optional: true, global: true, probes: with("/admin/providers/authz-none", map[string]any{"type": "mock"})},
		"DELETE /admin/providers/:name": {optional: true, global: true, probes: get("/admin/providers/authz-none")},
		"GET /admin/models":             {optional: true, probes: get("/admin/models")},
		"GET /admin/models/*model":      {optional: true, probes: get("/admin/models/authz/none")},
		"POST /admin/models":            {optional: true, global: true, probes: with("/admin/models", map[string]any{"name": "authz-m", "deployments": []any{}})},
		"PATCH /admin/models/*model":    {optional: true, global: true, probes: with("/admin/models/authz/none", map[string]any{"strategy": "cost"})},
		"DELETE /admin/models/*model":   {optional: true, global: true, probes: get("/admin/models/authz/none")},
		"POST /admin/secrets/reencrypt": {optional: true, global: true, probes: get("/admin/secrets/reencrypt")},

		"GET /admin/experiments":             {optional: true, global: true, probes: get("/admin/experiments")},
		"GET /admin/experiments/:id":         {optional: true, global: true, probes: get("/admin/experiments/" + authzNone)},
		"GET /admin/experiments/:id/results": {optional: true, global: true, probes: get("/admin/experiments/" + authzNone + "/results")},
		"POST /admin/experiments":            {optional: true, global: true, probes: with("/admin/experiments", map[string]any{"id": "authz-e", "model": "gpt-test"})},
		"PATCH /admin/experiments/:id":       {optional: true, global: true, probes: with("/admin/experiments/"+authzNone, map[string]any{"description": "x"})},
		"POST /admin/experiments/:id/start":  {optional: true, global: true, probes: get("/admin/experiments/" + authzNone + "/start")},
		"POST /admin/experiments/:id/pause":  {optional: true, global: true, probes: get("/admin/experiments/" + authzNone + "/pause")},
		"POST /admin/experiments/:id/stop":   {optional: true, global: true, probes: get("/admin/experiments/" + authzNone + "/stop")},
	}
}

// openRoutes are served on the admin listener without a token.
var openRoutes = []string{"GET /health/live", "GET /health/ready", "GET /metrics"}

// consoleRoutes serve the web console's files, without a token (session_test.go tests them).
var consoleRoutes = []string{"GET /console", "GET /console/*path"}

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

// authzSetup makes the matrix's tenants, users and tokens and returns every caller.
func authzSetup(t *testing.T, c *admintest.Client) []authzPrincipal {
	t.Helper()
	for _, id := range []string{authzTenant, authzOther} {
		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": "Tenant " + id})
	}
	tok := func(name, role, tenant string) string {
		return c.Must(201, "POST", "/admin/tokens", map[string]any{"name": name, "role": role, "tenant_id": tenant}).JSON("token").String()
	}
	revoked := tok("revoked", "admin", "")
	for _, it := range c.Must(200, "GET", "/admin/tokens?name=revoked", nil).JSON("data").Array() {
		c.Must(200, "DELETE", "/admin/tokens/"+it.Get("id").String(), nil)
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
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		table := authzTable()
		registered := s.routes(t)
		var unclassified []string
		for r := range registered {
			if strings.Contains(r, " /admin/") {
				if _, ok := table[r]; !ok {
					unclassified = append(unclassified, r)
				}
			} else if !slices.Contains(openRoutes, r) && !slices.Contains(consoleRoutes, r) {
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
				if got := c.As(tok).Do("GET", path, nil); got.Status != 200 {
					t.Errorf("%s with token %q: HTTP %d, want 200 (no token needed)", r, tok, got.Status)
				}
			}
		}

		callers := authzSetup(t, c)
		checked := 0
		for _, p := range callers {
			pc := c.As(p.token)
			for pattern, r := range table {
				if !registered[pattern] || r.ownSession {
					continue
				}
				method := strings.SplitN(pattern, " ", 2)[0]
				for _, pr := range r.probes {
					got := pc.Do(method, pr.path, pr.body)
					what := p.name + ": " + method + " " + pr.path
					checked++
					switch {
					case p.role == "":
						admintest.CheckError(t, got, 401, "", what)
					case !p.allowed(method, r, pr):
						admintest.CheckError(t, got, 403, "-", what)
					case got.Status == 401 || got.Status == 403 || got.Status >= 500:
						t.Errorf("%s: HTTP %d, want it allowed: %.300s", what, got.Status, got.Body)
					}
				}
			}
		}
		t.Logf("%d requests checked against the matrix", checked)

		// Allowed means served: the real answer for a few routes of each role.
		by := map[string]*admintest.Client{}
		for _, p := range callers {
			by[p.name] = c.As(p.token)
		}
		month := time.Now().UTC().Format("2006-01")
		by["bootstrap"].Must(201, "POST", "/admin/tenants", map[string]any{"id": "authz-made", "name": "made"})
		by["admin token"].Must(200, "GET", "/admin/keys", nil)
		by["admin token"].Must(201, "POST", "/admin/users", map[string]any{"id": "authz-user", "tenant_id": authzOther})
		by["admin token"].Must(200, "PATCH", "/admin/tenants/authz-made", map[string]any{"name": "made 2"})
		by["viewer"].Must(200, "GET", "/admin/users", nil)
		by["viewer"].Must(200, "GET", "/admin/audit-log", nil)
		by["viewer"].Must(200, "GET", "/admin/tenants/"+authzTenant, nil)
		by["billing"].Must(200, "GET", "/admin/pricing", nil)
		by["billing"].Must(200, "PUT", "/admin/pricing/authz-model", map[string]any{"input_per_million": "1", "output_per_million": "2"})
		by["billing"].Must(200, "GET", "/admin/pricing/authz-model", nil)
		by["billing"].Must(200, "POST", "/admin/credits/tenant/"+authzTenant+"/topup", map[string]any{"amount_usd": "3"})
		by["billing"].Must(200, "POST", "/admin/credits/tenant/"+authzTenant+"/adjust", map[string]any{"amount_usd": "-1"})
		by["billing"].Must(200, "GET", "/admin/billing/summary?month="+month, nil)
		if r := by["billing"].Must(200, "GET", "/admin/billing/records.csv", nil); !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
			t.Errorf("records.csv Content-Type %q", r.Header.Get("Content-Type"))
		}
		by["billing"].Must(200, "GET", "/admin/audit", nil)
		by["billing"].Must(200, "GET", "/admin/openapi.yaml", nil)
		if u := by["scoped admin"].Must(201, "POST", "/admin/users", map[string]any{"id": "authz-scoped-user"}); u.JSON("tenant_id").String() != authzTenant {
			t.Errorf("a user made by a scoped token went to tenant %q", u.JSON("tenant_id").String())
		}
		if k := by["scoped admin"].Must(201, "POST", "/admin/keys", map[string]any{"name": "scoped"}); k.JSON("tenant_id").String() != authzTenant {
			t.Errorf("a key made by a scoped token went to tenant %q", k.JSON("tenant_id").String())
		}
		by["scoped admin"].Must(200, "PUT", "/admin/quota/policies/user/authz-scoped-user", map[string]any{"rpm": 5})
		by["scoped viewer"].Must(200, "GET", "/admin/users", nil)
		by["scoped viewer"].Must(200, "GET", "/admin/tenants/"+authzTenant, nil)
		if b := by["scoped billing"].Must(200, "GET", "/admin/credits/tenant/"+authzTenant, nil); b.JSON("balance_usd").Float() != 2 {
			t.Errorf("tenant balance after +3 and -1: %s", b.Body)
		}
		by["scoped billing"].Must(200, "GET", "/admin/billing/records.csv", nil)
		if r := by["scoped billing"].Must(200, "GET", "/admin/audit.csv", nil); !strings.HasPrefix(r.Body, "request_id,") {
			t.Errorf("audit.csv for a scoped billing token: %.300s", r.Body)
		}
	})
}

// TestAdminScopedTenantListBeyondAThousand: a scoped token lists its own tenant however many
// tenants sort before it. (The tenants are seeded through the store: a thousand API calls would
// only slow the test down.)
func TestAdminScopedTenantListBeyondAThousand(t *testing.T) {
	s := newServer(t, backend{})
	c := s.client(t)
	for i := 0; i < 1001; i++ {
		if err := s.store.CreateTenant(context.Background(), store.Tenant{ID: fmt.Sprintf("a%04d", i), Name: "filler"}); err != nil {
			t.Fatal(err)
		}
	}
	c.Must(201, "POST", "/admin/tenants", map[string]any{"id": "zz-mine", "name": "mine"})
	scoped := c.As(c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "s", "role": "viewer", "tenant_id": "zz-mine"}).JSON("token").String())
	for _, q := range []string{"", "?q=mine", "?q=zz"} {
		if ids := scoped.Must(200, "GET", "/admin/tenants"+q, nil).IDs(); !slices.Equal(ids, []string{"zz-mine"}) {
			t.Errorf("GET /admin/tenants%s with a token scoped to zz-mine: %v, want [zz-mine]", q, ids)
		}
	}
	if ids := scoped.Must(200, "GET", "/admin/tenants?q=filler", nil).IDs(); len(ids) != 0 {
		t.Errorf("q=filler (not its tenant's name) shows %v", ids)
	}
}

// TestScopedTokenCannotProbeUserIDs: creating a user whose id belongs to another tenant tells a
// token scoped to a tenant no more than any other route does (the 404 of a user it cannot see),
// where a 409 used to confirm that the user exists; an unscoped token still gets the 409, and so
// does a scoped one for a user of its own tenant.
func TestScopedTokenCannotProbeUserIDs(t *testing.T) {
	s := newServer(t, backend{})
	c := s.client(t)
	for _, id := range []string{"probe-a", "probe-b"} {
		c.Must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": id})
	}
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "ua", "tenant_id": "probe-a"})
	c.Must(201, "POST", "/admin/users", map[string]any{"id": "ub", "tenant_id": "probe-b"})
	sa := c.As(c.Must(201, "POST", "/admin/tokens", map[string]any{"name": "sa", "role": "admin", "tenant_id": "probe-a"}).JSON("token").String())

	unseen := sa.Refused(404, "id", "GET", "/admin/users/no-such-user", nil)
	other := sa.Refused(404, "id", "POST", "/admin/users", map[string]any{"id": "ub"})
	if a, b := unseen.JSON("error").Raw, other.JSON("error").Raw; a != b {
		t.Errorf("a user of another tenant: %s; a user that does not exist: %s", b, a)
	}
	sa.Refused(404, "user_id", "POST", "/admin/keys", map[string]any{"name": "k", "user_id": "ub"})
	sa.Refused(409, "id", "POST", "/admin/users", map[string]any{"id": "ua"})
	c.Refused(409, "id", "POST", "/admin/users", map[string]any{"id": "ub"})
	if u := c.Must(200, "GET", "/admin/users/ub", nil); u.JSON("tenant_id").String() != "probe-b" {
		t.Errorf("ub after the scoped attempts: %s", u.Body)
	}
}
