package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/quota"
)

func withPostgres(t *testing.T) envOption {
	dsn := pg.NewDatabase(t)
	return func(c *Config) { c.DatabaseURL = dsn }
}

// withRedisURL selects Redis quotas. Its timeout is raised from 50 ms: under -race on two shared
// cores a slow call would send a decision to the local fallback, and tests that count exactly
// also assert that no such decision was made (noFallback).
func withRedisURL(url string) envOption {
	return func(c *Config) { c.RedisURL, c.Quota.RedisTimeout = url, 2*time.Second }
}

// noFallback fails the test when a replica decided anything without Redis.
func noFallback(t *testing.T, e *env, apps ...*app) {
	t.Helper()
	for i, a := range apps {
		resp, err := e.http.Get(a.adminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "llmgate_quota_fallback_decisions_total{") && !strings.HasSuffix(line, " 0") {
				t.Errorf("replica %d decided without Redis: %s", i, line)
			}
		}
	}
}

// redisBackends are the shared Redis set-ups quota tests run on.
func redisBackends(t *testing.T) map[string]string {
	return map[string]string{
		"redis":         "redis://" + rdb.Addr(t),
		"redis cluster": "redis+cluster://" + strings.Join(rcluster.Addrs(t), ","),
	}
}

// putPolicy sets a quota policy through the admin API.
func (e *env) putPolicy(path, body string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, e.app.adminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("PUT %s: %d %s", path, resp.StatusCode, raw)
	}
}

// adminGet decodes a GET of the admin API.
func (e *env) adminGet(path string, out any) {
	e.t.Helper()
	if err := e.admin.Do(context.Background(), http.MethodGet, path, nil, out); err != nil {
		e.t.Fatal(err)
	}
}

// chatStatus sends one small chat request to a replica and returns the status.
func (e *env) chatStatus(a *app, key, model string, hdr ...string) int {
	req, _ := http.NewRequest(http.MethodPost, a.publicURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitPolicy waits until every replica applies a key's policy.
func waitPolicy(t *testing.T, typ quota.Kind, id string, apps ...*app) {
	waitFor(t, time.Second, "every replica to apply the policy", func() bool {
		for _, a := range apps {
			if _, ok := a.quota.policies.Lookup(typ, id, ""); !ok {
				return false
			}
		}
		return true
	})
}

// TestQuotaExactAcrossReplicas: three gateways sharing one Redis admit exactly N of a key's
// requests in the window, however the load is spread.
func TestQuotaExactAcrossReplicas(t *testing.T) {
	for name, url := range redisBackends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPostgres(t), withRedisURL(url))
			replicas := []*app{e.app, e.replica(nil), e.replica(nil)}
			k := e.newKey(createKeyBody{Name: "exact"})
			const n = 30
			e.putPolicy("/admin/quota/policies/key/"+k.ID, fmt.Sprintf(`{"rpm":%d}`, n))
			waitPolicy(t, "key", k.ID, replicas...)
			before := e.up.Stats().Requests
			var ok, limited atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 3*n; i++ {
				wg.Add(1)
				go func(a *app) {
					defer wg.Done()
					switch e.chatStatus(a, k.Key, "gpt-test") {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
					}
				}(replicas[i%3])
			}
			wg.Wait()
			if ok.Load() != n || limited.Load() != 2*n {
				t.Errorf("admitted %d and limited %d of %d requests, want exactly %d admitted", ok.Load(), limited.Load(), 3*n, n)
			}
			if got := e.up.Stats().Requests - before; got != n {
				t.Errorf("upstream saw %d requests, want %d", got, n)
			}
			noFallback(t, e, replicas...)
		})
	}
}

