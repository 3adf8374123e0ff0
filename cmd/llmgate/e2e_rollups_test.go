package main

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
)

// rollupView is one aggregate of the billing summary and of /v1/usage: cost_usd is the cost of
// the priced usage (null when none of it is priced), unpriced the usage that has no price.
type rollupView struct {
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	Cost             *string `json:"cost_usd"`
	Unpriced         *struct {
		Requests         int64 `json:"requests"`
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"unpriced"`
}

// TestRollupsShowUnpricedUsage: on both stores, usage of a model without a price shows in the
// billing summary, the rollup CSV and /v1/usage as unpriced (no cost, its token counts), never
// as $0; once priced, the cost covers the priced requests only and the unpriced part stays
// apart. Calls that reach no model (/v1/models, /v1/usage, /v1/status, /v1/providers) keep
// their usage record but are not counted as requests in any rollup.
func TestRollupsShowUnpricedUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []envOption
	}{{"embedded", nil}, {"postgres", []envOption{withPostgres(t)}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			k := e.newKey(createKeyBody{Name: "rollups", UserID: "rollup-user"})
			unpriced := e.chatRecord(e.app, k.Key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c"}]}`)
			if unpriced.CostPicoUSD != nil || unpriced.PromptTokens == 0 {
				t.Fatalf("unpriced record: %+v", unpriced)
			}
			api := e.api()
			api.Key = k.Key
			for _, p := range []string{"/models", "/usage", "/status", "/providers"} {
				var out map[string]any
				api.GetJSON(p, &out)
			}
			recs := e.allUsage(5)
			meta := 0
			for _, r := range recs {
				if r.KeyID == k.ID && r.Endpoint != "chat/completions" {
					meta++
				}
			}
			if meta != 4 {
				t.Fatalf("%d usage records of the calls that reach no model, want 4: %+v", meta, recs)
			}

			month := time.Now().UTC().Format("2006-01")
			var sum struct {
				Total  rollupView            `json:"total"`
				Models map[string]rollupView `json:"models"`
			}
			e.adminSend(http.MethodGet, "/admin/billing/summary?userId=rollup-user&month="+month, "", &sum)
			if sum.Total.Requests != 1 || sum.Total.Cost != nil || sum.Total.Unpriced == nil ||
				sum.Total.Unpriced.Requests != 1 || sum.Total.Unpriced.PromptTokens != unpriced.PromptTokens ||
				sum.Total.Unpriced.CompletionTokens != unpriced.CompletionTokens {
				raw, _ := json.Marshal(sum)
				t.Fatalf("billing summary of unpriced usage: %s; want 1 request, cost null, unpriced tokens %d/%d",
					raw, unpriced.PromptTokens, unpriced.CompletionTokens)
			}
			csvRows := e.billingCSV("rollup-user")
			if len(csvRows) != 2 || csvRows[1][5] != "1" || csvRows[1][10] != "" {
				t.Fatalf("rollup CSV of unpriced usage: %q; want one row of 1 request with an empty cost", csvRows)
			}
			var usage struct {
				Today rollupView `json:"today"`
				Month rollupView `json:"month"`
			}
			api.GetJSON("/usage", &usage)
			if usage.Today.Requests != 1 || usage.Today.Cost != nil || usage.Today.Unpriced == nil ||
				usage.Today.Unpriced.PromptTokens != unpriced.PromptTokens || usage.Month.Cost != nil {
				raw, _ := json.Marshal(usage)
				t.Fatalf("/v1/usage of unpriced usage: %s; want 1 request, cost null, its tokens unpriced", raw)
			}

			// Priced from now on: the next request has a cost, the first stays unpriced.
			e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"1","output_per_million":"1"}`, nil)
			priced := e.chatRecord(e.app, k.Key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c"}]}`)
			if priced.CostPicoUSD == nil {
				t.Fatalf("priced record without cost: %+v", priced)
			}
			e.adminSend(http.MethodGet, "/admin/billing/summary?userId=rollup-user&month="+month, "", &sum)
			want := billing.FormatPico64(*priced.CostPicoUSD)
			if sum.Total.Requests != 2 || sum.Total.Cost == nil || *sum.Total.Cost != want ||
				sum.Total.Unpriced == nil || sum.Total.Unpriced.Requests != 1 {
				raw, _ := json.Marshal(sum)
				t.Fatalf("billing summary of mixed usage: %s; want 2 requests, cost %s, 1 unpriced", raw, want)
			}
			if g := sum.Models["gpt-test"]; g.Requests != 2 || g.Cost == nil || g.Unpriced == nil || g.Unpriced.Requests != 1 {
				t.Fatalf("billing summary of gpt-test: %+v", g)
			}
			csvRows = e.billingCSV("rollup-user")
			if len(csvRows) != 3 {
				t.Fatalf("rollup CSV of mixed usage: %q; want a priced and an unpriced row", csvRows)
			}
			costs := map[string]bool{csvRows[1][10]: true, csvRows[2][10]: true}
			if !costs[""] || !costs[want] {
				t.Fatalf("rollup CSV costs %q; want one empty and one %s", csvRows, want)
			}
		})
	}
}

// billingCSV reads GET /admin/billing/records.csv of a user.
func (e *env) billingCSV(user string) [][]string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.app.adminURL+"/admin/billing/records.csv?userId="+user, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		e.t.Fatal(err)
	}
	return rows
}
