package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/store"
)

// adminDeployment is a deployment as the admin API answers it.
type adminDeployment struct {
	ID            string   `json:"id"`
	Provider      string   `json:"provider"`
	UpstreamModel string   `json:"upstream_model"`
	Models        []string `json:"models"`
	Priority      int      `json:"priority"`
	FileWeight    int      `json:"file_weight"`
	Weight        int      `json:"weight"`
	Enabled       bool     `json:"enabled"`
	Override      *struct {
		Enabled   *bool     `json:"enabled"`
		Weight    *int      `json:"weight"`
		UpdatedBy string    `json:"updated_by"`
		UpdatedAt time.Time `json:"updated_at"`
	} `json:"override"`
	Health *struct {
		Breaker   string `json:"breaker"`
		Available bool   `json:"available"`
		Succeeded int64  `json:"succeeded"`
		Failed    int64  `json:"failed"`
	} `json:"health"`
}

// pairEnv is a gateway whose model "pair" has two deployments of equal priority and weight, on
// upstreams that count what they serve.
type pairEnv struct {
	*env
	a, b *switchable
}

func newPairEnv(t *testing.T, opts ...envOption) *pairEnv {
	a, b := newSwitchable(t, mock.Options{}), newSwitchable(t, mock.Options{})
	opts = append(opts, withRouting([]ProviderConfig{openaiProvider("a", a.Server.URL), openaiProvider("b", b.Server.URL)},
		providers.ModelConfig{Name: "pair", Deployments: []providers.DeploymentConfig{
			{ID: "pair/a", Provider: "a", Model: "m"}, {ID: "pair/b", Provider: "b", Model: "m"}}}))
	return &pairEnv{env: newEnv(t, opts...), a: a, b: b}
}

