package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/internal/replay"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// withCache turns the response cache on, in memory.
func withCache(o replay.CacheOptions) envOption {
	return func(c *envConfig) { c.cache = &o }
}

// cachePost sends body to /v1/chat/completions with key, reads the whole answer and waits for
// the request to settle: an answer is stored for the next request once its request has settled,
// just after its last byte left.
func (e *env) cachePost(key, body string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	resp := e.post(context.Background(), "/chat/completions", key, []byte(body), hdr...)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	e.usageFor(resp.Header.Get("X-Request-Id"))
	return resp, b
}

// streamText reads a go-openai stream to its end and returns its content and usage.
func streamText(t *testing.T, s *openai.ChatCompletionStream) (string, *openai.Usage) {
	t.Helper()
	defer s.Close()
	var b strings.Builder
	var u *openai.Usage
	for {
		c, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), u
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) > 0 {
			b.WriteString(c.Choices[0].Delta.Content)
		}
		if c.Usage != nil {
			u = c.Usage
		}
	}
}

// TestResponseCacheHitAndMiss: with the cache on for a model, the second identical request (whole
// or streamed, through go-openai) is answered from the cache without an upstream call, the
// stream replayed as a stream with its usage chunk; hits are recorded as cache usage costing
// nothing, and counted.
func TestResponseCacheHitAndMiss(t *testing.T) {
	e := newEnv(t, withCache(replay.CacheOptions{Models: []string{"gpt-test"}}), withPrices(testPrice("gpt-test")))
	c := e.client(e.key)
	ctx := context.Background()
	req := openai.ChatCompletionRequest{Model: "gpt-test", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "cache me"}}}

	first, err := c.CreateChatCompletion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.usageFor(first.Header().Get("X-Request-Id")) // settled: its answer is stored
	second, err := c.CreateChatCompletion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Header().Get("X-Llmgate-Cache") + "/" + second.Header().Get("X-Llmgate-Cache"); got != "miss/hit" {
		t.Fatalf("x-llmgate-cache: %s, want miss/hit", got)
	}
	if second.ID != first.ID || second.Choices[0].Message.Content != first.Choices[0].Message.Content || second.Usage.TotalTokens != first.Usage.TotalTokens {
		t.Fatalf("the hit is not the first answer: %+v vs %+v", second, first)
	}
	if n := e.up.Stats().Requests; n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}

	sreq := req
	sreq.Stream, sreq.StreamOptions = true, &openai.StreamOptions{IncludeUsage: true}
	s1, err := c.CreateChatCompletionStream(ctx, sreq)
	if err != nil {
		t.Fatal(err)
	}
	text1, u1 := streamText(t, s1)
	e.usageFor(s1.Header().Get("X-Request-Id"))
	s2, err := c.CreateChatCompletionStream(ctx, sreq)
	if err != nil {
		t.Fatal(err)
	}
	if h := s2.Header().Get("X-Llmgate-Cache"); h != "hit" {
		t.Errorf("stream hit: x-llmgate-cache %q", h)
	}
	if ct := s2.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream hit: Content-Type %q", ct)
	}
	text2, u2 := streamText(t, s2)
	if text1 == "" || text2 != text1 || u1 == nil || u2 == nil || u2.TotalTokens != u1.TotalTokens || u1.TotalTokens == 0 {
		t.Fatalf("stream hit differs: %q %+v vs %q %+v", text2, u2, text1, u1)
	}
	if n := e.up.Stats().Requests; n != 2 {
		t.Fatalf("upstream calls = %d, want 2 (one per form)", n)
	}

	firstRec := e.usageFor(first.Header().Get("X-Request-Id"))
	hit := e.usageFor(second.Header().Get("X-Request-Id"))
	if hit.UsageSource != "cache" || hit.ReplayOf != firstRec.RequestID || hit.CostPicoUSD == nil || *hit.CostPicoUSD != 0 || hit.Charge ||
		hit.PromptTokens != firstRec.PromptTokens || hit.CompletionTokens != firstRec.CompletionTokens || hit.Deployment != firstRec.Deployment {
		t.Fatalf("hit record: %+v\nfirst: %+v", hit, firstRec)
	}
	m := e.metrics()
	for _, want := range []string{`llmgate_response_cache_lookups_total{model="gpt-test",result="hit"} 2`, `llmgate_response_cache_lookups_total{model="gpt-test",result="miss"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestResponseCacheTenantsIsolated: an answer cached for one tenant never answers another's
// request, while another key of the same tenant gets it.
func TestResponseCacheTenantsIsolated(t *testing.T) {
	e := newEnv(t, withCache(replay.CacheOptions{Models: []string{"*"}}))
	a1, a2, b := e.newKey(keySpec{Name: "a1", Tenant: "acme"}), e.newKey(keySpec{Name: "a2", Tenant: "acme"}), e.newKey(keySpec{Name: "b", Tenant: "beta"})
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"whose answer"}]}`
	for i, tc := range []struct {
		key, want string
	}{{a1.Key, "miss"}, {b.Key, "miss"}, {a2.Key, "hit"}, {b.Key, "hit"}} {
		r, out := e.cachePost(tc.key, body)
		if r.StatusCode != 200 || r.Header.Get("X-Llmgate-Cache") != tc.want {
			t.Fatalf("request %d: HTTP %d, cache %q, want %s: %s", i, r.StatusCode, r.Header.Get("X-Llmgate-Cache"), tc.want, out)
		}
	}
	if n := e.up.Stats().Requests; n != 2 {
		t.Fatalf("upstream calls = %d, want 2 (one per tenant)", n)
	}
}

