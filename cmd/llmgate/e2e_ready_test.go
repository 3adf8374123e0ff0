package main

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// readyAnswer is one /health/ready answer: its status code and JSON body.
type readyAnswer struct {
	code int
	body string
}

func (r readyAnswer) field(path string) gjson.Result { return gjson.Get(r.body, path) }

// ready GETs /health/ready on the public listener and on the admin listener (without a token:
// probes and load balancers have none).
func (e *env) ready(a *app) (public, admin readyAnswer) {
	e.t.Helper()
	get := func(url string) readyAnswer {
		resp, err := e.http.Get(url + "/health/ready")
		if err != nil {
			e.t.Fatalf("GET %s/health/ready: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return readyAnswer{resp.StatusCode, string(b)}
	}
	return get(a.publicURL), get(a.adminURL)
}

// checkReady fails unless both listeners answer want with the same body, and each field of
// fields (a gjson path) has the given value.
func (e *env) checkReady(what string, a *app, want int, fields map[string]any) {
	e.t.Helper()
	pub, adm := e.ready(a)
	for _, r := range []struct {
		listener string
		readyAnswer
	}{{"public", pub}, {"admin", adm}} {
		if r.code != want {
			e.t.Errorf("%s: %s /health/ready: HTTP %d %s, want %d", what, r.listener, r.code, r.body, want)
			continue
		}
		for path, v := range fields {
			if got := r.field(path).Value(); got != v {
				e.t.Errorf("%s: %s /health/ready: %s is %v (%T), want %v: %s", what, r.listener, path, got, got, v, r.body)
			}
		}
	}
}

// TestReadyWhileTheDatabaseIsDown: with PostgreSQL stopped, requests with a known key are still
// served (the key from the cache, the usage to the spool), so /health/ready stays 200 on both
// listeners throughout, says degraded with the store down and the spool taking records: a load
// balancer must not pull every replica for it.
func TestReadyWhileTheDatabaseIsDown(t *testing.T) {
	srv, dsn := outagePostgres(t)
	e := newEnv(t, func(c *Config) { c.DatabaseURL = dsn })
	if st := e.chatStatus(e.app, e.key, "gpt-test"); st != 200 {
		t.Fatalf("chat with PostgreSQL up: HTTP %d", st)
	}
	e.checkReady("PostgreSQL up", e.app, 200, map[string]any{"status": "ok", "store": "ok", "quota": "ok",
		"spool": "ok", "config": "loaded", "shutting_down": false, "cached_keys": true, "spool_bytes": 0.0})
	if max := gjson.Get(func() string { p, _ := e.ready(e.app); return p.body }(), "spool_max_bytes").Int(); max != 1<<30 {
		t.Errorf("spool_max_bytes: %d, want the default 1 GiB", max)
	}
	srv.Stop(t)
	down := map[string]any{"status": "degraded", "store": "down", "quota": "ok", "spool": "ok",
		"config": "loaded", "shutting_down": false, "cached_keys": true}
	for i := range 5 {
		if st := e.chatStatus(e.app, e.key, "gpt-test"); st != 200 {
			t.Errorf("chat %d with PostgreSQL down: HTTP %d, want 200 (a known key, usage spooled)", i, st)
		}
		e.checkReady("PostgreSQL down", e.app, 200, down)
	}
	waitFor(t, 10*time.Second, "the spooled usage on disk", func() bool {
		p, _ := e.ready(e.app)
		return p.field("spool_bytes").Int() > 0
	})
	srv.Start(t)
	waitFor(t, 10*time.Second, "readiness ok again", func() bool {
		p, a := e.ready(e.app)
		return p.code == 200 && p.field("status").String() == "ok" && a.code == 200 && a.field("status").String() == "ok"
	})
}

// TestReadyFailsWhenTheSpoolIsFullAndTheStoreDown: a replica whose spool cannot take another
// record is still ready while the store is up (records go there) and says its spool is full;
// with the store down too it would lose every request's usage record, so it is not ready.
func TestReadyFailsWhenTheSpoolIsFullAndTheStoreDown(t *testing.T) {
	srv, dsn := outagePostgres(t)
	e := newEnv(t, func(c *Config) {
		c.DatabaseURL = dsn
		c.Usage.SpoolMaxBytes = 8 // less than one segment header: full from the start
	})
	e.checkReady("spool full, PostgreSQL up", e.app, 200, map[string]any{"status": "degraded", "store": "ok",
		"spool": "full", "shutting_down": false})
	srv.Stop(t)
	e.checkReady("spool full, PostgreSQL down", e.app, http.StatusServiceUnavailable, map[string]any{
		"status": "unavailable", "reason": "store_down_spool_full", "store": "down", "spool": "full", "config": "loaded"})
	srv.Start(t)
	waitFor(t, 10*time.Second, "readiness back with the store", func() bool {
		p, a := e.ready(e.app)
		return p.code == 200 && a.code == 200
	})
}

// TestReadyOffWhileShuttingDown: the first step of a graceful stop turns readiness off on both
// listeners (503, shutting down, the dependencies still reported) while the public listener
// still serves requests; the drain comes after (TestSigtermPreStopDelayKeepsServing).
func TestReadyOffWhileShuttingDown(t *testing.T) {
	e := newEnv(t)
	e.checkReady("before", e.app, 200, map[string]any{"status": "ok", "shutting_down": false})
	e.app.setDraining()
	e.checkReady("draining", e.app, http.StatusServiceUnavailable, map[string]any{"status": "draining",
		"reason": "shutting_down", "shutting_down": true, "store": "ok", "config": "loaded"})
	if st := e.chatStatus(e.app, e.key, "gpt-test"); st != 200 {
		t.Errorf("chat while not ready, before the drain: HTTP %d, want 200", st)
	}
}
