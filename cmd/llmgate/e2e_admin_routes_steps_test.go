package main

import (
	"bytes"
	"encoding/csv"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/billing"
)

// The steps of TestEveryAdminRouteOnBothStores from the admin tokens on: tokens, quota, pricing,
// credits, deployments, the public listener, the ledger views and the deletions.

func (s *routeRun) createToken(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/tokens", map[string]any{"name": "route viewer", "role": "viewer", "tenant_id": s.tenant})
	s.tokenID, s.token = r.JSON("id").String(), r.JSON("token").String()
	if !strings.HasPrefix(s.token, "lga-") || r.JSON("role").String() != "viewer" || r.JSON("tenant_id").String() != s.tenant ||
		r.JSON("created_by").String() != "bootstrap" {
		t.Fatalf("created token: %s", r.Body)
	}
	if u := s.admin(t).As(s.token).Must(200, "GET", "/admin/users", nil); !admintest.SameSet(u.IDs(), []string{s.user}) {
		t.Errorf("users seen by the new token scoped to %s: %s", s.tenant, u.Body)
	}
}

func (s *routeRun) listTokens(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/tokens?tenant_id="+s.tenant, nil)
	if !admintest.SameSet(r.IDs(), []string{s.tokenID}) || r.JSON("data.0.token").Exists() {
		t.Errorf("tokens of %s: %s", s.tenant, r.Body)
	}
}

func (s *routeRun) getToken(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/tokens/"+s.tokenID, nil)
	if r.JSON("name").String() != "route viewer" || r.JSON("last_used_at").String() == "" || r.JSON("token").Exists() {
		t.Errorf("token (used once): %s", r.Body)
	}
}

func (s *routeRun) revokeToken(t *testing.T) {
	if r := s.admin(t).Must(200, "DELETE", "/admin/tokens/"+s.tokenID, nil); r.JSON("revoked_at").String() == "" {
		t.Errorf("revoked token: %s", r.Body)
	}
	s.admin(t).As(s.token).Refused(401, "", "GET", "/admin/users", nil)
}

func (s *routeRun) putUserPolicy(t *testing.T) {
	r := s.admin(t).Must(200, "PUT", "/admin/quota/policy/"+s.user, map[string]any{"userRpm": 100, "userTokensPerDay": 1_000_000})
	if r.JSON("userId").String() != s.user || r.JSON("tier").String() != "open" || r.JSON("effective.userRpm").Int() != 100 ||
		r.JSON("effective.userTokensPerDay").Int() != 1_000_000 {
		t.Errorf("user policy: %s", r.Body)
	}
}

func (s *routeRun) getUserPolicy(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/quota/policy/"+s.user, nil)
	if len(r.JSON("policies").Array()) != 1 || r.JSON("policies.0.userRpm").Int() != 100 || r.JSON("effective.userRpm").Int() != 100 {
		t.Errorf("user policy: %s", r.Body)
	}
}

// policyModels lists the models of a subject's policies ("" for the model-less one).
func policyModels(r admintest.Resp) []string {
	var out []string
	for _, p := range r.JSON("data").Array() {
		out = append(out, p.Get("model").String())
	}
	return out
}

func (s *routeRun) putPolicy(t *testing.T) {
	r := s.admin(t).Must(200, "PUT", "/admin/quota/policies/user/"+s.user+"?model=other", map[string]any{"rpm": 30})
	if !admintest.SameSet(policyModels(r), []string{"", "other"}) || r.JSON(`data.#(model=="other").rpm`).Int() != 30 {
		t.Errorf("policies after PUT: %s", r.Body)
	}
}

func (s *routeRun) getPolicies(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/quota/policies/user/"+s.user, nil)
	if !admintest.SameSet(policyModels(r), []string{"", "other"}) || r.JSON(`data.#(model=="").rpm`).Int() != 100 {
		t.Errorf("policies of %s: %s", s.user, r.Body)
	}
}

func (s *routeRun) listPolicies(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/quota/policies", nil)
	got := subjects(r)
	for _, want := range []string{"tenant/" + s.tenant, "user/" + s.user, "key/" + s.keyID} {
		if !slices.Contains(got, want) {
			t.Errorf("policies %v lack %s", got, want)
		}
	}
}

