package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestReadyWhileTheDatabaseIsDown: with PostgreSQL stopped, requests with a known key are still
// served (the key from the cache, the usage to the spool), so /health/ready stays 200 and says
// degraded with the store down: a load balancer must not pull every replica for it.
func TestReadyWhileTheDatabaseIsDown(t *testing.T) {
	srv, dsn := outagePostgres(t)
	e := newEnv(t, func(c *Config) { c.DatabaseURL = dsn })
	ready := func() (int, string) {
		resp, err := e.http.Get(e.app.publicURL + "/health/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st := e.chatStatus(e.app, e.key, "gpt-test"); st != 200 {
		t.Fatalf("chat with PostgreSQL up: HTTP %d", st)
	}
	if st, body := ready(); st != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("ready with PostgreSQL up: %d %s", st, body)
	}
	srv.Stop(t)
	if st := e.chatStatus(e.app, e.key, "gpt-test"); st != 200 {
		t.Errorf("chat with PostgreSQL down: HTTP %d, want 200 (a known key, usage spooled)", st)
	}
	st, body := ready()
	if st != 200 || !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, `"store":"down"`) {
		t.Errorf("ready with PostgreSQL down: %d %s, want 200 degraded with the store down", st, body)
	}
	srv.Start(t)
	waitFor(t, 10*time.Second, "readiness ok again", func() bool {
		st, body := ready()
		return st == 200 && strings.Contains(body, `"status":"ok"`)
	})
}
