package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/mock"
)

// anthropicEnv is a gateway whose model "claude-test" is served by a provider of type anthropic
// ("claude", upstream model "claude-up") pointing at the mock's Messages API over loopback. The
// provider passes the mock's "mock" override field through, so tests can inject faults.
func anthropicEnv(t *testing.T) (*env, *mock.Handler) {
	t.Helper()
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	p, err := anthropic.New(anthropic.Options{BaseURL: srv.URL, APIKey: upstreamKey,
		Settings: anthropic.Settings{PassFields: []string{"mock"}}, Outbound: loopback})
	return newEnv(t, withRouting([]namedProvider{{"claude", p, err}}, providers.ModelConfig{Name: "claude-test",
		Deployments: []providers.DeploymentConfig{{Provider: "claude", Model: "claude-up"}}})), up
}

// mockAnswer is the mock's answer of n tokens (see providers/mock's package doc).
func mockAnswer(n int) string {
	words := strings.Fields("the mock upstream streams deterministic words so tests can count every token it sends back today")
	out := make([]string, n)
	for i := range out {
		out[i] = words[i%len(words)]
	}
	return strings.Join(out, " ")
}

// lastMessagesRequest is the last request the mock's Messages API received.
func lastMessagesRequest(t *testing.T, up *mock.Handler) mock.RecordedRequest {
	t.Helper()
	reqs := up.Requests(1)
	if len(reqs) != 1 || reqs[0].Path != "/v1/messages" {
		t.Fatalf("upstream requests %+v", reqs)
	}
	return reqs[0]
}

func TestAnthropicChat(t *testing.T) {
	e, up := anthropicEnv(t)
	var hdr http.Header
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "claude-test",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You are terse."},
			{Role: openai.ChatMessageRoleUser, Content: "Say hello to the mock"},
		},
		Temperature: 1.7,
	})
	if err != nil {
		t.Fatal(err)
	}
	hdr = resp.Header()
	if !strings.HasPrefix(resp.ID, "msg_mock_") || resp.Object != "chat.completion" || resp.Model != "claude-up" {
		t.Errorf("id %q object %q model %q", resp.ID, resp.Object, resp.Model)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != mockAnswer(20) || resp.Choices[0].FinishReason != openai.FinishReasonStop {
		t.Fatalf("choices %+v", resp.Choices)
	}
	// system: 3 + 3 words; user: 3 + 5 words
	if resp.Usage.PromptTokens != 14 || resp.Usage.CompletionTokens != 20 || resp.Usage.TotalTokens != 34 {
		t.Errorf("usage %+v", resp.Usage)
	}

	got := lastMessagesRequest(t, up)
	if got.Headers["X-Api-Key"] != upstreamKey || got.Headers["Anthropic-Version"] != anthropic.APIVersion || got.Headers["Authorization"] != "" {
		t.Errorf("upstream headers %v", got.Headers)
	}
	body := gjson.Parse(got.Body)
	if body.Get("model").Str != "claude-up" || body.Get("system").Str != "You are terse." || body.Get("max_tokens").Int() != anthropic.DefaultMaxTokens ||
		body.Get("temperature").Num != 1 || body.Get("messages.#").Int() != 1 || body.Get("messages.0.role").Str != "user" {
		t.Errorf("upstream body %s", got.Body)
	}

	r := e.usageFor(hdr.Get("X-Request-Id"))
	if r.Status != 200 || r.Provider != "claude" || r.UpstreamModel != "claude-up" || r.Model != "claude-test" ||
		r.UsageSource != "provider" || r.PromptTokens != 14 || r.CompletionTokens != 20 || r.CachedTokens != 0 {
		t.Errorf("usage record %+v", r)
	}
}

