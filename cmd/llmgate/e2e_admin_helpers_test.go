package main

import (
	"testing"
	"time"

	"github.com/llmgate/llmgate/admin/admintest"
)

// Helpers of the admin API's end-to-end tests (e2e_admin_*_test.go). The raw client is
// admin/admintest's, shared with the admin package's own tests.

func newAdmClient(t *testing.T, e *env) *admintest.Client {
	return admintest.NewClient(t, e.app.adminURL, testAdminToken, e.http)
}

// adminStores runs body against an embedded SQLite gateway and against a PostgreSQL + Redis one.
func adminStores(t *testing.T, body func(t *testing.T, e *env), opts ...envOption) {
	t.Run("sqlite", func(t *testing.T) { body(t, newEnv(t, opts...)) })
	t.Run("postgres", func(t *testing.T) {
		o := append([]envOption{withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))}, opts...)
		body(t, newEnv(t, o...))
	})
}

// admChat sends one small chat request with a key to the env's gateway and returns the status.
func admChat(e *env, key, model string) int { return e.chatStatus(e.app, key, model) }

// admWaitChat polls until a key's chat request answers want, and returns how long that took. It
// polls every 100 ms rather than waitFor's 10 ms: the requests that still pass count against the
// key's and the tenant's rpm.
func admWaitChat(t *testing.T, e *env, key, model string, want int, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for admChat(e, key, model) != want {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func futureRFC3339(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }
