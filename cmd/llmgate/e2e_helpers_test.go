package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/adminclient"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// upstreamKey is the credential the gateway is configured to send upstream; tests check that it,
// and never the caller's key, reaches the mock.
const upstreamKey = "upstream-secret-credential"

const testAdminToken = "test-admin-token-0123456789abcdefghijklmnop"

// The tests create keys through the admin client, under shorter names.
type (
	createKeyBody = adminclient.CreateKeyBody
	keyJSON       = adminclient.Key
)

// env is one gateway under test with its simulated upstreams, all on real loopback listeners.
type env struct {
	t       *testing.T
	cfg     Config
	app     *app
	up      *mock.Handler // serves model "gpt-test" (and "other")
	slow    *mock.Handler // serves model "slow": 10 chunks, 200 ms apart
	admin   *adminclient.Client
	key     string // a key allowed every model
	http    *http.Client
	baseURL string // public API root, ending in /v1
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	slow := mock.NewHandler(mock.Options{Chunks: 10, TokensPerSecond: 5, RequireKey: upstreamKey})
	upSrv := httptest.NewServer(up)
	slowSrv := httptest.NewServer(slow)
	t.Cleanup(upSrv.Close)
	t.Cleanup(slowSrv.Close)

	cfg := defaultConfig()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = testAdminToken
	cfg.Usage.FlushInterval = 20 * time.Millisecond
	cfg.Gateway.KeyCacheTTL = 500 * time.Millisecond
	cfg.Gateway.NegativeKeyCacheTTL = 500 * time.Millisecond
	cfg.Gateway.MaxBodyBytes = 1 << 20
	// Processes the tests stop with SIGTERM stop at once; the pre-stop delay has tests of its own.
	cfg.Shutdown.PreStopDelay = 0
	// The simulated upstreams listen on loopback, which the outbound policy refuses by default.
	cfg.Outbound.Allow = []string{"127.0.0.1"}
	cfg.stderr = io.Discard // the access log's default output
	// The tests count single failures (a 502 from the dead provider, a breaker opened by n
	// attempts): no retries of a deployment on itself unless a test's model asks for them. The
	// default of three has its own test (TestDefaultRetriesThroughConfig).
	noRetries := 0
	cfg.Routing.Retry.Retries = &noRetries
	cfg.Quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "tiny": {RPM: 2}, "single": {Concurrent: 1}}}
	cfg.Providers = []ProviderConfig{
		{Config: providers.Config{Name: "up", Type: "openai", BaseURL: upSrv.URL + "/v1", APIKey: upstreamKey}},
		{Config: providers.Config{Name: "slowup", Type: "openai", BaseURL: slowSrv.URL + "/v1", APIKey: upstreamKey}},
		{Config: providers.Config{Name: "dead", Type: "openai", BaseURL: "http://127.0.0.1:1/v1", APIKey: upstreamKey}},
	}
	cfg.Models = []providers.ModelConfig{
		{Name: "gpt-test", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}},
		{Name: "other", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "other-model"}}},
		{Name: "slow", Deployments: []providers.DeploymentConfig{{Provider: "slowup", Model: "slow-model"}}},
		{Name: "failover", Deployments: []providers.DeploymentConfig{
			{Provider: "dead", Model: "m", Priority: 0}, {Provider: "up", Model: "fallback-model", Priority: 1}}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.RedisURL != "" {
		clearPolicyHashes(t, cfg.RedisURL)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("LLMGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	e := &env{t: t, cfg: cfg, up: up, slow: slow, http: &http.Client{Transport: tr}}
	e.app = e.replica(log)
	e.admin = adminclient.New(e.app.adminURL, testAdminToken)
	e.baseURL = e.app.publicURL + "/v1"
	if cfg.AdminToken != "" {
		e.key = e.newKey(createKeyBody{Name: "all"}).Key
	}
	return e
}

// clearPolicyHashes removes the policy hashes earlier tests left in the shared Redis: replicas
// store a hash they find as a policy (another system's write), and each env starts with a fresh
// database, so it starts with no hashes either.
func clearPolicyHashes(t *testing.T, url string) {
	t.Helper()
	c, err := quota.NewRedisClient(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	clear := func(ctx context.Context, n *redis.Client) error {
		keys, err := n.Keys(ctx, quota.PolicyHashPrefix+"*").Result()
		if err != nil || len(keys) == 0 {
			return err
		}
		for _, k := range keys { // one by one: a cluster node refuses a DEL across slots
			if err := n.Del(ctx, k).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, clear)
	} else if n, ok := c.(*redis.Client); ok {
		err = clear(ctx, n)
	}
	if err != nil {
		t.Fatalf("clear the policy hashes: %v", err)
	}
}

// replica starts one more gateway with the env's configuration (sharing its database, Redis and
// upstreams when those are external), stopped when the test ends.
func (e *env) replica(log *slog.Logger) *app {
	e.t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := e.cfg
	if e.app != nil { // another replica: its own usage spool, as on another machine
		cfg.Usage.SpoolDir = filepath.Join(e.t.TempDir(), "spool")
	}
	a, err := start(context.Background(), cfg, log)
	if err != nil {
		e.t.Fatalf("start gateway: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.shutdown(ctx); err != nil {
			e.t.Errorf("shutdown: %v", err)
		}
	})
	return a
}

func (e *env) newKey(b createKeyBody) keyJSON {
	e.t.Helper()
	k, err := e.admin.CreateKey(context.Background(), b)
	if err != nil {
		e.t.Fatalf("create key: %v", err)
	}
	return k
}

// usageFor waits for the usage record of a request id to reach the store.
func (e *env) usageFor(requestID string) store.UsageRecord {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := e.app.store.ListUsage(context.Background(), store.UsageFilter{Limit: 1000})
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
		if s := e.app.recorder.Stats(); s.Enqueued >= want && s.Backlog == 0 && s.Written >= s.Enqueued {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	recs, err := e.app.store.ListUsage(context.Background(), store.UsageFilter{Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
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
