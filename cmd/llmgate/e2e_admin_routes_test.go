package main

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/quota"
)

// "Every endpoint end to end through the real HTTP listener against PostgreSQL and SQLite", made
// mechanical: the table below holds one real, successful call of every route the admin and public
// listeners register, and the test fails when a registered route has no row or a row names a
// route that is not registered. The rows run in order, each on what the rows before it made (a
// tenant, a user and a key, traffic through the public API so the ledger has rows, a price,
// credits, policies, a deployment override), and each checks a field of its answer besides the
// status. Edge cases and refusals live in the other e2e_admin_*_test.go files and in admin/.

// routeStep is one row of the table.
type routeStep struct {
	route route
	call  func(s *routeRun, t *testing.T)
}

func adminRoute(pattern string) route  { return routeOf("admin", pattern) }
func publicRoute(pattern string) route { return routeOf("public", pattern) }

// routeOf reads "METHOD /gin/path" as a route of a listener.
func routeOf(listener, pattern string) route {
	method, path, _ := strings.Cut(pattern, " ")
	return route{listener: listener, method: method, path: path}
}

// everyRouteSteps is the table, in the order it runs.
func everyRouteSteps() []routeStep {
	steps := []routeStep{
		{adminRoute("GET /health/live"), (*routeRun).adminLive},
		{adminRoute("GET /health/ready"), (*routeRun).adminReady},
		{adminRoute("GET /admin/openapi.yaml"), (*routeRun).openAPI},

		{adminRoute("POST /admin/tenants"), (*routeRun).createTenant},
		{adminRoute("GET /admin/tenants"), (*routeRun).listTenants},
		{adminRoute("GET /admin/tenants/:id"), (*routeRun).getTenant},
		{adminRoute("PATCH /admin/tenants/:id"), (*routeRun).patchTenant},
		{adminRoute("POST /admin/users"), (*routeRun).createUser},
		{adminRoute("GET /admin/users"), (*routeRun).listUsers},
		{adminRoute("GET /admin/users/:id"), (*routeRun).getUser},
		{adminRoute("PATCH /admin/users/:id"), (*routeRun).patchUser},
		{adminRoute("POST /admin/keys"), (*routeRun).createKey},
		{adminRoute("GET /admin/keys"), (*routeRun).listKeys},
		{adminRoute("GET /admin/keys/:id"), (*routeRun).getKey},
		{adminRoute("PATCH /admin/keys/:id"), (*routeRun).patchKey},
		{adminRoute("POST /admin/keys/:id/rotate"), (*routeRun).rotateKey},
		{adminRoute("DELETE /admin/keys/:id"), (*routeRun).revokeKey},
		{adminRoute("POST /admin/tokens"), (*routeRun).createToken},
		{adminRoute("GET /admin/tokens"), (*routeRun).listTokens},
		{adminRoute("GET /admin/tokens/:id"), (*routeRun).getToken},
		{adminRoute("DELETE /admin/tokens/:id"), (*routeRun).revokeToken},

		{adminRoute("PUT /admin/quota/policy/:userId"), (*routeRun).putUserPolicy},
		{adminRoute("GET /admin/quota/policy/:userId"), (*routeRun).getUserPolicy},
		{adminRoute("PUT /admin/quota/policies/:subjectType/:subjectId"), (*routeRun).putPolicy},
		{adminRoute("GET /admin/quota/policies/:subjectType/:subjectId"), (*routeRun).getPolicies},
		{adminRoute("GET /admin/quota/policies"), (*routeRun).listPolicies},
		{adminRoute("GET /admin/quota/tiers"), (*routeRun).listTiers},
		{adminRoute("DELETE /admin/quota/policies/:subjectType/:subjectId"), (*routeRun).deletePolicy},
		{adminRoute("PUT /admin/pricing/*model"), (*routeRun).putPrice},
		{adminRoute("GET /admin/pricing"), (*routeRun).listPrices},
		{adminRoute("GET /admin/pricing/*model"), (*routeRun).priceHistory},
		{adminRoute("POST /admin/credits/:subjectType/:subjectId/topup"), (*routeRun).topUp},
		{adminRoute("POST /admin/credits/:subjectType/:subjectId/adjust"), (*routeRun).adjust},
		{adminRoute("GET /admin/deployments"), (*routeRun).listDeployments},
		{adminRoute("GET /admin/deployments/*id"), (*routeRun).getDeployment},
		{adminRoute("PATCH /admin/deployments/*id"), (*routeRun).patchDeployment},

		{publicRoute("GET /health/live"), (*routeRun).publicLive},
		{publicRoute("GET /health/ready"), (*routeRun).publicReady},
		{publicRoute("POST /v1/chat/completions"), (*routeRun).chat},
		{publicRoute("POST /v1/completions"), (*routeRun).completion},
		{publicRoute("POST /v1/embeddings"), (*routeRun).embeddings},
		{publicRoute("GET /v1/models"), (*routeRun).models},
		{publicRoute("GET /v1/models/*model"), (*routeRun).model},
		{publicRoute("GET /v1/providers"), (*routeRun).providers},
		{publicRoute("GET /v1/status"), (*routeRun).status},
		{publicRoute("GET /v1/usage"), (*routeRun).usage},

		{adminRoute("DELETE /admin/deployments/*id"), (*routeRun).resetDeployment},
		{adminRoute("GET /admin/credits/:subjectType/:subjectId"), (*routeRun).balance},
		{adminRoute("GET /admin/credits"), (*routeRun).listAccounts},
		{adminRoute("GET /admin/credits/:subjectType/:subjectId/entries"), (*routeRun).creditEntries},
		{adminRoute("GET /admin/audit"), (*routeRun).listUsage},
		{adminRoute("GET /admin/audit/:traceId"), (*routeRun).trace},
		{adminRoute("GET /admin/audit.csv"), (*routeRun).exportUsage},
		{adminRoute("GET /admin/billing/summary"), (*routeRun).billingSummary},
		{adminRoute("GET /admin/usage/series"), (*routeRun).usageSeries},
		{adminRoute("GET /admin/usage/top"), (*routeRun).usageTop},
		{adminRoute("GET /admin/billing/records.csv"), (*routeRun).billingCSV},
		{adminRoute("GET /admin/quota/usage/:userId"), (*routeRun).quotaUsage},
		{adminRoute("DELETE /admin/quota/session/:sessionId"), (*routeRun).clearSession},
		{adminRoute("GET /metrics"), (*routeRun).metrics},
		// The Responses API and the media endpoints come after the ledger's checks, which count
		// the run's chat, completion and embeddings requests exactly.
		{publicRoute("POST /v1/responses"), (*routeRun).createResponse},
		{publicRoute("GET /v1/responses/:id"), (*routeRun).getResponse},
		{publicRoute("POST /v1/responses/:id/cancel"), (*routeRun).cancelResponse},
		{publicRoute("DELETE /v1/responses/:id"), (*routeRun).deleteResponse},
		{publicRoute("POST /v1/images/generations"), (*routeRun).images},
		{publicRoute("POST /v1/moderations"), (*routeRun).moderations},
		{publicRoute("POST /v1/messages"), (*routeRun).messages},
		{publicRoute("POST /v1/messages/count_tokens"), (*routeRun).countTokens},
		{publicRoute("POST /v1/images/edits"), (*routeRun).imageEdits},
		{publicRoute("POST /v1/audio/transcriptions"), (*routeRun).transcriptions},
		{publicRoute("POST /v1/audio/translations"), (*routeRun).translations},
		{publicRoute("POST /v1/audio/speech"), (*routeRun).speech},
	}
	steps = append(steps, azureRouteSteps()...) // while the run's key and tenant are there
	steps = append(steps, alertRouteSteps()...) // while the run's user is there
	steps = append(steps, []routeStep{
		{adminRoute("DELETE /admin/quota/policy/:userId"), (*routeRun).deleteUserPolicy},
		{adminRoute("DELETE /admin/users/:id"), (*routeRun).deleteUser},
		{adminRoute("DELETE /admin/tenants/:id"), (*routeRun).deleteTenant},
		{adminRoute("GET /admin/audit-log"), (*routeRun).auditLog},
	}...)
	steps = append(steps, catalogRouteSteps()...)
	steps = append(steps, consoleRouteSteps()...)
	return append(steps, experimentRouteSteps()...)
}