// listTiers: the configured default tier is among the tiers listed.
func (s *routeRun) listTiers(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/quota/tiers", nil)
	def := r.JSON("default_tier").String()
	if def == "" || !r.JSON(`data.#(name=="`+def+`")`).Exists() {
		t.Errorf("tiers: %s", r.Body)
	}
}

func (s *routeRun) deletePolicy(t *testing.T) {
	c := s.admin(t)
	c.Must(204, "DELETE", "/admin/quota/policies/user/"+s.user+"?model=other", nil)
	if r := c.Must(200, "GET", "/admin/quota/policies/user/"+s.user, nil); !admintest.SameSet(policyModels(r), []string{""}) {
		t.Errorf("policies after deleting model other's: %s", r.Body)
	}
}

func (s *routeRun) putPrice(t *testing.T) {
	r := s.admin(t).Must(200, "PUT", "/admin/pricing/up-model", map[string]any{"input_per_million": "1", "output_per_million": "2"})
	s.priceVersion = r.JSON("version").String()
	if r.JSON("model").String() != "up-model" || r.JSON("input_per_million").String() != "1" ||
		r.JSON("output_per_million").String() != "2" || !strings.HasPrefix(s.priceVersion, "up-model@") {
		t.Fatalf("price: %s", r.Body)
	}
}

func (s *routeRun) listPrices(t *testing.T) {
	if r := s.admin(t).Must(200, "GET", "/admin/pricing", nil); r.JSON(`data.#(model=="up-model").version`).String() != s.priceVersion {
		t.Errorf("prices in force lack up-model at %s: %.500s", s.priceVersion, r.Body)
	}
}

func (s *routeRun) priceHistory(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/pricing/up-model", nil)
	if len(r.JSON("data").Array()) != 1 || r.JSON("data.0.version").String() != s.priceVersion {
		t.Errorf("price history of up-model: %s", r.Body)
	}
}

func (s *routeRun) topUp(t *testing.T) {
	r := s.admin(t).Must(200, "POST", "/admin/credits/user/"+s.user+"/topup", map[string]any{"amount_usd": "5", "note": "welcome pack"})
	if r.JSON("balance_usd").String() != "5" || r.JSON("subject_id").String() != s.user ||
		r.JSON("entries.0.kind").String() != "grant" || r.JSON("entries.0.note").String() != "welcome pack" {
		t.Errorf("after a top-up: %s", r.Body)
	}
}

func (s *routeRun) adjust(t *testing.T) {
	r := s.admin(t).Must(200, "POST", "/admin/credits/user/"+s.user+"/adjust", map[string]any{"amount_usd": "-0.5", "note": "goodwill correction"})
	if r.JSON("balance_usd").String() != "4.5" || r.JSON(`entries.#(kind=="adjust").amount_usd`).String() != "-0.5" {
		t.Errorf("after an adjustment: %s", r.Body)
	}
}

func (s *routeRun) listDeployments(t *testing.T) {
	want := map[string]bool{}
	for _, m := range s.e.cfg.Models {
		for _, d := range m.Deployments {
			if d.ID == "" {
				d.ID = d.Provider + "/" + d.Model
			}
			want[d.ID] = true
		}
	}
	var ids []string
	for id := range want {
		ids = append(ids, id)
	}
	r := s.admin(t).Must(200, "GET", "/admin/deployments", nil)
	if !admintest.SameSet(r.IDs(), ids) || r.JSON(`data.#(id=="`+s.deployment+`").provider`).String() != "up" {
		t.Errorf("deployments, want %v: %s", ids, r.Body)
	}
}

func (s *routeRun) getDeployment(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/deployments/"+s.deployment, nil)
	if r.JSON("upstream_model").String() != "other-model" || r.JSON("models").Raw != `["other"]` || r.JSON("weight").Int() != 1 ||
		r.JSON("override").Type != gjson.Null || r.JSON("health.breaker").String() != "closed" {
		t.Errorf("deployment %s: %s", s.deployment, r.Body)
	}
}

