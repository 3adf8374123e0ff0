package gateway

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/llmgate/llmgate/providers"
)

// health keeps what the gateway learns about each deployment — its circuit breaker, a moving
// average of time to first token, counts of outcomes — by deployment id, so it outlives config
// reloads (a reload that changes a deployment's breaker settings starts it a fresh breaker).
type health struct {
	mu    sync.Mutex
	byID  map[string]*deploymentHealth
	state *prometheus.GaugeVec
	ewma  *prometheus.GaugeVec
	trips *prometheus.CounterVec
}

// deploymentHealth is one deployment's state. Safe for concurrent use.
type deploymentHealth struct {
	id      string
	cfg     providers.BreakerConfig
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	ttft    atomic.Uint64    // float64 bits: EWMA of seconds to first byte; 0 = not measured
	gauge   prometheus.Gauge // llmgate_deployment_ttft_seconds of this deployment
	ok      atomic.Int64
	failed  atomic.Int64
	lastErr atomic.Pointer[failure]
}

type failure struct {
	at     time.Time
	reason string
}

// ttftAlpha weighs the newest sample of the time-to-first-token average: about the last ten
// requests count.
const ttftAlpha = 0.2

// errClientSide marks an outcome the deployment is not to blame for (a 4xx caused by the
// request, a client that went away): the breaker counts it neither way.
var errClientSide = errors.New("client-side outcome")

func newHealth(reg prometheus.Registerer) *health {
	h := &health{
		byID: map[string]*deploymentHealth{},
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llmgate_deployment_breaker_state",
			Help: "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open."}, []string{"deployment"}),
		ewma: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llmgate_deployment_ttft_seconds",
			Help: "Moving average of the time to first byte per deployment (the latency strategy's measure)."}, []string{"deployment"}),
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_deployment_breaker_transitions_total",
			Help: "Circuit breaker state changes per deployment, by the state entered."}, []string{"deployment", "to"}),
	}
	if reg != nil {
		reg.MustRegister(h.state, h.ewma, h.trips)
	}
	return h
}

// of returns a deployment's health, making it (or a fresh breaker, when its settings changed).
func (h *health) of(d *providers.Deployment) *deploymentHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	dh := h.byID[d.ID]
	if dh != nil && dh.cfg == d.Breaker {
		return dh
	}
	fresh := &deploymentHealth{id: d.ID, cfg: d.Breaker, gauge: h.ewma.WithLabelValues(d.ID)}
	if dh != nil { // keep what was measured; only the breaker starts over
		fresh.ttft.Store(dh.ttft.Load())
		fresh.ok.Store(dh.ok.Load())
		fresh.failed.Store(dh.failed.Load())
		fresh.lastErr.Store(dh.lastErr.Load())
	}
	fresh.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](h.settings(d.ID, d.Breaker))
	h.state.WithLabelValues(d.ID).Set(0)
	h.byID[d.ID] = fresh
	return fresh
}

// settings turns a BreakerConfig into gobreaker's: trip on ConsecutiveFailures in a row, or on
// FailureRatio of at least MinRequests within Window; client-side outcomes are excluded.
func (h *health) settings(id string, c providers.BreakerConfig) gobreaker.Settings {
	return gobreaker.Settings{
		Name:        id,
		MaxRequests: c.HalfOpenRequests,
		Interval:    c.Window,
		Timeout:     c.OpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= c.ConsecutiveFailures ||
				(n.Requests >= c.MinRequests && float64(n.TotalFailures) >= c.FailureRatio*float64(n.Requests))
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errClientSide) },
		OnStateChange: func(name string, _, to gobreaker.State) {
			h.state.WithLabelValues(name).Set(float64(to))
			h.trips.WithLabelValues(name, to.String()).Inc()
		},
	}
}

