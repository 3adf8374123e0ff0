package main

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"

	"github.com/llmgate/llmgate/api"
)

// route is one method and OpenAPI path template served by one listener.
type route struct{ listener, method, path string }

func (r route) String() string { return r.listener + ": " + r.method + " " + r.path }

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml true: every route either listener of a fully
// configured gateway registers is in the document, under a path item whose servers name that
// listener, and every operation the document names is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	registered := map[route]bool{}
	for listener, srv := range map[string]*http.Server{"public": e.app.public, "admin": e.app.admin} {
		// Both listeners serve a *gin.Engine directly. If one gets wrapped in a middleware, give
		// the wrapper a Routes method that delegates.
		h, ok := srv.Handler.(interface{ Routes() gin.RoutesInfo })
		if !ok {
			t.Fatalf("the %s listener's handler (%T) cannot list its routes", listener, srv.Handler)
		}
		for _, ri := range h.Routes() {
			registered[route{listener, ri.Method, openAPIPath(ri.Path)}] = true
		}
	}
	documented := specRoutes(t, api.OpenAPI)
	if len(registered) < 10 || len(documented) < 10 {
		t.Fatalf("suspiciously few routes: %d registered, %d documented", len(registered), len(documented))
	}
	var missing, stale []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r.String())
		}
	}
	for r := range documented {
		if !registered[r] {
			stale = append(stale, r.String())
		}
	}
	slices.Sort(missing)
	slices.Sort(stale)
	for _, r := range missing {
		t.Errorf("registered but not in api/openapi.yaml: %s", r)
	}
	for _, r := range stale {
		t.Errorf("in api/openapi.yaml but not registered: %s", r)
	}
}

// openAPIPath turns gin's path syntax into an OpenAPI template: /keys/:id → /keys/{id}, and the
// catch-all /models/*model → /models/{model}.
func openAPIPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// specRoutes lists the document's operations per listener. A path item's servers say which
// listener serves it; a server is recognised by its port, which must be that listener's
// default (listen, admin_listen).
func specRoutes(t *testing.T, spec []byte) map[route]bool {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	def := defaultConfig()
	ports := map[string]string{portOf(t, def.Listen): "public", portOf(t, def.AdminListen): "admin"}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	out := map[route]bool{}
	for path, item := range doc.Paths {
		var servers []struct {
			URL string `yaml:"url"`
		}
		if n, ok := item["servers"]; ok {
			if err := n.Decode(&servers); err != nil {
				t.Fatalf("%s: servers: %v", path, err)
			}
		}
		if len(servers) == 0 {
			t.Errorf("%s: no servers: say which listener serves it", path)
		}
		for _, s := range servers {
			u, err := url.Parse(s.URL)
			if err != nil {
				t.Fatalf("%s: server %q: %v", path, s.URL, err)
			}
			listener, ok := ports[u.Port()]
			if !ok {
				t.Errorf("%s: server %q is on neither listener's default port %v", path, s.URL, ports)
				continue
			}
			for _, m := range methods {
				if _, ok := item[m]; ok {
					out[route{listener, strings.ToUpper(m), path}] = true
				}
			}
		}
	}
	return out
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}
