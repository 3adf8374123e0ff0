package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/mock"
)

// TestBreakerAndFailoverBeyondChat: the Responses API and the Messages API (passed through and
// translated), images and moderations fail over and open circuit breakers as chat does. A first deployment answering
// 500 is replaced by the second; after three failures in a row its breaker opens and requests
// skip it without calling it, streamed or not; the record names the deployment that answered.
func TestBreakerAndFailoverBeyondChat(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		// chatOnly: both deployments speak chat alone (the Responses API is translated for them);
		// anthropic: both are anthropic-type (the Messages API passed through).
		chatOnly, anthropic bool
	}{
		{"responses passthrough", "/responses", `{"model":"guarded","input":"hi"}`, false, false},
		{"responses passthrough stream", "/responses", `{"model":"guarded","input":"hi","stream":true}`, false, false},
		{"responses translated", "/responses", `{"model":"guarded","input":"hi"}`, true, false},
		{"responses translated stream", "/responses", `{"model":"guarded","input":"hi","stream":true}`, true, false},
		{"images", "/images/generations", `{"model":"guarded","prompt":"a harbour"}`, false, false},
		{"moderations", "/moderations", `{"model":"guarded","input":"hello"}`, false, false},
		{"messages passthrough", "/messages", `{"model":"guarded","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, false, true},
		{"messages passthrough stream", "/messages", `{"model":"guarded","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, false, true},
		{"messages translated", "/messages", `{"model":"guarded","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, false, false},
		{"messages translated stream", "/messages", `{"model":"guarded","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flaky := newSwitchable(t, mock.Options{})
			good := newSwitchable(t, mock.Options{})
			provider := openaiProvider
			if tc.chatOnly {
				provider = func(name, url string) namedProvider { return chatOnlyProvider(name, url, "") }
			}
			if tc.anthropic {
				provider = func(name, url string) namedProvider {
					p, err := anthropic.New(anthropic.Options{BaseURL: url, Outbound: loopback})
					return namedProvider{name, p, err}
				}
			}
			e := newEnv(t, withRouting([]namedProvider{provider("flaky", flaky.Server.URL), provider("good", good.Server.URL)},
				providers.ModelConfig{Name: "guarded", Deployments: []providers.DeploymentConfig{
					{ID: "guarded-flaky", Provider: "flaky", Model: "m", Priority: 0,
						Breaker: providers.BreakerConfig{ConsecutiveFailures: 3, OpenFor: time.Hour}},
					{ID: "guarded-good", Provider: "good", Model: "m", Priority: 1}}}))
			flaky.Down.Store(true)
			send := func(i int) {
				t.Helper()
				status, body, id := e.mediaPost(tc.path, e.key, tc.body)
				if status != http.StatusOK || strings.Contains(body, `"error":{`) || strings.Contains(body, `"type":"error"`) {
					t.Fatalf("request %d: HTTP %d %s", i, status, body)
				}
				if r := e.usageFor(id); r.Deployment != "guarded-good" || r.Status != 200 || r.UsageSource == "" {
					t.Fatalf("request %d: record by %q status %d source %q, want a metered answer of guarded-good", i, r.Deployment, r.Status, r.UsageSource)
				}
			}
			for i := range 3 {
				send(i)
			}
			if n := flaky.Seen.Load(); n != 3 {
				t.Fatalf("the failing deployment saw %d requests, want 3", n)
			}
			if d := e.deploymentStatus("guarded-flaky"); d.Breaker != "open" {
				t.Errorf("breaker %q after 3 failures, want open", d.Breaker)
			}
			for i := 3; i < 6; i++ {
				send(i)
			}
			if n := flaky.Seen.Load(); n != 3 {
				t.Errorf("the failing deployment saw %d requests with its breaker open, want still 3", n)
			}
			if n := good.Seen.Load(); n != 6 {
				t.Errorf("the second deployment saw %d requests, want 6", n)
			}
		})
	}
}
