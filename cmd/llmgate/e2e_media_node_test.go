package main

import (
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
)

// mediaNodeScript drives the gateway with the official OpenAI Node SDK's images and moderations
// calls: two images of dall-e-3, a GPT image model's answer with its usage, the same streamed
// with partial images, a moderation of two
// inputs with the SDK's default model (the body names none), and one naming a model. It prints
// one line per call.
const mediaNodeScript = `
import OpenAI from "openai";
const client = new OpenAI({ apiKey: process.env.LLMGATE_KEY, baseURL: process.env.LLMGATE_BASE, maxRetries: 0 });
const img = await client.images.generate({ model: "image-model", prompt: "a lighthouse at dusk", n: 2, size: "1024x1024", response_format: "b64_json" });
console.log(JSON.stringify({ images: img.data.length, b64: img.data.every((d) => d.b64_json.length > 0), created: img.created > 0 }));
const tok = await client.images.generate({ model: "token-image", prompt: "one two three", quality: "low" });
console.log(JSON.stringify({ images: tok.data.length, input: tok.usage.input_tokens, output: tok.usage.output_tokens }));
const streamed = await client.images.generate({ model: "token-image", prompt: "one two three", quality: "low", stream: true, partial_images: 2 });
const events = [];
let streamUsage;
for await (const ev of streamed) {
  events.push(ev.type);
  if (ev.usage) streamUsage = ev.usage;
}
console.log(JSON.stringify({ events, output: streamUsage.output_tokens }));
const dflt = await client.moderations.create({ input: ["hello there", "I will hurt you, violence"] });
console.log(JSON.stringify({ model: dflt.model, results: dflt.results.map((r) => r.flagged), violence: dflt.results[1].categories.violence }));
const named = await client.moderations.create({ model: "omni-moderation-latest", input: "a calm sea" });
console.log(JSON.stringify({ model: named.model, flagged: named.results[0].flagged }));
`

// The official OpenAI Node SDK generates images and moderates text through the gateway, relayed
// to an OpenAI-type deployment: the answers as the SDK expects them, the SDK's default
// moderations call (no model) served by the configured omni-moderation-latest, and one record
// per call, priced per image or by the image tokens.
func TestMediaNodeSDK(t *testing.T) {
	dir := nodeSDKDir(t)
	e := newEnv(t, func(c *Config) {
		dep := func(model string) []providers.DeploymentConfig {
			return []providers.DeploymentConfig{{Provider: "up", Model: model}}
		}
		c.Models = append(c.Models,
			providers.ModelConfig{Name: "image-model", Deployments: dep("dall-e-3")},
			providers.ModelConfig{Name: "token-image", Deployments: dep("gpt-image-1")},
			providers.ModelConfig{Name: "omni-moderation-latest", Deployments: dep("omni-moderation-latest")})
	})
	if s := e.adminSend("PUT", "/admin/pricing/dall-e-3", `{"image":{"1024x1024":"0.04"}}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing/dall-e-3: %d", s)
	}
	if s := e.adminSend("PUT", "/admin/pricing/gpt-image-1", `{"input_per_million":5,"output_per_million":40}`, nil); s != 200 {
		t.Fatalf("PUT /admin/pricing/gpt-image-1: %d", s)
	}
	waitFor(t, 5*time.Second, "the prices", func() bool {
		_, a := e.app.gateway.Prices().Lookup("dall-e-3")
		_, b := e.app.gateway.Prices().Lookup("gpt-image-1")
		return a && b
	})
	k := e.newKey(createKeyBody{Name: "node"})
	got := runNodeScript(t, dir, "media", mediaNodeScript, "LLMGATE_KEY="+k.Key, "LLMGATE_BASE="+e.baseURL)
	want := []string{
		`{"images":2,"b64":true,"created":true}`,
		// the mock: input tokens are the prompt's words, output OpenAI's 272 per low image at 1024²
		`{"images":1,"input":3,"output":272}`,
		`{"events":["image_generation.partial_image","image_generation.partial_image","image_generation.completed"],"output":272}`,
		`{"model":"omni-moderation-latest","results":[false,true],"violence":true}`,
		`{"model":"omni-moderation-latest","flagged":false}`,
	}
	wantNodeLines(t, got, want)
	if n := e.up.Stats().Requests; n != 5 {
		t.Errorf("the upstream got %d requests, want 5", n)
	}
	// One record per call, with its endpoint, units and cost.
	recs := e.waitRecords(k.ID, 5)
	costs := map[string]string{}
	for _, r := range recs {
		c := "none"
		if r.CostPicoUSD != nil {
			c = billing.FormatPico64(*r.CostPicoUSD)
		}
		costs[r.Endpoint+" "+r.Model] += c + ";"
	}
	wantCosts := map[string]string{
		"images/generations image-model":     "0.08;",                                                                 // 2 × $0.04
		"images/generations token-image":     strings.Repeat(billing.FormatPico64(3*5_000_000+272*40_000_000)+";", 2), // tokens at $5 / $40 per 1M, whole and streamed
		"moderations omni-moderation-latest": "0;0;",                                                                  // unpriced: free
	}
	for k, v := range wantCosts {
		if costs[k] != v {
			t.Errorf("%s: costs %q, want %q (all: %v)", k, costs[k], v, costs)
		}
	}
}
