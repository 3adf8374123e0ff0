package adminclient

import (
	"fmt"
	"io"
	"net/http"
	"slices"
)

// The admin CLI's resources. Each command is one admin API request; the flags name the request's
// fields (docs/cli.md, api/openapi.yaml).

// limitParams are the limits of a key or tenant: its model-less quota policy.
var limitParams = []param{
	{"rpm", "limits.rpm", integer, "at most `N` requests per minute (0: unlimited; empty: inherit)"},
	{"tpm", "limits.tpm", integer, "at most `N` tokens per minute"},
	{"tokens-per-day", "limits.tokens_per_day", integer, "at most `N` tokens per UTC day"},
	{"concurrent", "limits.concurrent", integer, "at most `N` requests in flight at once"},
	{"budget-day", "limits.budget_usd_per_day", money, "budget in `USD` per UTC day (0 or empty: none)"},
	{"budget-month", "limits.budget_usd_per_month", money, "budget in `USD` per UTC month (0 or empty: none)"},
}

var (
	modelsParam   = param{"models", "models", list, "allowlist of public `models`, comma-separated (empty: all)"}
	expiresParam  = param{"expires", "expires_at", instant, "expiry, RFC 3339 or a `duration` from now such as 720h (empty: never)"}
	metadataParam = param{"metadata", "metadata", pairs, "metadata `key=value`, repeatable (update: merged; key= removes)"}
	nameParam     = param{"name", "name", text, "display `name`"}
	// Clearing a whole object: update merges the flags into the current limits and metadata.
	noLimitsParam   = param{"no-limits", "limits", null, "remove all limits (inherit the tenant's and tier's)"}
	noMetadataParam = param{"no-metadata", "metadata", null, "remove all metadata"}
)

// keysResource is `llmgate keys`.
var keysResource = adminResource{
	name: "keys",
	columns: []column{{"ID", "id", ""}, {"NAME", "name", ""}, {"PREFIX", "prefix", ""}, {"USER", "user_id", ""},
		{"TENANT", "tenant_id", ""}, {"MODELS", "models", "*"}, {"STATUS", "status", ""}, {"EXPIRES", "expires_at", ""}},
	commands: []adminCommand{
		{name: "create", about: "create a key; the key itself is printed once", method: http.MethodPost, path: "/admin/keys",
			secret: "key", params: slices.Concat([]param{nameParam,
				{"user", "user_id", text, "owner user `ID` (created on the fly in the tenant if new)"},
				{"tier", "tier", text, "`tier` of a user created on the fly"},
				{"tenant", "tenant_id", text, "tenant `ID` (default: the user's, or default)"},
				modelsParam, expiresParam, metadataParam}, limitParams)},
		listCommand("keys", "/admin/keys",
			param{"user", "user_id", text, "only the keys of user `ID`"},
			param{"tenant", "tenant_id", text, "only the keys of tenant `ID`"},
			param{"name", "name", text, "only keys of this `name`"},
			param{"prefix", "prefix", text, "only the key with this display `prefix`"},
			param{"status", "status", text, "only keys in this `status`: active, revoked or expired"}),
		getCommand("a key", "/admin/keys/{}"),
		updateCommand("/admin/keys/{}", slices.Concat([]param{nameParam, modelsParam, expiresParam, metadataParam,
			noMetadataParam, noLimitsParam}, limitParams)...),
		{name: "rotate", about: "give the key a new secret, printed once; the old one works for --grace",
			method: http.MethodPost, path: "/admin/keys/{}/rotate", arg: "ID", secret: "key", params: []param{
				{"grace", "grace_seconds", seconds, "how long the old secret keeps working (`duration`, default 24h; 0: ends now)"}}},
		idCommand("revoke", "revoke the key (every gateway refuses it within seconds)", http.MethodDelete, "/admin/keys/{}"),
	},
}

var usersResource = adminResource{
	name: "users",
	columns: []column{{"ID", "id", ""}, {"TENANT", "tenant_id", ""}, {"TIER", "tier", ""}, {"EXTERNAL_ID", "external_id", ""},
		{"EMAIL", "email", ""}, {"CREATED", "created_at", ""}, {"DELETED", "deleted_at", ""}},
	commands: []adminCommand{
		{name: "create", about: "create a user (ID: generated when absent)", method: http.MethodPost, path: "/admin/users",
			arg: "ID", argField: "id", params: slices.Concat([]param{
				{"tenant", "tenant_id", text, "tenant `ID` (default: default)"}}, userFields)},
		listCommand("users", "/admin/users",
			param{"tenant", "tenant_id", text, "only the users of tenant `ID`"},
			param{"tier", "tier", text, "only users of this `tier`"},
			param{"external-id", "external_id", text, "only the user with this external `ID`"},
			param{"email", "email", text, "only users with this `address`"},
			param{"q", "q", text, "only users whose id, external id or email contains `text`"},
			param{"include-deleted", "include_deleted", flagTrue, "list deleted users too"}),
		getCommand("a user", "/admin/users/{}"),
		updateCommand("/admin/users/{}", append(userFields[:len(userFields):len(userFields)], noMetadataParam)...),
		idCommand("delete", "delete the user and revoke its keys (its usage history stays)", http.MethodDelete, "/admin/users/{}"),
	},
}

