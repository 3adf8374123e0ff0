package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/quota"
)

// withOptions changes the gateway's options before it is built.
func withOptions(f func(*gateway.Options)) envOption {
	return func(c *envConfig) { f(&c.Options) }
}

// The global limit sheds exactly what the bucket cannot hold: with a rate so low that no token
// comes back during the test, a burst of N concurrent requests lets exactly B reach the upstream
// (counted there, not timed) and answers the other N-B 429 with a Retry-After, before their key
// is even looked at (a wrong key is refused 429 too, not 401, once the bucket is empty).
func TestGlobalRateLimitShedsExcess(t *testing.T) {
	const burst, n = 5, 17
	e := newEnv(t, withOptions(func(o *gateway.Options) {
		o.GlobalRateLimit = gateway.RateLimit{RequestsPerSecond: 0.0001, Burst: burst} // one token in ~3 h
	}))
	body := []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp := e.post(context.Background(), "/chat/completions", e.key, body)
			defer resp.Body.Close()
			statuses[i] = resp.StatusCode
			if resp.StatusCode == http.StatusTooManyRequests {
				var b struct{ Error bodyError }
				if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || b.Error.Code != "gateway_overloaded" || b.Error.Type != "rate_limit_error" {
					t.Errorf("429 body %+v, %v; want rate_limit_error gateway_overloaded", b, err)
				}
				if resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			} else {
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
	wg.Wait()
	ok, shed := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			shed++
		default:
			t.Errorf("status %d", s)
		}
	}
	if got := e.up.Stats().Requests; got != burst || ok != burst || shed != n-burst {
		t.Fatalf("upstream saw %d requests, clients got %d OK and %d 429; want exactly %d reached and %d shed", got, ok, shed, burst, n-burst)
	}
	// The bucket is empty: a request with no valid key is shed too, before any key lookup.
	resp := e.post(context.Background(), "/chat/completions", "sk-not-a-key", body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("unknown key with an empty bucket: status %d, want 429", resp.StatusCode)
	}
	// Health checks are not the public API's traffic: never shed.
	hr, err := e.http.Get(e.srv.URL + "/health/live")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		t.Fatalf("/health/live with an empty bucket: %d", hr.StatusCode)
	}
}

// The user id header carries the key's user to the upstream on every endpoint and every provider
// type, and never the client's own value: a client that sends the header does not get it through,
// whether its key has a user or not.
func TestUserIDHeaderForwarded(t *testing.T) {
	anth := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	anthSrv := httptest.NewServer(anth)
	t.Cleanup(anthSrv.Close)
	ap, err := anthropic.New(anthropic.Options{BaseURL: anthSrv.URL, APIKey: upstreamKey, Outbound: loopback})
	gem := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	gemSrv := httptest.NewServer(gem)
	t.Cleanup(gemSrv.Close)
	e := newEnv(t, withOptions(func(o *gateway.Options) { o.UserIDHeader = "X-User-ID" }),
		withRouting([]namedProvider{{"claude", ap, err}}, providers.ModelConfig{Name: "claude-test",
			Deployments: []providers.DeploymentConfig{{Provider: "claude", Model: "claude-up"}}}),
		withGemini("gem", "gemini-pub", gemSrv.URL))
	withUser := e.newKey(keySpec{Name: "u", UserID: "alice-7", Tier: "open"})
	const forged = "mallory"
	for _, tc := range []struct {
		name, path, body string
		up               *mock.Handler
	}{
		{"chat", "/chat/completions", `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`, e.up},
		{"chat stream", "/chat/completions", `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`, e.up},
		{"completions", "/completions", `{"model":"gpt-test","prompt":"hi"}`, e.up},
		{"embeddings", "/embeddings", `{"model":"gpt-test","input":"hi"}`, e.up},
		{"responses", "/responses", `{"model":"gpt-test","input":"hi"}`, e.up},
		{"moderations", "/moderations", `{"model":"gpt-test","input":"hi"}`, e.up},
		{"anthropic provider", "/chat/completions", `{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}`, anth},
		{"gemini provider", "/chat/completions", `{"model":"gemini-pub","messages":[{"role":"user","content":"hi"}]}`, gem},
		{"images", "/images/generations", `{"model":"gpt-test","prompt":"a cat"}`, e.up},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []struct {
				key, want string
			}{{withUser.Key, "alice-7"}, {e.key, ""}} {
				resp := e.post(context.Background(), tc.path, k.key, []byte(tc.body), "X-User-ID", forged)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
				reqs := tc.up.Requests(1)
				if len(reqs) != 1 {
					t.Fatal("no upstream request recorded")
				}
				if got := reqs[0].Headers["X-User-Id"]; got != k.want {
					t.Errorf("upstream X-User-ID %q, want %q (client sent %q)", got, k.want, forged)
				}
			}
		})
	}
}