func TestAnthropicStream(t *testing.T) {
	e, up := anthropicEnv(t)
	for _, includeUsage := range []bool{true, false} {
		req := openai.ChatCompletionRequest{Model: "claude-test", Stream: true, MaxTokens: 7,
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Count to seven"}}}
		if includeUsage {
			req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		}
		s, err := e.client(e.key).CreateChatCompletionStream(context.Background(), req)
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
			t.Errorf("include_usage %v: text %q, finish reasons %v", includeUsage, text.String(), finishes)
		}
		// user: 3 + 3 words
		switch {
		case includeUsage && (usage == nil || usage.PromptTokens != 6 || usage.CompletionTokens != 7):
			t.Errorf("usage chunk %+v, want 6 + 7", usage)
		case !includeUsage && usage != nil:
			t.Errorf("a client that did not ask got the usage chunk %+v", usage)
		}
		if b := lastMessagesRequest(t, up).Body; !gjson.Get(b, "stream").Bool() || gjson.Get(b, "max_tokens").Int() != 7 || gjson.Get(b, "stream_options").Exists() {
			t.Errorf("upstream body %s", b)
		}
		r := e.usageFor(id)
		if r.Status != 200 || !r.Stream || r.UsageSource != "provider" || r.PromptTokens != 6 || r.CompletionTokens != 7 {
			t.Errorf("include_usage %v: usage record %+v", includeUsage, r)
		}
	}
}

// TestAnthropicTools: a tool call round trip (the model calls two tools in parallel, the client
// answers with tool messages, the model answers in text), streamed and not.
func TestAnthropicTools(t *testing.T) {
	e, up := anthropicEnv(t)
	tools := []openai.Tool{
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather", Description: "Weather of a city",
			Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},"required":["city"]}`)}},
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_time",
			Parameters: json.RawMessage(`{"type":"object","properties":{"zone":{"type":"string"}}}`)}},
	}
	ask := openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: "Use get_weather and get_time for Paris"}
	client := e.client(e.key)

	// 1. Non-stream: two tool calls.
	resp, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "claude-test", Tools: tools, ToolChoice: "auto", Messages: []openai.ChatCompletionMessage{ask}})
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	if resp.Choices[0].FinishReason != openai.FinishReasonToolCalls || len(msg.ToolCalls) != 2 ||
		msg.ToolCalls[0].Function.Name != "get_weather" || msg.ToolCalls[0].Function.Arguments != `{"city":"mock","days":1}` ||
		msg.ToolCalls[1].Function.Name != "get_time" || msg.ToolCalls[1].Function.Arguments != `{"zone":"mock"}` {
		t.Fatalf("tool calls %+v (finish %q)", msg.ToolCalls, resp.Choices[0].FinishReason)
	}
	if resp.Usage.CompletionTokens != (len(`{"city":"mock","days":1}`)+3)/4+(len(`{"zone":"mock"}`)+3)/4 {
		t.Errorf("usage %+v", resp.Usage)
	}

	// 2. Stream: the same calls as tool_calls deltas, id and name on the first of each.
	s, err := client.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "claude-test", Tools: tools, Stream: true, Messages: []openai.ChatCompletionMessage{ask}})
	if err != nil {
		t.Fatal(err)
	}
	type acc struct{ id, name, args string }
	calls := map[int]*acc{}
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
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil {
					t.Fatal("a tool_calls delta without index")
				}
				a := calls[*tc.Index]
				if a == nil {
					if tc.ID == "" || tc.Function.Name == "" {
						t.Errorf("the first delta of call %d lacks its id or name: %+v", *tc.Index, tc)
					}
					a = &acc{id: tc.ID, name: tc.Function.Name}
					calls[*tc.Index] = a
				}
				a.args += tc.Function.Arguments
			}
		}
	}
	s.Close()
	if finish != openai.FinishReasonToolCalls || len(calls) != 2 || calls[0].name != "get_weather" || calls[0].args != `{"city":"mock","days":1}` ||
		calls[1].name != "get_time" || calls[1].args != `{"zone":"mock"}` || !strings.HasPrefix(calls[0].id, "toolu_mock_") {
		t.Fatalf("streamed calls %v %v (finish %q)", calls[0], calls[1], finish)
	}

	// 3. The round trip: assistant tool_calls and the tool messages → a text answer.
	history := []openai.ChatCompletionMessage{ask, msg,
		{Role: openai.ChatMessageRoleTool, ToolCallID: msg.ToolCalls[0].ID, Content: "sunny and mild"},
		{Role: openai.ChatMessageRoleTool, ToolCallID: msg.ToolCalls[1].ID, Content: "noon"},
	}
	resp, err = client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "claude-test", Tools: tools, Messages: history})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].FinishReason != openai.FinishReasonStop || resp.Choices[0].Message.Content != mockAnswer(20) || len(resp.Choices[0].Message.ToolCalls) != 0 {
		t.Fatalf("answer after the tool results %+v", resp.Choices[0])
	}
	b := gjson.Parse(lastMessagesRequest(t, up).Body)
	if b.Get("messages.#").Int() != 3 || b.Get("messages.1.content.#(type==\"tool_use\")#.id").String() != `["`+msg.ToolCalls[0].ID+`","`+msg.ToolCalls[1].ID+`"]` ||
		b.Get("messages.2.role").Str != "user" || b.Get("messages.2.content.#(type==\"tool_result\")#.content").String() != `["sunny and mild","noon"]` {
		t.Errorf("upstream body of the round trip %s", b.Raw)
	}
	// user 3 + 6 words, assistant 3 (tool calls are free), user 3 + 3 + 1 words of tool results
	if resp.Usage.PromptTokens != 19 {
		t.Errorf("prompt tokens %d", resp.Usage.PromptTokens)
	}
	r := e.usageFor(resp.Header().Get("X-Request-Id"))
	if r.UsageSource != "provider" || r.PromptTokens != 19 || r.CompletionTokens != 20 {
		t.Errorf("usage record %+v", r)
	}
}

func TestAnthropicImages(t *testing.T) {
	e, up := anthropicEnv(t)
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "claude-test",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
			{Type: openai.ChatMessagePartTypeText, Text: "What differs?"},
			{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "https://example.com/a.png", Detail: openai.ImageURLDetailHigh}},
			{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "data:image/webp;base64,UklGRhQAAABXRUJQ"}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage.PromptTokens != 3+2 { // images are free in the mock
		t.Errorf("usage %+v", resp.Usage)
	}
	content := gjson.Get(lastMessagesRequest(t, up).Body, "messages.0.content")
	if content.Get("1.source.type").Str != "url" || content.Get("1.source.url").Str != "https://example.com/a.png" ||
		content.Get("2.source.type").Str != "base64" || content.Get("2.source.media_type").Str != "image/webp" || content.Get("2.source.data").Str != "UklGRhQAAABXRUJQ" {
		t.Errorf("upstream content %s", content.Raw)
	}

	// An image the adapter cannot send is the caller's error, and never reaches the upstream.
	up.Reset()
	res := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"claude-test","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}`))
	if typ, _, msg := apiError(t, res); res.StatusCode != 400 || typ != "invalid_request_error" || !strings.Contains(msg, "image/bmp") {
		t.Errorf("HTTP %d %s %s", res.StatusCode, typ, msg)
	}
	if n := up.Stats().Requests; n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

