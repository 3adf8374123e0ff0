package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/store"
)

// Console sessions. A browser signs in once with a token (POST /admin/session) and then holds an
// opaque random session id in an HttpOnly, SameSite=Strict cookie; the store keeps only the id's
// SHA-256, so every replica knows the session and sign-out ends it everywhere at once. A session
// acts with exactly the role and tenant scope of the token it was made from, and ends when that
// token is revoked or expires (checked on every request) or, for the bootstrap token, when the
// configured token changes.
//
// Cross-site request forgery: SameSite=Strict already keeps the cookie off requests started by
// other sites, and on top of it every request that is not a read must carry the session's CSRF
// token in X-CSRF-Token. That token is derived from the session id with HMAC (so nothing more is
// stored, and a reader of the database cannot compute it from the id's hash); the console keeps
// it in JavaScript memory only and re-reads it from GET /admin/session after a reload.

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "llmgate_console"

// CSRFHeader carries the session's CSRF token on every request made with the cookie that is not
// a read.
const CSRFHeader = "X-CSRF-Token"

// DefaultSessionTTL is how long a console session lasts when ConsoleOptions leave it unset.
const DefaultSessionTTL = 12 * time.Hour

// ConsoleOptions is the `console` section: the web console served under /console/.
type ConsoleOptions struct {
	// SessionTTL is how long a sign-in lasts (default 12h; at most 7 days). A session made from
	// an admin token with an earlier expiry ends with the token.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SessionMaxAge bounds how long a session can be kept alive by use (default 7 days from the
	// sign-in; at least SessionTTL, at most 30 days): a session used after half its lifetime is
	// extended by SessionTTL, never past SessionMaxAge from the sign-in.
	SessionMaxAge time.Duration `yaml:"session_max_age"`
}

// MaxSessionTTL bounds ConsoleOptions.SessionTTL.
const MaxSessionTTL = 7 * 24 * time.Hour

// Validate says what is wrong with the options, or nil.
func (o ConsoleOptions) Validate() error {
	if o.SessionTTL < 0 || o.SessionTTL > MaxSessionTTL {
		return errors.New("console.session_ttl: must be between 0 (the default, 12h) and 168h")
	}
	if o.SessionMaxAge < 0 || o.SessionMaxAge > MaxSessionMaxAge || (o.SessionMaxAge > 0 && o.SessionMaxAge < o.ttl()) {
		return errors.New("console.session_max_age: must be 0 (the default, 168h) or between console.session_ttl and 720h")
	}
	return nil
}

// DefaultSessionMaxAge and MaxSessionMaxAge are ConsoleOptions.SessionMaxAge's default and bound.
const (
	DefaultSessionMaxAge = 7 * 24 * time.Hour
	MaxSessionMaxAge     = 30 * 24 * time.Hour
)

func (o ConsoleOptions) maxAge() time.Duration {
	if o.SessionMaxAge <= 0 {
		return max(DefaultSessionMaxAge, o.ttl())
	}
	return o.SessionMaxAge
}

func (o ConsoleOptions) ttl() time.Duration {
	if o.SessionTTL <= 0 {
		return DefaultSessionTTL
	}
	return o.SessionTTL
}

const sessionKey = "llmgate.admin.session"

// session is the console session behind a request, kept beside its principal.
type session struct {
	id  string // the plaintext id from the cookie
	rec store.ConsoleSession
}

// sessionView is the answer of POST and GET /admin/session.
type sessionView struct {
	Actor  string `json:"actor"`
	Role   string `json:"role"`
	Tenant string `json:"tenant"`
	// ExpiresAt and CSRFToken are null when the caller used a bearer token instead of a session.
	ExpiresAt *time.Time `json:"expires_at"`
	CSRFToken *string    `json:"csrf_token"`
}

func (s *Server) routeSession(e *gin.Engine, a *gin.RouterGroup) {
	e.POST("/admin/session", requestID, noStore, s.signIn)
	// Reading and ending one's own session is open to every role: a viewer signs out too.
	s.handle(a, http.MethodGet, "/session", read(areaOpen), s.getSession)
	s.handle(a, http.MethodDelete, "/session", read(areaOpen), s.signOut)
}

// noStore keeps answers that hold a CSRF token out of every cache.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// signInBody is the body of POST /admin/session.
type signInBody struct {
	Token string `json:"token"`
}

