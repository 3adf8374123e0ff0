package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// testSecretKey is the secret key of the catalog tests (base64 of 32 bytes), and testSecretKey2
// the one a rotation moves to.
var (
	testSecretKey  = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	testSecretKey2 = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// apiSecret is the credential the catalog tests store through the admin API; it must never be
// seen again, in an answer, a log line or a database row.
const apiSecret = "sk-api-created-credential-9f8e7d6c5b4a"

func withSecretKey(current string, previous ...string) envOption {
	return func(c *Config) { c.Secrets.Key, c.Secrets.PreviousKeys = current, previous }
}

// adminCatalogEntry is a provider or model as the admin API answers it (the fields the tests read).
type adminCatalogEntry struct {
	Name              string  `json:"name"`
	Origin            string  `json:"origin"`
	Type              string  `json:"type"`
	BaseURL           string  `json:"base_url"`
	APIKeyFingerprint *string `json:"api_key_fingerprint"`
	KeyID             string  `json:"key_id"`
	Shadowed          bool    `json:"shadowed"`
	Strategy          string  `json:"strategy"`
	TokenMultiplier   float64 `json:"token_multiplier"`
	Deployments       []struct {
		ID        string `json:"id"`
		Provider  string `json:"provider"`
		Model     string `json:"model"`
		Weight    int    `json:"weight"`
		Priority  int    `json:"priority"`
		Reasoning bool   `json:"reasoning"`
	} `json:"deployments"`
}

// catalogCall sends an admin request and decodes a 2xx answer into out (nil: not decoded), failing
// on another status than want.
func (e *env) catalogCall(a *app, method, path, body string, want int, out any) []byte {
	e.t.Helper()
	status, raw := e.adminCall(a, method, path, body)
	if status != want {
		e.t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, status, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return raw
}

// catalogList reads GET path (a list) of replica a, by name.
func (e *env) catalogList(a *app, path string) (map[string]adminCatalogEntry, []byte) {
	e.t.Helper()
	var list struct {
		Object string              `json:"object"`
		Data   []adminCatalogEntry `json:"data"`
	}
	raw := e.catalogCall(a, http.MethodGet, path, "", http.StatusOK, &list)
	if list.Object != "list" {
		e.t.Fatalf("GET %s: %s", path, raw)
	}
	out := map[string]adminCatalogEntry{}
	for _, d := range list.Data {
		out[d.Name] = d
	}
	return out, raw
}

// storedSecrets reads the secret column of every catalog row straight from the database.
func (e *env) storedSecrets() []string {
	e.t.Helper()
	ctx := context.Background()
	var out []string
	if e.cfg.DatabaseURL != "" {
		conn, err := pgx.Connect(ctx, e.cfg.DatabaseURL)
		if err != nil {
			e.t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT coalesce(secret, '') || ' ' || spec::text FROM catalog_entries`)
		if err != nil {
			e.t.Fatal(err)
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			e.t.Fatal(err)
		}
		return out
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.cfg.DataDir, "llmgate.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT coalesce(secret, '') || ' ' || spec FROM catalog_entries`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestCatalogCRUD drives /admin/providers and /admin/models end to end on both stores: a provider
// and a model created over the API serve at once, are listed beside the file's with their origin,
// change and go; bad providers and models are refused naming the field; the credential is sealed
// in the database and shown nowhere, in no answer and no log line; every change is audited.
func TestCatalogCRUD(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"embedded":         {withSecretKey(testSecretKey)},
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t)), withSecretKey(testSecretKey)},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			var logs testlog.Buffer
			app := e.replica(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			upURL := e.cfg.Providers[0].BaseURL // the mock that serves "up-model" and wants upstreamKey

			// A provider whose credential the upstream refuses, then the right one through PATCH.
			var p adminCatalogEntry
			raw := e.catalogCall(app, http.MethodPost, "/admin/providers",
				`{"name":"apiup","type":"openai","base_url":"`+upURL+`","api_key":"`+apiSecret+`","headers":{"X-Team":"blue"}}`, http.StatusCreated, &p)
			if p.Name != "apiup" || p.Origin != "api" || p.Type != "openai" || p.BaseURL != upURL || p.APIKeyFingerprint == nil ||
				*p.APIKeyFingerprint != secrets.Fingerprint(apiSecret) || p.KeyID != secrets.KeyID([]byte("0123456789abcdef0123456789abcdef")) {
				t.Fatalf("POST /admin/providers answered %s", raw)
			}
			var m adminCatalogEntry
			e.catalogCall(app, http.MethodPost, "/admin/models",
				`{"name":"api-model","deployments":[{"provider":"apiup","model":"up-model","weight":2}]}`, http.StatusCreated, &m)
			if m.Name != "api-model" || m.Origin != "api" || len(m.Deployments) != 1 || m.Deployments[0].ID != "apiup/up-model" || m.Deployments[0].Weight != 2 {
				t.Fatalf("POST /admin/models answered %+v", m)
			}
			// The upstream wants upstreamKey: the API's credential is refused there (a 401 relayed).
			if got := e.chatStatus(app, e.key, "api-model"); got == http.StatusOK {
				t.Fatalf("chat with the wrong upstream credential: %d", got)
			}
			e.catalogCall(app, http.MethodPatch, "/admin/providers/apiup", `{"api_key":"`+upstreamKey+`"}`, http.StatusOK, &p)
			if p.APIKeyFingerprint == nil || *p.APIKeyFingerprint != secrets.Fingerprint(upstreamKey) {
				t.Fatalf("PATCH api_key answered %+v", p)
			}
			if got := e.chatStatus(app, e.key, "api-model"); got != http.StatusOK {
				t.Fatalf("chat through the API's model: %d", got)
			}
			// Back to the secret that must never be seen (the upstream refuses it; that is fine).
			e.catalogCall(app, http.MethodPatch, "/admin/providers/apiup", `{"api_key":"`+apiSecret+`"}`, http.StatusOK, nil)

			// Lists: the file's entries and the API's, each with its origin.
			provs, rawList := e.catalogList(app, "/admin/providers")
			if provs["up"].Origin != "file" || provs["apiup"].Origin != "api" || provs["up"].APIKeyFingerprint == nil ||
				*provs["up"].APIKeyFingerprint != secrets.Fingerprint(upstreamKey) {
				t.Errorf("GET /admin/providers: %s", rawList)
			}
			models, rawList := e.catalogList(app, "/admin/models")
			if models["gpt-test"].Origin != "file" || models["api-model"].Origin != "api" || len(models["failover"].Deployments) != 2 {
				t.Errorf("GET /admin/models: %s", rawList)
			}
			e.catalogCall(app, http.MethodGet, "/admin/models/api-model", "", http.StatusOK, &m)
			e.catalogCall(app, http.MethodGet, "/admin/providers/up", "", http.StatusOK, &p)
			if p.Origin != "file" {
				t.Errorf("GET /admin/providers/up: %+v", p)
			}
			e.catalogCall(app, http.MethodPatch, "/admin/models/api-model",
				`{"token_multiplier":3,"deployments":[{"provider":"apiup","model":"up-model","reasoning":true},{"provider":"up","model":"other-model","priority":1}]}`, http.StatusOK, &m)
			if len(m.Deployments) != 2 || m.Deployments[1].Provider != "up" || m.TokenMultiplier != 3 || !m.Deployments[0].Reasoning || m.Deployments[1].Reasoning {
				t.Errorf("PATCH /admin/models answered %+v", m)
			}
			e.catalogCall(app, http.MethodGet, "/admin/models/api-model", "", http.StatusOK, &m)
			if m.TokenMultiplier != 3 || !m.Deployments[0].Reasoning {
				t.Errorf("GET after PATCH: %+v", m)
			}

			// Bad input, refused naming the field; nothing stored.
			for _, bad := range []struct{ what, method, path, body, code, param string }{
				{"unknown type", "POST", "/admin/providers", `{"name":"x1","type":"openia","base_url":"https://api.example.com","api_key":"k"}`, "invalid_value", "type"},
				{"no type", "POST", "/admin/providers", `{"name":"x1","base_url":"https://api.example.com","api_key":"k"}`, "invalid_value", "type"},
				{"invalid URL", "POST", "/admin/providers", `{"name":"x1","type":"openai","base_url":"ht!tp://bad url","api_key":"k"}`, "invalid_value", "base_url"},
				{"no base_url", "POST", "/admin/providers", `{"name":"x1","type":"openai","api_key":"k"}`, "invalid_value", "base_url"},
				{"missing credentials", "POST", "/admin/providers", `{"name":"x1","type":"deepseek"}`, "invalid_value", "api_key"},
				{"loopback refused by the outbound policy", "POST", "/admin/providers", `{"name":"x1","type":"openai","base_url":"http://127.0.0.2:9/v1","api_key":"k"}`, "invalid_value", "base_url"},
				{"metadata address refused before any connect", "POST", "/admin/providers", `{"name":"x1","type":"openai","base_url":"http://169.254.169.254/v1","api_key":"k"}`, "invalid_value", "base_url"},
				{"bad name", "POST", "/admin/providers", `{"name":"a b","type":"mock"}`, "invalid_value", "name"},
				{"unknown field", "POST", "/admin/providers", `{"name":"x1","type":"mock","region":"eu"}`, "invalid_body", "region"},
				{"file provider's name", "POST", "/admin/providers", `{"name":"up","type":"mock"}`, "defined_in_file", "name"},
				{"API provider twice", "POST", "/admin/providers", `{"name":"apiup","type":"mock"}`, "provider_exists", "name"},
				{"file provider changed", "PATCH", "/admin/providers/up", `{"base_url":"https://x.example/v1"}`, "defined_in_file", "name"},
				{"file provider deleted", "DELETE", "/admin/providers/up", ``, "defined_in_file", "name"},
				{"provider in use", "DELETE", "/admin/providers/apiup", ``, "provider_in_use", "name"},
				{"unknown provider", "GET", "/admin/providers/nope", ``, "provider_not_found", "name"},
				{"model of an unknown provider", "POST", "/admin/models", `{"name":"m1","deployments":[{"provider":"nope","model":"x"}]}`, "invalid_value", "deployments[0].provider"},
				{"model without deployments", "POST", "/admin/models", `{"name":"m1","deployments":[]}`, "invalid_value", "deployments"},
				{"bad strategy", "POST", "/admin/models", `{"name":"m1","strategy":"fastest","deployments":[{"provider":"up"}]}`, "invalid_value", "strategy"},
				{"token multiplier too large", "POST", "/admin/models", `{"name":"m1","token_multiplier":5000,"deployments":[{"provider":"up"}]}`, "invalid_value", "token_multiplier"},
				{"negative weight", "POST", "/admin/models", `{"name":"m1","deployments":[{"provider":"up","weight":-1}]}`, "invalid_value", "deployments[0].weight"},
				{"bad breaker", "POST", "/admin/models", `{"name":"m1","deployments":[{"provider":"up","breaker":{"failure_ratio":2}}]}`, "invalid_value", "deployments[0].breaker.failure_ratio"},
				{"bad duration", "POST", "/admin/models", `{"name":"m1","deployments":[{"provider":"up","timeouts":{"total":"soon"}}]}`, "invalid_body", "deployments"},
				{"file model's name", "POST", "/admin/models", `{"name":"gpt-test","deployments":[{"provider":"up"}]}`, "defined_in_file", "name"},
				{"file model changed", "PATCH", "/admin/models/gpt-test", `{"strategy":"latency"}`, "defined_in_file", "name"},
				{"unknown model", "DELETE", "/admin/models/nope", ``, "model_not_found", "name"},
			} {
				status, raw := e.adminCall(app, bad.method, bad.path, bad.body)
				want := http.StatusBadRequest
				switch bad.code {
				case "defined_in_file", "provider_exists", "provider_in_use":
					want = http.StatusConflict
				case "provider_not_found", "model_not_found":
					want = http.StatusNotFound
				}
				adminErr(t, bad.what, status, raw, want, bad.code, bad.param)
			}
			if provs, _ := e.catalogList(app, "/admin/providers"); len(provs) != 4 {
				t.Errorf("after the refusals %d providers are listed, want 4 (3 file, 1 API)", len(provs))
			}

			// The credential is sealed in the database.
			rows := e.storedSecrets()
			if len(rows) != 2 {
				t.Fatalf("catalog rows: %q", rows)
			}
			sealedSeen := false
			for _, r := range rows {
				if strings.Contains(r, apiSecret) || strings.Contains(r, upstreamKey) {
					t.Errorf("a catalog row holds a credential in the clear: %s", r)
				}
				sealedSeen = sealedSeen || strings.HasPrefix(r, "v1:")
			}
			if !sealedSeen {
				t.Errorf("no sealed credential in the rows: %q", rows)
			}

			// Deletion: the model, then the provider; the model answers 404 at once.
			e.catalogCall(app, http.MethodDelete, "/admin/models/api-model", "", http.StatusNoContent, nil)
			if got := e.chatStatus(app, e.key, "api-model"); got != http.StatusNotFound {
				t.Errorf("chat to the deleted model: %d, want 404", got)
			}
			e.catalogCall(app, http.MethodDelete, "/admin/providers/apiup", "", http.StatusNoContent, nil)
			if provs, _ := e.catalogList(app, "/admin/providers"); len(provs) != 3 {
				t.Errorf("after the deletion %d providers, want the file's 3", len(provs))
			}

			// The audit log has every change, without the credential.
			status, audit := e.adminCall(app, http.MethodGet, "/admin/audit-log?limit=100", "")
			for _, action := range []string{"provider.create", "provider.update", "provider.delete", "model.create", "model.update", "model.delete"} {
				if !strings.Contains(string(audit), `"action":"`+action+`"`) {
					t.Errorf("audit log (%d) lacks %s: %s", status, action, audit)
				}
			}
			for what, s := range map[string]string{"the audit log": string(audit), "the log": logs.String()} {
				if strings.Contains(s, apiSecret) {
					t.Errorf("%s holds the API's credential", what)
				}
			}
			if !strings.Contains(logs.String(), "catalog applied") {
				t.Errorf("the log does not show the catalog being applied: %s", logs.String())
			}
		})
	}
}

// TestCatalogReachesReplicas: a model created over the API on one replica serves on another
// within seconds, and answers 404 there once deleted: through Redis pub/sub, or through the store
// poll without Redis.
func TestCatalogReachesReplicas(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"postgres + redis":          {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t)), withSecretKey(testSecretKey)},
		"postgres, no redis (poll)": {withPostgres(t), withSecretKey(testSecretKey)},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			other := e.replica(nil)
			upURL := e.cfg.Providers[0].BaseURL
			if got := e.chatStatus(other, e.key, "replicated"); got != http.StatusNotFound {
				t.Fatalf("before: %d, want 404", got)
			}
			e.catalogCall(e.app, http.MethodPost, "/admin/providers",
				`{"name":"apiup","type":"openai","base_url":"`+upURL+`","api_key":"`+upstreamKey+`"}`, http.StatusCreated, nil)
			e.catalogCall(e.app, http.MethodPost, "/admin/models",
				`{"name":"replicated","deployments":[{"provider":"apiup","model":"up-model"}]}`, http.StatusCreated, nil)
			waitFor(t, 5*time.Second, "the other replica to serve the new model", func() bool {
				return e.chatStatus(other, e.key, "replicated") == http.StatusOK
			})
			if ms, raw := e.catalogList(other, "/admin/models"); ms["replicated"].Origin != "api" {
				t.Errorf("the other replica's list: %s", raw)
			}
			e.catalogCall(e.app, http.MethodDelete, "/admin/models/replicated", "", http.StatusNoContent, nil)
			waitFor(t, 5*time.Second, "the other replica to forget the model", func() bool {
				return e.chatStatus(other, e.key, "replicated") == http.StatusNotFound
			})
		})
	}
}

// deploymentTest is the answer of POST /admin/deployments/{id}/test.
type deploymentTest struct {
	Deployment    string  `json:"deployment"`
	Provider      string  `json:"provider"`
	UpstreamModel string  `json:"upstream_model"`
	OK            bool    `json:"ok"`
	Status        int     `json:"status"`
	LatencyMs     float64 `json:"latency_ms"`
	Answer        string  `json:"answer"`
	Error         *string `json:"error"`
}

// TestDeploymentTestCall: POST /admin/deployments/{id}/test sends one request through the
// deployment's adapter to the loopback mock: a healthy one answers with its reply and latency, an
// upstream answering 500 and one that refuses connections answer ok false with the error, and
// none of it moves the breaker or writes a usage record.
func TestDeploymentTestCall(t *testing.T) {
	down := newSwitchable(t, mock.Options{})
	down.Down.Store(true)
	e := newEnv(t, withRouting([]ProviderConfig{openaiProvider("down", down.Server.URL)},
		providers.ModelConfig{Name: "downmodel", Deployments: []providers.DeploymentConfig{{ID: "down/x", Provider: "down", Model: "x"}}}))
	test := func(id, body string) deploymentTest {
		t.Helper()
		var r deploymentTest
		raw := e.catalogCall(e.app, http.MethodPost, "/admin/deployments/"+id+"/test", body, http.StatusOK, &r)
		if r.Deployment != id || strings.Contains(string(raw), upstreamKey) {
			t.Errorf("test of %s answered %s", id, raw)
		}
		return r
	}
	if r := test("up/up-model", ""); !r.OK || r.Status != 200 || r.Answer == "" || r.LatencyMs <= 0 || r.Error != nil || r.UpstreamModel != "up-model" {
		t.Errorf("healthy deployment: %+v", r)
	}
	if r := test("up/up-model", `{"endpoint":"embeddings"}`); !r.OK || !strings.Contains(r.Answer, "dimensions") {
		t.Errorf("healthy deployment, embeddings: %+v", r)
	}
	if r := test("down/x", ""); r.OK || r.Status != 500 || r.Error == nil || !strings.Contains(*r.Error, "simulated outage") {
		t.Errorf("deployment answering 500: %+v", r)
	}
	if r := test("dead/m", ""); r.OK || r.Status != 0 || r.Error == nil || *r.Error == "" {
		t.Errorf("deployment refusing connections: %+v", r)
	}
	// Ten failed tests do not open the breaker: tests bypass it.
	for range 10 {
		test("down/x", "")
	}
	if d := e.deployment(e.app, "down/x"); d.Health == nil || d.Health.Breaker != "closed" || d.Health.Failed != 0 {
		t.Errorf("after failed tests the deployment's health is %+v, want a closed breaker and no failure counted", d.Health)
	}
	for _, bad := range []struct{ what, path, body, code, param string }{
		{"unknown deployment", "/admin/deployments/nope/x/test", "", "deployment_not_found", "id"},
		{"no /test", "/admin/deployments/up/up-model", "", "unknown_url", ""},
		{"bad endpoint", "/admin/deployments/up/up-model/test", `{"endpoint":"images/generations"}`, "invalid_value", "endpoint"},
	} {
		status, raw := e.adminCall(e.app, http.MethodPost, bad.path, bad.body)
		want := http.StatusNotFound
		if bad.code == "invalid_value" {
			want = http.StatusBadRequest
		}
		adminErr(t, bad.what, status, raw, want, bad.code, bad.param)
	}
	if recs := e.allUsage(0); len(recs) != 0 {
		t.Errorf("test calls wrote %d usage records", len(recs))
	}
}

