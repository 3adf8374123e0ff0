package main

import (
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
)

// TestAnthropicConfig: the type and its section are accepted by the strict config, its key comes
// from the environment, and bad settings stop the start with the field named.
func TestAnthropicConfig(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "ANTHROPIC_API_KEY" {
			return "sk-ant-from-env", true
		}
		return "", false
	}
	cfg := defaultConfig()
	err := parseConfig([]byte(`
providers:
  - name: claude
    type: anthropic
    api_key: ${ANTHROPIC_API_KEY}
    anthropic:
      default_max_tokens: 2048
      pass_fields: [thinking, top_k]
      beta: [prompt-caching-2024-07-31]
models:
  - name: claude-sonnet
    deployments: [{provider: claude, model: claude-sonnet-4-5}]
`), env, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	pc := cfg.Providers[0]
	if pc.APIKey != "sk-ant-from-env" || pc.Anthropic.DefaultMaxTokens != 2048 || len(pc.Anthropic.PassFields) != 2 || len(pc.Anthropic.Beta) != 1 {
		t.Errorf("provider config %+v", pc)
	}
	provs, err := buildProviders(cfg.Providers, cfg.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := provs["claude"].(*anthropic.Provider); !ok {
		t.Errorf("provider %T", provs["claude"])
	}
	closeAll := func(m map[string]providers.Provider) {
		for _, p := range m {
			if ic, ok := p.(providers.IdleCloser); ok {
				ic.CloseIdleConnections()
			}
		}
	}
	closeAll(provs)

	cfg.Providers[0].Anthropic.PassFields = []string{"model"}
	if _, err := buildProviders(cfg.Providers, cfg.Outbound); err == nil || !strings.Contains(err.Error(), "providers[0] (claude).anthropic.pass_fields") {
		t.Errorf("a reserved pass field: %v", err)
	}
	bad := defaultConfig()
	if err := parseConfig([]byte("providers:\n  - name: c\n    type: anthropic\n    anthropic:\n      max_tokens: 5\n"), env, &bad); err == nil {
		t.Error("an unknown field of the anthropic section was accepted")
	}
}
