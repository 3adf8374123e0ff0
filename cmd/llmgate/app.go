package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/audit"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/alerts"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/configs"
	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/internal/changes"
	"github.com/llmgate/llmgate/internal/connlimit"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/internal/tracing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/bedrock"
	"github.com/llmgate/llmgate/providers/gemini"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/providers/vertex"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/postgres"
	"github.com/llmgate/llmgate/store/sqlite"
)

// defaultAdminMaxConnections caps the admin listener's connections when admin_max_connections is
// unset: operators, the console and Prometheus need few.
const defaultAdminMaxConnections = 512

// app is a running gateway: both listeners and everything behind them.
type app struct {
	cfg       Config
	log       *slog.Logger
	store     store.Store
	recorder  *audit.Recorder
	gateway   *gateway.Gateway
	public    *http.Server
	admin     *http.Server
	publicURL string // http://host:port of the public listener
	adminURL  string
	providers map[string]providers.Provider
	quota     *quotaParts
	redis     redis.UniversalClient // nil without redis_url
	tracing   *tracing.Tracing      // off unless tracing.enabled
	stop      context.CancelFunc
	done      chan struct{}
	served    chan error
	// reloadMu serialises config reloads (cfg's reloadable sections and providers change) and
	// rebuilds of the routing table for changed deployment overrides.
	reloadMu sync.Mutex
	reloads  *prometheus.CounterVec
	// overrides are the deployment overrides merged into the routing table in use (reloadMu).
	overrides map[string]store.DeploymentOverride
	// provConfigs are the settings of providers (the file's and the catalog's), catalog the
	// providers and models stored through the admin API, in the table in use (reloadMu); keys
	// opens the catalog's credentials.
	provConfigs map[string]ProviderConfig
	catalog     catalog
	keys        *secrets.Keyring
	// access is the access log (nil: off), closed after the last request, and accessFile its
	// file when it has one.
	access     *gateway.AccessLog
	accessFile io.Closer
	// warnMock is set when the models the mock provider serves are logged as a warning (serve,
	// not demo); reloads log them again when they change (reloadMu).
	warnMock bool
}

