package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRejectedRequestsNeverReachUpstream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	limited := e.newKey(keySpec{Name: "limited", Models: []string{"other"}})
	revoked := e.newKey(keySpec{Name: "revoked"})
	e.revoke(revoked.ID)
	past := time.Now().Add(time.Second)
	expiring := e.newKey(keySpec{Name: "expiring", ExpiresAt: &past})
	time.Sleep(time.Until(past) + 10*time.Millisecond)
	chat := `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`
	big := `{"model":"gpt-test","messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`

	cases := []struct {
		name       string
		key        string
		body       string
		hdr        []string
		status     int
		typ, code  string
		authorized bool // an authenticated request leaves a usage record
	}{
		{name: "no key", body: chat, status: 401, typ: "authentication_error", code: "missing_api_key"},
		{name: "unknown key", key: "sk-lg-" + strings.Repeat("x", 43), body: chat, status: 401, typ: "authentication_error", code: "invalid_api_key"},
		{name: "garbage key", key: "not a key at all!", body: chat, status: 401, typ: "authentication_error", code: "invalid_api_key"},
		{name: "revoked key", key: revoked.Key, body: chat, status: 401, typ: "authentication_error", code: "revoked_api_key"},
		{name: "expired key", key: expiring.Key, body: chat, status: 401, typ: "authentication_error", code: "expired_api_key"},
		{name: "model not in allowlist", key: limited.Key, body: chat, status: 403, typ: "permission_error", code: "model_not_allowed", authorized: true},
		{name: "unknown model", key: e.key, body: `{"model":"nope","messages":[]}`, status: 404, typ: "invalid_request_error", code: "model_not_found", authorized: true},
		{name: "malformed JSON", key: e.key, body: `{"model":"gpt-test","messages":[`, status: 400, typ: "invalid_request_error", code: "invalid_json", authorized: true},
		{name: "not an object", key: e.key, body: `["gpt-test"]`, status: 400, typ: "invalid_request_error", code: "invalid_json", authorized: true},
		{name: "missing model", key: e.key, body: `{"messages":[]}`, status: 400, typ: "invalid_request_error", code: "missing_model", authorized: true},
		{name: "stream not a boolean", key: e.key, body: `{"model":"gpt-test","stream":"yes"}`, status: 400, typ: "invalid_request_error", code: "invalid_type", authorized: true},
		{name: "oversized body", key: e.key, body: big, status: 413, typ: "invalid_request_error", code: "request_too_large", authorized: true},
		{name: "upstream 400 keeps its message", key: e.key, body: `{"model":"gpt-test","mock":{"status":400}}`, status: 400, typ: "invalid_request_error", authorized: true},
	}
	before := e.up.Stats().Requests
	var ids []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.post(ctx, "/chat/completions", tc.key, []byte(tc.body), tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			typ, code, msg := apiError(t, resp)
			if typ != tc.typ || (tc.code != "" && code != tc.code) {
				t.Errorf("error type/code = %s/%s (%s), want %s/%s", typ, code, msg, tc.typ, tc.code)
			}
			if strings.Contains(msg, upstreamKey) || (tc.key != "" && strings.Contains(msg, tc.key)) {
				t.Errorf("error message leaks a credential: %s", msg)
			}
			if tc.authorized {
				ids = append(ids, resp.Header.Get("X-Request-Id"))
			}
		})
	}
	// Only the last case was meant to reach the upstream.
	if got := e.up.Stats().Requests - before; got != 1 {
		t.Errorf("upstream saw %d requests, want 1 (only the upstream-400 case)", got)
	}
	for _, id := range ids {
		r := e.usageFor(id)
		if r.Status < 400 || r.PromptTokens != 0 || r.CompletionTokens != 0 || r.UsageSource != "" {
			t.Errorf("rejected request billed: %+v", r)
		}
	}
	if n := len(e.allUsage(int64(len(ids)))); n != len(ids) {
		t.Errorf("%d usage records, want %d (unauthenticated requests leave none)", n, len(ids))
	}
}

func TestAlternativeKeyHeaders(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"Api-Key", "X-Api-Key"} {
		req, _ := http.NewRequest(http.MethodPost, e.baseURL+"/chat/completions",
			strings.NewReader(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set(h, e.key)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("key in %s: status %d", h, resp.StatusCode)
		}
	}
}

func TestUpstreamErrorsNormalised(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		mock   string
		status int
		typ    string
	}{
		{"non-OpenAI 500 body", `{"error_body":"<html>oops</html>"}`, 502, "upstream_error"},
		{"upstream 401 is the gateway's problem", `{"status":401}`, 502, "upstream_error"},
		{"upstream 429", `{"status":429}`, 429, "rate_limit_error"},
		{"upstream 503 keeps its OpenAI type", `{"status":503}`, 502, "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.post(context.Background(), "/chat/completions", e.key,
				[]byte(`{"model":"gpt-test","mock":`+tc.mock+`,"messages":[]}`))
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			typ, _, msg := apiError(t, resp)
			if typ != tc.typ || strings.Contains(msg, "<html>") {
				t.Errorf("type %q message %q", typ, msg)
			}
		})
	}
}

func TestRateLimitConsumesNothingUpstream(t *testing.T) {
	e := newEnv(t)
	k := e.newKey(keySpec{Name: "tiny", UserID: "tiny-user", Tier: "tiny"}) // 2 rpm
	body := []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`)
	for i := 0; i < 2; i++ {
		resp := e.post(context.Background(), "/chat/completions", k.Key, body)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" {
			t.Fatalf("request %d: status %d, limit header %q", i, resp.StatusCode, resp.Header.Get("X-Ratelimit-Limit-Requests"))
		}
	}
	before := e.up.Stats().Requests
	resp := e.post(context.Background(), "/chat/completions", k.Key, body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if typ, _, _ := apiError(t, resp); typ != "rate_limit_error" {
		t.Errorf("type %q", typ)
	}
	if e.up.Stats().Requests != before {
		t.Error("a rate-limited request reached the upstream")
	}
}

func TestRevocationVisibleWithinTTL(t *testing.T) {
	e := newEnv(t)
	k := e.newKey(keySpec{Name: "soon-revoked"})
	body := []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`)
	resp := e.post(context.Background(), "/chat/completions", k.Key, body)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.revoke(k.ID)
	revokedAt := time.Now()
	waitFor(t, 5*time.Second, "the revoked key to be refused", func() bool {
		resp := e.post(context.Background(), "/chat/completions", k.Key, body)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 401
	})
	t.Logf("revocation visible after %v", time.Since(revokedAt))
}
