package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	openaiprov "github.com/llmgate/llmgate/providers/openai"
)

// TestUpstreamRedirectIsAnUpstreamError: a deployment whose upstream answers 307 is never
// followed: the redirect's target sees nothing (no body, no key, no configured header), the
// client gets the gateway's 502 without the target's address, the deployment is charged a
// failure, and the request moves on to the next deployment.
func TestUpstreamRedirectIsAnUpstreamError(t *testing.T) {
	var mu sync.Mutex
	var stolen []http.Header
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stolen = append(stolen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"stolen","object":"chat.completion","choices":[]}`)
	}))
	t.Cleanup(target.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirecting.Close)
	good := newSwitchable(t, mock.Options{})
	redir := func(name, typ, base string) namedProvider { // typ: openai or azure
		p, err := openaiprov.New(openaiprov.Options{BaseURL: base, APIKey: upstreamKey, Outbound: loopback,
			Headers: map[string]string{"X-Configured-Secret": "configured-secret"},
			Azure:   openaiprov.Presets[typ].Azure, AzureAPIVersion: "2024-10-21"})
		return namedProvider{name, p, err}
	}
	e := newEnv(t, withRouting(
		[]namedProvider{redir("redir", "openai", redirecting.URL+"/v1"), redir("redir-azure", "azure", redirecting.URL),
			openaiProvider("good", good.Server.URL)},
		providers.ModelConfig{Name: "redirected", Deployments: []providers.DeploymentConfig{
			{ID: "redirected-only", Provider: "redir", Model: "m"}}},
		providers.ModelConfig{Name: "redirected-azure", Deployments: []providers.DeploymentConfig{
			{ID: "redirected-azure-only", Provider: "redir-azure", Model: "m"}}},
		providers.ModelConfig{Name: "redirect-then-good", Deployments: []providers.DeploymentConfig{
			{ID: "rtg-first", Provider: "redir", Model: "m", Priority: 0}, {ID: "rtg-second", Provider: "good", Model: "m", Priority: 1}}}))

	for _, model := range []string{"redirected", "redirected-azure"} {
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" {
			t.Errorf("%s: HTTP %d (Location %q), want 502 without a Location", model, resp.StatusCode, resp.Header.Get("Location"))
		}
		typ, code, msg := apiError(t, resp)
		host := strings.TrimPrefix(target.URL, "http://")
		if typ != "upstream_error" || code != "upstream_redirect" || strings.Contains(msg, host) || strings.Contains(msg, "127.0.0.1") {
			t.Errorf("%s: error %s/%s %q", model, typ, code, msg)
		}
	}
	if st := e.deploymentStatus("redirected-only"); st.Failed != 1 {
		t.Errorf("the redirecting deployment's failures = %d, want 1", st.Failed)
	}
	if status, dep, body := e.chat("redirect-then-good", "", false); status != 200 || dep != "rtg-second" || strings.Contains(body, "stolen") {
		t.Errorf("with a second deployment: HTTP %d by %q: %s; want 200 by rtg-second", status, dep, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stolen) != 0 {
		t.Errorf("the redirect's target received %d requests, the first with %v", len(stolen), stolen[0])
	}
}

// TestUpstreamErrorMessageScrubbed: an upstream's 4xx message reaches the client, but nothing in
// it that looks like a credential, and never the provider's own configured key.
func TestUpstreamErrorMessageScrubbed(t *testing.T) {
	e := newEnv(t)
	secrets := []string{upstreamKey, "sk-proj-Abcdefghij0123456789XYZ", "AIzaSyA1234567890abcdefghijklmnopqrstu", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}
	upMsg := "Invalid request: model not enabled for " + secrets[0] + " today; Authorization: Bearer " + secrets[1] +
		"; see https://x.example/v1?key=" + secrets[2] + " token " + secrets[3]
	errBody := `{"error":{"message":` + string(gjson.AppendJSONString(nil, upMsg)) + `,"type":"invalid_request_error","param":null,"code":"bad"}}`
	for _, status := range []int{400, 401, 404, 422} {
		mockField := `{"status":` + strconv.Itoa(status) + `,"error_body":` + string(gjson.AppendJSONString(nil, errBody)) + `}`
		resp := e.post(context.Background(), "/chat/completions", e.key,
			[]byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"mock":`+mockField+`}`))
		_, _, msg := apiError(t, resp)
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Errorf("upstream %d: the client's error message carries a credential: %q", status, msg)
				break
			}
		}
		if status != 401 && !strings.HasPrefix(msg, "Invalid request: model not enabled for [REDACTED] today; Authorization: Bearer [REDACTED]") {
			t.Errorf("upstream %d: the upstream's message was not kept: %q", status, msg)
		}
	}
}
