package main

import (
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers/bedrock"
)

// TestBedrockConfig: the type and its section are accepted by the strict config, the secret
// comes from the environment, and bad settings stop the start with the field named.
func TestBedrockConfig(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "BEDROCK_SECRET" {
			return "from-env/Secret0123456789abcdefghijklmn", true
		}
		return "", false
	}
	cfg := defaultConfig()
	err := parseConfig([]byte(`
providers:
  - name: aws
    type: bedrock
    bedrock:
      region: eu-central-1
      api: auto
      access_key_id: AKIACONFIGTEST000001
      secret_access_key: ${BEDROCK_SECRET}
      default_max_tokens: 2048
      pass_fields: [top_k]
      beta: [context-1m-2025-08-07]
models:
  - name: claude-sonnet
    deployments: [{provider: aws, model: eu.anthropic.claude-sonnet-4-5-20250929-v1:0}]
`), env, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	pc := cfg.Providers[0]
	if pc.Bedrock.Region != "eu-central-1" || pc.Bedrock.SecretAccessKey != "from-env/Secret0123456789abcdefghijklmn" || pc.Bedrock.DefaultMaxTokens != 2048 {
		t.Errorf("provider config %+v", pc)
	}
	provs, err := buildProviders(cfg.Providers, cfg.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := provs["aws"].(*bedrock.Provider)
	if !ok || p.Region() != "eu-central-1" {
		t.Fatalf("provider %T", provs["aws"])
	}
	p.CloseIdleConnections()

	for field, want := range map[string]string{
		"api: invoke-everything": "bedrock.api",
		"session_token: x":       "bedrock.session_token",
	} {
		c := defaultConfig()
		if err := parseConfig([]byte("providers:\n  - name: b\n    type: bedrock\n    bedrock:\n      region: us-east-1\n      "+field+"\n"), env, &c); err != nil {
			t.Fatal(err)
		}
		if _, err := buildProviders(c.Providers, c.Outbound); err == nil || !strings.Contains(err.Error(), "providers[0] (b)."+want) {
			t.Errorf("%s: %v", field, err)
		}
	}
	bad := defaultConfig()
	if err := parseConfig([]byte("providers:\n  - name: b\n    type: bedrock\n    bedrock:\n      secret_key: x\n"), env, &bad); err == nil {
		t.Error("an unknown field of the bedrock section was accepted")
	}
}
