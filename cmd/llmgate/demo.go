package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/llmgate/llmgate/internal/adminclient"
)

// printDemo creates a key through the admin API (the same path `llmgate keys create` takes) and
// prints how to use it.
func printDemo(ctx context.Context, w io.Writer, a *app) error {
	cl := adminclient.New(a.adminURL, a.cfg.AdminToken)
	// The demo user is on the "pro" tier when the config has one, else on the default tier.
	tier := ""
	if _, ok := a.cfg.Quota.WithDefaults().Tiers["pro"]; ok {
		tier = "pro"
	}
	k, err := cl.CreateKey(ctx, adminclient.CreateKeyBody{Name: "demo", UserID: "demo", Tier: tier})
	if err != nil {
		return fmt.Errorf("demo: create key: %w", err)
	}
	base := a.publicURL + "/v1"
	model := a.cfg.Models[0].Name
	r := strings.NewReplacer("{BASE}", base, "{KEY}", k.Key, "{MODEL}", model, "{ADMIN}", a.adminURL,
		"{TOKEN}", a.cfg.AdminToken, "{STORE}", storeKind(a.cfg))
	_, err = io.WriteString(w, r.Replace(demoText))
	return err
}

const demoText = `
llmgate demo is running (store {STORE}; upstream: the built-in mock provider).

  API base URL  {BASE}
  API key       {KEY}
  Admin API     {ADMIN}   (Authorization: Bearer {TOKEN})
  Console       {ADMIN}/console/   (a browser; sign in with the admin token)

curl:
  curl {BASE}/chat/completions \
    -H "Authorization: Bearer {KEY}" -H "Content-Type: application/json" \
    -d '{"model":"{MODEL}","messages":[{"role":"user","content":"Hello!"}]}'

  curl -N {BASE}/chat/completions \
    -H "Authorization: Bearer {KEY}" -H "Content-Type: application/json" \
    -d '{"model":"{MODEL}","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'

Python (pip install openai):
  from openai import OpenAI
  client = OpenAI(base_url="{BASE}", api_key="{KEY}")
  print(client.chat.completions.create(model="{MODEL}", messages=[{"role": "user", "content": "Hello!"}]).choices[0].message.content)
  for chunk in client.chat.completions.create(model="{MODEL}", stream=True, messages=[{"role": "user", "content": "Hello!"}]):
      print(chunk.choices[0].delta.content or "", end="", flush=True)

Node (npm install openai; save as demo.mjs, run node demo.mjs):
  import OpenAI from "openai";
  const client = new OpenAI({ baseURL: "{BASE}", apiKey: "{KEY}" });
  const r = await client.chat.completions.create({ model: "{MODEL}", messages: [{ role: "user", content: "Hello!" }] });
  console.log(r.choices[0].message.content);
  const stream = await client.chat.completions.create({ model: "{MODEL}", stream: true, messages: [{ role: "user", content: "Hello!" }] });
  for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");

More keys, from another shell (the llmgate command: go build -o llmgate ./cmd/llmgate in the
source checkout, then ./llmgate, or go install github.com/llmgate/llmgate/cmd/llmgate@latest):
  export LLMGATE_ADMIN_URL={ADMIN} LLMGATE_ADMIN_TOKEN={TOKEN}
  llmgate keys create --name my-app

Metrics:    curl {ADMIN}/metrics
Stop with Ctrl-C.
`
