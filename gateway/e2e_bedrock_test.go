package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/bedrock"
	"github.com/llmgate/llmgate/providers/mock"
)

// The Bedrock deployments' AWS credentials: the mock verifies every signature against them.
const (
	bedrockKeyID        = "AKIAGATEWAYTEST00001"
	bedrockSecret       = "bedrock/Secret+Access/Key0123456789abcdefgh"
	bedrockSessionToken = "IQoJb3JpZ2luX2VjEBedrockSessionToken0123456789abcdef"
	bedrockClaude       = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	bedrockNova         = "amazon.nova-pro-v1:0"
)

// bedrockEnv is a gateway with two public models served by a provider of type bedrock pointing
// at the mock's Bedrock Runtime over loopback, signing with static keys (and a session token):
// "claude-bdrk" (an inference profile id, so InvokeModel) and "nova-bdrk" (Converse). The
// provider passes the mock's "mock" override field through (into the InvokeModel body, or
// Converse's additionalModelRequestFields), so tests can inject faults. Its deployments' breaker
// opens after breakAfter consecutive failures (0: the default).
func bedrockEnv(t *testing.T, breakAfter uint32, opts ...envOption) (*env, *mock.Handler) {
	t.Helper()
	up := mock.NewHandler(mock.Options{AWSAccessKeyID: bedrockKeyID, AWSSecretAccessKey: bedrockSecret})
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	p, err := bedrock.New(bedrock.Options{BaseURL: srv.URL, Outbound: loopback, Settings: bedrock.Settings{
		Region: "us-west-2", AccessKeyID: bedrockKeyID, SecretAccessKey: bedrockSecret, SessionToken: bedrockSessionToken,
		PassFields: []string{"mock"}}})
	dep := func(model string) []providers.DeploymentConfig {
		return []providers.DeploymentConfig{{Provider: "bdrk", Model: model, Breaker: providers.BreakerConfig{ConsecutiveFailures: breakAfter}}}
	}
	opts = append(opts, withRouting([]namedProvider{{"bdrk", p, err}},
		providers.ModelConfig{Name: "claude-bdrk", Deployments: dep(bedrockClaude)},
		providers.ModelConfig{Name: "nova-bdrk", Deployments: dep(bedrockNova)}))
	return newEnv(t, opts...), up
}

// lastBedrockRequest is the last request the mock's Bedrock Runtime received.
func lastBedrockRequest(t *testing.T, up *mock.Handler) mock.RecordedRequest {
	t.Helper()
	reqs := up.Requests(1)
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].Path, "/model/") {
		t.Fatalf("upstream requests %+v", reqs)
	}
	return reqs[0]
}

// bedrockModels are the two ways a chat request reaches Bedrock.
var bedrockModels = []struct{ name, upstream, op string }{
	{"claude-bdrk", bedrockClaude, "invoke"},
	{"nova-bdrk", bedrockNova, "converse"},
}