// TestEveryAdminRouteOnBothStores runs the table against an embedded SQLite gateway and a
// PostgreSQL + Redis one.
func TestEveryAdminRouteOnBothStores(t *testing.T) {
	// Two requests a minute per session, for DELETE /admin/quota/session to have something to lift.
	sessionLimit := func(c *Config) { c.Quota.Session = quota.Limits{RPM: 2} }
	adminStores(t, func(t *testing.T, e *env) {
		steps := everyRouteSteps()
		if !checkRouteTable(t, e, steps) {
			t.FailNow() // a row of a route that does not exist would fail, and every row after it
		}
		sfx := uuid.NewString()[:8]
		s := &routeRun{e: e, tenant: "rt-" + sfx, user: "rt-user-" + sfx, session: "rt-sess-" + sfx, deployment: "up/other-model"}
		for _, st := range steps {
			done := false
			t.Run(st.route.String(), func(t *testing.T) {
				st.call(s, t)
				done = true
			})
			if !done {
				t.Fatalf("stopped after %s: the rows after it build on what it makes", st.route)
			}
		}
	}, sessionLimit, withSecretKey(testSecretKey))
}

// checkRouteTable compares the table with the routes both listeners register, reports every
// difference, and says whether every row names a registered route.
func checkRouteTable(t *testing.T, e *env, steps []routeStep) bool {
	t.Helper()
	registered := map[route]bool{}
	perListener := map[string]int{}
	for listener, srv := range map[string]*http.Server{"admin": e.app.admin, "public": e.app.public} {
		h, ok := srv.Handler.(interface{ Routes() gin.RoutesInfo })
		if !ok {
			t.Fatalf("the %s listener's handler (%T) cannot list its routes", listener, srv.Handler)
		}
		for _, ri := range h.Routes() {
			registered[route{listener: listener, method: ri.Method, path: ri.Path}] = true
			perListener[listener]++
		}
	}
	rowsOK := true
	inTable := map[route]bool{}
	for _, st := range steps {
		if inTable[st.route] {
			t.Errorf("the table has two rows for %s", st.route)
		}
		inTable[st.route] = true
		if !registered[st.route] {
			t.Errorf("the table has a row for %s, which is not registered", st.route)
			rowsOK = false
		}
	}
	var missing []string
	for r := range registered {
		if !inTable[r] {
			missing = append(missing, r.String())
		}
	}
	sort.Strings(missing)
	for _, r := range missing {
		t.Errorf("%s is registered, but TestEveryAdminRouteOnBothStores has no row calling it", r)
	}
	t.Logf("registered routes: %d admin, %d public; table rows: %d", perListener["admin"], perListener["public"], len(steps))
	return rowsOK
}

