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

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/gemini"
	"github.com/llmgate/llmgate/providers/mock"
)

// The gemini adapter end to end: a go-openai client talks to the gateway, which routes the public
// model "gemini-pub" to a provider of type gemini whose upstream is the mock speaking Gemini's
// native API over loopback.

const geminiUpstreamModel = "gemini-2.5-flash"

// withGemini adds a gemini provider named name in front of base (an httptest URL) and a public
// model routed to it.
func withGemini(name, public, base string) envOption {
	p, err := gemini.New(gemini.Options{BaseURL: base + "/v1beta", APIKey: upstreamKey, Outbound: loopback})
	return withRouting([]namedProvider{{name, p, err}}, providers.ModelConfig{Name: public,
		Deployments: []providers.DeploymentConfig{{Provider: name, Model: geminiUpstreamModel}}})
}

// newGeminiEnv starts a gateway whose "gemini-pub" model is served by a Gemini mock with opts.
func newGeminiEnv(t *testing.T, opts mock.Options) (*env, *mock.Handler) {
	t.Helper()
	opts.RequireKey = upstreamKey
	gh := mock.NewHandler(opts)
	srv := httptest.NewServer(gh)
	t.Cleanup(srv.Close)
	return newEnv(t, withGemini("gem", "gemini-pub", srv.URL)), gh
}

// geminiPrompt is the mock's prompt count of terseChat: systemInstruction (3 + 3 words) and one
// user content (3 + 2 words).
const geminiPrompt = 11

func terseChat() []openai.ChatCompletionMessage {
	return []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: "You are terse."},
		{Role: openai.ChatMessageRoleUser, Content: "Say hello"},
	}
}

func TestGeminiChatThroughGateway(t *testing.T) {
	e, gh := newGeminiEnv(t, mock.Options{Chunks: 6})
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "gemini-pub", Messages: terseChat(), MaxCompletionTokens: 100, Temperature: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != "the mock upstream streams deterministic words" ||
		resp.Choices[0].FinishReason != openai.FinishReasonStop || resp.Model != geminiUpstreamModel {
		t.Fatalf("answer = %+v", resp)
	}
	if resp.Usage.PromptTokens != geminiPrompt || resp.Usage.CompletionTokens != 6 || resp.Usage.TotalTokens != geminiPrompt+6 {
		t.Errorf("usage = %+v", resp.Usage)
	}
	r := e.usageFor(resp.Header().Get("X-Request-Id"))
	if r.Status != 200 || r.UsageSource != "provider" || r.Provider != "gem" || r.UpstreamModel != geminiUpstreamModel ||
		r.PromptTokens != geminiPrompt || r.CompletionTokens != 6 || r.ReasoningTokens != 0 {
		t.Errorf("usage record = %+v", r)
	}
	// What reached Gemini: the native path, the gateway's key as x-goog-api-key (never the
	// caller's, never in the URL) and a translated body.
	seen := gh.Requests(1)
	if len(seen) != 1 {
		t.Fatalf("the upstream saw %d requests", len(seen))
	}
	got := seen[0]
	if got.Path != "/v1beta/models/"+geminiUpstreamModel+":generateContent" || got.Headers["X-Goog-Api-Key"] != upstreamKey ||
		got.Headers["Authorization"] != "" || strings.Contains(got.Body, e.key) {
		t.Errorf("upstream request = %+v", got)
	}
	if gjson.Get(got.Body, "systemInstruction.parts.0.text").Str != "You are terse." || gjson.Get(got.Body, "generationConfig.maxOutputTokens").Int() != 100 ||
		gjson.Get(got.Body, "generationConfig.temperature").Float() != 0.5 {
		t.Errorf("upstream body = %s", got.Body)
	}
}