// start opens the store, applies migrations, builds the request path and starts both listeners.
// It returns once both are accepting connections.
func start(ctx context.Context, cfg Config, log *slog.Logger) (*app, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	overrides, err := loadOverrides(ctx, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	keys, err := newKeyring(cfg.Secrets, os.ReadFile)
	if err != nil {
		st.Close()
		return nil, err
	}
	entries, err := readCatalog(ctx, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	cat := decodeCatalog(entries, keys, log)
	tbl, err := buildTable(cfg, cat, overrides, table{}, false, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	router := tbl.router
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfoGauge())
	metrics := gateway.NewMetrics(reg, cfg.Gateway.CostUserLabels)
	est, err := tokens.New()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("token estimator: %w", err)
	}
	uo := cfg.Usage
	if uo.SpoolDir == "" {
		uo.SpoolDir = filepath.Join(cfg.DataDir, "spool")
	}
	uo.Registerer = reg
	if storeKind(cfg) != "postgres" && uo.Writers > 1 {
		// SQLite has one writing connection: more writers would only queue for it.
		log.Info("usage.writers applies to PostgreSQL only: one usage writer runs on SQLite", "usage.writers", uo.Writers)
		uo.Writers = 1
	}
	// The ledger names the payer of records admitted while the guard could not say (and of
	// records spooled by older versions) before the store persists them; the alerts see each
	// batch the store wrote, payers named.
	allow, err := cfg.Outbound.Prefixes()
	if err != nil {
		st.Close()
		return nil, err
	}
	// Alerts read the limits as admission does; the policy book is built below, so they get it
	// through a forwarder filled in once it exists.
	policies := &policyForward{}
	notifier := alerts.New(alerts.Deps{Store: st, Policies: policies, Quota: cfg.Quota.WithDefaults(), Allow: allow,
		Secrets: keys, Registerer: reg, Log: log}, cfg.Alerts)
	rec, err := audit.New(billing.NewLedger(notifier.Watch(st), st), uo, log)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("usage: %w", err)
	}
	var upkeep *audit.Upkeep
	if u, ok := st.(audit.Upkeeper); ok {
		if upkeep, err = audit.NewUpkeep(u, uo, log); err != nil {
			rec.Close(ctx)
			st.Close()
			return nil, fmt.Errorf("usage: %w", err)
		}
	}
	rdb, err := newRedis(ctx, cfg, log)
	if err != nil {
		rec.Close(ctx)
		st.Close()
		return nil, err
	}
	a := &app{cfg: cfg, log: log, store: st, recorder: rec, providers: tbl.provs, provConfigs: tbl.configs, catalog: cat, keys: keys,
		redis: rdb, overrides: overrides,
		done: make(chan struct{}), served: make(chan error, 2),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_config_reloads_total",
			Help: "Config reloads (SIGHUP or file change) by result: ok, or error (the running config is kept)."}, []string{"result"})}
	reg.MustRegister(a.reloads)
	// Admin changes (policies, prices, credit top-ups) reach every replica through this bus.
	bus := changes.New(rdb, log)
	q, err := newQuota(ctx, cfg, st, rdb, bus, reg, log)
	if err != nil {
		a.closeBackends()
		return nil, err
	}
	a.quota = q
	policies.book = q.policies
	prices, err := newPriceBook(ctx, cfg, st, bus)
	if err != nil {
		a.closeBackends()
		return nil, err
	}
	guard := billing.NewGuard(st, bus)
	access, accessFile, err := openAccessLog(cfg)
	if err != nil {
		a.closeBackends()
		return nil, err
	}
	a.access, a.accessFile = access, accessFile
	reg.MustRegister(guard.BudgetCollector(q.policies))
	if a.tracing, err = tracing.New(ctx, cfg.Tracing, readBuildInfo().Version, log); err != nil {
		a.closeBackends()
		return nil, err
	}
	gw := gateway.New(gateway.Deps{AccessLog: access, Store: st, Keys: st, Ledger: st, Limiter: q.limiter, Quota: cfg.Quota, Policies: q.policies, Router: router,
		Prices: prices, Tokens: est, Money: guard, Responses: st,
		Usage: rec, Metrics: metrics, Log: log, QuotaHealthy: q.healthy, Tracer: a.tracing.Tracer(), Spool: spoolState(rec),
		Cache: newCache(cfg, rdb), Idempotency: newIdempotency(cfg, rdb)}, cfg.Gateway)
	// The admin listener answers the public listener's readiness: probes may use either.
	ready := func(ctx context.Context) (bool, any) { return gw.Readiness(ctx) }
	adm := admin.New(admin.Deps{Store: st, Token: cfg.AdminToken, Gatherer: reg, Registerer: reg, Log: log, Ready: ready,
		Quota:  &admin.QuotaDeps{Policies: q.policies, Limiter: q.limiter, Options: cfg.Quota.WithDefaults()},
		Prices: prices, Credits: guard, Deployments: deploymentControl{gw: gw, changes: bus}, Alerts: notifier,
		Catalog: catalogControl{a: a, changes: bus}, Secrets: keys, Console: cfg.Console,
		Experiments: experimentControl{a: a, changes: bus}})

	a.gateway = gw
	// Deployment overrides changed through the admin API (here or on another replica).
	bus.Register(changes.Deployments, func(ctx context.Context, _ string) error { return a.refreshOverrides(ctx) }, a.refreshOverrides)
	bus.Register(changes.Catalog, func(ctx context.Context, _ string) error { return a.refreshCatalog(ctx) }, a.refreshCatalog)
	bus.Register(changes.Experiments, func(ctx context.Context, _ string) error { return a.refreshExperiments(ctx) }, a.refreshExperiments)
	if err := a.refreshExperiments(ctx); err != nil {
		a.closeBackends()
		return nil, fmt.Errorf("store: %w", err)
	}
	a.public = gw.Server(cfg.Listen)
	a.admin = &http.Server{Handler: adm.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	pl, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		a.closeBackends()
		return nil, fmt.Errorf("listen: %w", err)
	}
	al, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		pl.Close()
		a.closeBackends()
		return nil, fmt.Errorf("admin_listen: %w", err)
	}
	a.publicURL, a.adminURL = "http://"+dialable(pl.Addr()), "http://"+dialable(al.Addr())
	conns := connlimit.NewMetrics(reg)
	pl = conns.Listener(pl, "public", gw.MaxConnections())
	al = conns.Listener(al, "admin", cmp.Or(cfg.AdminMaxConnections, defaultAdminMaxConnections))
	go func() { a.served <- a.public.Serve(pl) }()
	go func() { a.served <- a.admin.Serve(al) }()

	runCtx, stop := context.WithCancel(context.Background())
	a.stop = stop
	go func() { // background work: lease renewal, other replicas' admin changes, sweeping
		defer close(a.done)
		var wg sync.WaitGroup
		if upkeep != nil { // usage partitions made ahead and retention, off the request path
			wg.Go(func() { upkeep.Run(runCtx) })
		}
		wg.Go(func() { notifier.Run(runCtx) }) // limit alerts and their webhook deliveries
		// Active health checks of the deployments that turn them on (each replica has its own breakers).
		wg.Go(func() { providers.NewHealthChecker(gw.Router, gw.Balancer(), log).Run(runCtx) })
		wg.Add(3)
		go func() { defer wg.Done(); gw.Run(runCtx) }()
		go func() { defer wg.Done(); guard.Run(runCtx) }()
		go func() {
			defer wg.Done()
			poll := time.Second // without Redis: reload from the store this often
			if rdb != nil {
				poll = 500 * time.Millisecond // with Redis: the version poll behind pub/sub
			}
			bus.Watch(runCtx, poll)
		}()
		q.run(runCtx)
		wg.Wait()
	}()
	log.Info("llmgate started", "listen", a.publicURL, "admin_listen", a.adminURL, "store", storeKind(cfg),
		"quota", q.kind, "models", router.Models())
	return a, nil
}