// routeRun is what one run of the table builds up.
type routeRun struct {
	e *env
	// The run's ids are its own: the package's tests share one Redis, which keys quota counters,
	// mirrored policies and sessions by them.
	tenant, user, session string
	keyID, key, oldKey    string
	keyRequestID          string // X-Request-Id of the key's creation, which its audit entry keeps
	tokenID, token        string
	priceVersion          string
	deployment            string // the one patched, shown by the public API, and reset
	// relays are the X-Request-Id of the user's answered gpt-test requests, every one of which
	// the ledger must show.
	relays          []string
	chatID, traceID string // the chat request followed into the ledger
	responseID      string // the response made through POST /v1/responses
	azureResponseID string // the response made through an Azure path's POST …/responses
}

// The gpt-test requests of the run and what the mock upstream counts for them: a chat prompt is
// 3 tokens plus its words and the answer 20 tokens; a completion's prompt is its words and its
// answer max_tokens; embeddings count their input's words.
const (
	routeChatBody       = `{"model":"gpt-test","messages":[{"role":"user","content":"route check"}]}`
	routeCompletionBody = `{"model":"gpt-test","prompt":"one two three","max_tokens":5}`
	routeEmbeddingsBody = `{"model":"gpt-test","input":["a b","c"]}`
	// At $1 per 1M input and $2 per 1M output tokens, i.e. 1 and 2 micro-USD a token:
	// chat 5×1 + 20×2 = 45, completion 3×1 + 5×2 = 13, embeddings 3×1 = 3 micro-USD.
	routeChatCost  = "0.000045"
	routePricedUSD = "0.000061"
	routeBalance   = "4.499939" // 5 topped up, 0.5 taken back, 0.000061 charged
)

