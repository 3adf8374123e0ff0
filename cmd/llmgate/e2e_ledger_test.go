package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/store"
)

// adminSend sends a JSON body to the admin API and decodes the answer.
func (e *env) adminSend(method, path, body string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.app.adminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// chatRecord sends a chat request to replica a and returns its usage record once written.
func (e *env) chatRecord(a *app, key, body string) store.UsageRecord {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return e.usageFor(resp.Header.Get("X-Request-Id"))
}

// TestCostIsExactAndPricesApplyEverywhere: a record is costed exactly (tokens × micro-USD per 1M
// = pico-USD) with its price version; a price change reaches another replica for its next
// requests; an unpriced model is recorded without cost and counted, never as $0.
func TestCostIsExactAndPricesApplyEverywhere(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)))
	other := e.replica(nil)
	r := e.chatRecord(e.app, e.key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c d e"}]}`)
	if r.CostPicoUSD != nil || r.UsageSource != "provider" {
		t.Fatalf("unpriced model: cost %v source %q; want no cost", r.CostPicoUSD, r.UsageSource)
	}
	var price struct{ Version string }
	if s := e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"1.50","output_per_million":2}`, &price); s != 200 || price.Version == "" {
		t.Fatalf("PUT /admin/pricing: %d %+v", s, price)
	}
	waitFor(t, time.Second, "the other replica to apply the price", func() bool {
		_, ok := other.gateway.Prices().Lookup("up-model")
		return ok
	})
	r = e.chatRecord(other, e.key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c d e"}]}`)
	// prompt 8 × 1.50 USD/M + completion 20 × 2 USD/M = 12 + 40 micro-USD = 52,000,000 pico-USD
	if r.CostPicoUSD == nil || *r.CostPicoUSD != 52_000_000 || r.PriceVersion != price.Version {
		t.Errorf("cost %v (version %q), want 52000000 pico-USD with %q", r.CostPicoUSD, r.PriceVersion, price.Version)
	}
	// the unpriced request above was counted
	m, _ := e.http.Get(e.app.adminURL + "/metrics")
	raw, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(raw), `llmgate_unpriced_requests_total{model="gpt-test"} 1`) {
		t.Error("the unpriced request was not counted in llmgate_unpriced_requests_total")
	}
	m, _ = e.http.Get(other.adminURL + "/metrics")
	raw, _ = io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(raw), `gov_cost_usd_total{model="gpt-test",userId="none"} 5.2e-05`) {
		t.Error("the costed request is missing from the other replica's gov_cost_usd_total")
	}
}

// TestUsageWithoutProviderUsageIsEstimated, and an answer cut short is partial: prompt plus the
// tokens delivered, never the error text; upstream faults are not charged by default.
func TestUsageSources(t *testing.T) {
	e := newEnv(t)
	est, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)
	e.adminSend(http.MethodPut, "/admin/pricing/slow-model", `{"input_per_million":1,"output_per_million":1}`, nil)
	// Charging shows in the credit account of the key's user (the record does not store it).
	key := e.newKey(createKeyBody{Name: "sources", UserID: "sources-user"}).Key
	e.adminSend(http.MethodPost, "/admin/credits/user/sources-user/topup", `{"amount_usd":1}`, nil)
	charged := int64(0)
	e.key = key

	r := e.chatRecord(e.app, e.key, `{"model":"gpt-test","mock":{"no_usage":true},"messages":[{"role":"user","content":"count me please"}]}`)
	answer := strings.Join(strings.Fields("the mock upstream streams deterministic words so tests can count every token it sends back today the mock upstream streams"), " ")
	if r.UsageSource != "estimated" || r.PromptTokens == 0 || r.CompletionTokens != est.Text("up-model", answer) || r.CostPicoUSD == nil {
		t.Fatalf("non-stream without usage: %+v (want estimated, completion %d)", r, est.Text("up-model", answer))
	}
	charged += *r.CostPicoUSD

	r = e.chatRecord(e.app, e.key, `{"model":"gpt-test","stream":true,"mock":{"no_usage":true},"messages":[{"role":"user","content":"x"}]}`)
	if r.UsageSource != "estimated" || r.CompletionTokens != est.Text("up-model", answer) {
		t.Fatalf("stream without usage: source %q completion %d, want estimated %d", r.UsageSource, r.CompletionTokens, est.Text("up-model", answer))
	}
	charged += *r.CostPicoUSD

	// upstream dies after 3 content chunks: partial, the 3 delivered tokens, not charged
	r = e.chatRecord(e.app, e.key, `{"model":"gpt-test","stream":true,"mock":{"fail_after":3},"messages":[{"role":"user","content":"x"}]}`)
	if r.UsageSource != "partial" || r.CompletionTokens != est.Text("up-model", "the mock upstream") || r.Status != 502 {
		t.Errorf("upstream cut: %+v, want partial with %d completion tokens and no charge", r, est.Text("up-model", "the mock upstream"))
	}

	// the client leaves after the first content chunks: partial and charged
	ctx, cancel := context.WithCancel(context.Background())
	resp := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ { // role chunk, blank, first content chunk
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	resp.Body.Close()
	r = e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.UsageSource != "partial" || r.Status != 499 || r.PromptTokens == 0 || r.CompletionTokens >= 10 || r.CostPicoUSD == nil {
		t.Fatalf("client gone: %+v, want partial with fewer than the 10 tokens of the whole answer", r)
	}
	charged += *r.CostPicoUSD

	// an upstream error before any byte bills nothing
	r = e.chatRecord(e.app, e.key, `{"model":"gpt-test","mock":{"status":500},"messages":[]}`)
	if r.UsageSource != "" || r.PromptTokens != 0 || r.CostPicoUSD != nil {
		t.Errorf("upstream error: %+v, want nothing billed", r)
	}
	// charged: both estimated answers and the client-gone one; not the upstream-cut one
	want := billing.FormatPico64(1_000_000_000_000 - charged)
	var acct struct {
		Balance string `json:"balance_usd"`
	}
	waitFor(t, 5*time.Second, "balance "+want, func() bool {
		e.adminSend(http.MethodGet, "/admin/credits/user/sources-user", "", &acct)
		return acct.Balance == want
	})
}