// cutGrace is how long requests cut at the drain deadline get to write their last answer and
// settle before their connections are closed under them.
const cutGrace = 5 * time.Second

// drain is the process's stop on SIGTERM or SIGINT (see ShutdownOptions): readiness turns false
// at once while the listeners go on accepting and serving for pre_stop_delay, since load
// balancers take a moment to stop sending requests; then shutdown. ctx ending (a second signal)
// cuts what is left of the delay and of the drain short.
func (a *app) drain(ctx context.Context) error {
	a.setDraining()
	o := a.cfg.Shutdown
	a.log.Info("draining: not ready, still serving until the pre-stop delay ends (a second signal stops at once)",
		"pre_stop_delay", o.PreStopDelay.String(), "drain_timeout", o.DrainTimeout.String(), "flush_timeout", o.FlushTimeout.String())
	t := time.NewTimer(o.PreStopDelay)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	return a.shutdown(ctx)
}

// setDraining turns readiness off on both listeners. Answers from then on close their
// connection, so that clients with pooled connections open new ones, which a load balancer sends
// to other replicas.
func (a *app) setDraining() {
	a.gateway.SetReady(false)
	a.public.SetKeepAlivesEnabled(false)
}

// shutdown stops the app: readiness goes false, the public listener stops accepting and requests
// in flight get shutdown.drain_timeout to finish; those still running then are cut (each still
// answered, with a 503 or an SSE error event, and recorded once). Once every accepted request has
// handed over its usage record, the queued records get shutdown.flush_timeout to reach the store
// (the rest is spooled for the next start), and the store is closed. ctx ending cuts the drain
// short, not the flush.
func (a *app) shutdown(ctx context.Context) error {
	a.setDraining()
	o := a.cfg.Shutdown
	var errs []error
	dctx, cancel := context.WithTimeout(ctx, o.DrainTimeout)
	err := a.public.Shutdown(dctx)
	cancel()
	if err != nil {
		a.log.Warn("drain time is up: cutting the requests still in flight", "drain_timeout", o.DrainTimeout.String(),
			"cut_short", ctx.Err() != nil, "requests", a.gateway.Unsettled())
		a.gateway.CutRequests()
		cctx, cancel := context.WithTimeout(context.Background(), cutGrace)
		if err := a.public.Shutdown(cctx); err != nil {
			_ = a.public.Close() // a client that does not read: its write fails now
		}
		cancel()
	}
	// Handlers settle before they return, so this is quick; it bounds a handler stuck elsewhere.
	for deadline := time.Now().Add(cutGrace); a.gateway.Unsettled() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("shutdown: %d requests still unsettled %v after the drain: their usage records are lost", a.gateway.Unsettled(), cutGrace))
			break
		}
	}
	// The requests' spans have ended: export those still queued, within the cut grace.
	tctx, cancel := context.WithTimeout(context.Background(), cutGrace)
	if err := a.tracing.Shutdown(tctx); err != nil {
		a.log.Warn("tracing: spans not exported at shutdown", "err", err)
	}
	cancel()
	actx, cancel := context.WithTimeout(context.Background(), cutGrace)
	if err := a.admin.Shutdown(actx); err != nil {
		_ = a.admin.Close()
	}
	cancel()
	a.stop()
	<-a.done
	a.quota.close()
	if a.redis != nil {
		_ = a.redis.Close()
	}
	a.reloadMu.Lock()
	closeIdle(a.providers)
	a.reloadMu.Unlock()
	// The flush is not cut short by ctx: written now, the records are in the ledger at once
	// rather than at the next start.
	fctx, cancel := context.WithTimeout(context.Background(), o.FlushTimeout)
	errs = append(errs, a.recorder.Close(fctx))
	cancel()
	errs = append(errs, a.store.Close(), a.closeAccessLog())
	return errors.Join(errs...)
}

