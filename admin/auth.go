package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/store"
)

// The access model. Every admin route names its area and whether it changes anything; the role
// of the caller's token decides whether it may (roleAllows), and a token scoped to a tenant sees
// and changes only that tenant's users, keys, policies, credits, usage and audit entries. Global
// resources (tenants themselves, pricing, deployments, credit movements) are changed only by an
// unscoped token.

// Areas of the admin API.
const (
	areaOpen        = "open" // readable by every valid token (the OpenAPI document)
	areaTenants     = "tenants"
	areaUsers       = "users"
	areaKeys        = "keys"
	areaTokens      = "tokens"
	areaQuota       = "quota"
	areaPricing     = "pricing"
	areaUsage       = "usage"
	areaBilling     = "billing"
	areaCredits     = "credits"
	areaDeployments = "deployments"
	areaProviders   = "providers" // providers, models and the secret key's re-encryption
	areaAuditLog    = "audit-log"
	areaAlerts      = "alerts"
	areaExperiments = "experiments"
)

// billingAreas are what the billing role may read and change.
var billingAreas = map[string]bool{areaPricing: true, areaUsage: true, areaBilling: true, areaCredits: true, areaOpen: true}

// access is what a route needs.
type access struct {
	area  string
	write bool
	// global: a change that only an unscoped token may make.
	global bool
}

var (
	read   = func(area string) access { return access{area: area} }
	write  = func(area string) access { return access{area: area, write: true} }
	global = func(area string) access { return access{area: area, write: true, global: true} }
)

// roleAllows says whether a role may use a route of this access.
func roleAllows(role string, a access) bool {
	switch role {
	case store.RoleAdmin:
		return true
	case store.RoleViewer:
		return !a.write
	case store.RoleBilling:
		return billingAreas[a.area]
	}
	return false
}

// principal is who is calling: the bootstrap token or an admin token.
type principal struct {
	Actor  string // "bootstrap" or the token's id
	Role   string
	Tenant string // empty: every tenant
}

const principalKey = "llmgate.admin.principal"

// bootstrapActor names the configured token in the audit log.
const bootstrapActor = "bootstrap"

// AdminTokenPrefix starts every admin token the API issues.
const AdminTokenPrefix = "lga-"

// tokenCache keeps resolved admin tokens briefly, so a burst of admin calls reads the store once
// per token; a revocation is seen within tokenTTL.
const tokenTTL = 2 * time.Second

type tokenEntry struct {
	tok     *store.AdminToken // nil: unknown
	expires time.Time
}

type tokenCache struct {
	mu sync.Mutex
	m  map[[32]byte]tokenEntry
}

func (tc *tokenCache) get(h [32]byte, now time.Time) (tokenEntry, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	e, ok := tc.m[h]
	if !ok || !now.Before(e.expires) {
		return tokenEntry{}, false
	}
	return e, true
}

func (tc *tokenCache) put(h [32]byte, e tokenEntry) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.m == nil || len(tc.m) > 10_000 {
		tc.m = make(map[[32]byte]tokenEntry)
	}
	tc.m[h] = e
}

func (tc *tokenCache) forget() {
	tc.mu.Lock()
	tc.m = nil
	tc.mu.Unlock()
}

// authenticate resolves the bearer token (or, without one, the console's session cookie, see
// session.go) to a principal, or answers 401 itself. The bootstrap
// token's SHA-256 is compared in constant time; other tokens are looked up by their SHA-256, so
// the store only ever compares hashes, and a timing difference there tells nothing about a token.
func (s *Server) authenticate(c *gin.Context) {
	if !s.hasToken {
		fail(c, http.StatusUnauthorized, api.TypeAuthentication, "admin_disabled", "", "The admin API is disabled: no admin token is configured (set LLMGATE_ADMIN_TOKEN).")
		c.Abort()
		return
	}
	a := c.GetHeader("Authorization")
	if a == "" {
		// A browser signed in to the console: its session cookie stands for the token.
		if ck, err := c.Request.Cookie(SessionCookie); err == nil && ck.Value != "" {
			s.authenticateSession(c, ck.Value)
			return
		}
	}
	if len(a) < 7 || !strings.EqualFold(a[:7], "bearer ") {
		fail(c, http.StatusUnauthorized, api.TypeAuthentication, "missing_admin_token", "", "Send the admin token as 'Authorization: Bearer <token>' (or sign in to the console for a session cookie).")
		c.Abort()
		return
	}
	plain := strings.TrimSpace(a[7:])
	got := sha256.Sum256([]byte(plain))
	if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1 {
		c.Set(principalKey, principal{Actor: bootstrapActor, Role: store.RoleAdmin})
		c.Next()
		return
	}
	p, err := s.tokenPrincipal(c.Request.Context(), plain, got)
	if err != nil {
		if errors.Is(err, errStoreDown) {
			fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "store_unavailable", "", "The store did not answer while checking the admin token; retry shortly.")
		} else {
			fail(c, http.StatusUnauthorized, api.TypeAuthentication, "invalid_admin_token", "", "Invalid admin token.")
		}
		c.Abort()
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

var (
	errBadToken  = errors.New("admin: invalid token")
	errStoreDown = errors.New("admin: store unavailable")
)

func (s *Server) tokenPrincipal(ctx context.Context, plain string, sum [32]byte) (principal, error) {
	if !strings.HasPrefix(plain, AdminTokenPrefix) || len(plain) < MinTokenLen || len(plain) > 256 {
		return principal{}, errBadToken
	}
	now := time.Now()
	e, ok := s.tokens.get(sum, now)
	if !ok {
		hexSum := hex.EncodeToString(sum[:])
		t, err := s.d.Store.AdminTokenByHash(ctx, hexSum)
		switch {
		case errors.Is(err, store.ErrNotFound):
			e = tokenEntry{expires: now.Add(tokenTTL)}
		case err != nil:
			return principal{}, errStoreDown
		default:
			e = tokenEntry{tok: &t, expires: now.Add(tokenTTL)}
			if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
				if err := s.d.Store.TouchAdminToken(ctx, t.ID, now.UTC().Truncate(time.Microsecond)); err != nil {
					s.d.Log.Warn("admin token: recording its last use failed", "token", t.ID, "err", err)
				}
			}
		}
		s.tokens.put(sum, e)
	}
	t := e.tok
	if t == nil || t.RevokedAt != nil || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
		return principal{}, errBadToken
	}
	return principal{Actor: t.ID, Role: t.Role, Tenant: t.TenantID}, nil
}