// TestAnthropicCacheUsage: prompt caching through the gateway: cache_control passes through, the
// cache write is part of prompt_tokens, the cache read is cached_tokens, in the answer and in the
// usage record.
func TestAnthropicCacheUsage(t *testing.T) {
	e, _ := anthropicEnv(t)
	body := []byte(`{"model":"claude-test","messages":[{"role":"system","content":[{"type":"text","text":"a long shared context of nine words here ok","cache_control":{"type":"ephemeral"}}]},` +
		`{"role":"user","content":"question one"}]}`)
	// system 3 + 9 (the cached prefix), user 3 + 2
	for i, want := range []struct{ cached, write int64 }{{0, 12}, {12, 0}} {
		resp := e.post(context.Background(), "/chat/completions", e.key, body)
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		u := gjson.GetBytes(raw, "usage")
		if u.Get("prompt_tokens").Int() != 17 || u.Get("prompt_tokens_details.cached_tokens").Int() != want.cached ||
			u.Get("prompt_tokens_details.cache_write_tokens").Int() != want.write {
			t.Errorf("request %d: usage %s", i, u.Raw)
		}
		r := e.usageFor(resp.Header.Get("X-Request-Id"))
		if r.PromptTokens != 17 || r.CachedTokens != want.cached || r.UsageSource != "provider" {
			t.Errorf("request %d: usage record %+v", i, r)
		}
	}
}