func (s *routeRun) patchDeployment(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/deployments/"+s.deployment, map[string]any{"weight": 5})
	if r.JSON("weight").Int() != 5 || r.JSON("file_weight").Int() != 1 || r.JSON("override.weight").Int() != 5 ||
		r.JSON("override.updated_by").String() != "bootstrap" || !r.JSON("enabled").Bool() {
		t.Errorf("patched deployment: %s", r.Body)
	}
}

func (s *routeRun) publicLive(t *testing.T) {
	if r := s.public(t, "").Must(200, "GET", "/health/live", nil); r.JSON("status").String() != "ok" {
		t.Errorf("public /health/live: %s", r.Body)
	}
}

func (s *routeRun) publicReady(t *testing.T) {
	if r := s.public(t, "").Must(200, "GET", "/health/ready", nil); r.JSON("status").String() != "ok" || r.JSON("store").String() != "ok" {
		t.Errorf("public /health/ready: %s", r.Body)
	}
}

func (s *routeRun) chat(t *testing.T) {
	r := s.relay(t, s.key, "/v1/chat/completions", routeChatBody)
	s.chatID = r.Header.Get("X-Request-Id")
	if tp := r.Header.Get("Traceparent"); len(tp) == 55 {
		s.traceID = tp[3:35]
	} else {
		t.Errorf("Traceparent %q", tp)
	}
	if n := len(strings.Fields(r.JSON("choices.0.message.content").String())); n != 20 ||
		r.JSON("usage.prompt_tokens").Int() != 5 || r.JSON("usage.completion_tokens").Int() != 20 {
		t.Errorf("chat answer (%d words): %s", n, r.Body)
	}
}

func (s *routeRun) completion(t *testing.T) {
	r := s.relay(t, s.key, "/v1/completions", routeCompletionBody)
	if r.JSON("usage.prompt_tokens").Int() != 3 || r.JSON("usage.completion_tokens").Int() != 5 || r.JSON("choices.0.finish_reason").String() != "length" {
		t.Errorf("completion answer: %s", r.Body)
	}
}

func (s *routeRun) embeddings(t *testing.T) {
	r := s.relay(t, s.key, "/v1/embeddings", routeEmbeddingsBody)
	if len(r.JSON("data").Array()) != 2 || len(r.JSON("data.0.embedding").Array()) == 0 || r.JSON("usage.prompt_tokens").Int() != 3 {
		t.Errorf("embeddings answer: %.500s", r.Body)
	}
}

// models: the key may use every model, its tenant two of them.
func (s *routeRun) models(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "GET", "/v1/models", nil); !admintest.SameSet(r.IDs(), []string{"gpt-test", "other"}) {
		t.Errorf("models of the tenant's key: %s", r.Body)
	}
}

func (s *routeRun) model(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "GET", "/v1/models/gpt-test", nil); r.JSON("id").String() != "gpt-test" || r.JSON("object").String() != "model" {
		t.Errorf("model: %s", r.Body)
	}
}

// providers shows the deployment override made through the admin API.
func (s *routeRun) providers(t *testing.T) {
	r := s.public(t, s.key).Must(200, "GET", "/v1/providers", nil)
	d := r.JSON(`data.#(name=="up").deployments.#(id=="` + s.deployment + `")`)
	if len(r.JSON("data").Array()) != 1 || d.Get("weight").Int() != 5 || d.Get("models").Raw != `["other"]` || !d.Get("available").Bool() {
		t.Errorf("providers, want only up, with %s at weight 5: %s", s.deployment, r.Body)
	}
}

func (s *routeRun) status(t *testing.T) {
	r := s.public(t, s.key).Must(200, "GET", "/v1/status", nil)
	if r.JSON("status").String() != "ok" || r.JSON("store").String() != "ok" ||
		!admintest.SameSet(idsAt(r, "models"), []string{"gpt-test", "other"}) || r.JSON(`models.#(status!="available")`).Exists() {
		t.Errorf("status: %s", r.Body)
	}
}

