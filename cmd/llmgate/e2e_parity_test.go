package main

import (
	"context"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
)

// withParityModels adds, beside "gpt-test" (the Responses API passed through to the OpenAI-type
// upstream): "ds-chat" (the same upstream behind a chat-only DeepSeek-type provider: the
// Responses API translated), "image-model" (dall-e-3) and "mod" (omni-moderation-latest).
func withParityModels(c *Config) {
	up := c.Providers[0].BaseURL
	c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "ds", Type: "deepseek", BaseURL: up, APIKey: upstreamKey}})
	c.Models = append(c.Models,
		providers.ModelConfig{Name: "ds-chat", Deployments: []providers.DeploymentConfig{{Provider: "ds", Model: "up-model"}}},
		providers.ModelConfig{Name: "image-model", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "dall-e-3"}}},
		providers.ModelConfig{Name: "mod", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "omni-moderation-latest"}}})
	// "claude-pass": the same upstream behind an anthropic-type provider (the Messages API passed
	// through); /v1/messages for "gpt-test" is translated.
	c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "claude", Type: "anthropic", BaseURL: strings.TrimSuffix(up, "/v1"), APIKey: upstreamKey}})
	c.Models = append(c.Models, providers.ModelConfig{Name: "claude-pass", Deployments: []providers.DeploymentConfig{{Provider: "claude", Model: "claude-up"}}})
}

