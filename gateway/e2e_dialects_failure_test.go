package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// dialectSend posts body to a path of the gateway's root (/v1/responses, /v1/messages, an Azure
// path) with the key as the dialect's SDK sends it, and returns the answer and its body.
func (e *env) dialectSend(path, body string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(path, "/v1/messages"):
		req.Header.Set("X-Api-Key", e.key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	case strings.HasPrefix(path, "/openai/"):
		req.Header.Set("Api-Key", e.key)
	default:
		req.Header.Set("Authorization", "Bearer "+e.key)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// sseData returns the data of each event of an SSE body, and the event names.
func sseData(body string) (names []string, data []gjson.Result) {
	for _, block := range strings.Split(body, "\n\n") {
		for _, line := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				names = append(names, v)
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && v != "[DONE]" {
				data = append(data, gjson.Parse(v))
			}
		}
	}
	return names, data
}

// TestDialectsFallBackAndDegrade: the Responses API (translated for a chat-only deployment and
// passthrough), the Anthropic Messages API and the Azure paths share the one request path, so a
// model whose deployments all fail falls back on its fallback model for them too, and a model
// with a degrade reply answers with it in the dialect's own shape, as that dialect's event
// stream when the client streams; recorded as degraded, never charged.
func TestDialectsFallBackAndDegrade(t *testing.T) {
	dead := newSwitchable(t, mock.Options{})
	dead.Down.Store(true)
	good := newSwitchable(t, mock.Options{})
	const sorry = "Unavailable right now; try again soon."
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("dead", dead.Server.URL), openaiProvider("good", good.Server.URL),
		chatOnlyProvider("seek", good.Server.URL, "")},
		providers.ModelConfig{Name: "to-chat", Fallbacks: []string{"chat-only"},
			Deployments: []providers.DeploymentConfig{{ID: "to-chat-dep", Provider: "dead", Model: "p", Breaker: neverOpen}}},
		providers.ModelConfig{Name: "chat-only", Deployments: []providers.DeploymentConfig{{ID: "chat-only-dep", Provider: "seek", Model: "backup-up"}}},
		providers.ModelConfig{Name: "primary", Fallbacks: []string{"backup"},
			Deployments: []providers.DeploymentConfig{{ID: "primary-dep", Provider: "dead", Model: "p", Breaker: neverOpen}}},
		providers.ModelConfig{Name: "backup", Deployments: []providers.DeploymentConfig{{ID: "backup-dep", Provider: "good", Model: "backup-up"}}},
		providers.ModelConfig{Name: "sorry", Degrade: &providers.DegradeReply{Text: sorry},
			Deployments: []providers.DeploymentConfig{{ID: "sorry-dep", Provider: "dead", Model: "s", Breaker: neverOpen}}}))

	const v = "?api-version=2024-10-21"
	t.Run("fallbacks", func(t *testing.T) {
		for _, tc := range []struct{ name, path, body, want string }{
			{"responses, translated for a chat-only fallback", "/v1/responses", `{"model":"to-chat","input":"hi"}`, `"object":"response"`},
			{"responses", "/v1/responses", `{"model":"primary","input":"hi"}`, "output"},
			{"responses, a stream", "/v1/responses", `{"model":"primary","input":"hi","stream":true}`, "response.completed"},
			{"messages", "/v1/messages", `{"model":"primary","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`, `"type":"message"`},
			{"azure chat", "/openai/deployments/primary/chat/completions" + v, `{"messages":[{"role":"user","content":"hi"}]}`, "chat.completion"},
			{"azure v1 responses", "/openai/v1/responses", `{"model":"primary","input":"hi"}`, "output"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := e.dialectSend(tc.path, tc.body)
				if resp.StatusCode != 200 || !strings.Contains(body, tc.want) {
					t.Fatalf("status %d (%.400s), want 200 with %s", resp.StatusCode, body, tc.want)
				}
				model, served := gjson.Get(tc.body, "model").Str, "backup"
				if model == "to-chat" {
					served = "chat-only"
				} else if model == "" { // an Azure deployment path names the model
					model = "primary"
				}
				if h := resp.Header.Get("X-Llmgate-Served-Model"); h != served {
					t.Errorf("x-llmgate-served-model %q, want %s", h, served)
				}
				rec := e.usageFor(resp.Header.Get("X-Request-Id"))
				if rec.Model != model || rec.ServedModel != served || rec.UpstreamModel != "backup-up" {
					t.Errorf("record: model %q served by %q (%q), want %s served by %s", rec.Model, rec.ServedModel, rec.UpstreamModel, model, served)
				}
			})
		}
	})

	t.Run("degrade", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, body string
			check            func(t *testing.T, body string)
		}{
			{"responses", "/v1/responses", `{"model":"sorry","input":"hi"}`, func(t *testing.T, body string) {
				r := gjson.Parse(body)
				if r.Get("object").Str != "response" || r.Get("status").Str != "completed" || r.Get("output.0.content.0.text").Str != sorry || r.Get("model").Str != "sorry" {
					t.Errorf("degrade Response: %s", body)
				}
			}},
			{"responses, a stream", "/v1/responses", `{"model":"sorry","input":"hi","stream":true}`, func(t *testing.T, body string) {
				names, data := sseData(body)
				if len(names) < 3 || names[0] != "response.created" || names[len(names)-1] != "response.completed" {
					t.Fatalf("degrade Response stream events %v", names)
				}
				var text strings.Builder
				for _, d := range data {
					if d.Get("type").Str == "response.output_text.delta" {
						text.WriteString(d.Get("delta").Str)
					}
				}
				if text.String() != sorry || data[len(data)-1].Get("response.output.0.content.0.text").Str != sorry {
					t.Errorf("degrade Response stream text %q: %s", text.String(), body)
				}
			}},
			{"messages", "/v1/messages", `{"model":"sorry","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`, func(t *testing.T, body string) {
				m := gjson.Parse(body)
				if m.Get("type").Str != "message" || m.Get("role").Str != "assistant" || m.Get("content.0.type").Str != "text" ||
					m.Get("content.0.text").Str != sorry || m.Get("stop_reason").Str != "degraded" {
					t.Errorf("degrade Message: %s", body)
				}
			}},
			{"messages, a stream", "/v1/messages", `{"model":"sorry","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, func(t *testing.T, body string) {
				names, data := sseData(body)
				want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
				if strings.Join(names, " ") != strings.Join(want, " ") {
					t.Fatalf("degrade Message stream events %v, want %v", names, want)
				}
				if data[2].Get("delta.text").Str != sorry || data[4].Get("delta.stop_reason").Str != "degraded" {
					t.Errorf("degrade Message stream: %s", body)
				}
			}},
			{"azure chat", "/openai/deployments/sorry/chat/completions" + v, `{"messages":[{"role":"user","content":"hi"}]}`, func(t *testing.T, body string) {
				c := gjson.Parse(body)
				if c.Get("choices.0.message.content").Str != sorry || c.Get("choices.0.finish_reason").Str != "degraded" {
					t.Errorf("degrade chat completion: %s", body)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := e.dialectSend(tc.path, tc.body)
				if resp.StatusCode != 200 || resp.Header.Get("X-Llmgate-Degraded") != "true" {
					t.Fatalf("status %d, x-llmgate-degraded %q (%.400s); want a 200 degrade reply", resp.StatusCode, resp.Header.Get("X-Llmgate-Degraded"), body)
				}
				tc.check(t, body)
				rec := e.usageFor(resp.Header.Get("X-Request-Id"))
				if rec.ErrorType != "degraded" || rec.Status != http.StatusBadGateway || rec.CostPicoUSD != nil || rec.PromptTokens != 0 || rec.UsageSource != "" {
					t.Errorf("record: status %d, error type %q, cost %v, tokens %d, source %q; want 502 degraded, uncharged",
						rec.Status, rec.ErrorType, rec.CostPicoUSD, rec.PromptTokens, rec.UsageSource)
				}
			})
		}
	})
}
