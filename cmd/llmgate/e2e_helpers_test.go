package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

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
	// The simulated upstreams listen on loopback, which the outbound policy refuses by default.
	cfg.Outbound.Allow = []string{"127.0.0.1"}
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

// client is a go-openai client for the gateway with the given key.
func (e *env) client(key string) *openai.Client {
	c := openai.DefaultConfig(key)
	c.BaseURL = e.baseURL
	c.HTTPClient = e.http
	return openai.NewClientWithConfig(c)
}

// post sends a raw request to the public API.
func (e *env) post(ctx context.Context, path, key string, body []byte, hdr ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.baseURL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// apiError decodes an OpenAI error body, failing the test when the body is not one.
func apiError(t *testing.T, resp *http.Response) (typ, code, msg string) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var b struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.Error == nil || b.Error.Message == "" || b.Error.Type == "" {
		t.Fatalf("HTTP %d: body is not an OpenAI error: %s", resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q", ct)
	}
	if b.Error.Code != nil {
		code = *b.Error.Code
	}
	return b.Error.Type, code, b.Error.Message
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

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newStreamRequest is a streaming chat request for the slow model (10 chunks, 200 ms apart).
func newStreamRequest(ctx context.Context, publicURL, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, publicURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return req, nil
}