// TestResponseCacheControl: Cache-Control no-cache skips the lookup but stores the answer;
// no-store does neither.
func TestResponseCacheControl(t *testing.T) {
	e := newEnv(t, withCache(replay.CacheOptions{Models: []string{"gpt-test"}}))
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"fresh please"}]}`
	steps := []struct {
		cc, want string
		calls    int64
	}{
		{"no-store", "miss", 1}, // not stored
		{"", "miss", 2},         // so this one misses, and stores
		{"no-cache", "miss", 3}, // asks the upstream despite the entry
		{"", "hit", 3},
		{"No-Store, max-age=0", "miss", 4},
	}
	for i, s := range steps {
		var hdr []string
		if s.cc != "" {
			hdr = []string{"Cache-Control", s.cc}
		}
		r, out := e.cachePost(e.key, body, hdr...)
		if r.StatusCode != 200 || r.Header.Get("X-Llmgate-Cache") != s.want {
			t.Fatalf("step %d (%q): HTTP %d cache %q, want %s: %s", i, s.cc, r.StatusCode, r.Header.Get("X-Llmgate-Cache"), s.want, out)
		}
		if n := e.up.Stats().Requests; n != s.calls {
			t.Fatalf("step %d (%q): upstream calls %d, want %d", i, s.cc, n, s.calls)
		}
	}

	// Streams: SSE clients send Cache-Control: no-cache with every stream, which does not skip
	// the cache; X-Llmgate-Cache-Control says what the client wants of the gateway's.
	stream := `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"fresh please"}]}`
	for i, s := range []struct {
		hdr   []string
		want  string
		calls int64
	}{
		{[]string{"Cache-Control", "no-cache"}, "miss", 5},
		{[]string{"Cache-Control", "no-cache"}, "hit", 5},
		{[]string{"Cache-Control", "no-cache", "X-Llmgate-Cache-Control", "no-cache"}, "miss", 6},
		{[]string{"X-Llmgate-Cache-Control", "no-store"}, "miss", 7},
	} {
		r, out := e.cachePost(e.key, stream, s.hdr...)
		if r.StatusCode != 200 || r.Header.Get("X-Llmgate-Cache") != s.want {
			t.Fatalf("stream step %d: HTTP %d cache %q, want %s: %s", i, r.StatusCode, r.Header.Get("X-Llmgate-Cache"), s.want, out)
		}
		if n := e.up.Stats().Requests; n != s.calls {
			t.Fatalf("stream step %d: upstream calls %d, want %d", i, n, s.calls)
		}
	}
}

// TestResponseCacheLimits: an entry expires after the TTL, and an answer over the entry size
// limit is not kept.
func TestResponseCacheLimits(t *testing.T) {
	e := newEnv(t, withCache(replay.CacheOptions{Models: []string{"gpt-test"}, TTL: 300 * time.Millisecond}))
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"short lived"}]}`
	e.cachePost(e.key, body)
	if r, _ := e.cachePost(e.key, body); r.Header.Get("X-Llmgate-Cache") != "hit" {
		t.Fatal("no hit within the TTL")
	}
	time.Sleep(time.Second) // wide margin over the 300 ms TTL
	if r, _ := e.cachePost(e.key, body); r.Header.Get("X-Llmgate-Cache") != "miss" {
		t.Fatal("hit after the TTL")
	}

	small := newEnv(t, withCache(replay.CacheOptions{Models: []string{"gpt-test"}, MaxEntryBytes: 100}))
	small.cachePost(small.key, body)
	if r, out := small.cachePost(small.key, body); r.Header.Get("X-Llmgate-Cache") != "miss" || len(out) <= 100 {
		t.Fatalf("an answer of %d bytes over the 100-byte limit was cached", len(out))
	}
}

