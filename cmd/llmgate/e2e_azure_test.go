package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
)

// TestAzurePathsMoneyAndLimits: on the Azure paths, as on /v1, with the key in api-key: one
// record per request under the deployment's public model and /v1's endpoint, priced; a key
// without the model gets 403 and reaches no upstream; a key's request rate and its daily budget
// are enforced (429 without an upstream call once spent).
func TestAzurePathsMoneyAndLimits(t *testing.T) {
	e := newEnv(t, withParityModels)
	for path, body := range map[string]string{
		"/admin/pricing/up-model": `{"input_per_million":1,"output_per_million":1}`,
		"/admin/pricing/dall-e-3": `{"image":{"1024x1024":"0.00004"}}`,
	} {
		if s := e.adminSend(http.MethodPut, path, body, nil); s != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, s)
		}
	}
	waitFor(t, 5*time.Second, "the prices", func() bool {
		_, a := e.app.gateway.Prices().Lookup("up-model")
		_, b := e.app.gateway.Prices().Lookup("dall-e-3")
		return a && b
	})
	send := func(key, path, body string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.app.publicURL+path, strings.NewReader(body))
		req.Header.Set("api-key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-Request-Id")
	}
	const v = "?api-version=2024-10-21"
	for _, tc := range []struct{ name, path, body, model, endpoint string }{
		{"deployment chat", "/openai/deployments/ds-chat/chat/completions" + v, `{"messages":[{"role":"user","content":"one two"}],"max_tokens":20}`, "ds-chat", "chat/completions"},
		{"deployment chat stream", "/openai/deployments/ds-chat/chat/completions" + v, `{"model":"ds-chat","messages":[{"role":"user","content":"one two"}],"max_tokens":20,"stream":true}`, "ds-chat", "chat/completions"},
		{"deployment embeddings", "/openai/deployments/ds-chat/embeddings" + v, `{"input":"one two"}`, "ds-chat", "embeddings"},
		{"deployment images", "/openai/deployments/image-model/images/generations" + v, `{"prompt":"a harbour","size":"1024x1024"}`, "image-model", "images/generations"},
		{"v1 chat", "/openai/v1/chat/completions", `{"model":"ds-chat","messages":[{"role":"user","content":"one two"}],"max_tokens":20}`, "ds-chat", "chat/completions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, id := send(e.key, tc.path, tc.body)
			if status != http.StatusOK {
				t.Fatalf("HTTP %d: %s", status, body)
			}
			probe := e.usageFor(id)
			if probe.Model != tc.model || probe.Endpoint != tc.endpoint || probe.Status != http.StatusOK {
				t.Errorf("record: model %q endpoint %q status %d; want %s %s 200", probe.Model, probe.Endpoint, probe.Status, tc.model, tc.endpoint)
			}
			if probe.CostPicoUSD == nil || *probe.CostPicoUSD <= 0 {
				t.Fatalf("probe record cost %v: want a positive cost", probe.CostPicoUSD)
			}
			cost := *probe.CostPicoUSD

			// The allowlist.
			other := e.newKey(createKeyBody{Name: "other only", Models: []string{"other"}})
			before := e.up.Stats().Requests
			if status, body, _ := send(other.Key, tc.path, tc.body); status != http.StatusForbidden || gjson.Get(body, "error.code").Str != "model_not_allowed" {
				t.Errorf("key without %s: HTTP %d %s, want 403 model_not_allowed", tc.model, status, body)
			}
			if n := e.up.Stats().Requests - before; n != 0 {
				t.Errorf("%d upstream calls for a model the key may not use", n)
			}

			// A key's request rate of two a minute.
			r := e.newKey(createKeyBody{Name: "rpm"})
			e.putPolicy("/admin/quota/policies/key/"+r.ID, `{"rpm":2}`)
			waitPolicy(t, "key", r.ID, e.app)
			for i := range 2 {
				if status, body, _ := send(r.Key, tc.path, tc.body); status != http.StatusOK {
					t.Fatalf("request %d under the rate: HTTP %d %s", i, status, body)
				}
			}
			before = e.up.Stats().Requests
			if status, body, _ := send(r.Key, tc.path, tc.body); status != http.StatusTooManyRequests || gjson.Get(body, "error.type").Str == "" {
				t.Errorf("third request in the minute: HTTP %d %s, want 429", status, body)
			}
			if n := e.up.Stats().Requests - before; n != 0 {
				t.Errorf("the refused request reached the upstream (%d calls)", n)
			}

			// A key's daily budget of two requests.
			k := e.newKey(createKeyBody{Name: "budgeted"})
			e.putPolicy("/admin/quota/policies/key/"+k.ID, `{"budget_usd_per_day":"`+billing.FormatPico64(2*cost)+`"}`)
			waitPolicy(t, "key", k.ID, e.app)
			if n := spendUntilRefusedOn(t, e, send, k.Key, tc.path, tc.body); n != 2 {
				t.Errorf("%d requests answered under a budget of two, want 2", n)
			}
			// One record per request of the key, the refused one included, all under the model.
			for _, rec := range e.waitRecords(k.ID, 3) {
				if rec.Model != tc.model || rec.Endpoint != tc.endpoint {
					t.Errorf("record of the budgeted key: model %q endpoint %q", rec.Model, rec.Endpoint)
				}
			}
		})
	}
}
