package admin

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/bedrock"
	"github.com/llmgate/llmgate/providers/vertex"
)

// The wire shapes of /admin/providers and /admin/models. A stored catalog entry's spec is the
// same JSON (ProviderSpec, ModelSpec), so the gateway reads back exactly what the API accepted.

// Duration is a duration in JSON as Go writes it ("30s", "1m30s"); 0 is left out.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`want a duration string such as "30s", got ` + s)
	}
	*d = Duration(v)
	return nil
}

// ProviderSpec is a provider's settings as the admin API takes and shows them: the config
// file's `providers` entry without name and api_key. Its type section's secrets are filled in
// only on the way in and to the gateway (OpenProvider); stored and shown, they are blank.
type ProviderSpec struct {
	Type                  string            `json:"type"`
	BaseURL               string            `json:"base_url,omitempty"`
	APIVersion            string            `json:"api_version,omitempty"`
	Headers               map[string]string `json:"headers,omitempty"`
	MaxIdleConnsPerHost   int               `json:"max_idle_conns_per_host,omitempty"`
	DialTimeout           Duration          `json:"dial_timeout,omitempty"`
	ResponseHeaderTimeout Duration          `json:"response_header_timeout,omitempty"`
	AllowPrivateNetwork   *bool             `json:"allow_private_network,omitempty"`
	// Anthropic, Bedrock and Vertex are the type's own section, with the config file's keys;
	// only the provider's type may have one (typeSections). Their secret values are never shown.
	Anthropic *anthropic.Settings `json:"anthropic,omitempty"`
	Bedrock   *bedrock.Settings   `json:"bedrock,omitempty"`
	Vertex    *vertex.Settings    `json:"vertex,omitempty"`
}

// ModelSpec is a public model's settings as the admin API takes and shows them: the config
// file's `models` entry without its name.
type ModelSpec struct {
	Strategy string `json:"strategy,omitempty"`
	// TokenMultiplier weighs the model's tokens against token quotas (0: 1).
	TokenMultiplier float64          `json:"token_multiplier,omitempty"`
	Deployments     []DeploymentSpec `json:"deployments"`
	// Retry, the fallback lists and Degrade are what the model does when its deployments fail
	// (providers.ModelConfig).
	Retry                  *RetrySpec              `json:"retry,omitempty"`
	Fallbacks              []string                `json:"fallbacks,omitempty"`
	ContextWindowFallbacks []string                `json:"context_window_fallbacks,omitempty"`
	ContentFilterFallbacks []string                `json:"content_filter_fallbacks,omitempty"`
	RateLimitFallbacks     []string                `json:"rate_limit_fallbacks,omitempty"`
	Degrade                *providers.DegradeReply `json:"degrade,omitempty"`
}

// RetrySpec is a retry policy (providers.RetryPolicy).
type RetrySpec struct {
	Retries       *int     `json:"retries,omitempty"`
	Backoff       Duration `json:"backoff,omitempty"`
	MaxBackoff    Duration `json:"max_backoff,omitempty"`
	RetryAfterCap Duration `json:"retry_after_cap,omitempty"`
}

func (r *RetrySpec) policy() providers.RetryPolicy {
	if r == nil {
		return providers.RetryPolicy{}
	}
	return providers.RetryPolicy{Retries: r.Retries, Backoff: time.Duration(r.Backoff), MaxBackoff: time.Duration(r.MaxBackoff),
		RetryAfterCap: time.Duration(r.RetryAfterCap)}
}

func retrySpecOf(p providers.RetryPolicy) *RetrySpec {
	if p.Retries == nil && p.Backoff == 0 && p.MaxBackoff == 0 && p.RetryAfterCap == 0 {
		return nil
	}
	return &RetrySpec{Retries: p.Retries, Backoff: Duration(p.Backoff), MaxBackoff: Duration(p.MaxBackoff), RetryAfterCap: Duration(p.RetryAfterCap)}
}

// DeploymentSpec is one deployment of a model, as in the config file.
type DeploymentSpec struct {
	ID             string           `json:"id,omitempty"`
	Provider       string           `json:"provider"`
	Model          string           `json:"model,omitempty"`
	Weight         int              `json:"weight,omitempty"`
	Priority       int              `json:"priority,omitempty"`
	Timeouts       *TimeoutsSpec    `json:"timeouts,omitempty"`
	Breaker        *BreakerSpec     `json:"breaker,omitempty"`
	RetryOnTimeout bool             `json:"retry_on_timeout,omitempty"`
	Reasoning      bool             `json:"reasoning,omitempty"`
	HealthCheck    *HealthCheckSpec `json:"health_check,omitempty"`
	Retry          *RetrySpec       `json:"retry,omitempty"`
}

// HealthCheckSpec is a deployment's active health check (providers.HealthCheck).
type HealthCheckSpec struct {
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	Endpoint string   `json:"endpoint,omitempty"`
}

// TimeoutsSpec is a deployment's timeouts (providers.Timeouts).
type TimeoutsSpec struct {
	Connect   Duration `json:"connect,omitempty"`
	FirstByte Duration `json:"first_byte,omitempty"`
	Idle      Duration `json:"idle,omitempty"`
	Total     Duration `json:"total,omitempty"`
}