// An endpoint limit of the user's tier counts the user's requests to that endpoint apart: the
// third embeddings request in the minute is refused naming the endpoint, while chat requests of
// the same user, and embeddings requests of a user of another tier, go on.
func TestEndpointLimits(t *testing.T) {
	qo := quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "metered": {}},
		EndpointLimits: map[string]map[string]quota.Limits{"embeddings": {"metered": {RPM: 2}}}}
	e := newEnv(t, func(c *envConfig) { c.quota = &qo })
	metered := e.newKey(keySpec{Name: "m", UserID: "meter-user", Tier: "metered"})
	open := e.newKey(keySpec{Name: "o", UserID: "open-user", Tier: "open"})
	emb := []byte(`{"model":"gpt-test","input":"hi"}`)
	chat := []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`)
	status := func(key, path string, body []byte) (int, string) {
		resp := e.post(context.Background(), path, key, body)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := range 2 {
		if s, b := status(metered.Key, "/embeddings", emb); s != http.StatusOK {
			t.Fatalf("embeddings %d: %d %s", i, s, b)
		}
	}
	s, b := status(metered.Key, "/embeddings", emb)
	if s != http.StatusTooManyRequests || !strings.Contains(b, "user/meter-user#embeddings") {
		t.Fatalf("third embeddings request: %d %s; want 429 naming user/meter-user#embeddings", s, b)
	}
	for i := range 3 {
		if s, b := status(metered.Key, "/chat/completions", chat); s != http.StatusOK {
			t.Fatalf("chat %d of the limited user: %d %s", i, s, b)
		}
		if s, b := status(open.Key, "/embeddings", emb); s != http.StatusOK {
			t.Fatalf("embeddings %d of the open tier: %d %s", i, s, b)
		}
	}
}

// A model's token multiplier weighs its tokens against token quotas: the same request on a model
// with token_multiplier 3 counts three times the tokens of one on a model without, in the
// limiter (as /v1/usage shows it), while the usage record keeps the real count.
func TestTokenMultiplier(t *testing.T) {
	qo := quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {TPM: 1_000_000}}}
	e := newEnv(t, func(c *envConfig) { c.quota = &qo }, withRouting(nil, providers.ModelConfig{Name: "pricey", TokenMultiplier: 3,
		Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}}))
	tokensMinute := func(model, user string) (int64, int64) {
		k := e.newKey(keySpec{Name: user, UserID: user, Tier: "open"})
		resp := e.post(context.Background(), "/chat/completions", k.Key,
			[]byte(`{"model":"`+model+`","max_tokens":20,"messages":[{"role":"user","content":"count these words"}]}`))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", model, resp.StatusCode)
		}
		rec := e.usageFor(resp.Header.Get("X-Request-Id"))
		var u struct {
			Quota []struct {
				Subject string
				Used    struct {
					TokensMinute int64 `json:"tokens_minute"`
				}
			}
		}
		c := e.api()
		c.Key = k.Key
		c.GetJSON("/usage", &u)
		for _, q := range u.Quota {
			if q.Subject == "user/"+user {
				return q.Used.TokensMinute, rec.PromptTokens + rec.CompletionTokens
			}
		}
		t.Fatalf("no quota of user/%s in /v1/usage: %+v", user, u)
		return 0, 0
	}
	plain, plainReal := tokensMinute("gpt-test", "plain-user")
	weighed, weighedReal := tokensMinute("pricey", "pricey-user")
	if plain == 0 || plainReal != weighedReal || plain != plainReal || weighed != 3*plainReal {
		t.Fatalf("tokens counted %d (real %d) on gpt-test and %d (real %d) on pricey; want the real count and 3 × it",
			plain, plainReal, weighed, weighedReal)
	}
}
