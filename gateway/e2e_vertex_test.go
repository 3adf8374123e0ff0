package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/vertex"
	"github.com/llmgate/llmgate/store"
)

// The vertex adapter end to end: a go-openai client talks to the gateway, which routes public
// models to a provider of type vertex whose upstream is the mock speaking Vertex AI over loopback,
// OAuth included: the provider signs an assertion with the test's service account key (made here,
// never stored), the mock's token endpoint verifies it and mints the bearer token every call needs.

const (
	vertexGemini = "gemini-2.5-flash"
	vertexClaude = "claude-sonnet-4-5@20250929"
)

var (
	vertexSAOnce sync.Once
	vertexSA     *mock.ServiceAccount
)

// vertexAccount is the tests' service account, one RSA key per test binary.
func vertexAccount(t *testing.T) *mock.ServiceAccount {
	t.Helper()
	vertexSAOnce.Do(func() {
		var err error
		if vertexSA, err = mock.NewServiceAccount("llmgate@proj-e2e.iam.gserviceaccount.com"); err != nil {
			panic(err)
		}
	})
	return vertexSA
}

// vertexUpstream serves h (or the mock itself) for Vertex AI, trusting the tests' account.
func vertexUpstream(t *testing.T, opts mock.Options) (*httptest.Server, *mock.Handler) {
	t.Helper()
	opts.ServiceAccounts = vertexAccount(t).Trust()
	h := mock.NewHandler(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

// withVertex adds a vertex provider named name (its key's token_uri at base's /token) and two
// public models, public+"-gemini" and public+"-claude", each with one deployment whose breaker
// opens at the first failure.
func withVertex(t *testing.T, name, public, base string) envOption {
	key := vertexAccount(t).JSON("proj-e2e", base+"/token")
	p, err := vertex.New(vertex.Options{BaseURL: base + "/v1", Outbound: loopback,
		Settings: vertex.Settings{Region: "us-east5", CredentialsJSON: string(key)}})
	breaker := providers.BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Hour}
	return withRouting([]namedProvider{{name, p, err}},
		providers.ModelConfig{Name: public + "-gemini", Deployments: []providers.DeploymentConfig{{ID: name + "-gemini", Provider: name, Model: vertexGemini, Breaker: breaker}}},
		providers.ModelConfig{Name: public + "-claude", Deployments: []providers.DeploymentConfig{{ID: name + "-claude", Provider: name, Model: vertexClaude, Breaker: breaker}}})
}

// drainStream reads a go-openai stream to its end: the text, the tool calls, the finish reason.
func drainStream(t *testing.T, s *openai.ChatCompletionStream) (string, []openai.ToolCall, openai.FinishReason) {
	t.Helper()
	defer s.Close()
	var text strings.Builder
	var calls []openai.ToolCall
	var finish openai.FinishReason
	for {
		chunk, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return text.String(), calls, finish
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
			for _, tc := range c.Delta.ToolCalls {
				if tc.Index != nil && *tc.Index < len(calls) {
					calls[*tc.Index].Function.Arguments += tc.Function.Arguments
					continue
				}
				calls = append(calls, tc)
			}
			if c.FinishReason != "" {
				finish = c.FinishReason
			}
		}
	}
}

