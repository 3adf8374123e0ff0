package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The console's rows of TestEveryAdminRouteOnBothStores: its files and its sign-in session.

func consoleRouteSteps() []routeStep {
	return []routeStep{
		{adminRoute("GET /console"), (*routeRun).consoleRedirect},
		{adminRoute("GET /console/*path"), (*routeRun).consoleFile},
		{adminRoute("POST /admin/session"), (*routeRun).signIn},
		{adminRoute("GET /admin/session"), (*routeRun).getSession},
		{adminRoute("DELETE /admin/session"), (*routeRun).signOut},
	}
}

func (s *routeRun) consoleRedirect(t *testing.T) {
	hc := &http.Client{Transport: s.e.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Get(s.e.app.adminURL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: HTTP %d, Location %q; want 301 to /console/", res.StatusCode, res.Header.Get("Location"))
	}
}

func (s *routeRun) consoleFile(t *testing.T) {
	res, body := consoleGet(t, s.e, "/console/")
	if res.StatusCode != 200 || !strings.Contains(body, `<script type="module" src="js/app.js">`) ||
		!strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("GET /console/: HTTP %d, CSP %q, %.200s", res.StatusCode, res.Header.Get("Content-Security-Policy"), body)
	}
}

func (s *routeRun) signIn(t *testing.T) {
	cs := consoleSignIn(t, s.e, testAdminToken)
	if cs.actor != "bootstrap" || cs.role != "admin" || cs.csrf == "" {
		t.Errorf("signed in as %+v", cs)
	}
}

func (s *routeRun) getSession(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/session", nil)
	if r.JSON("actor").String() != "bootstrap" || r.JSON("csrf_token").Type.String() != "Null" {
		t.Errorf("GET /admin/session with the bearer token: %s", r.Body)
	}
}

func (s *routeRun) signOut(t *testing.T) {
	cs := consoleSignIn(t, s.e, testAdminToken)
	if st, body := cs.do(t, "DELETE", "/admin/session", "", cs.csrf); st != 200 {
		t.Fatalf("sign-out: HTTP %d %s", st, body)
	}
	if st, _ := cs.do(t, "GET", "/admin/session", "", ""); st != 401 {
		t.Errorf("the session after sign-out: HTTP %d, want 401", st)
	}
}

// consoleSession is a signed-in console session seen from outside a browser.
type consoleSession struct {
	e                       *env
	cookie                  string // the session id
	actor, role, tenant     string
	csrf                    string
	setCookie, responseBody string
}

// consoleSignIn signs in with a token and returns the session.
func consoleSignIn(t *testing.T, e *env, token string) consoleSession {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"token": token})
	res, err := e.http.Post(e.app.adminURL+"/admin/session", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 201 {
		t.Fatalf("POST /admin/session: HTTP %d %s", res.StatusCode, raw)
	}
	var v struct {
		Actor, Role, Tenant string
		CSRF                string `json:"csrf_token"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	cs := consoleSession{e: e, actor: v.Actor, role: v.Role, tenant: v.Tenant, csrf: v.CSRF,
		setCookie: res.Header.Get("Set-Cookie"), responseBody: string(raw)}
	for _, c := range res.Cookies() {
		if c.Name == "llmgate_console" {
			cs.cookie = c.Value
		}
	}
	if cs.cookie == "" {
		t.Fatalf("POST /admin/session set no llmgate_console cookie: %q", cs.setCookie)
	}
	return cs
}

// do sends a request with the session cookie (and csrf, when not empty, as X-CSRF-Token).
func (cs consoleSession) do(t *testing.T, method, path, body, csrf string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, cs.e.app.adminURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "llmgate_console", Value: cs.cookie})
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	res, err := cs.e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(raw)
}

func consoleGet(t *testing.T, e *env, path string) (*http.Response, string) {
	t.Helper()
	res, err := e.http.Get(e.app.adminURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, string(raw)
}
