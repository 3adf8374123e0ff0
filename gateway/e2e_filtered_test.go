package gateway_test

import (
	"strings"
	"testing"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/mock"
)

// TestContentFilteredAnswerFallsBack: a whole answer that the provider's content filter ended
// (an OpenAI finish_reason content_filter, an Anthropic stop_reason refusal as the adapter maps
// it) goes to the model's content-filter fallback when it has one; the record holds the served
// attempt's model and usage. Without such a fallback, or when the fallback fails too, the
// filtered answer is the answer, as the upstream sent it.
func TestContentFilteredAnswerFallsBack(t *testing.T) {
	primary := newSwitchable(t, mock.Options{})
	claude := newSwitchable(t, mock.Options{})
	good := newSwitchable(t, mock.Options{})
	dead := newSwitchable(t, mock.Options{})
	dead.Down.Store(true)
	ap, err := anthropic.New(anthropic.Options{BaseURL: claude.Server.URL, Outbound: loopback})
	model := func(name, prov, upstream string, filterFallbacks ...string) providers.ModelConfig {
		return providers.ModelConfig{Name: name, ContentFilterFallbacks: filterFallbacks,
			Deployments: []providers.DeploymentConfig{{ID: name + "-dep", Provider: prov, Model: upstream, Breaker: neverOpen}}}
	}
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("primary", primary.Server.URL), {"claude", ap, err},
		openaiProvider("good", good.Server.URL), openaiProvider("dead", dead.Server.URL)},
		model("guarded", "primary", "p", "lenient"), model("claude", "claude", "claude-up", "lenient"),
		model("unguarded", "primary", "p"), model("hopeless", "primary", "p", "down"),
		model("lenient", "good", "lenient-up"), model("down", "dead", "d")))

	const filtered = `{"id":"chatcmpl-f","object":"chat.completion","created":1,"model":"p","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}}`
	const refusal = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-up","content":[],` +
		`"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":0}}`
	for _, tc := range []struct {
		name, model string
		up          *gatewaytest.Switchable
		body        string
		wantServed  string
		wantFinish  string
	}{
		{"finish_reason content_filter", "guarded", primary, filtered, "lenient", `"finish_reason":"stop"`},
		{"an Anthropic refusal", "claude", claude, refusal, "lenient", `"finish_reason":"stop"`},
		{"no content-filter fallback: relayed", "unguarded", primary, filtered, "unguarded", `"finish_reason":"content_filter"`},
		{"the fallback fails too: the filtered answer", "hopeless", primary, filtered, "hopeless", `"finish_reason":"content_filter"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.up.FailNext(1, 200, tc.body)
			resp, body := e.sendChat(tc.model, "")
			tc.up.FailNext(0, 0, "")
			if resp.StatusCode != 200 || !strings.Contains(body, tc.wantFinish) {
				t.Fatalf("status %d (%s), want 200 with %s", resp.StatusCode, body, tc.wantFinish)
			}
			if h := resp.Header.Get("X-Llmgate-Served-Model"); h != tc.wantServed {
				t.Errorf("x-llmgate-served-model %q, want %q", h, tc.wantServed)
			}
			rec := e.usageFor(resp.Header.Get("X-Request-Id"))
			if rec.Model != tc.model || rec.ServedModel != tc.wantServed || rec.Status != 200 {
				t.Errorf("record: %d, model %q served by %q; want 200, %q served by %q", rec.Status, rec.Model, rec.ServedModel, tc.model, tc.wantServed)
			}
			if tc.wantServed == "lenient" && (rec.UpstreamModel != "lenient-up" || rec.PromptTokens == 7) {
				t.Errorf("record: upstream model %q, prompt tokens %d; want the served attempt's", rec.UpstreamModel, rec.PromptTokens)
			}
			if tc.wantServed != "lenient" && rec.PromptTokens != 7 {
				t.Errorf("record: prompt tokens %d, want the filtered answer's 7", rec.PromptTokens)
			}
		})
	}
	// The Messages API, relayed as it is to the Anthropic deployment: its refusal goes to the
	// fallback too, whose chat answer the front turns into a Message.
	claude.FailNext(1, 200, refusal)
	resp, body := e.dialectSend("/v1/messages", `{"model":"claude","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`)
	claude.FailNext(0, 0, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"type":"message"`) || strings.Contains(body, "refusal") ||
		resp.Header.Get("X-Llmgate-Served-Model") != "lenient" {
		t.Errorf("messages: status %d, served by %q: %s; want a Message served by lenient", resp.StatusCode, resp.Header.Get("X-Llmgate-Served-Model"), body)
	}
	if m := e.metrics(); !strings.Contains(m, `llmgate_fallbacks_total{cause="content_filtered",fallback="lenient",model="guarded"} 1`) {
		t.Errorf("no llmgate_fallbacks_total series for the filtered answer's fallback")
	}
}
