package main

import (
	"context"
	"strings"
	"testing"
)

// TestHostileBodiesRejected sends bodies that once crashed the process (nesting millions deep),
// were read one way by the gateway and another by the upstream (duplicate names), or left a usage
// row PostgreSQL cannot store (invalid UTF-8, NUL): each gets a 400 before any upstream call, the
// gateway keeps serving, and each leaves its usage record in the PostgreSQL ledger.
func TestHostileBodiesRejected(t *testing.T) {
	dsn := pg.NewDatabase(t)
	e := newEnv(t, func(c *Config) {
		c.DatabaseURL = dsn
		c.Gateway.MaxBodyBytes = 17 << 20
	})
	ctx := context.Background()
	nested := func(n int) string {
		return `{"model":"gpt-test","x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name, body  string
		code, param string
	}{
		{"nested 8.3M deep", nested(8_300_000), "json_too_deep", ""},
		{"nested 4M deep", nested(4_000_000), "json_too_deep", ""},
		{"nested 129 deep", nested(128), "json_too_deep", ""}, // plus the top-level object
		{"duplicate model", `{"model":"gpt-test",` + msgs + `,"model":"other"}`, "duplicate_key", "model"},
		{"duplicate model, escaped", `{"model":"gpt-test",` + msgs + `,"mod\u0065l":"other"}`, "duplicate_key", "model"},
		{"duplicate stream", `{"model":"gpt-test","stream":false,` + msgs + `,"stream":true}`, "duplicate_key", "stream"},
		{"duplicate max_tokens", `{"model":"gpt-test","max_tokens":1,` + msgs + `,"max_tokens":100000}`, "duplicate_key", "max_tokens"},
		{"duplicate include_usage", `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true,"include_usage":false},` + msgs + `}`,
			"duplicate_key", "stream_options.include_usage"},
		{"duplicate content", `{"model":"gpt-test","messages":[{"role":"user","content":"a","content":"b"}]}`, "duplicate_key", "messages[0].content"},
		{"invalid UTF-8 model", "{\"model\":\"a\xffb\"," + msgs + "}", "invalid_utf8", ""},
		{"invalid UTF-8 content", "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}", "invalid_utf8", ""},
		{"NUL in model", `{"model":"a\u0000b",` + msgs + `}`, "invalid_value", "model"},
	}
	before := e.up.Stats().Requests
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.post(ctx, "/chat/completions", e.key, []byte(tc.body))
			id := resp.Header.Get("X-Request-Id")
			got := readBodyError(t, resp)
			if resp.StatusCode != 400 || got.Type != "invalid_request_error" || got.Code != tc.code || got.Param != tc.param {
				t.Errorf("HTTP %d %+v, want 400 invalid_request_error code %q param %q", resp.StatusCode, got, tc.code, tc.param)
			}
			if r := e.usageFor(id); r.Status != 400 || r.Model != "" || r.Deployment != "" {
				t.Errorf("usage record = status %d model %q deployment %q, want a 400 without model", r.Status, r.Model, r.Deployment)
			}
		})
	}
	if got := e.up.Stats().Requests - before; got != 0 {
		t.Errorf("upstream saw %d requests, want 0", got)
	}
	// The process survived and still serves.
	resp := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"gpt-test",`+msgs+`}`))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("ordinary request after the hostile ones: HTTP %d", resp.StatusCode)
	}
}