func TestVertexThroughGateway(t *testing.T) {
	srv, h := vertexUpstream(t, mock.Options{Chunks: 4})
	e := newEnv(t, withVertex(t, "vtx", "vx", srv.URL))
	c := e.client(e.key)
	ctx := context.Background()
	weather := []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather",
		Description: "Current weather", Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)}}}

	for _, tc := range []struct {
		publisher, model, upstream, path string
	}{
		{"google", "vx-gemini", vertexGemini, "/v1/projects/proj-e2e/locations/us-east5/publishers/google/models/" + vertexGemini},
		{"anthropic", "vx-claude", vertexClaude, "/v1/projects/proj-e2e/locations/us-east5/publishers/anthropic/models/" + vertexClaude},
	} {
		t.Run(tc.publisher, func(t *testing.T) {
			resp, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: tc.model, Messages: terseChat(), MaxTokens: 100})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content != "the mock upstream streams" || resp.Choices[0].FinishReason != openai.FinishReasonStop {
				t.Fatalf("answer = %+v", resp)
			}
			r := e.usageFor(resp.Header().Get("X-Request-Id"))
			if r.Status != 200 || r.UsageSource != "provider" || r.Provider != "vtx" || r.UpstreamModel != tc.upstream ||
				r.PromptTokens != 11 || r.CompletionTokens != 4 {
				t.Errorf("usage record = %+v", r)
			}
			got := h.Requests(1)[0]
			wantMethod := map[string]string{"google": ":generateContent", "anthropic": ":rawPredict"}[tc.publisher]
			if got.Path != tc.path+wantMethod || !strings.HasPrefix(got.Headers["Authorization"], "Bearer ya29.mock-") ||
				strings.Contains(got.Body, e.key) || got.Headers["X-Api-Key"] != "" || got.Headers["X-Goog-Api-Key"] != "" {
				t.Errorf("upstream request = %+v", got)
			}

			// Streamed, with the usage chunk asked for.
			s, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: tc.model, Messages: terseChat(), Stream: true,
				StreamOptions: &openai.StreamOptions{IncludeUsage: true}})
			if err != nil {
				t.Fatal(err)
			}
			reqID := s.Header().Get("X-Request-Id")
			if text, _, finish := drainStream(t, s); text != "the mock upstream streams" || finish != openai.FinishReasonStop {
				t.Errorf("stream: %q %q", text, finish)
			}
			r = e.usageFor(reqID)
			if r.Status != 200 || !r.Stream || r.UsageSource != "provider" || r.PromptTokens != 11 || r.CompletionTokens != 4 {
				t.Errorf("stream usage record = %+v", r)
			}
			wantMethod = map[string]string{"google": ":streamGenerateContent?alt=sse", "anthropic": ":streamRawPredict"}[tc.publisher]
			if got := h.Requests(1)[0]; got.Path != tc.path+wantMethod {
				t.Errorf("stream path %s", got.Path)
			}

			// Tools: a streamed call, then its result sent back and a text answer, not streamed.
			msgs := []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "What is the weather in get_weather Paris?"}}
			s, err = c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: tc.model, Messages: msgs, Tools: weather, Stream: true})
			if err != nil {
				t.Fatal(err)
			}
			_, calls, finish := drainStream(t, s)
			if len(calls) != 1 || calls[0].Function.Name != "get_weather" || gjson.Get(calls[0].Function.Arguments, "city").Str != "mock" ||
				calls[0].ID == "" || finish != openai.FinishReasonToolCalls {
				t.Fatalf("calls %+v finish %q", calls, finish)
			}
			msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, ToolCalls: calls},
				openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: calls[0].ID, Content: `{"temp":21}`})
			resp, err = c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: tc.model, Messages: msgs, Tools: weather})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content == "" || resp.Choices[0].FinishReason != openai.FinishReasonStop {
				t.Errorf("second turn = %+v", resp.Choices[0])
			}
			if r := e.usageFor(resp.Header().Get("X-Request-Id")); r.UsageSource != "provider" || r.CompletionTokens == 0 {
				t.Errorf("tool turn usage record = %+v", r)
			}
		})
	}
	// The other dialects reach Vertex AI through the gateway's translation to chat.
	for _, model := range []string{"vx-gemini", "vx-claude"} {
		resp := e.post(ctx, "/messages", e.key, []byte(`{"model":"`+model+`","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`),
			"anthropic-version", "2023-06-01")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || gjson.GetBytes(b, "type").Str != "message" || gjson.GetBytes(b, "content.0.text").Str != "the mock upstream streams" {
			t.Errorf("/v1/messages to %s: HTTP %d %s", model, resp.StatusCode, b)
		}
		resp = e.post(ctx, "/responses", e.key, []byte(`{"model":"`+model+`","input":"hi"}`))
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || gjson.GetBytes(b, "status").Str != "completed" || !strings.Contains(string(b), "the mock upstream streams") {
			t.Errorf("/v1/responses to %s: HTTP %d %s", model, resp.StatusCode, b)
		}
	}
	// Ten calls, one token: it is cached between them.
	if n := h.TokensMinted(); n != 1 {
		t.Errorf("%d tokens minted, want 1", n)
	}
}

