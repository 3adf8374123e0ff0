package vertex

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/outbound"
)

// loopback lets the providers reach the mock (and its token endpoint) on 127.0.0.1.
var loopback = outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

var (
	saOnce sync.Once
	saKey  *mock.ServiceAccount
)

// account is the test's service account: one RSA key per test binary, made here, never stored.
func account(t *testing.T) *mock.ServiceAccount {
	t.Helper()
	saOnce.Do(func() {
		var err error
		if saKey, err = mock.NewServiceAccount("gateway@proj-test.iam.gserviceaccount.com"); err != nil {
			panic(err)
		}
	})
	return saKey
}

// upstream is the mock speaking Vertex AI, trusting the test's service account.
func upstream(t *testing.T, opts mock.Options) (*httptest.Server, *mock.Handler) {
	t.Helper()
	opts.ServiceAccounts = account(t).Trust()
	h := mock.NewHandler(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

func newProvider(t *testing.T, o Options) *Provider {
	t.Helper()
	o.Outbound = loopback
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// chat sends one OpenAI chat request through p and returns the status and body.
func chat(t *testing.T, p *Provider, model string, stream bool) (int, string) {
	t.Helper()
	body := `{"model":"` + model + `","max_tokens":50,"messages":[{"role":"user","content":"Say hello"}]}`
	resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Body: []byte(body),
		Model: model, Stream: stream, Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

const claudeModel = "claude-3-7-sonnet@20250219"

func TestBothPublishersWithAServiceAccountKey(t *testing.T) {
	srv, h := upstream(t, mock.Options{Chunks: 3})
	key := account(t).JSON("proj-test", srv.URL+"/token")
	p := newProvider(t, Options{BaseURL: srv.URL + "/v1", Settings: Settings{Region: "us-east5", CredentialsJSON: string(key)}})

	status, body := chat(t, p, "gemini-2.5-flash", false)
	if status != 200 || gjson.Get(body, "choices.0.message.content").Str != "the mock upstream" || gjson.Get(body, "usage.completion_tokens").Int() != 3 {
		t.Fatalf("gemini: HTTP %d %s", status, body)
	}
	got := h.Requests(1)[0]
	if got.Path != "/v1/projects/proj-test/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent" ||
		!strings.HasPrefix(got.Headers["Authorization"], "Bearer ya29.mock-") || got.Headers["X-Goog-Api-Key"] != "" {
		t.Errorf("gemini request = %+v", got)
	}

	status, body = chat(t, p, claudeModel, false)
	if status != 200 || gjson.Get(body, "choices.0.message.content").Str != "the mock upstream" || gjson.Get(body, "model").Str != claudeModel {
		t.Fatalf("claude: HTTP %d %s", status, body)
	}
	got = h.Requests(1)[0]
	if got.Path != "/v1/projects/proj-test/locations/us-east5/publishers/anthropic/models/"+claudeModel+":rawPredict" ||
		gjson.Get(got.Body, "model").Exists() || gjson.Get(got.Body, "anthropic_version").Str != AnthropicVersion ||
		got.Headers["X-Api-Key"] != "" || !strings.HasPrefix(got.Headers["Authorization"], "Bearer ya29.mock-") {
		t.Errorf("claude request = %+v", got)
	}

	for _, m := range []string{"gemini-2.5-flash", claudeModel} {
		status, body = chat(t, p, m, true)
		if status != 200 || !strings.Contains(body, `"finish_reason":"stop"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Fatalf("%s stream: HTTP %d %s", m, status, body)
		}
	}
	if got := h.Requests(1)[0]; !strings.HasSuffix(got.Path, ":streamRawPredict") || !gjson.Get(got.Body, "stream").Bool() {
		t.Errorf("claude stream request = %+v", got)
	}
	// One token served the four calls: it is cached, not fetched per request.
	if n := h.TokensMinted(); n != 1 {
		t.Errorf("%d tokens minted for four calls, want 1", n)
	}
	// The credentials an error text is cleaned of: the private key and the token in use.
	creds := p.Credentials()
	if len(creds) != 2 || !strings.Contains(creds[0], "PRIVATE KEY") || !strings.HasPrefix(creds[1], "ya29.mock-") {
		t.Errorf("credentials = %d values", len(creds))
	}
}

// TestTokenRefreshedBeforeExpiry: a token about to lapse is replaced before a request would carry
// it, so no request fails for it.
func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	// oauth2 treats a token as expired ten seconds early: a fifteen-second token is used for five
	// seconds and then replaced, while the mock would still take it for ten more.
	srv, h := upstream(t, mock.Options{Chunks: 2, TokenLifetime: 15 * time.Second})
	dir := t.TempDir()
	file := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(file, account(t).JSON("proj-test", srv.URL+"/token"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, Options{BaseURL: srv.URL + "/v1", Settings: Settings{Region: "global", CredentialsFile: file}})
	if status, body := chat(t, p, "gemini-2.5-flash", false); status != 200 {
		t.Fatalf("HTTP %d %s", status, body)
	}
	first := h.Requests(1)[0].Headers["Authorization"]
	if status, body := chat(t, p, "gemini-2.5-flash", false); status != 200 || h.TokensMinted() != 1 {
		t.Fatalf("HTTP %d %s, %d tokens", status, body, h.TokensMinted())
	}
	time.Sleep(6 * time.Second)
	if status, body := chat(t, p, claudeModel, true); status != 200 {
		t.Fatalf("after the refresh: HTTP %d %s", status, body)
	}
	second := h.Requests(1)[0].Headers["Authorization"]
	if h.TokensMinted() != 2 || second == first {
		t.Errorf("%d tokens minted; the third call carried the first token again: %v", h.TokensMinted(), second == first)
	}
	if s := h.Stats(); s.Errors != 0 {
		t.Errorf("%d requests failed", s.Errors)
	}
	if creds := p.Credentials(); !slices.Contains(creds, strings.TrimPrefix(second, "Bearer ")) {
		t.Error("the new token is not among the credentials")
	}
}

// TestApplicationDefaultCredentials: with no key configured, GOOGLE_APPLICATION_CREDENTIALS names
// it, and the project comes from it.
func TestApplicationDefaultCredentials(t *testing.T) {
	srv, h := upstream(t, mock.Options{Chunks: 1})
	file := filepath.Join(t.TempDir(), "adc.json")
	if err := os.WriteFile(file, account(t).JSON("proj-adc", srv.URL+"/token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	p := newProvider(t, Options{BaseURL: srv.URL + "/v1", Settings: Settings{Region: "europe-west4"}})
	if status, body := chat(t, p, "gemini-2.5-pro", false); status != 200 {
		t.Fatalf("HTTP %d %s", status, body)
	}
	if got := h.Requests(1)[0]; got.Path != "/v1/projects/proj-adc/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent" {
		t.Errorf("path %s", got.Path)
	}
}

// TestAPIKey: an API key without a project is express mode (no project or location in the path)
// and reaches Gemini models only; a Claude model is refused without an upstream call.
func TestAPIKey(t *testing.T) {
	const key = "AIzaSyMockVertexExpressKey0123456789"
	srv, h := upstream(t, mock.Options{Chunks: 1, RequireKey: key})
	p := newProvider(t, Options{BaseURL: srv.URL + "/v1", APIKey: key})
	if status, body := chat(t, p, "gemini-2.5-flash", true); status != 200 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("HTTP %d %s", status, body)
	}
	got := h.Requests(1)[0]
	if got.Path != "/v1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse" || got.Headers["X-Goog-Api-Key"] != key || got.Headers["Authorization"] != "" {
		t.Errorf("request = %+v", got)
	}
	status, body := chat(t, p, claudeModel, false)
	if status != 400 || gjson.Get(body, "error.code").Str != "unsupported_model" {
		t.Errorf("claude with a key: HTTP %d %s", status, body)
	}
	if s := h.Stats(); s.Requests != 1 {
		t.Errorf("the upstream saw %d requests", s.Requests)
	}
	// With a project, the key goes to the project's path.
	p = newProvider(t, Options{BaseURL: srv.URL + "/v1", APIKey: key, Settings: Settings{Project: "p1", Region: "us-central1"}})
	if status, body := chat(t, p, "gemini-2.5-flash", false); status != 200 {
		t.Fatalf("HTTP %d %s", status, body)
	}
	if got := h.Requests(1)[0]; got.Path != "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent" {
		t.Errorf("path %s", got.Path)
	}
}

// TestTokenEndpointRefusal: a key the token endpoint does not trust fails the attempt with an error
// that names the refusal and quotes neither the key nor the assertion.
func TestTokenEndpointRefusal(t *testing.T) {
	srv, h := upstream(t, mock.Options{})
	stranger, err := mock.NewServiceAccount("stranger@proj-test.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	key := stranger.JSON("proj-test", srv.URL+"/token")
	p := newProvider(t, Options{BaseURL: srv.URL + "/v1", Settings: Settings{Region: "us-central1", CredentialsJSON: string(key)}})
	_, err = p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: "gemini-2.5-flash",
		Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`), Header: http.Header{}})
	if err == nil || !strings.Contains(err.Error(), "token endpoint refused") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("err = %v", err)
	}
	assertion := gjson.Get(`{"b":`+jsonString(h.Requests(1)[0].Body)+`}`, "b").Str
	for _, secret := range []string{"PRIVATE KEY", strings.Split(string(stranger.JSON("", "")), `"private_key":"`)[1][40:80], assertion} {
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("the error quotes a secret: %v", err)
		}
	}
	// The test call of a deployment names the refusal.
	pr := providers.Probe(context.Background(), &providers.Deployment{ID: "vx/g", Provider: p, Model: "gemini-2.5-flash"}, "", 10*time.Second)
	if pr.Err == nil || !strings.Contains(pr.Err.Error(), "token endpoint refused the credentials (HTTP 400 invalid_grant)") {
		t.Errorf("probe: %v", pr.Err)
	}
	if s := h.Stats(); s.Requests != 0 {
		t.Errorf("Vertex AI saw %d requests without a token", s.Requests)
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func TestBadSettings(t *testing.T) {
	key := string(account(t).JSON("p", "http://127.0.0.1:1/token"))
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no region", Options{Settings: Settings{Project: "p", CredentialsJSON: key}}, "vertex.region: required"},
		{"key and credentials", Options{APIKey: "k", Settings: Settings{Region: "r", CredentialsJSON: key}}, "api_key: set either"},
		{"file and json", Options{Settings: Settings{Region: "r", CredentialsJSON: key, CredentialsFile: "/x"}}, "vertex.credentials_json: set either"},
		{"not JSON", Options{Settings: Settings{Region: "r", CredentialsJSON: "{not json"}}, "vertex.credentials_json: not a usable service account key"},
		{"user credentials", Options{Settings: Settings{Region: "r", CredentialsJSON: `{"type":"authorized_user","refresh_token":"1//secret-refresh"}`}}, "vertex.credentials_json: not a usable service account key"},
		{"missing file", Options{Settings: Settings{Region: "r", CredentialsFile: filepath.Join(t.TempDir(), "none.json")}}, "vertex.credentials_file:"},
		{"bad token url", Options{Settings: Settings{Region: "r", CredentialsJSON: key, TokenURL: "ftp://x"}}, "vertex.token_url: want an http(s) URL"},
		{"region with a slash", Options{Settings: Settings{Region: "us/../x", CredentialsJSON: key}}, "plain names"},
		{"base url with a query", Options{BaseURL: "http://127.0.0.1:1/v1?key=x", Settings: Settings{Region: "r", CredentialsJSON: key}}, "base_url:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "secret-refresh") {
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
}

// TestSlowTokenEndpoint: a request waits for a token no longer than its context; the fetch it
// started serves the next request.
func TestSlowTokenEndpoint(t *testing.T) {
	h := mock.NewHandler(mock.Options{Chunks: 1, ServiceAccounts: account(t).Trust()})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			<-release
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	key := account(t).JSON("proj-test", srv.URL+"/token")
	p := newProvider(t, Options{BaseURL: srv.URL + "/v1", Settings: Settings{Region: "us-central1", CredentialsJSON: string(key)}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := p.Do(ctx, &providers.Request{Endpoint: providers.ChatCompletions, Model: "gemini-2.5-flash", Header: http.Header{},
		Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`)})
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if s := h.Stats(); s.Requests != 0 {
		t.Errorf("Vertex AI saw %d requests without a token", s.Requests)
	}
	// The abandoned fetch completes; the next request uses its token without another.
	if status, body := chat(t, p, "gemini-2.5-flash", false); status != 200 {
		t.Fatalf("HTTP %d %s", status, body)
	}
	if n := h.TokensMinted(); n != 1 {
		t.Errorf("%d tokens minted, want 1", n)
	}
}

func TestDefaultBaseURL(t *testing.T) {
	for _, tc := range []struct {
		region  string
		express bool
		want    string
	}{
		{"us-central1", false, "https://us-central1-aiplatform.googleapis.com/v1"},
		{"europe-west4", false, "https://europe-west4-aiplatform.googleapis.com/v1"},
		{"global", false, "https://aiplatform.googleapis.com/v1"},
		{"us", false, "https://aiplatform.us.rep.googleapis.com/v1"},
		{"eu", false, "https://aiplatform.eu.rep.googleapis.com/v1"},
		{"", true, "https://aiplatform.googleapis.com/v1"},
	} {
		if got := defaultBaseURL(tc.region, tc.express); got != tc.want {
			t.Errorf("defaultBaseURL(%q, %v) = %s, want %s", tc.region, tc.express, got, tc.want)
		}
	}
}
