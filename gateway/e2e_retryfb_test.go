package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// neverOpen is a breaker that does not open within a test: the tests count the upstream's calls.
var neverOpen = providers.BreakerConfig{ConsecutiveFailures: 1 << 30, MinRequests: 1 << 30}

// retries is a retry policy of n retries with short waits, for tests.
func retries(n int) providers.RetryPolicy {
	return providers.RetryPolicy{Retries: &n, Backoff: 20 * time.Millisecond, RetryAfterCap: 2 * time.Second}
}

// sendChat posts a chat request for model (extra: more body fields) and returns the answer and
// its body.
func (e *env) sendChat(model, extra string) (*http.Response, string) {
	e.t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]` + extra + `}`
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body))
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(raw)
}

// TestRetrySameDeployment: a model with one deployment survives transient 429s and 503s by
// retrying that deployment, counted at the upstream; an upstream Retry-After is waited for when
// within the cap and refuses the retry beyond it; nothing is retried once the answer has begun,
// nor a request's own fault, nor a model that configures no retries.
func TestRetrySameDeployment(t *testing.T) {
	flaky := newSwitchable(t, mock.Options{})
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("flaky", flaky.Server.URL)},
		providers.ModelConfig{Name: "one", Retry: retries(3), Deployments: []providers.DeploymentConfig{{ID: "one-dep", Provider: "flaky", Model: "m", Breaker: neverOpen}}},
		providers.ModelConfig{Name: "plain", Deployments: []providers.DeploymentConfig{{ID: "plain-dep", Provider: "flaky", Model: "m", Breaker: neverOpen}}}))

	for _, tc := range []struct {
		name       string
		model      string
		fail       func()
		extra      string
		wantStatus int
		wantSeen   int64
		minWait    time.Duration
	}{
		{"two 503s then success", "one", func() { flaky.FailNext(2, 503, "") }, "", 200, 3, 0},
		{"a 429 then success", "one", func() { flaky.FailNext(1, 429, "") }, "", 200, 2, 0},
		{"three 503s then success: every retry used", "one", func() { flaky.FailNext(3, 503, "") }, "", 200, 4, 0},
		{"four 503s: retries exhausted", "one", func() { flaky.FailNext(4, 503, "") }, "", 502, 4, 0},
		{"Retry-After within the cap is waited for", "one", func() { flaky.FailNext(1, 429, "", "Retry-After", "1") }, "", 200, 2, time.Second},
		{"retry-after-ms within the cap", "one", func() { flaky.FailNext(1, 503, "", "Retry-After-Ms", "300") }, "", 200, 2, 300 * time.Millisecond},
		{"Retry-After beyond the cap: no retry", "one", func() { flaky.FailNext(1, 429, "", "Retry-After", "30") }, "", 429, 1, 0},
		{"a request's own fault: no retry", "one", func() { flaky.FailNext(1, 400, "") }, "", 400, 1, 0},
		{"a stream cut after its first byte: no retry", "one", func() {}, `,"stream":true,"mock":{"fail_after":2}`, 200, 1, 0},
		{"no retry policy: no retry", "plain", func() { flaky.FailNext(1, 503, "") }, "", 502, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := flaky.Seen.Load()
			tc.fail()
			began := time.Now()
			resp, body := e.sendChat(tc.model, tc.extra)
			took := time.Since(began)
			flaky.FailNext(0, 0, "")
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if seen := flaky.Seen.Load() - before; seen != tc.wantSeen {
				t.Errorf("the upstream saw %d requests, want %d", seen, tc.wantSeen)
			}
			if took < tc.minWait {
				t.Errorf("answered after %v: the upstream's Retry-After (%v) was not waited for", took, tc.minWait)
			}
			rec := e.usageFor(resp.Header.Get("X-Request-Id"))
			wantRec := tc.wantStatus
			if strings.Contains(tc.extra, "fail_after") {
				wantRec = http.StatusBadGateway // the answer began, then broke off
			}
			if rec.Status != wantRec || rec.Deployment != tc.model+"-dep" {
				t.Errorf("record: status %d by %q, want %d by %q", rec.Status, rec.Deployment, wantRec, tc.model+"-dep")
			}
		})
	}
	if m := e.metrics(); !strings.Contains(m, `llmgate_retries_total{deployment="one-dep",model="one"}`) {
		t.Errorf("no llmgate_retries_total series for the retried deployment")
	}
}

// TestRetryBudgetCapsStorm: against an upstream that always fails, retries stop once the retry
// budget (20% of requests, 100 in reserve) is spent, so a storm cannot quadruple the load.
func TestRetryBudgetCapsStorm(t *testing.T) {
	down := newSwitchable(t, mock.Options{})
	down.Down.Store(true)
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("down", down.Server.URL)},
		providers.ModelConfig{Name: "storm", Retry: providers.RetryPolicy{Retries: ptr(3), Backoff: time.Millisecond},
			Deployments: []providers.DeploymentConfig{{ID: "storm-dep", Provider: "down", Model: "m", Breaker: neverOpen}}}))
	const n = 200
	for range n {
		if resp, body := e.sendChat("storm", ""); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d (%s), want 502", resp.StatusCode, body)
		}
	}
	// Without the budget: n × 4 = 800 calls. With it: n, plus the reserve, plus 20% of n.
	if seen, most := down.Seen.Load(), int64(n+100+n/5+1); seen > most {
		t.Errorf("the upstream saw %d calls for %d requests, want at most %d", seen, n, most)
	} else if seen <= n {
		t.Errorf("the upstream saw %d calls for %d requests: nothing was retried", seen, n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestFallbackModels: once every deployment of a model failed, its fallback models are tried in
// order, and the targeted lists by cause (context window exceeded, content filtered, rate limited)
// take precedence; a request's own fault falls back on nothing. The answer names the model that
// served it (the upstream's model field, the x-llmgate-served-model header) and the usage record
// holds the requested and the served model.
func TestFallbackModels(t *testing.T) {
	primary := newSwitchable(t, mock.Options{})
	good := newSwitchable(t, mock.Options{})
	dead := newSwitchable(t, mock.Options{})
	dead.Down.Store(true)
	model := func(name, prov, upstream string) providers.ModelConfig {
		return providers.ModelConfig{Name: name, Deployments: []providers.DeploymentConfig{{ID: name + "-dep", Provider: prov, Model: upstream, Breaker: neverOpen}}}
	}
	main := providers.ModelConfig{Name: "primary", Deployments: []providers.DeploymentConfig{
		{ID: "primary-a", Provider: "primary", Model: "p", Breaker: neverOpen},
		{ID: "primary-b", Provider: "primary", Model: "p", Priority: 1, Breaker: neverOpen}},
		Fallbacks: []string{"down-too", "backup"}, ContextWindowFallbacks: []string{"big"},
		ContentFilterFallbacks: []string{"lenient"}, RateLimitFallbacks: []string{"spare"}}
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("primary", primary.Server.URL),
		openaiProvider("good", good.Server.URL), openaiProvider("dead", dead.Server.URL)},
		main, model("down-too", "dead", "d"), model("backup", "good", "backup-up"), model("big", "good", "big-up"),
		model("lenient", "good", "lenient-up"), model("spare", "good", "spare-up")))

	for _, tc := range []struct {
		name       string
		fail       func()
		wantStatus int
		wantServed string // public model
		wantUp     string // the upstream's model, as the answer's model field says
	}{
		{"every deployment fails: the chain, past a fallback that fails too", func() { primary.FailNext(2, 500, "") }, 200, "backup", "backup-up"},
		{"context window exceeded", func() {
			primary.FailNext(1, 400, `{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`)
		}, 200, "big", "big-up"},
		{"content filtered", func() {
			primary.FailNext(1, 400, `{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter"}}`)
		}, 200, "lenient", "lenient-up"},
		{"rate limited", func() { primary.FailNext(2, 429, "") }, 200, "spare", "spare-up"},
		{"a request's own fault falls back on nothing", func() { primary.FailNext(1, 400, "") }, 400, "primary", ""},
		{"no failure: the model itself", func() {}, 200, "primary", "p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fail()
			resp, body := e.sendChat("primary", "")
			primary.FailNext(0, 0, "")
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantStatus)
			}
			rec := e.usageFor(resp.Header.Get("X-Request-Id"))
			if rec.Model != "primary" || rec.ServedModel != tc.wantServed {
				t.Errorf("record: model %q served by %q, want primary served by %q", rec.Model, rec.ServedModel, tc.wantServed)
			}
			if tc.wantStatus != 200 {
				return
			}
			if h := resp.Header.Get("X-Llmgate-Served-Model"); h != tc.wantServed {
				t.Errorf("x-llmgate-served-model %q, want %q", h, tc.wantServed)
			}
			if !strings.Contains(body, `"model":"`+tc.wantUp+`"`) {
				t.Errorf("answer %s: want the upstream's model %q", body, tc.wantUp)
			}
			if rec.UpstreamModel != tc.wantUp {
				t.Errorf("record: upstream model %q, want %q", rec.UpstreamModel, tc.wantUp)
			}
		})
	}
	// A stream is served by the fallback as well, the header naming it before the first event.
	primary.FailNext(2, 503, "")
	st, err := e.client(e.key).CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: "primary",
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	primary.FailNext(0, 0, "")
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	defer st.Close()
	ch, err := st.Recv()
	if err != nil || ch.Model != "backup-up" || st.Header().Get("X-Llmgate-Served-Model") != "backup" {
		t.Errorf("stream: first chunk %+v (%v), served-model header %q; want backup-up by backup", ch, err, st.Header().Get("X-Llmgate-Served-Model"))
	}
	if m := e.metrics(); !strings.Contains(m, `llmgate_fallbacks_total{cause="context_window_exceeded",fallback="big",model="primary"} 1`) {
		t.Errorf("no llmgate_fallbacks_total series for the context window fallback")
	}
}