func TestBedrockChat(t *testing.T) {
	e, up := bedrockEnv(t, 0)
	for _, m := range bedrockModels {
		t.Run(m.op, func(t *testing.T) {
			resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: m.name,
				Messages: []openai.ChatCompletionMessage{
					{Role: openai.ChatMessageRoleSystem, Content: "You are terse."},
					{Role: openai.ChatMessageRoleUser, Content: "Say hello to the mock"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != mockAnswer(20) || resp.Choices[0].FinishReason != openai.FinishReasonStop {
				t.Fatalf("choices %+v", resp.Choices)
			}
			// system: 3 + 3 words; user: 3 + 5 words
			if resp.Usage.PromptTokens != 14 || resp.Usage.CompletionTokens != 20 {
				t.Errorf("usage %+v", resp.Usage)
			}
			got := lastBedrockRequest(t, up)
			auth := got.Headers["Authorization"]
			if got.Path != "/model/"+m.upstream+"/"+m.op || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+bedrockKeyID+"/") ||
				!strings.Contains(auth, "/us-west-2/bedrock/aws4_request") || got.Headers["X-Amz-Security-Token"] != bedrockSessionToken {
				t.Errorf("upstream %s %v", got.Path, got.Headers)
			}
			body := gjson.Parse(got.Body)
			switch m.op {
			case "invoke":
				if body.Get("anthropic_version").Str != bedrock.AnthropicVersion || body.Get("model").Exists() || body.Get("stream").Exists() ||
					body.Get("system").Str != "You are terse." {
					t.Errorf("upstream body %s", got.Body)
				}
			case "converse":
				if body.Get("system.0.text").Str != "You are terse." || body.Get("messages.0.content.0.text").Str != "Say hello to the mock" ||
					body.Get("inferenceConfig.maxTokens").Exists() {
					t.Errorf("upstream body %s", got.Body)
				}
			}
			r := e.usageFor(resp.Header().Get("X-Request-Id"))
			if r.Status != 200 || r.Provider != "bdrk" || r.UpstreamModel != m.upstream || r.UsageSource != "provider" ||
				r.PromptTokens != 14 || r.CompletionTokens != 20 {
				t.Errorf("usage record %+v", r)
			}
		})
	}
}

func TestBedrockStream(t *testing.T) {
	e, _ := bedrockEnv(t, 0)
	for _, m := range bedrockModels {
		t.Run(m.op, func(t *testing.T) {
			s, err := e.client(e.key).CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: m.name, Stream: true, MaxTokens: 7,
				StreamOptions: &openai.StreamOptions{IncludeUsage: true},
				Messages:      []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Count to seven"}}})
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			var finishes []openai.FinishReason
			var usage *openai.Usage
			for {
				c, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.Usage != nil {
					usage = c.Usage
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
					if ch.FinishReason != "" {
						finishes = append(finishes, ch.FinishReason)
					}
				}
			}
			id := s.Header().Get("X-Request-Id")
			s.Close()
			if text.String() != mockAnswer(7) || len(finishes) != 1 || finishes[0] != openai.FinishReasonLength {
				t.Errorf("text %q, finish reasons %v", text.String(), finishes)
			}
			if usage == nil || usage.PromptTokens != 6 || usage.CompletionTokens != 7 {
				t.Errorf("usage chunk %+v, want 6 + 7", usage)
			}
			r := e.usageFor(id)
			if r.Status != 200 || !r.Stream || r.UsageSource != "provider" || r.PromptTokens != 6 || r.CompletionTokens != 7 {
				t.Errorf("usage record %+v", r)
			}
		})
	}
}

// TestBedrockTools: a tool call round trip on both APIs, streamed and not: the model calls
// get_weather, the client answers with a tool message, the model answers in text.
func TestBedrockTools(t *testing.T) {
	e, up := bedrockEnv(t, 0)
	tools := []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather", Description: "Weather of a city",
		Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}`)}}}
	ask := openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: "Use get_weather for Paris"}
	client := e.client(e.key)
	for _, m := range bedrockModels {
		t.Run(m.op, func(t *testing.T) {
			resp, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: m.name, Tools: tools, ToolChoice: "auto", Messages: []openai.ChatCompletionMessage{ask}})
			if err != nil {
				t.Fatal(err)
			}
			msg := resp.Choices[0].Message
			if resp.Choices[0].FinishReason != openai.FinishReasonToolCalls || len(msg.ToolCalls) != 1 ||
				msg.ToolCalls[0].Function.Name != "get_weather" || msg.ToolCalls[0].Function.Arguments != `{"city":"mock","days":1}` || msg.ToolCalls[0].ID == "" {
				t.Fatalf("tool calls %+v (finish %q)", msg.ToolCalls, resp.Choices[0].FinishReason)
			}
			if m.op == "converse" {
				b := gjson.Parse(lastBedrockRequest(t, up).Body)
				if b.Get("toolConfig.tools.0.toolSpec.name").Str != "get_weather" || !b.Get("toolConfig.toolChoice.auto").Exists() ||
					b.Get("toolConfig.tools.0.toolSpec.inputSchema.json.required.0").Str != "city" {
					t.Errorf("upstream body %s", b.Raw)
				}
			}

			s, err := client.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
				Model: m.name, Tools: tools, Stream: true, Messages: []openai.ChatCompletionMessage{ask}})
			if err != nil {
				t.Fatal(err)
			}
			var id, name, args string
			var finish openai.FinishReason
			for {
				c, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, ch := range c.Choices {
					for _, tc := range ch.Delta.ToolCalls {
						id += tc.ID
						name += tc.Function.Name
						args += tc.Function.Arguments
					}
					if ch.FinishReason != "" {
						finish = ch.FinishReason
					}
				}
			}
			s.Close()
			if id == "" || name != "get_weather" || args != `{"city":"mock","days":1}` || finish != openai.FinishReasonToolCalls {
				t.Errorf("streamed call %q %q %q, finish %q", id, name, args, finish)
			}

			// The round trip: the call and its result go back, the model answers in text.
			resp, err = client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: m.name, Tools: tools, Messages: []openai.ChatCompletionMessage{ask, msg,
					{Role: openai.ChatMessageRoleTool, ToolCallID: msg.ToolCalls[0].ID, Content: "sunny and warm"}}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].FinishReason != openai.FinishReasonStop || resp.Choices[0].Message.Content != mockAnswer(20) {
				t.Errorf("after the tool result: %+v", resp.Choices[0])
			}
			// user 3 + 4 words, assistant 3, tool result 3 + 3 words
			if resp.Usage.PromptTokens != 16 {
				t.Errorf("usage %+v", resp.Usage)
			}
		})
	}
}

// TestBedrockErrors: Bedrock's exceptions reach the client in OpenAI's shape with the status the
// gateway decides on; an exception or a corrupt message mid-stream ends the stream with an error
// event (never [DONE]), the record is partial, and the deployment's breaker counts it.
func TestBedrockErrors(t *testing.T) {
	for status, want := range map[int]struct {
		status    int
		typ, code string
	}{
		429: {429, "rate_limit_error", "ThrottlingException"},
		400: {400, "invalid_request_error", "ValidationException"},
	} {
		e, _ := bedrockEnv(t, 0)
		for _, m := range bedrockModels {
			resp := e.post(context.Background(), "/chat/completions", e.key,
				[]byte(`{"model":"`+m.name+`","mock":{"status":`+strconv.Itoa(status)+`},"messages":[{"role":"user","content":"x"}]}`))
			typ, code, msg := apiError(t, resp)
			if resp.StatusCode != want.status || typ != want.typ || code != want.code || !strings.Contains(msg, "mock: simulated") {
				t.Errorf("%s, upstream %d: HTTP %d %s %s %q", m.op, status, resp.StatusCode, typ, code, msg)
			}
		}
	}
	for _, tc := range []struct{ name, mock string }{
		{"throttling exception", `{"fail_after":3,"exception":"throttlingException"}`},
		{"corrupt message", `{"fail_after":3,"corrupt_frame":true}`},
	} {
		for _, m := range bedrockModels {
			t.Run(tc.name+" "+m.op, func(t *testing.T) {
				e, _ := bedrockEnv(t, 1)
				resp := e.post(context.Background(), "/chat/completions", e.key,
					[]byte(`{"model":"`+m.name+`","stream":true,"mock":`+tc.mock+`,"messages":[{"role":"user","content":"x"}]}`))
				evs := readEvents(t, resp.Body)
				resp.Body.Close()
				var text strings.Builder
				for _, ev := range evs {
					if ev.data == "[DONE]" || gjson.Get(ev.data, "choices.0.finish_reason").String() != "" {
						t.Errorf("a failed stream completed: %s", ev.data)
					}
					text.WriteString(gjson.Get(ev.data, "choices.0.delta.content").Str)
				}
				if len(evs) == 0 || !gjson.Get(evs[len(evs)-1].data, "error").IsObject() || text.String() != mockAnswer(3) {
					t.Fatalf("events %+v", evs)
				}
				r := e.usageFor(resp.Header.Get("X-Request-Id"))
				if r.Status != 502 || r.ErrorType != "upstream_stream_error" || r.UsageSource != "partial" || r.PromptTokens == 0 {
					t.Errorf("usage record %+v", r)
				}
				// The breaker (one failure opens it) counted the broken stream.
				next := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"`+m.name+`","messages":[{"role":"user","content":"x"}]}`))
				io.Copy(io.Discard, next.Body)
				next.Body.Close()
				if next.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("after the broken stream: HTTP %d, want 503 (breaker open)", next.StatusCode)
				}
			})
		}
	}
}

