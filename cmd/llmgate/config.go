package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/audit"
	"github.com/llmgate/llmgate/billing/alerts"
	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/internal/replay"
	"github.com/llmgate/llmgate/internal/tracing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/bedrock"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/providers/vertex"
	"github.com/llmgate/llmgate/quota"
)

// Config is the whole configuration file. Each package owns its section's type; this file only
// composes them. Precedence: defaults < file < LLMGATE_* environment < flags.
type Config struct {
	Listen      string                  `yaml:"listen"`
	AdminListen string                  `yaml:"admin_listen"`
	DataDir     string                  `yaml:"data_dir"`
	DatabaseURL string                  `yaml:"database_url"`
	RedisURL    string                  `yaml:"redis_url"`
	AdminToken  string                  `yaml:"admin_token"`
	PricingFile string                  `yaml:"pricing_file"`
	Log         LogConfig               `yaml:"log"`
	Providers   []ProviderConfig        `yaml:"providers"`
	Models      []providers.ModelConfig `yaml:"models"`
	Routing     providers.RoutingConfig `yaml:"routing"`
	// Outbound is the address policy's allow list for upstream connections.
	Outbound outbound.Config `yaml:"outbound"`
	// ConfigPollInterval is how often the config file is checked for changes to reload
	// (default 1s; negative: only on SIGHUP).
	ConfigPollInterval time.Duration   `yaml:"config_poll_interval"`
	Quota              quota.Options   `yaml:"quota"`
	Gateway            gateway.Options `yaml:"gateway"`
	Usage              audit.Options   `yaml:"usage"`
	// AdminMaxConnections caps the admin listener's open connections (default 512; negative: no
	// cap); one more is answered 503 and closed at accept, and counted.
	AdminMaxConnections int `yaml:"admin_max_connections"`
	// Shutdown is how the process stops on SIGTERM or SIGINT.
	Shutdown ShutdownOptions `yaml:"shutdown"`
	// GCMinHeadroom is the least the heap may grow between garbage collections, in bytes
	// (default 32 MiB; 0 leaves GOGC alone). Read at start.
	GCMinHeadroom int64 `yaml:"gc_min_headroom_bytes"`
	// GCPercent is GOGC for a live heap past GCMinHeadroom (default 25; 0: the process's own,
	// 100 unless the GOGC environment variable says); GOGC in the environment wins. Read at start.
	GCPercent int `yaml:"gc_percent"`
	// Tracing is the optional OpenTelemetry tracing of requests (off by default).
	Tracing tracing.Options `yaml:"tracing"`
	// Alerts are the limit and budget alerts and their webhook delivery.
	Alerts alerts.Options `yaml:"alerts"`
	// Secrets is the key that seals provider credentials stored through the admin API.
	Secrets SecretsConfig `yaml:"secrets"`
	// Console is the web console served by the admin listener under /console/.
	Console admin.ConsoleOptions `yaml:"console"`
	// ResponseCache is the exact-match response cache (off until a model, key or tenant opts in).
	ResponseCache replay.CacheOptions `yaml:"response_cache"`
	// Idempotency keeps the answers of requests sent with an Idempotency-Key, for their retries.
	Idempotency replay.IdempotencyOptions `yaml:"idempotency"`

	// listenDefaulted is set when neither the file nor LLMGATE_LISTEN named listen, so Listen is
	// the default: demo binds loopback then.
	listenDefaulted bool
	// stdout and stderr are the process's, where log.access.output's "stdout" and "stderr" go
	// (nil: os.Stdout and os.Stderr).
	stdout, stderr io.Writer
}

// ShutdownOptions is the `shutdown` section: the graceful stop on SIGTERM or SIGINT. Readiness
// turns false at once; for PreStopDelay the listeners still accept and serve, then they stop
// accepting and requests in flight get DrainTimeout to finish; those still running then are cut
// (a stream ends with an SSE error event; each is still recorded once), and the queued usage
// records get FlushTimeout to reach the database before the rest is spooled to disk. A second
// signal cuts the delay and the drain short, not the flush. The longest stop is the sum of the
// three plus a few seconds.
type ShutdownOptions struct {
	// PreStopDelay keeps serving after the signal while load balancers notice the readiness change
	// (default 5s: Kubernetes endpoints and the proxies that follow them take a few seconds to stop
	// sending a terminating pod new requests).
	PreStopDelay time.Duration `yaml:"pre_stop_delay"`
	// DrainTimeout bounds how long requests in flight, streams included, may run once the
	// listeners stop accepting (default 5m: long enough for nearly every LLM answer).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// FlushTimeout bounds writing the queued usage records after the drain (default 30s); what is
	// not written by then is spooled and replayed at the next start.
	FlushTimeout time.Duration `yaml:"flush_timeout"`
}