// TestVertexStreamFailures: a stream whose access token lapses before it ends, and a stream that
// is not well formed, end the client's stream with an error event (never a clean end), leave a
// partial record and count as a failure of the deployment's breaker.
func TestVertexStreamFailures(t *testing.T) {
	// A token of two seconds, and an answer of about four: the mock ends the stream with Google's
	// UNAUTHENTICATED error (Anthropic's authentication_error event on Claude's) once it lapses.
	lapsing, _ := vertexUpstream(t, mock.Options{Chunks: 16, TokensPerSecond: 4, TokenLifetime: 2 * time.Second})
	// An upstream whose streams break off inside an event: the mock for tokens, a broken body
	// for the model calls.
	tokens := mock.NewHandler(mock.Options{ServiceAccounts: vertexAccount(t).Trust()})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokens.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if strings.Contains(r.URL.Path, "/anthropic/") {
			_, _ = io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_vrtx_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"+
				"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"+
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"half\"}}\n\n"+
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\"\n\n")
			return
		}
		_, _ = io.WriteString(w, `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"half"}]}}],"usageMetadata":{"trafficType":"ON_DEMAND"}}`+"\r\n\r\n"+
			`data: {"candidates":[{"content":{"role":"model","parts":[{"te`+"\r\n\r\n")
	}))
	t.Cleanup(broken.Close)
	e := newEnv(t, withVertex(t, "lapse", "lapse", lapsing.URL), withVertex(t, "broken", "broken", broken.URL))

	for _, model := range []string{"lapse-gemini", "lapse-claude", "broken-gemini", "broken-claude"} {
		t.Run(model, func(t *testing.T) {
			resp := e.post(context.Background(), "/chat/completions", e.key,
				[]byte(`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"tell me"}]}`))
			evs := readEvents(t, resp.Body)
			resp.Body.Close()
			var text strings.Builder
			for _, ev := range evs {
				if ev.data == "[DONE]" {
					t.Error("a failed stream ended with [DONE]")
				}
				text.WriteString(gjson.Get(ev.data, "choices.0.delta.content").Str)
			}
			if resp.StatusCode != 200 || len(evs) == 0 || !gjson.Get(evs[len(evs)-1].data, "error.message").Exists() || text.Len() == 0 {
				t.Fatalf("HTTP %d, events %+v", resp.StatusCode, evs)
			}
			r := e.usageFor(resp.Header.Get("X-Request-Id"))
			if r.Status < 500 || r.UsageSource != "partial" || r.CompletionTokens == 0 {
				t.Errorf("usage record = %+v", r)
			}
			if d := e.deploymentStatus(model); d.Breaker != "open" || d.Failed != 1 {
				t.Errorf("deployment %s: breaker %q, %d failed", model, d.Breaker, d.Failed)
			}
		})
	}
}

