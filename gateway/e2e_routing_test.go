package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// chat sends one chat request for model with extra body fields and returns the status, the
// deployment that answered (from the usage record) and the body.
func (e *env) chat(model, extra string, stream bool) (int, string, string) {
	e.t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]` + extra
	if stream {
		body += `,"stream":true`
	}
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body+"}"))
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec := e.usageFor(resp.Header.Get("X-Request-Id"))
	return resp.StatusCode, rec.Deployment, string(raw)
}

// TestFailoverBeforeFirstByte: a deployment that refuses connections, answers 500 or times out
// before its first byte (where retry_on_timeout allows) is replaced by the next one; a 4xx caused
// by the request is returned as it is; a stream that broke after its first byte is not retried.
func TestFailoverBeforeFirstByte(t *testing.T) {
	bad := newSwitchable(t, mock.Options{})
	good := newSwitchable(t, mock.Options{})
	bad.Down.Store(true)
	hanging := newSwitchable(t, mock.Options{LatencyMS: 3000})
	two := func(name, first string, retryOnTimeout bool) providers.ModelConfig {
		return providers.ModelConfig{Name: name, Deployments: []providers.DeploymentConfig{
			{ID: name + "-first", Provider: first, Model: "m", Priority: 0, RetryOnTimeout: retryOnTimeout,
				Timeouts: providers.Timeouts{FirstByte: 300 * time.Millisecond}},
			{ID: name + "-second", Provider: "good", Model: "m", Priority: 1}}}
	}
	e := newEnv(t, withRouting(
		[]namedProvider{openaiProvider("bad", bad.Server.URL), openaiProvider("good", good.Server.URL),
			openaiProvider("hanging", hanging.Server.URL),
			openaiProvider("refusing", "http://127.0.0.1:1")},
		two("refused", "refusing", false), two("fails", "bad", false), two("slow-retry", "hanging", true),
		two("slow-no-retry", "hanging", false), two("client-error", "good", false)))

	for _, tc := range []struct {
		model, extra string
		stream       bool
		wantStatus   int
		wantDep      string
	}{
		{"refused", "", false, 200, "refused-second"},
		{"refused", "", true, 200, "refused-second"},
		{"fails", "", false, 200, "fails-second"},
		{"fails", "", true, 200, "fails-second"},
		{"slow-retry", "", false, 200, "slow-retry-second"},
		{"slow-no-retry", "", false, 504, "slow-no-retry-first"},
		// the mock answers 400 to a body whose "mock" field is invalid: the request's fault
		{"client-error", `,"mock":{"chunks":-1}`, false, 400, "client-error-first"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			goodBefore := good.Seen.Load()
			status, dep, body := e.chat(tc.model, tc.extra, tc.stream)
			if status != tc.wantStatus || dep != tc.wantDep {
				t.Fatalf("status %d by %q (%s), want %d by %q", status, dep, body, tc.wantStatus, tc.wantDep)
			}
			if tc.wantStatus != 200 && tc.model != "client-error" && good.Seen.Load() != goodBefore {
				t.Errorf("the second deployment was tried")
			}
			if tc.model == "client-error" && good.Seen.Load() != goodBefore+1 {
				t.Errorf("a request error was retried: the upstream saw %d requests, want 1", good.Seen.Load()-goodBefore)
			}
		})
	}

	t.Run("no retry after the first byte", func(t *testing.T) {
		cut := newSwitchable(t, mock.Options{})
		e2 := newEnv(t, withRouting([]namedProvider{openaiProvider("cut", cut.Server.URL), openaiProvider("good", good.Server.URL)},
			providers.ModelConfig{Name: "cut", Deployments: []providers.DeploymentConfig{
				{ID: "cut-first", Provider: "cut", Model: "m"}, {ID: "cut-second", Provider: "good", Model: "m", Priority: 1}}}))
		goodBefore := good.Seen.Load()
		status, dep, body := e2.chat("cut", `,"mock":{"fail_after":3}`, true)
		if status != 200 || dep != "cut-first" || strings.Contains(body, "[DONE]") || !strings.Contains(body, `"error"`) {
			t.Errorf("status %d by %q, body %q: want the first deployment's stream ending in an error event", status, dep, body)
		}
		if good.Seen.Load() != goodBefore {
			t.Error("a stream that had begun was retried on another deployment")
		}
	})
}

// TestBreakerOpensAndRecovers: after the configured consecutive failures a deployment's breaker
// opens and requests skip it (answered by the next deployment without touching it); after
// open_for one probe goes through, and its success closes the breaker. The state shows in
// /v1/providers, /v1/status and the metrics.
func TestBreakerOpensAndRecovers(t *testing.T) {
	flaky := newSwitchable(t, mock.Options{})
	good := newSwitchable(t, mock.Options{})
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("flaky", flaky.Server.URL), openaiProvider("good", good.Server.URL)},
		providers.ModelConfig{Name: "guarded", Deployments: []providers.DeploymentConfig{
			{ID: "guarded-flaky", Provider: "flaky", Model: "m", Priority: 0,
				Breaker: providers.BreakerConfig{ConsecutiveFailures: 3, OpenFor: time.Second}},
			{ID: "guarded-good", Provider: "good", Model: "m", Priority: 1}}}))
	flaky.Down.Store(true)
	for i := 0; i < 3; i++ {
		if status, dep, _ := e.chat("guarded", "", false); status != 200 || dep != "guarded-good" {
			t.Fatalf("request %d: %d by %q, want 200 by guarded-good", i, status, dep)
		}
	}
	if n := flaky.Seen.Load(); n != 3 {
		t.Fatalf("the flaky deployment saw %d requests, want 3", n)
	}
	for i := 0; i < 5; i++ { // open: skipped without being called
		if status, dep, _ := e.chat("guarded", "", true); status != 200 || dep != "guarded-good" {
			t.Fatalf("with the breaker open: %d by %q", status, dep)
		}
	}
	if n := flaky.Seen.Load(); n != 3 {
		t.Errorf("the flaky deployment saw %d requests with its breaker open, want still 3", n)
	}
	if st := e.deploymentStatus("guarded-flaky"); st.Breaker != "open" || st.Available || st.Failed != 3 {
		t.Errorf("/v1/providers: %+v, want open, unavailable, 3 failures", st)
	}
	if m := e.modelStatus("guarded"); m.Status != "degraded" || m.Available != 1 || m.Deployments != 2 {
		t.Errorf("/v1/status: %+v, want degraded with 1 of 2 available", m)
	}
	if !strings.Contains(e.metrics(), `llmgate_deployment_breaker_state{deployment="guarded-flaky"} 2`) {
		t.Error("metrics do not show the breaker open")
	}
	flaky.Down.Store(false)
	time.Sleep(1200 * time.Millisecond) // past open_for: half-open
	if status, dep, _ := e.chat("guarded", "", false); status != 200 || dep != "guarded-flaky" {
		t.Fatalf("the probe after open_for: %d by %q, want the recovered deployment", status, dep)
	}
	if st := e.deploymentStatus("guarded-flaky"); st.Breaker != "closed" {
		t.Errorf("after a successful probe the breaker is %q, want closed", st.Breaker)
	}
	if status, dep, _ := e.chat("guarded", "", true); status != 200 || dep != "guarded-flaky" {
		t.Errorf("after recovery: %d by %q, want the first deployment again", status, dep)
	}

	// A model whose only deployment has its breaker open answers 503 without calling it.
	lone := newSwitchable(t, mock.Options{})
	e2 := newEnv(t, withRouting([]namedProvider{openaiProvider("lone", lone.Server.URL)},
		providers.ModelConfig{Name: "lone", Deployments: []providers.DeploymentConfig{{ID: "lone", Provider: "lone", Model: "m",
			Breaker: providers.BreakerConfig{ConsecutiveFailures: 2, OpenFor: time.Minute}}}}))
	lone.Down.Store(true)
	for i := 0; i < 2; i++ {
		if status, _, _ := e2.chat("lone", "", false); status != http.StatusBadGateway {
			t.Fatalf("failing deployment: %d, want its 500 passed on as 502", status)
		}
	}
	status, _, body := e2.chat("lone", "", false)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "circuit breaker open") || lone.Seen.Load() != 2 {
		t.Errorf("with the only breaker open: %d %s (upstream saw %d), want 503 without a call", status, body, lone.Seen.Load())
	}
}

// TestAttemptTimeouts: the idle timeout ends a stream that stalls between events (an error
// event, a partial record with status 504); the total timeout bounds a whole answer.
func TestAttemptTimeouts(t *testing.T) {
	up := newSwitchable(t, mock.Options{})
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("stall", up.Server.URL)},
		providers.ModelConfig{Name: "stall", Deployments: []providers.DeploymentConfig{{ID: "stall", Provider: "stall", Model: "m",
			Timeouts: providers.Timeouts{Idle: 300 * time.Millisecond, Total: 2 * time.Second}}}}))
	start := time.Now()
	status, _, body := e.chat("stall", `,"mock":{"chunks":5,"interval_ms":1500}`, true)
	if took := time.Since(start); status != 200 || strings.Contains(body, "[DONE]") || !strings.Contains(body, "stopped sending") || took > 1200*time.Millisecond {
		t.Errorf("a stream stalling 1.5 s under a 300 ms idle timeout: %d after %v, body %q", status, took, body)
	}
	// Each gap is under the idle timeout, but the answer outlasts the total.
	status, _, body = e.chat("stall", `,"mock":{"chunks":12,"interval_ms":250}`, true)
	if status != 200 || strings.Contains(body, "[DONE]") || !strings.Contains(body, "took longer than allowed") {
		t.Errorf("a 3 s stream under a 2 s total timeout: %d, body %q", status, body)
	}
	recs := e.allUsage(2)
	cut := 0
	for _, r := range recs {
		if r.Model == "stall" && r.Status == http.StatusGatewayTimeout && r.UsageSource == "partial" {
			cut++
		}
	}
	if cut != 2 {
		t.Errorf("%d records of the cut streams with status 504 and partial usage, want 2", cut)
	}
}

type modelStatusJSON struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Deployments int    `json:"deployments"`
	Available   int    `json:"available"`
}

func (e *env) modelStatus(model string) modelStatusJSON {
	e.t.Helper()
	var out struct {
		Status string            `json:"status"`
		Models []modelStatusJSON `json:"models"`
	}
	e.getJSON("/status", &out)
	for _, m := range out.Models {
		if m.ID == model {
			return m
		}
	}
	e.t.Fatalf("model %s not in /v1/status", model)
	return modelStatusJSON{}
}