// usage: the caller's own usage and balance, once the ledger has its requests.
func (s *routeRun) usage(t *testing.T) {
	s.waitRecorded(t)
	r := s.public(t, s.key).Must(200, "GET", "/v1/usage", nil)
	if r.JSON("key_id").String() != s.keyID || r.JSON("user_id").String() != s.user || r.JSON("tenant_id").String() != s.tenant ||
		r.JSON("today.requests").Int() < int64(len(s.relays)) || r.JSON("today.cost_usd").String() != routePricedUSD ||
		r.JSON("credit.account").String() != "user" || r.JSON("credit.balance_usd").String() != routeBalance ||
		r.JSON(`quota.#(subject=="user/`+s.user+`").limits.rpm`).Int() != 100 {
		t.Errorf("usage of the key (%d requests relayed): %s", len(s.relays), r.Body)
	}
}

func (s *routeRun) resetDeployment(t *testing.T) {
	r := s.admin(t).Must(200, "DELETE", "/admin/deployments/"+s.deployment, nil)
	if r.JSON("weight").Int() != 1 || r.JSON("override").Type != gjson.Null {
		t.Errorf("reset deployment: %s", r.Body)
	}
}

func (s *routeRun) balance(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/credits/user/"+s.user, nil)
	if r.JSON("balance_usd").String() != routeBalance || r.JSON(`entries.#(request_id=="`+s.chatID+`").amount_usd`).String() != "-"+routeChatCost {
		t.Errorf("balance after the priced requests: %s", r.Body)
	}
}

// listAccounts: the run's user's account is among its tenant's, with the balance it shows alone.
func (s *routeRun) listAccounts(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/credits?subject_type=user&tenant_id="+s.tenant, nil)
	if r.JSON(`data.#(subject_id=="`+s.user+`").balance_usd`).String() != routeBalance {
		t.Errorf("accounts of %s: %s", s.tenant, r.Body)
	}
}

// creditEntries pages through the ledger the balance showed: the charge of the chat, the
// adjustment and the top-up are all there, oldest last.
func (s *routeRun) creditEntries(t *testing.T) {
	var kinds []string
	path := "/admin/credits/user/" + s.user + "/entries?limit=1"
	for {
		r := s.admin(t).Must(200, "GET", path, nil)
		if n := len(r.JSON("data").Array()); n > 1 {
			t.Fatalf("a page of limit 1 holds %d entries: %s", n, r.Body)
		}
		kinds = append(kinds, r.JSON("data.0.kind").String())
		if !r.JSON("has_more").Bool() {
			break
		}
		path = "/admin/credits/user/" + s.user + "/entries?limit=1&offset=" + r.JSON("next_offset").String()
	}
	if len(kinds) < 3 || kinds[len(kinds)-1] != "grant" || !slices.Contains(kinds, "charge") || !slices.Contains(kinds, "adjust") {
		t.Errorf("the ledger paged one entry at a time: %v", kinds)
	}
}

func (s *routeRun) listUsage(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/audit?model=gpt-test&size=1000&userId="+s.user, nil)
	rec := r.JSON(`data.#(request_id=="` + s.chatID + `")`)
	if n := len(r.JSON("data").Array()); n != len(s.relays) || rec.Get("cost_usd").String() != routeChatCost ||
		rec.Get("price_version").String() != s.priceVersion || rec.Get("key_id").String() != s.keyID ||
		rec.Get("tenant_id").String() != s.tenant || rec.Get("trace_id").String() != s.traceID || rec.Get("status").Int() != 200 {
		t.Errorf("usage audit (%d requests relayed, chat %s): %.2000s", len(s.relays), s.chatID, r.Body)
	}
}

func (s *routeRun) trace(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/audit/"+s.traceID, nil)
	if len(r.JSON("data").Array()) != 1 || r.JSON("data.0.request_id").String() != s.chatID || r.JSON("trace_id").String() != s.traceID {
		t.Errorf("trace %s: %s", s.traceID, r.Body)
	}
}

// exportUsage: the CSV export has a row for every answered request of the user, the chat's with
// its exact cost and trace.
func (s *routeRun) exportUsage(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/audit.csv?model=gpt-test&userId="+s.user, nil)
	rows, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil || len(rows) != len(s.relays)+1 || rows[0][0] != "request_id" || rows[0][22] != "cost_usd" {
		t.Fatalf("usage CSV (%v, %d requests relayed): %.2000s", err, len(s.relays), r.Body)
	}
	for _, row := range rows[1:] {
		if row[0] == s.chatID && (row[22] != routeChatCost || row[2] != s.traceID || row[5] != s.tenant || row[7] != s.keyID) {
			t.Errorf("the chat's row: %q", row)
		}
	}
}

