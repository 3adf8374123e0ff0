// Package gateway is llmgate's public HTTP API: it authenticates a caller's key, admits the
// request against its quotas, routes it to a provider deployment and relays the answer (SSE
// event by event), and hands one usage record per request to the recorder.
package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/internal/replay"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// Options is the `gateway` section of the config. Zero values mean the defaults in brackets.
type Options struct {
	// MaxBodyBytes caps a request body [16 MiB]; larger bodies get 413 without an upstream call.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxUploadBytes caps a multipart request body (images/edits, audio transcriptions and
	// translations) [32 MiB: OpenAI takes audio files up to 25 MB]; larger bodies get 413 without
	// an upstream call. Such bodies are spooled to disk, not held in memory.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// UploadDir is where multipart bodies are spooled while their request runs [the system's
	// temporary directory]. Each spool file is unlinked as soon as it is made, so none outlives
	// its request, even after a crash.
	UploadDir string `yaml:"upload_dir"`
	// MaxUploadSpoolBytes caps the bytes of all the upload spools this replica holds at once
	// [1 GiB; negative: no cap]. Each multipart request reserves its Content-Length (a body
	// without one: max_upload_bytes) before its body is read; one that would pass the cap is
	// answered 503 with Retry-After, nothing read, nothing consumed.
	MaxUploadSpoolBytes int64 `yaml:"max_upload_spool_bytes"`
	// MaxResponseBytes caps a non-stream upstream answer [64 MiB].
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// ReadHeaderTimeout bounds reading request headers [10s].
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// BodyReadTimeout bounds reading the request body [60s]. It runs from the end of the headers
	// until the body has been read, on every route: a request answered without reading its body
	// (a 401, a 404) is closed at this deadline at the latest.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// WriteTimeout bounds each write to the client (each SSE event, or a whole non-stream answer)
	// [30s], so a client that stops reading cannot pin a stream. A write of an answer sent in
	// many (events, audio chunks) has between 7/8 of it and all of it: the deadline moves forward
	// once 1/8 of it has passed, not before every write (writeDeadline).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections [120s].
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// KeyCacheTTL is how long a resolved key is trusted before the store is asked again [3s]; it
	// bounds how long a revoked key keeps working on this replica.
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
	// NegativeKeyCacheTTL is how long an unknown key is remembered as unknown [3s].
	NegativeKeyCacheTTL time.Duration `yaml:"negative_key_cache_ttl"`
	// KeyLookupsPerAddress bounds the store lookups of keys this replica does not know as valid,
	// per client address (an IPv6 /64) and minute, with a burst of as many [600; negative: no
	// bound]. Beyond it such a key gets 429 without a store query; known keys are never refused.
	KeyLookupsPerAddress int `yaml:"key_lookups_per_address"`
	// MaxConnections caps the connections the public listener holds open at once [8192; negative:
	// no cap]; one more is answered 503 and closed at accept, and counted.
	MaxConnections int `yaml:"max_connections"`
	// MaxAttempts bounds how many deployments one request may try [3].
	MaxAttempts int `yaml:"max_attempts"`
	// ChargeUpstreamFaults charges credits for answers an upstream fault cut short [false];
	// answers cut by the client going away are always charged.
	ChargeUpstreamFaults bool `yaml:"charge_upstream_faults"`
	// MaxJSONDepth caps the nesting of objects and arrays in a request body [128]; a deeper body
	// gets 400 json_too_deep before anything reads it.
	MaxJSONDepth int `yaml:"max_json_depth"`
	// StripBodyFields are removed from request bodies before forwarding, at the top level and
	// inside a top-level "extra_body" object [api_base, base_url, api_key, extra_headers]: an
	// upstream that is itself a proxy may honour them and send the request (and its credentials)
	// elsewhere. Unset means the default list; an empty list strips nothing.
	StripBodyFields []string `yaml:"strip_body_fields"`
	// ResponsesTTL is how long the gateway remembers which deployment produced a Responses API
	// response, and so how long follow-ups (previous_response_id) and GET/DELETE by id work
	// [720h, the 30 days OpenAI keeps stored responses].
	ResponsesTTL time.Duration `yaml:"responses_ttl"`
	// ResponsesMaxKeptBytes bounds what the gateway keeps of one response it made by translation
	// for a chat-only deployment (its conversation and the Response); a larger one is answered
	// with "store":false and not kept [8 MiB].
	ResponsesMaxKeptBytes int `yaml:"responses_max_kept_bytes"`
	// AnthropicBetas are anthropic-beta values accepted on /v1/messages beyond the ones the
	// gateway knows (knownBetas): a request naming any other is refused with a 400 before any
	// upstream call [none].
	AnthropicBetas []string `yaml:"anthropic_betas"`
	// CostUserLabels bounds the userId label of the gov_cost_* metrics: the top N users by cost
	// (recent cost weighs more) get their own series, the rest share "other" [100].
	CostUserLabels int `yaml:"cost_user_labels"`
	// ServerTiming adds a Server-Timing header to the answers of authenticated requests
	// ("gw;dur=…, upstream;dur=…" in milliseconds, see docs/operations.md) [false]: it tells
	// every client how long the upstream took, which an operator may not want to share.
	ServerTiming bool `yaml:"server_timing"`
	// GlobalRateLimit sheds the public API's requests beyond a rate on this replica with a 429
	// before any work is done for them (no key lookup, no body read) [off].
	GlobalRateLimit RateLimit `yaml:"global_rate_limit"`
	// UserIDHeader names a header that carries the caller's user id to the upstream on every
	// request ("" [default]: none). The client's own value of that header is never forwarded.
	UserIDHeader string `yaml:"user_id_header"`
	// EventStreamsPerKey bounds the /v1/usage and /v1/status event streams (Accept:
	// text/event-stream) one key holds open at once on this replica [4]; one more gets 429.
	EventStreamsPerKey int `yaml:"event_streams_per_key"`
	// EventHeartbeat is how often an idle event stream gets a comment line, so that proxies
	// and clients see it alive [15s].
	EventHeartbeat time.Duration `yaml:"event_heartbeat"`
	// EventPoll is how often an event stream re-reads what it reports (the key's rollups and
	// counters for /v1/usage, the health of the models for /v1/status) to send an event when it
	// changed [2s]. /v1/usage also looks at once after each of the key's requests on this replica.
	EventPoll time.Duration `yaml:"event_poll"`
}

