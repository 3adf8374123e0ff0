package main

import (
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// audioNodeScript drives the gateway with the official OpenAI Node SDK's audio and image-edit
// calls on the model LLMGATE_MODEL: a transcription of a WAV the script makes (json, text and
// streamed), a translation, speech, and an edit with two images; then a transcription for a model
// whose only deployment is a chat-only preset. It prints one line per step.
const audioNodeScript = `
import OpenAI, { toFile } from "openai";
const client = new OpenAI({ apiKey: process.env.LLMGATE_KEY, baseURL: process.env.LLMGATE_BASE, maxRetries: 0 });
const model = process.env.LLMGATE_MODEL;
function wav(seconds, rate) {
  const data = Buffer.alloc(seconds * rate * 2, 7), h = Buffer.alloc(44);
  h.write("RIFF", 0); h.writeUInt32LE(36 + data.length, 4); h.write("WAVEfmt ", 8); h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34); h.write("data", 36); h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}
const file = () => toFile(wav(2, 8000), "hello.wav", { type: "audio/wav" });
const t = await client.audio.transcriptions.create({ model, file: await file() });
console.log(JSON.stringify({ words: t.text.split(" ").length, usage: t.usage.type }));
const text = await client.audio.transcriptions.create({ model, file: await file(), response_format: "text" });
console.log(JSON.stringify({ text: typeof text, words: text.trim().split(" ").length }));
const stream = await client.audio.transcriptions.create({ model, file: await file(), stream: true });
let deltas = "", last;
for await (const ev of stream) { if (ev.type === "transcript.text.delta") deltas += ev.delta; last = ev; }
console.log(JSON.stringify({ last: last.type, same: deltas === last.text, usage: last.usage.type }));
const tr = await client.audio.translations.create({ model, file: await file() });
console.log(JSON.stringify({ translated: tr.text.split(" ").length }));
const speech = await client.audio.speech.create({ model, input: "hello there", voice: "alloy" });
const audio = Buffer.from(await speech.arrayBuffer());
console.log(JSON.stringify({ type: speech.headers.get("content-type"), bytes: audio.length, first: String.fromCharCode(audio[0]) }));
const png = (s) => toFile(Buffer.from(s), s + ".png", { type: "image/png" });
const edit = await client.images.edit({ model, prompt: "add a hat", image: [await png("one"), await png("two")] });
console.log(JSON.stringify({ images: edit.data.length }));
try { await client.audio.transcriptions.create({ model: "chat-only", file: await file() }); console.log("chat-only answered"); }
catch (e) { console.log(JSON.stringify({ chat_only: e.status, code: e.code, param: e.param })); }
`

// The official OpenAI Node SDK's audio and image-edit calls work through the gateway: multipart
// uploads (a WAV the script makes, several images), every answer shape the SDK parses (json,
// text, a transcription stream, speech bytes), and a clear 400 for a model whose deployments
// cannot serve audio.
func TestAudioNodeSDK(t *testing.T) {
	dir := nodeSDKDir(t)
	e := newEnv(t, func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "ds", Type: "deepseek",
			BaseURL: c.Providers[0].BaseURL, APIKey: upstreamKey}})
		c.Models = append(c.Models, providers.ModelConfig{Name: "chat-only", Deployments: []providers.DeploymentConfig{{Provider: "ds", Model: "ds-model"}}},
			// The mock reports token usage and streams transcriptions for gpt-* models, as OpenAI does.
			providers.ModelConfig{Name: "transcribe", Deployments: []providers.DeploymentConfig{{Provider: c.Providers[0].Name, Model: "gpt-4o-transcribe"}}})
	})
	before := e.up.Stats().Requests
	got := runNodeScript(t, dir, "audio", audioNodeScript, "LLMGATE_KEY="+e.key, "LLMGATE_BASE="+e.baseURL, "LLMGATE_MODEL=transcribe")
	want := []string{
		`{"words":20,"usage":"tokens"}`,
		`{"text":"string","words":20}`,
		`{"last":"transcript.text.done","same":true,"usage":"tokens"}`,
		`{"translated":20}`,
		`{"type":"audio/mpeg","bytes":5120,"first":"a"}`,
		`{"images":1}`,
		`{"chat_only":400,"code":"unsupported_endpoint","param":"model"}`,
	}
	wantNodeLines(t, got, want)
	if n := e.up.Stats().Requests - before; n != 6 {
		t.Errorf("the upstream got %d requests, want 6 (none for the chat-only model)", n)
	}
}