func (s *routeRun) admin(t *testing.T) *admintest.Client { return newAdmClient(t, s.e) }

// public is a client of the public API with an API key.
func (s *routeRun) public(t *testing.T, key string) *admintest.Client {
	return admintest.NewClient(t, s.e.app.publicURL, key, s.e.http)
}

// relay sends one gpt-test request of the user's and remembers its id for the ledger checks.
func (s *routeRun) relay(t *testing.T, key, path, body string) admintest.Resp {
	t.Helper()
	r := s.public(t, key).Must(200, "POST", path, body)
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatalf("POST %s: no X-Request-Id", path)
	}
	s.relays = append(s.relays, id)
	return r
}

// waitRecorded polls the usage audit until it shows every relayed request: the usage ledger is
// written in the background. Rollups and charges are written with the records.
func (s *routeRun) waitRecorded(t *testing.T) {
	t.Helper()
	waitFor(t, 10*time.Second, "the usage records of every request", func() bool {
		seen := map[string]bool{}
		for _, it := range s.admin(t).Must(200, "GET", "/admin/audit?size=1000&userId="+s.user, nil).JSON("data").Array() {
			seen[it.Get("request_id").String()] = true
		}
		for _, id := range s.relays {
			if !seen[id] {
				return false
			}
		}
		return true
	})
}

func (s *routeRun) adminLive(t *testing.T) {
	if r := s.admin(t).As("").Must(200, "GET", "/health/live", nil); r.JSON("status").String() != "ok" {
		t.Errorf("admin /health/live: %s", r.Body)
	}
}

func (s *routeRun) adminReady(t *testing.T) {
	if r := s.admin(t).As("").Must(200, "GET", "/health/ready", nil); r.JSON("status").String() != "ok" {
		t.Errorf("admin /health/ready: %s", r.Body)
	}
}

func (s *routeRun) openAPI(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/openapi.yaml", nil)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/yaml") || !strings.HasPrefix(r.Body, "openapi: 3") ||
		!strings.Contains(r.Body, "\n  /admin/keys/{id}/rotate:") {
		t.Errorf("OpenAPI document: Content-Type %q, %.200s", r.Header.Get("Content-Type"), r.Body)
	}
}

func (s *routeRun) createTenant(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/tenants", map[string]any{"id": s.tenant, "name": "Route Check Ltd",
		"models": []string{"gpt-test", "other"}, "limits": map[string]any{"rpm": 1000}, "metadata": map[string]string{"plan": "gold"}})
	if r.JSON("id").String() != s.tenant || r.JSON("models").Raw != `["gpt-test","other"]` ||
		r.JSON("limits.rpm").Int() != 1000 || r.JSON("metadata.plan").String() != "gold" {
		t.Errorf("created tenant: %s", r.Body)
	}
}

func (s *routeRun) listTenants(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/tenants?q="+s.tenant, nil)
	if !admintest.SameSet(r.IDs(), []string{s.tenant}) || r.JSON("data.0.limits.rpm").Int() != 1000 {
		t.Errorf("tenants matching %s: %s", s.tenant, r.Body)
	}
}

func (s *routeRun) getTenant(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/tenants/"+s.tenant, nil)
	if r.JSON("name").String() != "Route Check Ltd" || r.JSON("created_at").String() == "" {
		t.Errorf("tenant: %s", r.Body)
	}
}

func (s *routeRun) patchTenant(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/tenants/"+s.tenant, map[string]any{"name": "Route Check Group"})
	if r.JSON("name").String() != "Route Check Group" || r.JSON("models").Raw != `["gpt-test","other"]` || r.JSON("updated_at").String() == "" {
		t.Errorf("patched tenant: %s", r.Body)
	}
}

func (s *routeRun) createUser(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/users", map[string]any{"id": s.user, "tenant_id": s.tenant,
		"email": "ops@route.example", "metadata": map[string]string{"team": "payments"}})
	if r.JSON("tenant_id").String() != s.tenant || r.JSON("tier").String() != "open" || r.JSON("email").String() != "ops@route.example" {
		t.Errorf("created user: %s", r.Body)
	}
}

func (s *routeRun) listUsers(t *testing.T) {
	if r := s.admin(t).Must(200, "GET", "/admin/users?tenant_id="+s.tenant, nil); !admintest.SameSet(r.IDs(), []string{s.user}) {
		t.Errorf("users of %s: %s", s.tenant, r.Body)
	}
}

