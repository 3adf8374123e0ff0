package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The admin CLI's operations commands (quota, credits, deployments, audit, billing, audit-log)
// against a running gateway: each group's table, its --json and an error naming the field.

// cliAgainst points the command line at e's admin API with the bootstrap token.
func cliAgainst(t *testing.T, e *env) {
	t.Setenv("LLMGATE_ADMIN_URL", e.app.adminURL)
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)
}

// row reports whether a table has a line matching the pattern (columns separated by spaces).
func row(table, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + pattern).MatchString(table)
}

func TestCLIQuota(t *testing.T) {
	e := newEnv(t, withRedisURL("redis://"+rdb.Addr(t)))
	cliAgainst(t, e)
	cliOK(t, "users", "create", "alice")

	out := cliOK(t, "quota", "set", "user", "alice", "--rpm", "100", "--budget-day", "2.5")
	if !strings.HasPrefix(out, "TYPE ") || !row(out, `user +alice +\* +100 +- +- +- +2\.5 +- `) {
		t.Errorf("quota set printed:\n%s", out)
	}
	var ps []map[string]any
	cliJSON(t, &ps, "quota", "set", "user", "alice", "--model", "gpt-test", "--tpm", "5000")
	if len(ps) != 2 {
		t.Fatalf("quota set --model --json = %v, want 2 policies", ps)
	}
	cliJSON(t, &ps, "quota", "get", "user", "alice")
	if len(ps) != 2 || ps[0]["rpm"] != 100.0 && ps[1]["rpm"] != 100.0 {
		t.Errorf("quota get --json = %v", ps)
	}
	cliOK(t, "quota", "set", "tenant", "default", "--concurrent", "50")
	if out = cliOK(t, "quota", "list", "--type", "user"); !row(out, `user +alice +gpt-test +- +5000 `) || strings.Contains(out, "tenant") {
		t.Errorf("quota list --type user printed:\n%s", out)
	}
	code, out, errOut := cliRun("quota", "list", "--limit", "1")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "--offset 1") {
		t.Errorf("quota list --limit 1: exit %d\n%s\n%s", code, out, errOut)
	}
	cliJSON(t, &ps, "quota", "list", "--limit", "1", "--all")
	if len(ps) != 3 {
		t.Errorf("quota list --all: %d policies, want 3", len(ps))
	}

	out = cliOK(t, "quota", "usage", "alice")
	if field(t, out, "userId") != "alice" || !strings.Contains(field(t, out, "limits"), "userRpm=100") || field(t, out, "requests") != "0" {
		t.Errorf("quota usage printed:\n%s", out)
	}
	var usage struct {
		Limits map[string]any `json:"limits"`
	}
	cliJSON(t, &usage, "quota", "usage", "alice")
	if usage.Limits["userRpm"] != 100.0 {
		t.Errorf("quota usage --json limits = %v", usage.Limits)
	}
	if out = cliOK(t, "quota", "clear-session", "sess-1", "--tenant", "default"); !strings.Contains(out, "cleared") {
		t.Errorf("quota clear-session printed %q", out)
	}

	if out = cliOK(t, "quota", "delete", "user", "alice", "--model", "gpt-test"); !strings.Contains(out, "deleted") {
		t.Errorf("quota delete printed %q", out)
	}
	if msg := cliFails(t, "quota", "delete", "user", "alice", "--model", "gpt-test"); !strings.Contains(msg, "No quota policy for that subject (and model). (HTTP 404)") {
		t.Errorf("quota delete of nothing: %s", msg)
	}
	if msg := cliFails(t, "quota", "set", "user", "alice", "--rpm", "-1"); !strings.Contains(msg, "rpm: must be 0 (unlimited) or more.") {
		t.Errorf("quota set --rpm -1: %s", msg)
	}
	if msg := cliFails(t, "quota", "get", "group", "x"); !strings.Contains(msg, "subjectType: want user, key or tenant.") {
		t.Errorf("quota get group: %s", msg)
	}
	if msg := cliFails(t, "quota", "get", "user"); !strings.Contains(msg, "quota get: want arguments TYPE ID, got 1") {
		t.Errorf("quota get with one argument: %s", msg)
	}
	// A typo is refused; a policy for a user another system will create needs the explicit flag.
	if msg := cliFails(t, "quota", "set", "user", "alcie", "--rpm", "5"); !strings.Contains(msg, "(HTTP 404)") {
		t.Errorf("quota set for an unknown user: %s", msg)
	}
	if out = cliOK(t, "quota", "set", "user", "carol", "--rpm", "5", "--allow-unknown-subject"); !row(out, `user +carol +\* +5 `) {
		t.Errorf("quota set --allow-unknown-subject printed:\n%s", out)
	}
}