// newAdminToken makes a fresh admin token: plaintext (shown once), hex SHA-256, display prefix.
func newAdminToken() (plain, hash, prefix string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	plain = AdminTokenPrefix + hex.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(plain))
	return plain, hex.EncodeToString(sum[:]), plain[:len(AdminTokenPrefix)+6]
}

// allow is the per-route authorization step.
func allow(a access) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := who(c)
		if !roleAllows(p.Role, a) {
			msg := "This token's role (" + p.Role + ") may not "
			if a.write {
				msg += "change "
			} else {
				msg += "read "
			}
			fail(c, http.StatusForbidden, api.TypePermission, "insufficient_role", "", msg+a.area+".")
			c.Abort()
			return
		}
		if a.global && p.Tenant != "" {
			fail(c, http.StatusForbidden, api.TypePermission, "tenant_scoped_token", "", "This token is scoped to tenant "+p.Tenant+" and may not change "+a.area+", which is shared by every tenant.")
			c.Abort()
			return
		}
		c.Next()
	}
}

// handle registers a route with what it needs.
func (s *Server) handle(g *gin.RouterGroup, method, path string, a access, h gin.HandlerFunc) {
	g.Handle(method, path, allow(a), h)
}

// who returns the caller; only valid behind authenticate.
func who(c *gin.Context) principal {
	v, _ := c.Get(principalKey)
	p, _ := v.(principal)
	return p
}

// sees reports whether the caller may see something of this tenant.
func sees(c *gin.Context, tenant string) bool {
	t := who(c).Tenant
	return t == "" || t == tenant
}

// scopedTenant resolves a tenant filter against the caller's scope: a scoped token always filters
// by its own tenant, and asking for another one is refused (403, answered here).
func scopedTenant(c *gin.Context, requested, param string) (string, bool) {
	t := who(c).Tenant
	if t == "" {
		return requested, true
	}
	if requested != "" && requested != t {
		fail(c, http.StatusForbidden, api.TypePermission, "tenant_scoped_token", param, param+": this token is scoped to tenant "+t+".")
		return "", false
	}
	return t, true
}

// audit writes one admin_audit entry for a mutation that succeeded. before and after are views
// without secrets (nil: nothing). A write that fails is retried, then logged with the entry, so
// the change is never silently unrecorded.
func (s *Server) audit(c *gin.Context, action, target, tenant string, before, after any) {
	e := store.AdminAuditEntry{Actor: who(c).Actor, Action: action, Target: target, TenantID: tenant,
		RequestID: c.Writer.Header().Get("X-Request-Id"), At: time.Now().UTC().Truncate(time.Microsecond)}
	e.Before, e.After = auditJSON(before), auditJSON(after)
	ctx := context.WithoutCancel(c.Request.Context())
	var err error
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(time.Duration(i) * 50 * time.Millisecond)
		}
		if _, err = s.d.Store.InsertAdminAudit(ctx, e); err == nil {
			return
		}
	}
	s.auditFailures.Inc()
	s.d.Log.Error("admin audit entry not written", "actor", e.Actor, "action", e.Action, "target", e.Target,
		"tenant", e.TenantID, "before", string(e.Before), "after", string(e.After), "err", err)
}

func auditJSON(v any) []byte {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}

// requestID gives every admin request an id, returned as X-Request-Id and kept in its audit
// entries.
func requestID(c *gin.Context) {
	c.Header("X-Request-Id", newID())
	c.Next()
}
