package mock

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tidwall/gjson"
)

// TestVertexTokenEndpoint: the token endpoint mints a token only for an assertion signed with RS256
// by a trusted account, addressed to it, asking for cloud-platform and not expired; Vertex AI's
// paths take only the tokens it minted.
func TestVertexTokenEndpoint(t *testing.T) {
	sa, err := NewServiceAccount("gw@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewServiceAccount("other@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	srv, h := startServer(t, Options{ServiceAccounts: sa.Trust(), TokenLifetime: time.Minute})
	aud := srv.URL + "/token"
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": sa.Email, "aud": aud, "scope": cloudPlatformScope, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(c jwt.MapClaims, key *ServiceAccount) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(key.Key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	grant := func(assertion string) (int, string) {
		resp, err := http.PostForm(aud, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	hs256, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString([]byte("a-shared-secret-of-some-length"))
	for _, tc := range []struct {
		name      string
		assertion string
		want      string
	}{
		{"another account's signature", sign(claims(nil), other), "invalid_grant"},
		{"an untrusted issuer", sign(claims(func(c jwt.MapClaims) { c["iss"] = other.Email }), other), "invalid_grant"},
		{"signed by the wrong key", sign(claims(func(c jwt.MapClaims) { c["iss"] = sa.Email }), other), "invalid_grant"},
		{"HS256", hs256, "invalid_grant"},
		{"another audience", sign(claims(func(c jwt.MapClaims) { c["aud"] = "https://oauth2.googleapis.com/token" }), sa), "invalid_grant"},
		{"expired", sign(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }), sa), "invalid_grant"},
		{"no expiry", sign(claims(func(c jwt.MapClaims) { delete(c, "exp") }), sa), "invalid_grant"},
		{"another scope", sign(claims(func(c jwt.MapClaims) { c["scope"] = "https://www.googleapis.com/auth/drive" }), sa), "invalid_scope"},
		{"garbage", "not.a.jwt", "invalid_grant"},
	} {
		if status, body := grant(tc.assertion); status != 400 || gjson.Get(body, "error").Str != tc.want {
			t.Errorf("%s: HTTP %d %s", tc.name, status, body)
		}
	}
	if h.TokensMinted() != 0 {
		t.Fatalf("%d tokens minted for bad assertions", h.TokensMinted())
	}
	status, body := grant(sign(claims(nil), sa))
	token := gjson.Get(body, "access_token").Str
	if status != 200 || !strings.HasPrefix(token, "ya29.mock-") || gjson.Get(body, "expires_in").Int() != 60 || gjson.Get(body, "token_type").Str != "Bearer" {
		t.Fatalf("HTTP %d %s", status, body)
	}

	const path = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
	req := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	for _, auth := range []string{"", "Bearer ya29.mock-forged", "Bearer " + token + "x"} {
		resp, body := post(t, srv, path, req, "Authorization", auth)
		if resp.StatusCode != 401 || gjson.Get(body, "error.status").Str != "UNAUTHENTICATED" {
			t.Errorf("Authorization %q: HTTP %d %s", auth, resp.StatusCode, body)
		}
	}
	resp, out := post(t, srv, path, req, "Authorization", "Bearer "+token)
	if resp.StatusCode != 200 || gjson.Get(out, "usageMetadata.promptTokenCount").Int() != 4 {
		t.Fatalf("HTTP %d %s", resp.StatusCode, out)
	}
	// Claude on Vertex: no model in the body, anthropic_version required, stream only with
	// streamRawPredict.
	claude := "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-3-7-sonnet@20250219:"
	msgs := `"max_tokens":5,"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct{ method, body, want string }{
		{"rawPredict", `{"model":"claude","anthropic_version":"vertex-2023-10-16",` + msgs + `}`, "model: Extra inputs"},
		{"rawPredict", `{` + msgs + `}`, "anthropic_version: Field required"},
		{"rawPredict", `{"anthropic_version":"2023-06-01",` + msgs + `}`, "anthropic_version: must be"},
		{"streamRawPredict", `{"anthropic_version":"vertex-2023-10-16",` + msgs + `}`, "stream: must be true"},
	} {
		resp, body := post(t, srv, claude+tc.method, tc.body, "Authorization", "Bearer "+token)
		if resp.StatusCode != 400 || !strings.Contains(gjson.Get(body, "error.message").Str, tc.want) {
			t.Errorf("%s %s: HTTP %d %s", tc.method, tc.body, resp.StatusCode, body)
		}
	}
	resp, out = post(t, srv, claude+"rawPredict", `{"anthropic_version":"vertex-2023-10-16",`+msgs+`}`, "Authorization", "Bearer "+token)
	var m struct {
		Model string `json:"model"`
		Usage struct {
			Output int `json:"output_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(out), &m); resp.StatusCode != 200 || err != nil || m.Model != "claude-3-7-sonnet@20250219" || m.Usage.Output != 5 {
		t.Errorf("HTTP %d %s", resp.StatusCode, out)
	}
}

