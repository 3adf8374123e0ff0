package providers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Routing strategies: how deployments of the same priority are ordered for a request.
const (
	// StrategyWeighted draws them at random, in proportion to their weights (the default).
	StrategyWeighted = "weighted"
	// StrategyLatency prefers the lowest moving average of time to first token; deployments not
	// measured yet come first, so each gets measured.
	StrategyLatency = "latency"
	// StrategyCost prefers the lowest price of the upstream model (input + output per 1M tokens);
	// unpriced ones come last.
	StrategyCost = "cost"
)

// ModelConfig is one entry of the config file's `models` list: a public model name and the
// deployments that can serve it.
type ModelConfig struct {
	Name string `yaml:"name"`
	// Strategy orders deployments of equal priority: weighted (default), latency or cost.
	Strategy    string             `yaml:"strategy"`
	Deployments []DeploymentConfig `yaml:"deployments"`
	// TokenMultiplier weighs the model's tokens against token quotas (tpm, tokens per day): a
	// request that uses n tokens counts ⌈n × k⌉ [1], so an expensive model uses up a quota
	// faster. Prices, costs and usage records keep the real counts.
	TokenMultiplier float64 `yaml:"token_multiplier"`
	// Retry is the model's retry policy: it overrides the routing section's for its deployments.
	Retry RetryPolicy `yaml:"retry"`
	// Fallbacks are other public models tried in order once every deployment of this one has
	// failed by the upstream's fault (errors, timeouts that may be retried, open breakers, rate
	// limits). The targeted lists below take precedence for their cause; a fallback's own
	// fallbacks are not followed.
	Fallbacks []string `yaml:"fallbacks"`
	// ContextWindowFallbacks are tried when the request does not fit the model's context window
	// (a larger-context model); the general list never is for that cause.
	ContextWindowFallbacks []string `yaml:"context_window_fallbacks"`
	// ContentFilterFallbacks are tried when the provider's content filter refused the request.
	ContentFilterFallbacks []string `yaml:"content_filter_fallbacks"`
	// RateLimitFallbacks are tried when the model's deployments answered 429 (else Fallbacks).
	RateLimitFallbacks []string `yaml:"rate_limit_fallbacks"`
	// Degrade is the reply of last resort to a chat completion (or a Response, or a Message, in
	// their shapes), sent when every deployment and fallback failed; nil: none, the error is the
	// answer.
	Degrade *DegradeReply `yaml:"degrade"`
}

// DegradeReply is a model's configured answer for when nothing can serve it: the text of an
// assistant message, or a whole chat completion. It is marked (finish_reason "degraded", header
// x-llmgate-degraded) and never charged.
type DegradeReply struct {
	// Text is the assistant message's content.
	Text string `yaml:"text" json:"text,omitempty"`
	// Response is a whole OpenAI chat completion object sent in place of the built one; its
	// id, created and model are filled in when missing, its choices' finish_reason is set to
	// "degraded".
	Response map[string]any `yaml:"response" json:"response,omitempty"`
}

// RoutingConfig is the config file's `routing` section: defaults for every deployment.
type RoutingConfig struct {
	Timeouts Timeouts      `yaml:"timeouts"`
	Breaker  BreakerConfig `yaml:"breaker"`
	// HealthCheck is every deployment's active health check (off unless interval is set).
	HealthCheck HealthCheck `yaml:"health_check"`
	// Retry is every deployment's retry policy (three retries, 1 s, 2 s, 4 s, unless set).
	Retry RetryPolicy `yaml:"retry"`
}

// Timeouts bound one attempt on a deployment. A zero field takes the routing default, and that
// the built-in one.
type Timeouts struct {
	// Connect bounds getting a connection (dial and TLS) [5s].
	Connect time.Duration `yaml:"connect"`
	// FirstByte bounds the wait from sending the request to the answer's headers [60s, the provider call
	// timeout the external contract names].
	FirstByte time.Duration `yaml:"first_byte"`
	// Idle bounds the gap between two reads of the answer's body: between stream events [60s].
	Idle time.Duration `yaml:"idle"`
	// Total bounds the whole attempt, stream included [10m].
	Total time.Duration `yaml:"total"`
}

// BreakerConfig configures a deployment's circuit breaker. Zero fields take the defaults.
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker after this many failures in a row [5].
	ConsecutiveFailures uint32 `yaml:"consecutive_failures"`
	// FailureRatio trips it when at least this share of the requests in the window failed
	// [0.5], once the window holds MinRequests.
	FailureRatio float64 `yaml:"failure_ratio"`
	MinRequests  uint32  `yaml:"min_requests"` // [20]
	// Window is the span over which the ratio is counted while closed [60s].
	Window time.Duration `yaml:"window"`
	// OpenFor is how long a tripped breaker refuses before letting probes through [30s].
	OpenFor time.Duration `yaml:"open_for"`
	// HalfOpenRequests is how many probes a half-open breaker lets through; their success closes
	// it, any failure opens it again [1].
	HalfOpenRequests uint32 `yaml:"half_open_requests"`
}