// spoolState reports the usage spool's room to the gateway's readiness.
func spoolState(rec *audit.Recorder) func() gateway.SpoolState {
	return func() gateway.SpoolState {
		s := rec.SpoolState()
		return gateway.SpoolState{Enabled: s.Enabled, Bytes: s.Bytes, Max: s.MaxBytes, Full: s.Full}
	}
}

func (a *app) closeBackends() {
	_ = a.tracing.Shutdown(context.Background())
	if a.quota != nil {
		a.quota.close()
	}
	if a.redis != nil {
		_ = a.redis.Close()
	}
	_ = a.recorder.Close(context.Background())
	_ = a.store.Close()
	a.closeAccessLog()
}

// closeAccessLog writes the access-log lines still queued and closes its file.
func (a *app) closeAccessLog() error {
	a.access.Close()
	if a.accessFile != nil {
		return a.accessFile.Close()
	}
	return nil
}

func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		st, err := postgres.New(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("database_url: %w", err)
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	st, err := sqlite.New(ctx, filepath.Join(cfg.DataDir, "llmgate.db"))
	if err != nil {
		return nil, fmt.Errorf("data_dir: sqlite: %w", err)
	}
	return st, nil
}

func storeKind(cfg Config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite:" + filepath.Join(cfg.DataDir, "llmgate.db")
}