// TestBedrockCredentialsNotLeaked: an upstream error that quotes the secret access key and the
// session token reaches the client without them, and neither appears in the gateway's logs,
// its metrics or the usage record; a wrong secret is refused by the upstream's signature check.
func TestBedrockCredentialsNotLeaked(t *testing.T) {
	logs, access := &testlog.Buffer{}, &testlog.Buffer{}
	e, _ := bedrockEnv(t, 0, withLog(logs), withAccessLog(t, access, gateway.AccessLogOptions{}))
	secrets := []string{bedrockSecret, bedrockSessionToken}
	upMsg := "The security token " + bedrockSessionToken + " for secret " + bedrockSecret + " is invalid."
	errBody := string(gjson.AppendJSONString(nil, `{"message":`+string(gjson.AppendJSONString(nil, upMsg))+`}`))
	var ids []string
	for _, m := range bedrockModels {
		resp := e.post(context.Background(), "/chat/completions", e.key,
			[]byte(`{"model":"`+m.name+`","mock":{"status":400,"error_body":`+errBody+`},"messages":[{"role":"user","content":"x"}]}`))
		_, _, msg := apiError(t, resp)
		ids = append(ids, resp.Header.Get("X-Request-Id"))
		if resp.StatusCode != 400 || !strings.Contains(msg, "[REDACTED]") {
			t.Errorf("%s: HTTP %d %q", m.op, resp.StatusCode, msg)
		}
		for _, s := range secrets {
			if strings.Contains(msg, s) {
				t.Errorf("%s: the client's error message carries a credential: %q", m.op, msg)
			}
		}
	}
	// The access log writes its lines in batches: wait for both, or the check below proves nothing.
	accessLine(t, access, ids[0])
	accessLine(t, access, ids[1])
	records, _ := json.Marshal([]any{e.usageFor(ids[0]), e.usageFor(ids[1])})
	for where, text := range map[string]string{"log": logs.String(), "access log": access.String(), "metrics": e.metrics(), "usage records": string(records)} {
		for _, s := range append(secrets, bedrockSecret[:16]) {
			if strings.Contains(text, s) {
				t.Errorf("the %s carries a credential", where)
			}
		}
	}

	// A wrong secret: the upstream's signature check refuses it, and the client never sees a key.
	up := mock.NewHandler(mock.Options{AWSAccessKeyID: bedrockKeyID, AWSSecretAccessKey: bedrockSecret})
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	p, err := bedrock.New(bedrock.Options{BaseURL: srv.URL, Outbound: loopback, Settings: bedrock.Settings{
		Region: "us-west-2", AccessKeyID: bedrockKeyID, SecretAccessKey: "wrong/Secret/Key0123456789abcdefghijkl"}})
	e2 := newEnv(t, withRouting([]namedProvider{{"bad", p, err}},
		providers.ModelConfig{Name: "nova-bad", Deployments: []providers.DeploymentConfig{{Provider: "bad", Model: bedrockNova}}}))
	resp := e2.post(context.Background(), "/chat/completions", e2.key, []byte(`{"model":"nova-bad","messages":[{"role":"user","content":"x"}]}`))
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || strings.Contains(string(raw), "wrong/Secret") || up.Stats().Errors != 1 {
		t.Errorf("a wrong secret: HTTP %d %s; upstream %+v", resp.StatusCode, raw, up.Stats())
	}
}