// RateLimit is a token bucket: RequestsPerSecond refill it, Burst is its size. A rate of 0
// turns it off.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate [0: no limit].
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests may arrive at once [the rate, rounded up; at least 1].
	Burst int `yaml:"burst"`
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 32 << 20
	}
	if o.MaxUploadSpoolBytes == 0 {
		o.MaxUploadSpoolBytes = 1 << 30
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 64 << 20
	}
	def(&o.ReadHeaderTimeout, 10*time.Second)
	def(&o.BodyReadTimeout, 60*time.Second)
	def(&o.WriteTimeout, 30*time.Second)
	def(&o.IdleTimeout, 120*time.Second)
	def(&o.KeyCacheTTL, 3*time.Second)
	def(&o.ResponsesTTL, responsesTTLDefault)
	if o.ResponsesMaxKeptBytes <= 0 {
		o.ResponsesMaxKeptBytes = 8 << 20
	}
	def(&o.NegativeKeyCacheTTL, 3*time.Second)
	if o.KeyLookupsPerAddress == 0 {
		o.KeyLookupsPerAddress = 600
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 8192
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.CostUserLabels <= 0 {
		o.CostUserLabels = 100
	}
	if o.MaxJSONDepth <= 0 {
		o.MaxJSONDepth = 128
	}
	if o.EventStreamsPerKey <= 0 {
		o.EventStreamsPerKey = 4
	}
	def(&o.EventHeartbeat, 15*time.Second)
	def(&o.EventPoll, 2*time.Second)
	if o.StripBodyFields == nil {
		o.StripBodyFields = []string{"api_base", "base_url", "api_key", "extra_headers"}
	}
	return o
}

// UsageSink receives one record per authenticated request. Record must never block; a record
// it cannot keep is its to count and report.
type UsageSink interface {
	Record(store.UsageRecord) bool
}

// PriceLookup finds the price in force of a model, without I/O (billing.PriceBook).
type PriceLookup interface {
	Lookup(model string) (billing.Price, bool)
}

// noPrices is the PriceLookup of a gateway given none: nothing is priced.
type noPrices struct{}

func (noPrices) Lookup(string) (billing.Price, bool) { return billing.Price{}, false }

// PolicyLookup finds a subject's quota policy for a model ("" for the model-less one), without
// I/O (quota.PolicyBook).
type PolicyLookup interface {
	Lookup(kind quota.Kind, subjectID, model string) (store.QuotaPolicy, bool)
}

// noPolicies is the PolicyLookup of a gateway given none: tier defaults apply to everyone.
type noPolicies struct{}

