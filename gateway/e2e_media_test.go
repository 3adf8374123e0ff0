package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	openaiprov "github.com/llmgate/llmgate/providers/openai"
)

// mediaEnv is an env with an OpenAI deployment that serves images and moderations (a mock
// upstream of its own), beside the harness's chat-only "chatup" provider:
//
//	image-model  → media/dall-e-3 (priced per image)
//	token-image  → media/gpt-image-1 (priced by the tokens the answer reports)
//	omni-moderation-latest → media/omni-moderation-latest (unpriced: free)
//	chat-only    → chatup/chat-model (a provider that serves chat alone)
//	mixed        → chatup/chat-model (chat-only, first by priority) and media/dall-e-3
//	image-failover → deadmedia/dall-e-3 (nothing listens), then media/dall-e-3
//	whisper      → media/whisper-1 (priced per second of audio)
//	transcribe   → media/gpt-4o-transcribe (priced by tokens)
//	tts          → media/tts-1 (priced per 1M characters)
//	tts-tokens   → media/gpt-4o-mini-tts (priced by tokens)
//	whisper-failover → errmedia/whisper-1 (answers 500 to everything), then media/whisper-1
func mediaEnv(t *testing.T, opts ...envOption) (*env, *mock.Handler) {
	t.Helper()
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	p, err := openaiprov.New(openaiprov.Options{BaseURL: srv.URL + "/v1", APIKey: upstreamKey, Outbound: loopback,
		Media: openaiprov.MediaEndpoints("openai")})
	dead, derr := openaiprov.New(openaiprov.Options{BaseURL: "http://127.0.0.1:1/v1", APIKey: upstreamKey, Outbound: loopback,
		Media: openaiprov.MediaEndpoints("openai")})
	errUp := httptest.NewServer(mock.NewHandler(mock.Options{RequireKey: upstreamKey, ErrorRate: 1}))
	t.Cleanup(errUp.Close)
	failing, ferr := openaiprov.New(openaiprov.Options{BaseURL: errUp.URL + "/v1", APIKey: upstreamKey, Outbound: loopback,
		Media: openaiprov.MediaEndpoints("openai")})
	dep := func(model string) []providers.DeploymentConfig {
		return []providers.DeploymentConfig{{Provider: "media", Model: model}}
	}
	opts = append([]envOption{withRouting([]namedProvider{{"media", p, err}, {"deadmedia", dead, derr}, {"errmedia", failing, ferr}},
		providers.ModelConfig{Name: "image-failover", Deployments: []providers.DeploymentConfig{
			{Provider: "deadmedia", Model: "dall-e-3", Priority: 0}, {Provider: "media", Model: "dall-e-3", Priority: 1}}},
		providers.ModelConfig{Name: "image-model", Deployments: dep("dall-e-3")},
		providers.ModelConfig{Name: "token-image", Deployments: dep("gpt-image-1")},
		providers.ModelConfig{Name: "omni-moderation-latest", Deployments: dep("omni-moderation-latest")},
		providers.ModelConfig{Name: "whisper", Deployments: dep("whisper-1")},
		providers.ModelConfig{Name: "transcribe", Deployments: dep("gpt-4o-transcribe")},
		providers.ModelConfig{Name: "tts", Deployments: dep("tts-1")},
		providers.ModelConfig{Name: "tts-tokens", Deployments: dep("gpt-4o-mini-tts")},
		providers.ModelConfig{Name: "whisper-failover", Deployments: []providers.DeploymentConfig{
			{Provider: "errmedia", Model: "whisper-1", Priority: 0}, {Provider: "media", Model: "whisper-1", Priority: 1}}},
		providers.ModelConfig{Name: "chat-only", Deployments: []providers.DeploymentConfig{{Provider: "chatup", Model: "chat-model"}}},
		providers.ModelConfig{Name: "mixed", Deployments: []providers.DeploymentConfig{
			{Provider: "chatup", Model: "chat-model", Priority: 0}, {Provider: "media", Model: "dall-e-3", Priority: 1}}},
	), withPrices(
		billing.Price{Model: "dall-e-3", Images: map[string]int64{"1024x1024": 40_000, "hd/1024x1024": 80_000}},
		billing.Price{Model: "gpt-image-1", InputPerM: 5_000_000, OutputPerM: 40_000_000, Images: map[string]int64{"default": 1}},
		billing.Price{Model: "whisper-1", AudioSecond: 100},
		billing.Price{Model: "gpt-4o-transcribe", InputPerM: 2_500_000, OutputPerM: 10_000_000, AudioSecond: 100},
		billing.Price{Model: "tts-1", CharactersPerM: 15_000_000},
		billing.Price{Model: "gpt-4o-mini-tts", InputPerM: 600_000, OutputPerM: 12_000_000, CharactersPerM: 15_000_000},
	)}, opts...)
	return newEnv(t, opts...), up
}

