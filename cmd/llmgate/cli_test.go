package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliRun runs the llmgate command line in-process, as the binary would.
func cliRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliOK runs a command that must succeed and returns its standard output.
func cliOK(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cliRun(args...)
	if code != 0 {
		t.Fatalf("llmgate %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// cliJSON runs a command with --json and decodes its output into v.
func cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := cliOK(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("llmgate %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliFails runs a command that must fail and returns its standard error.
func cliFails(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cliRun(args...)
	if code == 0 {
		t.Fatalf("llmgate %s: exit 0, want a failure\nstdout:\n%s", strings.Join(args, " "), out)
	}
	return errOut
}

// field returns the value of a row "name  value" of an object's table.
func field(t *testing.T, table, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` +(.*)$`).FindStringSubmatch(table)
	if m == nil {
		t.Fatalf("no field %q in:\n%s", name, table)
	}
	return strings.TrimSpace(m[1])
}

var secretLine = regexp.MustCompile(`(?m)^(key|token) \(shown once\): (\S+)$`)

// secret returns the one-time plaintext a create or rotate printed.
func secret(t *testing.T, out string) string {
	t.Helper()
	m := secretLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no one-time secret in:\n%s", out)
	}
	return m[2]
}

// TestCLIAgainstGateway drives every admin CLI command against a running gateway.
func TestCLIAgainstGateway(t *testing.T) {
	e := newEnv(t)
	t.Setenv("LLMGATE_ADMIN_URL", e.app.adminURL)
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)
	// waitStatus polls gently: every request counts against the tenant's rate limit.
	waitStatus := func(key string, want int) {
		t.Helper()
		got := 0
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = e.chatStatus(e.app, key, "gpt-test"); got == want {
				return
			}
		}
		resp := e.post(context.Background(), "/chat/completions", key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
		_, _, msg := apiError(t, resp)
		t.Fatalf("a chat with the key still answers HTTP %d after 5 s, want %d: %s", got, want, msg)
	}

	// tenants create: the table shows the limits; --json has them exactly.
	out := cliOK(t, "tenants", "create", "acme", "--name", "Acme Inc", "--models", "gpt-test,other",
		"--rpm", "1000", "--budget-month", "50.5", "--metadata", "plan=gold")
	if field(t, out, "id") != "acme" || field(t, out, "name") != "Acme Inc" || field(t, out, "models") != "gpt-test,other" ||
		field(t, out, "metadata") != "plan=gold" || !strings.Contains(field(t, out, "limits"), "rpm=1000") {
		t.Errorf("tenants create printed:\n%s", out)
	}
	var tenant struct {
		Limits map[string]any `json:"limits"`
	}
	cliJSON(t, &tenant, "tenants", "get", "acme")
	if tenant.Limits["rpm"] != 1000.0 || tenant.Limits["budget_usd_per_month"] != "50.5" {
		t.Errorf("tenant limits = %v", tenant.Limits)
	}

	// users create in it.
	var user struct {
		ID       string `json:"id"`
		TenantID string `json:"tenant_id"`
		Email    string `json:"email"`
	}
	cliJSON(t, &user, "users", "create", "alice", "--tenant", "acme", "--email", "alice@example.com", "--external-id", "ext-1")
	if user.ID != "alice" || user.TenantID != "acme" || user.Email != "alice@example.com" {
		t.Errorf("users create = %+v", user)
	}
	cliJSON(t, &user, "users", "get", "alice")
	if user.TenantID != "acme" {
		t.Errorf("users get = %+v", user)
	}

	// keys create: the table shows the prefix and the key once; the key works.
	out = cliOK(t, "keys", "create", "--user", "alice", "--name", "app", "--models", "gpt-test", "--rpm", "50", "--metadata", "env=prod")
	key, keyID, prefix := secret(t, out), field(t, out, "id"), field(t, out, "prefix")
	if !strings.HasPrefix(key, "sk-lg-") || !strings.HasPrefix(key, prefix) || len(prefix) < 8 ||
		field(t, out, "tenant_id") != "acme" || field(t, out, "status") != "active" {
		t.Errorf("keys create printed:\n%s", out)
	}
	if rpm := strings.Fields(field(t, out, "rpm")); len(rpm) != 2 || rpm[0] != "50" || rpm[1] != "policy:key/"+keyID {
		t.Errorf("keys create: effective rpm %q, want 50 from the key's own limits:\n%s", rpm, out)
	}
	var second keyJSON
	cliJSON(t, &second, "keys", "create", "--user", "alice", "--name", "second")
	if !strings.HasPrefix(second.Key, "sk-lg-") || second.TenantID != "acme" || second.UserID != "alice" {
		t.Errorf("keys create --json = %+v", second)
	}
	if got := e.chatStatus(e.app, key, "gpt-test"); got != http.StatusOK {
		t.Fatalf("chat with the new key: HTTP %d", got)
	}

	// keys list, with filters, paging and --all.
	out = cliOK(t, "keys", "list", "--tenant", "acme")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, keyID) || !strings.Contains(out, second.ID) || !strings.Contains(out, prefix) {
		t.Errorf("keys list printed:\n%s", out)
	}
	var keys []keyJSON
	cliJSON(t, &keys, "keys", "list", "--user", "alice")
	if len(keys) != 2 {
		t.Errorf("keys list --user alice --json: %d keys, want 2", len(keys))
	}
	code, out, errOut := cliRun("keys", "list", "--user", "alice", "--limit", "1")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "--offset 1") {
		t.Errorf("keys list --limit 1: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	cliJSON(t, &keys, "keys", "list", "--user", "alice", "--limit", "1", "--all")
	if len(keys) != 2 {
		t.Errorf("keys list --limit 1 --all: %d keys, want 2", len(keys))
	}

	// keys get and update: flags after the id; limits and metadata merge with what is there.
	if out = cliOK(t, "keys", "get", keyID); field(t, out, "name") != "app" || field(t, out, "metadata") != "env=prod" {
		t.Errorf("keys get printed:\n%s", out)
	}
	var updated struct {
		Name     string            `json:"name"`
		Limits   map[string]any    `json:"limits"`
		Metadata map[string]string `json:"metadata"`
	}
	cliJSON(t, &updated, "keys", "update", keyID, "--name", "renamed", "--tpm", "100000", "--metadata", "env=", "--metadata", "owner=bob")
	if updated.Name != "renamed" || updated.Limits["rpm"] != 50.0 || updated.Limits["tpm"] != 100000.0 ||
		len(updated.Metadata) != 1 || updated.Metadata["owner"] != "bob" {
		t.Errorf("keys update = %+v", updated)
	}
	updated.Metadata = nil // json.Unmarshal adds to a map
	cliJSON(t, &updated, "keys", "update", keyID, "--no-metadata", "--metadata", "team=ml")
	if len(updated.Metadata) != 1 || updated.Metadata["team"] != "ml" || updated.Limits["rpm"] != 50.0 {
		t.Errorf("keys update --no-metadata --metadata team=ml = %+v", updated)
	}
	cliJSON(t, &updated, "keys", "update", keyID, "--rpm", "")
	if updated.Limits["rpm"] != nil || updated.Limits["tpm"] != 100000.0 {
		t.Errorf("keys update --rpm '': limits = %v", updated.Limits)
	}

	// rotate: the new key works, the old one stops (no grace).
	out = cliOK(t, "keys", "rotate", keyID, "--grace", "0s")
	rotated := secret(t, out)
	if rotated == key || field(t, out, "previous_key_expires_at") == "-" {
		t.Errorf("keys rotate printed:\n%s", out)
	}
	waitStatus(rotated, http.StatusOK)
	waitStatus(key, http.StatusUnauthorized)

	// revoke: refused within seconds.
	if out = cliOK(t, "keys", "revoke", keyID); field(t, out, "status") != "revoked" {
		t.Errorf("keys revoke printed:\n%s", out)
	}
	waitStatus(rotated, http.StatusUnauthorized)

	// tokens: a viewer token reads, may not change, and stops working when revoked.
	out = cliOK(t, "tokens", "create", "--name", "ci", "--role", "viewer")
	viewer, tokID := secret(t, out), field(t, out, "id")
	if field(t, out, "role") != "viewer" || !strings.HasPrefix(viewer, field(t, out, "prefix")) {
		t.Errorf("tokens create printed:\n%s", out)
	}
	if out = cliOK(t, "tokens", "list", "--role", "viewer"); !strings.Contains(out, tokID) || !strings.Contains(out, "ci") {
		t.Errorf("tokens list printed:\n%s", out)
	}
	if out = cliOK(t, "tokens", "get", tokID); field(t, out, "name") != "ci" {
		t.Errorf("tokens get printed:\n%s", out)
	}
	t.Setenv("LLMGATE_ADMIN_TOKEN", viewer)
	if out = cliOK(t, "keys", "list", "--tenant", "acme"); !strings.Contains(out, keyID) {
		t.Errorf("keys list with the viewer token printed:\n%s", out)
	}
	if msg := cliFails(t, "tenants", "create", "other", "--name", "Other"); !strings.Contains(msg, "llmgate: admin API: This token's role (viewer) may not change tenants. (HTTP 403)") {
		t.Errorf("tenants create with a viewer token: %s", msg)
	}
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)
	if out = cliOK(t, "tokens", "revoke", tokID); field(t, out, "revoked_at") == "-" {
		t.Errorf("tokens revoke printed:\n%s", out)
	}
	t.Setenv("LLMGATE_ADMIN_TOKEN", viewer)
	if msg := cliFails(t, "keys", "list"); !strings.Contains(msg, "Invalid admin token. (HTTP 401)") {
		t.Errorf("keys list with a revoked token: %s", msg)
	}
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)

	// pricing: set, history, prices in force; model names may contain "/".
	out = cliOK(t, "pricing", "set", "gpt-test", "--input", "1.25", "--output", "5")
	if field(t, out, "model") != "gpt-test" || field(t, out, "input_per_million") != "1.25" || field(t, out, "output_per_million") != "5" {
		t.Errorf("pricing set printed:\n%s", out)
	}
	out = cliOK(t, "pricing", "set", "gpt-test", "--input", "1.5", "--output", "6", "--cached-input", "0.5", "--cache-write", "1.875")
	if field(t, out, "cache_write_per_million") != "1.875" {
		t.Errorf("pricing set --cache-write printed:\n%s", out)
	}
	cliOK(t, "pricing", "set", "meta-llama/Llama-3.1-8B", "--input", "0.1", "--output", "0.2")
	var history []map[string]any
	cliJSON(t, &history, "pricing", "get", "gpt-test")
	if len(history) != 2 || history[0]["input_per_million"] != "1.5" || history[1]["input_per_million"] != "1.25" {
		t.Errorf("pricing get = %v", history)
	}
	cliJSON(t, &history, "pricing", "get", "meta-llama/Llama-3.1-8B")
	if len(history) != 1 || history[0]["input_per_million"] != "0.1" {
		t.Errorf("pricing get of a model with a slash = %v", history)
	}
	out = cliOK(t, "pricing", "list")
	if !regexp.MustCompile(`(?m)^gpt-test +1\.5 +6 +0\.5 `).MatchString(out) || !strings.Contains(out, "meta-llama/Llama-3.1-8B") {
		t.Errorf("pricing list printed:\n%s", out)
	}

	// users and tenants: update, delete (which revokes the user's keys), list with deleted ones.
	var u map[string]any
	cliJSON(t, &u, "users", "update", "alice", "--tier", "tiny", "--email", "", "--metadata", "team=ml")
	if u["tier"] != "tiny" || u["email"] != "" || u["metadata"].(map[string]any)["team"] != "ml" {
		t.Errorf("users update = %v", u)
	}
	if out = cliOK(t, "users", "list", "--tenant", "acme"); !strings.Contains(out, "alice") || !strings.Contains(out, "tiny") {
		t.Errorf("users list printed:\n%s", out)
	}
	if out = cliOK(t, "users", "delete", "alice"); field(t, out, "deleted_at") == "-" {
		t.Errorf("users delete printed:\n%s", out)
	}
	waitStatus(second.Key, http.StatusUnauthorized)
	cliJSON(t, &tenant, "tenants", "update", "acme", "--name", "Acme 2", "--no-limits")
	if tenant.Limits != nil {
		t.Errorf("tenants update --no-limits: limits = %v", tenant.Limits)
	}
	if out = cliOK(t, "tenants", "delete", "acme"); field(t, out, "deleted_at") == "-" || field(t, out, "name") != "Acme 2" {
		t.Errorf("tenants delete printed:\n%s", out)
	}
	if out = cliOK(t, "tenants", "list"); strings.Contains(out, "acme") {
		t.Errorf("tenants list shows a deleted tenant:\n%s", out)
	}
	if out = cliOK(t, "tenants", "list", "--include-deleted"); !strings.Contains(out, "acme") {
		t.Errorf("tenants list --include-deleted printed:\n%s", out)
	}
}

