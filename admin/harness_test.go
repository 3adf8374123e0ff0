package admin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/alerts"
	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/internal/testsvc"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/postgres"
	"github.com/llmgate/llmgate/store/sqlite"
)

// The admin API's behaviour tests run a real admin handler over real HTTP on loopback, with the
// collaborators a gateway gives it: a real store (SQLite in a temporary directory, or PostgreSQL),
// the quota policy book and limiter (in memory, or on Redis), the price book, the credit guard and
// the change bus. What needs the public listener or several processes is tested with the binary
// (cmd/llmgate).

// The package's PostgreSQL and Redis, each started on first use by a test that needs it.
var (
	pg  *testsvc.PostgresServer
	rdb *testsvc.RedisServer
)

func TestMain(m *testing.M) {
	var stopPG, stopRedis func()
	pg, stopPG = testsvc.Postgres()
	rdb, stopRedis = testsvc.Redis()
	code := m.Run()
	stopPG()
	stopRedis()
	if code == 0 {
		if err := goleak.Find(gatewaytest.IgnoreAsideWorkers); err != nil {
			os.Stderr.WriteString("goroutine leak after the admin tests: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

const testAdminToken = "test-admin-token-0123456789abcdefghijklmnop"

// testQuota is the gateway tests' quota configuration: an unlimited default tier and two small
// ones, so users can be given a tier that exists.
var testQuota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "tiny": {RPM: 2}, "single": {Concurrent: 1}}}

// server is one admin API under test.
type server struct {
	URL     string // http://127.0.0.1:port
	store   store.Store
	handler http.Handler
	http    *http.Client
}

// backend says where a server keeps its state.
type backend struct {
	postgres bool           // PostgreSQL instead of SQLite in a temporary directory
	redis    bool           // the limiter, the policy mirror and the change bus on Redis
	quota    *quota.Options // nil: testQuota
	console  admin.ConsoleOptions
}

// newServer starts an admin API on b, stopped when the test ends.
func newServer(t *testing.T, b backend) *server {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("LLMGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var st store.Store
	var err error
	if b.postgres {
		st, err = postgres.New(ctx, pg.NewDatabase(t))
	} else {
		st, err = sqlite.New(ctx, filepath.Join(t.TempDir(), "llmgate.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var rc redis.UniversalClient
	if b.redis {
		rc, err = quota.NewRedisClient("redis://" + rdb.Addr(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
	}
	qo := testQuota.WithDefaults()
	if b.quota != nil {
		qo = b.quota.WithDefaults()
	}
	var limiter quota.Limiter = quota.NewMemory(quota.LimiterOptions{LeaseTTL: qo.LeaseTTL})
	if rc != nil {
		limiter = quota.NewRedis(rc, quota.LimiterOptions{LeaseTTL: qo.LeaseTTL})
	}
	bus := changes.New(rc, log)
	policies, err := quota.NewPolicyBook(ctx, st, rc, bus)
	if err != nil {
		t.Fatal(err)
	}
	prices, err := billing.NewPriceBook(ctx, st, bus)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	adm := admin.New(admin.Deps{Store: st, Token: testAdminToken, Gatherer: reg, Registerer: reg, Log: log, Ready: func(ctx context.Context) (bool, any) {
		err := st.Ping(ctx)
		return err == nil, gin.H{"store_error": err != nil}
	},
		Quota:  &admin.QuotaDeps{Policies: policies, Limiter: limiter, Options: qo},
		Prices: prices, Credits: billing.NewGuard(st, bus), Deployments: newDeployments(t), Catalog: refusingCatalog{},
		Experiments: refusingCatalog{}, Console: b.console,
		// Not run: these tests look at what the endpoints store.
		Alerts: alerts.New(alerts.Deps{Store: st, Policies: policies, Quota: qo, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
			alerts.Options{})})
	h := adm.Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &server{URL: srv.URL, store: st, handler: h, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// client is a client of s with the bootstrap token.
func (s *server) client(t *testing.T) *admintest.Client {
	return admintest.NewClient(t, s.URL, testAdminToken, s.http)
}

// routes lists the routes the admin handler registers, as "METHOD /gin/path".
func (s *server) routes(t *testing.T) map[string]bool {
	t.Helper()
	h, ok := s.handler.(interface{ Routes() gin.RoutesInfo })
	if !ok {
		t.Fatalf("the admin handler (%T) cannot list its routes", s.handler)
	}
	out := map[string]bool{}
	for _, ri := range h.Routes() {
		out[ri.Method+" "+ri.Path] = true
	}
	return out
}

// bothStores runs body against an admin API on SQLite and against one on PostgreSQL with Redis.
func bothStores(t *testing.T, body func(t *testing.T, s *server)) {
	t.Run("sqlite", func(t *testing.T) { body(t, newServer(t, backend{})) })
	t.Run("postgres", func(t *testing.T) { body(t, newServer(t, backend{postgres: true, redis: true})) })
}

// deployments is the routing table of a gateway serving one model from one mock deployment,
// standing in for the running gateway behind the deployments endpoints.
type deployments struct{ states []providers.DeploymentState }

func newDeployments(t *testing.T) *deployments {
	t.Helper()
	r, err := providers.NewRouter([]providers.ModelConfig{{Name: "gpt-test", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}}},
		providers.RoutingConfig{}, map[string]providers.Provider{"up": mock.New(mock.Options{})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &deployments{states: providers.NewBalancer(nil).States(r)}
}

func (d *deployments) Deployments() []providers.DeploymentState { return d.states }

// OverridesChanged has nothing to apply: these tests look at the stored overrides only.
func (d *deployments) OverridesChanged(context.Context, string) error { return nil }

// refusingCatalog stands in for the running gateway behind /admin/providers and /admin/models: the
// file defines provider "up" and model "gpt-test", and every provider or model offered is refused
// by the checks, so the authorization probes change nothing (the real checks are the config
// file's, exercised end to end in cmd/llmgate).
type refusingCatalog struct{}

func (refusingCatalog) FileCatalog() admin.FileCatalog {
	return admin.FileCatalog{Providers: []admin.FileProvider{{Name: "up", Spec: admin.ProviderSpec{Type: "mock"}}},
		Models: []providers.ModelConfig{{Name: "gpt-test", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}}}}
}

func (refusingCatalog) CheckProvider(string, admin.ProviderSpec, string) error {
	return &admin.FieldError{Field: "type", Message: "refused by the test stand-in."}
}

func (refusingCatalog) CheckModel(providers.ModelConfig) error {
	return &admin.FieldError{Field: "deployments", Message: "refused by the test stand-in."}
}

func (refusingCatalog) CatalogChanged(context.Context) error { return nil }

// As the experiments' stand-in it knows no model, so every experiment offered is refused.

func (refusingCatalog) HasModel(string) bool                     { return false }
func (refusingCatalog) HasDeployment(string, string) bool        { return false }
func (refusingCatalog) ExperimentsChanged(context.Context) error { return nil }
