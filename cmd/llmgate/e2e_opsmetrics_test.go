package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// scrape returns the gateway's /metrics text.
func (e *env) scrape(a *app) string {
	e.t.Helper()
	resp, err := e.http.Get(a.adminURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(raw)
}

// sample returns the value of one series of a /metrics text (the series spelled as Prometheus
// writes it, labels sorted by name), and whether it is there.
func sample(text, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// TestOperationsMetrics: the series the dashboard and the alert rules need beyond the request
// counters: tokens and cost by model and tenant (priced or not), failovers by the deployment
// failed over from, each model's deployments and how many can take requests, and a tenant's
// monthly budget beside its spend this month.
func TestOperationsMetrics(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Routing.Breaker.ConsecutiveFailures = 1
		c.Routing.Breaker.OpenFor = time.Minute
	})
	if s := e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"1.50","output_per_million":2}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing: %d", s)
	}
	e.putPolicy("/admin/quota/policies/tenant/default", `{"budget_usd_per_month":"12.5"}`)

	// gpt-test is priced (through its upstream model), other is not: tokens count both, cost
	// only the priced one.
	e.chatRecord(e.app, e.key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c d e"}]}`)
	e.chatRecord(e.app, e.key, `{"model":"other","messages":[{"role":"user","content":"a b c d e"}]}`)
	// failover's first deployment is dead: the request moves on, and the breaker (one failure
	// trips it) opens.
	e.chatRecord(e.app, e.key, `{"model":"failover","messages":[{"role":"user","content":"x"}]}`)

	text := e.scrape(e.app)
	for series, want := range map[string]float64{
		`llmgate_tokens_total{direction="input",model="gpt-test",tenant="default"}`:  8,
		`llmgate_tokens_total{direction="output",model="gpt-test",tenant="default"}`: 20,
		`llmgate_tokens_total{direction="input",model="other",tenant="default"}`:     8,
		`llmgate_cost_usd_total{model="gpt-test",tenant="default"}`:                  5.2e-05,
		`llmgate_deployment_failovers_total{deployment="dead/m"}`:                    1,
		`llmgate_model_deployments{model="failover"}`:                                2,
		`llmgate_model_deployments_available{model="failover"}`:                      1,
		`llmgate_model_deployments_available{model="gpt-test"}`:                      1,
		`llmgate_tenant_budget_month_usd{tenant="default"}`:                          12.5,
	} {
		if got, ok := sample(text, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if _, ok := sample(text, `llmgate_cost_usd_total{model="other",tenant="default"}`); ok {
		t.Error("the unpriced model has a cost series")
	}

	// The spend this month is the ledger's, as the balance guard last read it: it follows the
	// records once they are written and the guard's snapshot is refreshed.
	waitFor(t, 15*time.Second, "the tenant's spend this month in the metrics", func() bool {
		time.Sleep(250 * time.Millisecond)
		e.chatRecord(e.app, e.key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c d e"}]}`)
		v, ok := sample(e.scrape(e.app), `llmgate_tenant_spend_month_usd{tenant="default"}`)
		return ok && v >= 5.2e-05
	})
}