// done reports an attempt's outcome to the breaker (err nil: success; errClientSide: neither)
// and the counters.
func (dh *deploymentHealth) done(report func(error), err error, reason string) {
	if report != nil {
		report(err)
	}
	switch {
	case err == nil:
		dh.ok.Add(1)
	case !errors.Is(err, errClientSide):
		dh.failed.Add(1)
		dh.lastErr.Store(&failure{at: time.Now(), reason: reason})
	}
}

// observeTTFT folds one time-to-first-byte sample into the moving average.
func (h *health) observeTTFT(dh *deploymentHealth, d time.Duration) {
	for {
		old := dh.ttft.Load()
		prev := math.Float64frombits(old)
		next := d.Seconds()
		if prev > 0 {
			next = prev + ttftAlpha*(next-prev)
		}
		if dh.ttft.CompareAndSwap(old, math.Float64bits(next)) {
			dh.gauge.Set(next)
			return
		}
	}
}

// ttftSeconds is the moving average, 0 when not measured yet.
func (dh *deploymentHealth) ttftSeconds() float64 { return math.Float64frombits(dh.ttft.Load()) }

// order arranges a model's candidates (priority groups, lowest first, each in weighted random
// order) by the model's strategy within each priority group. price returns the upstream model's
// price per 1M tokens (input + output), ok false when it has none.
func (h *health) order(cands []*providers.Deployment, strategy string, price func(model string) (int64, bool)) []*providers.Deployment {
	if len(cands) < 2 || strategy == "" || strategy == providers.StrategyWeighted {
		return cands
	}
	out := slices.Clone(cands)
	for start := 0; start < len(out); {
		end := start
		for end < len(out) && out[end].Priority == out[start].Priority {
			end++
		}
		group := out[start:end]
		switch strategy {
		case providers.StrategyLatency:
			// Not measured (0) sorts first, so every deployment gets measured; ties keep the
			// weighted order.
			slices.SortStableFunc(group, func(a, b *providers.Deployment) int {
				return cmp.Compare(h.of(a).ttftSeconds(), h.of(b).ttftSeconds())
			})
		case providers.StrategyCost:
			slices.SortStableFunc(group, func(a, b *providers.Deployment) int {
				pa, oka := price(a.Model)
				pb, okb := price(b.Model)
				switch {
				case oka && okb:
					return cmp.Compare(pa, pb)
				case oka:
					return -1
				case okb:
					return 1
				}
				return 0
			})
		}
		start = end
	}
	return out
}

// DeploymentStatus is what /v1/providers and /v1/status report of one deployment.
type DeploymentStatus struct {
	ID            string `json:"id"`
	Provider      string `json:"provider"`
	UpstreamModel string `json:"upstream_model"`
	Priority      int    `json:"priority"`
	Weight        int    `json:"weight"` // in force (an admin override's, or the file's)
	// Enabled is false while an admin override disables the deployment.
	Enabled bool   `json:"enabled"`
	Breaker string `json:"breaker"` // closed, half-open or open
	// Available: enabled, and the breaker lets requests through.
	Available   bool     `json:"available"`
	TTFTMs      float64  `json:"ttft_ms_avg"`
	Succeeded   int64    `json:"succeeded"`
	Failed      int64    `json:"failed"`
	LastFailure *Failure `json:"last_failure,omitempty"`
}

// Failure is a deployment's last failure: when, and a reason that never names hosts or
// credentials.
type Failure struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// status reports a deployment.
func (h *health) status(d *providers.Deployment) DeploymentStatus {
	dh := h.of(d)
	st := dh.breaker.State()
	s := DeploymentStatus{ID: d.ID, Provider: d.ProviderName, UpstreamModel: d.Model, Priority: d.Priority,
		Weight: d.Weight, Enabled: d.Enabled, Breaker: st.String(), Available: d.Enabled && st != gobreaker.StateOpen,
		TTFTMs: math.Round(dh.ttftSeconds()*1e6) / 1e3, Succeeded: dh.ok.Load(), Failed: dh.failed.Load()}
	if f := dh.lastErr.Load(); f != nil {
		s.LastFailure = &Failure{f.at.UTC(), f.reason}
	}
	return s
}