// TestConcurrencyCapAndNoLeakedSlots: a user capped at C never has more than C requests
// upstream, and after a storm of upstream timeouts and client cancels its slots in use return to
// exactly 0.
func TestConcurrencyCapAndNoLeakedSlots(t *testing.T) {
	backends := map[string][]envOption{"memory": nil}
	for name, url := range redisBackends(t) {
		backends[name] = []envOption{withPostgres(t), withRedisURL(url)}
	}
	for name, opts := range backends {
		t.Run(name, func(t *testing.T) {
			opts = append(opts, func(c *Config) { c.Providers[0].ResponseHeaderTimeout = 300 * time.Millisecond })
			e := newEnv(t, opts...)
			k := e.newKey(createKeyBody{Name: "cap", UserID: "capped-" + strings.ReplaceAll(name, " ", "-")})
			const c = 3
			e.putPolicy("/admin/quota/policy/"+k.UserID, fmt.Sprintf(`{"userConcurrent":%d}`, c))
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var admitted, limited atomic.Int64
			peak := int64(0)
			stop := make(chan struct{})
			go func() { // sample the upstream's in-flight count
				for {
					select {
					case <-stop:
						return
					default:
					}
					if f := e.slow.Stats().InFlight; f > atomic.LoadInt64(&peak) {
						atomic.StoreInt64(&peak, f)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp := e.post(ctx, "/chat/completions", k.Key, []byte(`{"model":"slow","stream":true,"messages":[]}`))
					defer resp.Body.Close()
					if resp.StatusCode == 429 {
						limited.Add(1)
						return
					}
					admitted.Add(1)
					io.Copy(io.Discard, resp.Body) // until canceled
				}()
			}
			waitFor(t, 5*time.Second, "10 answers", func() bool { return admitted.Load()+limited.Load() == 10 })
			if admitted.Load() != c || limited.Load() != 10-c {
				t.Errorf("admitted %d, limited %d; want %d admitted", admitted.Load(), limited.Load(), c)
			}
			cancel() // the streams' clients go away mid-answer
			wg.Wait()
			// upstream timeouts: the mock hangs longer than response_header_timeout
			for i := 0; i < 6; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp := e.post(context.Background(), "/chat/completions", k.Key, []byte(`{"model":"gpt-test","mock":{"hang_ms":2000},"messages":[]}`))
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}()
			}
			wg.Wait()
			close(stop)
			if p := atomic.LoadInt64(&peak); p > c {
				t.Errorf("upstream saw %d requests of the user in flight, cap %d", p, c)
			}
			var u struct {
				Concurrent int64 `json:"concurrent"`
			}
			waitFor(t, 2*time.Second, "slots in use to return to 0", func() bool {
				e.adminGet("/admin/quota/usage/"+k.UserID, &u)
				return u.Concurrent == 0
			})
		})
	}
}

// TestTokenReservationAndSettlement: a TPM limit refuses before the upstream call a request whose
// reservation does not fit, and settlement refunds what an answer did not use.
func TestTokenReservationAndSettlement(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)))
	k := e.newKey(createKeyBody{Name: "tpm", UserID: "tokens-user"})
	e.putPolicy("/admin/quota/policy/tokens-user", `{"userTpm":1000}`)
	before := e.up.Stats().Requests
	resp := e.post(context.Background(), "/chat/completions", k.Key, []byte(`{"model":"gpt-test","max_tokens":2000,"messages":[]}`))
	if resp.StatusCode != 429 || resp.Header.Get("X-Ratelimit-Limit-Tokens") != "1000" {
		t.Errorf("over-reservation: status %d, limit-tokens %q", resp.StatusCode, resp.Header.Get("X-Ratelimit-Limit-Tokens"))
	}
	if _, _, msg := apiError(t, resp); !strings.Contains(msg, "tpm") {
		t.Errorf("message %q does not name the token limit", msg)
	}
	if e.up.Stats().Requests != before {
		t.Fatal("the refused request reached the upstream")
	}
	resp = e.post(context.Background(), "/chat/completions", k.Key, []byte(`{"model":"gpt-test","max_tokens":500,"messages":[{"role":"user","content":"one two"}]}`))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rem := resp.Header.Get("X-Ratelimit-Remaining-Tokens")
	if resp.StatusCode != 200 || rem == "" || rem == "1000" {
		t.Fatalf("status %d, remaining tokens %q (the reservation must show)", resp.StatusCode, rem)
	}
	var u struct {
		TokensMinute int64 `json:"tokensMinute"`
		TokensDay    int64 `json:"tokensDay"`
	}
	// Settlement runs after the answer is flushed, so the client may see the answer first.
	waitFor(t, 2*time.Second, "settlement to refund the unused reservation", func() bool {
		e.adminGet("/admin/quota/usage/tokens-user", &u)
		return u.TokensMinute < 522
	})
	if u.TokensMinute != 25 || u.TokensDay != 25 { // 5 prompt + 20 completion, the rest refunded
		t.Errorf("after settlement: minute %d, day %d tokens; want 25 each", u.TokensMinute, u.TokensDay)
	}
}