// userFields are what create and update set alike.
var userFields = []param{
	{"tier", "tier", text, "quota `tier` (default: the configured default tier)"},
	{"external-id", "external_id", text, "your system's `ID` for the user"},
	{"email", "email", text, "email `address`"},
	metadataParam,
}

var tenantsResource = adminResource{
	name: "tenants",
	columns: []column{{"ID", "id", ""}, {"NAME", "name", ""}, {"MODELS", "models", "*"}, {"LIMITS", "limits", ""},
		{"CREATED", "created_at", ""}, {"DELETED", "deleted_at", ""}},
	commands: []adminCommand{
		{name: "create", about: "create a tenant (ID: generated when absent)", method: http.MethodPost, path: "/admin/tenants",
			arg: "ID", argField: "id", params: slices.Concat([]param{nameParam, modelsParam, metadataParam}, limitParams)},
		listCommand("tenants", "/admin/tenants",
			param{"q", "q", text, "only tenants whose id or name contains `text`"},
			param{"include-deleted", "include_deleted", flagTrue, "list deleted tenants too"}),
		getCommand("a tenant", "/admin/tenants/{}"),
		updateCommand("/admin/tenants/{}", slices.Concat([]param{nameParam, modelsParam, metadataParam, noMetadataParam,
			noLimitsParam}, limitParams)...),
		idCommand("delete", "delete a tenant that has no live users or keys left", http.MethodDelete, "/admin/tenants/{}"),
	},
}

var tokensResource = adminResource{
	name: "tokens",
	columns: []column{{"ID", "id", ""}, {"NAME", "name", ""}, {"PREFIX", "prefix", ""}, {"ROLE", "role", ""},
		{"TENANT", "tenant_id", "*"}, {"EXPIRES", "expires_at", ""}, {"REVOKED", "revoked_at", ""}, {"LAST_USED", "last_used_at", ""}},
	commands: []adminCommand{
		{name: "create", about: "create an admin token; the token itself is printed once", method: http.MethodPost,
			path: "/admin/tokens", secret: "token", params: []param{nameParam,
				{"role", "role", text, "`role`: admin, viewer (reads only) or billing (pricing, usage, billing, credits)"},
				{"tenant", "tenant_id", text, "limit the token to tenant `ID` (default: every tenant)"},
				expiresParam}},
		listCommand("admin tokens", "/admin/tokens",
			param{"role", "role", text, "only tokens of this `role`"},
			param{"tenant", "tenant_id", text, "only the tokens of tenant `ID`"},
			param{"name", "name", text, "only tokens of this `name`"}),
		getCommand("an admin token", "/admin/tokens/{}"),
		idCommand("revoke", "revoke the token", http.MethodDelete, "/admin/tokens/{}"),
	},
}

var pricingResource = adminResource{
	name: "pricing",
	columns: []column{{"MODEL", "model", ""}, {"INPUT/1M", "input_per_million", ""}, {"OUTPUT/1M", "output_per_million", ""},
		{"CACHED/1M", "cached_input_per_million", ""}, {"REASONING/1M", "reasoning_per_million", ""},
		{"VERSION", "version", ""}, {"EFFECTIVE_FROM", "effective_from", ""}},
	commands: []adminCommand{
		{name: "list", about: "the prices in force", method: http.MethodGet, path: "/admin/pricing", list: true},
		{name: "get", about: "a model's price versions, newest first", method: http.MethodGet, path: "/admin/pricing/{}",
			arg: "MODEL", slashes: true, list: true},
		{name: "set", about: "make a new price of a model effective now (USD per 1M tokens)", method: http.MethodPut,
			path: "/admin/pricing/{}", arg: "MODEL", slashes: true, params: []param{
				{"input", "input_per_million", money, "`USD` per 1M input tokens (required)"},
				{"output", "output_per_million", money, "`USD` per 1M output tokens (required)"},
				{"cached-input", "cached_input_per_million", money, "`USD` per 1M cached input tokens (0: as input)"},
				{"reasoning", "reasoning_per_million", money, "`USD` per 1M reasoning tokens (0: as output)"},
				{"cache-write", "cache_write_per_million", money, "`USD` per 1M prompt tokens written to the provider's cache (0: as input)"}}},
	},
}

// adminResources are the admin CLI's nouns, by name.
var adminResources = map[string]*adminResource{
	"keys": &keysResource, "users": &usersResource, "tenants": &tenantsResource,
	"tokens": &tokensResource, "pricing": &pricingResource,
	"quota": &quotaResource, "credits": &creditsResource, "deployments": &deploymentsResource,
	"audit": &auditResource, "billing": &billingResource, "audit-log": &auditLogResource,
	"providers": &providersResource, "models": &modelsResource, "experiments": &experimentsResource,
}

// Run is `llmgate <resource> args…` for a resource of the admin CLI (keys, users, tenants,
// tokens, pricing, quota, credits, deployments, providers, models, experiments, audit, billing,
// audit-log): it parses the command's flags, sends its request to the admin API at
// LLMGATE_ADMIN_URL with the token in LLMGATE_ADMIN_TOKEN and prints the answer on stdout. It returns flag.ErrHelp after
// printing a help that was asked for.
func Run(resource string, args []string, stdout, stderr io.Writer) error {
	r, ok := adminResources[resource]
	if !ok {
		return fmt.Errorf("unknown admin resource %q", resource)
	}
	return r.run(args, stdout, stderr)
}