// TestBedrockInboundDialects: an image in a chat request, and the Messages and Responses APIs
// inbound, reach Bedrock through the gateway's translation to chat, on both APIs.
func TestBedrockInboundDialects(t *testing.T) {
	e, up := bedrockEnv(t, 0)
	const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
	for _, m := range bedrockModels {
		t.Run(m.op, func(t *testing.T) {
			resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"`+m.name+`","messages":[{"role":"user","content":[`+
				`{"type":"text","text":"What is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,`+png+`"}}]}]}`))
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || gjson.GetBytes(raw, "choices.0.message.content").Str != mockAnswer(20) {
				t.Fatalf("image: HTTP %d %s", resp.StatusCode, raw)
			}
			b := gjson.Parse(lastBedrockRequest(t, up).Body)
			if m.op == "converse" && (b.Get("messages.0.content.1.image.format").Str != "png" || b.Get("messages.0.content.1.image.source.bytes").Str != png) ||
				m.op == "invoke" && b.Get("messages.0.content.1.source.data").Str != png {
				t.Errorf("image upstream body %s", b.Raw)
			}

			mr := e.postMessages(context.Background(), "/messages", e.key,
				`{"model":"`+m.name+`","max_tokens":5,"messages":[{"role":"user","content":"Say hello"}]}`)
			raw, _ = io.ReadAll(mr.Body)
			mr.Body.Close()
			if mr.StatusCode != 200 || gjson.GetBytes(raw, "type").Str != "message" || gjson.GetBytes(raw, "content.0.text").Str != mockAnswer(5) ||
				gjson.GetBytes(raw, "usage.output_tokens").Int() != 5 {
				t.Errorf("messages: HTTP %d %s", mr.StatusCode, raw)
			}

			rr := e.post(context.Background(), "/responses", e.key, []byte(`{"model":"`+m.name+`","input":"Say hello","max_output_tokens":4}`))
			raw, _ = io.ReadAll(rr.Body)
			rr.Body.Close()
			if rr.StatusCode != 200 || gjson.GetBytes(raw, "object").Str != "response" || gjson.GetBytes(raw, "output_text").Str != mockAnswer(4) &&
				gjson.GetBytes(raw, "output.0.content.0.text").Str != mockAnswer(4) {
				t.Errorf("responses: HTTP %d %s", rr.StatusCode, raw)
			}
		})
	}
}

// TestBedrockCacheUsage: prompt caching on both APIs: cache_control becomes InvokeModel's
// cache_control or a Converse cachePoint, the cache write is part of prompt_tokens and
// cache_write_tokens, the cache read is cached_tokens, in the answer and the usage record,
// streamed and not.
func TestBedrockCacheUsage(t *testing.T) {
	e, up := bedrockEnv(t, 0)
	for _, m := range bedrockModels {
		for _, stream := range []bool{false, true} {
			// A prefix of its own per case, so each starts with a cache write.
			sys := "a long shared context of nine words for " + m.op + " " + strconv.FormatBool(stream)
			body := []byte(`{"model":"` + m.name + `","stream":` + strconv.FormatBool(stream) + `,"stream_options":` + map[bool]string{true: `{"include_usage":true}`, false: `null`}[stream] +
				`,"messages":[{"role":"system","content":[{"type":"text","text":"` + sys + `","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"question one"}]}`)
			// system 3 + 10 words (the cached prefix), user 3 + 2
			for i, want := range []struct{ cached, write int64 }{{0, 13}, {13, 0}} {
				resp := e.post(context.Background(), "/chat/completions", e.key, body)
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				u := gjson.GetBytes(raw, "usage")
				if stream {
					for _, ev := range strings.Split(string(raw), "\n\n") {
						if d := strings.TrimPrefix(ev, "data: "); gjson.Get(d, "usage").IsObject() {
							u = gjson.Get(d, "usage")
						}
					}
				}
				if u.Get("prompt_tokens").Int() != 18 || u.Get("prompt_tokens_details.cached_tokens").Int() != want.cached ||
					u.Get("prompt_tokens_details.cache_write_tokens").Int() != want.write {
					t.Errorf("%s stream %v request %d: usage %s", m.op, stream, i, u.Raw)
				}
				r := e.usageFor(resp.Header.Get("X-Request-Id"))
				if r.PromptTokens != 18 || r.CachedTokens != want.cached || r.UsageSource != "provider" {
					t.Errorf("%s stream %v request %d: usage record %+v", m.op, stream, i, r)
				}
			}
			if b := gjson.Parse(lastBedrockRequest(t, up).Body); m.op == "converse" && b.Get("system.1.cachePoint.type").Str != "default" {
				t.Errorf("upstream body %s", b.Raw)
			}
		}
	}
}

// TestBedrockFailover: a deployment whose upstream fails (InternalServerException) hands the
// request to the next one; the answer is the second's.
func TestBedrockFailover(t *testing.T) {
	bad := mock.NewHandler(mock.Options{ErrorRate: 1, AWSAccessKeyID: bedrockKeyID, AWSSecretAccessKey: bedrockSecret})
	failing := httptest.NewServer(bad)
	t.Cleanup(failing.Close)
	pf, errf := bedrock.New(bedrock.Options{BaseURL: failing.URL, Outbound: loopback, Settings: bedrock.Settings{
		Region: "us-east-1", AccessKeyID: bedrockKeyID, SecretAccessKey: bedrockSecret}})
	e, _ := bedrockEnv(t, 0, withRouting([]namedProvider{{"bdrk-east", pf, errf}}, providers.ModelConfig{Name: "nova-ha", Deployments: []providers.DeploymentConfig{
		{Provider: "bdrk-east", Model: bedrockNova}, {Provider: "bdrk", Model: bedrockNova, Priority: 1}}}))
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "nova-ha",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.usageFor(resp.Header().Get("X-Request-Id")); resp.Choices[0].Message.Content != mockAnswer(20) || r.Provider != "bdrk" || r.Status != 200 || bad.Stats().Errors != 1 {
		t.Errorf("answer %+v, record %+v, failing upstream %+v", resp.Choices, r, bad.Stats())
	}
}
