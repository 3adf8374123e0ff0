package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus series. They are registered on the registry passed to
// NewMetrics (no global registry), which the admin listener serves at /metrics.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	ttft       *prometheus.HistogramVec
	streams    prometheus.Gauge
	upstream   *prometheus.CounterVec
	keyLookups *prometheus.CounterVec
	unpriced   *prometheus.CounterVec
	failovers  *prometheus.CounterVec
	overhead   *prometheus.HistogramVec
	// failedOver counts failovers by the deployment the request left.
	failedOver *prometheus.CounterVec
	// retries, fallbacks and degraded count what a model does when its deployments fail.
	retries   *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	degraded  *prometheus.CounterVec
	// tokens and usd are by public model and tenant: tenants are few and operator-made, so the
	// series stay bounded (user and key ids would not).
	tokens *prometheus.CounterVec
	usd    *prometheus.CounterVec
	// spoolBytes and spoolRefused follow the upload spools' room (max_upload_spool_bytes).
	spoolBytes   prometheus.Gauge
	spoolRefused prometheus.Counter
	costs        *costMetrics
	reg          prometheus.Registerer
	// experimentRequests and experimentDuration are by experiment and variant: both are
	// operator-made and bounded in number by the admin API (MaxRunningExperiments of at most
	// MaxVariants each, ids of bounded length), so the series stay few.
	experimentRequests *prometheus.CounterVec
	experimentDuration *prometheus.HistogramVec

	// The children the request path asks for on every request, by their label values (see
	// byLabels): of requests, duration, ttft, overhead, upstream, tokens and usd, and the key
	// cache's hits.
	requestsBy *byLabels[[3]string, prometheus.Counter]
	durationBy *byLabels[[2]string, prometheus.Observer]
	ttftBy     *byLabels[[2]string, prometheus.Observer]
	overheadBy *byLabels[string, prometheus.Observer]
	upstreamBy *byLabels[[2]string, prometheus.Counter]
	tokensBy   *byLabels[[3]string, prometheus.Counter]
	usdBy      *byLabels[[2]string, prometheus.Counter]
	keyHits    prometheus.Counter
}

// byLabels caches the children of a metric vector by their label values. prometheus hashes the
// values on every WithLabelValues, and the request path asks for the same few children (an
// endpoint, a public model, a status) on every request: a sync.Map read costs half as much. Only
// for vectors whose children are never deleted, as a deleted child would live on here; the label
// values are as bounded as the vector's own series.
type byLabels[K comparable, M any] struct {
	cache sync.Map // K → M
	child func(K) M
}

func (b *byLabels[K, M]) with(k K) M {
	if m, ok := b.cache.Load(k); ok {
		return m.(M)
	}
	m, _ := b.cache.LoadOrStore(k, b.child(k))
	return m.(M)
}

func counters2(v *prometheus.CounterVec) *byLabels[[2]string, prometheus.Counter] {
	return &byLabels[[2]string, prometheus.Counter]{child: func(k [2]string) prometheus.Counter { return v.WithLabelValues(k[:]...) }}
}

func counters3(v *prometheus.CounterVec) *byLabels[[3]string, prometheus.Counter] {
	return &byLabels[[3]string, prometheus.Counter]{child: func(k [3]string) prometheus.Counter { return v.WithLabelValues(k[:]...) }}
}

func observers2(v *prometheus.HistogramVec) *byLabels[[2]string, prometheus.Observer] {
	return &byLabels[[2]string, prometheus.Observer]{child: func(k [2]string) prometheus.Observer { return v.WithLabelValues(k[:]...) }}
}

