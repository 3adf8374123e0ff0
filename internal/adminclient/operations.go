package adminclient

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
)

// The admin CLI's operations resources: quota policies and usage, credits, deployments, the
// usage audit, billing and the admin audit log. Like resources.go, each command is one admin API
// request; the flags name the request's fields (api/openapi.yaml).

// subjectArg is the TYPE ID pair of a policy or an account.
const subjectArg = "TYPE ID"

var quotaResource = adminResource{
	name: "quota",
	columns: []column{{"TYPE", "subject_type", ""}, {"SUBJECT", "subject_id", ""}, {"MODEL", "model", "*"},
		{"RPM", "rpm", ""}, {"TPM", "tpm", ""}, {"TOKENS/DAY", "tokens_per_day", ""}, {"CONCURRENT", "concurrent", ""},
		{"BUDGET/DAY", "budget_usd_per_day", ""}, {"BUDGET/MONTH", "budget_usd_per_month", ""}, {"UPDATED", "updated_at", ""}},
	commands: []adminCommand{
		listCommand("quota policies", "/admin/quota/policies",
			param{"type", "subject_type", text, "only policies of subjects of this `type`: user, key or tenant"},
			param{"subject", "subject_id", text, "only the policies of subject `ID`"}),
		{name: "get", about: "the policies of a subject (TYPE: user, key or tenant), one per model",
			method: http.MethodGet, path: "/admin/quota/policies/{}/{}", arg: subjectArg, list: true},
		{name: "set", about: "replace a subject's policy (limits not given inherit; 0 is unlimited)",
			method: http.MethodPut, path: "/admin/quota/policies/{}/{}", arg: subjectArg, list: true,
			params: policyParams, query: []param{policyModelParam, allowUnknownParam}},
		{name: "delete", about: "remove a subject's policy (it inherits again)", method: http.MethodDelete,
			path: "/admin/quota/policies/{}/{}", arg: subjectArg, query: []param{policyModelParam},
			done: "Quota policy deleted."},
		{name: "usage", about: "a user's consumption now, against its effective limits", method: http.MethodGet,
			path: "/admin/quota/usage/{}", arg: "USER"},
		{name: "clear-session", about: "forget a session's counters", method: http.MethodDelete,
			path: "/admin/quota/session/{}", arg: "SESSION", params: []param{
				{"tenant", "tenantId", text, "the session's tenant `ID` (default: default)"}},
			done: "Session cleared."},
	},
}

// policyParams are the limits of PUT /admin/quota/policies/{type}/{id}.
var policyParams = []param{
	{"rpm", "rpm", integer, "at most `N` requests per minute (0: unlimited; absent: inherit)"},
	{"tpm", "tpm", integer, "at most `N` tokens per minute"},
	{"tokens-per-day", "tokens_per_day", integer, "at most `N` tokens per UTC day"},
	{"concurrent", "concurrent", integer, "at most `N` requests in flight at once"},
	{"budget-day", "budget_usd_per_day", money, "budget in `USD` per UTC day (0 or absent: none)"},
	{"budget-month", "budget_usd_per_month", money, "budget in `USD` per UTC month (0 or absent: none)"},
}

// allowUnknownParam lets a policy or an account be written for a subject that does not exist (yet),
// such as a user a provisioning system creates later; without it a typo is refused with 404.
var allowUnknownParam = param{"allow-unknown-subject", "allow_unknown_subject", flagTrue,
	"write even when no such user, key or tenant exists"}

var policyModelParam = param{"model", "model", text, "the policy of this public `model` only (default: the model-less one)"}

