package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestAdminAPIRequiresToken(t *testing.T) {
	e := newEnv(t)
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token-wrong-token-x", "Basic " + testAdminToken} {
		req, _ := http.NewRequest(http.MethodGet, e.app.adminURL+"/admin/keys", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 401 {
			t.Errorf("auth %q: status %d", auth, resp.StatusCode)
		}
		apiError(t, resp)
	}
	// /metrics needs no token and shows the request series
	r := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gpt-test","stream":true,"messages":[]}`))
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	resp, err := e.http.Get(e.app.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{"llmgate_requests_total", "llmgate_streams_in_flight", "llmgate_usage_queue_depth"} {
		if !bytes.Contains(raw, []byte(series)) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if bytes.Contains(raw, []byte(e.key)) || bytes.Contains(raw, []byte(upstreamKey)) {
		t.Error("/metrics leaks a key")
	}
}

func TestAdminWithoutTokenRefusesEverything(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AdminToken = "" })
	for _, auth := range []string{"", "Bearer ", "Bearer " + testAdminToken} {
		req, _ := http.NewRequest(http.MethodPost, e.app.adminURL+"/admin/keys", strings.NewReader(`{"name":"x"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 401 {
			t.Errorf("auth %q: status %d", auth, resp.StatusCode)
		}
		if _, code, _ := apiError(t, resp); code != "admin_disabled" {
			t.Errorf("code %q", code)
		}
	}
}

func TestKeysCLI(t *testing.T) {
	e := newEnv(t)
	t.Setenv("LLMGATE_ADMIN_URL", e.app.adminURL)
	t.Setenv("LLMGATE_ADMIN_TOKEN", testAdminToken)
	var out, errb bytes.Buffer
	if code := run([]string{"keys", "create", "--name", "cli", "--models", "gpt-test,other", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("keys create: exit %d: %s", code, errb.String())
	}
	id, key := gjson.Get(out.String(), "id").String(), gjson.Get(out.String(), "key").String()
	if !strings.HasPrefix(key, "sk-lg-") || id == "" {
		t.Fatalf("keys create printed %s", out.String())
	}
	out.Reset()
	if code := run([]string{"keys", "list"}, &out, &errb); code != 0 || !strings.Contains(out.String(), id) || strings.Contains(out.String(), key) {
		t.Errorf("keys list (exit %d) must show the id and never the secret:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"keys", "revoke", id, "--json"}, &out, &errb); code != 0 || gjson.Get(out.String(), "revoked_at").String() == "" {
		t.Errorf("keys revoke: exit %d: %s %s", code, out.String(), errb.String())
	}
}
