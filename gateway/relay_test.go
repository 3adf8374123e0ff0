package gateway

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/apikey"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
	"github.com/llmgate/llmgate/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixtureProvider answers every call with a recorded upstream SSE stream, handed out one byte per
// read so that every event is split across reads (whole: in reads as large as the reader asks).
type fixtureProvider struct {
	sse   []byte
	whole bool
	mu    sync.Mutex
	seen  [][]byte
}

func (p *fixtureProvider) Do(_ context.Context, req *providers.Request) (*http.Response, error) {
	p.mu.Lock()
	p.seen = append(p.seen, req.Body)
	p.mu.Unlock()
	var body io.Reader = iotest.OneByteReader(bytes.NewReader(p.sse))
	if p.whole {
		body = bytes.NewReader(p.sse)
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(body)}, nil
}

// usageLog collects usage records in memory.
type usageLog struct {
	mu   sync.Mutex
	recs []store.UsageRecord
}

func (u *usageLog) Record(r store.UsageRecord) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.recs = append(u.recs, r)
	return true
}

func newTestGateway(t testing.TB, p providers.Provider) (*Gateway, string, *usageLog) {
	g, key, _, u := newGatewayOver(t, p, Options{})
	return g, key, u
}

// newGatewayOver is a gateway with opts over its own SQLite store, with one valid key (returned
// in plain) and one public model "m" served by p as "up-m"; its usage records go to the log.
func newGatewayOver(t testing.TB, p providers.Provider, opts Options) (*Gateway, string, store.Store, *usageLog) {
	t.Helper()
	st, err := sqlite.New(context.Background(), filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	plain, hash, prefix := apikey.New()
	if err := st.CreateKey(context.Background(), store.APIKey{ID: "k1", Prefix: prefix, TenantID: store.DefaultTenant, CreatedAt: time.Now()}, hash); err != nil {
		t.Fatal(err)
	}
	router, err := providers.NewRouter([]providers.ModelConfig{{Name: "m", Deployments: []providers.DeploymentConfig{{Provider: "fx", Model: "up-m"}}}}, providers.RoutingConfig{},
		map[string]providers.Provider{"fx": p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &usageLog{}
	est, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	g := New(Deps{Store: st, Keys: st, Ledger: st, Limiter: quota.NewMemory(quota.LimiterOptions{}), Router: router, Usage: u, Tokens: est,
		Metrics: NewMetrics(prometheus.NewRegistry(), 0), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, opts)
	return g, plain, st, u
}

// relayFixture sends body through a gateway whose upstream answers with the SSE fixture at path
// (one byte per read), and returns what the client received and the usage records written.
func relayFixture(t *testing.T, path, body string) ([]byte, []store.UsageRecord) {
	t.Helper()
	sse, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, key, u := newTestGateway(t, &fixtureProvider{sse: sse})
	srv := httptest.NewServer(g.Handler())
	_, got := postChat(t, srv, key, body)
	srv.Close() // waits for the handler, and so for settle
	u.mu.Lock()
	defer u.mu.Unlock()
	return got, u.recs
}

// postChat sends a chat completion body with key to srv and returns the answer's status and
// body, read to its end.
func postChat(t *testing.T, srv *httptest.Server, key, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, got
}

func TestStreamGolden(t *testing.T) {
	cases := []struct {
		fixture string
		body    string
	}{
		// the client did not ask for usage: the gateway injects it and must hide it again
		{"usage_injected", `{"model":"m","stream":true,"messages":[]}`},
		// the client asked for usage: it sees the usage chunk and the usage fields
		{"usage_requested", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			got, recs := relayFixture(t, "testdata/usage_injected.sse", tc.body)
			golden := filepath.Join("testdata", tc.fixture+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("client saw:\n%s\nwant:\n%s", got, want)
			}
			if len(recs) != 1 {
				t.Fatalf("%d usage records", len(recs))
			}
			r := recs[0]
			if r.PromptTokens != 11 || r.CompletionTokens != 2 || r.CachedTokens != 4 || r.ReasoningTokens != 1 || r.UsageSource != "provider" || r.Status != 200 {
				t.Errorf("record = %+v", r)
			}
		})
	}
}

// TestCompatibleStreamsBilledOnce: OpenAI-compatible providers put stream usage in different
// places — a chunk of its own, the finish chunk (GLM), the choice (Moonshot, followed by a
// duplicate), every chunk cumulatively (vLLM) — and spell cached tokens differently (DeepSeek).
// Each answer is billed once, from its final usage, and a client that did not ask for usage sees
// none of it. The fixtures follow PROVIDERS.md §6.
func TestCompatibleStreamsBilledOnce(t *testing.T) {
	for _, tc := range []struct {
		fixture                               string
		prompt, completion, cached, reasoning int64
		content                               string
	}{
		{"moonshot", 19, 3, 0, 0, "Hello there"},
		{"glm", 12, 7, 4, 5, "Hi"},
		{"vllm", 15, 3, 8, 0, "Hi you"},
		{"deepseek", 30, 9, 24, 6, "Answer"},
		{"ollama", 10, 2, 0, 0, "Yes"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			got, recs := relayFixture(t, filepath.Join("testdata", "compat", tc.fixture+".sse"),
				`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			if strings.Contains(string(got), `"usage"`) || !strings.HasSuffix(string(got), "data: [DONE]\n\n") {
				t.Errorf("the client, who did not ask for usage, saw:\n%s", got)
			}
			var content strings.Builder
			for _, line := range strings.Split(string(got), "\n") {
				if strings.HasPrefix(line, "data: {") {
					content.WriteString(gjsonString(line[6:], "choices.0.delta.content"))
				}
			}
			if content.String() != tc.content {
				t.Errorf("content %q, want %q", content.String(), tc.content)
			}
			if len(recs) != 1 {
				t.Fatalf("%d usage records", len(recs))
			}
			r := recs[0]
			if r.PromptTokens != tc.prompt || r.CompletionTokens != tc.completion || r.CachedTokens != tc.cached ||
				r.ReasoningTokens != tc.reasoning || r.UsageSource != "provider" {
				t.Errorf("record: prompt %d completion %d cached %d reasoning %d (%s), want %d %d %d %d from the provider",
					r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens, r.UsageSource,
					tc.prompt, tc.completion, tc.cached, tc.reasoning)
			}
		})
	}
}

func gjsonString(json, path string) string { return gjson.Get(json, path).String() }

// BenchmarkRelayStream relays a 200-chunk stream whose usage the gateway injected (and so hides)
// through the whole handler, without a network: per op, one request, its 202 events and settle.
func BenchmarkRelayStream(b *testing.B) {
	var sse bytes.Buffer
	for i := 0; i < 200; i++ {
		sse.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}],"usage":null}` + "\n\n")
	}
	sse.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":200,"total_tokens":211}}` + "\n\n")
	sse.WriteString("data: [DONE]\n\n")
	g, key, _ := newTestGateway(b, &fixtureProvider{sse: sse.Bytes(), whole: true})
	g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults() // no RPM cap
	h := g.Handler()
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	b.SetBytes(int64(sse.Len()))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || !bytes.HasSuffix(w.Body.Bytes(), []byte("data: [DONE]\n\n")) {
			b.Fatalf("status %d, body %q", w.Code, w.Body.Bytes())
		}
	}
}

// eventSource is an upstream SSE body of n content chunks made by repeating one event, then the
// usage chunk and [DONE]: a stream as long as a benchmark needs, read without allocating.
type eventSource struct {
	event, tail []byte
	n, off      int // events left to hand out; offset into the current one
}

func newEventSource(n int) *eventSource {
	return &eventSource{n: n,
		event: []byte(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}],"usage":null}` + "\n\n"),
		tail: []byte(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}` + "\n\n" +
			"data: [DONE]\n\n")}
}

