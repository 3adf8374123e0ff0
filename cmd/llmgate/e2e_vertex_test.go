package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/vertex"
)

// TestVertexConfig: the type and its section are accepted by the strict config, the key comes
// inline from the environment, and bad settings stop the start with the field named (never the
// key).
func TestVertexConfig(t *testing.T) {
	sa, err := mock.NewServiceAccount("gw@proj-cfg.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	key := string(sa.JSON("proj-cfg", "http://127.0.0.1:1/token"))
	env := envOf(map[string]string{"VERTEX_KEY": key})
	cfg := defaultConfig()
	err = parseConfig([]byte(`
providers:
  - name: vx
    type: vertex
    vertex:
      region: us-east5
      credentials_json: ${VERTEX_KEY}
      token_url: http://127.0.0.1:1/token
      anthropic: {default_max_tokens: 2048, beta: [prompt-caching-2024-07-31]}
models:
  - name: claude
    deployments: [{provider: vx, model: claude-sonnet-4-5@20250929}]
`), env, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	pc := cfg.Providers[0]
	if pc.Vertex.Region != "us-east5" || pc.Vertex.CredentialsJSON != key || pc.Vertex.Anthropic.DefaultMaxTokens != 2048 {
		t.Errorf("provider config %+v", pc.Vertex.Region)
	}
	provs, err := buildProviders(cfg.Providers, cfg.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := provs["vx"].(*vertex.Provider)
	if !ok {
		t.Fatalf("provider %T", provs["vx"])
	}
	p.CloseIdleConnections()

	for _, tc := range []struct {
		name string
		edit func(*ProviderConfig)
		want string
	}{
		{"no region", func(pc *ProviderConfig) { pc.Vertex.Region = "" }, "providers[0] (vx).vertex.region: required"},
		{"a key and credentials", func(pc *ProviderConfig) { pc.APIKey = "k" }, "providers[0] (vx).api_key:"},
		{"a broken key", func(pc *ProviderConfig) { pc.Vertex.CredentialsJSON = key[:len(key)/2] }, "providers[0] (vx).vertex.credentials_json:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg.Providers[0]
			tc.edit(&c)
			_, err := buildProviders([]ProviderConfig{c}, cfg.Outbound)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	bad := defaultConfig()
	if err := parseConfig([]byte("providers:\n  - name: v\n    type: vertex\n    vertex:\n      location: us\n"), env, &bad); err == nil {
		t.Error("an unknown field of the vertex section was accepted")
	}
}

// TestVertexThroughTheBinary: a gateway started from its configuration (type vertex, the key
// inline) serves both publishers to go-openai, stream and not, and its metrics show no token.
func TestVertexThroughTheBinary(t *testing.T) {
	sa, err := mock.NewServiceAccount("gw@proj-bin.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	h := mock.NewHandler(mock.Options{Chunks: 3, ServiceAccounts: sa.Trust()})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := newEnv(t, func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "vx", Type: "vertex", BaseURL: srv.URL + "/v1"},
			Vertex: vertex.Settings{Region: "europe-west1", CredentialsJSON: string(sa.JSON("proj-bin", srv.URL+"/token"))}})
		c.Models = append(c.Models,
			providers.ModelConfig{Name: "vx-gemini", Deployments: []providers.DeploymentConfig{{Provider: "vx", Model: "gemini-2.5-pro"}}},
			providers.ModelConfig{Name: "vx-claude", Deployments: []providers.DeploymentConfig{{Provider: "vx", Model: "claude-opus-4-1@20250805"}}})
	})
	c := e.client(e.key)
	for _, model := range []string{"vx-gemini", "vx-claude"} {
		resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: model,
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hi there"}}})
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if resp.Choices[0].Message.Content != "the mock upstream" || resp.Usage.CompletionTokens != 3 {
			t.Errorf("%s: %+v", model, resp)
		}
		if r := e.usageFor(resp.Header().Get("X-Request-Id")); r.Provider != "vx" || r.UsageSource != "provider" || r.PromptTokens != 5 {
			t.Errorf("%s: usage record %+v", model, r)
		}
		s, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: model, Stream: true,
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hi there"}}})
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for {
			chunk, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(chunk.Choices) > 0 {
				text.WriteString(chunk.Choices[0].Delta.Content)
			}
		}
		s.Close()
		if text.String() != "the mock upstream" {
			t.Errorf("%s stream: %q", model, text.String())
		}
	}
	if d := e.deploymentStatus("vx/gemini-2.5-pro"); !d.Available || d.Breaker != "closed" {
		t.Errorf("/v1/providers: %+v", d)
	}
	tokens := map[string]bool{}
	for _, r := range h.Requests(10) {
		if tok := strings.TrimPrefix(r.Headers["Authorization"], "Bearer "); tok != "" {
			tokens[tok] = true
		}
	}
	resp, err := http.Get(e.app.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(tokens) != 1 || h.TokensMinted() != 1 {
		t.Errorf("tokens seen %d, minted %d", len(tokens), h.TokensMinted())
	}
	for tok := range tokens {
		if strings.Contains(string(raw), tok) {
			t.Error("/metrics quotes the access token")
		}
	}
}
