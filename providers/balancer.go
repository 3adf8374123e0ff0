package providers

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
)

// Balancer keeps what the gateway learns about each deployment — its circuit breaker, a moving
// average of time to first byte, counts of outcomes — and orders a model's candidates by it. State
// is kept by deployment id, so it outlives the Routers that reloads build (a reload that changes a
// deployment's breaker settings starts it a fresh breaker). Safe for concurrent use.
type Balancer struct {
	mu    sync.Mutex
	byID  map[string]*health
	state *prometheus.GaugeVec
	ewma  *prometheus.GaugeVec
	trips *prometheus.CounterVec
}

// health is one deployment's state. Safe for concurrent use.
type health struct {
	cfg     BreakerConfig
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	ttft    atomic.Uint64    // float64 bits: EWMA of seconds to first byte; 0 = not measured
	gauge   prometheus.Gauge // llmgate_deployment_ttft_seconds of this deployment
	ok      atomic.Int64
	failed  atomic.Int64
	lastErr atomic.Pointer[Failure]
}

// ttftAlpha weighs the newest sample of the time-to-first-byte average: about the last ten
// requests count.
const ttftAlpha = 0.2

// errExcused marks an outcome the deployment is not to blame for (a 4xx caused by the request, a
// client that went away, an attempt never made): the breaker counts it neither way.
var errExcused = errors.New("outcome the deployment is not to blame for")

// errFailed is what the breaker is told of a failed attempt; the reason is kept apart.
var errFailed = errors.New("attempt failed")

// NewBalancer makes a balancer whose breaker and latency metrics are registered with reg (nil:
// not registered).
func NewBalancer(reg prometheus.Registerer) *Balancer {
	b := &Balancer{
		byID: map[string]*health{},
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llmgate_deployment_breaker_state",
			Help: "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open."}, []string{"deployment"}),
		ewma: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llmgate_deployment_ttft_seconds",
			Help: "Moving average of the time to first byte per deployment (the latency strategy's measure)."}, []string{"deployment"}),
		trips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_deployment_breaker_transitions_total",
			Help: "Circuit breaker state changes per deployment, by the state entered."}, []string{"deployment", "to"}),
	}
	if reg != nil {
		reg.MustRegister(b.state, b.ewma, b.trips)
	}
	return b
}

// of returns a deployment's health, making it (or a fresh breaker, when its settings changed).
func (b *Balancer) of(d *Deployment) *health {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.byID[d.ID]
	if h != nil && h.cfg == d.Breaker {
		return h
	}
	fresh := &health{cfg: d.Breaker, gauge: b.ewma.WithLabelValues(d.ID)}
	if h != nil { // keep what was measured; only the breaker starts over
		fresh.ttft.Store(h.ttft.Load())
		fresh.ok.Store(h.ok.Load())
		fresh.failed.Store(h.failed.Load())
		fresh.lastErr.Store(h.lastErr.Load())
	}
	fresh.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](b.settings(d.ID, d.Breaker))
	b.state.WithLabelValues(d.ID).Set(0)
	b.byID[d.ID] = fresh
	return fresh
}

// settings turns a BreakerConfig into gobreaker's: trip on ConsecutiveFailures in a row, or on
// FailureRatio of at least MinRequests within Window; excused outcomes are left out.
func (b *Balancer) settings(id string, c BreakerConfig) gobreaker.Settings {
	return gobreaker.Settings{
		Name:        id,
		MaxRequests: c.HalfOpenRequests,
		Interval:    c.Window,
		Timeout:     c.OpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= c.ConsecutiveFailures ||
				(n.Requests >= c.MinRequests && float64(n.TotalFailures) >= c.FailureRatio*float64(n.Requests))
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errExcused) },
		OnStateChange: func(name string, _, to gobreaker.State) {
			b.state.WithLabelValues(name).Set(float64(to))
			b.trips.WithLabelValues(name, to.String()).Inc()
		},
	}
}

// Attempt is one call to a deployment that its breaker let through. Exactly one of Succeeded,
// Failed or Excused ends it.
type Attempt struct {
	h      *health
	report func(error)
}

// Acquire asks d's breaker to let an attempt through. False when it refuses: the breaker is open,
// or half-open with its probes already out.
func (b *Balancer) Acquire(d *Deployment) (Attempt, bool) {
	h := b.of(d)
	report, err := h.breaker.Allow()
	if err != nil {
		return Attempt{}, false
	}
	return Attempt{h: h, report: report}, true
}