// signIn is POST /admin/session: a token in, a session cookie out.
func (s *Server) signIn(c *gin.Context) {
	if !s.hasToken {
		fail(c, http.StatusUnauthorized, api.TypeAuthentication, "admin_disabled", "", "The admin API is disabled: no admin token is configured (set LLMGATE_ADMIN_TOKEN).")
		return
	}
	// Only a JSON body: a page of another site can post a form or text/plain without asking,
	// but not application/json, so it cannot sign a browser in to a session of its choosing.
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != "application/json" {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "invalid_body", "", "Send the token as a JSON body with 'Content-Type: application/json'.")
		return
	}
	addr, _ := netip.ParseAddr(c.RemoteIP())
	if wait := s.signIns.wait(addr, time.Now()); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		fail(c, http.StatusTooManyRequests, api.TypeRateLimit, "too_many_sign_in_attempts", "", "Too many failed sign-ins from this address; wait for the time Retry-After gives.")
		return
	}
	var b signInBody
	if !decode(c, &b) {
		return
	}
	plain := strings.TrimSpace(b.Token)
	if plain == "" {
		invalid(c, "token", "give the bootstrap token or an admin token.")
		return
	}
	sum := sha256.Sum256([]byte(plain))
	var p principal
	var tokenExpiry *time.Time
	if subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) == 1 {
		p = principal{Actor: bootstrapActor, Role: store.RoleAdmin}
	} else {
		var err error
		if p, err = s.tokenPrincipal(c.Request.Context(), plain, sum); err != nil {
			if errors.Is(err, errStoreDown) {
				fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "store_unavailable", "", "The store did not answer while checking the admin token; retry shortly.")
			} else {
				s.signIns.failed(addr, time.Now())
				fail(c, http.StatusUnauthorized, api.TypeAuthentication, "invalid_admin_token", "token", "Invalid admin token.")
			}
			return
		}
		if e, ok := s.tokens.get(sum, time.Now()); ok && e.tok != nil {
			tokenExpiry = e.tok.ExpiresAt
		}
	}
	id := newSessionID()
	at := now()
	exp := at.Add(s.d.Console.ttl())
	if tokenExpiry != nil && tokenExpiry.Before(exp) {
		exp = tokenExpiry.UTC().Truncate(time.Microsecond)
	}
	rec := store.ConsoleSession{IDHash: sessionHash(id), Actor: p.Actor, Role: p.Role, TenantID: p.Tenant,
		TokenCheck: tokenCheck(id, sum), CreatedAt: at, ExpiresAt: exp}
	ctx := c.Request.Context()
	if err := s.d.Store.CreateConsoleSession(ctx, rec); err != nil {
		s.internal(c, err)
		return
	}
	// Sign-in is rare: a good moment to drop the sessions that have expired.
	if _, err := s.d.Store.PurgeConsoleSessions(ctx, at); err != nil {
		s.d.Log.Warn("console sessions: purging the expired ones failed", "err", err)
	}
	c.Set(principalKey, p)
	s.audit(c, "session.create", p.Actor, p.Tenant, nil, gin.H{"actor": p.Actor, "role": p.Role, "tenant": p.Tenant, "expires_at": exp})
	setSessionCookie(c, id, exp)
	csrf := csrfToken(id)
	c.JSON(http.StatusCreated, sessionView{Actor: p.Actor, Role: p.Role, Tenant: p.Tenant, ExpiresAt: &exp, CSRFToken: &csrf})
}

// getSession is GET /admin/session: who the caller is, and the session's expiry and CSRF token.
func (s *Server) getSession(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	p := who(c)
	v := sessionView{Actor: p.Actor, Role: p.Role, Tenant: p.Tenant}
	if ss, ok := sessionOf(c); ok {
		exp, csrf := ss.rec.ExpiresAt, csrfToken(ss.id)
		v.ExpiresAt, v.CSRFToken = &exp, &csrf
	}
	c.JSON(http.StatusOK, v)
}

// signOut is DELETE /admin/session: the session ends on every replica and the cookie is cleared.
func (s *Server) signOut(c *gin.Context) {
	ss, ok := sessionOf(c)
	if !ok {
		fail(c, http.StatusBadRequest, api.TypeInvalidRequest, "no_session", "", "This request carries no console session to end (it used a bearer token).")
		return
	}
	if err := s.d.Store.DeleteConsoleSession(c.Request.Context(), ss.rec.IDHash); err != nil && !isNotFound(err) {
		s.internal(c, err)
		return
	}
	clearSessionCookie(c)
	s.audit(c, "session.delete", ss.rec.Actor, ss.rec.TenantID, nil, nil)
	c.JSON(http.StatusOK, gin.H{"signed_out": true})
}

func sessionOf(c *gin.Context) (session, bool) {
	v, ok := c.Get(sessionKey)
	ss, _ := v.(session)
	return ss, ok
}

