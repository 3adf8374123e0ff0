package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/apikey"
	"github.com/llmgate/llmgate/audit"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/replay"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	openaiprov "github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/sqlite"
)

// The behaviour tests of this file's package run one real gateway over real HTTP on loopback:
// the SQLite store in a temporary directory, the in-memory limiter, the usage recorder writing
// to that store, and simulated OpenAI-compatible upstreams (providers/mock) on their own
// listeners. What needs the process around it (config files, the admin API, PostgreSQL, Redis,
// several replicas, signals) is tested with the binary in cmd/llmgate.

// upstreamKey is the credential the gateway is configured to send upstream; tests check that it,
// and never the caller's key, reaches the mock.
const upstreamKey = "upstream-secret-credential"

// env is one gateway under test with its simulated upstreams, all on real loopback listeners.
type env struct {
	t       *testing.T
	gw      *gateway.Gateway
	st      store.Store
	rec     *audit.Recorder
	up      *mock.Handler // serves model "gpt-test" (and "other")
	slow    *mock.Handler // serves model "slow": 10 chunks, 200 ms apart
	srv     *httptest.Server
	key     string // a key allowed every model
	http    *http.Client
	baseURL string // public API root, ending in /v1
	reg     *prometheus.Registry
	provs   map[string]providers.Provider // every provider of the routing table, by name
}

// envConfig is what an envOption may change before the gateway is built: its options, and
// more providers and public models beside the standard ones.
type envConfig struct {
	gateway.Options
	providers   map[string]providers.Provider
	models      []providers.ModelConfig
	err         error               // the first provider that could not be built
	quota       *quota.Options      // nil: an unlimited default tier and two small ones
	log         *slog.Logger        // nil: discarded (LLMGATE_TEST_LOG: stderr)
	prices      []billing.Price     // priced models (a billing.Pricer), unless priceLookup is set
	priceLookup gateway.PriceLookup // the gateway's price lookup as it is
	// routes wraps the store as the gateway's response routes; nil: the store itself.
	routes func(gateway.ResponseRoutes) gateway.ResponseRoutes
	// accessLog is the gateway's access log; nil: none.
	accessLog *gateway.AccessLog
	// cache is the response cache, in this process's memory; nil: off.
	cache *replay.CacheOptions
}

// withPrices prices models (a billing.Pricer as the gateway's price lookup).
func withPrices(prices ...billing.Price) envOption {
	return func(c *envConfig) { c.prices = append(c.prices, prices...) }
}

// envOption changes the gateway's configuration before it is built.
type envOption func(*envConfig)

// namedProvider is a provider to add to an env under name, or the error building it.
type namedProvider struct {
	name string
	p    providers.Provider
	err  error
}

// withRouting adds providers and public models to an env.
func withRouting(provs []namedProvider, models ...providers.ModelConfig) envOption {
	return func(c *envConfig) {
		for _, np := range provs {
			if np.err != nil {
				c.err = errors.Join(c.err, fmt.Errorf("provider %s: %w", np.name, np.err))
				continue
			}
			c.providers[np.name] = np.p
		}
		c.models = append(c.models, models...)
	}
}

// openaiProvider is an OpenAI-compatible provider without a key in front of url (an httptest
// server's, without /v1).
func openaiProvider(name, url string) namedProvider {
	p, err := openaiprov.New(openaiprov.Options{BaseURL: url + "/v1", Outbound: loopback, Media: openaiprov.MediaEndpoints("openai")})
	return namedProvider{name, p, err}
}

// loopback is the outbound policy of the test providers: the simulated upstreams listen on
// loopback, which the default policy refuses.
var loopback = outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

// testKey is a key made for a test: its id and its plaintext.
type testKey struct {
	ID, Key string
}

