package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/admin"
	"github.com/llmgate/llmgate/admin/admintest"
	"github.com/llmgate/llmgate/store"
)

// The console's sessions: a token exchanged for an HttpOnly, SameSite=Strict cookie holding an
// opaque id the store knows only by its hash; the cookie stands for the token on every /admin/
// route, changes need the session's CSRF token, and the session ends at sign-out, at expiry and
// with its token.

// signIn signs in with a token and returns the session cookie, the CSRF token and the answer.
func signIn(t *testing.T, c *admintest.Client, token string) (*http.Cookie, string, admintest.Resp) {
	t.Helper()
	r := c.As("").Must(201, "POST", "/admin/session", map[string]string{"token": token})
	var ck *http.Cookie
	for _, line := range r.Header.Values("Set-Cookie") {
		if got, err := http.ParseSetCookie(line); err == nil && got.Name == admin.SessionCookie {
			ck = got
		}
	}
	if ck == nil || ck.Value == "" {
		t.Fatalf("sign-in set no %s cookie: %q", admin.SessionCookie, r.Header.Values("Set-Cookie"))
	}
	csrf := r.JSON("csrf_token").String()
	if csrf == "" {
		t.Fatalf("sign-in answered no csrf_token: %s", r.Body)
	}
	return ck, csrf, r
}

// session is a client carrying only the cookie (no bearer token), with csrf when not empty.
func session(c *admintest.Client, ck *http.Cookie, csrf string) *admintest.Client {
	sc := c.As("").WithCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	if csrf != "" {
		sc = sc.WithHeader(admin.CSRFHeader, csrf)
	}
	return sc
}

func TestConsoleSessionLifecycle(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		ck, csrf, r := signIn(t, c, testAdminToken)
		if r.JSON("actor").String() != "bootstrap" || r.JSON("role").String() != "admin" || r.JSON("tenant").String() != "" ||
			r.JSON("expires_at").String() == "" {
			t.Errorf("sign-in answer: %s", r.Body)
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure || ck.MaxAge <= 0 {
			t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP, a Max-Age", ck)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("sign-in Cache-Control %q", r.Header.Get("Cache-Control"))
		}
		if strings.Contains(r.Body, ck.Value) {
			t.Errorf("the session id is in the answer's body")
		}
		// The store holds the id's SHA-256, never the id.
		sum := sha256.Sum256([]byte(ck.Value))
		rec, err := s.store.ConsoleSession(context.Background(), hex.EncodeToString(sum[:]), time.Now())
		if err != nil || rec.Actor != "bootstrap" {
			t.Fatalf("the store's session by the id's hash: %+v, %v", rec, err)
		}
		if _, err := s.store.ConsoleSession(context.Background(), ck.Value, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the store knows the session by its plaintext id: %v", err)
		}

		// Reads need no CSRF token; GET /admin/session gives it again (after a reload).
		sess := session(c, ck, "")
		g := sess.Must(200, "GET", "/admin/session", nil)
		if g.JSON("csrf_token").String() != csrf || g.JSON("actor").String() != "bootstrap" {
			t.Errorf("GET /admin/session: %s", g.Body)
		}
		sess.Must(200, "GET", "/admin/tenants", nil)
		// A change without the CSRF token, or with a wrong one, is refused and changes nothing.
		body := map[string]any{"id": "csrf-t", "name": "x"}
		if r := sess.Refused(403, "", "POST", "/admin/tenants", body); r.JSON("error.code").String() != "csrf_token_invalid" {
			t.Errorf("no CSRF token: %s", r.Body)
		}
		if r := session(c, ck, csrf+"x").Refused(403, "", "POST", "/admin/tenants", body); r.JSON("error.code").String() != "csrf_token_invalid" {
			t.Errorf("wrong CSRF token: %s", r.Body)
		}
		c.Must(404, "GET", "/admin/tenants/csrf-t", nil)
		// With it, the change is made and audited as the session's actor.
		ok := session(c, ck, csrf)
		ok.Must(201, "POST", "/admin/tenants", body)
		if a := c.Must(200, "GET", "/admin/audit-log?action=tenant.create&target=csrf-t", nil); a.JSON("data.0.actor").String() != "bootstrap" {
			t.Errorf("audit entry of the session's change: %s", a.Body)
		}
		if a := c.Must(200, "GET", "/admin/audit-log?action=session.create", nil); len(a.IDs()) != 1 || strings.Contains(a.Body, ck.Value) {
			t.Errorf("sign-in audit entries: %s", a.Body)
		}

		// Sign-out ends it on the server and clears the cookie.
		if r := sess.Refused(403, "", "DELETE", "/admin/session", nil); r.JSON("error.code").String() != "csrf_token_invalid" {
			t.Errorf("sign-out without CSRF token: %s", r.Body)
		}
		out := ok.Must(200, "DELETE", "/admin/session", nil)
		if sc := out.Header.Get("Set-Cookie"); !strings.Contains(sc, admin.SessionCookie+"=;") || !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("sign-out Set-Cookie %q: want the cookie cleared", sc)
		}
		if r := sess.Refused(401, "", "GET", "/admin/session", nil); r.JSON("error.code").String() != "invalid_session" {
			t.Errorf("after sign-out: %s", r.Body)
		}
		if r := ok.Refused(401, "", "POST", "/admin/tenants", map[string]any{"id": "csrf-u", "name": "x"}); r.JSON("error.code").String() != "invalid_session" {
			t.Errorf("a change after sign-out: %s", r.Body)
		}
		// No cookie and no token: 401 as before.
		c.As("").Refused(401, "", "GET", "/admin/tenants", nil)
		// A bearer token has no session to end.
		if r := c.Refused(400, "", "DELETE", "/admin/session", nil); r.JSON("error.code").String() != "no_session" {
			t.Errorf("DELETE /admin/session with a bearer token: %s", r.Body)
		}
		if g := c.Must(200, "GET", "/admin/session", nil); g.JSON("csrf_token").Type.String() != "Null" || g.JSON("expires_at").Type.String() != "Null" {
			t.Errorf("GET /admin/session with a bearer token: %s", g.Body)
		}
	})
}