// withDefaults fills o's zero fields from d, then from the built-in defaults.
func (o Timeouts) withDefaults(d Timeouts) Timeouts {
	return Timeouts{
		Connect:   firstSet(o.Connect, d.Connect, 5*time.Second),
		FirstByte: firstSet(o.FirstByte, d.FirstByte, 60*time.Second),
		Idle:      firstSet(o.Idle, d.Idle, 60*time.Second),
		Total:     firstSet(o.Total, d.Total, 10*time.Minute),
	}
}

func (o BreakerConfig) withDefaults(d BreakerConfig) BreakerConfig {
	return BreakerConfig{
		ConsecutiveFailures: firstSet(o.ConsecutiveFailures, d.ConsecutiveFailures, 5),
		FailureRatio:        firstSet(o.FailureRatio, d.FailureRatio, 0.5),
		MinRequests:         firstSet(o.MinRequests, d.MinRequests, 20),
		Window:              firstSet(o.Window, d.Window, time.Minute),
		OpenFor:             firstSet(o.OpenFor, d.OpenFor, 30*time.Second),
		HalfOpenRequests:    firstSet(o.HalfOpenRequests, d.HalfOpenRequests, 1),
	}
}

// firstSet returns the first of its values above zero (the last is the built-in default).
func firstSet[T ~int64 | ~uint32 | ~float64](vals ...T) T {
	for _, v := range vals[:len(vals)-1] {
		if v > 0 {
			return v
		}
	}
	return vals[len(vals)-1]
}

// DeploymentConfig is one way to serve a public model: a provider and its model name there.
type DeploymentConfig struct {
	// ID names the deployment in metrics and usage records (default "provider/model").
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	Model    string `yaml:"model"`
	// Weight is the share of traffic among deployments of the same priority (default 1).
	Weight int `yaml:"weight"`
	// Priority orders groups: lower first; a higher group is tried only after every lower one
	// failed.
	Priority int `yaml:"priority"`
	// Timeouts and Breaker override the routing section's defaults for this deployment.
	Timeouts Timeouts      `yaml:"timeouts"`
	Breaker  BreakerConfig `yaml:"breaker"`
	// RetryOnTimeout lets a request that timed out after it was sent, before the first byte, try
	// the next deployment. Off by default: the upstream may still be working on, and billing for,
	// the first attempt. A connect timeout needs no permission: the upstream never saw the request.
	RetryOnTimeout bool `yaml:"retry_on_timeout"`
	// Reasoning says the upstream model reasons and takes Chat Completions' reasoning_effort: a
	// request translated for it (a Messages request's thinking or output_config.effort) asks for
	// that effort. Off by default, since a model that does not reason refuses the field.
	Reasoning bool `yaml:"reasoning"`
	// HealthCheck overrides the routing section's health check for this deployment.
	HealthCheck HealthCheck `yaml:"health_check"`
	// Retry overrides the model's retry policy for this deployment.
	Retry RetryPolicy `yaml:"retry"`
}

// Deployment is a resolved DeploymentConfig, with its run-time override merged in.
type Deployment struct {
	ID           string
	ProviderName string
	Model        string
	// Weight is the weight in force: the override's when it sets one, else FileWeight.
	Weight int
	// FileWeight is the weight the config file gives (default 1).
	FileWeight int
	Priority   int
	// Enabled is false when an override disabled the deployment: it is listed, never a
	// candidate.
	Enabled        bool
	Timeouts       Timeouts
	Breaker        BreakerConfig
	RetryOnTimeout bool
	// Reasoning is DeploymentConfig.Reasoning.
	Reasoning bool
	// HealthCheck is the deployment's active health check (Interval 0: off).
	HealthCheck HealthCheck
	// Retry is the deployment's retry policy, its model's and the routing section's merged in.
	Retry    RetryPolicy
	Provider Provider
	// Override is the run-time change merged in, nil when there is none.
	Override *Override
}

// Override is a run-time change of one deployment (made through the admin API and kept in the
// store), merged over the config file each time a Router is built. A nil field keeps what the file
// says.
type Override struct {
	Enabled *bool
	// Weight replaces the file's weight; values below 1 are ignored.
	Weight *int
	// UpdatedBy and UpdatedAt say who made the change and when, for display.
	UpdatedBy string
	UpdatedAt time.Time
}

