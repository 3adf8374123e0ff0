package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
)

// withMediaModels adds "image-model" (dall-e-3 on the OpenAI-type upstream) and "ds-image" (the
// same upstream behind a DeepSeek-type provider, which serves chat only).
func withMediaModels(c *Config) {
	up := c.Providers[0].BaseURL
	c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "ds", Type: "deepseek", BaseURL: up, APIKey: upstreamKey}})
	c.Models = append(c.Models,
		providers.ModelConfig{Name: "image-model", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "dall-e-3"}}},
		providers.ModelConfig{Name: "ds-image", Deployments: []providers.DeploymentConfig{{Provider: "ds", Model: "dall-e-3"}}})
}

// TestImagesPricedAndCharged: with the binary on PostgreSQL and Redis, a per-image price set by
// PUT /admin/pricing costs two hd images exactly, the record says 2 images, the prepaid balance
// is charged that much and the caller's rollups count it; a chat-only deployment is a 400 that
// reaches no upstream and charges nothing.
func TestImagesPricedAndCharged(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)), withMediaModels)
	if s := e.adminSend(http.MethodPut, "/admin/pricing/dall-e-3", `{"image":{"1024x1024":"0.04","hd/1024x1024":"0.08"}}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing/dall-e-3: %d", s)
	}
	k := e.newKey(createKeyBody{Name: "painter", UserID: "painter", Tier: "open"})
	e.adminSend(http.MethodPost, "/admin/credits/user/painter/topup", `{"amount_usd":"1"}`, nil)
	send := func(body string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, e.baseURL+"/images/generations", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+k.Key)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-Request-Id")
	}
	status, body, id := send(`{"model":"image-model","prompt":"a harbour","n":2,"size":"1024x1024","quality":"hd"}`)
	if status != 200 || len(gjson.Get(body, "data").Array()) != 2 {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	r := e.usageFor(id)
	if r.Endpoint != "images/generations" || r.Units != 2 || r.Unit != billing.UnitImage || r.CostPicoUSD == nil ||
		billing.FormatPico64(*r.CostPicoUSD) != "0.16" || !strings.HasPrefix(r.PriceVersion, "dall-e-3@") {
		t.Fatalf("record: %+v cost %v", r, r.CostPicoUSD)
	}
	balance := func() string {
		var acct struct {
			Balance string `json:"balance_usd"`
		}
		e.adminSend(http.MethodGet, "/admin/credits/user/painter", "", &acct)
		return acct.Balance
	}
	waitFor(t, 10*time.Second, "the charge of 0.16", func() bool { return balance() == "0.84" })

	upBefore := e.up.Stats().Requests
	status, body, _ = send(`{"model":"ds-image","prompt":"a harbour"}`)
	if status != http.StatusBadRequest || gjson.Get(body, "error.code").String() != "unsupported_endpoint" || gjson.Get(body, "error.param").String() != "model" {
		t.Errorf("chat-only deployment: HTTP %d %s", status, body)
	}
	if n := e.up.Stats().Requests - upBefore; n != 0 {
		t.Errorf("%d upstream calls for the refused request", n)
	}
	var u struct {
		Today struct {
			Requests int64  `json:"requests"`
			CostUSD  string `json:"cost_usd"`
		} `json:"today"`
		Credit struct {
			Balance string `json:"balance_usd"`
		} `json:"credit"`
	}
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+"/usage", nil)
	req.Header.Set("Authorization", "Bearer "+k.Key)
	waitFor(t, 10*time.Second, "the caller's rollup", func() bool {
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.Today.Requests, u.Today.CostUSD = gjson.GetBytes(raw, "today.requests").Int(), gjson.GetBytes(raw, "today.cost_usd").String()
		u.Credit.Balance = gjson.GetBytes(raw, "credit.balance_usd").String()
		return u.Today.Requests == 1
	})
	if u.Today.CostUSD != "0.16" || u.Credit.Balance != "0.84" {
		t.Errorf("/v1/usage: %+v; want 1 request costing 0.16, balance 0.84 (the refusal charged nothing)", u)
	}
	if b := balance(); b != "0.84" {
		t.Errorf("balance %s after the refusal, want 0.84", b)
	}
}
