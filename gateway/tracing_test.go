package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/internal/tracing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// TestTracingOffAllocatesNothing: with tracing off, every tracing step of the request path is a
// nil check: no allocation at all. The same steps with a tracer do allocate, which shows the
// measure can see them.
func TestTracingOffAllocatesNothing(t *testing.T) {
	d := &providers.Deployment{ID: "p/m", ProviderName: "p", Model: "m"}
	hdr := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	cost := int64(42)
	steps := func(g *Gateway, x *exchange) func() {
		return func() {
			endSpan(g.startSpan(x.ctx, "auth"), nil)
			x.traceRequest(request{model: "m", maxTokens: 5, stream: true})
			sp := g.startSpan(x.ctx, "admission")
			endSpan(sp, nil)
			a, h := x.startAttempt(d, providers.ChatCompletions, 1, hdr)
			if len(h) == 0 {
				t.Fatal("attempt headers lost")
			}
			endAttempt(a, 200, "")
			sp = g.startSpan(x.ctx, "settlement")
			x.traceSettled()
			endSpan(sp, nil)
		}
	}
	rec := store.UsageRecord{Model: "m", Deployment: "p/m", PromptTokens: 3, CompletionTokens: 4, CostPicoUSD: &cost}
	off := &Gateway{}
	x := &exchange{g: off, ctx: context.Background(), id: &Identity{}, rec: rec, ep: providers.ChatCompletions}
	if n := testing.AllocsPerRun(1000, steps(off, x)); n != 0 {
		t.Errorf("tracing off: %v allocations per request's tracing steps, want 0", n)
	}

	tp := sdktrace.NewTracerProvider() // no exporter: the spans are made and dropped
	defer tp.Shutdown(context.Background())
	on := &Gateway{tracer: tp.Tracer("test")}
	ctx, server := on.tracer.Start(context.Background(), "server")
	defer server.End()
	y := &exchange{g: on, ctx: ctx, id: &Identity{}, rec: rec, ep: providers.ChatCompletions, span: server}
	if n := testing.AllocsPerRun(100, steps(on, y)); n == 0 {
		t.Error("tracing on: no allocations measured; the measure cannot see tracing work")
	}
}

// BenchmarkTracing serves a 20-chunk stream through the whole handler, without a network to the
// upstream, with tracing off and with every request traced and exported over OTLP/HTTP to a
// receiver on loopback that discards it: the difference is what tracing costs a request. The
// process's CPU time per request (cpu-µs/op) counts the exporting goroutines too.
func BenchmarkTracing(b *testing.B) {
	var sse bytes.Buffer
	for i := range 20 {
		sse.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"content":"w` + strconv.Itoa(i) + ` "},"finish_reason":null}]}` + "\n\n")
	}
	sse.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":20,"total_tokens":31}}` + "\n\n")
	sse.WriteString("data: [DONE]\n\n")
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer sink.Close()
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			g, key, _ := newTestGateway(b, &fixtureProvider{sse: sse.Bytes(), whole: true})
			g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults()
			if on {
				tr, err := tracing.New(context.Background(), tracing.Options{Enabled: true, Endpoint: sink.URL, Sampler: tracing.SamplerAlwaysOn}, "bench", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Shutdown(context.Background())
				g.tracer = tr.Tracer()
			}
			h := g.Handler()
			body := `{"model":"m","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`
			b.ReportAllocs()
			cpu0, n := processCPU(), 0
			for b.Loop() {
				n++
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/op")
			}
		})
	}
}

// TestTracingBuffersStayWithTheirRequest: the buffers that gather a request's span attributes are
// reused from request to request; with requests traced at once, each server span and each
// attempt span still carry only their own request's values (its request id, its max_tokens).
func TestTracingBuffersStayWithTheirRequest(t *testing.T) {
	sse := `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"content":"w"},"finish_reason":null}]}` + "\n\n" +
		`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}` + "\n\ndata: [DONE]\n\n"
	g, key, _ := newTestGateway(t, &fixtureProvider{sse: []byte(sse), whole: true})
	g.quota = quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}}}.WithDefaults()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	g.tracer = tp.Tracer("test")
	h := g.Handler()
	var mu sync.Mutex
	want := map[trace.TraceID][2]string{} // request id, max_tokens
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				mt := strconv.Itoa(w*100 + i + 1)
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"max_tokens":`+mt+`,"messages":[{"role":"user","content":"hi"}]}`))
				req.Header.Set("Authorization", "Bearer "+key)
				rw := httptest.NewRecorder()
				h.ServeHTTP(rw, req)
				if rw.Code != 200 {
					t.Errorf("status %d", rw.Code)
					return
				}
				tid, err := trace.TraceIDFromHex(rw.Header().Get("Traceparent")[3:35])
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[tid] = [2]string{rw.Header().Get("X-Request-Id"), mt}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	servers, attempts := 0, 0
	for _, s := range rec.Ended() {
		w := want[s.SpanContext().TraceID()]
		got := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value.Emit()
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			servers++
			if got[attrRequestID] != w[0] || got[attrGenAIMaxTokens] != w[1] {
				t.Errorf("server span of trace %s: request id %q, max_tokens %q; want %q, %q", s.SpanContext().TraceID(), got[attrRequestID], got[attrGenAIMaxTokens], w[0], w[1])
			}
		case trace.SpanKindClient:
			attempts++
			if got[attrAttempt] != "1" || got[attrHTTPStatus] != "200" || got[attrErrorType] != "" || len(got) != 6 {
				t.Errorf("attempt span of trace %s: attributes %v", s.SpanContext().TraceID(), got)
			}
		}
	}
	if servers != 180 || attempts != 180 {
		t.Fatalf("%d server and %d attempt spans, want 180 each", servers, attempts)
	}
}