// Router maps public model names to deployments. It is immutable once built: a reload (of the
// file, or of the overrides) builds a new Router, so requests in flight keep the one they started
// with.
type Router struct {
	models     map[string][]*Deployment // sorted by priority; disabled ones included
	enabled    map[string][]*Deployment // the same without the disabled ones
	strategies map[string]string
	names      []string
	// multipliers holds the token multipliers other than 1.
	multipliers map[string]float64
	// policies holds the fallbacks and degrade replies of the models that set any.
	policies map[string]*modelPolicy
}

// modelPolicy is what a model does when its deployments fail: the fallback lists by cause, and
// the degrade reply.
type modelPolicy struct {
	fallbacks map[Cause][]string
	degrade   *DegradeReply
}

// NewRouter resolves the model list against the built providers, with the routing section's
// defaults, and merges the overrides (by deployment id) over it. Overrides of ids the file does
// not have are ignored: they apply again if the deployment comes back.
func NewRouter(models []ModelConfig, routing RoutingConfig, provs map[string]Provider, overrides map[string]Override) (*Router, error) {
	r := &Router{models: make(map[string][]*Deployment, len(models)), enabled: make(map[string][]*Deployment, len(models)),
		strategies: make(map[string]string, len(models))}
	if err := validBreaker("routing.breaker", routing.Breaker); err != nil {
		return nil, err
	}
	if err := validHealthCheck("routing.health_check", routing.HealthCheck); err != nil {
		return nil, err
	}
	if err := validRetry("routing.retry", routing.Retry); err != nil {
		return nil, err
	}
	for i, m := range models {
		if m.Name == "" {
			return nil, fmt.Errorf("models[%d].name: must not be empty", i)
		}
		if _, dup := r.models[m.Name]; dup {
			return nil, fmt.Errorf("models[%d].name: %q is listed twice", i, m.Name)
		}
		if len(m.Deployments) == 0 {
			return nil, fmt.Errorf("models[%d] (%s).deployments: needs at least one deployment", i, m.Name)
		}
		switch m.Strategy {
		case "":
			m.Strategy = StrategyWeighted
		case StrategyWeighted, StrategyLatency, StrategyCost:
		default:
			return nil, fmt.Errorf("models[%d] (%s).strategy: %q is not weighted, latency or cost", i, m.Name, m.Strategy)
		}
		switch k := m.TokenMultiplier; {
		case math.IsNaN(k) || k < 0 || k > maxTokenMultiplier:
			return nil, fmt.Errorf("models[%d] (%s).token_multiplier: %v is outside 0..%d (0 means 1)", i, m.Name, k, maxTokenMultiplier)
		case k != 0 && k != 1:
			if r.multipliers == nil {
				r.multipliers = map[string]float64{}
			}
			r.multipliers[m.Name] = k
		}
		if err := validRetry(fmt.Sprintf("models[%d] (%s).retry", i, m.Name), m.Retry); err != nil {
			return nil, err
		}
		modelRetry := m.Retry.withDefaults(routing.Retry)
		if pol := m.policy(); pol != nil {
			if r.policies == nil {
				r.policies = map[string]*modelPolicy{}
			}
			r.policies[m.Name] = pol
		}
		ids := map[string]bool{}
		deps := make([]*Deployment, 0, len(m.Deployments))
		for j, d := range m.Deployments {
			p, ok := provs[d.Provider]
			if !ok {
				return nil, fmt.Errorf("models[%d] (%s).deployments[%d].provider: no provider named %q", i, m.Name, j, d.Provider)
			}
			if d.Model == "" {
				d.Model = m.Name
			}
			if d.Weight < 0 {
				return nil, fmt.Errorf("models[%d] (%s).deployments[%d].weight: must not be negative", i, m.Name, j)
			}
			if d.Weight == 0 {
				d.Weight = 1
			}
			if d.ID == "" {
				d.ID = d.Provider + "/" + d.Model
			}
			if ids[d.ID] {
				return nil, fmt.Errorf("models[%d] (%s).deployments[%d].id: %q is used twice (set distinct ids)", i, m.Name, j, d.ID)
			}
			ids[d.ID] = true
			if err := validBreaker(fmt.Sprintf("models[%d] (%s).deployments[%d].breaker", i, m.Name, j), d.Breaker); err != nil {
				return nil, err
			}
			if err := validHealthCheck(fmt.Sprintf("models[%d] (%s).deployments[%d].health_check", i, m.Name, j), d.HealthCheck); err != nil {
				return nil, err
			}
			if err := validRetry(fmt.Sprintf("models[%d] (%s).deployments[%d].retry", i, m.Name, j), d.Retry); err != nil {
				return nil, err
			}
			dep := &Deployment{ID: d.ID, ProviderName: d.Provider, Model: d.Model,
				Weight: d.Weight, FileWeight: d.Weight, Priority: d.Priority, Enabled: true, Provider: p, RetryOnTimeout: d.RetryOnTimeout, Reasoning: d.Reasoning,
				Timeouts: d.Timeouts.withDefaults(routing.Timeouts), Breaker: d.Breaker.withDefaults(routing.Breaker),
				HealthCheck: d.HealthCheck.withDefaults(routing.HealthCheck), Retry: d.Retry.withDefaults(modelRetry)}
			if o, ok := overrides[d.ID]; ok {
				dep.apply(o)
			}
			deps = append(deps, dep)
		}
		sort.SliceStable(deps, func(a, b int) bool { return deps[a].Priority < deps[b].Priority })
		r.models[m.Name] = deps
		r.enabled[m.Name] = enabledOnly(deps)
		r.strategies[m.Name] = m.Strategy
		r.names = append(r.names, m.Name)
	}
	if err := r.checkFallbacks(models); err != nil {
		return nil, err
	}
	return r, nil
}