// mediaPost sends a body to a public path and returns the status, the body and the request id.
func (e *env) mediaPost(path, key, body string) (int, string, string) {
	e.t.Helper()
	resp := e.post(context.Background(), path, key, []byte(body))
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("X-Request-Id")
}

// TestImagesGenerationsPricedPerImage: two images of a size-specific price are relayed in
// OpenAI's shape and recorded once, as images/generations, with 2 units of "image" and exactly
// 2 × $0.08.
func TestImagesGenerationsPricedPerImage(t *testing.T) {
	e, up := mediaEnv(t)
	status, body, id := e.mediaPost("/images/generations", e.key,
		`{"model":"image-model","prompt":"a lighthouse at dusk","n":2,"size":"1024x1024","quality":"hd","response_format":"b64_json"}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	if n := len(gjson.Get(body, "data").Array()); n != 2 || gjson.Get(body, "data.0.b64_json").String() == "" || gjson.Get(body, "created").Int() == 0 {
		t.Errorf("answer: %s", body)
	}
	if got := up.Requests(1); len(got) != 1 || got[0].Path != "/v1/images/generations" || gjson.Get(got[0].Body, "model").String() != "dall-e-3" {
		t.Errorf("upstream saw %+v", got)
	}
	r := e.usageFor(id)
	if r.Endpoint != "images/generations" || r.Units != 2 || r.Unit != "image" || r.Status != 200 || r.Deployment != "media/dall-e-3" {
		t.Errorf("record: %+v", r)
	}
	if r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != "0.16" {
		t.Errorf("cost %v, want 0.16 (2 × hd/1024x1024 at 0.08)", r.CostPicoUSD)
	}
}

// TestImagesGenerationsPricedByTokens: a GPT image model's answer reports token usage, which the
// model's token prices bill (its per-image price does not apply).
func TestImagesGenerationsPricedByTokens(t *testing.T) {
	e, _ := mediaEnv(t)
	status, body, id := e.mediaPost("/images/generations", e.key, `{"model":"token-image","prompt":"one two three","quality":"high"}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	in, out := gjson.Get(body, "usage.input_tokens").Int(), gjson.Get(body, "usage.output_tokens").Int()
	if in == 0 || out == 0 {
		t.Fatalf("the mock's answer has no usage: %s", body)
	}
	r := e.usageFor(id)
	if r.UsageSource != "provider" || r.PromptTokens != in || r.CompletionTokens != out || r.Units != 1 || r.Unit != "image" {
		t.Errorf("record: %+v; want %d/%d tokens from the provider, 1 image", r, in, out)
	}
	want := billing.FormatPico64(in*5_000_000 + out*40_000_000)
	if r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != want {
		t.Errorf("cost %v, want %s", r.CostPicoUSD, want)
	}
}

// TestModerationsDefaultModel: the SDK's default call has no model; the gateway routes it as
// OpenAI's default, omni-moderation-latest, and writes that model into the upstream body. The
// record has no price and is free.
func TestModerationsDefaultModel(t *testing.T) {
	e, up := mediaEnv(t)
	status, body, id := e.mediaPost("/moderations", e.key, `{"input":["hello there","I will hurt you, violence"]}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	res := gjson.Get(body, "results").Array()
	if len(res) != 2 || res[0].Get("flagged").Bool() || !res[1].Get("flagged").Bool() || !res[1].Get("categories.violence").Bool() ||
		!res[0].Get("category_scores.harassment").Exists() {
		t.Errorf("answer: %s", body)
	}
	if got := up.Requests(1); len(got) != 1 || got[0].Path != "/v1/moderations" || gjson.Get(got[0].Body, "model").String() != "omni-moderation-latest" {
		t.Errorf("upstream saw %+v", got)
	}
	r := e.usageFor(id)
	if r.Endpoint != "moderations" || r.Model != "omni-moderation-latest" || r.Status != 200 || r.CostPicoUSD == nil || *r.CostPicoUSD != 0 {
		t.Errorf("record: %+v (cost %v); want a free moderations record", r, r.CostPicoUSD)
	}
	// A model the key may not use is refused as on chat.
	k := e.newKey(keySpec{Name: "chat only", Models: []string{"gpt-test"}})
	if status, body, _ := e.mediaPost("/moderations", k.Key, `{"input":"hi"}`); status != http.StatusForbidden {
		t.Errorf("key without the model: HTTP %d %s", status, body)
	}
}

// TestMediaOnChatOnlyDeployment: a model whose deployments cannot serve the endpoint is a 400
// before any upstream call and before quota is consumed; a model with a capable deployment among
// others routes to it alone; a stream that is not a boolean is a clear 400; a malformed n too.
func TestMediaOnChatOnlyDeployment(t *testing.T) {
	e, media := mediaEnv(t)
	k := e.newKey(keySpec{Name: "tiny", UserID: "tiny-user", Tier: "tiny"}) // 2 requests a minute
	before := e.up.Stats().Requests
	for i, c := range []struct{ path, body, param string }{
		{"/images/generations", `{"model":"chat-only","prompt":"x"}`, "model"},
		{"/moderations", `{"model":"chat-only","input":"x"}`, "model"},
		{"/images/generations", `{"model":"image-model","prompt":"x","stream":"yes"}`, "stream"},
		{"/images/generations", `{"model":"image-model","prompt":"x","n":0}`, "n"},
		{"/images/generations", `{"model":"image-model","prompt":"x","size":7}`, "size"},
	} {
		status, body, _ := e.mediaPost(c.path, k.Key, c.body)
		var eb struct {
			Error struct{ Type, Param, Code, Message string }
		}
		_ = json.Unmarshal([]byte(body), &eb)
		if status != http.StatusBadRequest || eb.Error.Type != "invalid_request_error" || eb.Error.Param != c.param || eb.Error.Message == "" {
			t.Errorf("case %d: HTTP %d %s; want 400 naming %q", i, status, body, c.param)
		}
	}
	if n := e.up.Stats().Requests - before; n != 0 {
		t.Errorf("%d upstream calls for refused requests", n)
	}
	if n := media.Stats().Requests; n != 0 {
		t.Errorf("%d calls to the media upstream for refused requests", n)
	}
	// Nothing was consumed: the key's 2 requests a minute are all still there.
	for i := 0; i < 2; i++ {
		if status, body, _ := e.mediaPost("/images/generations", k.Key, `{"model":"mixed","prompt":"x"}`); status != http.StatusOK {
			t.Fatalf("request %d after the refusals: HTTP %d %s", i, status, body)
		}
	}
	if n := e.up.Stats().Requests - before; n != 0 {
		t.Errorf("mixed: %d calls to the chat-only deployment", n)
	}
	if n := media.Stats().Requests; n != 2 {
		t.Errorf("mixed: %d calls to the capable deployment, want 2", n)
	}
	if status, _, _ := e.mediaPost("/images/generations", k.Key, `{"model":"mixed","prompt":"x"}`); status != http.StatusTooManyRequests {
		t.Errorf("third request of a 2 RPM key: HTTP %d, want 429", status)
	}
}

// TestImagesFailover: a capable deployment that cannot be reached is failed over to the next,
// as on chat; the record names the deployment that answered.
func TestImagesFailover(t *testing.T) {
	e, up := mediaEnv(t)
	status, body, id := e.mediaPost("/images/generations", e.key, `{"model":"image-failover","prompt":"x"}`)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	if r := e.usageFor(id); r.Deployment != "media/dall-e-3" || r.Units != 1 || r.CostPicoUSD == nil || *r.CostPicoUSD != 40_000*1_000_000 {
		t.Errorf("record: %+v", r)
	}
	if n := up.Stats().Requests; n != 1 {
		t.Errorf("%d requests at the second deployment, want 1", n)
	}
}