func (noPolicies) Lookup(quota.Kind, string, string) (store.QuotaPolicy, bool) {
	return store.QuotaPolicy{}, false
}

// keyReader is what authentication reads of the store, on a key cache miss.
type keyReader interface {
	KeyBySecret(ctx context.Context, secretHash string, now time.Time) (store.APIKey, error)
	GetUser(ctx context.Context, id string) (store.User, error)
}

// ledgerReader is what /v1/usage reads of the store: the key's daily rollups, and (as
// billing.LedgerReader) the spend of subjects with a budget and the payer's credit account.
type ledgerReader interface {
	billing.LedgerReader
	BillingRecords(ctx context.Context, f store.BillingFilter) ([]store.DailyUsage, error)
}

// pinger tells whether the store answers, for readiness and /v1/status.
type pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the gateway's collaborators.
type Deps struct {
	// Store is pinged for readiness and /v1/status; Keys resolves API keys and their users;
	// Ledger answers /v1/usage. All three are the store (store.Store implements them).
	Store  pinger
	Keys   keyReader
	Ledger ledgerReader
	// Limiter decides admissions and takes settlements. It bounds its own waits, as the gateway
	// sets it no deadline (admissions run under the request's context, settlements under one
	// that does not end): quota.Resilient bounds its calls to Redis by its Timeout, and
	// quota.Memory never waits.
	Limiter  quota.Limiter
	Quota    quota.Options
	Policies PolicyLookup // nil: no policies
	Prices   PriceLookup  // nil: no model is priced
	Tokens   *tokens.Estimator
	// Money is the balance guard (billing.Guard); nil: everyone is postpaid, without budgets.
	Money   MoneyGuard
	Router  *providers.Router
	Usage   UsageSink
	Metrics *Metrics
	Log     *slog.Logger
	// Responses remembers where each Responses API response lives (the store); nil: follow-ups
	// are not pinned and the operations by id answer 404.
	Responses ResponseRoutes
	// QuotaHealthy reports whether quota decisions are made by the shared store (nil: always).
	QuotaHealthy func() bool
	// AccessLog gets one line per request (NewAccessLog); nil: no access log.
	AccessLog *AccessLog
	// Tracer makes the spans of each /v1 request (see tracing.go); nil: tracing is off.
	Tracer trace.Tracer
	// Spool reports the usage spool's room, for readiness (nil: not reported, and readiness
	// does not weigh it).
	Spool func() SpoolState
	// Cache is the response cache (nil: off); Idempotency keeps the answers of requests sent
	// with an Idempotency-Key (nil: in this process, with the defaults).
	Cache       *replay.Cache
	Idempotency *replay.Idempotency
}

// Gateway serves the public API.
type Gateway struct {
	opts     Options
	store    pinger
	ledger   ledgerReader
	limiter  quota.Limiter
	quota    quota.Options
	policies PolicyLookup
	prices   PriceLookup
	tokens   *tokens.Estimator
	money    MoneyGuard
	balancer *providers.Balancer
	retries  *retryBudget
	renewer  *renewer
	router   atomic.Pointer[providers.Router]
	// experiments are the running A/B experiments (nil: none).
	experiments atomic.Pointer[providers.Experiments]
	usage       UsageSink
	// responses remembers where each Responses API response lives; nil: nowhere.
	responses ResponseRoutes
	routes    *routeWriter // writes to responses, many requests' routes in one transaction
	metrics   *Metrics
	log       *slog.Logger
	access    *AccessLog // nil: no access log
	keys      *keyCache
	bodies    *bodyChecker
	// spooled counts the bytes reserved by the upload spools in flight (max_upload_spool_bytes).
	spooled spoolRoom
	// betas are the anthropic-beta values of Options.AnthropicBetas.
	betas   map[string]bool
	ready   atomic.Bool
	quotaOK func() bool
	tracer  trace.Tracer // nil: tracing off
	spool   func() SpoolState
	// base is the context of every request of Server; cut cancels it when the process's drain
	// time is up (CutRequests).
	base context.Context
	cut  context.CancelCauseFunc
	// unsettled counts the authenticated requests whose usage record is not yet handed to the
	// usage sink (Unsettled).
	unsettled atomic.Int64
	// unpricedSeen remembers the models already warned about as unpriced.
	unpricedSeen sync.Map
	// unchosenWarned paces the warning about refusals by a default tier (warnUnchosen).
	unchosenWarned everyMinute
	// shedder is the global rate limit (nil: none).
	shedder *shedder
	// userHeader is the canonical name of the header that carries the user id upstream ("": none).
	userHeader string
	// events are the open /v1/usage and /v1/status event streams.
	events *eventStreams
	// cache is the response cache (nil: off) and idem the idempotency records; replays counts
	// what both do.
	cache   *replay.Cache
	idem    *replay.Idempotency
	replays *replayMetrics
}

