package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/admin/admintest"
)

// lifecycleReplica is one gateway serving the shared database: a child process, or the test's own.
type lifecycleReplica struct {
	name      string
	publicURL string
}

// chatAt sends one small chat request with key to a replica and returns the status (0 when the
// request failed, which the caller reports).
func chatAt(t *testing.T, hc *http.Client, r lifecycleReplica, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.publicURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("%s: %v", r.name, err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminKeyLifecycleAcrossProcesses: a key made on one gateway process works on another
// sharing the PostgreSQL database; rotated on the second with a grace period, old and new
// secrets both work everywhere, then only the new one; revoked on the first, every replica
// refuses it within 5 s. The key cache TTL is the default 3 s.
func TestAdminKeyLifecycleAcrossProcesses(t *testing.T) {
	const grace = 4 * time.Second
	const within = 5 * time.Second // the promise: refused on every replica within this
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)), func(c *Config) {
		c.Gateway.KeyCacheTTL, c.Gateway.NegativeKeyCacheTTL = 3*time.Second, 3*time.Second
	})
	a, b := e.serveProcessIn(t, t.TempDir()), e.serveProcessIn(t, t.TempDir())
	replicas := []lifecycleReplica{{"process A", a.url}, {"process B", b.url}, {"in-test gateway", e.app.publicURL}}
	admA := admintest.NewClient(t, a.adminURL, testAdminToken, e.http)
	admB := admintest.NewClient(t, b.adminURL, testAdminToken, e.http)

	// create on A, use everywhere
	k := admA.Must(201, "POST", "/admin/keys", map[string]any{"name": "lifecycle", "user_id": "life-user"})
	id, oldKey := k.JSON("id").String(), k.JSON("key").String()
	for _, r := range replicas {
		if st := chatAt(t, e.http, r, oldKey); st != 200 {
			t.Fatalf("%s: a key made on process A answers HTTP %d", r.name, st)
		}
	}

	// rotate on B with grace: both secrets work everywhere
	rot := admB.Must(200, "POST", "/admin/keys/"+id+"/rotate", map[string]any{"grace_seconds": int(grace / time.Second)})
	newKey := rot.JSON("key").String()
	ends := rot.JSON("previous_key_expires_at").Time()
	if newKey == "" || newKey == oldKey || ends.IsZero() {
		t.Fatalf("rotation: %s", rot.Body)
	}
	for _, r := range replicas {
		for name, key := range map[string]string{"old": oldKey, "new": newKey} {
			if st := chatAt(t, e.http, r, key); st != 200 {
				t.Errorf("%s, within the grace period: the %s secret answers HTTP %d", r.name, name, st)
			}
		}
	}
	if time.Now().After(ends) {
		t.Fatalf("the grace period ended before both secrets were checked everywhere; raise grace")
	}

	// after the grace period only the new one
	delays := pollRefused(t, e.http, replicas, oldKey, ends, within, "the old secret after the grace period")
	for _, r := range replicas {
		if st := chatAt(t, e.http, r, newKey); st != 200 {
			t.Errorf("%s: the new secret answers HTTP %d after the grace period", r.name, st)
		}
		t.Logf("%s refused the old secret %v after the grace period ended", r.name, delays[r.name].Round(time.Millisecond))
	}

	// revoke on A: refused everywhere within 5 s
	admA.Must(200, "DELETE", "/admin/keys/"+id, nil)
	revoked := time.Now()
	delays = pollRefused(t, e.http, replicas, newKey, revoked, within, "the revoked key")
	for _, r := range replicas {
		t.Logf("%s refused the revoked key %v after the revocation", r.name, delays[r.name].Round(time.Millisecond))
		if st := chatAt(t, e.http, r, newKey); st != 401 {
			t.Errorf("%s: the revoked key answers HTTP %d on a later request", r.name, st)
		}
		if st := chatAt(t, e.http, r, oldKey); st != 401 {
			t.Errorf("%s: the key's old secret answers HTTP %d after the revocation", r.name, st)
		}
	}
	// an admin token made on A works on B; revoked on A, B refuses it within its token cache TTL
	tok := admA.Must(201, "POST", "/admin/tokens", map[string]any{"name": "lifecycle", "role": "viewer"})
	onB := admB.As(tok.JSON("token").String())
	onB.Must(200, "GET", "/admin/keys", nil) // now cached on B
	admA.Must(200, "DELETE", "/admin/tokens/"+tok.JSON("id").String(), nil)
	tokRevoked := time.Now()
	waitFor(t, within, "process B to refuse an admin token revoked on process A", func() bool {
		return onB.Do("GET", "/admin/keys", nil).Status == 401
	})
	t.Logf("process B refused the admin token %v after its revocation on process A", time.Since(tokRevoked).Round(time.Millisecond))
	admintest.CheckError(t, onB.Do("GET", "/admin/keys", nil), 401, "", "the revoked admin token on process B")

	if g := admB.Must(200, "GET", "/admin/keys/"+id, nil); g.JSON("status").String() != "revoked" {
		t.Errorf("process B reads the key as %s", g.JSON("status"))
	}
	log := admB.Must(200, "GET", "/admin/audit-log?target="+id, nil)
	var actions []string
	for _, en := range log.JSON("data").Array() {
		actions = append(actions, en.Get("action").String())
	}
	if strings.Join(actions, ",") != "key.revoke,key.rotate,key.create" {
		t.Errorf("audit log of the key (newest first): %v", actions)
	}
	if strings.Contains(log.Body, oldKey) || strings.Contains(log.Body, newKey) {
		t.Errorf("the audit log shows a secret")
	}
}

// pollRefused polls every replica with key until each answers 401, and returns how long after
// since each first did. A replica that answers anything but 200 or 401, that refuses the key
// more than a second before since (clocks are shared: this is one machine), or that takes longer
// than within fails the test.
func pollRefused(t *testing.T, hc *http.Client, replicas []lifecycleReplica, key string, since time.Time, within time.Duration, what string) map[string]time.Duration {
	t.Helper()
	delays := map[string]time.Duration{}
	deadline := since.Add(within + 3*time.Second) // keep polling past the promise, to report how late
	for len(delays) < len(replicas) && time.Now().Before(deadline) {
		for _, r := range replicas {
			if _, done := delays[r.name]; done {
				continue
			}
			switch st := chatAt(t, hc, r, key); st {
			case 401:
				delays[r.name] = time.Since(since)
				if delays[r.name] < -time.Second {
					t.Errorf("%s refused %s %v before it should have", r.name, what, -delays[r.name])
				}
			case 200:
			default:
				t.Errorf("%s: %s answers HTTP %d", r.name, what, st)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range replicas {
		d, ok := delays[r.name]
		switch {
		case !ok:
			t.Errorf("%s still accepts %s %v later", r.name, what, time.Since(since).Round(time.Millisecond))
		case d > within:
			t.Errorf("%s refused %s only after %v, want within %v", r.name, what, d.Round(time.Millisecond), within)
		}
	}
	return delays
}