// TestHealthCheckOpensBreaker: with the active health check on, a dead loopback deployment of a
// model nobody calls has its breaker opened by the probes alone, while a healthy one's stays
// closed with its probes counted as successes.
func TestHealthCheckOpensBreaker(t *testing.T) {
	hc := providers.HealthCheck{Interval: 100 * time.Millisecond, Timeout: 2 * time.Second}
	e := newEnv(t, withRouting(nil, providers.ModelConfig{Name: "idle", Deployments: []providers.DeploymentConfig{
		{ID: "idle/dead", Provider: "dead", Model: "x", HealthCheck: hc, Breaker: providers.BreakerConfig{ConsecutiveFailures: 2}},
		{ID: "idle/up", Provider: "up", Model: "up-model", HealthCheck: hc},
	}}))
	// The file's other deployments have no health check: they are never probed.
	waitFor(t, 10*time.Second, "the probes to open the dead deployment's breaker", func() bool {
		d := e.deployment(e.app, "idle/dead")
		return d.Health != nil && d.Health.Breaker == "open"
	})
	waitFor(t, 10*time.Second, "the healthy deployment's probes to succeed", func() bool {
		d := e.deployment(e.app, "idle/up")
		return d.Health != nil && d.Health.Succeeded >= 2 && d.Health.Breaker == "closed" && d.Health.Failed == 0
	})
	if d := e.deployment(e.app, "up/other-model"); d.Health == nil || d.Health.Succeeded+d.Health.Failed != 0 {
		t.Errorf("a deployment without health check was probed: %+v", d.Health)
	}
	if recs := e.allUsage(0); len(recs) != 0 {
		t.Errorf("health checks wrote %d usage records", len(recs))
	}
}