// TestVertexStreamTokenLapse: a stream whose token lapses ends with Google's UNAUTHENTICATED error
// as its next event (Anthropic's authentication_error event on Claude's stream); intermediate
// Gemini events count no tokens, as Vertex AI's do.
func TestVertexStreamTokenLapse(t *testing.T) {
	sa, err := NewServiceAccount("gw@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := startServer(t, Options{ServiceAccounts: sa.Trust(), TokenLifetime: time.Second, Chunks: 12, TokensPerSecond: 4})
	assertion, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": sa.Email, "aud": srv.URL + "/token",
		"scope": cloudPlatformScope, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(sa.Key)
	resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := gjson.GetBytes(b, "access_token").Str

	_, body := post(t, srv, "/v1/projects/p/locations/l/publishers/google/models/g:streamGenerateContent?alt=sse",
		`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, "Authorization", "Bearer "+token)
	events := strings.Split(strings.TrimSpace(body), "\r\n\r\n")
	last := strings.TrimPrefix(events[len(events)-1], "data: ")
	if len(events) < 2 || len(events) > 10 || gjson.Get(last, "error.status").Str != "UNAUTHENTICATED" {
		t.Fatalf("%d events, last %s", len(events), last)
	}
	if u := gjson.Get(strings.TrimPrefix(events[0], "data: "), "usageMetadata"); u.Raw != `{"trafficType":"ON_DEMAND"}` {
		t.Errorf("first event's usage %s", u.Raw)
	}
}

// TestVertexFaults: the overrides inject the same faults on Vertex AI's paths as on the Gemini and
// Messages endpoints, each in its publisher's shape.
func TestVertexFaults(t *testing.T) {
	sa, err := NewServiceAccount("gw@p.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	srv, h := startServer(t, Options{ServiceAccounts: sa.Trust(), Chunks: 4})
	assertion, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": sa.Email, "aud": srv.URL + "/token",
		"scope": cloudPlatformScope, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}).SignedString(sa.Key)
	resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	auth := "Bearer " + gjson.GetBytes(b, "access_token").Str
	const google = "/v1/projects/p/locations/l/publishers/google/models/g:"
	const claude = "/v1/projects/p/locations/l/publishers/anthropic/models/claude-x@20250101:"
	gem := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"mock":`
	msg := `{"anthropic_version":"vertex-2023-10-16","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"mock":`
	for _, tc := range []struct {
		path, body string
		status     int
		check      func(string) bool
	}{
		{google + "generateContent", gem + `{"status":429}}`, 429, func(b string) bool { return gjson.Get(b, "error.status").Str == "RESOURCE_EXHAUSTED" }},
		{google + "generateContent", gem + `{"error_rate":1}}`, 500, func(b string) bool { return gjson.Get(b, "error.status").Str == "INTERNAL" }},
		{claude + "rawPredict", msg + `{"status":529}}`, 529, func(b string) bool { return gjson.Get(b, "error.type").Str == "overloaded_error" }},
		{claude + "streamRawPredict", strings.Replace(msg, `"max_tokens"`, `"stream":true,"max_tokens"`, 1) + `{"fail_after":1}}`, 200,
			func(b string) bool {
				return strings.Contains(b, "event: error") && !strings.Contains(b, "message_stop")
			}},
	} {
		resp, body := post(t, srv, tc.path, tc.body, "Authorization", auth)
		if resp.StatusCode != tc.status || !tc.check(body) {
			t.Errorf("%s %s: HTTP %d %s", tc.path, tc.body, resp.StatusCode, body)
		}
	}
	// fail_after drops the connection after that many events, as on the Gemini API.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+google+"streamGenerateContent?alt=sse", strings.NewReader(gem+`{"fail_after":2}}`))
	req.Header.Set("Authorization", auth)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || strings.Count(string(b), "data: ") != 2 || strings.Contains(string(b), "finishReason") {
		t.Errorf("fail_after: %v %s", err, b)
	}
	if s := h.Stats(); s.Requests != 5 {
		t.Errorf("stats counted %d requests", s.Requests)
	}
}
