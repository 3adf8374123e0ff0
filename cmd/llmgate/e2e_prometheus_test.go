//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llmgate/llmgate/providers"
)

// TestPrometheusDashboardAndRules runs a real Prometheus (the Debian package's binary) against a
// real gateway (PostgreSQL, Redis, a simulated upstream, all on loopback) under a short load, and
// checks that every PromQL expression of the Grafana dashboard and of the recording rules
// returns data, that every rule evaluates without error, and that a real fault — a deployment
// whose upstream is dead — drives the breaker and model alerts to firing.
func TestPrometheusDashboardAndRules(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (CI=true: scripts/test.sh installs the Debian package prometheus)")
		}
		t.Skip("prometheus is not installed; scripts/test.sh installs the Debian package prometheus")
	}
	dashExprs := dashboardExprs(t, "../../configs/grafana/dashboards/llmgate.json")
	recExprs := ruleExprs(t, "../../configs/prometheus/recording.yaml")
	for _, m := range []string{"llmgate_retries_total", "llmgate_fallbacks_total", "llmgate_degraded_total"} {
		if !slices.ContainsFunc(dashExprs, func(x string) bool { return strings.Contains(x, m+"{") }) {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}

	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)), func(c *Config) {
		// One failure opens a breaker, for long enough to outlast the test.
		c.Routing.Breaker.ConsecutiveFailures = 1
		c.Routing.Breaker.OpenFor = 10 * time.Minute
		// "broken" has one deployment, on a loopback port nothing listens on.
		c.Models = append(c.Models, providers.ModelConfig{Name: "broken",
			Deployments: []providers.DeploymentConfig{{Provider: "dead", Model: "broken-m"}}})
		withFailurePolicies(c) // a retry and a fallback ("resilient"), a degrade reply ("degrading")
	})
	// Prices (up-model is priced; other-model and fallback-model are not), a tenant budget and a
	// key whose tier allows two requests a minute (a 429 by dimension rpm).
	if s := e.adminSend(http.MethodPut, "/admin/pricing/up-model", `{"input_per_million":"1.50","output_per_million":2}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing: %d", s)
	}
	e.putPolicy("/admin/quota/policies/tenant/default", `{"budget_usd_per_month":"1000"}`)
	tiny := e.newKey(createKeyBody{Name: "tiny", UserID: fmt.Sprintf("tiny-%d", time.Now().UnixNano()), Tier: "tiny"})

	prom := startPrometheus(t, promBin, strings.TrimPrefix(e.app.adminURL, "http://"))

	// Load until the test ends: chats, a stream, an unpriced model, a failover, a dead model
	// (502, then 503 with its breaker open) and a rate-limited key.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	statuses := map[int]int{}
	var mu sync.Mutex
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, r := range []struct{ key, body string }{
				{e.key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c"}]}`},
				{e.key, `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"a b c"}]}`},
				{e.key, `{"model":"other","messages":[{"role":"user","content":"a b c"}]}`},
				{e.key, `{"model":"failover","messages":[{"role":"user","content":"a b c"}]}`},
				{e.key, `{"model":"broken","messages":[{"role":"user","content":"a b c"}]}`},
				{e.key, `{"model":"resilient","messages":[{"role":"user","content":"a b c"}]}`},
				{e.key, `{"model":"degrading","messages":[{"role":"user","content":"a b c"}]}`},
				{tiny.Key, `{"model":"gpt-test","messages":[{"role":"user","content":"a b c"}]}`},
			} {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.baseURL+"/chat/completions", strings.NewReader(r.body))
				req.Header.Set("Authorization", "Bearer "+r.key)
				resp, err := e.http.Do(req)
				if err != nil { // the test is ending (t is not for this goroutine)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	// Every expression must return at least one finite sample (a ratio of nothing is NaN).
	type check struct{ from, expr string }
	var pending []check
	for _, c := range append(labelled("dashboard", dashExprs), labelled("recording rule", recExprs)...) {
		pending = append(pending, check{c[0], c[1]})
	}
	last := map[string]string{}
	deadline := time.Now().Add(30 * time.Second)
	for len(pending) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		pending = slices.DeleteFunc(pending, func(c check) bool {
			ok, got := prom.hasData(c.expr)
			last[c.expr] = got
			return ok
		})
	}
	for _, c := range pending {
		t.Errorf("%s expression returned no data: %s\n  result: %s", c.from, c.expr, last[c.expr])
	}
	mu.Lock()
	t.Logf("evaluated %d dashboard and %d recording rule expressions; answers by status: %v",
		len(dashExprs), len(recExprs), statuses)
	mu.Unlock()

	// The dead deployment's breaker is open, and "broken" has no deployment left: both alerts
	// fire (the test's copy of the rules waits 1 s where the file waits minutes).
	waitFor(t, 30*time.Second, "the breaker and model alerts to fire", func() bool {
		time.Sleep(500 * time.Millisecond)
		return prom.firing("LlmgateBreakerOpen", "deployment", "dead/broken-m") &&
			prom.firing("LlmgateModelUnavailable", "model", "broken")
	})
	if prom.firing("LlmgateModelUnavailable", "model", "gpt-test") {
		t.Error("LlmgateModelUnavailable fires for gpt-test, whose deployment answers")
	}
	prom.rulesHealthy(t)
}

// labelled pairs each expression with where it comes from.
func labelled(from string, exprs []string) [][2]string {
	out := make([][2]string, len(exprs))
	for i, x := range exprs {
		out[i] = [2]string{from, x}
	}
	return out
}