// TestLedgerAdminAPI: audit list and trace, billing summary from rollups, CSV export, credits.
func TestLedgerAdminAPI(t *testing.T) {
	e := newEnv(t, withPostgres(t))
	k := e.newKey(createKeyBody{Name: "ledger", UserID: "ledger-user"})
	e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"1","output_per_million":"1"}`, nil)
	var acct struct {
		Balance string `json:"balance_usd"`
	}
	if s := e.adminSend(http.MethodPost, "/admin/credits/user/ledger-user/topup", `{"amount_usd":"1.000000","note":"welcome"}`, &acct); s != 200 || acct.Balance != "1" {
		t.Fatalf("top-up: %d balance %q", s, acct.Balance)
	}
	var trace string
	for i := 0; i < 3; i++ {
		r := e.chatRecord(e.app, k.Key, `{"model":"gpt-test","messages":[{"role":"user","content":"one two"}]}`)
		trace = r.TraceID
	}
	// 3 × (5 prompt + 20 completion) tokens × 1 micro-USD = 75 micro-USD charged
	waitFor(t, 5*time.Second, "the charges", func() bool {
		e.adminSend(http.MethodGet, "/admin/credits/user/ledger-user", "", &acct)
		return acct.Balance == "0.999925"
	})
	var audit struct {
		Data []map[string]any `json:"data"`
	}
	e.adminSend(http.MethodGet, "/admin/audit?userId=ledger-user&page=1&size=2", "", &audit)
	if len(audit.Data) != 2 || audit.Data[0]["cost_usd"] != "0.000025" {
		t.Errorf("audit page: %+v", audit.Data)
	}
	e.adminSend(http.MethodGet, "/admin/audit/"+trace, "", &audit)
	if len(audit.Data) != 1 || audit.Data[0]["trace_id"] != trace {
		t.Errorf("audit by trace: %+v", audit.Data)
	}
	var sum struct {
		Total struct {
			Requests int64  `json:"requests"`
			Cost     string `json:"cost_usd"`
		} `json:"total"`
	}
	e.adminSend(http.MethodGet, "/admin/billing/summary?userId=ledger-user&month="+time.Now().UTC().Format("2006-01"), "", &sum)
	if sum.Total.Requests != 3 || sum.Total.Cost != "0.000075" {
		t.Errorf("billing summary %+v", sum)
	}
	req, _ := http.NewRequest(http.MethodGet, e.app.adminURL+"/admin/billing/records.csv?userId=ledger-user", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || len(rows) != 2 || rows[1][2] != "ledger-user" || rows[1][5] != "3" || rows[1][10] != "0.000075" {
		t.Errorf("CSV: %v %v", rows, err)
	}
	for _, bad := range []string{`{"amount_usd":"-1"}`, `{"amount_usd":"0.0000001"}`, `{"amount_usd":"abc"}`, `{}`} {
		if s := e.adminSend(http.MethodPost, "/admin/credits/user/ledger-user/topup", bad, nil); s != 400 {
			t.Errorf("top-up %s: status %d, want 400", bad, s)
		}
	}
}

// TestCreditGuard: a user whose prepaid balance is exhausted is refused with insufficient_quota
// before the upstream call; a top-up lifts it at once; users without an account are postpaid.
func TestCreditGuard(t *testing.T) {
	e := newEnv(t)
	e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":1,"output_per_million":1}`, nil)
	k := e.newKey(createKeyBody{Name: "prepaid", UserID: "prepaid-user"})
	// 25 tokens × 1 micro-USD per request; 50 micro-USD pay for two
	e.adminSend(http.MethodPost, "/admin/credits/user/prepaid-user/topup", `{"amount_usd":"0.00005"}`, nil)
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"one two"}]}`
	for i := 0; i < 2; i++ {
		if r := e.chatRecord(e.app, k.Key, body); r.Status != 200 {
			t.Fatalf("paid request %d: %d", i, r.Status)
		}
	}
	var acct struct {
		Balance string `json:"balance_usd"`
	}
	waitFor(t, 5*time.Second, "the balance to reach 0", func() bool {
		e.adminSend(http.MethodGet, "/admin/credits/user/prepaid-user", "", &acct)
		return acct.Balance == "0"
	})
	before := e.up.Stats().Requests
	var refused *http.Response
	waitFor(t, 5*time.Second, "an insufficient_quota refusal (after the balance snapshot expires)", func() bool {
		resp := e.post(context.Background(), "/chat/completions", k.Key, []byte(body))
		if resp.StatusCode == 429 {
			refused = resp
			return true
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		before = e.up.Stats().Requests
		return false
	})
	if typ, code, _ := apiError(t, refused); typ != "insufficient_quota" || code != "insufficient_quota" {
		t.Errorf("refusal type %q code %q", typ, code)
	}
	if e.up.Stats().Requests != before {
		t.Error("the refused request reached the upstream")
	}
	e.adminSend(http.MethodPost, "/admin/credits/user/prepaid-user/topup", `{"amount_usd":"1"}`, nil)
	if r := e.chatRecord(e.app, k.Key, body); r.Status != 200 {
		t.Errorf("after a top-up: %d, want 200 at once", r.Status)
	}
	if r := e.chatRecord(e.app, e.key, body); r.Status != 200 { // no account: postpaid
		t.Errorf("key without a credit account: %d", r.Status)
	}
}

// TestAdminLedgerEdges: a model name with "/" (an upstream name such as meta-llama/…) can be
// priced and read; a doubled minus in a credit adjustment is refused, not taken as a plus.
func TestAdminLedgerEdges(t *testing.T) {
	e := newEnv(t)
	if st := e.adminSend(http.MethodPut, "/admin/pricing/meta-llama/Llama-3.1-8B-Instruct", `{"input_per_million":0.2,"output_per_million":0.4}`, nil); st != 200 {
		t.Fatalf("PUT a price for a model with a slash: %d", st)
	}
	var hist struct {
		Data []struct {
			Model string `json:"model"`
			In    string `json:"input_per_million"`
		} `json:"data"`
	}
	if st := e.adminSend(http.MethodGet, "/admin/pricing/meta-llama/Llama-3.1-8B-Instruct", "", &hist); st != 200 ||
		len(hist.Data) != 1 || hist.Data[0].Model != "meta-llama/Llama-3.1-8B-Instruct" || hist.Data[0].In != "0.2" {
		t.Errorf("GET its history: %d %+v", st, hist)
	}
	if _, ok := e.app.gateway.Prices().Lookup("meta-llama/Llama-3.1-8B-Instruct"); !ok {
		t.Error("the price is not in force")
	}
	e.adminSend(http.MethodPost, "/admin/users", `{"id":"edge"}`, nil)
	e.adminSend(http.MethodPost, "/admin/credits/user/edge/topup", `{"amount_usd":"10"}`, nil)
	for _, amount := range []string{`"--5"`, `"-0"`, `"0"`} {
		if st := e.adminSend(http.MethodPost, "/admin/credits/user/edge/adjust", `{"amount_usd":`+amount+`}`, nil); st != http.StatusBadRequest {
			t.Errorf("adjust by %s: %d, want 400", amount, st)
		}
	}
	var acct struct {
		Balance string `json:"balance_usd"`
	}
	e.adminSend(http.MethodGet, "/admin/credits/user/edge", "", &acct)
	if acct.Balance != "10" {
		t.Errorf("balance %s after refused adjustments, want 10", acct.Balance)
	}
}