// New builds a gateway. It is ready to serve once constructed.
func New(d Deps, opts Options) *Gateway {
	opts = opts.withDefaults()
	if d.Log == nil {
		d.Log = slog.Default()
	}
	q := d.Quota.WithDefaults()
	g := &Gateway{opts: opts, store: d.Store, ledger: d.Ledger, limiter: d.Limiter, quota: q, policies: d.Policies, prices: d.Prices, tokens: d.Tokens,
		renewer: newRenewer(d.Limiter, q.LeaseTTL), usage: d.Usage, metrics: d.Metrics, log: d.Log}
	if g.policies == nil {
		g.policies = noPolicies{}
	}
	if g.prices == nil {
		g.prices = noPrices{}
	}
	g.responses = d.Responses
	if g.responses != nil {
		g.routes = newRouteWriter(g.responses)
	}
	g.money = d.Money
	g.access = d.AccessLog
	registerAccessMetrics(d.Metrics.registry(), g.access)
	if g.money == nil {
		g.money = postpaid{}
	}
	g.balancer = providers.NewBalancer(d.Metrics.registry())
	if reg := d.Metrics.registry(); reg != nil {
		reg.MustRegister(g.balancer.ModelCollector(g.Router))
	}
	g.retries = newRetryBudget()
	g.quotaOK = d.QuotaHealthy
	g.tracer = d.Tracer
	if g.quotaOK == nil {
		g.quotaOK = func() bool { return true }
	}
	g.spool = d.Spool
	g.cache, g.idem = d.Cache, d.Idempotency
	if g.idem == nil {
		g.idem = replay.NewIdempotency(replay.NewMemory(0), replay.IdempotencyOptions{})
	}
	g.replays = newReplayMetrics(d.Metrics.registry())
	g.router.Store(d.Router)
	g.events = newEventStreams()
	g.shedder = newShedder(opts.GlobalRateLimit, d.Metrics.registry())
	if opts.UserIDHeader != "" {
		g.userHeader = http.CanonicalHeaderKey(opts.UserIDHeader)
	}
	g.bodies = &bodyChecker{maxDepth: opts.MaxJSONDepth, strip: opts.StripBodyFields}
	g.betas = make(map[string]bool, len(opts.AnthropicBetas))
	for _, b := range opts.AnthropicBetas {
		g.betas[b] = true
	}
	g.keys = newKeyCache(d.Keys, opts.KeyCacheTTL, opts.NegativeKeyCacheTTL, opts.KeyLookupsPerAddress, d.Metrics)
	g.ready.Store(true)
	g.base, g.cut = context.WithCancelCause(context.Background())
	return g
}

// Run does the gateway's background work, renewing the concurrency leases of long requests and
// purging expired response routes, until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); g.purgeResponseRoutes(ctx) }()
	g.renewer.run(ctx)
	<-done
}

// Prices is the gateway's price lookup (for tests).
func (g *Gateway) Prices() PriceLookup { return g.prices }

// Router is the routing table in use.
func (g *Gateway) Router() *providers.Router { return g.router.Load() }

// SetExperiments puts a table of running experiments in use (nil: none); requests routed from
// then on are assigned by it.
func (g *Gateway) SetExperiments(e *providers.Experiments) { g.experiments.Store(e) }

// SetRouter swaps the routing table; requests in flight keep the table they started with.
func (g *Gateway) SetRouter(r *providers.Router) { g.router.Store(r) }

// SetReady marks the gateway ready or draining (for /health/ready during shutdown).
func (g *Gateway) SetReady(v bool) {
	g.ready.Store(v)
	if !v {
		g.events.drain() // event streams end, so the drain does not wait on them
	}
}

// Ready reports whether the gateway is ready, as opposed to draining.
func (g *Gateway) Ready() bool { return g.ready.Load() }

// CutRequests ends every request of Server still in flight, when the process's drain time is
// up: each ends as if its upstream had failed, with a 503 gateway_shutting_down (an SSE error
// event for a stream that has begun), and is settled and recorded as usual, once. The connections
// stay open until the answers are out, so that clients read a clean end rather than a reset.
func (g *Gateway) CutRequests() { g.cut(errShuttingDown) }