func TestConsoleSignInRefusals(t *testing.T) {
	s := newServer(t, backend{})
	c := s.client(t).As("")
	if r := c.Refused(401, "token", "POST", "/admin/session", map[string]string{"token": "wrong-token-wrong-token-wrong-token-0123"}); r.JSON("error.code").String() != "invalid_admin_token" {
		t.Errorf("wrong token: %s", r.Body)
	}
	c.Refused(401, "token", "POST", "/admin/session", map[string]string{"token": "lga-" + strings.Repeat("ab", 32)})
	c.Refused(400, "token", "POST", "/admin/session", map[string]string{"token": ""})
	c.Refused(400, "", "POST", "/admin/session", "")
	c.Refused(400, "tokens", "POST", "/admin/session", map[string]string{"tokens": testAdminToken})
	// Not JSON (a form another site could post): refused.
	req, _ := http.NewRequest("POST", s.URL+"/admin/session", strings.NewReader(`{"token":"`+testAdminToken+`"}`))
	req.Header.Set("Content-Type", "text/plain")
	res, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 || res.Header.Get("Set-Cookie") != "" {
		t.Errorf("a text/plain sign-in: HTTP %d, Set-Cookie %q; want 400 and no cookie", res.StatusCode, res.Header.Get("Set-Cookie"))
	}
	// A forged cookie is no session.
	if r := c.WithCookie(&http.Cookie{Name: admin.SessionCookie, Value: "forged"}).Refused(401, "", "GET", "/admin/keys", nil); r.JSON("error.code").String() != "invalid_session" {
		t.Errorf("forged cookie: %s", r.Body)
	}
	// Over HTTPS (as a proxy says) the cookie is Secure.
	r := c.WithHeader("X-Forwarded-Proto", "https").Must(201, "POST", "/admin/session", map[string]string{"token": testAdminToken})
	if sc := r.Header.Get("Set-Cookie"); !strings.Contains(sc, "; Secure") {
		t.Errorf("Set-Cookie over HTTPS %q: want Secure", sc)
	}
}