// TestMoneyAndAllowlistsBeyondChat: on /v1/responses and /v1/messages (passed through and
// translated, streamed and whole), images and moderations, as on chat: a key without the model gets 403 and reaches
// no upstream; a key's daily budget admits requests until it is spent, then refuses with 429
// insufficient_quota without an upstream call; a prepaid balance is charged exactly the cost of
// each record, and once it is used up the next request is refused the same way.
func TestMoneyAndAllowlistsBeyondChat(t *testing.T) {
	e := newEnv(t, withParityModels)
	for path, body := range map[string]string{
		"/admin/pricing/up-model":               `{"input_per_million":1,"output_per_million":1}`,
		"/admin/pricing/claude-up":              `{"input_per_million":3,"output_per_million":15}`,
		"/admin/pricing/dall-e-3":               `{"image":{"1024x1024":"0.00004"}}`,
		"/admin/pricing/omni-moderation-latest": `{"per_request":"0.00003"}`,
	} {
		if s := e.adminSend(http.MethodPut, path, body, nil); s != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, s)
		}
	}
	waitFor(t, 5*time.Second, "the prices", func() bool {
		for _, m := range []string{"up-model", "claude-up", "dall-e-3", "omni-moderation-latest"} {
			if _, ok := e.app.gateway.Prices().Lookup(m); !ok {
				return false
			}
		}
		return true
	})
	send := func(key, path, body string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.baseURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-Request-Id")
	}
	for i, tc := range []struct{ name, path, body string }{
		{"responses passthrough", "/responses", `{"model":"gpt-test","input":"one two","max_output_tokens":20}`},
		{"responses passthrough stream", "/responses", `{"model":"gpt-test","input":"one two","max_output_tokens":20,"stream":true}`},
		{"responses translated", "/responses", `{"model":"ds-chat","input":"one two","max_output_tokens":20}`},
		{"responses translated stream", "/responses", `{"model":"ds-chat","input":"one two","max_output_tokens":20,"stream":true}`},
		{"images", "/images/generations", `{"model":"image-model","prompt":"a harbour","size":"1024x1024"}`},
		{"moderations", "/moderations", `{"model":"mod","input":"hello there"}`},
		{"messages passthrough", "/messages", `{"model":"claude-pass","max_tokens":20,"messages":[{"role":"user","content":"one two"}]}`},
		{"messages passthrough stream", "/messages", `{"model":"claude-pass","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"one two"}]}`},
		{"messages translated", "/messages", `{"model":"gpt-test","max_tokens":20,"messages":[{"role":"user","content":"one two"}]}`},
		{"messages translated stream", "/messages", `{"model":"gpt-test","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"one two"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := gjson.Get(tc.body, "model").Str
			// What one request costs, from a key without limits.
			status, body, id := send(e.key, tc.path, tc.body)
			if status != http.StatusOK {
				t.Fatalf("HTTP %d: %s", status, body)
			}
			probe := e.usageFor(id)
			if probe.CostPicoUSD == nil || *probe.CostPicoUSD <= 0 || *probe.CostPicoUSD%1_000_000 != 0 {
				t.Fatalf("probe record cost %v: want a positive whole number of µUSD", probe.CostPicoUSD)
			}
			cost := *probe.CostPicoUSD

			// The allowlist.
			other := e.newKey(createKeyBody{Name: "other only", Models: []string{"other"}})
			before := e.up.Stats().Requests
			if status, body, _ := send(other.Key, tc.path, tc.body); status != http.StatusForbidden ||
				(gjson.Get(body, "error.code").Str != "model_not_allowed" && gjson.Get(body, "error.type").Str != "permission_error") {
				t.Errorf("key without %s: HTTP %d %s, want 403 model_not_allowed", model, status, body)
			}
			if n := e.up.Stats().Requests - before; n != 0 {
				t.Errorf("%d upstream calls for a model the key may not use", n)
			}

			// A key's daily budget of two requests.
			k := e.newKey(createKeyBody{Name: "budgeted"})
			e.putPolicy("/admin/quota/policies/key/"+k.ID, `{"budget_usd_per_day":"`+billing.FormatPico64(2*cost)+`"}`)
			waitPolicy(t, "key", k.ID, e.app)
			if n := spendUntilRefusedOn(t, e, send, k.Key, tc.path, tc.body); n != 2 {
				t.Errorf("%d requests answered under a budget of two, want 2", n)
			}

			// A prepaid balance of two requests: charged exactly, then refused.
			user := "prepaid-" + string(rune('a'+i))
			p := e.newKey(createKeyBody{Name: "prepaid", UserID: user})
			e.adminSend(http.MethodPost, "/admin/credits/user/"+user+"/topup", `{"amount_usd":"`+billing.FormatPico64(2*cost)+`"}`, nil)
			if n := spendUntilRefusedOn(t, e, send, p.Key, tc.path, tc.body); n != 2 {
				t.Errorf("%d requests answered on a balance paying for two, want 2", n)
			}
			recs := e.waitRecords(p.ID, 3)
			var spent int64
			for _, r := range recs {
				if r.CostPicoUSD != nil {
					spent += *r.CostPicoUSD
				}
			}
			acct, err := e.app.store.CreditAccountOf(context.Background(), "user", user)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the charges", func() bool {
				acct, err = e.app.store.CreditAccountOf(context.Background(), "user", user)
				return err == nil && acct.BalancePicoUSD.Cmp(big.NewInt(2*cost-spent)) == 0
			})
			if spent != 2*cost || acct.BalancePicoUSD.Sign() != 0 {
				t.Errorf("spent %d pUSD, balance %v; want 2 × %d charged and nothing left", spent, acct.BalancePicoUSD, cost)
			}
		})
	}
}

// spendUntilRefusedOn sends a request until one is refused and returns how many were answered;
// the refusal must be 429 insufficient_quota and reach no upstream.
func spendUntilRefusedOn(t *testing.T, e *env, send func(key, path, body string) (int, string, string), key, path, body string) int {
	t.Helper()
	for i := range 10 {
		before := e.up.Stats().Requests
		status, answer, _ := send(key, path, body)
		if status == http.StatusOK {
			continue
		}
		// On /v1/messages, in Anthropic's shape: billing_error.
		if typ := gjson.Get(answer, "error.type").Str; status != http.StatusTooManyRequests || (typ != "insufficient_quota" && typ != "billing_error") {
			t.Fatalf("request %d: HTTP %d %s, want 200 or 429 insufficient_quota", i, status, answer)
		}
		if n := e.up.Stats().Requests - before; n != 0 {
			t.Errorf("the refusal reached the upstream (%d calls)", n)
		}
		return i
	}
	t.Fatalf("no refusal in 10 requests")
	return 0
}