// buildProviders builds the listed providers, each with its address policy (validate has parsed
// ob's allow list).
func buildProviders(list []ProviderConfig, ob outbound.Config) (map[string]providers.Provider, error) {
	allow, err := ob.Prefixes()
	if err != nil {
		return nil, err
	}
	roots, err := ob.RootCAs()
	if err != nil {
		return nil, err
	}
	out := make(map[string]providers.Provider, len(list))
	for i, pc := range list {
		var p providers.Provider
		var err error
		policy := pc.policy(allow)
		policy.RootCAs = roots
		switch pc.Type {
		case "mock":
			p = mock.New(pc.Mock)
		case "anthropic":
			p, err = anthropic.New(anthropic.Options{BaseURL: pc.BaseURL, APIKey: pc.APIKey, Settings: pc.Anthropic,
				MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost, DialTimeout: pc.DialTimeout,
				ResponseHeaderTimeout: pc.ResponseHeaderTimeout, Outbound: policy})
		case "bedrock":
			p, err = bedrock.New(bedrock.Options{BaseURL: pc.BaseURL, APIKey: pc.APIKey, Settings: pc.Bedrock,
				MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost, DialTimeout: pc.DialTimeout,
				ResponseHeaderTimeout: pc.ResponseHeaderTimeout, Outbound: policy})
		case "gemini":
			p, err = gemini.New(gemini.Options{BaseURL: pc.BaseURL, APIKey: pc.APIKey,
				MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost, DialTimeout: pc.DialTimeout,
				ResponseHeaderTimeout: pc.ResponseHeaderTimeout, Outbound: policy})
		case "vertex":
			p, err = vertex.New(vertex.Options{BaseURL: pc.BaseURL, APIKey: pc.APIKey, Settings: pc.Vertex,
				MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost, DialTimeout: pc.DialTimeout,
				ResponseHeaderTimeout: pc.ResponseHeaderTimeout, Outbound: policy})
		default: // openai and its presets (validate has checked the type)
			preset, ok := openai.Presets[pc.Type]
			if !ok && pc.Type != "openai" {
				return nil, fmt.Errorf("providers[%d] (%s).type: unknown type %q", i, pc.Name, pc.Type)
			}
			p, err = openai.New(openai.Options{BaseURL: cmp.Or(pc.BaseURL, preset.BaseURL), APIKey: pc.APIKey,
				Headers: pc.Headers, Azure: preset.Azure, AzureAPIVersion: pc.APIVersion, MaxTokensOnly: preset.MaxTokensOnly,
				Media: openai.MediaEndpoints(pc.Type), MaxIdleConnsPerHost: pc.MaxIdleConnsPerHost, DialTimeout: pc.DialTimeout,
				ResponseHeaderTimeout: pc.ResponseHeaderTimeout, Outbound: policy})
		}
		if err != nil {
			return nil, fmt.Errorf("providers[%d] (%s).%w", i, pc.Name, err)
		}
		out[pc.Name] = p
	}
	return out, nil
}

// dialable turns a listener address into one a client can dial (":8080" → "127.0.0.1:8080").
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// newPriceBook loads the prices in force and seeds the shipped (or configured) price list for
// models that have none yet.
func newPriceBook(ctx context.Context, cfg Config, st store.Store, bus *changes.Bus) (*billing.PriceBook, error) {
	var seed []billing.Price
	var err error
	if cfg.PricingFile != "" {
		seed, err = billing.LoadPricingFile(cfg.PricingFile)
	} else {
		seed, err = billing.ParsePricing(configs.Pricing)
	}
	if err != nil {
		return nil, fmt.Errorf("pricing_file: %w", err)
	}
	b, err := billing.NewPriceBook(ctx, st, bus)
	if err != nil {
		return nil, fmt.Errorf("pricing: %w", err)
	}
	if err := b.Seed(ctx, seed); err != nil {
		return nil, fmt.Errorf("pricing: seed: %w", err)
	}
	return b, nil
}

// policyForward is the quota policy book handed to the alerts before the book exists; it finds
// nothing until then (no batch is written before it is set).
type policyForward struct{ book quota.PolicyLookup }

func (p *policyForward) Lookup(kind quota.Kind, id, model string) (store.QuotaPolicy, bool) {
	if p.book == nil {
		return store.QuotaPolicy{}, false
	}
	return p.book.Lookup(kind, id, model)
}