// Succeeded ends the attempt as a success.
func (a Attempt) Succeeded() {
	a.report(nil)
	a.h.ok.Add(1)
}

// Failed ends the attempt as the deployment's failure; reason is shown as its last failure, so it
// must name no host or credential.
func (a Attempt) Failed(reason string) {
	a.report(errFailed)
	a.h.failed.Add(1)
	a.h.lastErr.Store(&Failure{At: time.Now(), Reason: reason})
}

// Excused ends an attempt the deployment is not to blame for, or one never made: the breaker
// counts it neither way.
func (a Attempt) Excused() { a.report(errExcused) }

// ObserveTTFT folds one time-to-first-byte sample into the deployment's moving average.
func (a Attempt) ObserveTTFT(d time.Duration) {
	h := a.h
	for {
		old := h.ttft.Load()
		prev := math.Float64frombits(old)
		next := d.Seconds()
		if prev > 0 {
			next = prev + ttftAlpha*(next-prev)
		}
		if h.ttft.CompareAndSwap(old, math.Float64bits(next)) {
			h.gauge.Set(next)
			return
		}
	}
}

// ttftSeconds is the moving average, 0 when not measured yet.
func (h *health) ttftSeconds() float64 { return math.Float64frombits(h.ttft.Load()) }

// PriceFunc returns an upstream model's price per 1M tokens (input + output), ok false when it
// has none. The cost strategy orders by it; the caller owns the prices.
type PriceFunc func(model string) (perMillion int64, ok bool)

// Order arranges a model's candidates (priority groups, lowest first, each in weighted random
// order, as Router.Candidates returns them) by the model's strategy within each priority group.
// The weighted strategy keeps the order; latency puts the lowest moving average of time to first
// byte first (a deployment not measured yet goes first, so each gets measured); cost the lowest
// price, unpriced last. Ties keep the weighted order. cands itself is not modified.
func (b *Balancer) Order(cands []*Deployment, strategy string, price PriceFunc) []*Deployment {
	if len(cands) < 2 || strategy == "" || strategy == StrategyWeighted {
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
		case StrategyLatency:
			slices.SortStableFunc(group, func(x, y *Deployment) int {
				return cmp.Compare(b.of(x).ttftSeconds(), b.of(y).ttftSeconds())
			})
		case StrategyCost:
			slices.SortStableFunc(group, func(x, y *Deployment) int {
				px, okx := price(x.Model)
				py, oky := price(y.Model)
				switch {
				case okx && oky:
					return cmp.Compare(px, py)
				case okx:
					return -1
				case oky:
					return 1
				}
				return 0
			})
		}
		start = end
	}
	return out
}

// DeploymentStatus is what /v1/providers, /v1/status and the admin API report of one deployment's
// health on this replica.
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

// Status reports a deployment's health.
func (b *Balancer) Status(d *Deployment) DeploymentStatus {
	h := b.of(d)
	st := h.breaker.State()
	s := DeploymentStatus{ID: d.ID, Provider: d.ProviderName, UpstreamModel: d.Model, Priority: d.Priority,
		Weight: d.Weight, Enabled: d.Enabled, Breaker: st.String(), Available: d.Enabled && st != gobreaker.StateOpen,
		TTFTMs: math.Round(h.ttftSeconds()*1e6) / 1e3, Succeeded: h.ok.Load(), Failed: h.failed.Load()}
	if f := h.lastErr.Load(); f != nil {
		s.LastFailure = &Failure{At: f.At.UTC(), Reason: f.Reason}
	}
	return s
}

// DeploymentState is one deployment of a routing table: its settings (with the run-time override
// merged in), the public models it serves and its health.
type DeploymentState struct {
	*Deployment
	// Models are the public models it serves, in config order.
	Models []string
	Status DeploymentStatus
}

// States lists every deployment of r, disabled ones included, once per id: by model in config
// order, by priority within a model. A deployment serving several models is described as
// configured for the first of them.
func (b *Balancer) States(r *Router) []DeploymentState {
	var out []DeploymentState
	index := map[string]int{}
	for _, m := range r.Models() {
		for _, d := range r.Deployments(m) {
			i, seen := index[d.ID]
			if !seen {
				i = len(out)
				index[d.ID] = i
				out = append(out, DeploymentState{Deployment: d, Status: b.Status(d)})
			}
			out[i].Models = append(out[i].Models, m)
		}
	}
	return out
}