func TestCLICredits(t *testing.T) {
	e := newEnv(t)
	cliAgainst(t, e)
	cliOK(t, "users", "create", "bob")

	out := cliOK(t, "credits", "topup", "user", "bob", "--amount", "10", "--note", "invoice 1")
	if field(t, out, "balance_usd") != "10" || field(t, out, "subject_id") != "bob" || strings.Contains(out, "entries") {
		t.Errorf("credits topup printed:\n%s", out)
	}
	if out = cliOK(t, "credits", "adjust", "user", "bob", "--amount", "-2.5", "--note", "refund"); field(t, out, "balance_usd") != "7.5" {
		t.Errorf("credits adjust printed:\n%s", out)
	}
	cliOK(t, "credits", "topup", "user", "bob", "--amount", "1")
	cliOK(t, "credits", "topup", "user", "bob", "--amount", "0.25")
	var acct struct {
		Balance string           `json:"balance_usd"`
		Entries []map[string]any `json:"entries"`
	}
	cliJSON(t, &acct, "credits", "balance", "user", "bob")
	if acct.Balance != "8.75" || len(acct.Entries) != 4 {
		t.Errorf("credits balance --json = %+v", acct)
	}

	code, out, errOut := cliRun("credits", "history", "user", "bob", "--limit", "2")
	if code != 0 || !strings.HasPrefix(out, "ID ") || !row(out, `\d+ +grant +0\.25 `) || !row(out, `\d+ +grant +1 `) ||
		strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "--offset 2") {
		t.Errorf("credits history --limit 2: exit %d\n%s\n%s", code, out, errOut)
	}
	if out = cliOK(t, "credits", "history", "user", "bob", "--offset", "2"); !row(out, `\d+ +adjust +-2\.5 +- +refund `) || !strings.Contains(out, "invoice 1") {
		t.Errorf("credits history --offset 2 printed:\n%s", out)
	}
	var entries []map[string]any
	cliJSON(t, &entries, "credits", "history", "user", "bob", "--limit", "1", "--all")
	if len(entries) != 4 || entries[3]["note"] != "invoice 1" {
		t.Errorf("credits history --all: %v", entries)
	}

	if msg := cliFails(t, "credits", "topup", "user", "bob", "--amount", "1,5"); !strings.Contains(msg, `invalid value "1,5" for flag -amount`) {
		t.Errorf("credits topup --amount 1,5: %s", msg)
	}
	if msg := cliFails(t, "credits", "adjust", "user", "bob"); !strings.Contains(msg, "amount_usd: required.") {
		t.Errorf("credits adjust without an amount: %s", msg)
	}
	if msg := cliFails(t, "credits", "history", "user", "nobody"); !strings.Contains(msg, "No credit account for that subject. (HTTP 404)") {
		t.Errorf("credits history of nobody: %s", msg)
	}
	if msg := cliFails(t, "credits", "topup", "user", "bbo", "--amount", "1"); !strings.Contains(msg, "(HTTP 404)") {
		t.Errorf("credits topup for an unknown user: %s", msg)
	}
	if out = cliOK(t, "credits", "adjust", "tenant", "acme-later", "--amount", "3", "--allow-unknown-subject"); field(t, out, "balance_usd") != "3" {
		t.Errorf("credits adjust --allow-unknown-subject printed:\n%s", out)
	}
}

