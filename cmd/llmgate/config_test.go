package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "llmgate.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	p := writeConfig(t, `
listen: ":${PORT}"
providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
    response_header_timeout: 45s
models:
  - name: gpt-4o
    deployments:
      - provider: openai
        model: gpt-4o-2024-08-06
        weight: 3
quota:
  default_tier: pro
gateway:
  key_cache_ttl: 2s
  max_body_bytes: 1048576
usage:
  batch_size: 500
`)
	cfg, err := loadConfig(p, envOf(map[string]string{"PORT": "9000", "OPENAI_API_KEY": "sk-test", "LLMGATE_ADMIN_LISTEN": "127.0.0.1:9001"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":9000" || cfg.AdminListen != "127.0.0.1:9001" {
		t.Errorf("listen %q admin %q", cfg.Listen, cfg.AdminListen)
	}
	pc := cfg.Providers[0]
	if pc.APIKey != "sk-test" || pc.ResponseHeaderTimeout != 45*time.Second || pc.BaseURL != "https://api.openai.com/v1" {
		t.Errorf("provider = %+v", pc)
	}
	if d := cfg.Models[0].Deployments[0]; d.Model != "gpt-4o-2024-08-06" || d.Weight != 3 {
		t.Errorf("deployment = %+v", d)
	}
	if cfg.Gateway.KeyCacheTTL != 2*time.Second || cfg.Gateway.MaxBodyBytes != 1<<20 || cfg.Usage.BatchSize != 500 || cfg.Quota.DefaultTier != "pro" {
		t.Errorf("sections = %+v %+v %+v", cfg.Gateway, cfg.Usage, cfg.Quota)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	p := writeConfig(t, "database_url: postgres://file/db\nlisten: ':1'\n")
	cfg, err := loadConfig(p, envOf(map[string]string{"LLMGATE_DATABASE_URL": "postgres://env/db", "LLMGATE_LISTEN": ":2"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != "postgres://env/db" || cfg.Listen != ":2" {
		t.Errorf("env did not override the file: %q %q", cfg.DatabaseURL, cfg.Listen)
	}
}

func TestNoProvidersMeansBuiltinMock(t *testing.T) {
	cfg, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Providers) != 1 || cfg.Providers[0].Type != "mock" || len(cfg.Models) == 0 || cfg.DataDir != "." {
		t.Errorf("default config = %+v", cfg)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, yaml string
		env        map[string]string
		want       string // substring of the error
	}{
		{"unknown top-level field", "listn: ':8080'\n", nil, "listn"},
		{"unknown nested field", "gateway:\n  max_bodybytes: 3\n", nil, "max_bodybytes"},
		{"unset variable", "admin_token: ${NOPE_NOT_SET}\n", nil, "NOPE_NOT_SET"},
		{"bad duration", "gateway:\n  write_timeout: soon\n", nil, "soon"},
		{"short admin token", "admin_token: short\n", nil, "admin_token"},
		{"public admin listener without token", "admin_listen: 0.0.0.0:8081\n", nil, "admin_listen"},
		{"bad listen", "listen: nonsense\n", nil, "listen"},
		{"key cache beyond the revocation bound", "gateway:\n  key_cache_ttl: 6s\n", nil, "gateway.key_cache_ttl"},
		{"JSON depth beyond the bound", "gateway:\n  max_json_depth: 100000\n", nil, "gateway.max_json_depth"},
		{"negative global rate", "gateway:\n  global_rate_limit: {requests_per_second: -1}\n", nil, "gateway.global_rate_limit.requests_per_second"},
		{"user id header not a name", "gateway:\n  user_id_header: 'X User'\n", nil, "gateway.user_id_header"},
		{"user id header the gateway sets", "gateway:\n  user_id_header: authorization\n", nil, "gateway.user_id_header"},
		{"endpoint limit of no endpoint", "quota:\n  endpoint_limits: {chat: {free: {rpm: 1}}}\n", nil, "quota.endpoint_limits.chat"},
		{"endpoint limit of no tier", "quota:\n  endpoint_limits: {embeddings: {gold: {rpm: 1}}}\n", nil, "quota.endpoint_limits.embeddings.gold"},
		{"permit lease longer than a second", "quota:\n  permit_leases: {enabled: true, duration: 2s}\n", nil, "quota.permit_leases.duration"},
		{"permit lease of too many permits", "quota:\n  permit_leases: {max_permits: 20000}\n", nil, "quota.permit_leases.max_permits"},
		{"token multiplier out of range", "providers:\n  - {name: a, type: mock}\nmodels:\n  - name: m\n    token_multiplier: -2\n    deployments: [{provider: a}]\n", nil, "models[0] (m).token_multiplier"},
		{"bad database url", "database_url: mysql://x\n", nil, "database_url"},
		{"provider without type", "providers:\n  - name: a\n", nil, "providers[0] (a).type"},
		{"unknown provider type", "providers:\n  - name: a\n    type: telepathy\n", nil, "telepathy"},
		{"openai without base_url", "providers:\n  - name: a\n    type: openai\n", nil, "base_url"},
		{"duplicate provider", "providers:\n  - {name: a, type: mock}\n  - {name: a, type: mock}\n", nil, "listed twice"},
		{"deployment of unknown provider", "providers:\n  - {name: a, type: mock}\nmodels:\n  - name: m\n    deployments: [{provider: b}]\n", nil, "models[0] (m).deployments[0].provider"},
		{"model without deployments", "providers:\n  - {name: a, type: mock}\nmodels:\n  - name: m\n", nil, "deployments"},
		{"bad log level", "log:\n  level: loud\n", nil, "log.level"},
		{"access log sample rate above 1", "log:\n  access:\n    success_sample_rate: 1.5\n", nil, "log.access.success_sample_rate"},
		{"negative access log sample rate", "log:\n  access:\n    success_sample_rate: -0.1\n", nil, "log.access.success_sample_rate"},
		{"access log in a missing directory", "log:\n  access:\n    output: /nonexistent-dir/access.log\n", nil, "log.access.output"},
		{"bad outbound CIDR", "outbound:\n  allow: [127.0.0.1, 10.0.0.0/33]\n", nil, "outbound.allow[1]"},
		{"alert thresholds not ascending", "alerts:\n  thresholds: [90, 80]\n", nil, "alerts.thresholds[1]"},
		{"alert threshold above 100", "alerts:\n  thresholds: [80, 150]\n", nil, "alerts.thresholds[1]"},
		{"negative alert delivery timeout", "alerts:\n  delivery:\n    timeout: -1s\n", nil, "alerts.delivery.timeout"},
		{"secret key not base64", "secrets:\n  key: not-a-key\n", nil, "secrets.key: not standard base64"},
		{"secret key too short", "secrets:\n  key: c2hvcnQ=\n", nil, "secrets.key: decodes to 5 bytes"},
		{"bad secret key from the environment", "", map[string]string{"LLMGATE_SECRET_KEY": "c2hvcnQ="}, "secrets.key"},
		{"bad previous secret key", "secrets:\n  key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n  previous_keys: [nope]\n", nil, "secrets.previous_keys[0]"},
		{"previous secret key alone", "secrets:\n  previous_keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]\n", nil, "secrets.previous_keys: set the current key"},
		{"secret key file missing", "secrets:\n  key_file: /nonexistent/llmgate.key\n", nil, "secrets.key_file"},
		{"health check endpoint", "routing:\n  health_check:\n    endpoint: images/generations\n", nil, "routing.health_check.endpoint"},
		{"outbound entry not an address", "outbound:\n  allow: [internal.example]\n", nil, "outbound.allow[0]"},
		{"metadata base_url", "providers:\n  - {name: a, type: openai, base_url: 'http://169.254.169.254/v1'}\n", nil, "providers[0] (a).base_url: outbound policy: 169.254.169.254"},
		{"unspecified base_url", "providers:\n  - {name: a, type: openai, base_url: 'http://0.0.0.0:8000/v1'}\n", nil, "providers[0] (a).base_url"},
		{"mapped loopback base_url", "providers:\n  - {name: a, type: openai, base_url: 'http://[::ffff:127.0.0.1]:8000/v1'}\n", nil, "providers[0] (a).base_url"},
		{"metadata base_url despite allow_private_network", "providers:\n  - {name: a, type: vllm, base_url: 'http://[fd00:ec2::254]/v1', allow_private_network: true}\n", nil, "providers[0] (a).base_url"},
		{"vllm on localhost with private networks off", "providers:\n  - {name: a, type: vllm, allow_private_network: false}\n", nil, "providers[0] (a).base_url"},
		{"anthropic on a private address", "providers:\n  - {name: a, type: anthropic, base_url: 'http://10.0.0.5'}\n", nil, "providers[0] (a).base_url"},
		{"negative settle queue", "quota:\n  settle_queue: -1\n", nil, "quota.settle_queue"},
		{"negative retention", "usage:\n  retention_months: -1\n", nil, "usage.retention_months"},
		{"negative upkeep interval", "usage:\n  upkeep_interval: -1h\n", nil, "usage.upkeep_interval"},
		{"no usage writer", "usage:\n  writers: 0\n", nil, "usage.writers: 0 is below 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, tc.yaml), envOf(tc.env))
			if err == nil {
				err = cfg.validate()
			}
			if err == nil {
				provs, perr := buildProviders(cfg.Providers, cfg.Outbound)
				if perr == nil {
					_, err = providers.NewRouter(cfg.Models, cfg.Routing, provs, nil)
				} else {
					err = perr
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestReferenceConfigIsValid keeps configs/reference.yaml true to the code: with its variables
// set it loads, validates and builds.
func TestReferenceConfigIsValid(t *testing.T) {
	sa, err := mock.NewServiceAccount("gw@my-project.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("../../configs/reference.yaml", envOf(map[string]string{
		"LLMGATE_ADMIN_TOKEN": strings.Repeat("t", 40), "OPENAI_API_KEY": "sk-x",
		"AZURE_OPENAI_KEY": "az", "QIANFAN_API_KEY": "qf", "ANTHROPIC_API_KEY": "an", "GEMINI_API_KEY": "ge",
		"VERTEX_CREDENTIALS_JSON": string(sa.JSON("my-project", "http://127.0.0.1:1/token"))}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	provs, err := buildProviders(cfg.Providers, cfg.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	r, err := providers.NewRouter(cfg.Models, cfg.Routing, provs, nil)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	var mockTTFT int
	for _, p := range cfg.Providers {
		types[p.Type] = true
		if p.Type == "mock" {
			mockTTFT = p.Mock.TTFTMS
		}
	}
	for _, typ := range []string{"openai", "vllm", "azure", "qianfan", "anthropic", "bedrock", "gemini", "vertex", "mock"} {
		if !types[typ] {
			t.Errorf("the reference shows no provider of type %s", typ)
		}
	}
	if !r.Has("gpt-4o-mini") || mockTTFT != 50 || cfg.Usage.FlushInterval != 200*time.Millisecond ||
		cfg.Routing.Breaker.ConsecutiveFailures != 5 || cfg.ConfigPollInterval != time.Second {
		t.Errorf("reference config not read as written: %+v", cfg)
	}
}

// TestConfigNamesEveryUnsetVariable: one start names every variable the file needs and the
// environment lacks, each with its line and key, in the order they appear.
func TestConfigNamesEveryUnsetVariable(t *testing.T) {
	p := writeConfig(t, `database_url: ${PG_URL_NOT_SET}