func (s *routeRun) getUser(t *testing.T) {
	if r := s.admin(t).Must(200, "GET", "/admin/users/"+s.user, nil); r.JSON("email").String() != "ops@route.example" || r.JSON("metadata.team").String() != "payments" {
		t.Errorf("user: %s", r.Body)
	}
}

func (s *routeRun) patchUser(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/users/"+s.user, map[string]any{"external_id": "crm-42"})
	if r.JSON("external_id").String() != "crm-42" || r.JSON("email").String() != "ops@route.example" || r.JSON("updated_at").String() == "" {
		t.Errorf("patched user: %s", r.Body)
	}
}

func (s *routeRun) createKey(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/keys", map[string]any{"name": "route check", "user_id": s.user})
	s.keyID, s.key, s.keyRequestID = r.JSON("id").String(), r.JSON("key").String(), r.Header.Get("X-Request-Id")
	if !strings.HasPrefix(s.key, "sk-lg-") || !strings.HasPrefix(s.key, r.JSON("prefix").String()) || r.JSON("tenant_id").String() != s.tenant ||
		r.JSON("status").String() != "active" || s.keyID == "" || s.keyRequestID == "" {
		t.Fatalf("created key: %s", r.Body)
	}
}

func (s *routeRun) listKeys(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/keys?user_id="+s.user, nil)
	if !admintest.SameSet(r.IDs(), []string{s.keyID}) || r.JSON("data.0.key").Exists() || !strings.HasPrefix(s.key, r.JSON("data.0.prefix").String()) {
		t.Errorf("keys of %s: %s", s.user, r.Body)
	}
}

func (s *routeRun) getKey(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/keys/"+s.keyID, nil)
	if r.JSON("name").String() != "route check" || r.JSON("user_id").String() != s.user || r.JSON("key").Exists() {
		t.Errorf("key: %s", r.Body)
	}
}

func (s *routeRun) patchKey(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/keys/"+s.keyID, map[string]any{"name": "route check (renamed)", "limits": map[string]any{"rpm": 500}})
	if r.JSON("name").String() != "route check (renamed)" || r.JSON("limits.rpm").Int() != 500 {
		t.Errorf("patched key: %s", r.Body)
	}
}

// rotateKey: the new secret works at once and the old one through its grace period.
func (s *routeRun) rotateKey(t *testing.T) {
	r := s.admin(t).Must(200, "POST", "/admin/keys/"+s.keyID+"/rotate", map[string]any{"grace_seconds": 3600})
	until, err := time.Parse(time.RFC3339Nano, r.JSON("previous_key_expires_at").String())
	if left := time.Until(until); err != nil || left < 59*time.Minute || left > 61*time.Minute {
		t.Errorf("previous_key_expires_at %q, want an hour from now: %s", r.JSON("previous_key_expires_at").String(), r.Body)
	}
	s.oldKey, s.key = s.key, r.JSON("key").String()
	if !strings.HasPrefix(s.key, "sk-lg-") || s.key == s.oldKey || r.JSON("id").String() != s.keyID {
		t.Fatalf("rotated key: %s", r.Body)
	}
	s.relay(t, s.key, "/v1/chat/completions", routeChatBody)
	s.relay(t, s.oldKey, "/v1/chat/completions", routeChatBody)
}

// revokeKey revokes a key of its own, which the gateway then refuses.
func (s *routeRun) revokeKey(t *testing.T) {
	c := s.admin(t)
	spare := c.Must(201, "POST", "/admin/keys", map[string]any{"name": "spare", "tenant_id": s.tenant})
	if st := admChat(s.e, spare.JSON("key").String(), "gpt-test"); st != 200 {
		t.Fatalf("chat with the spare key: HTTP %d", st)
	}
	r := c.Must(200, "DELETE", "/admin/keys/"+spare.JSON("id").String(), nil)
	if r.JSON("status").String() != "revoked" || r.JSON("revoked_at").String() == "" {
		t.Errorf("revoked key: %s", r.Body)
	}
	admWaitChat(t, s.e, spare.JSON("key").String(), "gpt-test", 401, 5*time.Second, "the revoked key to be refused")
}