// registry is where the series are registered, for parts of the gateway that add their own.
func (m *Metrics) registry() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// NewMetrics registers the series on reg. costUserLabels bounds the userId label of the
// gov_cost_* series (0: 100).
func NewMetrics(reg prometheus.Registerer, costUserLabels int) *Metrics {
	if costUserLabels <= 0 {
		costUserLabels = 100
	}
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_requests_total", Help: "Requests answered, by endpoint, public model and HTTP status.",
		}, []string{"endpoint", "model", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "llmgate_request_duration_seconds", Help: "Time from request received to answer complete.", Buckets: buckets,
		}, []string{"endpoint", "model"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "llmgate_time_to_first_token_seconds", Help: "Time from request received to the first byte of the answer sent to the client.", Buckets: buckets,
		}, []string{"endpoint", "model"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "llmgate_streams_in_flight", Help: "SSE streams being relayed now.",
		}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_upstream_attempts_total", Help: "Upstream calls by deployment and outcome (ok, http_<status>, error), and deployments skipped with their breaker open (breaker_open).",
		}, []string{"deployment", "outcome"}),
		keyLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmgate_key_lookups_total", Help: "API key resolutions by source: cache hit, negative cache hit, store, stale (store down), rejected by format, refused (the address spent its lookup budget).",
		}, []string{"source"}),
	}
	m.unpriced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_unpriced_requests_total", Help: "Requests with usage but no price for their model: recorded without cost, never as $0.",
	}, []string{"model"})
	m.failovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_failovers_total", Help: "Requests that moved on to another deployment after a failed attempt, by public model.",
	}, []string{"model"})
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "llmgate_gateway_overhead_seconds",
		Help: "The gateway's own time per request, by endpoint: from request received to answer flushed, less the time spent on upstream attempts " +
			"(each from just before the request is sent to the last read of its answer, or its failure) and the backoff between them.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"endpoint"})
	m.failedOver = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_deployment_failovers_total", Help: "Requests that moved on to another deployment after a failed attempt, by the deployment that failed.",
	}, []string{"deployment"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_retries_total", Help: "Attempts that retried a deployment on itself after a retryable failure, by public model and deployment.",
	}, []string{"model", "deployment"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_fallbacks_total", Help: "Requests handed to a fallback model after every deployment of their model failed, by public model, fallback model and cause.",
	}, []string{"model", "fallback", "cause"})
	m.degraded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_degraded_total", Help: "Requests answered with their model's degrade reply, by public model.",
	}, []string{"model"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_tokens_total", Help: "Tokens of metered requests (priced or not), by public model, tenant and direction (input: prompt, output: completion).",
	}, []string{"model", "tenant", "direction"})
	m.usd = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_cost_usd_total", Help: "Cost in USD of costed requests, by public model and tenant (exact in the ledger; a float here).",
	}, []string{"model", "tenant"})
	m.spoolBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmgate_upload_spool_bytes", Help: "Bytes reserved by the multipart upload spools in flight on this replica (each upload's Content-Length, else max_upload_bytes).",
	})
	m.spoolRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llmgate_upload_spool_refused_total", Help: "Multipart uploads refused (503) because their spool would pass gateway.max_upload_spool_bytes.",
	})
	m.experimentRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmgate_experiment_requests_total", Help: "Requests an A/B experiment routed, by experiment, variant and HTTP status.",
	}, []string{"experiment", "variant", "status"})
	m.experimentDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "llmgate_experiment_request_duration_seconds", Help: "Time from request received to answer complete, of the requests an A/B experiment routed, by experiment and variant.", Buckets: buckets,
	}, []string{"experiment", "variant"})
	m.reg = reg
	reg.MustRegister(m.requests, m.duration, m.ttft, m.streams, m.upstream, m.keyLookups, m.unpriced, m.failovers, m.overhead,
		m.failedOver, m.retries, m.fallbacks, m.degraded, m.tokens, m.usd, m.spoolBytes, m.spoolRefused,
		m.experimentRequests, m.experimentDuration)
	m.costs = newCostMetrics(reg, costUserLabels)
	m.requestsBy, m.upstreamBy, m.tokensBy, m.usdBy = counters3(m.requests), counters2(m.upstream), counters3(m.tokens), counters2(m.usd)
	m.durationBy, m.ttftBy = observers2(m.duration), observers2(m.ttft)
	m.overheadBy = &byLabels[string, prometheus.Observer]{child: func(ep string) prometheus.Observer { return m.overhead.WithLabelValues(ep) }}
	m.keyHits = m.keyLookups.WithLabelValues("cache")
	return m
}

// cost counts a costed request in the gov_cost_* series and in llmgate_cost_usd_total.
func (m *Metrics) cost(model, user, tenant string, prompt, completion, picoUSD int64) {
	m.costs.add(model, user, prompt, completion, picoUSD)
	m.usdBy.with([2]string{model, tenant}).Add(float64(picoUSD) / 1e12)
}

// metered counts the tokens of a request whose usage is known, priced or not.
func (m *Metrics) metered(model, tenant string, prompt, completion int64) {
	if prompt > 0 {
		m.tokensBy.with([3]string{model, tenant, "input"}).Add(float64(prompt))
	}
	if completion > 0 {
		m.tokensBy.with([3]string{model, tenant, "output"}).Add(float64(completion))
	}
}

// experiment counts a request an experiment routed.
func (m *Metrics) experiment(id, variant string, status int, took time.Duration) {
	m.experimentRequests.WithLabelValues(id, variant, statusLabel(status)).Inc()
	m.experimentDuration.WithLabelValues(id, variant).Observe(took.Seconds())
}

// statusText caches the label strings of common statuses.
var statusText = func() map[int]string {
	m := map[int]string{}
	for _, s := range []int{200, 400, 401, 403, 404, 413, 429, 499, 500, 502, 503, 504} {
		m[s] = strconv.Itoa(s)
	}
	return m
}()

func statusLabel(s int) string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return strconv.Itoa(s)
}
