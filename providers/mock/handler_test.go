package mock

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
)

func TestChatNonStream(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		override   string
		maxTokens  int
		wantTokens int
		wantFinish openai.FinishReason
		wantUsage  bool
	}{
		{name: "defaults", wantTokens: 20, wantFinish: openai.FinishReasonStop, wantUsage: true},
		{name: "options", opts: Options{Chunks: 4, TokensPerChunk: 3}, wantTokens: 12,
			wantFinish: openai.FinishReasonStop, wantUsage: true},
		{name: "override", opts: Options{Chunks: 4}, override: `{"chunks":2,"tokens_per_chunk":5}`,
			wantTokens: 10, wantFinish: openai.FinishReasonStop, wantUsage: true},
		{name: "max tokens cuts short", maxTokens: 7, wantTokens: 7,
			wantFinish: openai.FinishReasonLength, wantUsage: true},
		{name: "max tokens above the answer", maxTokens: 50, wantTokens: 20,
			wantFinish: openai.FinishReasonStop, wantUsage: true},
		{name: "no usage", override: `{"no_usage":true}`, wantTokens: 20, wantFinish: openai.FinishReasonStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := startServer(t, tt.opts)
			client := newClient(t, srv, tt.override)
			resp, err := client.CreateChatCompletion(testCtx(t), chatRequest(false, false, tt.maxTokens))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "chat.completion" || resp.Model != "gpt-test" || !strings.HasPrefix(resp.ID, "chatcmpl-") {
				t.Errorf("object %q, model %q, id %q", resp.Object, resp.Model, resp.ID)
			}
			if len(resp.Choices) != 1 {
				t.Fatalf("%d choices", len(resp.Choices))
			}
			ch := resp.Choices[0]
			if ch.Message.Role != openai.ChatMessageRoleAssistant || ch.Message.Content != answerText(tt.wantTokens) {
				t.Errorf("message %+v", ch.Message)
			}
			if got := len(strings.Fields(ch.Message.Content)); got != tt.wantTokens {
				t.Errorf("content has %d words, want %d", got, tt.wantTokens)
			}
			if ch.FinishReason != tt.wantFinish {
				t.Errorf("finish_reason %q, want %q", ch.FinishReason, tt.wantFinish)
			}
			want := openai.Usage{}
			if tt.wantUsage {
				want = openai.Usage{PromptTokens: chatPromptTokens, CompletionTokens: tt.wantTokens,
					TotalTokens: chatPromptTokens + tt.wantTokens}
			}
			got := resp.Usage
			got.PromptTokensDetails, got.CompletionTokensDetails = nil, nil
			if got != want {
				t.Errorf("usage %+v, want %+v", got, want)
			}
		})
	}
}

func TestChatStream(t *testing.T) {
	tests := []struct {
		name         string
		opts         Options
		includeUsage bool
		maxTokens    int
		override     string
		wantChunks   int
		wantTokens   int
		wantFinish   openai.FinishReason
		wantUsage    bool
	}{
		{name: "without include_usage", opts: Options{Chunks: 5}, wantChunks: 5, wantTokens: 5,
			wantFinish: openai.FinishReasonStop},
		{name: "with include_usage", opts: Options{Chunks: 5}, includeUsage: true, wantChunks: 5,
			wantTokens: 5, wantFinish: openai.FinishReasonStop, wantUsage: true},
		{name: "tokens per chunk", opts: Options{Chunks: 3, TokensPerChunk: 4}, includeUsage: true,
			wantChunks: 3, wantTokens: 12, wantFinish: openai.FinishReasonStop, wantUsage: true},
		{name: "max tokens", opts: Options{Chunks: 10, TokensPerChunk: 3}, includeUsage: true, maxTokens: 7,
			wantChunks: 3, wantTokens: 7, wantFinish: openai.FinishReasonLength, wantUsage: true},
		{name: "no_usage beats include_usage", opts: Options{Chunks: 2}, includeUsage: true,
			override: `{"no_usage":true}`, wantChunks: 2, wantTokens: 2, wantFinish: openai.FinishReasonStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, h := startServer(t, tt.opts)
			client := newClient(t, srv, tt.override)
			stream, err := client.CreateChatCompletionStream(testCtx(t),
				chatRequest(true, tt.includeUsage, tt.maxTokens))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			var chunks []openai.ChatCompletionStreamResponse
			for {
				c, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				chunks = append(chunks, c)
			}
			// role, content…, finish, [usage]
			want := 1 + tt.wantChunks + 1
			if tt.wantUsage {
				want++
			}
			if len(chunks) != want {
				t.Fatalf("%d chunks, want %d: %+v", len(chunks), want, chunks)
			}
			if d := chunks[0].Choices[0].Delta; d.Role != openai.ChatMessageRoleAssistant || d.Content != "" {
				t.Errorf("first chunk delta %+v", d)
			}
			var text strings.Builder
			for _, c := range chunks[1 : 1+tt.wantChunks] {
				if c.Object != "chat.completion.chunk" || c.Model != "gpt-test" || c.ID != chunks[0].ID {
					t.Errorf("chunk %+v", c)
				}
				if c.Choices[0].FinishReason != "" || c.Usage != nil {
					t.Errorf("content chunk %+v", c)
				}
				text.WriteString(c.Choices[0].Delta.Content)
			}
			if text.String() != answerText(tt.wantTokens) {
				t.Errorf("text %q, want %q", text.String(), answerText(tt.wantTokens))
			}
			if fin := chunks[1+tt.wantChunks]; fin.Choices[0].FinishReason != tt.wantFinish || fin.Usage != nil {
				t.Errorf("finish chunk %+v", fin)
			}
			if tt.wantUsage {
				last := chunks[len(chunks)-1]
				if len(last.Choices) != 0 || last.Usage == nil {
					t.Fatalf("usage chunk %+v", last)
				}
				if u := last.Usage; u.PromptTokens != chatPromptTokens || u.CompletionTokens != tt.wantTokens ||
					u.TotalTokens != chatPromptTokens+tt.wantTokens {
					t.Errorf("usage %+v", u)
				}
			}
			waitFor(t, "completed", func() bool { return h.Stats().Completed == 1 })
		})
	}
}

// TestChatStreamWire checks what a typed client cannot: "usage":null on every chunk but the
// usage chunk when include_usage is on, no usage field at all otherwise, and the framing.
func TestChatStreamWire(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 3})
	for _, include := range []bool{false, true} {
		body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		if include {
			body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
		}
		resp, raw := post(t, srv, "/v1/chat/completions", body)
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("content type %q", ct)
		}
		events := sseEvents(t, raw)
		if events[len(events)-1] != "[DONE]" {
			t.Fatalf("last event %q", events[len(events)-1])
		}
		for i, ev := range events[:len(events)-1] {
			m := decode[map[string]any](t, ev)
			usage, has := m["usage"]
			isUsageChunk := include && i == len(events)-2
			switch {
			case isUsageChunk:
				if choices, _ := m["choices"].([]any); choices == nil || len(choices) != 0 {
					t.Errorf("usage chunk choices %v", m["choices"])
				}
				want := map[string]any{"prompt_tokens": 4.0, "completion_tokens": 3.0, "total_tokens": 7.0,
					"prompt_tokens_details":     map[string]any{"cached_tokens": 0.0},
					"completion_tokens_details": map[string]any{"reasoning_tokens": 0.0}}
				if !mapsEqual(usage, want) {
					t.Errorf("usage %v", usage)
				}
			case include:
				if !has || usage != nil {
					t.Errorf("event %d: want \"usage\":null, got %q", i, ev)
				}
			case has:
				t.Errorf("event %d carries usage without include_usage: %q", i, ev)
			}
		}
	}
}

func mapsEqual(a any, b map[string]any) bool {
	am, ok := a.(map[string]any)
	if !ok || len(am) != len(b) {
		return false
	}
	for k, v := range b {
		if sub, ok := v.(map[string]any); ok {
			if !mapsEqual(am[k], sub) {
				return false
			}
		} else if am[k] != v {
			return false
		}
	}
	return true
}