// SecretsConfig is the `secrets` section: the AES-256 key (base64 of 32 bytes, as `openssl rand
// -base64 32` prints) that seals the credentials of providers created through the admin API and
// the alert webhooks' signing secrets, and the keys it replaced, which still open what they
// sealed until every value is sealed again (POST /admin/secrets/reencrypt). Without a key, the
// API refuses to store a credential or make a webhook.
type SecretsConfig struct {
	// Key is the current key (env LLMGATE_SECRET_KEY); KeyFile names a file holding it instead
	// (env LLMGATE_SECRET_KEY_FILE).
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	// PreviousKeys and PreviousKeyFiles are keys that only open (env LLMGATE_SECRET_KEY_PREVIOUS,
	// comma-separated).
	PreviousKeys     []string `yaml:"previous_keys"`
	PreviousKeyFiles []string `yaml:"previous_key_files"`
}

// LogConfig is the `log` section.
type LogConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Access is the access log: one JSON line per request of the public API.
	Access gateway.AccessLogOptions `yaml:"access"`
}

// ProviderConfig is one `providers` entry: the common fields plus each type's own settings.
type ProviderConfig struct {
	providers.Config `yaml:",inline"`
	// MaxIdleConnsPerHost, DialTimeout and ResponseHeaderTimeout tune an HTTP provider's client.
	MaxIdleConnsPerHost   int           `yaml:"max_idle_conns_per_host"`
	DialTimeout           time.Duration `yaml:"dial_timeout"`
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// Headers are extra request headers of an OpenAI-compatible provider (e.g. Qianfan's appid).
	Headers map[string]string `yaml:"headers"`
	// APIVersion is Azure's api-version query parameter (type azure with deployment URLs; with a
	// v1 base_url, that of the deployment URLs images and audio go to).
	APIVersion string `yaml:"api_version"`
	// AllowPrivateNetwork lets the provider connect to loopback and private addresses (default
	// false; true for the vllm and ollama types, which run there).
	AllowPrivateNetwork *bool `yaml:"allow_private_network"`
	// Mock configures a provider of type "mock".
	Mock mock.Options `yaml:"mock"`
	// Anthropic configures a provider of type "anthropic" (default_max_tokens, pass_fields, beta).
	Anthropic anthropic.Settings `yaml:"anthropic"`
	// Vertex configures a provider of type "vertex" (project, region, credentials).
	Vertex vertex.Settings `yaml:"vertex"`
	// Bedrock configures a provider of type "bedrock" (region, api, credentials, profile…).
	Bedrock bedrock.Settings `yaml:"bedrock"`
}

// providerTypes lists the provider types for error messages.
const providerTypes = "openai, azure, anthropic, bedrock, gemini, vertex, deepseek, qwen, glm, moonshot, qianfan, vllm, ollama or mock"

// defaultListen is the public listener's address when nothing names one; demoListen is demo's,
// which keeps a gateway holding a printed key off the network.
const (
	defaultListen = ":8080"
	demoListen    = "127.0.0.1:8080"
)

// defaultConfig is the zero-setup configuration: SQLite in the working directory, in-memory
// quotas, and the built-in mock provider behind two public models.
func defaultConfig() Config {
	return Config{
		Listen:      defaultListen,
		AdminListen: "127.0.0.1:8081",
		DataDir:     ".",
		Shutdown:    ShutdownOptions{PreStopDelay: 5 * time.Second, DrainTimeout: 5 * time.Minute, FlushTimeout: 30 * time.Second},
		Usage:       audit.Options{Writers: audit.DefaultWriters},

		GCMinHeadroom: defaultGCMinHeadroom,
		GCPercent:     defaultGCPercent,
	}
}

// defaultGCMinHeadroom lets a gateway with a small live heap allocate 32 MiB between garbage
// collections, where GOGC=100 alone collected every few MB under load (see internal/gctune).
const defaultGCMinHeadroom = 32 << 20

// defaultGCPercent lets a large heap grow by a quarter of what it holds live (with stacks)
// between collections, where GOGC=100 let it double: with 10,000 open streams (some 400 MB live)
// RSS per 1,000 streams went from 53.8 to 48.3 MB. It applies only past 128 MiB (where a quarter
// passes the 32 MiB headroom), so a gateway's usual small heap collects as before.
const defaultGCPercent = 25