// Merged returns the deployment as the config file describes it with o merged over it (nil:
// none), as NewRouter would build it: for showing what an override changes.
func (d Deployment) Merged(o *Override) Deployment {
	d.Weight, d.Enabled, d.Override = d.FileWeight, true, nil
	if o != nil {
		d.apply(*o)
	}
	return d
}

// apply merges an override into a deployment built from the file. It keeps a copy, so the
// Router stays immutable whatever the caller does with its map afterwards.
func (d *Deployment) apply(o Override) {
	if o.Enabled != nil {
		e := *o.Enabled
		d.Enabled, o.Enabled = e, &e
	}
	if o.Weight != nil {
		w := *o.Weight
		if w > 0 {
			d.Weight = w
		}
		o.Weight = &w
	}
	d.Override = &o
}

// enabledOnly returns deps without the disabled ones (deps itself when none is).
func enabledOnly(deps []*Deployment) []*Deployment {
	n := 0
	for _, d := range deps {
		if d.Enabled {
			n++
		}
	}
	if n == len(deps) {
		return deps
	}
	out := make([]*Deployment, 0, n)
	for _, d := range deps {
		if d.Enabled {
			out = append(out, d)
		}
	}
	return out
}

func validBreaker(field string, b BreakerConfig) error {
	if b.FailureRatio < 0 || b.FailureRatio > 1 {
		return fmt.Errorf("%s.failure_ratio: want a share between 0 and 1", field)
	}
	return nil
}

// Models lists the public model names in config order.
func (r *Router) Models() []string { return r.names }

// Strategy returns a model's routing strategy.
func (r *Router) Strategy(model string) string { return r.strategies[model] }

// maxTokenMultiplier bounds a model's token multiplier: beyond it a single request would pass
// any token quota.
const maxTokenMultiplier = 1000

// TokenMultiplier is how much a token of the public model weighs against token quotas (1 unless
// the model sets token_multiplier).
func (r *Router) TokenMultiplier(model string) float64 {
	if k, ok := r.multipliers[model]; ok {
		return k
	}
	return 1
}

// Deployments returns a model's deployments by priority, in config order within a priority,
// disabled ones included.
func (r *Router) Deployments(model string) []*Deployment { return r.models[model] }

// Has reports whether a public model exists.
func (r *Router) Has(model string) bool { _, ok := r.models[model]; return ok }

// Candidates returns the enabled deployments to try for a model, in order: priority groups
// lowest first, and within a group a weighted random order. It returns nil for an unknown model,
// and an empty list for a model whose every deployment is disabled (Has tells the two apart).
func (r *Router) Candidates(model string) []*Deployment {
	deps := r.enabled[model]
	if len(deps) <= 1 {
		return deps
	}
	out := make([]*Deployment, 0, len(deps))
	for start := 0; start < len(deps); {
		end := start
		for end < len(deps) && deps[end].Priority == deps[start].Priority {
			end++
		}
		out = appendWeighted(out, deps[start:end])
		start = end
	}
	return out
}

// appendWeighted appends group in weighted random order (draw without replacement).
func appendWeighted(out, group []*Deployment) []*Deployment {
	rest := append([]*Deployment(nil), group...)
	for len(rest) > 0 {
		total := 0
		for _, d := range rest {
			total += d.Weight
		}
		n := rand.IntN(total)
		i := 0
		for ; n >= rest[i].Weight; i++ {
			n -= rest[i].Weight
		}
		out = append(out, rest[i])
		rest = append(rest[:i], rest[i+1:]...)
	}
	return out
}