// TestVertexCredentialsNeverLeak: the service account's private key, the access tokens, the
// assertions and an API key reach no client, log line, metric or usage record, even when an
// upstream or the token endpoint quotes them.
func TestVertexCredentialsNeverLeak(t *testing.T) {
	const apiKey = "vertex-express-key-0123456789abcdef"
	sa := vertexAccount(t)
	up := mock.NewHandler(mock.Options{ServiceAccounts: sa.Trust(), RequireKey: apiKey})
	var mu sync.Mutex
	var seen []string // every credential the upstreams were sent
	note := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	// Models "leaky" answer 400 quoting the credentials they were sent, as an upstream might; the
	// token endpoint refuses assertions quoting them when refuse is set.
	var refuse sync.Mutex
	refusing := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if r.URL.Path == "/token" {
			form, _ := url.ParseQuery(string(b))
			note(form.Get("assertion"))
			refuse.Lock()
			no := refusing
			refuse.Unlock()
			if no {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"bad assertion `+string(b)+`"}`)
				return
			}
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok != "" {
			note(tok)
		}
		if strings.Contains(r.URL.Path, "leaky") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":{"code":400,"message":"credentials `+tok+r.Header.Get("X-Goog-Api-Key")+` were refused","status":"INVALID_ARGUMENT"}}`)
			return
		}
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	var logMu sync.Mutex
	express, err := vertex.New(vertex.Options{BaseURL: srv.URL + "/v1", APIKey: apiKey, Outbound: loopback})
	e := newEnv(t, withLog(lockedWriter{&logMu, &logs}), withVertex(t, "vtx", "vx", srv.URL),
		withRouting([]namedProvider{{"express", express, err}},
			providers.ModelConfig{Name: "express-leaky", Deployments: []providers.DeploymentConfig{{Provider: "express", Model: "leaky"}}},
			providers.ModelConfig{Name: "express", Deployments: []providers.DeploymentConfig{{Provider: "express", Model: vertexGemini}}}),
		withRouting(nil, providers.ModelConfig{Name: "vx-leaky", Deployments: []providers.DeploymentConfig{{Provider: "vtx", Model: "leaky"}}},
			providers.ModelConfig{Name: "vx-claude-leaky", Deployments: []providers.DeploymentConfig{{Provider: "vtx", Model: "claude-leaky"}}}))

	var answers []string
	ask := func(model string, stream bool) {
		body := `{"model":"` + model + `","stream":` + map[bool]string{true: "true", false: "false"}[stream] + `,"messages":[{"role":"user","content":"hi"}]}`
		resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, string(b))
		e.usageFor(resp.Header.Get("X-Request-Id"))
	}
	for _, m := range []string{"vx-gemini", "vx-claude", "express"} {
		ask(m, false)
		ask(m, true)
	}
	for _, m := range []string{"vx-leaky", "vx-claude-leaky", "express-leaky"} {
		ask(m, false)
		if !strings.Contains(answers[len(answers)-1], "were refused") {
			t.Errorf("%s: the upstream's message was lost: %s", m, answers[len(answers)-1])
		}
	}
	// A provider whose token endpoint refuses it, quoting the assertion: a fresh provider, so that
	// it has no token yet.
	refuse.Lock()
	refusing = true
	refuse.Unlock()
	key := sa.JSON("proj-e2e", srv.URL+"/token")
	fresh, err := vertex.New(vertex.Options{BaseURL: srv.URL + "/v1", Outbound: loopback, Settings: vertex.Settings{Region: "global", CredentialsJSON: string(key)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fresh.CloseIdleConnections)
	resp, err := fresh.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: vertexGemini,
		Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`), Header: http.Header{}})
	if err == nil {
		resp.Body.Close()
		t.Fatal("a refused token gave an answer")
	}
	answers = append(answers, err.Error())

	recs, err := e.st.ListUsage(context.Background(), store.UsageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := json.Marshal(recs)
	logMu.Lock()
	logText := logs.String()
	logMu.Unlock()
	pemBody := strings.Split(string(key), "-----")[2] // the key's base64, between its PEM armour
	secrets := append([]string{apiKey, strings.ReplaceAll(pemBody, `\n`, "")[:64], "PRIVATE KEY"}, seen...)
	if len(seen) < 4 {
		t.Fatalf("the upstreams saw %d credentials", len(seen))
	}
	for where, text := range map[string]string{"answers": strings.Join(answers, "\n"), "logs": logText, "metrics": e.metrics(), "usage rows": string(rows)} {
		for _, s := range secrets {
			if len(s) >= 8 && strings.Contains(text, s) {
				t.Errorf("the %s quote a credential (%.16s…)", where, s)
			}
		}
	}
}

// lockedWriter serialises writes to a buffer read by the test.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestVertexImagesAndReasoning: images reach both publishers in their own form, and Gemini's
// thinking on Vertex AI comes back as reasoning, billed as reasoning tokens.
func TestVertexImagesAndReasoning(t *testing.T) {
	srv, h := vertexUpstream(t, mock.Options{Chunks: 3})
	e := newEnv(t, withVertex(t, "vtx", "vx", srv.URL))
	c := e.client(e.key)
	image := []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
		{Type: openai.ChatMessagePartTypeText, Text: "What is this?"},
		{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: "data:image/png;base64,iVBORw0KGgo="}},
	}}}
	for model, path := range map[string]string{"vx-gemini": "contents.0.parts.1.inlineData.mimeType", "vx-claude": "messages.0.content.1.source.media_type"} {
		resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: model, Messages: image})
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if resp.Choices[0].Message.Content != "the mock upstream" {
			t.Errorf("%s: %+v", model, resp.Choices[0])
		}
		if got := gjson.Get(h.Requests(1)[0].Body, path).Str; got != "image/png" {
			t.Errorf("%s: %s = %q in %s", model, path, got, h.Requests(1)[0].Body)
		}
	}
	s, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: "vx-gemini", Messages: terseChat(),
		Stream: true, ReasoningEffort: "low"})
	if err != nil {
		t.Fatal(err)
	}
	var reasoning strings.Builder
	for {
		chunk, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chunk.Choices {
			reasoning.WriteString(ch.Delta.ReasoningContent)
		}
	}
	reqID := s.Header().Get("X-Request-Id")
	s.Close()
	if reasoning.String() != "the mock" {
		t.Errorf("reasoning %q", reasoning.String())
	}
	// Counted once, from Vertex AI's last event (the others carry no counts): 3 + 2 thought tokens.
	if r := e.usageFor(reqID); r.UsageSource != "provider" || r.PromptTokens != 11 || r.CompletionTokens != 5 || r.ReasoningTokens != 2 {
		t.Errorf("usage record = %+v", r)
	}
}