func (s *routeRun) billingSummary(t *testing.T) {
	month := time.Now().UTC().Format("2006-01")
	r := s.admin(t).Must(200, "GET", "/admin/billing/summary?month="+month+"&userId="+s.user, nil)
	if r.JSON("models.gpt-test.requests").Int() != int64(len(s.relays)) || r.JSON("models.gpt-test.cost_usd").String() != routePricedUSD ||
		r.JSON("userId").String() != s.user {
		t.Errorf("billing summary of %s (%d requests relayed): %s", month, len(s.relays), r.Body)
	}
}

// usageSeries: the run's relayed requests of gpt-test are in its user's last two days, costed
// as the rollups cost them (the series counts refusals too, so at least as many requests).
func (s *routeRun) usageSeries(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/usage/series?bucket=day&model=gpt-test&user_id="+s.user+
		"&from="+time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02"), nil)
	if r.JSON("total.requests").Int() < int64(len(s.relays)) || r.JSON("total.cost_usd").String() != routePricedUSD ||
		len(r.JSON("data").Array()) < 2 {
		t.Errorf("usage series of %s (%d requests relayed): %s", s.user, len(s.relays), r.Body)
	}
}

// usageTop: the run's user is among its tenant's spenders on gpt-test, with the rollups' cost.
func (s *routeRun) usageTop(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/usage/top?by=user&model=gpt-test&tenant_id="+s.tenant, nil)
	if r.JSON(`data.#(id=="`+s.user+`").cost_usd`).String() != routePricedUSD || r.JSON("by").String() != "user" {
		t.Errorf("top users of %s: %s", s.tenant, r.Body)
	}
}

func (s *routeRun) billingCSV(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/billing/records.csv?userId="+s.user, nil)
	rows, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil || len(rows) < 2 || rows[0][0] != "day" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV (%v): %s", err, r.Body)
	}
	var requests, micro int64
	for _, row := range rows[1:] { // one row a UTC day and priced or not: a run across midnight has more
		if row[2] == s.user && row[3] == s.keyID && row[4] == "gpt-test" {
			n, _ := strconv.ParseInt(row[5], 10, 64)
			if row[10] == "" { // the row of the requests that had no price: no cost, not $0
				requests += n
				continue
			}
			cost, err := billing.ParseUSD(row[10])
			if err != nil {
				t.Errorf("cost %q: %v", row[10], err)
			}
			requests, micro = requests+n, micro+cost
		}
	}
	if requests != int64(len(s.relays)) || billing.FormatMicro(micro) != routePricedUSD {
		t.Errorf("CSV rows of %s with gpt-test: %d requests, %s USD; want %d, %s:\n%s", s.user, requests, billing.FormatMicro(micro), len(s.relays), routePricedUSD, r.Body)
	}
}

// quotaUsage: the user's consumption as the limiter counts it. Settlement, which counts the
// tokens, runs after each answer is sent.
func (s *routeRun) quotaUsage(t *testing.T) {
	var r admintest.Resp
	waitFor(t, 5*time.Second, "the limiter to count the tokens", func() bool {
		r = s.admin(t).Must(200, "GET", "/admin/quota/usage/"+s.user, nil)
		return r.JSON("tokensDay").Int() >= 25+8+3 // the three requests since the user's policy
	})
	if r.JSON("requests").Int() < 3 || r.JSON("tenantId").String() != s.tenant || r.JSON("limits.userRpm").Int() != 100 {
		t.Errorf("quota usage: %s", r.Body)
	}
}

// clearSession lifts a session's limit of two requests a minute.
func (s *routeRun) clearSession(t *testing.T) {
	for i, want := range []int{200, 200, 429} {
		if st := s.e.chatStatus(s.e.app, s.key, "gpt-test", "X-Session-Id", s.session); st != want {
			t.Fatalf("request %d of session %s: HTTP %d, want %d", i+1, s.session, st, want)
		}
	}
	s.admin(t).Must(204, "DELETE", "/admin/quota/session/"+s.session+"?tenantId="+s.tenant, nil)
	if st := s.e.chatStatus(s.e.app, s.key, "gpt-test", "X-Session-Id", s.session); st != 200 {
		t.Errorf("the session's next request after clearing it: HTTP %d, want 200", st)
	}
}

