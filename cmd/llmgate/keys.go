package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// adminClient calls the admin API, as the CLI, the demo and the benchmark do.
type adminClient struct {
	base  string
	token string
	http  http.Client
}

// adminTimeout bounds one admin API call.
const adminTimeout = 30 * time.Second

// createKeyBody is the part of POST /admin/keys the demo, the benchmark and the tests use.
type createKeyBody struct {
	Name      string     `json:"name,omitempty"`
	Models    []string   `json:"models,omitempty"`
	UserID    string     `json:"user_id,omitempty"`
	Tier      string     `json:"tier,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// keyJSON is a key as the admin API answers it.
type keyJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	UserID    string     `json:"user_id"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	CreatedAt time.Time  `json:"created_at"`
	Key       string     `json:"key,omitempty"`
}

// do sends a request and decodes a 2xx JSON answer into out; other answers become errors carrying
// the API's message.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	raw, err := c.call(ctx, method, path, in)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// call sends a request and returns the body of a 2xx answer as it came.
func (c *adminClient) call(ctx context.Context, method, path string, in any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	// The timeout is the context's, not the client's: one client may serve concurrent calls.
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("admin API: %s (HTTP %d)", e.Error.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("admin API: HTTP %d", resp.StatusCode)
	}
	return raw, nil
}

func (c *adminClient) createKey(ctx context.Context, b createKeyBody) (keyJSON, error) {
	var k keyJSON
	return k, c.do(ctx, http.MethodPost, "/admin/keys", b, &k)
}

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