// authenticateSession resolves the session cookie to a principal, or answers itself (401 for an
// unknown, expired or orphaned session, 403 for a missing or wrong CSRF token).
func (s *Server) authenticateSession(c *gin.Context, id string) {
	ctx := c.Request.Context()
	rec, err := s.d.Store.ConsoleSession(ctx, sessionHash(id), time.Now())
	if err != nil && !isNotFound(err) {
		fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "store_unavailable", "", "The store did not answer while checking the console session; retry shortly.")
		c.Abort()
		return
	}
	var p principal
	var tokenExpiry *time.Time
	if err == nil {
		p, tokenExpiry, err = s.sessionPrincipal(ctx, id, rec)
	}
	if err != nil {
		if errors.Is(err, errStoreDown) {
			fail(c, http.StatusServiceUnavailable, api.TypeUnavailable, "store_unavailable", "", "The store did not answer while checking the console session; retry shortly.")
		} else {
			clearSessionCookie(c)
			fail(c, http.StatusUnauthorized, api.TypeAuthentication, "invalid_session", "", "The console session is unknown, expired or signed out; sign in again.")
		}
		c.Abort()
		return
	}
	if !safeMethod(c.Request.Method) {
		got := c.GetHeader(CSRFHeader)
		if want := csrfToken(id); got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			fail(c, http.StatusForbidden, api.TypePermission, "csrf_token_invalid", "", "A change made with the console session needs the session's CSRF token in the "+CSRFHeader+" header (GET /admin/session answers it).")
			c.Abort()
			return
		}
	}
	if exp, ok := s.slide(rec, tokenExpiry, now()); ok {
		if err := s.d.Store.ExtendConsoleSession(ctx, rec.IDHash, exp); err != nil {
			// The session still holds until its old expiry; the next request tries again.
			s.d.Log.Warn("console sessions: extending a session failed", "err", err)
		} else {
			rec.ExpiresAt = exp
			setSessionCookie(c, id, exp)
		}
	}
	c.Set(principalKey, p)
	c.Set(sessionKey, session{id: id, rec: rec})
	c.Next()
}

// slide is the later expiry of a session in use after half its lifetime: a whole lifetime from
// now, never past the maximum age from the sign-in nor past its token's expiry. ok is false when
// the session keeps its expiry.
func (s *Server) slide(rec store.ConsoleSession, tokenExpiry *time.Time, at time.Time) (time.Time, bool) {
	ttl := s.d.Console.ttl()
	if rec.ExpiresAt.Sub(at) > ttl/2 {
		return time.Time{}, false
	}
	exp := at.Add(ttl)
	if limit := rec.CreatedAt.Add(s.d.Console.maxAge()); limit.Before(exp) {
		exp = limit
	}
	if tokenExpiry != nil && tokenExpiry.Before(exp) {
		exp = tokenExpiry.UTC().Truncate(time.Microsecond)
	}
	return exp, exp.After(rec.ExpiresAt)
}

// sessionPrincipal is the principal of a live session: the bootstrap token's while the configured
// token is the one it was made from, else its admin token's while that token is live.
// The token's expiry (nil: none) bounds how far the session may slide.
func (s *Server) sessionPrincipal(ctx context.Context, id string, rec store.ConsoleSession) (principal, *time.Time, error) {
	if rec.Actor == bootstrapActor {
		if subtle.ConstantTimeCompare([]byte(rec.TokenCheck), []byte(tokenCheck(id, s.tokenHash))) != 1 {
			return principal{}, nil, errBadToken
		}
		return principal{Actor: bootstrapActor, Role: store.RoleAdmin}, nil, nil
	}
	t, err := s.d.Store.GetAdminToken(ctx, rec.Actor)
	switch {
	case isNotFound(err):
		return principal{}, nil, errBadToken
	case err != nil:
		return principal{}, nil, errStoreDown
	}
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !time.Now().Before(*t.ExpiresAt)) {
		return principal{}, nil, errBadToken
	}
	return principal{Actor: t.ID, Role: t.Role, Tenant: t.TenantID}, t.ExpiresAt, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// overTLS reports whether the browser reached us over HTTPS, directly or through a proxy that says
// so; the cookie is then marked Secure.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setSessionCookie(c *gin.Context, id string, exp time.Time) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", Expires: exp,
		MaxAge: int(time.Until(exp).Seconds()), HttpOnly: true, Secure: overTLS(c.Request), SameSite: http.SameSiteStrictMode})
}

func clearSessionCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: overTLS(c.Request), SameSite: http.SameSiteStrictMode})
}

// newSessionID is 256 random bits, URL-safe.
func newSessionID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessionHash is what the store keys a session by.
func sessionHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// csrfToken is the session's CSRF token: an HMAC keyed by the session id, so only a holder of the
// id (the server, when the cookie arrives) can compute it.
func csrfToken(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("llmgate console csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenCheck binds a session to the SHA-256 of the token it was made from, keyed by the session id
// so the stored value tells nothing about the token.
func tokenCheck(id string, tokenSum [32]byte) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("llmgate console token:"))
	m.Write(tokenSum[:])
	return hex.EncodeToString(m.Sum(nil))
}
