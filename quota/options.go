package quota

import (
	"fmt"
	"time"
)

// Options is the `quota` section of the config.
type Options struct {
	// Enabled turns admission on (default true).
	Enabled *bool `yaml:"enabled"`
	// DefaultTier applies to users without a tier and to keys without a user (default "free").
	DefaultTier string `yaml:"default_tier"`
	// Tiers maps a tier name to its limits; free/pro/enterprise are the defaults.
	Tiers map[string]Limits `yaml:"tiers"`
	// Session limits what one X-Session-Id may use (default: unlimited, counted only).
	Session Limits `yaml:"session"`
	// EndpointLimits limits the requests of one endpoint ("embeddings", "images/generations"…),
	// by tier: endpoint → tier → limits. Each user of the tier (a key without a user: the key,
	// with the default tier) is counted on that endpoint apart, on top of its other limits, as
	// exactly across replicas as they are. A tier not named has no endpoint limit.
	EndpointLimits map[string]map[string]Limits `yaml:"endpoint_limits"`
	// DefaultMaxTokens is the answer's share of the token reservation when a request names no
	// max_tokens (default 1024). Settlement corrects the reservation to the real usage.
	DefaultMaxTokens int64 `yaml:"default_max_tokens"`
	// LeaseTTL bounds how long a concurrency slot outlives a gateway that died holding it
	// (default 30s). Running requests renew their leases every LeaseTTL/3.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// RedisTimeout bounds every Redis call on the request path (default 50ms).
	RedisTimeout time.Duration `yaml:"redis_timeout"`
	// OnRedisFailure says per dimension what happens while Redis is unreachable: "open" (the
	// default: a local limiter enforces limit ÷ Replicas) or "closed" (refuse requests that
	// have a limit on that dimension).
	OnRedisFailure map[string]string `yaml:"on_redis_failure"`
	// Replicas is the number of gateway replicas, dividing limits in the fail-open fallback
	// (default 1).
	Replicas int `yaml:"replicas"`
	// SettleQueue bounds the settlements (releases of concurrency slots, with their token
	// counts) kept for replay while Redis does not take them (default 50,000); beyond it the
	// oldest are dropped and counted.
	SettleQueue int `yaml:"settle_queue"`
	// PolicyHashPoll is how often each replica reads the users' policy hashes in Redis
	// (ai:quota:policy:{userId}) to apply what another system wrote there (default 2s; negative:
	// never). Without Redis there are none.
	PolicyHashPoll time.Duration `yaml:"policy_hash_poll"`
	// PermitLeases lets each replica admit the requests of busy subjects from batches of
	// permits it takes from Redis (see PermitLeaseOptions; default off).
	PermitLeases PermitLeaseOptions `yaml:"permit_leases"`
}

// DefaultTiers are the tiers the external contract names: free 20 rpm / 100k tokens a day / 2 concurrent; pro 100 / 2M
// / 10; enterprise 500 / unlimited / 50.
func DefaultTiers() map[string]Limits {
	return map[string]Limits{
		"free":       {RPM: 20, TokensPerDay: 100_000, Concurrent: 2},
		"pro":        {RPM: 100, TokensPerDay: 2_000_000, Concurrent: 10},
		"enterprise": {RPM: 500, Concurrent: 50},
	}
}

// WithDefaults fills the zero fields.
func (o Options) WithDefaults() Options {
	if o.Enabled == nil {
		t := true
		o.Enabled = &t
	}
	if o.DefaultTier == "" {
		o.DefaultTier = "free"
	}
	if len(o.Tiers) == 0 {
		o.Tiers = DefaultTiers()
	}
	if o.DefaultMaxTokens <= 0 {
		o.DefaultMaxTokens = 1024
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.RedisTimeout <= 0 {
		o.RedisTimeout = 50 * time.Millisecond
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.SettleQueue == 0 {
		o.SettleQueue = 50_000
	}
	if o.PolicyHashPoll == 0 {
		o.PolicyHashPoll = DefaultPolicyHashPoll
	}
	return o
}

// Validate names the first invalid field.
func (o Options) Validate() error {
	if _, ok := o.Tiers[o.DefaultTier]; len(o.Tiers) > 0 && o.DefaultTier != "" && !ok {
		return fmt.Errorf("quota.default_tier: no tier named %q in quota.tiers", o.DefaultTier)
	}
	for dim, v := range o.OnRedisFailure {
		switch dim {
		case DimRPM, DimTPM, DimTokensPerDay, DimConcurrent:
		default:
			return fmt.Errorf("quota.on_redis_failure: unknown dimension %q (want rpm, tpm, tokens_per_day, concurrent)", dim)
		}
		if v != "open" && v != "closed" {
			return fmt.Errorf("quota.on_redis_failure.%s: %q is neither open nor closed", dim, v)
		}
	}
	if o.SettleQueue < 0 {
		return fmt.Errorf("quota.settle_queue: %d is negative", o.SettleQueue)
	}
	if err := o.PermitLeases.Validate(); err != nil {
		return err
	}
	for name, l := range o.Tiers {
		if l.RPM < 0 || l.TPM < 0 || l.TokensPerDay < 0 || l.Concurrent < 0 {
			return fmt.Errorf("quota.tiers.%s: limits must not be negative", name)
		}
	}
	for ep, tiers := range o.EndpointLimits {
		for tier, l := range tiers {
			if _, ok := o.Tiers[tier]; !ok && len(o.Tiers) > 0 {
				return fmt.Errorf("quota.endpoint_limits.%s.%s: no tier named %q in quota.tiers", ep, tier, tier)
			}
			if l.RPM < 0 || l.TPM < 0 || l.TokensPerDay < 0 || l.Concurrent < 0 {
				return fmt.Errorf("quota.endpoint_limits.%s.%s: limits must not be negative", ep, tier)
			}
		}
	}
	return nil
}

// EndpointSubject is what a request to endpoint counts against beyond SubjectsOf: the holder's
// user (a key without a user: the key) narrowed to the endpoint, with its tier's limits there
// (quota.endpoint_limits). False when the tier has no limit on the endpoint. The tier is
// resolved as SubjectsOf resolves it. o must have its defaults (WithDefaults).
func (o Options) EndpointSubject(h Holder, endpoint string) (Subject, bool) {
	tiers, ok := o.EndpointLimits[endpoint]
	if !ok || endpoint == "" {
		return Subject{}, false
	}
	kind, id, tier, why := KindKey, h.KeyID, o.DefaultTier, DefaultNoUser
	if h.UserID != "" {
		kind, id, tier, why = KindUser, h.UserID, h.Tier, ""
		if _, ok := o.Tiers[tier]; !ok {
			tier, why = o.DefaultTier, DefaultUnknownTier
		}
	}
	l, ok := tiers[tier]
	if !ok || l == (Limits{}) {
		return Subject{}, false
	}
	return Subject{Kind: kind, ID: id, Tenant: h.TenantID, Endpoint: endpoint, Limits: l,
		Origin: Origin{Tier: tier, Default: why}}, true
}

// TierLimits returns the limits of a tier, falling back to the default tier for an empty or
// unknown name.
func (o Options) TierLimits(tier string) Limits {
	if l, ok := o.Tiers[tier]; ok {
		return l
	}
	return o.Tiers[o.DefaultTier]
}

// FailClosed reports whether a dimension refuses requests while Redis is unreachable.
func (o Options) FailClosed(dim string) bool { return o.OnRedisFailure[dim] == "closed" }