var creditsResource = adminResource{
	name: "credits",
	columns: []column{{"ID", "id", ""}, {"KIND", "kind", ""}, {"AMOUNT_USD", "amount_usd", ""},
		{"REQUEST_ID", "request_id", ""}, {"NOTE", "note", ""}, {"CREATED", "created_at", ""}},
	commands: []adminCommand{
		{name: "balance", about: "a prepaid account's balance (TYPE: user or tenant)", method: http.MethodGet,
			path: "/admin/credits/{}/{}", arg: subjectArg, omit: []string{"entries", "limit", "offset", "has_more", "next_offset", "period", "periods"}},
		{name: "topup", about: "grant credit; creates the account if needed", method: http.MethodPost,
			path: "/admin/credits/{}/{}/topup", arg: subjectArg, omit: []string{"entries"}, params: []param{
				{"amount", "amount_usd", money, "`USD` to grant (required)"}, creditNoteParam},
			query: []param{allowUnknownParam}},
		{name: "adjust", about: "correct a balance by an amount of either sign", method: http.MethodPost,
			path: "/admin/credits/{}/{}/adjust", arg: subjectArg, omit: []string{"entries"}, params: []param{
				{"amount", "amount_usd", signed, "`USD` to add, negative to take (required)"}, creditNoteParam},
			query: []param{allowUnknownParam}},
		{name: "history", about: "the account's ledger, newest first (--limit, --offset, --all, --period)", method: http.MethodGet,
			path: "/admin/credits/{}/{}/entries", arg: subjectArg, list: true, paged: true,
			query: []param{{"period", "period", text, "the view: `24h`, 7d, 30d or all (the default)"}}},
	},
}

var creditNoteParam = param{"note", "note", text, "why, for the ledger (`text`)"}

var deploymentsResource = adminResource{
	name: "deployments",
	columns: []column{{"ID", "id", ""}, {"MODELS", "models", ""}, {"PROVIDER", "provider", ""},
		{"UPSTREAM_MODEL", "upstream_model", ""}, {"PRIORITY", "priority", ""}, {"WEIGHT", "weight", ""},
		{"ENABLED", "enabled", ""}, {"BREAKER", "health.breaker", ""}, {"AVAILABLE", "health.available", ""},
		{"SUCCEEDED", "health.succeeded", ""}, {"FAILED", "health.failed", ""}, {"OVERRIDE_BY", "override.updated_by", ""}},
	commands: []adminCommand{
		{name: "list", about: "the routing table in use on the answering replica, with health", method: http.MethodGet,
			path: "/admin/deployments", list: true},
		{name: "get", about: "one deployment, with its override and health", method: http.MethodGet,
			path: "/admin/deployments/{}", arg: "ID", slashes: true},
		{name: "enable", about: "route to the deployment again (an override of the config file)",
			method: http.MethodPatch, path: "/admin/deployments/{}", arg: "ID", slashes: true, fixed: map[string]any{"enabled": true}},
		{name: "disable", about: "stop routing to the deployment on every replica",
			method: http.MethodPatch, path: "/admin/deployments/{}", arg: "ID", slashes: true, fixed: map[string]any{"enabled": false}},
		{name: "weight", about: "set the deployment's balancing weight (1 to 1000000)",
			method: http.MethodPatch, path: "/admin/deployments/{}", arg: "ID N", slashes: true,
			valueArg: &param{"N", "weight", integer, ""}},
		{name: "reset", about: "remove the overrides: back to what the config file says", method: http.MethodDelete,
			path: "/admin/deployments/{}", arg: "ID", slashes: true, done: "Override removed."},
		{name: "test", about: "send the deployment one minimal request (not through its breaker) and show the answer",
			method: http.MethodPost, path: "/admin/deployments/{}/test", arg: "ID", slashes: true, params: []param{
				{"endpoint", "endpoint", text, "the probe's `endpoint`: chat/completions (default) or embeddings"}}},
	},
}

// providerParams are the fields of a provider that create and update set alike.
var providerParams = []param{
	{"type", "type", text, "provider `type`: openai, azure, anthropic, bedrock, gemini, vertex, deepseek, qwen, glm, moonshot, qianfan, vllm, ollama or mock"},
	{"base-url", "base_url", text, "API root `URL`, as an OpenAI SDK's base_url"},
	{"api-key", "api_key", text, "the upstream `credential` (stored sealed, shown only as a fingerprint)"},
	{"api-version", "api_version", text, "Azure's api-version `version`"},
	{"header", "headers", pairs, "extra request header `name=value`, repeatable"},
	{"dial-timeout", "dial_timeout", text, "connect timeout `duration` (5s)"},
	{"response-header-timeout", "response_header_timeout", text, "`duration` until the answer's headers"},
	{"anthropic", "anthropic", jsonValue, "the anthropic section as `JSON` ({\"default_max_tokens\":4096,\"beta\":[…]}); update merges it key by key"},
	{"bedrock", "bedrock", jsonValue, "the bedrock section as `JSON` ({\"region\":\"us-east-1\",\"access_key_id\":…,\"secret_access_key\":…}); " +
		"its secrets are stored sealed; update merges it key by key, keeping the secrets it does not name"},
	{"vertex", "vertex", jsonValue, "the vertex section as `JSON` ({\"project\":…,\"region\":\"us-east5\",\"credentials_json\":\"<service account key>\"}); " +
		"the key is stored sealed; update merges it key by key, keeping the key unless it names it"},
}