// TestDegradeReply: when every deployment (and fallback) of a model failed, its configured reply
// answers instead, as text or as a whole chat completion, streamed to a client that streams,
// marked by a header and finish_reason "degraded", recorded as degraded and never charged.
func TestDegradeReply(t *testing.T) {
	dead := newSwitchable(t, mock.Options{})
	dead.Down.Store(true)
	const text = "The assistant is unavailable right now; please try again in a few minutes."
	full := map[string]any{"object": "chat.completion", "choices": []any{map[string]any{"index": 0,
		"message": map[string]any{"role": "assistant", "content": "Full canned answer."}, "finish_reason": "stop"}}}
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("dead", dead.Server.URL)},
		providers.ModelConfig{Name: "degraded-text", Degrade: &providers.DegradeReply{Text: text},
			Deployments: []providers.DeploymentConfig{{ID: "dt", Provider: "dead", Model: "m"}}},
		providers.ModelConfig{Name: "degraded-full", Degrade: &providers.DegradeReply{Response: full},
			Deployments: []providers.DeploymentConfig{{ID: "df", Provider: "dead", Model: "m"}}}),
		withPrices(billing.Price{Model: "m", InputPerM: 1_000_000, OutputPerM: 2_000_000, Version: "v1"}))
	c := e.client(e.key)
	ctx := context.Background()
	req := func(model string) openai.ChatCompletionRequest {
		return openai.ChatCompletionRequest{Model: model, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	}
	check := func(t *testing.T, h http.Header, finish openai.FinishReason, content, want string) {
		t.Helper()
		if h.Get("X-Llmgate-Degraded") != "true" {
			t.Errorf("x-llmgate-degraded %q, want true", h.Get("X-Llmgate-Degraded"))
		}
		if finish != "degraded" || content != want {
			t.Errorf("answer %q (finish_reason %q), want %q (degraded)", content, finish, want)
		}
		rec := e.usageFor(h.Get("X-Request-Id"))
		if rec.ErrorType != "degraded" || rec.Status != http.StatusBadGateway {
			t.Errorf("record: status %d, error type %q; want 502 degraded", rec.Status, rec.ErrorType)
		}
		if rec.CostPicoUSD != nil || rec.PromptTokens != 0 || rec.CompletionTokens != 0 || rec.UsageSource != "" {
			t.Errorf("record charged: cost %v, tokens %d/%d, source %q", rec.CostPicoUSD, rec.PromptTokens, rec.CompletionTokens, rec.UsageSource)
		}
	}
	for _, tc := range []struct{ model, want string }{{"degraded-text", text}, {"degraded-full", "Full canned answer."}} {
		t.Run(tc.model, func(t *testing.T) {
			resp, err := c.CreateChatCompletion(ctx, req(tc.model))
			if err != nil {
				t.Fatalf("non-stream: %v", err)
			}
			check(t, resp.Header(), resp.Choices[0].FinishReason, resp.Choices[0].Message.Content, tc.want)
			if resp.Model != tc.model {
				t.Errorf("model %q, want %q", resp.Model, tc.model)
			}

			sr := req(tc.model)
			sr.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
			st, err := c.CreateChatCompletionStream(ctx, sr)
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			defer st.Close()
			var got strings.Builder
			var finish openai.FinishReason
			var usage *openai.Usage
			for {
				ch, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("stream: %v", err)
				}
				if ch.Usage != nil {
					usage = ch.Usage
				}
				for _, c := range ch.Choices {
					got.WriteString(c.Delta.Content)
					if c.FinishReason != "" {
						finish = c.FinishReason
					}
				}
			}
			check(t, st.Header(), finish, got.String(), tc.want)
			if usage == nil || usage.TotalTokens != 0 {
				t.Errorf("usage chunk %+v, want a zero one (include_usage)", usage)
			}
		})
	}
	if m := e.metrics(); !strings.Contains(m, `llmgate_degraded_total{model="degraded-text"} 2`) {
		t.Errorf("llmgate_degraded_total does not count the degraded answers")
	}
}