// defaultModels are used when the configuration names no provider at all.
func applyBuiltinMock(c *Config) {
	if len(c.Providers) > 0 || len(c.Models) > 0 {
		return
	}
	c.Providers = []ProviderConfig{{Config: providers.Config{Name: "mock", Type: "mock"}}}
	c.Models = []providers.ModelConfig{
		{Name: "gpt-4o-mini", Deployments: []providers.DeploymentConfig{{Provider: "mock", Model: "mock-gpt-4o-mini"}}},
		{Name: "text-embedding-3-small", Deployments: []providers.DeploymentConfig{{Provider: "mock", Model: "mock-embedding"}}},
	}
}

// loadConfig reads the file (if any), applies the environment and validates the result.
func loadConfig(path string, env func(string) (string, bool)) (Config, error) {
	cfg := defaultConfig()
	cfg.Listen = "" // whether the file or the environment names it matters to demo
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := parseConfig(raw, env, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for name, dst := range map[string]*string{
		"LLMGATE_LISTEN":          &cfg.Listen,
		"LLMGATE_ADMIN_LISTEN":    &cfg.AdminListen,
		"LLMGATE_DATA_DIR":        &cfg.DataDir,
		"LLMGATE_DATABASE_URL":    &cfg.DatabaseURL,
		"LLMGATE_REDIS_URL":       &cfg.RedisURL,
		"LLMGATE_ADMIN_TOKEN":     &cfg.AdminToken,
		"LLMGATE_SECRET_KEY":      &cfg.Secrets.Key,
		"LLMGATE_SECRET_KEY_FILE": &cfg.Secrets.KeyFile,
	} {
		if v, ok := env(name); ok && v != "" {
			*dst = v
		}
	}
	if v, ok := env("LLMGATE_SECRET_KEY_PREVIOUS"); ok && v != "" {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				cfg.Secrets.PreviousKeys = append(cfg.Secrets.PreviousKeys, k)
			}
		}
	}
	if cfg.Listen == "" {
		cfg.Listen, cfg.listenDefaulted = defaultListen, true
	}
	applyBuiltinMock(&cfg)
	return cfg, nil
}

// envRef is a variable reference in a config value: ${VAR}, or ${VAR:-default} whose default
// applies when VAR is unset or empty, as in the shell.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// parseConfig decodes YAML strictly: every string value has its ${VAR} references expanded (unset
// variables without a default are one error naming each), then unknown fields are errors that
// name the field.
func parseConfig(raw []byte, env func(string) (string, bool), cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return err
	}
	if len(root.Content) == 0 {
		return nil // empty file
	}
	var missing []unsetVar
	expandNode(&root, "", env, &missing)
	if err := unsetError(missing); err != nil {
		return err
	}
	expanded, err := yaml.Marshal(&root)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), "yaml: unmarshal errors:\n  ", ""))
	}
	return nil
}

// unsetVar is a reference to a variable the environment lacks, and where the file uses it.
type unsetVar struct {
	name, path string
	line, col  int
}

// expandNode replaces the variable references of every scalar under n, whose key path is path,
// and appends the unset ones to missing. Reporting all of them at once saves an operator a
// start per variable.
func expandNode(n *yaml.Node, path string, env func(string) (string, bool), missing *[]unsetVar) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			v, ok := env(m[1])
			switch {
			case m[2] != "" && v == "": // ${VAR:-default}: unset or empty takes the default
				return m[3]
			case !ok:
				*missing = append(*missing, unsetVar{name: m[1], path: path, line: n.Line, col: n.Column})
			}
			return v
		})
		if n.Style == 0 {
			n.Tag = "" // a plain scalar re-resolves: ${PORT} expanding to 8080 is a number
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			child := k.Value
			if path != "" {
				child = path + "." + k.Value
			}
			expandNode(k, child, env, missing)
			expandNode(n.Content[i+1], child, env, missing)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandNode(c, fmt.Sprintf("%s[%d]", path, i), env, missing)
		}
	default:
		for _, c := range n.Content {
			expandNode(c, path, env, missing)
		}
	}
}