admin_token: ${ADMIN_TOKEN_IS_SET}
providers:
  - name: a
    type: openai
    base_url: https://${HOST_NOT_SET}/v1
    api_key: ${KEY_NOT_SET}
`)
	_, err := loadConfig(p, envOf(map[string]string{"ADMIN_TOKEN_IS_SET": strings.Repeat("t", 40)}))
	if err == nil {
		t.Fatal("a config with three unset variables loaded")
	}
	msg := err.Error()
	want := []string{"PG_URL_NOT_SET (line 1, database_url)", "HOST_NOT_SET (line 6, providers[0].base_url)",
		"KEY_NOT_SET (line 7, providers[0].api_key)"}
	last := -1
	for _, w := range want {
		i := strings.Index(msg, w)
		if i < 0 {
			t.Fatalf("error %q does not name %q", msg, w)
		}
		if i < last {
			t.Errorf("error %q does not list the variables in the file's order", msg)
		}
		last = i
	}
	if strings.Contains(msg, "ADMIN_TOKEN_IS_SET") {
		t.Errorf("error %q names a variable that is set", msg)
	}
}

// TestConfigVariableDefaults: ${VAR:-default} takes the default when VAR is unset or empty, as
// the shell does, and VAR's value otherwise; a default may be empty.
func TestConfigVariableDefaults(t *testing.T) {
	const text = `listen: ${LISTEN_AT:-127.0.0.1:8080}
database_url: ${PG:-}
providers:
  - name: a
    type: openai
    base_url: ${BASE:-https://api.openai.com/v1}
    api_key: ${KEY}
    allow_private_network: ${PRIVATE:-false}
`
	cases := []struct {
		name             string
		env              map[string]string
		listen, base, pg string
		private          bool
	}{
		{"unset", map[string]string{"KEY": "k"}, "127.0.0.1:8080", "https://api.openai.com/v1", "", false},
		{"empty", map[string]string{"KEY": "k", "LISTEN_AT": "", "BASE": "", "PRIVATE": ""}, "127.0.0.1:8080", "https://api.openai.com/v1", "", false},
		{"set", map[string]string{"KEY": "k", "LISTEN_AT": ":9", "BASE": "http://127.0.0.1:7/v1", "PRIVATE": "true", "PG": "postgres://h/db"},
			":9", "http://127.0.0.1:7/v1", "postgres://h/db", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, text), envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			pc := cfg.Providers[0]
			if cfg.Listen != tc.listen || pc.BaseURL != tc.base || cfg.DatabaseURL != tc.pg || pc.APIKey != "k" ||
				pc.AllowPrivateNetwork == nil || *pc.AllowPrivateNetwork != tc.private {
				t.Errorf("listen %q base_url %q database_url %q api_key %q allow_private_network %v", cfg.Listen, pc.BaseURL,
					cfg.DatabaseURL, pc.APIKey, pc.AllowPrivateNetwork)
			}
		})
	}
}

// TestProductionConfigNamesWhatItNeeds: configs/production.yaml started with nothing exported
// names, in one error, the four variables its steps export, and not the optional ones.
func TestProductionConfigNamesWhatItNeeds(t *testing.T) {
	_, err := loadConfig("../../configs/production.yaml", envOf(nil))
	if err == nil {
		t.Fatal("production.yaml loaded with nothing exported")
	}
	for _, v := range []string{"LLMGATE_DATABASE_URL", "LLMGATE_REDIS_URL", "LLMGATE_ADMIN_TOKEN", "OPENAI_API_KEY"} {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("error %q does not name %s", err, v)
		}
	}
	if strings.Contains(err.Error(), "OPENAI_BASE_URL") || strings.Contains(err.Error(), "PRIVATE_NETWORK") {
		t.Errorf("error %q names an optional variable", err)
	}
}