// BreakerSpec is a deployment's circuit breaker (providers.BreakerConfig).
type BreakerSpec struct {
	ConsecutiveFailures uint32   `json:"consecutive_failures,omitempty"`
	FailureRatio        float64  `json:"failure_ratio,omitempty"`
	MinRequests         uint32   `json:"min_requests,omitempty"`
	Window              Duration `json:"window,omitempty"`
	OpenFor             Duration `json:"open_for,omitempty"`
	HalfOpenRequests    uint32   `json:"half_open_requests,omitempty"`
}

// Config is the model as the router takes it.
func (m ModelSpec) Config(name string) providers.ModelConfig {
	out := providers.ModelConfig{Name: name, Strategy: m.Strategy, TokenMultiplier: m.TokenMultiplier,
		Deployments: make([]providers.DeploymentConfig, 0, len(m.Deployments)), Retry: m.Retry.policy(),
		Fallbacks: m.Fallbacks, ContextWindowFallbacks: m.ContextWindowFallbacks, ContentFilterFallbacks: m.ContentFilterFallbacks,
		RateLimitFallbacks: m.RateLimitFallbacks, Degrade: m.Degrade}
	for _, d := range m.Deployments {
		dc := providers.DeploymentConfig{ID: d.ID, Provider: d.Provider, Model: d.Model, Weight: d.Weight, Priority: d.Priority,
			RetryOnTimeout: d.RetryOnTimeout, Reasoning: d.Reasoning, Retry: d.Retry.policy()}
		if t := d.Timeouts; t != nil {
			dc.Timeouts = providers.Timeouts{Connect: time.Duration(t.Connect), FirstByte: time.Duration(t.FirstByte),
				Idle: time.Duration(t.Idle), Total: time.Duration(t.Total)}
		}
		if b := d.Breaker; b != nil {
			dc.Breaker = providers.BreakerConfig{ConsecutiveFailures: b.ConsecutiveFailures, FailureRatio: b.FailureRatio,
				MinRequests: b.MinRequests, Window: time.Duration(b.Window), OpenFor: time.Duration(b.OpenFor), HalfOpenRequests: b.HalfOpenRequests}
		}
		if h := d.HealthCheck; h != nil {
			dc.HealthCheck = providers.HealthCheck{Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout), Endpoint: providers.Endpoint(h.Endpoint)}
		}
		out.Deployments = append(out.Deployments, dc)
	}
	return out
}

// ModelSpecOf describes a model of the config file in the API's shape.
func ModelSpecOf(m providers.ModelConfig) ModelSpec {
	out := ModelSpec{Strategy: m.Strategy, TokenMultiplier: m.TokenMultiplier, Deployments: make([]DeploymentSpec, 0, len(m.Deployments)),
		Retry: retrySpecOf(m.Retry), Fallbacks: m.Fallbacks, ContextWindowFallbacks: m.ContextWindowFallbacks,
		ContentFilterFallbacks: m.ContentFilterFallbacks, RateLimitFallbacks: m.RateLimitFallbacks, Degrade: m.Degrade}
	for _, d := range m.Deployments {
		ds := DeploymentSpec{ID: d.ID, Provider: d.Provider, Model: d.Model, Weight: d.Weight, Priority: d.Priority, RetryOnTimeout: d.RetryOnTimeout,
			Reasoning: d.Reasoning, Retry: retrySpecOf(d.Retry)}
		if t := d.Timeouts; t != (providers.Timeouts{}) {
			ds.Timeouts = &TimeoutsSpec{Connect: Duration(t.Connect), FirstByte: Duration(t.FirstByte), Idle: Duration(t.Idle), Total: Duration(t.Total)}
		}
		if b := d.Breaker; b != (providers.BreakerConfig{}) {
			ds.Breaker = &BreakerSpec{ConsecutiveFailures: b.ConsecutiveFailures, FailureRatio: b.FailureRatio, MinRequests: b.MinRequests,
				Window: Duration(b.Window), OpenFor: Duration(b.OpenFor), HalfOpenRequests: b.HalfOpenRequests}
		}
		if h := d.HealthCheck; h != (providers.HealthCheck{}) {
			ds.HealthCheck = &HealthCheckSpec{Interval: Duration(h.Interval), Timeout: Duration(h.Timeout), Endpoint: string(h.Endpoint)}
		}
		out.Deployments = append(out.Deployments, ds)
	}
	return out
}

// FieldError is a check's verdict on one field of a provider or model, which the API answers as
// a 400 naming the field.
type FieldError struct {
	Field   string // as the body spells it: "base_url", "deployments[0].provider"
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// FileProvider is a provider of the config file as the API shows it.
type FileProvider struct {
	Name string
	Spec ProviderSpec
	// APIKey is the credential, only ever shown as its fingerprint.
	APIKey string
}

// FileCatalog is what the config file defines, for the lists and for name conflicts.
type FileCatalog struct {
	Providers []FileProvider
	Models    []providers.ModelConfig
}

// sensitiveHeader says whether an extra header's value is shown only as a fingerprint: a header
// that carries a credential (the API keeps credentials in api_key, but a file may put one here).
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"auth", "key", "token", "secret", "password", "cookie", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// shownHeaders returns headers with sensitive values replaced by their fingerprint.
func shownHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if sensitiveHeader(k) {
			v = "sha256:" + secrets.Fingerprint(v)
		}
		out[k] = v
	}
	return out
}
