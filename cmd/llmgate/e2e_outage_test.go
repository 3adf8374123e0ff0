package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/testsvc"
)

// loadStats is what a stretch of load saw.
type loadStats struct {
	mu      sync.Mutex
	status  map[int]int
	slowest time.Duration
}

func (s *loadStats) add(code int, d time.Duration) {
	s.mu.Lock()
	s.status[code]++
	s.slowest = max(s.slowest, d)
	s.mu.Unlock()
}

// loadFor sends requests from several workers for d and reports what they saw.
func (e *env) loadFor(a *app, key string, d time.Duration) *loadStats {
	s := &loadStats{status: map[int]int{}}
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				t0 := time.Now()
				code := e.chatStatus(a, key, "gpt-test")
				s.add(code, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return s
}

func (e *env) readiness(a *app) string {
	resp, err := e.http.Get(a.publicURL + "/health/ready")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b struct{ Status string }
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return b.Status
}

// TestRedisOutageUnderLoad stops Redis under load: decisions follow the fail-open or fail-closed
// policy without hanging any request, readiness reports degraded, and once Redis is back the
// limits are exact again within 5 s.
func TestRedisOutageUnderLoad(t *testing.T) {
	srv, stop := testsvc.Redis() // a Redis of this test's own, since it is stopped
	t.Cleanup(stop)
	url := "redis://" + srv.Addr(t)
	for _, policy := range []string{"open", "closed"} {
		t.Run("fail "+policy, func(t *testing.T) {
			e := newEnv(t, withPostgres(t), withRedisURL(url), func(c *Config) {
				c.Quota.RedisTimeout = 50 * time.Millisecond
				c.Quota.Replicas = 2
				c.Quota.OnRedisFailure = map[string]string{"rpm": policy}
			})
			k := e.newKey(createKeyBody{Name: "outage", UserID: "outage-" + policy})
			e.putPolicy("/admin/quota/policy/"+k.UserID, `{"userRpm":100000}`)
			// Replicas learn of a policy change by polling its version: on a loaded machine the
			// first requests may still meet the tier's 20 a minute.
			for i := 0; ; i++ {
				st := e.loadFor(e.app, k.Key, 500*time.Millisecond)
				if st.status[200] > 0 && len(st.status) == 1 {
					break
				}
				if i == 10 {
					t.Fatalf("with Redis up: %v", st.status)
				}
				time.Sleep(200 * time.Millisecond)
			}
			srv.Stop(t)
			down := e.loadFor(e.app, k.Key, 2*time.Second)
			ready := e.readiness(e.app)
			srv.Start(t)
			t.Logf("Redis down: statuses %v, slowest request %v, readiness %q", down.status, down.slowest, ready)
			if down.slowest > time.Second {
				t.Errorf("a request took %v while Redis was down: requests must not hang on it", down.slowest)
			}
			if ready != "degraded" {
				t.Errorf("readiness while Redis was down = %q, want degraded", ready)
			}
			switch policy {
			case "open": // the local limiter (100000 / 2 replicas) admits everything here
				if len(down.status) != 1 || down.status[200] == 0 {
					t.Errorf("fail open: statuses %v, want only 200", down.status)
				}
			case "closed":
				if down.status[429] == 0 || down.status[200] > 0 && down.status[429] < 10*down.status[200] {
					t.Errorf("fail closed: statuses %v, want (almost) only 429", down.status)
				}
			}
			waitFor(t, 5*time.Second, "Redis to be used again", func() bool { return e.readiness(e.app) == "ok" })
			// exact again: a fresh limit of 5 admits exactly 5
			k2 := e.newKey(createKeyBody{Name: "after-outage"})
			e.putPolicy("/admin/quota/policies/key/"+k2.ID, `{"rpm":5}`)
			ok := 0
			for i := 0; i < 12; i++ {
				if e.chatStatus(e.app, k2.Key, "gpt-test") == 200 {
					ok++
				}
			}
			if ok != 5 {
				t.Errorf("after Redis returned: %d of 12 admitted under a 5 rpm limit", ok)
			}
		})
	}
}

// TestAdminQuotaEndpointsValidate: bad policy bodies get field-level 400s.
func TestAdminQuotaEndpointsValidate(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ path, body, param string }{
		{"/admin/quota/policy/u1", `{"userRpm":-1}`, "userRpm"},
		{"/admin/quota/policy/u1", `{"userRpm":"ten"}`, "userRpm"},
		{"/admin/quota/policy/u1", `{"userRpms":3}`, "userRpms"},
		{"/admin/quota/policies/group/x", `{"rpm":1}`, "subjectType"},
		{"/admin/quota/policies/key/x", `{"tokens_per_day":-5}`, "tokens_per_day"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodPut, e.app.adminURL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var b struct {
			Error struct{ Param string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &b)
		if resp.StatusCode != 400 || b.Error.Param != tc.param {
			t.Errorf("PUT %s %s: %d %s, want 400 naming %s", tc.path, tc.body, resp.StatusCode, raw, tc.param)
		}
	}
	var pol struct {
		Effective map[string]int64 `json:"effective"`
	}
	e.putPolicy("/admin/quota/policy/u2?allow_unknown_subject=true", `{"userRpm":7}`)
	e.adminGet("/admin/quota/policy/u2", &pol)
	// u2 does not exist as a user: the default tier ("open", unlimited) with rpm overridden
	if fmt.Sprint(pol.Effective) != "map[userConcurrent:0 userRpm:7 userTokensPerDay:0 userTpm:0]" {
		t.Errorf("effective limits %v", pol.Effective)
	}
	if err := e.admin.Do(context.Background(), http.MethodDelete, "/admin/quota/policy/u2", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Do(context.Background(), http.MethodDelete, "/admin/quota/policy/u2", nil, nil); err == nil {
		t.Error("deleting a missing policy succeeded")
	}
}

// TestLongStreamKeepsItsLease: a stream that outlives the lease TTL keeps its concurrency slot
// (the renewer extends it), and frees it when it ends.
func TestLongStreamKeepsItsLease(t *testing.T) {
	for name, opts := range map[string][]envOption{"memory": nil, "redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))}} {
		t.Run(name, func(t *testing.T) {
			// a 1.2 s lease, renewed every 400 ms, must outlive its TTL under a ~2 s stream
			opts = append(opts, func(c *Config) { c.Quota.LeaseTTL = 1200 * time.Millisecond })
			e := newEnv(t, opts...)
			k := e.newKey(createKeyBody{Name: "long", UserID: "long-" + name})
			e.putPolicy("/admin/quota/policy/"+k.UserID, `{"userConcurrent":1}`)
			req, _ := newStreamRequest(context.Background(), e.app.publicURL, k.Key) // ~2 s
			resp, err := e.http.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("stream: %v %v", err, resp)
			}
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close(); close(done) }()
			time.Sleep(1450 * time.Millisecond) // past the 1.2 s TTL, before the ~1.9 s stream ends
			select {
			case <-done:
				t.Fatal("the stream ended too early for the test")
			default:
			}
			if s := e.chatStatus(e.app, k.Key, "gpt-test"); s != 429 {
				t.Errorf("during a stream older than the lease TTL: status %d, want 429 (the lease must be renewed)", s)
			}
			<-done
			waitFor(t, 2*time.Second, "the slot to free after the stream", func() bool {
				return e.chatStatus(e.app, k.Key, "gpt-test") == 200
			})
		})
	}
}