// providersResource is `llmgate providers`: the catalog's providers.
var providersResource = adminResource{
	name: "providers",
	columns: []column{{"NAME", "name", ""}, {"ORIGIN", "origin", ""}, {"TYPE", "type", ""}, {"BASE_URL", "base_url", ""},
		{"API_KEY", "api_key_fingerprint", ""}, {"KEY_ID", "key_id", ""}, {"SHADOWED", "shadowed", ""}},
	commands: []adminCommand{
		{name: "create", about: "create a provider (validated as the config file's; applied on every replica)",
			method: http.MethodPost, path: "/admin/providers", arg: "NAME", argField: "name", params: providerParams},
		listCommand("providers, the config file's and the API's", "/admin/providers"),
		{name: "get", about: "show a provider", method: http.MethodGet, path: "/admin/providers/{}", arg: "NAME"},
		{name: "update", about: "change the fields given by flags (a provider made through the API)", method: http.MethodPatch,
			path: "/admin/providers/{}", arg: "NAME", params: append(providerParams[:len(providerParams):len(providerParams)],
				param{"no-api-key", "api_key", null, "remove the credential"})},
		{name: "delete", about: "delete a provider made through the API (no model may use it)", method: http.MethodDelete,
			path: "/admin/providers/{}", arg: "NAME", done: "Provider deleted."},
		{name: "reencrypt", about: "seal every stored credential and webhook secret again with the current secret key (after a key rotation)",
			method: http.MethodPost, path: "/admin/secrets/reencrypt"},
	},
}

// modelParams are the fields of a model that create and update set alike.
var modelParams = []param{
	{"strategy", "strategy", text, "order of deployments of equal priority: `weighted`, latency or cost"},
	{"deployments", "deployments", jsonValue, "the deployments as `JSON`: [{\"provider\":\"p\",\"model\":\"m\",\"weight\":1,\"priority\":0}]"},
}

// modelsResource is `llmgate models`: the catalog's public models.
var modelsResource = adminResource{
	name:    "models",
	columns: []column{{"NAME", "name", ""}, {"ORIGIN", "origin", ""}, {"STRATEGY", "strategy", ""}, {"SHADOWED", "shadowed", ""}, {"UPDATED_BY", "updated_by", ""}},
	commands: []adminCommand{
		{name: "create", about: "create a public model (validated as the config file's; applied on every replica)",
			method: http.MethodPost, path: "/admin/models", arg: "NAME", argField: "name", params: modelParams},
		listCommand("public models, the config file's and the API's", "/admin/models"),
		{name: "get", about: "show a model", method: http.MethodGet, path: "/admin/models/{}", arg: "NAME", slashes: true},
		{name: "update", about: "change the fields given by flags (a model made through the API)", method: http.MethodPatch,
			path: "/admin/models/{}", arg: "NAME", slashes: true, params: modelParams},
		{name: "delete", about: "delete a model made through the API", method: http.MethodDelete,
			path: "/admin/models/{}", arg: "NAME", slashes: true, done: "Model deleted."},
	},
}

var auditResource = adminResource{
	name: "audit",
	columns: []column{{"STARTED", "started_at", ""}, {"REQUEST_ID", "request_id", ""}, {"TRACE_ID", "trace_id", ""},
		{"USER", "user_id", ""}, {"KEY", "key_id", ""}, {"MODEL", "model", ""}, {"DEPLOYMENT", "deployment", ""},
		{"STATUS", "status", ""}, {"PROMPT", "prompt_tokens", ""}, {"COMPLETION", "completion_tokens", ""},
		{"COST_USD", "cost_usd", ""}, {"LATENCY_MS", "latency_ms", ""}},
	commands: []adminCommand{
		{name: "search", about: "usage records, newest first (--page, --size, --all)", method: http.MethodGet,
			path: "/admin/audit", list: true, pages: true, params: auditFilterParams},
		{name: "trace", about: "the records of one W3C trace (at most 1000)", method: http.MethodGet,
			path: "/admin/audit/{}", arg: "TRACE_ID", list: true},
		{name: "export", about: "every usage record of the filters as CSV, streamed to --out or stdout",
			method: http.MethodGet, path: "/admin/audit.csv", download: true, params: auditFilterParams},
	},
}

