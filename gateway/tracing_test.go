package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