func TestCompletions(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 4, TokensPerChunk: 2})
	client := newClient(t, srv, "")
	req := openai.CompletionRequest{Model: "mock-instruct", Prompt: []string{"one two", "three"}}

	t.Run("non-stream", func(t *testing.T) {
		resp, err := client.CreateCompletion(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Object != "text_completion" || resp.Model != "mock-instruct" || len(resp.Choices) != 1 {
			t.Fatalf("response %+v", resp)
		}
		if c := resp.Choices[0]; c.Text != answerText(8) || c.FinishReason != "stop" {
			t.Errorf("choice %+v", c)
		}
		if u := resp.Usage; u == nil || u.PromptTokens != 3 || u.CompletionTokens != 8 || u.TotalTokens != 11 {
			t.Errorf("usage %+v", u)
		}
	})

	t.Run("stream", func(t *testing.T) {
		req := req
		req.Stream, req.MaxTokens = true, 5
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		stream, err := client.CreateCompletionStream(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		var text strings.Builder
		var finish string
		var usage *openai.Usage
		n := 0
		for {
			c, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			if c.Object != "text_completion" {
				t.Errorf("object %q", c.Object)
			}
			if c.Usage != nil {
				usage = c.Usage
				continue
			}
			text.WriteString(c.Choices[0].Text)
			finish += c.Choices[0].FinishReason
		}
		// 3 content chunks (2+2+1 tokens), the finish chunk, the usage chunk
		if n != 5 || text.String() != answerText(5) || finish != "length" {
			t.Errorf("%d chunks, text %q, finish %q", n, text.String(), finish)
		}
		if usage == nil || usage.PromptTokens != 3 || usage.CompletionTokens != 5 {
			t.Errorf("usage %+v", usage)
		}
	})
}

func TestEmbeddings(t *testing.T) {
	srv, _ := startServer(t, Options{})
	client := newClient(t, srv, "")
	embed := func(t *testing.T, req openai.EmbeddingRequest) openai.EmbeddingResponse {
		t.Helper()
		req.Model = "mock-embedding"
		resp, err := client.CreateEmbeddings(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	one := embed(t, openai.EmbeddingRequest{Input: "hello brave new world"})
	many := embed(t, openai.EmbeddingRequest{Input: []string{"other text", "hello brave new world"}})
	b64 := embed(t, openai.EmbeddingRequest{Input: []string{"other text", "hello brave new world"},
		EncodingFormat: openai.EmbeddingEncodingFormatBase64})
	wide := embed(t, openai.EmbeddingRequest{Input: "x", Dimensions: 64})

	if len(one.Data) != 1 || len(one.Data[0].Embedding) != defaultDimensions {
		t.Fatalf("one: %+v", one.Data)
	}
	if one.Usage.PromptTokens != 4 || one.Usage.TotalTokens != 4 || string(one.Model) != "mock-embedding" {
		t.Errorf("one: usage %+v, model %q", one.Usage, one.Model)
	}
	if len(many.Data) != 2 || many.Data[1].Index != 1 || many.Usage.PromptTokens != 6 {
		t.Fatalf("many: %+v", many)
	}
	if !equalVectors(one.Data[0].Embedding, many.Data[1].Embedding) {
		t.Errorf("the same input gave different vectors")
	}
	if equalVectors(many.Data[0].Embedding, many.Data[1].Embedding) {
		t.Errorf("different inputs gave the same vector")
	}
	for i := range many.Data {
		if !equalVectors(many.Data[i].Embedding, b64.Data[i].Embedding) {
			t.Errorf("base64 vector %d differs from the float one", i)
		}
	}
	if len(wide.Data[0].Embedding) != 64 {
		t.Errorf("dimensions: %d", len(wide.Data[0].Embedding))
	}
	var norm float64
	for _, x := range many.Data[0].Embedding {
		norm += float64(x) * float64(x)
	}
	if math.Abs(norm-1) > 1e-5 {
		t.Errorf("squared norm %v, want 1", norm)
	}
}

func equalVectors(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestModels(t *testing.T) {
	srv, _ := startServer(t, Options{})
	models, err := newClient(t, srv, "").ListModels(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Models) == 0 || models.Models[0].Object != "model" {
		t.Errorf("models %+v", models)
	}
}

// TestPromptTokens pins the documented formula, including the shapes typed clients rarely send.
func TestPromptTokens(t *testing.T) {
	tests := []struct {
		path, body string
		want       int
	}{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a b\tc"}]}`, 6},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a b"},` +
			`{"type":"image_url","image_url":{"url":"x y z"}},{"type":"text","text":" c "}]},` +
			`{"role":"assistant","content":null,"tool_calls":[]}]}`, 9},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \u0020 x\ny"}]}`, 6},
		{"/v1/completions", `{"model":"m","prompt":"  one   two  "}`, 2},
		{"/v1/completions", `{"model":"m","prompt":[[1,2,3],[4]]}`, 4},
		{"/v1/embeddings", `{"model":"m","input":[5,6,7]}`, 3},
		{"/v1/embeddings", `{"model":"m","input":[[5,6],"a b c",""]}`, 5},
	}
	srv, _ := startServer(t, Options{Chunks: 1})
	for _, tt := range tests {
		resp, body := post(t, srv, tt.path, tt.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", tt.body, resp.StatusCode, body)
		}
		got := decode[struct {
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			}
		}](t, body)
		if got.Usage.PromptTokens != tt.want {
			t.Errorf("%s: prompt_tokens %d, want %d", tt.body, got.Usage.PromptTokens, tt.want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"invalid JSON", "POST", "/v1/chat/completions", `{"model":"m","messages":[}`, 400},
		{"not an object", "POST", "/v1/chat/completions", `[1]`, 400},
		{"no model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400},
		{"no messages", "POST", "/v1/chat/completions", `{"model":"m","prompt":"x"}`, 400},
		{"no prompt", "POST", "/v1/completions", `{"model":"m","messages":[]}`, 400},
		{"no input", "POST", "/v1/embeddings", `{"model":"m"}`, 400},
		{"unknown override", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"mock":{"chunk":1}}`, 400},
		{"bad override value", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"mock":{"chunks":0}}`, 400},
		{"bad status", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"mock":{"status":200}}`, 400},
		{"wrong method", "GET", "/v1/chat/completions", ``, 405},
		{"unknown path", "POST", "/v1/nothing", `{}`, 404},
	}
	srv, _ := startServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, body := do(t, srv, req)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			e := decode[struct{ Error openai.APIError }](t, body)
			if e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
				t.Errorf("error body %s", body)
			}
		})
	}
}
