package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// withYAML applies a config file fragment over the env's config, as the file would set it.
func withYAML(t *testing.T, raw string) envOption {
	return func(c *Config) {
		if err := parseConfig([]byte(raw), func(string) (string, bool) { return "", false }, c); err != nil {
			t.Fatalf("config: %v", err)
		}
	}
}

// replayPost sends body to /v1/chat/completions of the gateway at base with key and the header
// pairs, reads the answer, and waits for the request's record when it succeeded: an answer is
// stored once its request has settled.
func (e *env) replayPost(base, key, body string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	c := e.api()
	c.BaseURL = base + "/v1"
	resp := c.Post(context.Background(), "/chat/completions", key, []byte(body), hdr...)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		e.usageFor(resp.Header.Get("X-Request-Id"))
	}
	return resp, b
}

// TestReplayAcrossReplicas: two replicas sharing PostgreSQL and Redis (single node and Cluster)
// share the response cache and the idempotency records: an answer cached by one is a hit on the
// other, within the tenant only; a retry on the other replica of a request the first completed
// gets its answer without an upstream call, and one sent while the first runs gets 409. A key
// opted in through the admin API is cached for a model the config does not name.
func TestReplayAcrossReplicas(t *testing.T) {
	for name, url := range map[string]string{
		"redis":         "redis://" + rdb.Addr(t),
		"redis cluster": "redis+cluster://" + strings.Join(rcluster.Addrs(t), ","),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPostgres(t), withRedisURL(url), withYAML(t, "response_cache:\n  models: [gpt-test]\n"))
			a, b := e.app.publicURL, e.replica(nil).publicURL
			stamp := time.Now().Format("150405.000000") // the Redis is shared by the subtests
			calls := func() int64 { return e.up.Stats().Requests }

			body := `{"model":"gpt-test","messages":[{"role":"user","content":"shared ` + stamp + `"}]}`
			r1, out1 := e.replayPost(a, e.key, body)
			r2, out2 := e.replayPost(b, e.key, body)
			if r1.Header.Get("X-Llmgate-Cache") != "miss" || r2.Header.Get("X-Llmgate-Cache") != "hit" || !bytes.Equal(out1, out2) {
				t.Fatalf("cache across replicas: %q then %q", r1.Header.Get("X-Llmgate-Cache"), r2.Header.Get("X-Llmgate-Cache"))
			}
			if n := calls(); n != 1 {
				t.Fatalf("upstream calls = %d, want 1", n)
			}
			hit := e.usageFor(r2.Header.Get("X-Request-Id"))
			if hit.UsageSource != "cache" || hit.ReplayOf != r1.Header.Get("X-Request-Id") {
				t.Fatalf("hit record: %+v", hit)
			}

			// Another tenant's key never gets the answer.
			var tenant struct{ ID string }
			if err := e.admin.Do(context.Background(), http.MethodPost, "/admin/tenants", map[string]any{"name": "beta"}, &tenant); err != nil {
				t.Fatal(err)
			}
			var other struct{ Key string }
			if err := e.admin.Do(context.Background(), http.MethodPost, "/admin/keys", map[string]any{"name": "b", "tenant_id": tenant.ID}, &other); err != nil {
				t.Fatal(err)
			}
			if r, _ := e.replayPost(b, other.Key, body); r.Header.Get("X-Llmgate-Cache") != "miss" {
				t.Fatalf("another tenant: cache %q", r.Header.Get("X-Llmgate-Cache"))
			}

			// A key opted in through the admin API: "other" is not in response_cache.models.
			var opted struct{ Key string }
			if err := e.admin.Do(context.Background(), http.MethodPost, "/admin/keys", map[string]any{"name": "cached", "response_cache": true}, &opted); err != nil {
				t.Fatal(err)
			}
			ob := `{"model":"other","messages":[{"role":"user","content":"opted ` + stamp + `"}]}`
			e.replayPost(a, opted.Key, ob)
			if r, _ := e.replayPost(b, opted.Key, ob); r.Header.Get("X-Llmgate-Cache") != "hit" {
				t.Fatalf("opted-in key: cache %q", r.Header.Get("X-Llmgate-Cache"))
			}
			if r, _ := e.replayPost(b, e.key, ob); r.Header.Get("X-Llmgate-Cache") != "" {
				t.Fatalf("a key not opted in, model not configured: cache %q", r.Header.Get("X-Llmgate-Cache"))
			}

			// Idempotency across replicas, on a model the cache does not hold.
			before := calls()
			ib := `{"model":"other","stream":true,"messages":[{"role":"user","content":"once ` + stamp + `"}]}`
			i1, iout1 := e.replayPost(a, e.key, ib, "Idempotency-Key", "once-"+stamp)
			i2, iout2 := e.replayPost(b, e.key, ib, "Idempotency-Key", "once-"+stamp)
			if i1.StatusCode != 200 || i2.StatusCode != 200 || i2.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(iout1, iout2) {
				t.Fatalf("idempotent retry on the other replica: HTTP %d %d, replayed %q", i1.StatusCode, i2.StatusCode, i2.Header.Get("Idempotent-Replayed"))
			}
			if n := calls() - before; n != 1 {
				t.Fatalf("idempotent retry: upstream calls = %d, want 1", n)
			}
			replayRec, first := e.usageFor(i2.Header.Get("X-Request-Id")), e.usageFor(i1.Header.Get("X-Request-Id"))
			if replayRec.ReplayOf != first.RequestID || replayRec.UsageSource != "cache" || replayRec.CompletionTokens != 0 {
				t.Fatalf("replay record: %+v", replayRec)
			}

			// A retry while the first runs, on the other replica: 409.
			slow := `{"model":"other","mock":{"latency_ms":2000},"messages":[{"role":"user","content":"busy ` + stamp + `"}]}`
			var wg sync.WaitGroup
			var firstStatus int
			wg.Go(func() {
				r, _ := e.replayPost(a, e.key, slow, "Idempotency-Key", "busy-"+stamp)
				firstStatus = r.StatusCode
			})
			deadline := time.Now().Add(10 * time.Second)
			for e.up.Stats().InFlight == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if r, out := e.replayPost(b, e.key, slow, "Idempotency-Key", "busy-"+stamp); r.StatusCode != http.StatusConflict {
				t.Fatalf("retry while running: HTTP %d %s", r.StatusCode, out)
			}
			wg.Wait()
			if firstStatus != 200 {
				t.Fatalf("first request: HTTP %d", firstStatus)
			}
		})
	}
}
