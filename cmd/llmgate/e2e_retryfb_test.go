package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/adminclient"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/store"
)

// TestFailurePolicyOnBothStores: through the binary on the embedded store and on
// PostgreSQL+Redis, a model with one deployment survives transient 503s by retrying it (counted
// at the upstream); each targeted cause falls back on its own model; a model whose deployments
// all fail answers with its degrade reply. The records hold the requested and the served model,
// and the degraded one neither tokens nor cost.
func TestFailurePolicyOnBothStores(t *testing.T) {
	flaky := gatewaytest.NewSwitchable(t, mock.Options{})
	two := 2
	never := providers.BreakerConfig{ConsecutiveFailures: 1 << 30, MinRequests: 1 << 30}
	policy := func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "flaky", Type: "openai", BaseURL: flaky.Server.URL + "/v1"}})
		dep := []providers.DeploymentConfig{{ID: "flaky-dep", Provider: "flaky", Model: "flaky-model", Breaker: never}}
		c.Models = append(c.Models,
			providers.ModelConfig{Name: "one", Deployments: dep, Retry: providers.RetryPolicy{Retries: &two, Backoff: 10 * time.Millisecond}},
			providers.ModelConfig{Name: "targeted", Deployments: dep, ContextWindowFallbacks: []string{"gpt-test"},
				ContentFilterFallbacks: []string{"other"}, RateLimitFallbacks: []string{"failover"}},
			providers.ModelConfig{Name: "degraded", Degrade: &providers.DegradeReply{Text: "later"},
				Deployments: []providers.DeploymentConfig{{Provider: "dead", Model: "m"}}})
	}
	chat := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}
	for name, opts := range map[string][]envOption{
		"embedded":         {policy},
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t)), policy},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			before := flaky.Seen.Load()
			flaky.FailNext(2, http.StatusServiceUnavailable, "")
			r := e.chatRecord(e.app, e.key, chat("one"))
			if r.Status != http.StatusOK || r.ServedModel != "one" || flaky.Seen.Load()-before != 3 {
				t.Errorf("retried: status %d served by %q after %d upstream calls; want 200 by one after 3", r.Status, r.ServedModel, flaky.Seen.Load()-before)
			}
			for _, tc := range []struct {
				status       int
				body, served string
			}{
				{400, `{"error":{"message":"too long","type":"invalid_request_error","param":null,"code":"context_length_exceeded"}}`, "gpt-test"},
				{400, `{"error":{"message":"filtered","type":"invalid_request_error","param":null,"code":"content_filter"}}`, "other"},
				{429, "", "failover"},
			} {
				flaky.FailNext(1, tc.status, tc.body)
				r := e.chatRecord(e.app, e.key, chat("targeted"))
				if r.Status != http.StatusOK || r.Model != "targeted" || r.ServedModel != tc.served {
					t.Errorf("after a %d %s: status %d, %q served by %q; want 200 by %q", tc.status, tc.body, r.Status, r.Model, r.ServedModel, tc.served)
				}
			}
			r = e.chatRecord(e.app, e.key, chat("degraded"))
			if r.ErrorType != "degraded" || r.Status != http.StatusBadGateway || r.CostPicoUSD != nil || r.PromptTokens != 0 || r.UsageSource != "" {
				t.Errorf("degraded: status %d, error type %q, cost %v, prompt tokens %d, source %q", r.Status, r.ErrorType, r.CostPicoUSD, r.PromptTokens, r.UsageSource)
			}
			// The Responses and Messages APIs share the path: a fallback, and the degrade reply
			// in their own shapes, streamed or not.
			flaky.FailNext(1, http.StatusTooManyRequests, "")
			status, hdr, r := e.dialectRecord(e.app, "/v1/responses", `{"model":"targeted","input":"hi"}`)
			if status != http.StatusOK || r.ServedModel != "failover" || hdr.Get("X-Llmgate-Served-Model") != "failover" {
				t.Errorf("responses after a 429: status %d, served by %q", status, r.ServedModel)
			}
			for _, tc := range []struct{ path, body string }{
				{"/v1/responses", `{"model":"degraded","input":"hi"}`},
				{"/v1/responses", `{"model":"degraded","input":"hi","stream":true}`},
				{"/v1/messages", `{"model":"degraded","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`},
				{"/v1/messages", `{"model":"degraded","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
			} {
				status, hdr, r := e.dialectRecord(e.app, tc.path, tc.body)
				if status != http.StatusOK || hdr.Get("X-Llmgate-Degraded") != "true" || r.ErrorType != "degraded" || r.CostPicoUSD != nil {
					t.Errorf("%s %s: status %d, degraded header %q, record error type %q, cost %v", tc.path, tc.body, status, hdr.Get("X-Llmgate-Degraded"), r.ErrorType, r.CostPicoUSD)
				}
			}
		})
	}
}

// dialectRecord posts body to a path of the public API with the env's key (as a bearer token,
// which every dialect takes) and returns the status, the headers and the request's record.
func (e *env) dialectRecord(a *app, path, body string) (int, http.Header, store.UsageRecord) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, e.usageFor(resp.Header.Get("X-Request-Id"))
}

// TestCatalogFailurePolicy: a model made over the admin API carries the failure policy of the
// config file's models: its fallbacks must name another model of the routing table, and serve
// at once; its degrade reply answers when nothing can. The records, on either store, hold the
// requested and the served model, and a degrade reply is recorded as degraded without a cost.
func TestCatalogFailurePolicy(t *testing.T) {
	for name, opts := range map[string][]envOption{
		"embedded":         nil,
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			a := e.app
			_, raw := e.adminCall(a, http.MethodPost, "/admin/models",
				`{"name":"api-fb","deployments":[{"provider":"dead","model":"m"}],"fallbacks":["nope"]}`)
			if !strings.Contains(string(raw), `"param":"fallbacks"`) || !strings.Contains(string(raw), "nope") {
				t.Fatalf("a fallback naming no model: %s", raw)
			}
			var m struct {
				Fallbacks []string `json:"fallbacks"`
				Retry     struct {
					Retries int `json:"retries"`
				} `json:"retry"`
			}
			e.catalogCall(a, http.MethodPost, "/admin/models",
				`{"name":"api-fb","deployments":[{"provider":"dead","model":"m"}],"fallbacks":["gpt-test"],"retry":{"retries":1,"backoff":"10ms"}}`,
				http.StatusCreated, &m)
			if len(m.Fallbacks) != 1 || m.Fallbacks[0] != "gpt-test" || m.Retry.Retries != 1 {
				t.Fatalf("POST /admin/models answered %+v", m)
			}
			r := e.chatRecord(a, e.key, `{"model":"api-fb","messages":[{"role":"user","content":"hi"}]}`)
			if r.Status != http.StatusOK || r.Model != "api-fb" || r.ServedModel != "gpt-test" || r.UpstreamModel != "up-model" {
				t.Errorf("record: status %d, model %q served by %q (%q)", r.Status, r.Model, r.ServedModel, r.UpstreamModel)
			}

			e.catalogCall(a, http.MethodPatch, "/admin/models/api-fb", `{"fallbacks":null,"degrade":{"text":"sorry, later"}}`, http.StatusOK, nil)
			r = e.chatRecord(a, e.key, `{"model":"api-fb","messages":[{"role":"user","content":"hi"}]}`)
			if r.ErrorType != "degraded" || r.Status != http.StatusBadGateway || r.CostPicoUSD != nil || r.ServedModel != "api-fb" {
				t.Errorf("degraded record: status %d, error type %q, cost %v, served by %q", r.Status, r.ErrorType, r.CostPicoUSD, r.ServedModel)
			}
		})
	}
}

// TestDefaultRetriesThroughConfig: a config file that says nothing of retries (here only a
// shorter first wait) gets three retries of a deployment on itself: a model with one deployment
// survives three transient 503s in a row, counted at the upstream.
func TestDefaultRetriesThroughConfig(t *testing.T) {
	flaky := gatewaytest.NewSwitchable(t, mock.Options{})
	path := writeConfig(t, "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: "+t.TempDir()+"\nadmin_token: "+testAdminToken+"\n"+
		"log: {level: error}\nquota: {default_tier: open, tiers: {open: {}}}\noutbound: {allow: [127.0.0.1]}\n"+
		"providers:\n  - {name: flaky, type: openai, base_url: "+flaky.Server.URL+"/v1}\n"+
		"models:\n  - name: one\n    deployments: [{provider: flaky, model: m, breaker: {consecutive_failures: 100}}]\n"+
		"routing: {retry: {backoff: 10ms}}\n")
	cfg, err := loadConfig(path, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.shutdown(ctx)
	})
	k, err := adminclient.New(a.adminURL, testAdminToken).CreateKey(context.Background(), createKeyBody{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	flaky.FailNext(3, http.StatusServiceUnavailable, "")
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"one","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+k.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || flaky.Seen.Load() != 4 {
		t.Errorf("status %d after %d upstream calls; want 200 after 4 (three retries by default)", resp.StatusCode, flaky.Seen.Load())
	}
}