// grafanaVar is a template variable reference in a dashboard expression: $name or ${name}.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// dashboardExprs returns every "expr" of the dashboard JSON, wherever it is, with the template
// variables substituted as Grafana would with "All" selected: a variable's allValue, and windows
// for Grafana's interval variables that fit the test's 1 s scrape interval.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	vars := map[string]string{"__rate_interval": "10s", "__interval": "2s", "__range": "1m"}
	var tpl struct {
		Templating struct {
			List []struct {
				Name, Type, AllValue string
				IncludeAll           bool
			}
		}
	}
	if err := json.Unmarshal(raw, &tpl); err != nil {
		t.Fatal(err)
	}
	for _, v := range tpl.Templating.List {
		if v.Type == "query" {
			if !v.IncludeAll || v.AllValue == "" {
				t.Errorf("dashboard variable %s: want includeAll with an allValue", v.Name)
			}
			vars[v.Name] = v.AllValue
		}
	}
	var layout struct {
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource struct{ Type, UID string }
			Targets    []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &layout); err != nil {
		t.Fatal(err)
	}
	ids := map[int]bool{}
	for _, p := range layout.Panels {
		if ids[p.ID] {
			t.Errorf("dashboard panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		// Every panel queries the data source the variable selects, so the dashboard works
		// whatever uid the operator's Prometheus has.
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q: datasource %+v, %d targets; want ${datasource} and a query", p.Title, p.Datasource, len(p.Targets))
		}
	}
	var exprs []string
	var walk func(any)
	walk = func(n any) {
		switch n := n.(type) {
		case map[string]any:
			for k, v := range n {
				if s, ok := v.(string); ok && k == "expr" {
					exprs = append(exprs, grafanaVar.ReplaceAllStringFunc(s, func(m string) string {
						name := grafanaVar.FindStringSubmatch(m)[1]
						v, ok := vars[name]
						if !ok {
							t.Errorf("dashboard expression %q uses $%s, which the test does not know", s, name)
						}
						return v
					}))
					continue
				}
				walk(v)
			}
		case []any:
			for _, v := range n {
				walk(v)
			}
		}
	}
	walk(dash)
	if len(exprs) < 20 {
		t.Fatalf("%s: %d expressions found, want the dashboard's panels' (at least 20)", path, len(exprs))
	}
	return exprs
}

// ruleFile is a Prometheus rule file, kept generic so the test can write it back changed.
type ruleFile struct {
	Groups []struct {
		Name  string           `yaml:"name"`
		Rules []map[string]any `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// ruleExprs returns the expressions of a rule file.
func ruleExprs(t *testing.T, path string) []string {
	var out []string
	for _, g := range readRules(t, path).Groups {
		for _, r := range g.Rules {
			out = append(out, r["expr"].(string))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", path)
	}
	return out
}

// promServer is a Prometheus server the test started.
type promServer struct {
	t   *testing.T
	url string
	c   *http.Client
}

// startPrometheus runs Prometheus on a free loopback port with a temporary database, scraping
// target (host:port of the gateway's admin listener) every second and evaluating the project's
// rule files every second, with every alert's "for" cut to 1 s. It is stopped when t ends.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"recording.yaml", "alerts.yaml"} {
		f := readRules(t, filepath.Join("../../configs/prometheus", name))
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if _, ok := r["for"]; ok {
					r["for"] = "1s"
				}
			}
		}
		out, err := yaml.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [recording.yaml, alerts.yaml]
scrape_configs:
  - job_name: llmgate
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := &promServer{t: t, url: "http://" + addr, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus exited at start:\n%s", log)
		default:
		}
		if resp, err := p.c.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus not ready after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get decodes the data of a Prometheus HTTP API answer.
func (p *promServer) get(path string, q url.Values, data any) {
	p.t.Helper()
	resp, err := p.c.Get(p.url + path + "?" + q.Encode())
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		p.t.Fatalf("GET %s %v: %d %s %v", path, q, resp.StatusCode, body.Error, err)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		p.t.Fatal(err)
	}
}

// hasData evaluates expr now and reports whether it has a sample with a finite value, with the
// result as text for the failure message.
func (p *promServer) hasData(expr string) (bool, string) {
	var data struct {
		ResultType string
		Result     []struct {
			Metric map[string]string
			Value  [2]any
		}
	}
	p.get("/api/v1/query", url.Values{"query": {expr}}, &data)
	out, _ := json.Marshal(data.Result)
	for _, r := range data.Result {
		if s, ok := r.Value[1].(string); ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
				return true, string(out)
			}
		}
	}
	return false, string(out)
}

// firing reports whether the alert is firing with the label given.
func (p *promServer) firing(alert, label, value string) bool {
	var data struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	p.get("/api/v1/alerts", nil, &data)
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == alert && a.Labels[label] == value && a.State == "firing" {
			return true
		}
	}
	return false
}

// rulesHealthy fails the test for a rule whose evaluation failed (a type error, many-to-many
// matching), which promtool's static check cannot see.
func (p *promServer) rulesHealthy(t *testing.T) {
	t.Helper()
	var data struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Name, Health, LastError string
			}
		}
	}
	p.get("/api/v1/rules", nil, &data)
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s (group %s): health %q: %s", r.Name, g.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(ruleExprs(t, "../../configs/prometheus/recording.yaml")) + len(ruleExprs(t, "../../configs/prometheus/alerts.yaml")); n != want {
		t.Errorf("prometheus loaded %d rules, want %d", n, want)
	}
}