func (s *eventSource) Read(p []byte) (int, error) {
	cur := s.event
	if s.n == 0 {
		cur = s.tail
	}
	if s.off == len(cur) {
		if s.n == 0 {
			return 0, io.EOF
		}
		if s.n--; s.n == 0 {
			cur = s.tail
		}
		s.off = 0
	}
	n := copy(p, cur[s.off:])
	s.off += n
	return n, nil
}

// eventsProvider answers every call with the next body of bodies.
type eventsProvider struct{ next func() io.Reader }

func (p *eventsProvider) Do(context.Context, *providers.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(p.next())}, nil
}

// discardWriter is a client connection that takes every write and flush without keeping the
// bytes; like net/http's own response writer it supports write deadlines.
type discardWriter struct {
	h       http.Header
	status  int
	written int
}

func (w *discardWriter) Header() http.Header              { return w.h }
func (w *discardWriter) WriteHeader(code int)             { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error)      { w.written += len(p); return len(p), nil }
func (w *discardWriter) Flush()                           {}
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }

// relayEvents sends one streamed chat request through h whose upstream answers with n content
// chunks, and checks that it was answered.
func relayEvents(tb testing.TB, h http.Handler, key string, p *eventsProvider, n int, includeUsage bool) {
	p.next = func() io.Reader { return newEventSource(n) }
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	if includeUsage {
		body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.status != 200 || w.written < n*100 {
		tb.Fatalf("status %d, %d bytes written for %d events", w.status, w.written, n)
	}
}

// BenchmarkRelayEvent relays one stream of b.N events through the whole handler, so that an op
// is one relayed event and the request's own cost is spread over all of them: allocs/op is the
// allocations per event of the relay (0). "injected": the client did not ask for usage, so the
// gateway splices "usage":null out of every chunk; "asked": the chunks pass as they came.
func BenchmarkRelayEvent(b *testing.B) {
	for _, asked := range []bool{false, true} {
		name := "injected"
		if asked {
			name = "asked"
		}
		b.Run(name, func(b *testing.B) {
			p := &eventsProvider{}
			g, key, _ := newTestGateway(b, p)
			g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults()
			h := g.Handler()
			relayEvents(b, h, key, p, 10, asked) // warm the pools
			b.ReportAllocs()
			b.ResetTimer()
			relayEvents(b, h, key, p, b.N, asked)
		})
	}
}

// TestRelayAllocatesNothingPerEvent: relaying a stream costs the same allocations however many
// events it has (beyond the answer text's buffer growing now and then), on the path where the
// gateway splices out the usage it injected and on the one where the chunks pass as they came.
// A count of allocations, not a time: BenchmarkRelayEvent shows the same figure as allocs/op.
func TestRelayAllocatesNothingPerEvent(t *testing.T) {
	for _, asked := range []bool{false, true} {
		p := &eventsProvider{}
		g, key, _ := newTestGateway(t, p)
		g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults()
		h := g.Handler()
		allocs := func(n int) float64 {
			return testing.AllocsPerRun(5, func() { relayEvents(t, h, key, p, n, asked) })
		}
		short, long := allocs(1000), allocs(3000)
		// 2,000 more events; the answer text (5 bytes an event) may double its buffer twice more.
		if extra := long - short; extra > 20 {
			t.Errorf("include_usage asked %v: %.0f allocations for 1,000 events, %.0f for 3,000: %.2f per event, want 0",
				asked, short, long, extra/2000)
		}
	}
}

// BenchmarkRelayWhole sends one non-stream chat request through the whole handler, without a
// network: per op, the request's parse, key check, routing, the answer with its usage, and
// settlement. allocs/op is the request path's own allocations.
func BenchmarkRelayWhole(b *testing.B) {
	answer := []byte(`{"id":"c1","object":"chat.completion","created":1,"model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
	g, key, _ := newTestGateway(b, &wholeProvider{body: answer})
	g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults() // no RPM cap
	h := g.Handler()
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != 200 || w.written != len(answer) {
			b.Fatalf("status %d, %d bytes", w.status, w.written)
		}
	}
}

// wholeProvider answers every call with body, a whole JSON answer.
type wholeProvider struct{ body []byte }

func (p *wholeProvider) Do(context.Context, *providers.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(p.body))}, nil
}

// TestRelayWholeAllocations bounds the allocations of one non-stream request through the whole
// handler (BenchmarkRelayWhole's op, whose harness makes about 20 of them): a count, not a
// time. The request path once made 77; a change that adds some back should say why here.
func TestRelayWholeAllocations(t *testing.T) {
	answer := []byte(`{"id":"c1","object":"chat.completion","created":1,"model":"up-m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
	g, key, _ := newTestGateway(t, &wholeProvider{body: answer})
	g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults()
	h := g.Handler()
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	allocs := testing.AllocsPerRun(200, func() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != 200 {
			t.Fatalf("status %d", w.status)
		}
	})
	// 59 today, a few more under -race (see raceEnabled), with room for the pooled buffers.
	limit := 62.0
	if raceEnabled {
		limit = 72
	}
	if allocs > limit {
		t.Errorf("one non-stream request: %.0f allocations, want at most %.0f", allocs, limit)
	}
	t.Logf("%.1f allocations per request", allocs)
}

// BenchmarkRelayStreamRequest sends one streamed chat request of 20 events through the whole
// handler to a connection that discards them (no recorder's copies): per op, the stream path's
// own cost per request, as BenchmarkRelayWhole's is the non-stream one's.
func BenchmarkRelayStreamRequest(b *testing.B) {
	p := &eventsProvider{}
	g, key, _ := newTestGateway(b, p)
	g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults()
	h := g.Handler()
	b.ReportAllocs()
	for b.Loop() {
		relayEvents(b, h, key, p, 20, false)
	}
}
