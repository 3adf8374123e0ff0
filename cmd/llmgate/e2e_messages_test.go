package main

import (
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// messagesNodeScript drives the gateway with the official Anthropic TypeScript SDK on the model
// LLMGATE_MODEL, as Claude Code does with ANTHROPIC_BASE_URL and a key: messages.create with a
// tool and its follow-up tool_result, the same through messages.stream, countTokens, and the
// errors of an unknown model and an unknown beta. It prints one line per step.
const messagesNodeScript = `
import Anthropic from "@anthropic-ai/sdk";
const client = new Anthropic({ apiKey: process.env.LLMGATE_KEY, baseURL: process.env.LLMGATE_ROOT, maxRetries: 0 });
const model = process.env.LLMGATE_MODEL;
const tools = [{ name: "get_weather", description: "Weather of a city", input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
const ask = [{ role: "user", content: "use get_weather: what is the weather in Paris" }];
const answer = (m) => [...ask, { role: "assistant", content: m.content }, { role: "user", content: [{ type: "tool_result", tool_use_id: m.content[0].id, content: "sunny" }] }];

const r1 = await client.messages.create({ model, max_tokens: 64, tools, messages: ask });
console.log(JSON.stringify({ type: r1.type, stop: r1.stop_reason, block: r1.content[0].type, name: r1.content[0].name, city: r1.content[0].input.city, id: r1.id.startsWith("msg_") }));
const r2 = await client.messages.create({ model, max_tokens: 64, tools, messages: answer(r1) });
console.log(JSON.stringify({ stop: r2.stop_reason, block: r2.content[0].type, words: r2.content[0].text.split(" ").length, output: r2.usage.output_tokens }));

const s1 = client.messages.stream({ model, max_tokens: 64, tools, messages: ask });
const types = [];
s1.on("streamEvent", (ev) => types.push(ev.type));
const f1 = await s1.finalMessage();
console.log(JSON.stringify({ first: types[0], last: types[types.length - 1], stop: f1.stop_reason, name: f1.content[0].name, city: f1.content[0].input.city }));
const s2 = client.messages.stream({ model, max_tokens: 64, tools, messages: answer(f1) });
let text = "";
s2.on("text", (t) => { text += t; });
const f2 = await s2.finalMessage();
console.log(JSON.stringify({ stop: f2.stop_reason, same: text === f2.content[0].text, words: text.split(" ").length }));

const count = await client.messages.countTokens({ model, tools, messages: ask });
console.log(JSON.stringify({ counted: Number.isInteger(count.input_tokens) && count.input_tokens > 0 }));

try { await client.messages.create({ model: "claude-nope", max_tokens: 8, messages: ask }); console.log("answered"); }
catch (e) { console.log(JSON.stringify({ status: e.status, type: e.error?.error?.type, notFound: e instanceof Anthropic.NotFoundError })); }
try { await client.beta.messages.create({ model, max_tokens: 8, messages: ask, betas: ["made-up-beta-2030-01-01"] }); console.log("answered"); }
catch (e) { console.log(JSON.stringify({ status: e.status, type: e.error?.error?.type })); }
`

// The official Anthropic TypeScript SDK speaks the Messages API through the gateway, configured
// as Claude Code is (the gateway's root as base URL, a gateway key): passed through to an
// Anthropic deployment ("claude-sonnet-4-5", the mock's Messages API on loopback) and translated
// for an OpenAI deployment ("claude-opus-4-1": a Claude name routed to any deployment). Tool
// calls and their results, streams, token counts and errors reach the SDK as it expects them.
func TestMessagesNodeSDK(t *testing.T) {
	dir := nodeSDKDir(t)
	e := newEnv(t, func(c *Config) {
		up := strings.TrimSuffix(c.Providers[0].BaseURL, "/v1")
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "claude", Type: "anthropic", BaseURL: up, APIKey: upstreamKey}})
		c.Models = append(c.Models,
			providers.ModelConfig{Name: "claude-sonnet-4-5", Deployments: []providers.DeploymentConfig{{Provider: "claude", Model: "claude-up"}}},
			providers.ModelConfig{Name: "claude-opus-4-1", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}})
	})
	for _, tc := range []struct {
		model    string
		upstream int64 // requests reaching the mock: a translated count_tokens does not
	}{{"claude-sonnet-4-5", 5}, {"claude-opus-4-1", 4}} {
		t.Run(tc.model, func(t *testing.T) {
			before := e.up.Stats().Requests
			got := runNodeScript(t, dir, "messages", messagesNodeScript, "LLMGATE_KEY="+e.key, "LLMGATE_ROOT="+strings.TrimSuffix(e.baseURL, "/v1"), "LLMGATE_MODEL="+tc.model)
			want := []string{
				`{"type":"message","stop":"tool_use","block":"tool_use","name":"get_weather","city":"mock","id":true}`,
				`{"stop":"end_turn","block":"text","words":20,"output":20}`,
				`{"first":"message_start","last":"message_stop","stop":"tool_use","name":"get_weather","city":"mock"}`,
				`{"stop":"end_turn","same":true,"words":20}`,
				`{"counted":true}`,
				`{"status":404,"type":"not_found_error","notFound":true}`,
				`{"status":400,"type":"invalid_request_error"}`,
			}
			wantNodeLines(t, got, want)
			if n := e.up.Stats().Requests - before; n != tc.upstream {
				t.Errorf("the upstream got %d requests, want %d (the refused ones reach none)", n, tc.upstream)
			}
		})
	}
}

// messages is a step of TestEveryAdminRouteOnBothStores: a Messages request, translated for the
// run's OpenAI deployment.
func (s *routeRun) messages(t *testing.T) {
	r := s.public(t, s.key).Must(200, "POST", "/v1/messages", `{"model":"gpt-test","max_tokens":16,"messages":[{"role":"user","content":"hello"}]}`)
	if r.JSON("type").Str != "message" || r.JSON("content.0.type").Str != "text" {
		t.Errorf("messages: %.500s", r.Body)
	}
}

// countTokens is a step of TestEveryAdminRouteOnBothStores: count_tokens, counted by the gateway
// for the run's OpenAI deployment.
func (s *routeRun) countTokens(t *testing.T) {
	r := s.public(t, s.key).Must(200, "POST", "/v1/messages/count_tokens", `{"model":"gpt-test","messages":[{"role":"user","content":"hello"}]}`)
	if r.JSON("input_tokens").Int() <= 0 {
		t.Errorf("count_tokens: %.500s", r.Body)
	}
}