// TestConsoleSessionRoles: a session acts with its token's role and tenant scope, and ends when
// the token is revoked.
func TestConsoleSessionRoles(t *testing.T) {
	bothStores(t, func(t *testing.T, s *server) {
		c := s.client(t)
		for _, id := range []string{"sess-a", "sess-b"} {
			c.Must(201, "POST", "/admin/tenants", map[string]any{"id": id, "name": id})
			c.Must(201, "POST", "/admin/users", map[string]any{"id": id + "-user", "tenant_id": id})
		}
		tok := func(role, tenant string) (string, string) {
			r := c.Must(201, "POST", "/admin/tokens", map[string]any{"name": role + tenant, "role": role, "tenant_id": tenant})
			return r.JSON("token").String(), r.JSON("id").String()
		}
		viewer, _ := tok("viewer", "")
		ck, csrf, r := signIn(t, c, viewer)
		if r.JSON("role").String() != "viewer" {
			t.Errorf("viewer sign-in: %s", r.Body)
		}
		v := session(c, ck, csrf)
		v.Must(200, "GET", "/admin/users", nil)
		if r := v.Refused(403, "", "POST", "/admin/users", map[string]any{"id": "by-viewer"}); r.JSON("error.code").String() != "insufficient_role" {
			t.Errorf("a viewer session's change: %s", r.Body)
		}
		v.Must(200, "DELETE", "/admin/session", nil) // a viewer signs out too

		scoped, scopedID := tok("admin", "sess-a")
		ck, csrf, r = signIn(t, c, scoped)
		if r.JSON("tenant").String() != "sess-a" {
			t.Errorf("scoped sign-in: %s", r.Body)
		}
		sa := session(c, ck, csrf)
		if ids := sa.Must(200, "GET", "/admin/users", nil).IDs(); !admintest.SameSet(ids, []string{"sess-a-user"}) {
			t.Errorf("a scoped session lists users %v", ids)
		}
		sa.Refused(404, "-", "GET", "/admin/users/sess-b-user", nil)
		sa.Refused(403, "-", "POST", "/admin/tenants", map[string]any{"id": "by-scoped", "name": "x"})
		sa.Must(201, "POST", "/admin/users", map[string]any{"id": "by-scoped-session"})
		// Revoking the token ends its session at once.
		c.Must(200, "DELETE", "/admin/tokens/"+scopedID, nil)
		if r := sa.Refused(401, "", "GET", "/admin/users", nil); r.JSON("error.code").String() != "invalid_session" {
			t.Errorf("after its token was revoked: %s", r.Body)
		}
	})
}

// TestConsoleSessionEnds: a session ends at its expiry, and a bootstrap session when the gateway
// runs with another bootstrap token (a second admin API on the same store).
func TestConsoleSessionEnds(t *testing.T) {
	s := newServer(t, backend{})
	start := func(token string, ttl time.Duration) *admintest.Client {
		adm := admin.New(admin.Deps{Store: s.store, Token: token, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Console: admin.ConsoleOptions{SessionTTL: ttl}})
		srv := httptest.NewServer(adm.Handler())
		t.Cleanup(srv.Close)
		return admintest.NewClient(t, srv.URL, token, s.http)
	}
	short := start(testAdminToken, time.Second)
	ck, _, r := signIn(t, short, testAdminToken)
	exp, err := time.Parse(time.RFC3339Nano, r.JSON("expires_at").String())
	if err != nil || exp.Sub(time.Now()) > 2*time.Second {
		t.Errorf("expires_at %q with a 1s TTL", r.JSON("expires_at").String())
	}
	session(short, ck, "").Must(200, "GET", "/admin/session", nil)
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	session(short, ck, "").Refused(401, "", "GET", "/admin/session", nil)

	ck, _, _ = signIn(t, s.client(t), testAdminToken)
	session(s.client(t), ck, "").Must(200, "GET", "/admin/session", nil)
	other := start("another-bootstrap-token-0123456789abcdefgh", 0)
	if r := session(other, ck, "").Refused(401, "", "GET", "/admin/session", nil); r.JSON("error.code").String() != "invalid_session" {
		t.Errorf("a bootstrap session under another bootstrap token: %s", r.Body)
	}
}

