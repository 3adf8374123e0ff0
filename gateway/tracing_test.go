package gateway

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/llmgate/llmgate/providers"
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
			x.traceAuthenticated()
			x.traceRequest(request{model: "m", maxTokens: 5, stream: true})
			sp := g.startSpan(x.ctx, "admission")
			endSpan(sp, nil)
			a, h := x.startAttempt(d, providers.ChatCompletions, 1, hdr)
			if len(h) == 0 {
				t.Fatal("attempt headers lost")
			}
			endAttempt(a, 200, "", usage{prompt: 3, completion: 4, found: true})
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
