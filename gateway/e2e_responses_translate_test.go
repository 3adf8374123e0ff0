package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/mock"
	openaiprov "github.com/llmgate/llmgate/providers/openai"
)

// The Responses API served by deployments that speak only Chat Completions: the request is
// translated to a chat request, the answer back into a Response or its event stream, and the
// gateway keeps the conversation so that previous_response_id and GET/DELETE by id work.

// translatedEnv has "claude" (an Anthropic deployment), "seek" (a DeepSeek-type, chat-only
// OpenAI-format deployment), "duo" (two chat-only deployments), "mixed" (Anthropic first, then
// the OpenAI-type "up") and "slowseek" (a chat-only deployment that streams 10 chunks 200 ms apart).
type translatedEnv struct {
	*env
	claude, seekA, seekB *mock.Handler
}

func newTranslatedEnv(t *testing.T, opts ...envOption) *translatedEnv {
	t.Helper()
	te := &translatedEnv{claude: mock.NewHandler(mock.Options{RequireKey: upstreamKey}),
		seekA: mock.NewHandler(mock.Options{RequireKey: upstreamKey}), seekB: mock.NewHandler(mock.Options{RequireKey: upstreamKey})}
	slow := mock.NewHandler(mock.Options{Chunks: 10, TokensPerSecond: 5})
	var urls []string
	for _, h := range []http.Handler{te.claude, te.seekA, te.seekB, slow} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	cp, err := anthropic.New(anthropic.Options{BaseURL: urls[0], APIKey: upstreamKey, Outbound: loopback})
	provs := []namedProvider{{"claude", cp, err}, chatOnlyProvider("seeka", urls[1], upstreamKey), chatOnlyProvider("seekb", urls[2], upstreamKey),
		chatOnlyProvider("slowseek", urls[3], "")}
	opts = append(opts, withPriceLookup(fixedPrices{respPrice}), withRouting(provs,
		providers.ModelConfig{Name: "claude", Deployments: []providers.DeploymentConfig{{Provider: "claude", Model: "claude-up"}}},
		providers.ModelConfig{Name: "seek", Deployments: []providers.DeploymentConfig{{Provider: "seeka", Model: "deepseek-chat"}}},
		providers.ModelConfig{Name: "duo", Deployments: []providers.DeploymentConfig{
			{ID: "dep-a", Provider: "seeka", Model: "m"}, {ID: "dep-b", Provider: "seekb", Model: "m"}}},
		providers.ModelConfig{Name: "mixed", Deployments: []providers.DeploymentConfig{
			{Provider: "claude", Model: "claude-up", Priority: 0}, {Provider: "up", Model: "up-model", Priority: 1}}},
		providers.ModelConfig{Name: "slowseek", Deployments: []providers.DeploymentConfig{{Provider: "slowseek", Model: "s"}}}))
	te.env = newEnv(t, opts...)
	return te
}

// chatOnlyProvider is an OpenAI-format provider marked chat-only, as the deepseek, qwen, vllm…
// presets are.
func chatOnlyProvider(name, url, key string) namedProvider {
	p, err := openaiprov.New(openaiprov.Options{BaseURL: url + "/v1", APIKey: key, Media: openaiprov.MediaEndpoints("deepseek"), Outbound: loopback})
	return namedProvider{name, p, err}
}

// outputText is the text of a Response's message items.
func outputText(resp map[string]any) string {
	var sb strings.Builder
	items, _ := resp["output"].([]any)
	for _, it := range items {
		item, _ := it.(map[string]any)
		parts, _ := item["content"].([]any)
		for _, p := range parts {
			part, _ := p.(map[string]any)
			if part["type"] == "output_text" {
				sb.WriteString(part["text"].(string))
			}
		}
	}
	return sb.String()
}

