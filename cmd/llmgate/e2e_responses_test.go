package main

import (
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// responsesNodeScript drives the gateway with the official OpenAI Node SDK's Responses API on the
// model LLMGATE_MODEL: a create with a function tool, a streamed follow-up through
// previous_response_id, a follow-up with the stream helper, retrieve, a streamed retrieve resumed
// after event 2, and delete; then a built-in
// tool for a model whose only deployment is a chat-only preset. It prints one line per step.
const responsesNodeScript = `
import OpenAI from "openai";
const client = new OpenAI({ apiKey: process.env.LLMGATE_KEY, baseURL: process.env.LLMGATE_BASE, maxRetries: 0 });
const tools = [{ type: "function", name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } }];
const r1 = await client.responses.create({ model: process.env.LLMGATE_MODEL, input: "hello there", tools, max_output_tokens: 50 });
console.log(JSON.stringify({ object: r1.object, status: r1.status, words: r1.output_text.split(" ").length, tokens: r1.usage.output_tokens }));
const stream = await client.responses.create({ model: process.env.LLMGATE_MODEL, input: "and then?", previous_response_id: r1.id, stream: true });
let text = "", types = [], final;
for await (const ev of stream) {
  types.push(ev.type);
  if (ev.type === "response.output_text.delta") text += ev.delta;
  if (ev.type === "response.completed") final = ev.response;
}
console.log(JSON.stringify({ first: types[0], last: types[types.length - 1], same: text === final.output[0].content[0].text, prev: final.previous_response_id === r1.id }));
const helper = await client.responses.stream({ model: process.env.LLMGATE_MODEL, input: "more", previous_response_id: final.id }).finalResponse();
console.log(JSON.stringify({ words: helper.output[0].content[0].text.split(" ").length }));
const got = await client.responses.retrieve(final.id);
console.log(JSON.stringify({ retrieved: got.id === final.id }));
const resumed = await client.responses.retrieve(final.id, { stream: true, starting_after: 2 });
let seqs = [], rtext = "", rlast;
for await (const ev of resumed) {
  seqs.push(ev.sequence_number);
  rlast = ev.type;
  if (ev.type === "response.output_text.delta") rtext += ev.delta;
}
console.log(JSON.stringify({ resumed_from: seqs[0], last: rlast, same: rtext === final.output[0].content[0].text }));
await client.responses.delete(final.id);
try { await client.responses.retrieve(final.id); console.log("still there"); } catch (e) { console.log(JSON.stringify({ after_delete: e.status, code: e.code })); }
try { await client.responses.create({ model: "chat-only", input: "x", tools: [{ type: "web_search" }] }); console.log("web_search answered"); } catch (e) { console.log(JSON.stringify({ web_search: e.status, code: e.code, param: e.param })); }
`

// The official OpenAI Node SDK speaks the Responses API through the gateway, relayed to an
// OpenAI-type deployment and translated for a chat-only preset (the binary marks them so): answers
// and events as the SDK expects them, follow-ups (on the deployment that holds the response, or
// from the conversation the gateway keeps), retrieve and delete, and a clear 400 for a built-in
// tool the chat-only deployment lacks.
func TestResponsesNodeSDK(t *testing.T) {
	dir := nodeSDKDir(t)
	e := newEnv(t, func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "ds", Type: "deepseek",
			BaseURL: c.Providers[0].BaseURL, APIKey: upstreamKey}})
		c.Models = append(c.Models, providers.ModelConfig{Name: "chat-only", Deployments: []providers.DeploymentConfig{{Provider: "ds", Model: "ds-model"}}})
	})
	for _, tc := range []struct {
		model    string
		upstream int64 // requests reaching the mock: retrieve, resume and delete of a translated response do not
	}{{"gpt-test", 6}, {"chat-only", 3}} {
		t.Run(tc.model, func(t *testing.T) { runResponsesNodeScript(t, e, dir, tc.model, tc.upstream) })
	}
}

func runResponsesNodeScript(t *testing.T, e *env, dir, model string, upstream int64) {
	before := e.up.Stats().Requests
	got := runNodeScript(t, dir, "responses", responsesNodeScript, "LLMGATE_KEY="+e.key, "LLMGATE_BASE="+e.baseURL, "LLMGATE_MODEL="+model)
	want := []string{
		`{"object":"response","status":"completed","words":20,"tokens":20}`,
		`{"first":"response.created","last":"response.completed","same":true,"prev":true}`,
		`{"words":20}`,
		`{"retrieved":true}`,
		`{"resumed_from":3,"last":"response.completed","same":true}`,
		`{"after_delete":404,"code":"response_not_found"}`,
		`{"web_search":400,"code":"unsupported_value","param":"tools[0].type"}`,
	}
	wantNodeLines(t, got, want)
	// create, stream, helper (and retrieve, resume, delete when relayed); the refused web_search never
	// reached an upstream.
	if n := e.up.Stats().Requests - before; n != upstream {
		t.Errorf("the upstream got %d requests, want %d", n, upstream)
	}
}