func TestCLIDeployments(t *testing.T) {
	e := newEnv(t)
	cliAgainst(t, e)

	out := cliOK(t, "deployments", "list")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "BREAKER") ||
		!row(out, `up/other-model +other +up +other-model +0 +1 +true +closed +true `) {
		t.Errorf("deployments list printed:\n%s", out)
	}
	if out = cliOK(t, "deployments", "disable", "up/other-model"); field(t, out, "enabled") != "false" {
		t.Errorf("deployments disable printed:\n%s", out)
	}
	if out = cliOK(t, "deployments", "list"); !row(out, `up/other-model +other +up +other-model +0 +1 +false `) {
		t.Errorf("deployments list after disable printed:\n%s", out)
	}
	var d struct {
		Enabled  bool           `json:"enabled"`
		Weight   int            `json:"weight"`
		Override map[string]any `json:"override"`
		Health   map[string]any `json:"health"`
	}
	cliJSON(t, &d, "deployments", "weight", "up/other-model", "7")
	if d.Weight != 7 || d.Enabled || d.Override["weight"] != 7.0 {
		t.Errorf("deployments weight --json = %+v", d)
	}
	cliJSON(t, &d, "deployments", "enable", "up/other-model")
	if !d.Enabled || d.Weight != 7 {
		t.Errorf("deployments enable --json = %+v", d)
	}
	if out = cliOK(t, "deployments", "get", "up/other-model"); field(t, out, "weight") != "7" || !strings.Contains(field(t, out, "health"), "breaker=closed") {
		t.Errorf("deployments get printed:\n%s", out)
	}
	d.Override = nil
	cliJSON(t, &d, "deployments", "reset", "up/other-model")
	if d.Override != nil || d.Weight != 1 || !d.Enabled {
		t.Errorf("deployments reset --json = %+v", d)
	}

	if msg := cliFails(t, "deployments", "weight", "up/other-model", "0"); !strings.Contains(msg, "weight: must be an integer from 1 to 1000000.") {
		t.Errorf("deployments weight 0: %s", msg)
	}
	if msg := cliFails(t, "deployments", "weight", "up/other-model", "heavy"); !strings.Contains(msg, `deployments weight: invalid N "heavy": want a whole number`) {
		t.Errorf("deployments weight heavy: %s", msg)
	}
	if msg := cliFails(t, "deployments", "get", "up/none"); !strings.Contains(msg, `No deployment with id "up/none"`) {
		t.Errorf("deployments get up/none: %s", msg)
	}
}