// keySpec describes a key to make: a UserID that does not exist yet is created with Tier.
type keySpec struct {
	Name      string
	UserID    string
	Tier      string
	Models    []string
	ExpiresAt *time.Time
	// Tenant is the key's (and a new user's) tenant, made when it does not exist; empty: the
	// default tenant.
	Tenant string
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	slow := mock.NewHandler(mock.Options{Chunks: 10, TokensPerSecond: 5, RequireKey: upstreamKey})
	upSrv := httptest.NewServer(up)
	slowSrv := httptest.NewServer(slow)
	t.Cleanup(upSrv.Close)
	t.Cleanup(slowSrv.Close)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("LLMGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	st, err := sqlite.New(ctx, filepath.Join(t.TempDir(), "llmgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The ledger names each record's payer before the store persists it, as in the binary.
	rec, err := audit.New(billing.NewLedger(st, st), audit.Options{FlushInterval: 20 * time.Millisecond,
		SpoolDir: filepath.Join(t.TempDir(), "spool")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rec.Close(ctx); err != nil {
			t.Errorf("recorder close: %v", err)
		}
	})

	// The harness's upstreams are openai-type providers (chat, the Responses API, images and
	// moderations), but "chatup": the same upstream as "up" behind a chat-only provider, as the
	// compatible presets (DeepSeek, vLLM…) are.
	providerOf := func(base, typ string) providers.Provider {
		p, err := openaiprov.New(openaiprov.Options{BaseURL: base + "/v1", APIKey: upstreamKey, Outbound: loopback,
			Media: openaiprov.MediaEndpoints(typ)})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	provider := func(base string) providers.Provider { return providerOf(base, "openai") }
	provs := map[string]providers.Provider{
		"up": provider(upSrv.URL), "chatup": providerOf(upSrv.URL, "deepseek"), "slowup": provider(slowSrv.URL), "dead": provider("http://127.0.0.1:1"),
	}
	models := []providers.ModelConfig{
		{Name: "gpt-test", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}},
		{Name: "other", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "other-model"}}},
		{Name: "slow", Deployments: []providers.DeploymentConfig{{Provider: "slowup", Model: "slow-model"}}},
		{Name: "failover", Deployments: []providers.DeploymentConfig{
			{Provider: "dead", Model: "m", Priority: 0}, {Provider: "up", Model: "fallback-model", Priority: 1}}},
	}
	cfg := envConfig{Options: gateway.Options{KeyCacheTTL: 500 * time.Millisecond, NegativeKeyCacheTTL: 500 * time.Millisecond,
		MaxBodyBytes: 1 << 20}, providers: provs, models: models}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.err != nil {
		t.Fatal(cfg.err)
	}
	// The tests of this package count single failures (a 500 answered, a breaker opened by n
	// attempts): no retries of a deployment on itself unless a test's model asks for them. The
	// default of three is tested in providers and through the binary's config.
	noRetries := 0
	router, err := providers.NewRouter(cfg.models, providers.RoutingConfig{Retry: providers.RetryPolicy{Retries: &noRetries}}, cfg.providers, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // runs after the server has closed: no request uses them any more
		for _, p := range cfg.providers {
			if ic, ok := p.(providers.IdleCloser); ok {
				ic.CloseIdleConnections()
			}
		}
	})
	est, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	qo := quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "tiny": {RPM: 2}, "single": {Concurrent: 1}}}
	if cfg.quota != nil {
		qo = *cfg.quota
	}
	if cfg.log != nil {
		log = cfg.log
	}
	reg := prometheus.NewRegistry()
	var routes gateway.ResponseRoutes = st
	if cfg.routes != nil {
		routes = cfg.routes(st)
	}
	prices := cfg.priceLookup
	if cfg.prices != nil {
		p := billing.NewPricer()
		p.Set(cfg.prices)
		prices = p
	}
	var cache *replay.Cache
	if cfg.cache != nil {
		cache = replay.NewCache(replay.NewMemory(cfg.cache.MaxMemoryBytes), *cfg.cache)
	}
	gw := gateway.New(gateway.Deps{Store: st, Keys: st, Ledger: st, Prices: prices, Cache: cache,
		Limiter: quota.NewMemory(quota.LimiterOptions{LeaseTTL: qo.WithDefaults().LeaseTTL}), Quota: qo,
		Router: router, Tokens: est, Usage: rec, Responses: routes, Metrics: gateway.NewMetrics(reg, 0), Log: log,
		AccessLog: cfg.accessLog}, cfg.Options)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); gw.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	// The gateway's own http.Server (its timeouts), on a loopback listener.
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = gw.Server("")
	srv.Start()
	t.Cleanup(srv.Close) // first to run: waits for the handlers, and so for every settle

	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	e := &env{t: t, gw: gw, st: st, rec: rec, up: up, slow: slow, srv: srv, http: &http.Client{Transport: tr},
		baseURL: srv.URL + "/v1", reg: reg, provs: cfg.providers}
	e.key = e.newKey(keySpec{Name: "all"}).Key
	return e
}