// TestConsoleFiles: the embedded console is served without a token, with its security headers.
func TestConsoleFiles(t *testing.T) {
	s := newServer(t, backend{})
	get := func(path string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := (&http.Client{Transport: s.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	checkHeaders := func(what string, res *http.Response) {
		t.Helper()
		h := res.Header
		if h.Get("Content-Security-Policy") != "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", what, h)
		}
	}
	res, _ := get("/console", nil)
	if res.StatusCode != 301 || res.Header.Get("Location") != "/console/" {
		t.Errorf("/console: HTTP %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, body := get("/console/", nil)
	checkHeaders("/console/", res)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || res.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(body, `src="js/app.js"`) || strings.Contains(body, "<style") || strings.Contains(body, " style=") {
		t.Errorf("/console/: HTTP %d %v\n%s", res.StatusCode, res.Header, body)
	}
	// No inline script: the one script tag has a src.
	if strings.Count(body, "<script") != 1 {
		t.Errorf("/console/ has %d script tags, want the one module", strings.Count(body, "<script"))
	}
	res, body = get("/console/js/app.js", nil)
	checkHeaders("app.js", res)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(body, "PAGE CONTRACT") || res.Header.Get("ETag") == "" {
		t.Errorf("app.js: HTTP %d %v", res.StatusCode, res.Header)
	}
	if res2, _ := get("/console/js/app.js", map[string]string{"If-None-Match": res.Header.Get("ETag")}); res2.StatusCode != 304 {
		t.Errorf("app.js revalidated: HTTP %d, want 304", res2.StatusCode)
	}
	res, _ = get("/console/css/console.css", nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("console.css: HTTP %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/console/nope.js", "/console/../admin/keys", "/console/static/index.html"} {
		res, _ = get(p, nil)
		if res.StatusCode != 404 && res.StatusCode != 301 {
			t.Errorf("%s: HTTP %d, want 404", p, res.StatusCode)
		}
	}
}

// TestConsoleSessionSlides: a session used after half its lifetime is extended by a whole
// lifetime, never past session_max_age from the sign-in; unused, it ends at its expiry.
func TestConsoleSessionSlides(t *testing.T) {
	bothStores(t, func(t *testing.T, _ *server) {
		s := newServer(t, backend{postgres: strings.HasSuffix(t.Name(), "postgres"), redis: strings.HasSuffix(t.Name(), "postgres"),
			console: admin.ConsoleOptions{SessionTTL: 6 * time.Second, SessionMaxAge: 9 * time.Second}})
		c := s.client(t)
		start := time.Now()
		ck, _, r := signIn(t, c, testAdminToken)
		exp0, err := time.Parse(time.RFC3339Nano, r.JSON("expires_at").String())
		if err != nil {
			t.Fatalf("expires_at: %s", r.Body)
		}
		sess := session(c, ck, "")
		expiry := func(r admintest.Resp) time.Time {
			t.Helper()
			e, err := time.Parse(time.RFC3339Nano, r.JSON("expires_at").String())
			if err != nil {
				t.Fatalf("expires_at: %s", r.Body)
			}
			return e
		}
		// Early in its life a read changes nothing.
		if g := sess.Must(200, "GET", "/admin/session", nil); !expiry(g).Equal(exp0) || g.Header.Get("Set-Cookie") != "" {
			t.Errorf("a read in the first half: expires_at %v (was %v), Set-Cookie %q", expiry(g), exp0, g.Header.Get("Set-Cookie"))
		}
		sleepUntil(start.Add(3500 * time.Millisecond))
		g := sess.Must(200, "GET", "/admin/session", nil)
		if e := expiry(g); !e.After(exp0.Add(2 * time.Second)) {
			t.Errorf("a read after half the lifetime: expires_at %v, want later than %v + 2s", e, exp0)
		}
		if sc := g.Header.Get("Set-Cookie"); !strings.Contains(sc, admin.SessionCookie+"="+ck.Value) || !strings.Contains(sc, "HttpOnly") {
			t.Errorf("the extended session's cookie: %q", sc)
		}
		// Past the first expiry it still works, and the extension stops at the maximum age.
		sleepUntil(exp0.Add(500 * time.Millisecond))
		g = sess.Must(200, "GET", "/admin/session", nil)
		if e := expiry(g); e.After(start.Add(9*time.Second + 500*time.Millisecond)) {
			t.Errorf("expires_at %v: later than the maximum age after %v", e, start)
		}
		sleepUntil(start.Add(9*time.Second + 700*time.Millisecond))
		if r := sess.Refused(401, "", "GET", "/admin/session", nil); r.JSON("error.code").String() != "invalid_session" {
			t.Errorf("after the maximum age: %s", r.Body)
		}
	})
}

func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// TestConsoleSignInRateLimit: failed sign-ins from one address are limited (429 with
// Retry-After, the right token included) and the API's bearer tokens are not affected.
func TestConsoleSignInRateLimit(t *testing.T) {
	s := newServer(t, backend{})
	c := s.client(t)
	anon := c.As("")
	anon.Must(201, "POST", "/admin/session", map[string]string{"token": testAdminToken}) // successes do not count
	for i := 0; i < 10; i++ {
		anon.Refused(401, "token", "POST", "/admin/session", map[string]string{"token": "wrong-token-wrong-token-wrong-token-0123"})
	}
	r := anon.Refused(429, "", "POST", "/admin/session", map[string]string{"token": testAdminToken})
	if r.JSON("error.code").String() != "too_many_sign_in_attempts" {
		t.Errorf("the 11th attempt: %s", r.Body)
	}
	if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" || len(ra) > 2 {
		t.Errorf("Retry-After %q: want 1-60 seconds", ra)
	}
	if r.Header.Get("Set-Cookie") != "" {
		t.Errorf("a limited sign-in set a cookie")
	}
	// The limit is on sign-in only: the bootstrap token still works as a bearer token.
	c.Must(200, "GET", "/admin/tenants", nil)
}