// TestPolicyAppliesOnEveryReplicaWithinASecond: a user policy written through one replica's admin
// API applies on another replica within a second, and is mirrored to the Redis hash
// ai:quota:policy:{userId} that other systems read.
func TestPolicyAppliesOnEveryReplicaWithinASecond(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)))
	other := e.replica(nil)
	k := e.newKey(createKeyBody{Name: "policy", UserID: "policy-user"})
	if s := e.chatStatus(other, k.Key, "gpt-test"); s != 200 {
		t.Fatalf("status %d", s)
	}
	e.putPolicy("/admin/quota/policy/policy-user", `{"userRpm":1,"userConcurrent":4}`)
	changed := time.Now()
	waitPolicy(t, "user", "policy-user", other)
	t.Logf("policy applied on the other replica after %v", time.Since(changed))
	if s := e.chatStatus(other, k.Key, "gpt-test"); s != 429 { // the first request already used the 1 rpm
		t.Errorf("other replica: status %d, want 429 under the new 1 rpm policy", s)
	}
	c := redis.NewClient(&redis.Options{Addr: rdb.Addr(t)})
	defer c.Close()
	h, err := c.HGetAll(context.Background(), "ai:quota:policy:policy-user").Result()
	if err != nil || h["userRpm"] != "1" || h["userConcurrent"] != "4" || len(h) != 2 {
		t.Errorf("Redis mirror = %v, %v", h, err)
	}
}

// TestSessionLimitsAndClear: X-Session-Id counts against the session; the admin API clears it.
func TestSessionLimitsAndClear(t *testing.T) {
	for name, opts := range map[string][]envOption{"memory": nil, "redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))}} {
		t.Run(name, func(t *testing.T) {
			opts = append(opts, func(c *Config) { c.Quota.Session = quota.Limits{RPM: 2} })
			e := newEnv(t, opts...)
			sess := "sess-" + strings.ReplaceAll(name, " ", "")
			for i := 0; i < 2; i++ {
				if s := e.chatStatus(e.app, e.key, "gpt-test", "X-Session-Id", sess); s != 200 {
					t.Fatalf("request %d: %d", i, s)
				}
			}
			if s := e.chatStatus(e.app, e.key, "gpt-test", "X-Session-Id", sess); s != 429 {
				t.Fatalf("third request in the session: %d, want 429", s)
			}
			if s := e.chatStatus(e.app, e.key, "gpt-test", "X-Session-Id", "another"); s != 200 {
				t.Fatalf("another session: %d", s)
			}
			if err := e.admin.Do(context.Background(), http.MethodDelete, "/admin/quota/session/"+sess, nil, nil); err != nil {
				t.Fatal(err)
			}
			if s := e.chatStatus(e.app, e.key, "gpt-test", "X-Session-Id", sess); s != 200 {
				t.Errorf("after clearing the session: %d", s)
			}
		})
	}
}