// newKey makes a key in the store, as the admin API would.
func (e *env) newKey(k keySpec) testKey {
	e.t.Helper()
	ctx := context.Background()
	tenant := store.DefaultTenant
	if k.Tenant != "" {
		tenant = k.Tenant
		if _, err := e.st.GetTenant(ctx, tenant); err != nil {
			if err := e.st.CreateTenant(ctx, store.Tenant{ID: tenant, Name: tenant, CreatedAt: time.Now()}); err != nil {
				e.t.Fatalf("create tenant: %v", err)
			}
		}
	}
	if k.UserID != "" {
		if _, err := e.st.GetUser(ctx, k.UserID); err != nil {
			u := store.User{ID: k.UserID, TenantID: tenant, Tier: k.Tier, CreatedAt: time.Now()}
			if err := e.st.CreateUser(ctx, u); err != nil {
				e.t.Fatalf("create user: %v", err)
			}
		}
	}
	plain, hash, prefix := apikey.New()
	id := uuid.NewString()
	if err := e.st.CreateKey(ctx, store.APIKey{ID: id, Name: k.Name, Prefix: prefix, UserID: k.UserID, TenantID: tenant,
		Models: k.Models, ExpiresAt: k.ExpiresAt, CreatedAt: time.Now()}, hash); err != nil {
		e.t.Fatalf("create key: %v", err)
	}
	return testKey{ID: id, Key: plain}
}

// revoke revokes a key in the store, as the admin API would.
func (e *env) revoke(id string) {
	e.t.Helper()
	if err := e.st.RevokeKey(context.Background(), id, time.Now()); err != nil {
		e.t.Fatalf("revoke key: %v", err)
	}
}

// usageFor waits for the usage record of a request id to reach the store.
func (e *env) usageFor(requestID string) store.UsageRecord {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := e.st.ListUsage(context.Background(), store.UsageFilter{Limit: 1000})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range recs {
			if r.RequestID == requestID {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no usage record for request %s", requestID)
	return store.UsageRecord{}
}

// allUsage waits until the recorder has taken at least want records and written every record it
// took (the last batch may still be in the writer's hands when the queue is empty), then lists
// the records. want matters because a request settles after its answer has left: a client can
// hold the whole answer before its record is taken.
func (e *env) allUsage(want int64) []store.UsageRecord {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := e.rec.Stats(); s.Enqueued >= want && s.Backlog == 0 && s.Written >= s.Enqueued {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	recs, err := e.st.ListUsage(context.Background(), store.UsageFilter{Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// metrics returns the gateway's metrics in the text format (cmd/llmgate serves them on the admin
// listener's /metrics).
func (e *env) metrics() string {
	e.t.Helper()
	w := httptest.NewRecorder()
	promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return w.Body.String()
}

// api is the shared public-API test client (gatewaytest), bound to this env.
func (e *env) api() gatewaytest.Client {
	return gatewaytest.Client{T: e.t, BaseURL: e.baseURL, HTTP: e.http, Key: e.key}
}

// client is a go-openai client for the gateway with the given key.
func (e *env) client(key string) *openai.Client { return e.api().OpenAI(key) }

// post sends a raw request to the public API.
func (e *env) post(ctx context.Context, path, key string, body []byte, hdr ...string) *http.Response {
	e.t.Helper()
	return e.api().Post(ctx, path, key, body, hdr...)
}

// getJSON GETs a public path with the env's key.
func (e *env) getJSON(path string, out any) {
	e.t.Helper()
	e.api().GetJSON(path, out)
}

// deploymentStatus reads one deployment from GET /v1/providers.
func (e *env) deploymentStatus(id string) deploymentJSON {
	e.t.Helper()
	return e.api().Deployment(id)
}

// The shared helpers of gatewaytest under the names these tests use.
type (
	switchable     = gatewaytest.Switchable
	deploymentJSON = gatewaytest.Deployment
	bodyError      = gatewaytest.ErrorBody
)

var (
	apiError         = gatewaytest.APIError
	readBodyError    = gatewaytest.ReadError
	waitFor          = gatewaytest.WaitFor
	newStreamRequest = gatewaytest.StreamRequest
	newSwitchable    = gatewaytest.NewSwitchable
)