func TestResponsesTranslatedWhole(t *testing.T) {
	te := newTranslatedEnv(t)
	for _, tc := range []struct {
		model, deployment, path string
		up                      *mock.Handler
	}{
		{"claude", "claude/claude-up", "/v1/messages", te.claude},
		{"seek", "seeka/deepseek-chat", "/v1/chat/completions", te.seekA},
	} {
		t.Run(tc.model, func(t *testing.T) {
			status, out, r := te.respond(te.key, `{"model":"`+tc.model+`","instructions":"Be brief.","input":"Say hello","max_output_tokens":50}`)
			if status != 200 {
				t.Fatalf("status %d: %v", status, out)
			}
			id, _ := out["id"].(string)
			if !strings.HasPrefix(id, "resp_") || out["object"] != "response" || out["status"] != "completed" || out["model"] != tc.model {
				t.Errorf("answer id %q object %v status %v model %v", id, out["object"], out["status"], out["model"])
			}
			if got := outputText(out); got != mockAnswer(20) {
				t.Errorf("output text %q, want %q", got, mockAnswer(20))
			}
			u, _ := out["usage"].(map[string]any)
			if u["output_tokens"] != float64(20) {
				t.Errorf("usage %v, want 20 output tokens", u)
			}
			reqs := tc.up.Requests(1)
			if len(reqs) != 1 || reqs[0].Path != tc.path || !strings.Contains(reqs[0].Body, "Say hello") {
				t.Fatalf("upstream got %+v, want one %s request", reqs, tc.path)
			}
			if r.Endpoint != "responses" || r.Status != 200 || r.UsageSource != "provider" || r.Deployment != tc.deployment ||
				r.CompletionTokens != 20 || r.PromptTokens != int64(u["input_tokens"].(float64)) || r.PromptTokens == 0 {
				t.Errorf("record endpoint %q status %d source %q deployment %q tokens %d/%d", r.Endpoint, r.Status, r.UsageSource,
					r.Deployment, r.PromptTokens, r.CompletionTokens)
			}
			wantCost(t, r, billing.Usage{Prompt: r.PromptTokens, Completion: 20})
		})
	}
}