// unsetError names every unset variable with its line and key path, in the file's order.
func unsetError(missing []unsetVar) error {
	if len(missing) == 0 {
		return nil
	}
	slices.SortStableFunc(missing, func(a, b unsetVar) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	names := make([]string, len(missing))
	for i, m := range missing {
		names[i] = fmt.Sprintf("%s (line %d, %s)", m.name, m.line, m.path)
	}
	what, hint := "environment variable is not set", "export it"
	if len(missing) > 1 {
		what, hint = fmt.Sprintf("%d environment variables are not set", len(missing)), "export them"
	}
	return fmt.Errorf("%s: %s (%s, or give a default in the file: ${VAR:-default})", what, strings.Join(names, ", "), hint)
}

// validate checks what the packages' constructors do not, naming the field and the problem.
// maxKeyCacheTTL keeps the promise that a revocation takes effect on every replica within 5 s.
const maxKeyCacheTTL = 5 * time.Second

// maxJSONDepth bounds gateway.max_json_depth, as encoding/json bounds its own nesting.
const maxJSONDepth = 10000

func (c *Config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if c.Gateway.KeyCacheTTL < 0 || c.Gateway.KeyCacheTTL > maxKeyCacheTTL {
		return fmt.Errorf("gateway.key_cache_ttl: %s is outside 0..%s: it bounds how long a revoked key keeps working on a replica", c.Gateway.KeyCacheTTL, maxKeyCacheTTL)
	}
	if c.Gateway.MaxJSONDepth > maxJSONDepth {
		return fmt.Errorf("gateway.max_json_depth: %d is above %d (each level of the cap is kept per scan in progress)", c.Gateway.MaxJSONDepth, maxJSONDepth)
	}
	if err := c.Gateway.Validate(); err != nil {
		return err
	}
	if c.GCPercent < 0 {
		return fmt.Errorf("gc_percent: %d is negative (0 leaves the process's own GOGC)", c.GCPercent)
	}
	if c.GCMinHeadroom < 0 {
		return fmt.Errorf("gc_min_headroom_bytes: %d is negative (0 leaves GOGC alone)", c.GCMinHeadroom)
	}
	if p := c.ResponseCache.PricePercent; p < 0 || p > 100 {
		return fmt.Errorf("response_cache.price_percent: %d is outside 0..100", p)
	}
	host, _, err := net.SplitHostPort(c.AdminListen)
	if err != nil {
		return fmt.Errorf("admin_listen: %q is not host:port", c.AdminListen)
	}
	if err := c.Console.Validate(); err != nil {
		return err
	}
	if err := admin.ValidateToken(c.AdminToken); err != nil {
		return err
	}
	if c.AdminToken == "" && !isLoopback(host) {
		return fmt.Errorf("admin_listen: %q is not a loopback address, so admin_token (LLMGATE_ADMIN_TOKEN) is required", c.AdminListen)
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return errors.New("database_url: want a postgres:// or postgresql:// URL (leave it empty for the SQLite file)")
	}
	if c.RedisURL != "" {
		rc, err := quota.NewRedisClient(c.RedisURL) // parses only: go-redis connects lazily
		if err != nil {
			return fmt.Errorf("redis_url: %w", err)
		}
		_ = rc.Close()
	}
	if err := c.Quota.WithDefaults().Validate(); err != nil {
		return err
	}
	if err := c.Alerts.Validate(); err != nil {
		return err
	}
	for ep := range c.Quota.EndpointLimits {
		if !slices.Contains(providers.Endpoints, providers.Endpoint(ep)) {
			return fmt.Errorf("quota.endpoint_limits.%s: not an endpoint (want one of %v)", ep, providers.Endpoints)
		}
	}
	if c.Usage.RetentionMonths < 0 {
		return fmt.Errorf("usage.retention_months: %d is negative (0 keeps usage records forever; N keeps the current month and the N before it)", c.Usage.RetentionMonths)
	}
	if c.Usage.Writers < 1 {
		return fmt.Errorf("usage.writers: %d is below 1 (the batch writers committing usage records in parallel; default %d)", c.Usage.Writers, audit.DefaultWriters)
	}
	if c.Usage.UpkeepInterval < 0 {
		return fmt.Errorf("usage.upkeep_interval: %s is negative (0 means the default, 1h)", c.Usage.UpkeepInterval)
	}
	allow, err := c.Outbound.Prefixes()
	if err != nil {
		return err
	}
	if _, err := c.Outbound.RootCAs(); err != nil {
		return err
	}
	if err := validateProviders(c.Providers, allow); err != nil {
		return err
	}
	if _, err := newKeyring(c.Secrets, os.ReadFile); err != nil {
		return err
	}
	if err := c.Shutdown.validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	return c.Log.validate()
}

// validateProviders checks a `providers` list: names, types, base URLs and the outbound address
// policy. The admin API checks a provider it is given with it too, as a list of one.
func validateProviders(list []ProviderConfig, allow []netip.Prefix) error {
	seen := map[string]bool{}
	for i, p := range list {
		switch {
		case p.Name == "":
			return fmt.Errorf("providers[%d].name: must not be empty", i)
		case seen[p.Name]:
			return fmt.Errorf("providers[%d].name: %q is listed twice", i, p.Name)
		}
		seen[p.Name] = true
		switch p.Type {
		case "openai":
			if p.BaseURL == "" {
				return fmt.Errorf("providers[%d] (%s).base_url: required for type openai", i, p.Name)
			}
		case "mock":
		case "anthropic": // base_url defaults to https://api.anthropic.com
		case "gemini": // base_url defaults to https://generativelanguage.googleapis.com/v1beta
		case "vertex": // base_url defaults to the region's endpoint; vertex.New checks the section
		case "bedrock": // base_url defaults to https://bedrock-runtime.{region}.amazonaws.com
		case "":
			return fmt.Errorf("providers[%d] (%s).type: must be set (%s)", i, p.Name, providerTypes)
		default:
			preset, ok := openai.Presets[p.Type]
			if !ok {
				return fmt.Errorf("providers[%d] (%s).type: unknown type %q (want %s)", i, p.Name, p.Type, providerTypes)
			}
			if p.BaseURL == "" && preset.BaseURL == "" {
				return fmt.Errorf("providers[%d] (%s).base_url: required for type %s (the resource endpoint)", i, p.Name, p.Type)
			}
		}
		if err := p.checkAddress(allow); err != nil {
			return fmt.Errorf("providers[%d] (%s).base_url: %w", i, p.Name, err)
		}
	}
	return nil
}

// validate checks the access log's sample rate and, for a file output, that its directory exists.
func (l LogConfig) validate() error {
	if r := l.Access.SuccessSampleRate; r != nil && !(*r >= 0 && *r <= 1) {
		return fmt.Errorf("log.access.success_sample_rate: %v is outside 0..1", *r)
	}
	switch out := l.Access.Output; out {
	case "", "stderr", "stdout":
	default:
		if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
			return fmt.Errorf("log.access.output: %q: its directory does not exist", out)
		}
	}
	return nil
}

