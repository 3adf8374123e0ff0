package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llmgate/llmgate/providers"
)

// alertRules is the part of a Prometheus rule file the test reads.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	// promQLGrouping is a grouping clause, whose parentheses hold label names, not metrics.
	promQLGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// promQLNoise is what holds no metric name: label matchers, range and subquery brackets,
	// strings.
	promQLNoise = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|"[^"]*"`)
	// promQLIdent is an identifier not glued to a number (5m) or a name before it.
	promQLIdent = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	promQLWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricsIn returns the metric names a PromQL expression refers to: every identifier that is
// not a keyword, a function or aggregation (followed by "("), or a label name.
func metricsIn(expr string) []string {
	expr = promQLGrouping.ReplaceAllString(expr, " ")
	expr = promQLNoise.ReplaceAllString(expr, " ")
	var names []string
	for _, m := range promQLIdent.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[m[2]:m[3]]
		if call := strings.HasPrefix(strings.TrimLeft(expr[m[3]:], " \t\n"), "("); call || promQLWords[strings.ToLower(name)] {
			continue
		}
		names = append(names, name)
	}
	return names
}

// TestAlertRules checks configs/prometheus/alerts.yaml: it parses as a rule file with the group
// llmgate, every rule is complete, its runbook_url names a runbook heading of docs/operations.md,
// and every metric an expression names is one the gateway exports on /metrics (scraped from a
// running gateway with Redis quotas, a tenant budget and an unpriced request, so that the series
// made on first use are there) or one recording.yaml records, so a renamed metric cannot
// silently disarm an alert.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("../../configs/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	if len(rules.Groups) != 1 || rules.Groups[0].Name != "llmgate" || len(rules.Groups[0].Rules) == 0 {
		t.Fatalf("alerts.yaml: want one group named llmgate with rules, got %+v", rules.Groups)
	}
	runbooks := runbookAnchors(t, "../../docs/operations.md")

	e := newEnv(t, withRedisURL("redis://"+rdb.Addr(t)), withFailurePolicies)
	e.putPolicy("/admin/quota/policies/tenant/default", `{"budget_usd_per_month":"1000"}`)
	e.chatRecord(e.app, e.key, `{"model":"other","messages":[{"role":"user","content":"unpriced"}]}`)
	if s := e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"1","output_per_million":1}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing: %d", s)
	}
	e.chatRecord(e.app, e.key, `{"model":"gpt-test","messages":[{"role":"user","content":"priced"}]}`)
	// A retry, a fallback and a degrade reply: their series exist.
	e.failurePolicyRequests(e.app)
	e.scrape(e.app) // the breakers' gauges are made at the first scrape, and shown from the next
	exported := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(e.scrape(e.app)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// "# TYPE name kind": histograms are also scraped as name_bucket, name_sum, name_count.
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				exported[f[2]+"_bucket"], exported[f[2]+"_sum"], exported[f[2]+"_count"] = true, true, true
			}
		}
	}
	if len(exported) == 0 {
		t.Fatal("scraping /metrics: no metrics")
	}
	var recorded alertRules
	raw, err = os.ReadFile("../../configs/prometheus/recording.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &recorded); err != nil {
		t.Fatalf("recording.yaml: %v", err)
	}
	known := func(name string) bool { return exported[name] }
	records := map[string]bool{}
	for _, g := range recorded.Groups {
		for _, r := range g.Rules {
			if r.Record == "" || r.Expr == "" {
				t.Errorf("recording rule %+v: want record and expr", r)
			}
			records[r.Record] = true
			for _, n := range metricsIn(r.Expr) {
				if !known(n) {
					t.Errorf("recording rule %s refers to %s, which the gateway does not export", r.Record, n)
				}
			}
		}
	}

	mentioned := map[string]bool{}
	for _, r := range rules.Groups[0].Rules {
		if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
			t.Errorf("rule %+v: want alert, expr, labels.severity and annotations.summary", r)
		}
		if want := "docs/operations.md#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want || !runbooks[strings.ToLower(r.Alert)] {
			t.Errorf("alert %s: runbook_url %q, want %q naming a heading %q of docs/operations.md", r.Alert, r.Annotations["runbook_url"], want, r.Alert)
		}
		names := metricsIn(r.Expr)
		if len(names) == 0 {
			t.Errorf("alert %s: no metric found in %q", r.Alert, r.Expr)
		}
		for _, n := range names {
			mentioned[n] = true
			if !known(n) && !records[n] {
				t.Errorf("alert %s refers to %s, which the gateway does not export", r.Alert, n)
			}
		}
	}
	if !mentioned["llmgate_usage_spool_full_dropped_total"] {
		t.Error("no alert on llmgate_usage_spool_full_dropped_total (records lost to a full spool)")
	}
	for _, m := range []string{"llmgate_retries_total", "llmgate_fallbacks_total", "llmgate_degraded_total"} {
		if !mentioned[m] {
			t.Errorf("no alert on %s (what a model does when its deployments fail)", m)
		}
	}
}

// withFailurePolicies adds two models whose one deployment is dead and never opens its breaker:
// "resilient" retries it once, then falls back on gpt-test; "degrading" answers with its degrade
// reply.
func withFailurePolicies(c *Config) {
	one := 1
	never := providers.BreakerConfig{ConsecutiveFailures: 1 << 30, MinRequests: 1 << 30}
	c.Models = append(c.Models,
		providers.ModelConfig{Name: "resilient", Fallbacks: []string{"gpt-test"},
			Retry:       providers.RetryPolicy{Retries: &one, Backoff: time.Millisecond},
			Deployments: []providers.DeploymentConfig{{Provider: "dead", Model: "resilient-m", Breaker: never}}},
		providers.ModelConfig{Name: "degrading", Degrade: &providers.DegradeReply{Text: "later"},
			Deployments: []providers.DeploymentConfig{{Provider: "dead", Model: "degrading-m", Breaker: never}}})
}

// failurePolicyRequests sends one request to each model of withFailurePolicies.
func (e *env) failurePolicyRequests(a *app) {
	e.t.Helper()
	for _, m := range []string{"resilient", "degrading"} {
		r := e.chatRecord(a, e.key, `{"model":"`+m+`","messages":[{"role":"user","content":"hi"}]}`)
		if r.ServedModel == "" && r.ErrorType != "degraded" {
			e.t.Fatalf("%s: record %+v, want one served by a fallback or degraded", m, r)
		}
	}
}

// runbookAnchors returns the anchors of a Markdown file's headings, as GitHub makes them
// (lower case, spaces to hyphens, other punctuation dropped).
func runbookAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	out := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}

// TestMetricsIn keeps the expression reader honest on the shapes rules use.
func TestMetricsIn(t *testing.T) {
	for expr, want := range map[string]string{
		`increase(llmgate_x_total[5m]) > 0`:                                        "llmgate_x_total",
		`sum by (instance, job) (rate(a_total{code=~"5.."}[1m])) / on(instance) b`: "a_total b",
		`a / (b > 0) > 0.8`: "a b",
		`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`: "h_bucket",
		`max_over_time(up[10m:1m]) offset 5m and bool c`:             "up c",
	} {
		if got := strings.Join(metricsIn(expr), " "); got != want {
			t.Errorf("metricsIn(%q) = %q, want %q", expr, got, want)
		}
	}
}
