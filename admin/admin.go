// Package admin serves the admin API on its own listener: tenants, users, API keys, admin tokens,
// quota policies, pricing, usage and billing, credits, deployments, providers and models, limit
// alerts, A/B experiments and the admin audit log.
// Everything under /admin/ needs an admin token (the bootstrap token, or one made through the
// API with a role and optionally a tenant scope, see auth.go); /metrics and /health/* do not, so
// Prometheus and load balancers can reach them.
package admin

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// MinTokenLen is the shortest admin token accepted: shorter ones are guessable.
const MinTokenLen = 32

// Deps are the admin API's collaborators.
type Deps struct {
	Store    store.Store
	Token    string // bootstrap token; empty disables /admin/ entirely
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// Ready reports readiness for /health/ready, the same answer as the public listener's:
	// whether the replica is ready and the report that is the body (nil: always ready).
	Ready func(context.Context) (ready bool, report any)
	// Quota enables the /admin/quota endpoints.
	Quota *QuotaDeps
	// Prices enables the pricing, audit, billing and credit endpoints.
	Prices *billing.PriceBook
	// Credits is told about top-ups, to lift blocks on every replica (billing.Guard).
	Credits interface {
		CreditsChanged(ctx context.Context, kind quota.Kind, id string) error
	}
	// Deployments enables the /admin/deployments endpoints.
	Deployments DeploymentControl
	// Alerts enables the /admin/alerts endpoints.
	Alerts AlertControl
	// Catalog enables /admin/providers, /admin/models and /admin/secrets/reencrypt.
	Catalog CatalogControl
	// Experiments enables /admin/experiments.
	Experiments ExperimentControl
	// Secrets seals the credentials of providers created through the API (nil: no secret key
	// configured, and a credential is refused).
	Secrets *secrets.Keyring
	// Registerer takes the admin API's own metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Console configures the web console's sessions.
	Console ConsoleOptions
}

// Server is the admin API.
type Server struct {
	d             Deps
	tokenHash     [32]byte
	hasToken      bool
	tokens        tokenCache
	signIns       signInLimiter
	auditFailures prometheus.Counter
}

// ValidateToken says why a bootstrap token is unacceptable, or nil.
func ValidateToken(t string) error {
	if t != "" && len(t) < MinTokenLen {
		return errors.New("admin_token: must be at least 32 characters")
	}
	return nil
}

// New builds the admin API. The token must pass ValidateToken.
func New(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Server{d: d, hasToken: d.Token != ""}
	s.tokenHash = sha256.Sum256([]byte(d.Token))
	s.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "llmgate_admin_audit_write_errors_total",
		Help: "Admin mutations whose admin_audit entry could not be written (the entry is logged instead)."})
	if d.Registerer != nil {
		d.Registerer.MustRegister(s.auditFailures)
	}
	return s
}

// Handler returns the admin routes.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, api.TypeNotFound, "unknown_url", "", "Unknown admin URL: "+c.Request.URL.Path+".")
	})
	e.GET("/health/live", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/health/ready", s.ready)
	if s.d.Gatherer != nil {
		e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.d.Gatherer, promhttp.HandlerOpts{})))
	}
	a := e.Group("/admin", requestID, s.authenticate)
	s.handle(a, http.MethodGet, "/openapi.yaml", read(areaOpen), serveOpenAPI)
	s.routeSession(e, a)
	routeConsole(e)
	s.routeTenants(a)
	s.routeUsers(a)
	s.routeKeys(a)
	s.routeTokens(a)
	s.handle(a, http.MethodGet, "/audit-log", read(areaAuditLog), s.listAuditLog)
	if s.d.Quota != nil {
		s.routeQuota(a)
	}
	if s.d.Prices != nil {
		s.routeLedger(a)
		s.routeUsageStats(a)
	}
	if s.d.Deployments != nil {
		s.routeDeployments(a)
	}
	if s.d.Alerts != nil {
		s.routeAlerts(a)
	}
	if s.d.Catalog != nil {
		s.routeCatalog(a)
	}
	if s.d.Experiments != nil {
		s.routeExperiments(a)
	}
	return e
}

// serveOpenAPI answers the OpenAPI document embedded in the binary.
func serveOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", api.OpenAPI)
}

// ready answers Deps.Ready: 200 while ready, 503 when not, the report as the body. Probes need
// no token.
func (s *Server) ready(c *gin.Context) {
	if s.d.Ready == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
		return
	}
	ok, report := s.d.Ready(c.Request.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, report)
}

func fail(c *gin.Context, status int, typ, code, param, msg string) {
	api.NewError(typ, code, param, msg).Write(c.Writer, status)
}

func (s *Server) internal(c *gin.Context, err error) {
	s.d.Log.Error("admin request failed", "path", c.FullPath(), "err", err)
	fail(c, http.StatusInternalServerError, api.TypeServer, "internal_error", "", "The admin request failed; see the gateway log.")
}