// Unsettled is the number of authenticated requests whose usage record is not yet handed to the
// usage sink: the process closes its usage recorder only once it is zero, so that every accepted
// request keeps its one record.
func (g *Gateway) Unsettled() int64 { return g.unsettled.Load() }

// Handler returns the public API's routes.
func (g *Gateway) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(g.bodyDeadline, g.shed)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, newError(http.StatusNotFound, "invalid_request_error", "unknown_url", "", "Unknown request URL: "+c.Request.Method+" "+c.Request.URL.Path+"."))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, newError(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "", "Method "+c.Request.Method+" is not allowed on "+c.Request.URL.Path+"."))
	})
	e.GET("/health/live", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/health/ready", g.handleReady)
	v1 := e.Group("/v1", g.requestMeta)
	v1.POST("/chat/completions", g.relayHandler(providers.ChatCompletions))
	v1.POST("/completions", g.relayHandler(providers.Completions))
	v1.POST("/embeddings", g.relayHandler(providers.Embeddings))
	v1.POST("/responses", g.relayHandler(providers.Responses))
	v1.GET("/responses/:id", g.responseByID(http.MethodGet, ""))
	v1.DELETE("/responses/:id", g.responseByID(http.MethodDelete, ""))
	v1.POST("/responses/:id/cancel", g.responseByID(http.MethodPost, "/cancel"))
	v1.POST("/images/generations", g.relayHandler(providers.ImageGenerations))
	v1.POST("/images/edits", g.relayHandler(providers.ImageEdits))
	v1.POST("/audio/transcriptions", g.relayHandler(providers.AudioTranscriptions))
	v1.POST("/audio/translations", g.relayHandler(providers.AudioTranslations))
	v1.POST("/audio/speech", g.relayHandler(providers.AudioSpeech))
	v1.POST("/moderations", g.relayHandler(providers.Moderations))
	msgs := v1.Group("/messages", anthropicFront)
	msgs.POST("", g.relayHandler(providers.Messages))
	msgs.POST("/count_tokens", g.relayHandler(providers.MessagesCountTokens))
	v1.GET("/models", g.handleModels)
	v1.GET("/models/*model", g.handleModel)
	v1.GET("/providers", g.handleProviders)
	v1.GET("/status", g.handleStatus)
	v1.GET("/usage", g.handleUsage)
	g.azureRoutes(e)
	return e
}

// Server wraps the handler in an http.Server with the timeouts a gateway needs. There is no
// server-wide ReadTimeout or WriteTimeout: either would cut long streams (a ReadTimeout even
// cancels the request context mid-stream); the body read and each write get their own deadline.
func (g *Gateway) Server(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           g.Handler(),
		ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		IdleTimeout:       g.opts.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return g.base },
	}
}

// MaxConnections is the cap on the public listener's open connections (≤ 0: none).
func (g *Gateway) MaxConnections() int { return g.opts.MaxConnections }

// bodyDeadline puts the body read deadline on every request that announces a body, from before
// any handler runs until the body has been read (readBody then clears it). Without it, a request
// answered without reading its body (a 401, a 404, a health check) would hold its connection and
// goroutine for as long as the client likes: net/http reads the unread rest of a small body
// before it sends the answer, with no deadline of its own (the server has no ReadTimeout, which
// would cut long streams). Such answers also close the connection, so they are sent at once
// instead of after that read; readBody drops the Connection: close once the body is in.
// Requests without a body are left alone: net/http already reads ahead on their connection (to
// notice a client that leaves), and a deadline would cancel them.
func (g *Gateway) bodyDeadline(c *gin.Context) {
	if r := c.Request; r.ContentLength != 0 && r.Body != http.NoBody {
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(g.opts.BodyReadTimeout))
		c.Writer.Header().Set("Connection", "close")
	}
	c.Next()
}

// writeError answers err, in the dialect of the route (OpenAI's, or Anthropic's on the Messages
// routes: see anthropicError).
func writeError(c *gin.Context, err error) {
	status, body := classify(err)
	if status == StatusClientClosed {
		c.Status(status)
		return
	}
	var retryAfter time.Duration
	if ge, ok := err.(*Error); ok {
		retryAfter = ge.retryAfter
	}
	if dialectOf(c) == dialectAnthropic {
		writeAnthropicError(c, status, body, retryAfter)
		return
	}
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && retryAfter > 0 {
		c.Header("Retry-After", retryAfterSeconds(retryAfter))
	}
	body.Write(c.Writer, status)
}