func TestGeminiStreamThroughGateway(t *testing.T) {
	e, gh := newGeminiEnv(t, mock.Options{Chunks: 5})
	stream, err := e.client(e.key).CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "gemini-pub", Messages: terseChat(), Stream: true, ReasoningEffort: "low"})
	if err != nil {
		t.Fatal(err)
	}
	var content, reasoning strings.Builder
	finish := openai.FinishReason("")
	sawUsage := false
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if chunk.Usage != nil {
			sawUsage = true
		}
		for _, c := range chunk.Choices {
			content.WriteString(c.Delta.Content)
			reasoning.WriteString(c.Delta.ReasoningContent)
			if c.FinishReason != "" {
				finish = c.FinishReason
			}
		}
	}
	reqID := stream.Header().Get("X-Request-Id")
	stream.Close()
	if content.String() != "the mock upstream streams deterministic" || reasoning.String() != "the mock" || finish != openai.FinishReasonStop {
		t.Errorf("content %q reasoning %q finish %q", content.String(), reasoning.String(), finish)
	}
	if sawUsage {
		t.Error("the client did not ask for usage, yet saw the usage chunk the gateway asked for")
	}
	// Billed once, from the last cumulative usageMetadata: 5 answer + 2 thought tokens.
	r := e.usageFor(reqID)
	if r.Status != 200 || !r.Stream || r.UsageSource != "provider" || r.PromptTokens != geminiPrompt || r.CompletionTokens != 7 || r.ReasoningTokens != 2 {
		t.Errorf("usage record = %+v", r)
	}
	got := gh.Requests(1)[0]
	if got.Path != "/v1beta/models/"+geminiUpstreamModel+":streamGenerateContent?alt=sse" ||
		!gjson.Get(got.Body, "generationConfig.thinkingConfig.includeThoughts").Bool() {
		t.Errorf("upstream request = %+v", got)
	}
}