// openAccessLog opens the access log's output: the process's stderr or stdout, or a file opened
// for appending (which the returned closer closes; nil otherwise). A nil log means it is off.
func openAccessLog(c Config) (*gateway.AccessLog, io.Closer, error) {
	o := c.Log.Access
	if !o.On() {
		return nil, nil, nil
	}
	var w io.Writer
	var closer io.Closer
	switch o.Output {
	case "", "stderr":
		w = c.stderr
		if w == nil {
			w = os.Stderr
		}
	case "stdout":
		w = c.stdout
		if w == nil {
			w = os.Stdout
		}
	default:
		f, err := os.OpenFile(o.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log.access.output: %w", err)
		}
		w, closer = f, f
	}
	return gateway.NewAccessLog(w, o), closer, nil
}

// validate refuses negative durations, naming the field; zero is allowed (no pre-stop delay, cut
// at once, spool at once).
func (o ShutdownOptions) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"pre_stop_delay", o.PreStopDelay}, {"drain_timeout", o.DrainTimeout}, {"flush_timeout", o.FlushTimeout}} {
		if f.d < 0 {
			return fmt.Errorf("shutdown.%s: %s is negative (0 means none)", f.name, f.d)
		}
	}
	return nil
}

// policy is the address policy of the provider's dials: private networks as the provider (or its
// type) says, and the allow list.
func (p ProviderConfig) policy(allow []netip.Prefix) outbound.Policy {
	private := openai.Presets[p.Type].PrivateNetwork
	if p.AllowPrivateNetwork != nil {
		private = *p.AllowPrivateNetwork
	}
	return outbound.Policy{AllowPrivate: private, Allow: allow}
}

// checkAddress refuses, before any dial, a base_url whose host is an address (or localhost) the
// provider's policy refuses. Host names are checked when dialed, on what they resolve to.
func (p ProviderConfig) checkAddress(allow []netip.Prefix) error {
	if p.Type == "mock" {
		return nil
	}
	raw := cmp.Or(p.BaseURL, openai.Presets[p.Type].BaseURL)
	if raw == "" {
		return nil // the type's public default
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil // the adapter reports it, without echoing the URL
	}
	return p.policy(allow).CheckHost(u.Hostname())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