func TestAnthropicErrors(t *testing.T) {
	e, up := anthropicEnv(t)
	t.Run("overloaded before the answer", func(t *testing.T) {
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"claude-test","mock":{"status":529},"messages":[{"role":"user","content":"x"}]}`))
		id := resp.Header.Get("X-Request-Id")
		typ, _, msg := apiError(t, resp)
		if resp.StatusCode != 502 || typ != "server_error" || !strings.Contains(msg, "Overloaded") {
			t.Errorf("HTTP %d %s %q", resp.StatusCode, typ, msg)
		}
		if r := e.usageFor(id); r.Status != 502 || r.UsageSource != "" || r.PromptTokens != 0 {
			t.Errorf("usage record %+v", r)
		}
	})
	t.Run("the caller's mistake keeps its status and message", func(t *testing.T) {
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"claude-test","mock":{"status":400},"messages":[{"role":"user","content":"x"}]}`))
		typ, code, msg := apiError(t, resp)
		if resp.StatusCode != 400 || typ != "invalid_request_error" || code != "invalid_request_error" || !strings.Contains(msg, "mock: simulated 400") {
			t.Errorf("HTTP %d %s %s %q", resp.StatusCode, typ, code, msg)
		}
	})
	t.Run("an error event mid-stream", func(t *testing.T) {
		resp := e.post(context.Background(), "/chat/completions", e.key,
			[]byte(`{"model":"claude-test","stream":true,"mock":{"fail_after":3},"messages":[{"role":"user","content":"x"}]}`))
		defer resp.Body.Close()
		evs := readEvents(t, resp.Body)
		var text strings.Builder
		sawOverload := false
		for _, ev := range evs {
			if ev.data == "[DONE]" {
				t.Error("a failed stream ended with [DONE]")
			}
			if gjson.Get(ev.data, "choices.0.finish_reason").String() != "" {
				t.Errorf("a failed stream has a finish chunk: %s", ev.data)
			}
			text.WriteString(gjson.Get(ev.data, "choices.0.delta.content").Str)
			sawOverload = sawOverload || gjson.Get(ev.data, "error.code").Str == "overloaded_error"
		}
		if !sawOverload || text.String() != mockAnswer(3) || !gjson.Get(evs[len(evs)-1].data, "error").IsObject() {
			t.Errorf("events %+v", evs)
		}
		r := e.usageFor(resp.Header.Get("X-Request-Id"))
		if r.Status != 502 || r.ErrorType != "upstream_stream_error" || r.UsageSource != "partial" || r.PromptTokens == 0 {
			t.Errorf("usage record %+v", r)
		}
		if s := up.Stats(); s.Aborted != 1 {
			t.Errorf("upstream stats %+v", s)
		}
	})
	t.Run("embeddings are not supported", func(t *testing.T) {
		up.Reset()
		resp := e.post(context.Background(), "/embeddings", e.key, []byte(`{"model":"claude-test","input":"x"}`))
		typ, code, _ := apiError(t, resp)
		if resp.StatusCode != 400 || typ != "invalid_request_error" || code != "unsupported_endpoint" || up.Stats().Requests != 0 {
			t.Errorf("HTTP %d %s %s, %d upstream requests", resp.StatusCode, typ, code, up.Stats().Requests)
		}
	})
}

// TestAnthropicWithoutUsage: when the upstream reports no usage, the adapter sends no usage chunk
// and the gateway counts the answer itself (estimated), once.
func TestAnthropicWithoutUsage(t *testing.T) {
	e, _ := anthropicEnv(t)
	for _, stream := range []string{"false", "true"} {
		resp := e.post(context.Background(), "/chat/completions", e.key,
			[]byte(`{"model":"claude-test","stream":`+stream+`,"mock":{"no_usage":true,"chunks":5},"messages":[{"role":"user","content":"count these words"}]}`))
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(raw), `"usage":{`) {
			t.Errorf("stream %s: HTTP %d %s", stream, resp.StatusCode, raw)
		}
		r := e.usageFor(resp.Header.Get("X-Request-Id"))
		if r.UsageSource != "estimated" || r.PromptTokens == 0 || r.CompletionTokens == 0 || r.Status != 200 {
			t.Errorf("stream %s: usage record %+v", stream, r)
		}
	}
}