// TestRefusedRequestsConsumeNothing: requests refused for auth, validation or concurrency use no
// RPM and no tokens.
func TestRefusedRequestsConsumeNothing(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)))
	k := e.newKey(createKeyBody{Name: "frugal", UserID: "frugal-user"})
	e.putPolicy("/admin/quota/policy/frugal-user", `{"userRpm":3,"userConcurrent":1}`)
	for i := 0; i < 5; i++ {
		resp := e.post(context.Background(), "/chat/completions", k.Key, []byte(`{"model":"gpt-test","messages":[`))
		resp.Body.Close()
		resp = e.post(context.Background(), "/chat/completions", "sk-lg-wrong", []byte(`{"model":"gpt-test"}`))
		resp.Body.Close()
	}
	// hold the one concurrency slot with a slow stream and get refused on concurrency
	ctx, cancel := context.WithCancel(context.Background())
	held := e.post(ctx, "/chat/completions", k.Key, []byte(`{"model":"slow","stream":true,"messages":[]}`))
	if s := e.chatStatus(e.app, k.Key, "gpt-test"); s != 429 {
		t.Errorf("second concurrent request: %d, want 429", s)
	}
	cancel()
	held.Body.Close()
	var u struct {
		Requests, Concurrent, TokensMinute int64
	}
	waitFor(t, 2*time.Second, "the held slot to be released", func() bool {
		e.adminGet("/admin/quota/usage/frugal-user", &u)
		return u.Concurrent == 0
	})
	if u.Requests != 1 {
		t.Errorf("requests counted = %d, want 1 (only the admitted stream)", u.Requests)
	}
	for i := 0; i < 2; i++ { // the 3 rpm leave room for exactly two more
		if s := e.chatStatus(e.app, k.Key, "gpt-test"); s != 200 {
			t.Errorf("request %d after refusals: %d", i, s)
		}
	}
	if s := e.chatStatus(e.app, k.Key, "gpt-test"); s != 429 {
		t.Errorf("fourth admitted request: %d, want 429", s)
	}
	raw, _ := json.Marshal(u)
	t.Logf("usage after refusals: %s", raw)
}

// TestQuotaExactAcrossReplicasWithPermitLeases: with permit leases on, three gateways sharing
// one Redis still admit exactly N of a key's requests in the window, however the load is
// spread; the replicas did take leases (the key's lease log holds their members).
func TestQuotaExactAcrossReplicasWithPermitLeases(t *testing.T) {
	for name, url := range redisBackends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPostgres(t), withRedisURL(url), func(c *Config) { c.Quota.PermitLeases.Enabled = true })
			replicas := []*app{e.app, e.replica(nil), e.replica(nil)}
			k := e.newKey(createKeyBody{Name: "exact-leased"})
			const n = 60
			e.putPolicy("/admin/quota/policies/key/"+k.ID, fmt.Sprintf(`{"rpm":%d}`, n))
			waitPolicy(t, "key", k.ID, replicas...)
			before := e.up.Stats().Requests
			var ok, limited atomic.Int64
			var wg sync.WaitGroup
			for i := 0; i < 3*n; i++ {
				wg.Add(1)
				go func(a *app) {
					defer wg.Done()
					switch e.chatStatus(a, k.Key, "gpt-test") {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
					}
				}(replicas[i%3])
			}
			wg.Wait()
			if ok.Load() != n || limited.Load() != 2*n {
				t.Errorf("admitted %d and limited %d of %d requests, want exactly %d admitted", ok.Load(), limited.Load(), 3*n, n)
			}
			if got := e.up.Stats().Requests - before; got != n {
				t.Errorf("upstream saw %d requests, want %d", got, n)
			}
			noFallback(t, e, replicas...)
			if name == "redis" {
				c := redis.NewClient(&redis.Options{Addr: rdb.Addr(t)})
				defer c.Close()
				keys, err := c.Keys(context.Background(), "*:q:key:"+k.ID+":rl").Result()
				if err != nil || len(keys) != 1 {
					t.Errorf("lease log of the key: %v, %v; want one: the replicas took no lease", keys, err)
				}
			}
		})
	}
}
