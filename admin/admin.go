// Package admin serves the admin API on its own listener: key management now, more resources as
// their issues land. Everything under /admin/ needs the admin token; /metrics and /health/* do
// not, so Prometheus and load balancers can reach them.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/gateway"
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
	// Ready reports readiness for /health/ready (nil: always ready).
	Ready func(context.Context) error
	// Quota enables the /admin/quota endpoints.
	Quota *QuotaDeps
	// Prices enables the pricing, audit, billing and credit endpoints.
	Prices *gateway.PriceBook
	// Credits is told about top-ups, to lift blocks on every replica.
	Credits interface {
		CreditsChanged(ctx context.Context, subjectType, subjectID string) error
	}
}

// Server is the admin API.
type Server struct {
	d         Deps
	tokenHash [32]byte
	hasToken  bool
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
	a := e.Group("/admin", s.authorize)
	a.GET("/openapi.yaml", serveOpenAPI)
	a.POST("/keys", s.createKey)
	a.GET("/keys", s.listKeys)
	a.GET("/keys/:id", s.getKey)
	a.DELETE("/keys/:id", s.revokeKey)
	if s.d.Quota != nil {
		s.routeQuota(a)
	}
	if s.d.Prices != nil {
		s.routeLedger(a)
	}
	return e
}

// serveOpenAPI answers the OpenAPI document embedded in the binary.
func serveOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", api.OpenAPI)
}

func (s *Server) ready(c *gin.Context) {
	if s.d.Ready != nil {
		if err := s.d.Ready(c.Request.Context()); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// authorize compares the bearer token's SHA-256 with the configured one in constant time.
func (s *Server) authorize(c *gin.Context) {
	if !s.hasToken {
		fail(c, http.StatusUnauthorized, api.TypeAuthentication, "admin_disabled", "", "The admin API is disabled: no admin token is configured (set LLMGATE_ADMIN_TOKEN).")
		c.Abort()
		return
	}
	a := c.GetHeader("Authorization")
	if len(a) < 7 || !strings.EqualFold(a[:7], "bearer ") {
		fail(c, http.StatusUnauthorized, api.TypeAuthentication, "missing_admin_token", "", "Send the admin token as 'Authorization: Bearer <token>'.")
		c.Abort()
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(a[7:])))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
		fail(c, http.StatusUnauthorized, api.TypeAuthentication, "invalid_admin_token", "", "Invalid admin token.")
		c.Abort()
		return
	}
	c.Next()
}

func fail(c *gin.Context, status int, typ, code, param, msg string) {
	api.NewError(typ, msg, code, param).Write(c.Writer, status)
}

// keyView is an API key as the admin API shows it: never the secret, only its prefix.
type keyView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	UserID    string     `json:"user_id,omitempty"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	CreatedAt time.Time  `json:"created_at"`
	// Key is the plaintext, present only in the answer to the create call.
	Key string `json:"key,omitempty"`
}

func viewOf(k store.APIKey) keyView {
	m := k.Models
	if m == nil {
		m = []string{}
	}
	return keyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, UserID: k.UserID, TenantID: k.TenantID,
		Models: m, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, CreatedAt: k.CreatedAt}
}

// CreateKeyRequest is the body of POST /admin/keys.
type CreateKeyRequest struct {
	Name      string     `json:"name"`
	Models    []string   `json:"models"`
	UserID    string     `json:"user_id"`
	Tier      string     `json:"tier"` // tier of a user created on the fly
	ExpiresAt *time.Time `json:"expires_at"`
}

func (s *Server) createKey(c *gin.Context) {
	var req CreateKeyRequest
	if !decode(c, &req) {
		return
	}
	if len(req.Name) > 200 {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "name", "name: at most 200 characters.")
		return
	}
	for i, m := range req.Models {
		if m == "" || len(m) > 200 {
			fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "models", "models["+strconv.Itoa(i)+"]: must be a non-empty model name of at most 200 characters.")
			return
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "expires_at", "expires_at: must be in the future.")
		return
	}
	ctx := c.Request.Context()
	tenant := store.DefaultTenant
	if req.UserID != "" {
		u, err := s.ensureUser(ctx, req.UserID, req.Tier)
		if err != nil {
			s.internal(c, err)
			return
		}
		tenant = u.TenantID
	}
	plain, hash, prefix := gateway.NewKeySecret()
	k := store.APIKey{ID: "key_" + strings.ReplaceAll(newID(), "-", ""), Name: req.Name, Prefix: prefix, UserID: req.UserID,
		TenantID: tenant, Models: req.Models, ExpiresAt: req.ExpiresAt, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.d.Store.CreateKey(ctx, k, hash); err != nil {
		s.internal(c, err)
		return
	}
	v := viewOf(k)
	v.Key = plain
	c.JSON(http.StatusCreated, v)
}

// ensureUser returns the user, creating it in the default tenant when it does not exist yet.
func (s *Server) ensureUser(ctx context.Context, id, tier string) (store.User, error) {
	u, err := s.d.Store.GetUser(ctx, id)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	u = store.User{ID: id, TenantID: store.DefaultTenant, Tier: tier, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.d.Store.CreateUser(ctx, u); err != nil && !errors.Is(err, store.ErrConflict) {
		return u, err
	}
	return s.d.Store.GetUser(ctx, id)
}

func (s *Server) listKeys(c *gin.Context) {
	f := store.KeyFilter{UserID: c.Query("user_id"), TenantID: c.Query("tenant_id")}
	var ok bool
	if f.Limit, ok = intParam(c, "limit", 100, 1, 1000); !ok {
		return
	}
	if f.Offset, ok = intParam(c, "offset", 0, 0, 1<<30); !ok {
		return
	}
	keys, err := s.d.Store.ListKeys(c.Request.Context(), f)
	if err != nil {
		s.internal(c, err)
		return
	}
	out := make([]keyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, viewOf(k))
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

func (s *Server) getKey(c *gin.Context) {
	k, err := s.d.Store.GetKey(c.Request.Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, api.TypeNotFound, "key_not_found", "id", "No API key with that id.")
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(k))
}

// revokeKey revokes at once; every replica stops accepting the key within its key-cache TTL.
func (s *Server) revokeKey(c *gin.Context) {
	ctx := c.Request.Context()
	err := s.d.Store.RevokeKey(ctx, c.Param("id"), time.Now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusNotFound, api.TypeNotFound, "key_not_found", "id", "No API key with that id.")
		return
	}
	if err != nil {
		s.internal(c, err)
		return
	}
	k, err := s.d.Store.GetKey(ctx, c.Param("id"))
	if err != nil {
		s.internal(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(k))
}

func (s *Server) internal(c *gin.Context, err error) {
	s.d.Log.Error("admin request failed", "path", c.FullPath(), "err", err)
	fail(c, http.StatusInternalServerError, api.TypeServer, "internal_error", "", "The admin request failed; see the gateway log.")
}