// TestResponseCacheOptIn: without the model in the config, a key or its tenant opts in.
func TestResponseCacheOptIn(t *testing.T) {
	e := newEnv(t, withCache(replay.CacheOptions{}))
	ctx := context.Background()
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"opt in"}]}`
	if r, _ := e.cachePost(e.key, body); r.Header.Get("X-Llmgate-Cache") != "" {
		t.Fatal("the cache applies without an opt-in")
	}
	k := e.newKey(keySpec{Name: "cached", Tenant: "solo"})
	sk, err := e.st.GetKey(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	sk.ResponseCache = true
	if err := e.st.UpdateKey(ctx, sk); err != nil {
		t.Fatal(err)
	}
	tk := e.newKey(keySpec{Name: "tenant", Tenant: "cachers"})
	if err := e.st.UpdateTenant(ctx, store.Tenant{ID: "cachers", Name: "cachers", ResponseCache: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the key cache's TTL (500 ms) passes
	for _, key := range []string{k.Key, tk.Key} {
		e.cachePost(key, body)
		if r, _ := e.cachePost(key, body); r.Header.Get("X-Llmgate-Cache") != "hit" {
			t.Fatalf("opted-in key: cache %q", r.Header.Get("X-Llmgate-Cache"))
		}
	}
}

// TestResponseCacheQuotas: a hit spends no tokens, so a token quota that refuses new work lets it
// through; it still counts against the request rate.
func TestResponseCacheQuotas(t *testing.T) {
	qo := quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "capped": {RPM: 3, TokensPerDay: 1200}}}
	e := newEnv(t, withCache(replay.CacheOptions{Models: []string{"gpt-test"}}), func(c *envConfig) { c.quota = &qo })
	k := e.newKey(keySpec{Name: "capped", UserID: "capped-user", Tier: "capped"})
	// About 1,000 completion tokens: the day's quota has no room for another such request.
	body := `{"model":"gpt-test","max_tokens":1100,"mock":{"chunks":10,"tokens_per_chunk":100},"messages":[{"role":"user","content":"big"}]}`
	other := strings.Replace(body, "big", "other", 1)
	for i, s := range []struct {
		body   string
		status int
		cache  string
	}{
		{body, 200, "miss"},
		{body, 200, "hit"},   // no room for its tokens, but a hit needs none
		{other, 429, "miss"}, // tokens per day: refused, which consumes nothing
		{body, 200, "hit"},   // the third request of the minute
		{body, 429, "hit"},   // the fourth: over the rate
	} {
		r, out := e.cachePost(k.Key, s.body)
		if r.StatusCode != s.status || r.Header.Get("X-Llmgate-Cache") != s.cache {
			t.Fatalf("request %d: HTTP %d cache %q, want %d %s: %s", i, r.StatusCode, r.Header.Get("X-Llmgate-Cache"), s.status, s.cache, bytes.TrimSpace(out))
		}
	}
	if n := e.up.Stats().Requests; n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
}

// TestResponseCachePricedHit: with price_percent, a hit costs that share of what its tokens cost
// at the model's price.
func TestResponseCachePricedHit(t *testing.T) {
	e := newEnv(t, withCache(replay.CacheOptions{Models: []string{"gpt-test"}, PricePercent: 25}), withPrices(testPrice("gpt-test")))
	body := `{"model":"gpt-test","messages":[{"role":"user","content":"priced"}]}`
	r1, _ := e.cachePost(e.key, body)
	r2, _ := e.cachePost(e.key, body)
	first, hit := e.usageFor(r1.Header.Get("X-Request-Id")), e.usageFor(r2.Header.Get("X-Request-Id"))
	if first.CostPicoUSD == nil || hit.CostPicoUSD == nil || *first.CostPicoUSD == 0 || *hit.CostPicoUSD != *first.CostPicoUSD/4 || hit.UsageSource != "cache" {
		t.Fatalf("hit cost %v of %v, want a quarter (source %q)", deref(hit.CostPicoUSD), deref(first.CostPicoUSD), hit.UsageSource)
	}
}

func deref(p *int64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// TestResponseCacheMessages: the Messages API is cached as it is answered (Anthropic's events,
// with their event lines), and a different anthropic-beta is a different request.
func TestResponseCacheMessages(t *testing.T) {
	e, up, _ := messagesEnv(t, withCache(replay.CacheOptions{Models: []string{"claude-sonnet-4-5"}}))
	body := `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello"}]}`
	send := func(hdr ...string) (*http.Response, string) {
		r := e.postMessages(context.Background(), "/messages", e.key, body, hdr...)
		out := readAll(t, r)
		if r.StatusCode != 200 {
			t.Fatalf("HTTP %d: %s", r.StatusCode, out)
		}
		e.usageFor(r.Header.Get("X-Request-Id"))
		return r, out
	}
	r1, out1 := send()
	r2, out2 := send()
	if r1.Header.Get("X-Llmgate-Cache") != "miss" || r2.Header.Get("X-Llmgate-Cache") != "hit" || out1 != out2 || !strings.Contains(out2, "event: message_stop") {
		t.Fatalf("messages stream: %q then %q; same answer %v", r1.Header.Get("X-Llmgate-Cache"), r2.Header.Get("X-Llmgate-Cache"), out1 == out2)
	}
	if r, _ := send("Anthropic-Beta", "prompt-caching-2024-07-31"); r.Header.Get("X-Llmgate-Cache") != "miss" {
		t.Fatal("another anthropic-beta got the cached answer")
	}
	if n := up.Stats().Requests; n != 2 {
		t.Fatalf("upstream calls = %d, want 2", n)
	}
}