// auditFilterParams are the filters of the usage audit, shared by its search and its export.
var auditFilterParams = []param{
	{"user", "userId", text, "only the records of user `ID`"},
	{"key", "keyId", text, "only the records of key `ID`"},
	{"tenant", "tenantId", text, "only the records of tenant `ID`"},
	{"model", "model", text, "only the records of this public `model`"},
	{"status", "status", integer, "only records answered with this HTTP `status`"},
	fromParam, toParam,
}

var (
	fromParam = param{"from", "from", past, "from this `time` on: RFC 3339, a date (2026-11-01) or a duration ago (24h)"}
	toParam   = param{"to", "to", past, "before this `time`: RFC 3339, a date or a duration ago"}
)

var billingResource = adminResource{
	name: "billing",
	commands: []adminCommand{
		{name: "summary", about: "a month's requests, tokens and cost, per model", method: http.MethodGet,
			path: "/admin/billing/summary", render: printBillingSummary, params: []param{
				{"month", "month", text, "the UTC month, `YYYY-MM` (default: the current one)"},
				{"user", "userId", text, "only user `ID`"},
				{"tenant", "tenantId", text, "only tenant `ID`"}}},
		{name: "export", about: "the daily rollups as CSV, streamed to --out or stdout", method: http.MethodGet,
			path: "/admin/billing/records.csv", download: true, params: []param{
				{"user", "userId", text, "only user `ID`"},
				{"tenant", "tenantId", text, "only tenant `ID`"},
				{"key", "keyId", text, "only key `ID`"},
				{"model", "model", text, "only this public `model`"},
				fromParam, toParam}},
	},
}

var auditLogResource = adminResource{
	name:           "audit-log",
	defaultCommand: "list",
	columns: []column{{"AT", "at", ""}, {"ACTOR", "actor", ""}, {"ACTION", "action", ""}, {"TARGET", "target", ""},
		{"TENANT", "tenant_id", ""}, {"REQUEST_ID", "request_id", ""}},
	commands: []adminCommand{
		listCommand("changes made through the admin API, newest first", "/admin/audit-log",
			param{"actor", "actor", text, "only changes by this `actor`: bootstrap or an admin token's id"},
			param{"action", "action", text, "only this `action` (key.create), or every action of a prefix ending in . (key.)"},
			param{"target", "target", text, "only changes of this target `ID`"},
			param{"tenant", "tenant_id", text, "only changes in tenant `ID`"},
			fromParam, toParam),
	},
}

// printBillingSummary prints a billing summary as a table: a row per model, sorted, then the
// total.
func printBillingSummary(w io.Writer, raw []byte) error {
	type totals struct {
		Requests         json.Number `json:"requests"`
		PromptTokens     json.Number `json:"prompt_tokens"`
		CompletionTokens json.Number `json:"completion_tokens"`
		CachedTokens     json.Number `json:"cached_tokens"`
		ReasoningTokens  json.Number `json:"reasoning_tokens"`
		CostUSD          string      `json:"cost_usd"`
	}
	var s struct {
		UserID string            `json:"userId"`
		Month  string            `json:"month"`
		Total  totals            `json:"total"`
		Models map[string]totals `json:"models"`
	}
	if err := decodeNumbers(raw, &s); err != nil {
		return fmt.Errorf("admin API: unexpected billing summary: %w", err)
	}
	fmt.Fprintf(w, "month: %s  user: %s\n\n", cell(s.Month), cell(s.UserID))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tREQUESTS\tPROMPT\tCOMPLETION\tCACHED\tREASONING\tCOST_USD")
	line := func(name string, t totals) {
		fmt.Fprintln(tw, strings.Join([]string{name, string(t.Requests), string(t.PromptTokens), string(t.CompletionTokens),
			string(t.CachedTokens), string(t.ReasoningTokens), t.CostUSD}, "\t"))
	}
	names := make([]string, 0, len(s.Models))
	for name := range s.Models {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		line(name, s.Models[name])
	}
	line("TOTAL", s.Total)
	return tw.Flush()
}