var chatRequestsMetric = regexp.MustCompile(`(?m)^llmgate_requests_total\{endpoint="chat/completions",model="gpt-test",status="(200|429)"\} (\d+)$`)

func (s *routeRun) metrics(t *testing.T) {
	r := s.admin(t).As("").Must(200, "GET", "/metrics", nil)
	got := map[string]int{}
	for _, m := range chatRequestsMetric.FindAllStringSubmatch(r.Body, -1) {
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	if got["200"] < 6 || got["429"] < 1 { // at least: rotate 2, chat 1, session 3; the session's refusal
		t.Errorf("chat requests counted by status: %v", got)
	}
}

func (s *routeRun) deleteUserPolicy(t *testing.T) {
	c := s.admin(t)
	c.Must(204, "DELETE", "/admin/quota/policy/"+s.user, nil)
	if r := c.Must(200, "GET", "/admin/quota/policy/"+s.user, nil); r.JSON("policies").Raw != "[]" || r.JSON("effective.userRpm").Int() != 0 {
		t.Errorf("user policy after DELETE: %s", r.Body)
	}
}

// deleteUser also revokes the user's key, which the gateway then refuses.
func (s *routeRun) deleteUser(t *testing.T) {
	c := s.admin(t)
	if r := c.Must(200, "DELETE", "/admin/users/"+s.user, nil); r.JSON("id").String() != s.user || r.JSON("deleted_at").String() == "" {
		t.Errorf("deleted user: %s", r.Body)
	}
	if k := c.Must(200, "GET", "/admin/keys/"+s.keyID, nil); k.JSON("status").String() != "revoked" {
		t.Errorf("the deleted user's key: %s", k.Body)
	}
	admWaitChat(t, s.e, s.key, "gpt-test", 401, 5*time.Second, "the deleted user's key to be refused")
}

// deleteTenant: with its users deleted and its keys and tokens revoked, the tenant can go.
func (s *routeRun) deleteTenant(t *testing.T) {
	c := s.admin(t)
	if r := c.Must(200, "DELETE", "/admin/tenants/"+s.tenant, nil); r.JSON("id").String() != s.tenant || r.JSON("deleted_at").String() == "" {
		t.Errorf("deleted tenant: %s", r.Body)
	}
	if r := c.Must(200, "GET", "/admin/tenants?q="+s.tenant, nil); len(r.IDs()) != 0 {
		t.Errorf("a deleted tenant is still listed: %s", r.Body)
	}
}

// auditLog: every change of the run is in the admin audit log, by whom and under which request.
func (s *routeRun) auditLog(t *testing.T) {
	c := s.admin(t)
	r := c.Must(200, "GET", "/admin/audit-log?limit=1000&tenant_id="+s.tenant, nil)
	seen := map[string]bool{}
	var created gjson.Result
	for _, it := range r.JSON("data").Array() {
		seen[it.Get("action").String()] = true
		if it.Get("action").String() == "key.create" && it.Get("target").String() == s.keyID {
			created = it
		}
	}
	for _, a := range []string{"tenant.create", "tenant.update", "user.create", "user.update", "key.create", "key.update", "key.rotate",
		"key.revoke", "token.create", "token.revoke", "quota_policy.put", "quota_policy.delete", "credit.grant", "credit.adjust",
		"quota_session.clear", "user.delete", "tenant.delete"} {
		if !seen[a] {
			t.Errorf("the audit log of %s has no %s: %.3000s", s.tenant, a, r.Body)
		}
	}
	if created.Get("request_id").String() != s.keyRequestID || created.Get("actor").String() != "bootstrap" {
		t.Errorf("key.create entry, want request %s: %s", s.keyRequestID, created.Raw)
	}
	global := c.Must(200, "GET", "/admin/audit-log?target="+url.QueryEscape(s.deployment), nil)
	var actions []string
	for _, it := range global.JSON("data").Array() {
		actions = append(actions, it.Get("action").String())
	}
	if !admintest.SameSet(actions, []string{"deployment.reset", "deployment.update"}) {
		t.Errorf("audit log of deployment %s: %v", s.deployment, actions)
	}
}

// idsAt lists the "id" of every item of the list at path.
func idsAt(r admintest.Resp, path string) []string {
	var out []string
	for _, it := range r.JSON(path).Array() {
		out = append(out, it.Get("id").String())
	}
	return out
}

func (s *routeRun) createResponse(t *testing.T) {
	r := s.public(t, s.key).Must(200, "POST", "/v1/responses", `{"model":"gpt-test","input":"route check"}`)
	s.responseID = r.JSON("id").String()
	if !strings.HasPrefix(s.responseID, "resp_") || r.JSON("status").String() != "completed" || r.JSON("usage.output_tokens").Int() == 0 {
		t.Errorf("response: %.500s", r.Body)
	}
}

func (s *routeRun) getResponse(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "GET", "/v1/responses/"+s.responseID, nil); r.JSON("id").String() != s.responseID {
		t.Errorf("GET response: %.500s", r.Body)
	}
}