func TestResponsesTranslatedStream(t *testing.T) {
	te := newTranslatedEnv(t)
	for _, tc := range []struct{ model, deployment string }{{"claude", "claude/claude-up"}, {"seek", "seeka/deepseek-chat"}, {"slowseek", "slowseek/s"}} {
		t.Run(tc.model, func(t *testing.T) {
			resp := te.post(context.Background(), "/responses", te.key, []byte(`{"model":"`+tc.model+`","input":"Say hello","stream":true}`))
			evs := readRespEvents(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || len(evs) < 4 {
				t.Fatalf("status %d, content type %q, %d events", resp.StatusCode, resp.Header.Get("Content-Type"), len(evs))
			}
			var text strings.Builder
			first := -1
			for i, ev := range evs {
				if ev.name != ev.data["type"] || ev.data["sequence_number"] != float64(i) {
					t.Errorf("event %d: event line %q, type %v, sequence_number %v", i, ev.name, ev.data["type"], ev.data["sequence_number"])
				}
				if ev.name == "response.output_text.delta" {
					if first < 0 {
						first = i
					}
					text.WriteString(ev.data["delta"].(string))
				}
			}
			last := evs[len(evs)-1]
			if evs[0].name != "response.created" || last.name != "response.completed" {
				t.Fatalf("first %q, last %q", evs[0].name, last.name)
			}
			chunks := 20
			if tc.model == "slowseek" {
				chunks = 10
				// 10 chunks 200 ms apart: the first delta must arrive long before the end.
				if gap := last.at.Sub(evs[first].at); gap < time.Second {
					t.Errorf("first delta only %v before the end: the stream was buffered", gap)
				}
			}
			final := last.data["response"].(map[string]any)
			if text.String() != mockAnswer(chunks) || outputText(final) != mockAnswer(chunks) {
				t.Errorf("deltas %q, final text %q, want %q", text.String(), outputText(final), mockAnswer(chunks))
			}
			r := te.usageFor(resp.Header.Get("X-Request-Id"))
			if r.Endpoint != "responses" || !r.Stream || r.Status != 200 || r.UsageSource != "provider" || r.Deployment != tc.deployment ||
				r.CompletionTokens != int64(chunks) || r.PromptTokens == 0 {
				t.Errorf("record endpoint %q stream %v status %d source %q deployment %q tokens %d/%d", r.Endpoint, r.Stream, r.Status,
					r.UsageSource, r.Deployment, r.PromptTokens, r.CompletionTokens)
			}
		})
	}
}

// A function tool round trip through the Anthropic deployment: the function_call comes out, its
// output goes back with previous_response_id, and the upstream sees the whole conversation.
func TestResponsesTranslatedToolRoundTrip(t *testing.T) {
	te := newTranslatedEnv(t)
	tools := `"tools":[{"type":"function","name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]`
	status, out, _ := te.respond(te.key, `{"model":"claude","input":"What is the weather in Paris?",`+tools+`}`)
	if status != 200 {
		t.Fatalf("status %d: %v", status, out)
	}
	var call map[string]any
	for _, it := range out["output"].([]any) {
		if item := it.(map[string]any); item["type"] == "function_call" {
			call = item
		}
	}
	if call == nil || call["name"] != "get_weather" || call["call_id"] == "" || !strings.Contains(call["arguments"].(string), "city") {
		t.Fatalf("want a get_weather function_call, got output %v", out["output"])
	}
	follow := `{"model":"claude","previous_response_id":"` + out["id"].(string) + `","input":[{"type":"function_call_output","call_id":"` +
		call["call_id"].(string) + `","output":"sunny, 21 C"}],` + tools + `}`
	status, out2, _ := te.respond(te.key, follow)
	if status != 200 || outputText(out2) == "" {
		t.Fatalf("follow-up: %d %v", status, out2)
	}
	last := te.claude.Requests(1)[0].Body
	for _, want := range []string{"What is the weather in Paris?", `"tool_use"`, `"tool_result"`, "sunny, 21 C"} {
		if !strings.Contains(last, want) {
			t.Errorf("the upstream's follow-up lacks %s: %s", want, last)
		}
	}
}

// The gateway keeps a translated conversation, so any chat-capable deployment of the model may
// continue it: with the deployment that answered disabled, the follow-up goes to the other one,
// which gets the earlier turns.
func TestResponsesTranslatedFollowUpAnyDeployment(t *testing.T) {
	te := newTranslatedEnv(t)
	status, first, rec := te.respond(te.key, `{"model":"duo","input":"first question"}`)
	if status != 200 {
		t.Fatalf("create: %d %v", status, first)
	}
	ownerID := rec.Deployment
	other, otherUp := "dep-b", te.seekB
	if ownerID == "dep-b" {
		other, otherUp = "dep-a", te.seekA
	}
	off := false
	router, err := providers.NewRouter([]providers.ModelConfig{{Name: "duo", Deployments: []providers.DeploymentConfig{
		{ID: "dep-a", Provider: "seeka", Model: "m"}, {ID: "dep-b", Provider: "seekb", Model: "m"}}}}, providers.RoutingConfig{},
		te.provs, map[string]providers.Override{ownerID: {Enabled: &off}})
	if err != nil {
		t.Fatal(err)
	}
	te.gw.SetRouter(router)
	status, second, r := te.respond(te.key, `{"model":"duo","input":"second question","previous_response_id":"`+first["id"].(string)+`"}`)
	if status != 200 || r.Deployment != other {
		t.Fatalf("follow-up: %d on %q (want 200 on %s): %v", status, r.Deployment, other, second)
	}
	body := otherUp.Requests(1)[0].Body
	if !strings.Contains(body, "first question") || !strings.Contains(body, mockAnswer(20)) || !strings.Contains(body, "second question") {
		t.Errorf("the other deployment did not get the conversation: %s", body)
	}
	if second["previous_response_id"] != first["id"] {
		t.Errorf("previous_response_id echoed %v, want %v", second["previous_response_id"], first["id"])
	}
}

// A translated response belongs to its tenant: another tenant can neither continue it nor read
// or delete it. Its owner reads the stored Response, deletes it (OpenAI's delete shape), and
// cannot cancel it (not a background response); none of this calls an upstream.
func TestResponsesTranslatedByID(t *testing.T) {
	te := newTranslatedEnv(t)
	status, created, _ := te.respond(te.key, `{"model":"seek","input":"hello"}`)
	if status != 200 {
		t.Fatalf("create: %d %v", status, created)
	}
	id := created["id"].(string)
	before := te.seekA.Stats().Requests
	stranger := te.newKey(keySpec{Name: "stranger", Tenant: "tenant-b"})
	if status, out, _ := te.respond(stranger.Key, `{"model":"seek","input":"hi","previous_response_id":"`+id+`"}`); status != 400 || errCode(out) != "previous_response_not_found" {
		t.Errorf("follow-up by another tenant: %d %v, want 400 previous_response_not_found", status, out)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if status, out, _ := te.call(m, "/responses/"+id, stranger.Key); status != 404 || errCode(out) != "response_not_found" {
			t.Errorf("%s by another tenant: %d %v, want 404", m, status, out)
		}
	}
	status, got, reqID := te.call(http.MethodGet, "/responses/"+id, te.key)
	if status != 200 || !jsonEqual(got, created) {
		t.Errorf("GET: %d %v, want the stored response %v", status, got, created)
	}
	if r := te.usageFor(reqID); r.Endpoint != "responses" || r.Status != 200 || r.PromptTokens != 0 || r.UsageSource != "" || r.CostPicoUSD != nil {
		t.Errorf("GET record: endpoint %q status %d tokens %d source %q cost %v", r.Endpoint, r.Status, r.PromptTokens, r.UsageSource, r.CostPicoUSD)
	}
	if status, out, _ := te.call(http.MethodPost, "/responses/"+id+"/cancel", te.key); status != 400 || errCode(out) == "" {
		t.Errorf("cancel: %d %v, want a 400", status, out)
	}
	if status, out, _ := te.call(http.MethodDelete, "/responses/"+id, te.key); status != 200 || out["id"] != id || out["object"] != "response" || out["deleted"] != true {
		t.Errorf("DELETE: %d %v", status, out)
	}
	if status, out, _ := te.call(http.MethodGet, "/responses/"+id, te.key); status != 404 {
		t.Errorf("GET after DELETE: %d %v, want 404", status, out)
	}
	if status, out, _ := te.respond(te.key, `{"model":"seek","input":"hi","previous_response_id":"`+id+`"}`); status != 400 || errCode(out) != "previous_response_not_found" {
		t.Errorf("follow-up after DELETE: %d %v, want 400", status, out)
	}
	if n := te.seekA.Stats().Requests - before; n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
	// store:false keeps nothing.
	status, unstored, _ := te.respond(te.key, `{"model":"seek","input":"hello","store":false}`)
	if status != 200 {
		t.Fatalf("store:false: %d %v", status, unstored)
	}
	if status, _, _ := te.call(http.MethodGet, "/responses/"+unstored["id"].(string), te.key); status != 404 {
		t.Errorf("GET of a store:false response: %d, want 404", status)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// What a chat deployment cannot do (a built-in tool, background) is refused with OpenAI's 400
// before any upstream call and before the key's request rate counts it, unless the model has a
// deployment that speaks the Responses API: then that one serves it.
func TestResponsesTranslatedRefusals(t *testing.T) {
	te := newTranslatedEnv(t)
	tiny := te.newKey(keySpec{Name: "tiny", UserID: "tiny-user", Tier: "tiny"}) // 2 requests a minute
	for _, tc := range []struct{ body, code, param string }{
		{`{"model":"claude","input":"news?","tools":[{"type":"web_search"}]}`, "unsupported_value", "tools[0].type"},
		{`{"model":"claude","input":"hi","background":true}`, "unsupported_value", "background"},
		{`{"model":"seek","input":"hi","conversation":"conv_1"}`, "unsupported_parameter", "conversation"},
	} {
		resp := te.post(context.Background(), "/responses", tiny.Key, []byte(tc.body))
		b := readBodyError(t, resp)
		if resp.StatusCode != 400 || b.Code != tc.code || b.Param != tc.param || b.Type != "invalid_request_error" {
			t.Errorf("%s: %d %+v, want 400 %s (param %q)", tc.body, resp.StatusCode, b, tc.code, tc.param)
		}
		if r := te.usageFor(resp.Header.Get("X-Request-Id")); r.Status != 400 || r.Deployment != "" || r.UsageSource != "" {
			t.Errorf("record status %d deployment %q source %q", r.Status, r.Deployment, r.UsageSource)
		}
	}
	if n := te.claude.Stats().Requests + te.seekA.Stats().Requests; n != 0 {
		t.Errorf("the chat upstreams got %d requests", n)
	}
	for i := range 2 { // the refusals took none of the key's 2 a minute
		if status, out, _ := te.respond(tiny.Key, `{"model":"claude","input":"hi"}`); status != 200 {
			t.Fatalf("request %d after the refusals: %d %v", i, status, out)
		}
	}
	// mixed: a built-in tool goes to the OpenAI-type deployment although the Anthropic one comes
	// first; a plain request is translated for the Anthropic one.
	status, out, r := te.respond(te.key, `{"model":"mixed","input":"news?","tools":[{"type":"web_search"}]}`)
	if status != 200 || r.Deployment != "up/up-model" {
		t.Errorf("mixed with a built-in tool: %d on %q: %v", status, r.Deployment, out)
	}
	if status, out, r := te.respond(te.key, `{"model":"mixed","input":"hi"}`); status != 200 || r.Deployment != "claude/claude-up" {
		t.Errorf("mixed: %d on %q: %v", status, r.Deployment, out)
	}
}

// Failover within one request between a translated and a passthrough deployment: each gets the
// body of its kind.
func TestResponsesTranslatedFailover(t *testing.T) {
	bad := mock.NewHandler(mock.Options{ErrorRate: 1, Seed: 1})
	srv := httptest.NewServer(bad)
	t.Cleanup(srv.Close)
	badClaude, err := anthropic.New(anthropic.Options{BaseURL: srv.URL, APIKey: "k", Outbound: loopback})
	te := newTranslatedEnv(t, withRouting([]namedProvider{{"badclaude", badClaude, err}, openaiProvider("badopenai", srv.URL)},
		providers.ModelConfig{Name: "to-native", Deployments: []providers.DeploymentConfig{
			{Provider: "badclaude", Model: "c", Priority: 0}, {Provider: "up", Model: "up-model", Priority: 1}}},
		providers.ModelConfig{Name: "to-chat", Deployments: []providers.DeploymentConfig{
			{Provider: "badopenai", Model: "o", Priority: 0}, {Provider: "seeka", Model: "deepseek-chat", Priority: 1}}}))
	for _, tc := range []struct{ model, deployment, badPath, goodPath string }{
		{"to-native", "up/up-model", "/v1/messages", "/v1/responses"},
		{"to-chat", "seeka/deepseek-chat", "/v1/responses", "/v1/chat/completions"},
	} {
		status, out, r := te.respond(te.key, `{"model":"`+tc.model+`","input":"hello there"}`)
		if status != 200 || r.Deployment != tc.deployment || out["object"] != "response" || outputText(out) == "" {
			t.Errorf("%s: %d on %q: %v", tc.model, status, r.Deployment, out)
			continue
		}
		if got := bad.Requests(1); len(got) != 1 || got[0].Path != tc.badPath {
			t.Errorf("%s: the failing deployment got %+v, want %s", tc.model, got, tc.badPath)
		}
		up := te.up
		if tc.model == "to-chat" {
			up = te.seekA
		}
		if got := up.Requests(1); len(got) != 1 || got[0].Path != tc.goodPath {
			t.Errorf("%s: the answering deployment got %+v, want %s", tc.model, got, tc.goodPath)
		}
		bad.Reset()
	}
}

// A translated stream cut by the upstream ends with an error event whose sequence number
// follows on, and is recorded as partial; an answer without usage is estimated.
func TestResponsesTranslatedUsageWithoutProvider(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"one two three"},"finish_reason":"stop"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"one"},"finish_reason":null}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" two"},"finish_reason":null}]}`+"\n\n")
		w.(http.Flusher).Flush() // and the connection ends without a finish or [DONE]
	}))
	t.Cleanup(up.Close)
	te := newTranslatedEnv(t, withRouting([]namedProvider{chatOnlyProvider("cut", up.URL, "")},
		providers.ModelConfig{Name: "cut", Deployments: []providers.DeploymentConfig{{Provider: "cut", Model: "m"}}}))
	est, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, answer, source string
		status                     int
	}{
		{"cut stream", `{"model":"cut","input":"hello there","stream":true}`, "one two", "partial", 502},
		{"whole without usage", `{"model":"cut","input":"hello there"}`, "one two three", "estimated", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := te.post(context.Background(), "/responses", te.key, []byte(tc.body))
			if tc.status == 502 {
				evs := readRespEvents(t, resp.Body)
				resp.Body.Close()
				if len(evs) == 0 {
					t.Fatalf("status %d, no events", resp.StatusCode)
				}
				last := evs[len(evs)-1]
				if last.name != "error" || last.data["sequence_number"] != float64(len(evs)-1) {
					t.Errorf("last event %q sequence_number %v, want error %d", last.name, last.data["sequence_number"], len(evs)-1)
				}
			} else {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			r := te.usageFor(resp.Header.Get("X-Request-Id"))
			wantPrompt := est.Prompt("chat/completions", "m", []byte(`{"model":"m","messages":[{"role":"user","content":"hello there"}]}`))
			if r.Status != tc.status || r.UsageSource != tc.source || r.PromptTokens != wantPrompt || r.CompletionTokens != est.Text("m", tc.answer) {
				t.Errorf("record status %d source %q tokens %d/%d, want %d %q %d/%d", r.Status, r.UsageSource, r.PromptTokens, r.CompletionTokens,
					tc.status, tc.source, wantPrompt, est.Text("m", tc.answer))
			}
		})
	}
}

// A translated response larger than gateway.responses_max_kept_bytes (with its conversation) is
// answered all the same, whole or streamed, with "store":false in its Response, and not kept.
func TestResponsesTranslatedKeptSizeLimit(t *testing.T) {
	te := newTranslatedEnv(t, func(c *envConfig) { c.ResponsesMaxKeptBytes = 4000 })
	status, small, _ := te.respond(te.key, `{"model":"seek","input":"hello"}`)
	if status != 200 || small["store"] != true {
		t.Fatalf("small: %d store %v", status, small["store"])
	}
	if status, _, _ := te.call(http.MethodGet, "/responses/"+small["id"].(string), te.key); status != 200 {
		t.Errorf("GET of the small response: %d, want 200", status)
	}
	long := strings.Repeat("word ", 1000)
	status, big, _ := te.respond(te.key, `{"model":"seek","input":"`+long+`"}`)
	if status != 200 || big["store"] != false || outputText(big) != mockAnswer(20) {
		t.Fatalf("big: %d store %v text %q", status, big["store"], outputText(big))
	}
	resp := te.post(context.Background(), "/responses", te.key, []byte(`{"model":"seek","input":"`+long+`","stream":true}`))
	evs := readRespEvents(t, resp.Body)
	resp.Body.Close()
	if len(evs) == 0 || evs[len(evs)-1].name != "response.completed" {
		t.Fatalf("big stream: status %d, %d events", resp.StatusCode, len(evs))
	}
	final := evs[len(evs)-1].data["response"].(map[string]any)
	if final["store"] != false || evs[len(evs)-1].data["sequence_number"] != float64(len(evs)-1) {
		t.Errorf("big stream's final response store %v, sequence_number %v", final["store"], evs[len(evs)-1].data["sequence_number"])
	}
	for _, id := range []string{big["id"].(string), final["id"].(string)} {
		if status, _, _ := te.call(http.MethodGet, "/responses/"+id, te.key); status != 404 {
			t.Errorf("GET of a response over the limit: %d, want 404", status)
		}
		if status, out, _ := te.respond(te.key, `{"model":"seek","input":"more","previous_response_id":"`+id+`"}`); status != 400 || errCode(out) != "previous_response_not_found" {
			t.Errorf("follow-up of a response over the limit: %d %v", status, out)
		}
	}
}