// adminCall sends one admin request to a replica and returns the status and body.
func (e *env) adminCall(a *app, method, path, body string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.adminURL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// patch changes a deployment on replica a and returns the answer, failing unless it is 200.
func (e *env) patch(a *app, id, body string) adminDeployment {
	e.t.Helper()
	status, raw := e.adminCall(a, http.MethodPatch, "/admin/deployments/"+id, body)
	if status != http.StatusOK {
		e.t.Fatalf("PATCH %s %s: %d %s", id, body, status, raw)
	}
	var d adminDeployment
	if err := json.Unmarshal(raw, &d); err != nil {
		e.t.Fatalf("PATCH %s: %v: %s", id, err, raw)
	}
	return d
}

// deployment reads one deployment from GET /admin/deployments/{id} of replica a.
func (e *env) deployment(a *app, id string) adminDeployment {
	e.t.Helper()
	status, raw := e.adminCall(a, http.MethodGet, "/admin/deployments/"+id, "")
	if status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", id, status, raw)
	}
	var d adminDeployment
	if err := json.Unmarshal(raw, &d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// adminErr checks an admin error answer: its status, code and (when want is not "-") param.
func adminErr(t *testing.T, what string, status int, raw []byte, wantStatus int, wantCode, wantParam string) {
	t.Helper()
	var b struct {
		Error struct {
			Message string  `json:"message"`
			Code    string  `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &b)
	param := ""
	if b.Error.Param != nil {
		param = *b.Error.Param
	}
	if status != wantStatus || b.Error.Code != wantCode || (wantParam != "-" && param != wantParam) || b.Error.Message == "" {
		t.Errorf("%s: %d %s, want %d with code %s, param %q", what, status, raw, wantStatus, wantCode, wantParam)
	}
}

// sendPair sends n chat requests for model to replica a and returns how many each upstream saw,
// failing on any answer other than want.
func (p *pairEnv) sendPair(a *app, model string, n, want int) (toA, toB int64) {
	p.t.Helper()
	a0, b0 := p.a.Seen.Load(), p.b.Seen.Load()
	body := []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`)
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/v1/chat/completions", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+p.key)
		resp, err := p.http.Do(req)
		if err != nil {
			p.t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			p.t.Fatalf("request %d for %s: %d %s, want %d", i, model, resp.StatusCode, raw, want)
		}
	}
	return p.a.Seen.Load() - a0, p.b.Seen.Load() - b0
}

// TestDeploymentOverrides drives the deployments admin API end to end on both stores: disabling a
// deployment sends all traffic to the other, a weight override shifts the share, all disabled is
// a 503 before any upstream call, DELETE restores the file's settings, a file reload keeps the
// overrides (also when the store cannot be read then), bad requests are 400/404 naming the
// field, and every change is in the admin audit log.
func TestDeploymentOverrides(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"embedded":         nil,
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))},
	} {
		t.Run(name, func(t *testing.T) {
			p := newPairEnv(t, opts...)
			app := p.app
			ctx := context.Background()
			if want := map[bool]string{true: "sqlite", false: "postgres"}[name == "embedded"]; !strings.HasPrefix(storeKind(app.cfg), want) {
				t.Fatalf("store %s, want %s", storeKind(app.cfg), want)
			}

			// The list: every deployment of the running table, as the file says.
			status, raw := p.adminCall(app, http.MethodGet, "/admin/deployments", "")
			var list struct {
				Object string            `json:"object"`
				Data   []adminDeployment `json:"data"`
			}
			if err := json.Unmarshal(raw, &list); status != 200 || err != nil || list.Object != "list" {
				t.Fatalf("GET /admin/deployments: %d %v %s", status, err, raw)
			}
			ids := map[string]adminDeployment{}
			for _, d := range list.Data {
				ids[d.ID] = d
			}
			pa := ids["pair/a"]
			if len(ids) != 7 || pa.Provider != "a" || pa.UpstreamModel != "m" || len(pa.Models) != 1 || pa.Models[0] != "pair" ||
				!pa.Enabled || pa.Weight != 1 || pa.FileWeight != 1 || pa.Override != nil || pa.Health == nil || pa.Health.Breaker != "closed" || !pa.Health.Available {
				t.Fatalf("GET /admin/deployments: %s", raw)
			}
			if !strings.Contains(string(raw), `"override":null`) || !strings.Contains(string(raw), `"last_failure":null`) {
				t.Errorf("a deployment without override or failure should say null: %s", raw)
			}
			if d := p.deployment(app, "pair/b"); d.ID != "pair/b" || d.Provider != "b" {
				t.Errorf("GET pair/b: %+v", d)
			}

			// Disable a: every request goes to b.
			d := p.patch(app, "pair/a", `{"enabled":false}`)
			if d.Enabled || d.Weight != 1 || d.Override == nil || d.Override.Enabled == nil || *d.Override.Enabled ||
				d.Override.Weight != nil || d.Override.UpdatedBy != "bootstrap" || d.Override.UpdatedAt.IsZero() || d.Health.Available {
				t.Fatalf("PATCH enabled=false answered %+v", d)
			}
			if toA, toB := p.sendPair(app, "pair", 20, 200); toA != 0 || toB != 20 {
				t.Errorf("with pair/a disabled: a saw %d, b %d of 20", toA, toB)
			}
			if m := p.pairStatus(); m.Status != "available" || m.Deployments != 2 || m.Available != 1 || m.Disabled != 1 {
				t.Errorf("/v1/status with one of two disabled: %+v, want available (1 available, 1 disabled)", m)
			}
			if st := p.deploymentStatus("pair/a"); st.Available {
				t.Errorf("/v1/providers shows the disabled deployment available: %+v", st)
			}

			// Enable it again with weight 9: it takes about 90% of the traffic.
			d = p.patch(app, "pair/a", `{"enabled":true,"weight":9}`)
			if !d.Enabled || d.Weight != 9 || d.FileWeight != 1 || *d.Override.Weight != 9 {
				t.Fatalf("PATCH weight 9 answered %+v", d)
			}
			toA, toB := p.sendPair(app, "pair", 100, 200)
			if toA+toB != 100 || toA < 75 || toB < 1 {
				t.Errorf("with weights 9:1, a saw %d and b %d of 100 requests", toA, toB)
			}

			// Both disabled: 503 without an upstream call, and the model shows unavailable.
			p.patch(app, "pair/a", `{"enabled":false}`)
			if d = p.patch(app, "pair/b", `{"enabled":false}`); d.Enabled || d.Weight != 1 {
				t.Fatalf("PATCH pair/b answered %+v", d)
			}
			resp := p.post(ctx, "/chat/completions", p.key, []byte(`{"model":"pair","messages":[{"role":"user","content":"hi"}]}`))
			typ, code, _ := apiError(t, resp)
			if resp.StatusCode != http.StatusServiceUnavailable || typ != "service_unavailable" || code != "deployments_disabled" {
				t.Errorf("all disabled: %d %s %s, want 503 deployments_disabled", resp.StatusCode, typ, code)
			}
			if toA, toB := p.sendPair(app, "pair", 3, http.StatusServiceUnavailable); toA+toB != 0 {
				t.Errorf("all disabled, yet the upstreams saw %d requests", toA+toB)
			}
			if m := p.pairStatus(); m.Status != "unavailable" || m.Available != 0 || m.Disabled != 2 {
				t.Errorf("/v1/status with all disabled: %+v, want unavailable", m)
			}
			if d := p.deployment(app, "pair/a"); d.Enabled || d.Weight != 9 {
				t.Errorf("pair/a after a PATCH of enabled only: %+v, want the weight override kept", d)
			}

			// DELETE: back to the file. A second DELETE finds nothing.
			status, raw = p.adminCall(app, http.MethodDelete, "/admin/deployments/pair/b", "")
			if err := json.Unmarshal(raw, &d); status != 200 || err != nil || !d.Enabled || d.Weight != 1 || d.Override != nil {
				t.Fatalf("DELETE pair/b: %d %s", status, raw)
			}
			if toA, toB := p.sendPair(app, "pair", 10, 200); toA != 0 || toB != 10 {
				t.Errorf("after DELETE of pair/b's override: a saw %d, b %d of 10", toA, toB)
			}
			status, raw = p.adminCall(app, http.MethodDelete, "/admin/deployments/pair/b", "")
			adminErr(t, "DELETE without override", status, raw, 404, "override_not_found", "id")

			// Nothing changed in the store: the poll does not rebuild the routing table.
			before := app.gateway.Router()
			if err := app.refreshOverrides(ctx); err != nil || app.gateway.Router() != before {
				t.Errorf("refreshing unchanged overrides rebuilt the routing table (err %v)", err)
			}

			// A file reload keeps the overrides: pair/a stays disabled with weight 9 over the
			// file's new weight 3, and the new model is served.
			path := p.writePairConfig(3)
			if err := app.reload(path, nil); err != nil {
				t.Fatal(err)
			}
			if d := p.deployment(app, "pair/a"); d.Enabled || d.Weight != 9 || d.FileWeight != 3 {
				t.Errorf("pair/a after a file reload: %+v, want disabled, weight 9 over the file's 3", d)
			}
			if toA, toB := p.sendPair(app, "added", 1, 200); toA+toB != 1 {
				t.Errorf("the model added by the reload was not served")
			}
			if toA, toB := p.sendPair(app, "pair", 10, 200); toA != 0 || toB != 10 {
				t.Errorf("after a file reload: a saw %d, b %d of 10 (pair/a is disabled)", toA, toB)
			}

			p.badRequests(app)
			p.auditEntries(app)

			// null removes one part of the override; with nothing left it is gone.
			if d := p.patch(app, "pair/a", `{"weight":null}`); d.Enabled || d.Weight != 3 || d.Override == nil || d.Override.Weight != nil {
				t.Errorf("PATCH weight null: %+v, want disabled with the file's weight 3", d)
			}
			if d := p.patch(app, "pair/a", `{"enabled":null}`); !d.Enabled || d.Override != nil {
				t.Errorf("PATCH enabled null: %+v, want no override left", d)
			}
			if ovs, err := app.store.DeploymentOverrides(ctx); err != nil || len(ovs) != 0 {
				t.Errorf("overrides left in the store: %+v %v", ovs, err)
			}

			if name == "embedded" {
				p.reloadWithoutStore(app)
			}
		})
	}
}