// cancelResponse: the call reaches the deployment that holds the response, which refuses to
// cancel one that was not made in the background.
func (s *routeRun) cancelResponse(t *testing.T) {
	if r := s.public(t, s.key).Must(400, "POST", "/v1/responses/"+s.responseID+"/cancel", nil); !strings.Contains(r.Body, "background") {
		t.Errorf("cancel: %s", r.Body)
	}
}

func (s *routeRun) deleteResponse(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "DELETE", "/v1/responses/"+s.responseID, nil); !r.JSON("deleted").Bool() {
		t.Errorf("DELETE response: %s", r.Body)
	}
	s.public(t, s.key).Must(404, "GET", "/v1/responses/"+s.responseID, nil)
}

func (s *routeRun) images(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "POST", "/v1/images/generations", `{"model":"gpt-test","prompt":"a cat","n":2}`); len(r.JSON("data").Array()) != 2 {
		t.Errorf("images: %.500s", r.Body)
	}
}

func (s *routeRun) moderations(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "POST", "/v1/moderations", `{"model":"gpt-test","input":"hello"}`); len(r.JSON("results").Array()) != 1 {
		t.Errorf("moderations: %.500s", r.Body)
	}
}

// postForm sends a multipart form of fields (name, value pairs) and one file part to a public
// path with the run's key.
func (s *routeRun) postForm(t *testing.T, path, fileField string, file []byte, fields ...string) admintest.Resp {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, _ := w.CreateFormFile(fileField, "upload.bin")
	_, _ = fw.Write(file)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = w.WriteField(fields[i], fields[i+1])
	}
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, s.e.app.publicURL+path, &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := s.e.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d %s", path, resp.StatusCode, raw)
	}
	return admintest.Resp{Status: resp.StatusCode, Body: string(raw), Header: resp.Header}
}

func (s *routeRun) imageEdits(t *testing.T) {
	if r := s.postForm(t, "/v1/images/edits", "image", []byte("png"), "model", "gpt-test", "prompt", "a hat"); len(r.JSON("data").Array()) != 1 {
		t.Errorf("image edits: %.500s", r.Body)
	}
}

func (s *routeRun) transcriptions(t *testing.T) {
	if r := s.postForm(t, "/v1/audio/transcriptions", "file", make([]byte, 16000), "model", "gpt-test"); r.JSON("text").String() == "" {
		t.Errorf("transcriptions: %.500s", r.Body)
	}
}

func (s *routeRun) translations(t *testing.T) {
	if r := s.postForm(t, "/v1/audio/translations", "file", make([]byte, 16000), "model", "gpt-test", "response_format", "text"); r.Body == "" {
		t.Errorf("translations: empty answer")
	}
}

func (s *routeRun) speech(t *testing.T) {
	if r := s.public(t, s.key).Must(200, "POST", "/v1/audio/speech", `{"model":"gpt-test","input":"hello","voice":"alloy"}`); r.Header.Get("Content-Type") != "audio/mpeg" || r.Body == "" {
		t.Errorf("speech: %s, %d bytes", r.Header.Get("Content-Type"), len(r.Body))
	}
}