func TestGeminiToolRoundTripThroughGateway(t *testing.T) {
	e, gh := newGeminiEnv(t, mock.Options{})
	tools := []openai.Tool{
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather", Description: "Current weather",
			Parameters: json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,
				"properties":{"city":{"type":"string"},"unit":{"type":["string","null"],"enum":["c","f"]}},"required":["city"]}`)}},
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_time",
			Parameters: json.RawMessage(`{"type":"object","properties":{"tz":{"type":"string"}}}`)}},
	}
	msgs := []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Weather and time in Paris?"}}
	c := e.client(e.key)

	// Streamed first turn: two parallel calls, assembled by index as clients do.
	stream, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "gemini-pub", Messages: msgs, Tools: tools, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	var calls []openai.ToolCall
	finish := openai.FinishReason("")
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chunk.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil || *tc.Index != len(calls) {
					t.Fatalf("tool call index %v, want %d", tc.Index, len(calls))
				}
				calls = append(calls, tc)
			}
			if ch.FinishReason != "" {
				finish = ch.FinishReason
			}
		}
	}
	stream.Close()
	if len(calls) != 2 || calls[0].Function.Name != "get_weather" || calls[1].Function.Name != "get_time" ||
		calls[0].Function.Arguments != `{"city":"mock","unit":"c"}` || calls[0].ID == calls[1].ID || finish != openai.FinishReasonToolCalls {
		t.Fatalf("calls %+v finish %q", calls, finish)
	}
	first := gh.Requests(1)[0].Body
	if strings.Contains(first, "additionalProperties") || strings.Contains(first, "$schema") {
		t.Errorf("schema keywords Gemini refuses reached it: %s", first)
	}

	// Second turn: the calls and their results go back; the model answers in text.
	msgs = append(msgs,
		openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, ToolCalls: calls},
		openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: calls[1].ID, Content: "12:00"},
		openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: calls[0].ID, Content: `{"temp":21,"unit":"c"}`})
	resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "gemini-pub", Messages: msgs, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content == "" || resp.Choices[0].FinishReason != openai.FinishReasonStop || len(resp.Choices[0].Message.ToolCalls) != 0 {
		t.Fatalf("second turn = %+v", resp.Choices[0])
	}
	second := gh.Requests(1)[0].Body
	model, results := gjson.Get(second, "contents.1"), gjson.Get(second, "contents.2.parts")
	if model.Get("role").Str != "model" || model.Get("parts.0.functionCall.name").Str != "get_weather" ||
		model.Get("parts.0.thoughtSignature").Str == "" || model.Get("parts.1.thoughtSignature").Exists() {
		t.Errorf("calls sent back: %s", model.Raw)
	}
	if results.Get("0.functionResponse.name").Str != "get_time" || results.Get("0.functionResponse.response.content").Str != "12:00" ||
		results.Get("1.functionResponse.name").Str != "get_weather" || results.Get("1.functionResponse.response.temp").Int() != 21 {
		t.Errorf("results sent back: %s", results.Raw)
	}
	r := e.usageFor(resp.Header().Get("X-Request-Id"))
	if r.UsageSource != "provider" || r.CompletionTokens != 20 {
		t.Errorf("usage record = %+v", r)
	}
}

func TestGeminiImagesThroughGateway(t *testing.T) {
	e, gh := newGeminiEnv(t, mock.Options{Chunks: 2})
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "gemini-pub",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
			{Type: openai.ChatMessagePartTypeText, Text: "Compare these"},
			{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "https://images.example/cat.png", Detail: openai.ImageURLDetailHigh}},
			{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	// Images are free in the mock's count: 3 + 2 words.
	if resp.Choices[0].Message.Content != "the mock" || resp.Usage.PromptTokens != 5 {
		t.Errorf("answer = %+v", resp)
	}
	parts := gjson.Get(gh.Requests(1)[0].Body, "contents.0.parts")
	if parts.Get("1.fileData.fileUri").Str != "https://images.example/cat.png" || parts.Get("1.fileData.mimeType").Str != "image/png" ||
		parts.Get("2.inlineData.mimeType").Str != "image/jpeg" || parts.Get("2.inlineData.data").Str != "/9j/4AAQSkZJRg==" {
		t.Errorf("parts sent = %s", parts.Raw)
	}
}

func TestGeminiErrorsThroughGateway(t *testing.T) {
	ok := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	okSrv := httptest.NewServer(ok)
	t.Cleanup(okSrv.Close)
	failSrv := httptest.NewServer(mock.NewHandler(mock.Options{RequireKey: upstreamKey, ErrorRate: 1}))
	t.Cleanup(failSrv.Close)
	// An upstream that sends two chunks and ends without a finishReason.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i, word := range []string{"half", " an answer"} {
			_, _ = io.WriteString(w, `data: {"candidates":[{"content":{"parts":[{"text":"`+word+`"}],"role":"model"},"index":0}],`+
				`"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":`+strconv.Itoa(2*i+1)+`,"totalTokenCount":7}}`+"\r\n\r\n")
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(cut.Close)
	e := newEnv(t, withGemini("gem", "gemini-pub", okSrv.URL), withGemini("gemfail", "gemini-fail", failSrv.URL),
		withGemini("gemcut", "gemini-cut", cut.URL))

	t.Run("an untranslatable request is the caller's error and reaches no upstream", func(t *testing.T) {
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gemini-pub","n":2,"messages":[{"role":"user","content":"x"}]}`))
		if typ, _, msg := apiError(t, resp); resp.StatusCode != 400 || typ != "invalid_request_error" || !strings.Contains(msg, "'n'") {
			t.Errorf("HTTP %d %s %q", resp.StatusCode, typ, msg)
		}
		resp = e.post(context.Background(), "/embeddings", e.key, []byte(`{"model":"gemini-pub","input":"x"}`))
		if typ, _, msg := apiError(t, resp); resp.StatusCode != 400 || typ != "invalid_request_error" || !strings.Contains(msg, "chat/completions") {
			t.Errorf("embeddings: HTTP %d %s %q", resp.StatusCode, typ, msg)
		}
		if s := ok.Stats(); s.Requests != 0 {
			t.Errorf("the upstream saw %d requests", s.Requests)
		}
	})
	t.Run("an upstream failure is a 502 in OpenAI's shape", func(t *testing.T) {
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gemini-fail","messages":[{"role":"user","content":"x"}]}`))
		reqID := resp.Header.Get("X-Request-Id")
		if typ, _, msg := apiError(t, resp); resp.StatusCode != 502 || typ != "server_error" || !strings.Contains(msg, "simulated 500") {
			t.Errorf("HTTP %d %s %q", resp.StatusCode, typ, msg)
		}
		if r := e.usageFor(reqID); r.Status != 502 || r.UsageSource != "" || r.PromptTokens != 0 {
			t.Errorf("usage record = %+v", r)
		}
	})
	t.Run("a stream cut before its finish reason ends with an error event", func(t *testing.T) {
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gemini-cut","stream":true,"messages":[{"role":"user","content":"x"}]}`))
		defer resp.Body.Close()
		evs := readEvents(t, resp.Body)
		var text strings.Builder
		for _, ev := range evs {
			if ev.data == "[DONE]" {
				t.Error("an interrupted stream must not end with [DONE]")
			}
			if gjson.Get(ev.data, "usage").Exists() {
				t.Errorf("the injected usage chunk reached the client: %s", ev.data)
			}
			text.WriteString(gjson.Get(ev.data, "choices.0.delta.content").Str)
		}
		if text.String() != "half an answer" || len(evs) == 0 || !gjson.Get(evs[len(evs)-1].data, "error.message").Exists() {
			t.Fatalf("events = %+v", evs)
		}
		// The tokens Gemini reported before the cut are kept, marked partial.
		r := e.usageFor(resp.Header.Get("X-Request-Id"))
		if r.Status != 502 || r.ErrorType != "upstream_stream_error" || r.UsageSource != "partial" || r.PromptTokens != 4 || r.CompletionTokens != 3 {
			t.Errorf("usage record = %+v", r)
		}
	})
}