// TestCLIErrors checks that failures exit non-zero with the reason: the API's message, or the
// command line's mistake.
func TestCLIErrors(t *testing.T) {
	e := newEnv(t)
	t.Setenv("LLMGATE_ADMIN_URL", e.app.adminURL)
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad integer", []string{"keys", "create", "--rpm", "abc"}, `keys create: invalid value "abc" for flag -rpm: want a whole number`},
		{"bad money", []string{"tenants", "create", "t1", "--name", "T", "--budget-day", "1,5"}, `invalid value "1,5" for flag -budget-day`},
		{"bad time", []string{"keys", "update", "key_x", "--expires", "tomorrow"}, `invalid value "tomorrow" for flag -expires`},
		{"bad pair", []string{"users", "create", "--metadata", "novalue"}, `invalid value "novalue" for flag -metadata: want key=value`},
		{"unknown flag", []string{"keys", "list", "--colour"}, "flag provided but not defined: -colour"},
		{"missing id", []string{"keys", "get"}, "keys get: want one argument ID, got 0"},
		{"extra argument", []string{"pricing", "list", "x"}, `pricing list: unexpected argument "x"`},
		{"unknown command", []string{"tenants", "frobnicate"}, `tenants: unknown command "frobnicate"`},
		{"API 400", []string{"users", "create", "bob", "--tenant", "nope"}, `llmgate: admin API: tenant_id: no live tenant "nope". (HTTP 400)`},
		{"API 400 from the server's check", []string{"pricing", "set", "gpt-test", "--input", "1"}, "output_per_million: required"},
		{"API 404", []string{"keys", "get", "key_nope"}, "llmgate: admin API: No key with that id. (HTTP 404)"},
		{"API 404 on update", []string{"tenants", "update", "nope", "--rpm", "5"}, "No tenant with that id. (HTTP 404)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if msg := cliFails(t, tc.args...); !strings.Contains(msg, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", msg, tc.want)
			}
		})
	}

	t.Run("help exits 0", func(t *testing.T) {
		code, out, _ := cliRun("keys", "update", "-h")
		if code != 0 || !strings.Contains(out, "Usage: llmgate keys update ID [flags]") || !strings.Contains(out, "-budget-month USD") {
			t.Errorf("keys update -h: exit %d\n%s", code, out)
		}
		code, out, _ = cliRun("pricing", "--help")
		if code != 0 || !strings.Contains(out, "set MODEL") {
			t.Errorf("pricing --help: exit %d\n%s", code, out)
		}
	})
	t.Run("no token", func(t *testing.T) {
		t.Setenv("LLMGATE_ADMIN_TOKEN", "")
		if msg := cliFails(t, "keys", "list"); !strings.Contains(msg, "LLMGATE_ADMIN_TOKEN") {
			t.Errorf("stderr = %q", msg)
		}
	})
}

// TestTopLevelHelp: `llmgate --help` and `-h` print the command list, not the serve flags.
func TestTopLevelHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errOut bytes.Buffer
		if code := run([]string{arg}, &out, &errOut); code != 0 {
			t.Fatalf("%s: exit %d, stderr %s", arg, code, errOut.String())
		}
		for _, want := range []string{"llmgate tenants", "llmgate tokens", "llmgate pricing", "llmgate quota", "llmgate credits",
			"llmgate deployments", "llmgate audit ", "llmgate billing", "llmgate audit-log", "llmgate --version", "LLMGATE_ADMIN_URL"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
}