// pairModel is a model in /v1/status.
type pairModel struct {
	Status      string `json:"status"`
	Deployments int    `json:"deployments"`
	Available   int    `json:"available"`
	Disabled    int    `json:"disabled"`
}

// pairStatus is model "pair" in /v1/status.
func (p *pairEnv) pairStatus() pairModel {
	p.t.Helper()
	var out struct {
		Models []struct {
			ID string `json:"id"`
			pairModel
		} `json:"models"`
	}
	p.getJSON("/status", &out)
	for _, m := range out.Models {
		if m.ID == "pair" {
			return m.pairModel
		}
	}
	p.t.Fatal("model pair not in /v1/status")
	return pairModel{}
}

// writePairConfig writes a config file with the pair model (pair/a weighing weightA) and a model
// "added", for app.reload. Sections that need a restart are left out: a reload ignores them.
func (p *pairEnv) writePairConfig(weightA int) string {
	p.t.Helper()
	yaml := "outbound: {allow: [127.0.0.1]}\nproviders:\n" +
		"  - {name: a, type: openai, base_url: " + p.a.Server.URL + "/v1}\n" +
		"  - {name: b, type: openai, base_url: " + p.b.Server.URL + "/v1}\n" +
		"models:\n" +
		"  - name: pair\n    deployments: [{id: pair/a, provider: a, model: m, weight: " + strconv.Itoa(weightA) + "}, {id: pair/b, provider: b, model: m}]\n" +
		"  - {name: added, deployments: [{provider: b, model: m2}]}\n"
	path := filepath.Join(p.t.TempDir(), "llmgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// badRequests: malformed bodies are 400 naming the field, unknown ids 404, and a viewer token
// reads but does not change.
func (p *pairEnv) badRequests(a *app) {
	t := p.t
	for _, tc := range []struct {
		name, id, body string
		status         int
		code, param    string
	}{
		{"unknown id", "nope/x", `{"enabled":false}`, 404, "deployment_not_found", "id"},
		{"no id", "", `{"enabled":false}`, 404, "deployment_not_found", "id"},
		{"enabled not a boolean", "pair/b", `{"enabled":"no"}`, 400, "invalid_body", "enabled"},
		{"weight not an integer", "pair/b", `{"weight":1.5}`, 400, "invalid_body", "weight"},
		{"weight a string", "pair/b", `{"weight":"3"}`, 400, "invalid_body", "weight"},
		{"weight zero", "pair/b", `{"weight":0}`, 400, "invalid_value", "weight"},
		{"weight too large", "pair/b", `{"weight":1000001}`, 400, "invalid_value", "weight"},
		{"unknown field", "pair/b", `{"enabled":true,"colour":"red"}`, 400, "invalid_body", "colour"},
		{"empty object", "pair/b", `{}`, 400, "missing_field", ""},
		{"not JSON", "pair/b", `enable it`, 400, "invalid_body", "-"},
		{"no body", "pair/b", ``, 400, "invalid_body", "-"},
	} {
		status, raw := p.adminCall(a, http.MethodPatch, "/admin/deployments/"+tc.id, tc.body)
		adminErr(t, "PATCH "+tc.name, status, raw, tc.status, tc.code, tc.param)
	}
	status, raw := p.adminCall(a, http.MethodGet, "/admin/deployments/nope/x", "")
	adminErr(t, "GET unknown", status, raw, 404, "deployment_not_found", "id")
	if d := p.deployment(a, "pair/b"); d.Override != nil {
		t.Errorf("refused PATCHes changed pair/b: %+v", d)
	}

	var tok struct {
		Token string `json:"token"`
	}
	if s := p.adminSend(http.MethodPost, "/admin/tokens", `{"name":"ro","role":"viewer"}`, &tok); s != http.StatusCreated || tok.Token == "" {
		t.Fatalf("POST /admin/tokens: %d", s)
	}
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/admin/deployments", ""}, {http.MethodGet, "/admin/deployments/pair/a", ""},
		{http.MethodPatch, "/admin/deployments/pair/a", `{"enabled":true}`}, {http.MethodDelete, "/admin/deployments/pair/a", ""},
	} {
		req, _ := http.NewRequest(tc.method, a.adminURL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := p.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := http.StatusOK
		if tc.method != http.MethodGet {
			want = http.StatusForbidden
		}
		if resp.StatusCode != want {
			t.Errorf("viewer token: %s %s answered %d, want %d", tc.method, tc.path, resp.StatusCode, want)
		}
	}
}

// auditEntries: every successful change so far is in the admin audit log, with before and after.
func (p *pairEnv) auditEntries(a *app) {
	t := p.t
	es, err := a.store.ListAdminAudit(context.Background(), store.AdminAuditFilter{Action: "deployment.", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(es) - 1; i >= 0; i-- { // oldest first
		got = append(got, es[i].Action+" "+es[i].Target)
	}
	want := []string{"deployment.update pair/a", "deployment.update pair/a", "deployment.update pair/a",
		"deployment.update pair/b", "deployment.reset pair/b"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("admin audit log: %q, want %q", got, want)
	}
	first := es[len(es)-1]
	var before, after adminDeployment
	if err := json.Unmarshal(first.Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(first.After, &after); err != nil {
		t.Fatal(err)
	}
	if first.Actor != "bootstrap" || first.TenantID != "" || first.RequestID == "" ||
		!before.Enabled || before.Override != nil || after.Enabled || after.Override == nil || after.Health != nil {
		t.Errorf("first entry: %+v before %s after %s", first, first.Before, first.After)
	}
	reset := es[0]
	if err := json.Unmarshal(reset.Before, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(reset.After, &after); err != nil {
		t.Fatal(err)
	}
	if before.Enabled || before.Override == nil || !after.Enabled || after.Override != nil {
		t.Errorf("reset entry: before %s after %s", reset.Before, reset.After)
	}
}

// reloadWithoutStore: a file reload while the overrides cannot be read applies the file with the
// overrides last read. The table is renamed under the running gateway through a second
// connection to its SQLite file, so the store's own query fails.
func (p *pairEnv) reloadWithoutStore(a *app) {
	t := p.t
	p.patch(a, "pair/a", `{"enabled":false}`)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.cfg.DataDir, "llmgate.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`ALTER TABLE deployment_overrides RENAME TO deployment_overrides_away`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.DeploymentOverrides(context.Background()); err == nil {
		t.Fatal("the overrides can still be read")
	}
	if err := a.reload(p.writePairConfig(5), nil); err != nil {
		t.Fatal(err)
	}
	if d := p.deployment(a, "pair/a"); d.Enabled || d.FileWeight != 5 {
		t.Errorf("reload with the store away: pair/a %+v, want the file's weight 5 and still disabled", d)
	}
	if toA, toB := p.sendPair(a, "pair", 5, 200); toA != 0 || toB != 5 {
		t.Errorf("reload with the store away: a saw %d, b %d of 5", toA, toB)
	}
	if _, err := db.Exec(`ALTER TABLE deployment_overrides_away RENAME TO deployment_overrides`); err != nil {
		t.Fatal(err)
	}
}

// TestDeploymentOverrideReachesReplicas: a change on one replica is applied on another sharing
// its PostgreSQL, within a couple of seconds: through Redis pub/sub, or through the store poll
// without Redis.
func TestDeploymentOverrideReachesReplicas(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"postgres + redis":          {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))},
		"postgres, no redis (poll)": {withPostgres(t)},
	} {
		t.Run(name, func(t *testing.T) {
			p := newPairEnv(t, opts...)
			other := p.replica(nil)
			enabledOn := func(a *app, id string) (bool, int) {
				for _, d := range a.gateway.Router().Deployments("pair") {
					if d.ID == id {
						return d.Enabled, d.Weight
					}
				}
				t.Fatalf("%s not in the routing table", id)
				return false, 0
			}
			p.patch(p.app, "pair/a", `{"enabled":false}`)
			waitFor(t, 3*time.Second, "the other replica to disable pair/a", func() bool {
				on, _ := enabledOn(other, "pair/a")
				return !on
			})
			if toA, toB := p.sendPair(other, "pair", 10, 200); toA != 0 || toB != 10 {
				t.Errorf("on the other replica: a saw %d, b %d of 10", toA, toB)
			}
			if d := p.deployment(other, "pair/a"); d.Enabled || d.Override == nil || d.Override.UpdatedBy != "bootstrap" {
				t.Errorf("GET on the other replica: %+v", d)
			}
			// And back the other way: a change there reaches the first.
			p.patch(other, "pair/b", `{"weight":4}`)
			status, raw := p.adminCall(other, http.MethodDelete, "/admin/deployments/pair/a", "")
			if status != http.StatusOK {
				t.Fatalf("DELETE on the other replica: %d %s", status, raw)
			}
			waitFor(t, 3*time.Second, "the first replica to apply both changes", func() bool {
				onA, _ := enabledOn(p.app, "pair/a")
				_, wB := enabledOn(p.app, "pair/b")
				return onA && wB == 4
			})
		})
	}
}
