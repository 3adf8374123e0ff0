package main

import (
	"sort"
	"strings"
	"testing"
)

// azureNodeScript drives the gateway with the official OpenAI Node SDK's AzureOpenAI client, as
// an Azure user would (endpoint = the gateway, an apiVersion, the key sent as api-key): chat,
// a chat stream, embeddings, a transcription, a client fixed to one deployment whose body names
// another model, the classic Responses API, and a deployment that is no public model; then the
// plain OpenAI client on Azure's v1 form (baseURL <gateway>/openai/v1). It prints one line per
// step.
const azureNodeScript = `
import OpenAI, { AzureOpenAI, toFile } from "openai";
const endpoint = process.env.LLMGATE_ROOT, apiKey = process.env.LLMGATE_KEY, model = process.env.LLMGATE_MODEL;
const apiVersion = "2024-10-21";
const messages = [{ role: "user", content: "hello there" }];
const az = new AzureOpenAI({ endpoint, apiKey, apiVersion, maxRetries: 0 });
const chat = await az.chat.completions.create({ model, messages });
console.log(JSON.stringify({ object: chat.object, words: chat.choices[0].message.content.split(" ").length }));
const stream = await az.chat.completions.create({ model, messages, stream: true });
let text = "";
for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
console.log(JSON.stringify({ streamed: text.split(" ").length }));
const emb = await az.embeddings.create({ model, input: ["a", "b"] });
console.log(JSON.stringify({ embeddings: emb.data.length, dims: emb.data[0].embedding.length > 0 }));
const wav = Buffer.alloc(16044, 7);
const tr = await az.audio.transcriptions.create({ model, file: await toFile(wav, "a.wav", { type: "audio/wav" }) });
console.log(JSON.stringify({ transcribed: tr.text.length > 0 }));
const fixed = new AzureOpenAI({ endpoint, apiKey, apiVersion, deployment: model, maxRetries: 0 });
const other = await fixed.chat.completions.create({ model: "not-a-model", messages });
console.log(JSON.stringify({ fixed: other.choices.length }));
const resp = await az.responses.create({ model, input: "hello" });
console.log(JSON.stringify({ response: resp.object, status: resp.status }));
try { await az.chat.completions.create({ model: "nope", messages }); console.log("nope answered"); }
catch (e) { console.log(JSON.stringify({ unknown: e.status, code: e.code, param: e.param })); }
const v1 = new OpenAI({ apiKey, baseURL: endpoint + "/openai/v1", maxRetries: 0 });
const c = await v1.chat.completions.create({ model, messages });
const r = await v1.responses.create({ model, input: "hello" });
const got = await v1.responses.retrieve(r.id);
const models = await v1.models.list();
console.log(JSON.stringify({ v1_chat: c.choices[0].message.content.split(" ").length, v1_response: got.id === r.id, listed: models.data.some((m) => m.id === model) }));
`

// The official OpenAI Node SDK's AzureOpenAI client works against the gateway unchanged, and so
// does the plain client on Azure's v1 form; each call leaves one usage record under the public
// model with the endpoint /v1 gives it.
func TestAzureNodeSDK(t *testing.T) {
	dir := nodeSDKDir(t)
	e := newEnv(t)
	k := e.newKey(createKeyBody{Name: "azure sdk"})
	before := e.up.Stats().Requests
	got := runNodeScript(t, dir, "azure", azureNodeScript, "LLMGATE_KEY="+k.Key, "LLMGATE_ROOT="+e.app.publicURL, "LLMGATE_MODEL=gpt-test")
	want := []string{
		`{"object":"chat.completion","words":20}`,
		`{"streamed":20}`,
		`{"embeddings":2,"dims":true}`,
		`{"transcribed":true}`,
		`{"fixed":1}`,
		`{"response":"response","status":"completed"}`,
		`{"unknown":404,"code":"model_not_found","param":"model"}`,
		`{"v1_chat":20,"v1_response":true,"listed":true}`,
	}
	wantNodeLines(t, got, want)
	// Every call but the unknown deployment and the model list reached the upstream once.
	if n := e.up.Stats().Requests - before; n != 9 {
		t.Errorf("the upstream got %d requests, want 9", n)
	}
	// One record per call, under the public model and the endpoint /v1 gives it (the model list's
	// has no model, as on /v1).
	var seen []string
	for _, r := range e.waitRecords(k.ID, 11) {
		seen = append(seen, r.Model+" "+r.Endpoint+" "+map[bool]string{true: "stream", false: "whole"}[r.Stream])
	}
	sort.Strings(seen)
	wantRecs := []string{
		" models whole",
		"gpt-test audio/transcriptions whole",
		"gpt-test chat/completions stream",
		"gpt-test chat/completions whole",
		"gpt-test chat/completions whole",
		"gpt-test chat/completions whole",
		"gpt-test embeddings whole",
		"gpt-test responses whole",
		"gpt-test responses whole",
		"gpt-test responses whole",
		"nope chat/completions whole",
	}
	if strings.Join(seen, "\n") != strings.Join(wantRecs, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(wantRecs, "\n"))
	}
}