// TestCLIAudit covers the usage audit, the billing summary and export, and the admin audit log.
func TestCLIAudit(t *testing.T) {
	e := newEnv(t)
	cliAgainst(t, e)
	const trace = "0af7651916cd43dd8448eb211c80319c"
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`),
		"traceparent", "00-"+trace+"-b7ad6b7169203331-01")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	reqID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusOK || reqID == "" {
		t.Fatalf("chat: HTTP %d, request id %q", resp.StatusCode, reqID)
	}
	if r := e.usageFor(reqID); r.TraceID != trace {
		t.Fatalf("the record's trace id is %q, want %q", r.TraceID, trace)
	}

	out := cliOK(t, "audit", "search", "--model", "gpt-test")
	if !strings.HasPrefix(out, "STARTED ") || !row(out, `\S+ +`+reqID+` +`+trace+` +- +\S+ +gpt-test +up/up-model +200 `) {
		t.Errorf("audit search printed:\n%s", out)
	}
	var recs []map[string]any
	cliJSON(t, &recs, "audit", "search", "--from", "1h", "--size", "1", "--all")
	if len(recs) != 1 || recs[0]["request_id"] != reqID {
		t.Errorf("audit search --json = %v", recs)
	}
	if out = cliOK(t, "audit", "trace", trace); !strings.Contains(out, reqID) {
		t.Errorf("audit trace printed:\n%s", out)
	}
	if msg := cliFails(t, "audit", "search", "--status", "1000"); !strings.Contains(msg, "status: must be an integer from 0 to 999.") {
		t.Errorf("audit search --status 1000: %s", msg)
	}
	usage := filepath.Join(t.TempDir(), "records.csv")
	if out = cliOK(t, "audit", "export", "--out", usage, "--model", "gpt-test", "--from", "1h"); out != "" {
		t.Errorf("audit export --out wrote to stdout: %q", out)
	}
	exported, err := os.ReadFile(usage)
	if err != nil || !strings.HasPrefix(string(exported), "request_id,client_request_id,trace_id,started_at,") ||
		strings.Count(string(exported), "\n") != 2 || !strings.Contains(string(exported), reqID+",") || !strings.Contains(string(exported), ","+trace+",") {
		t.Errorf("audit export --out: %v\n%s", err, exported)
	}
	if out = cliOK(t, "audit", "export", "--model", "gpt-test"); out != string(exported) {
		t.Errorf("audit export to stdout printed:\n%s\nwant:\n%s", out, exported)
	}
	if out = cliOK(t, "audit", "export", "--model", "none"); strings.Count(out, "\n") != 1 {
		t.Errorf("audit export --model none printed:\n%s", out)
	}
	if msg := cliFails(t, "audit", "export", "--status", "1000"); !strings.Contains(msg, "status: must be an integer from 0 to 999.") {
		t.Errorf("audit export --status 1000: %s", msg)
	}

	month := time.Now().UTC().Format("2006-01")
	waitFor(t, 10*time.Second, "the billing rollups", func() bool {
		var s struct {
			Total struct{ Requests int } `json:"total"`
		}
		cliJSON(t, &s, "billing", "summary", "--month", month)
		return s.Total.Requests >= 1
	})
	out = cliOK(t, "billing", "summary", "--month", month)
	if !strings.Contains(out, "MODEL ") || !row(out, `gpt-test +1 +\d+ +\d+ `) || !row(out, `TOTAL +1 `) || !strings.Contains(out, "month: "+month) {
		t.Errorf("billing summary printed:\n%s", out)
	}
	if msg := cliFails(t, "billing", "summary", "--month", "2026-13"); !strings.Contains(msg, "month: want yyyy-MM") {
		t.Errorf("billing summary --month 2026-13: %s", msg)
	}
	file := filepath.Join(t.TempDir(), "usage.csv")
	if out = cliOK(t, "billing", "export", "--out", file, "--model", "gpt-test"); out != "" {
		t.Errorf("billing export --out wrote to stdout: %q", out)
	}
	csv, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(csv), "day,tenant_id,user_id,key_id,model,") || !strings.Contains(string(csv), ",gpt-test,1,") {
		t.Errorf("billing export --out: %v\n%s", err, csv)
	}
	if out = cliOK(t, "billing", "export"); out != string(csv) {
		t.Errorf("billing export to stdout printed:\n%s\nwant:\n%s", out, csv)
	}
	if msg := cliFails(t, "billing", "export", "--from", "soon"); !strings.Contains(msg, `invalid value "soon" for flag -from`) {
		t.Errorf("billing export --from soon: %s", msg)
	}
	t.Setenv("LLMGATE_ADMIN_TOKEN", "not-the-admin-token-0123456789abcdefgh")
	failed := filepath.Join(t.TempDir(), "failed.csv")
	if msg := cliFails(t, "billing", "export", "--out", failed); !strings.Contains(msg, "(HTTP 401)") {
		t.Errorf("billing export with a wrong token: %s", msg)
	}
	if left, _ := os.ReadDir(filepath.Dir(failed)); len(left) != 0 {
		t.Errorf("a failed export left %d files behind (%s)", len(left), left[0].Name())
	}
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)

	cliOK(t, "users", "create", "carol")
	cliOK(t, "users", "update", "carol", "--tier", "tiny")
	if out = cliOK(t, "audit-log", "--action", "user."); !strings.HasPrefix(out, "AT ") || !row(out, `\S+ +bootstrap +user\.update +carol `) ||
		!row(out, `\S+ +bootstrap +user\.create +carol `) {
		t.Errorf("audit-log --action user. printed:\n%s", out)
	}
	var entries []map[string]any
	cliJSON(t, &entries, "audit-log", "list", "--target", "carol", "--limit", "1", "--all")
	if len(entries) != 2 || entries[0]["action"] != "user.update" {
		t.Errorf("audit-log list --all --json = %v", entries)
	}
	if msg := cliFails(t, "audit-log", "--limit", "0"); !strings.Contains(msg, "limit: must be an integer from 1 to 1000.") {
		t.Errorf("audit-log --limit 0: %s", msg)
	}
}