// TestCatalogWithoutSecretKey: without a secret key a provider credential is refused, naming
// api_key, and nothing is stored; a keyless type is still accepted.
func TestCatalogWithoutSecretKey(t *testing.T) {
	e := newEnv(t)
	status, raw := e.adminCall(e.app, http.MethodPost, "/admin/providers",
		`{"name":"ds","type":"deepseek","api_key":"`+apiSecret+`"}`)
	adminErr(t, "credential without a secret key", status, raw, http.StatusBadRequest, "secret_key_required", "api_key")
	if strings.Contains(string(raw), apiSecret) {
		t.Errorf("the refusal echoes the credential: %s", raw)
	}
	status, raw = e.adminCall(e.app, http.MethodPost, "/admin/secrets/reencrypt", "")
	adminErr(t, "reencrypt without a secret key", status, raw, http.StatusBadRequest, "secret_key_required", "")
	if rows := e.storedSecrets(); len(rows) != 0 {
		t.Fatalf("rows stored after the refusal: %q", rows)
	}
	e.catalogCall(e.app, http.MethodPost, "/admin/providers", `{"name":"local","type":"mock"}`, http.StatusCreated, nil)
}

// TestSecretKeyRotation: credentials sealed with the old key keep working on a replica whose
// current key is new (the old one kept as previous); POST /admin/secrets/reencrypt seals them
// with the new key, after which a replica with the new key alone serves them.
func TestSecretKeyRotation(t *testing.T) {
	e := newEnv(t, withPostgres(t), withSecretKey(testSecretKey))
	upURL := e.cfg.Providers[0].BaseURL
	e.catalogCall(e.app, http.MethodPost, "/admin/providers",
		`{"name":"apiup","type":"openai","base_url":"`+upURL+`","api_key":"`+upstreamKey+`"}`, http.StatusCreated, nil)
	e.catalogCall(e.app, http.MethodPost, "/admin/models",
		`{"name":"rotated","deployments":[{"provider":"apiup","model":"up-model"}]}`, http.StatusCreated, nil)
	oldID, newID := secrets.KeyID([]byte("0123456789abcdef0123456789abcdef")), secrets.KeyID([]byte("fedcba9876543210fedcba9876543210"))
	sealedBy := func() string {
		t.Helper()
		for _, r := range e.storedSecrets() {
			if strings.HasPrefix(r, "v1:") {
				id, _ := secrets.SealedBy(strings.Fields(r)[0])
				return id
			}
		}
		t.Fatal("no sealed credential stored")
		return ""
	}
	if got := sealedBy(); got != oldID {
		t.Fatalf("sealed by %s, want the old key %s", got, oldID)
	}

	// Step 2: the new key current, the old one previous.
	withKey := func(current string, previous ...string) *app {
		saved := e.cfg.Secrets
		withSecretKey(current, previous...)(&e.cfg)
		defer func() { e.cfg.Secrets = saved }()
		return e.replica(nil)
	}
	mid := withKey(testSecretKey2, testSecretKey)
	if got := e.chatStatus(mid, e.key, "rotated"); got != http.StatusOK {
		t.Fatalf("with the old key as previous: %d", got)
	}
	var out struct {
		KeyID      string   `json:"key_id"`
		Resealed   []string `json:"resealed"`
		Unchanged  int      `json:"unchanged"`
		Unreadable []string `json:"unreadable"`
	}
	e.catalogCall(mid, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
	if out.KeyID != newID || len(out.Resealed) != 1 || out.Resealed[0] != "apiup" || out.Unchanged != 0 || len(out.Unreadable) != 0 {
		t.Fatalf("reencrypt answered %+v", out)
	}
	if got := sealedBy(); got != newID {
		t.Fatalf("after reencrypt sealed by %s, want the new key %s", got, newID)
	}
	e.catalogCall(mid, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
	if len(out.Resealed) != 0 || out.Unchanged != 1 {
		t.Errorf("a second reencrypt answered %+v", out)
	}
	// Step 4: the new key alone.
	last := withKey(testSecretKey2)
	if got := e.chatStatus(last, e.key, "rotated"); got != http.StatusOK {
		t.Fatalf("with the new key alone: %d", got)
	}
	var p adminCatalogEntry
	e.catalogCall(last, http.MethodGet, "/admin/providers/apiup", "", http.StatusOK, &p)
	if p.KeyID != newID {
		t.Errorf("key_id %s, want %s", p.KeyID, newID)
	}
	// A replica that has only a key that never sealed it leaves the provider and its model out.
	var logs testlog.Buffer
	saved := e.cfg.Secrets
	e.cfg.Secrets = SecretsConfig{Key: base64.StdEncoding.EncodeToString([]byte("another-key-of-thirty-two-bytes!"))}
	stranger := e.replica(slog.New(slog.NewJSONHandler(&logs, nil)))
	e.cfg.Secrets = saved
	if got := e.chatStatus(stranger, e.key, "rotated"); got != http.StatusNotFound {
		t.Errorf("with a key that opens nothing: %d, want 404", got)
	}
	if len(logs.Lines("apiup", "does not open")) == 0 || strings.Contains(logs.String(), upstreamKey) {
		t.Errorf("the log should name the provider whose credential does not open, and no credential: %s", logs.String())
	}
}

// TestCLICatalog: llmgate providers and models create, list, update and delete through the
// admin API, and deployments test calls one; the credential never reaches the output.
func TestCLICatalog(t *testing.T) {
	e := newEnv(t, withSecretKey(testSecretKey))
	cliAgainst(t, e)
	upURL := e.cfg.Providers[0].BaseURL
	out := cliOK(t, "providers", "create", "cliup", "--type", "openai", "--base-url", upURL, "--api-key", upstreamKey, "--header", "X-Team=cli")
	if field(t, out, "origin") != "api" || field(t, out, "api_key_fingerprint") != secrets.Fingerprint(upstreamKey) || strings.Contains(out, upstreamKey) {
		t.Errorf("providers create printed:\n%s", out)
	}
	if out = cliOK(t, "providers", "list"); !row(out, `up +file +openai `) || !row(out, `cliup +api +openai `) || strings.Contains(out, upstreamKey) {
		t.Errorf("providers list printed:\n%s", out)
	}
	out = cliOK(t, "models", "create", "team/cli-model", "--deployments", `[{"provider":"cliup","model":"up-model"}]`)
	if field(t, out, "origin") != "api" {
		t.Errorf("models create printed:\n%s", out)
	}
	if got := e.chatStatus(e.app, e.key, "team/cli-model"); got != http.StatusOK {
		t.Errorf("chat to the CLI's model: %d", got)
	}
	if out = cliOK(t, "models", "update", "team/cli-model", "--strategy", "latency"); field(t, out, "strategy") != "latency" {
		t.Errorf("models update printed:\n%s", out)
	}
	if out = cliOK(t, "models", "list"); !row(out, `team/cli-model +api +latency `) || !row(out, `gpt-test +file `) {
		t.Errorf("models list printed:\n%s", out)
	}
	var test deploymentTest
	cliJSON(t, &test, "deployments", "test", "cliup/up-model")
	if !test.OK || test.Status != 200 {
		t.Errorf("deployments test --json = %+v", test)
	}
	if msg := cliFails(t, "providers", "create", "bad", "--type", "telepathy", "--api-key", "k"); !strings.Contains(msg, "type: unknown type") {
		t.Errorf("providers create with a bad type: %s", msg)
	}
	cliOK(t, "models", "delete", "team/cli-model")
	cliOK(t, "providers", "delete", "cliup")
	if out = cliOK(t, "providers", "list"); strings.Contains(out, "cliup") {
		t.Errorf("providers list after delete printed:\n%s", out)
	}
}
