package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// captureClient is an OTLP client that keeps what it would send, decoded again as a receiver
// decodes it: the stock clients marshal the request with proto.Marshal.
type captureClient struct {
	batches [][]*tracepb.ResourceSpans
	fail    error
}

func (c *captureClient) Start(context.Context) error { return nil }
func (c *captureClient) Stop(context.Context) error  { return nil }
func (c *captureClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return err
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return err
	}
	cp := req.ResourceSpans
	// The stock conversion groups resources through a map: put them in one order.
	slices.SortFunc(cp, func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(a.GetResource().String(), b.GetResource().String())
	})
	c.batches = append(c.batches, cp)
	return c.fail
}

// recordedSpans makes spans of every shape the conversion knows, through real SDK tracers: two
// resources, two scopes, a continued remote parent with a tracestate, children, each attribute
// type, events, links, error and ok statuses and a dropped attribute. odd varies them so that
// two batches differ.
func recordedSpans(t *testing.T, odd bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	resA := resource.NewSchemaless(attribute.String("service.name", "a"), attribute.Int64("pid", 1))
	resB := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.40.0", attribute.String("service.name", "b"))
	tpA := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resA),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeCountLimit: 16, EventCountLimit: 4, LinkCountLimit: 4,
			AttributeValueLengthLimit: -1, AttributePerEventCountLimit: 4, AttributePerLinkCountLimit: 4}))
	tpB := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resB))
	tracerA := tpA.Tracer("gw", trace.WithInstrumentationVersion("1.2.3"), trace.WithSchemaURL("https://opentelemetry.io/schemas/1.40.0"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))
	tracerA2 := tpA.Tracer("other")
	tracerB := tpB.Tracer("gw")

	ts, _ := trace.ParseTraceState("vendor=opaque,other=1")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	name := "POST /v1/chat/completions"
	if odd {
		name = "GET /v1/models"
	}
	start := time.Unix(1_700_000_000, 123)
	ctx, server := tracerA.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.Bool("llmgate.stream", odd),
			attribute.Int64("gen_ai.usage.input_tokens", 11), attribute.Float64("ratio", 0.5),
			attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}),
			attribute.BoolSlice("bs", []bool{true}), attribute.Float64Slice("fs", []float64{1.5}),
			attribute.Slice("mixed", attribute.StringValue("s"), attribute.IntValue(3)),
			attribute.Map("m", attribute.String("k", "v")), attribute.ByteSlice("raw", []byte{0, 1}),
			attribute.KeyValue{Key: "empty"}))
	for _, n := range []string{"auth", "admission", "settlement"} {
		_, s := tracerA.Start(ctx, n)
		if odd && n == "admission" {
			s.SetStatus(codes.Error, "")
			s.SetAttributes(attribute.String("error.type", "rate_limited"))
		}
		s.End()
	}
	_, attempt := tracerA2.Start(ctx, "chat up-m", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.String("l", "1")}}))
	attempt.AddEvent("retry", trace.WithTimestamp(start.Add(time.Millisecond)), trace.WithAttributes(attribute.Int("n", 2)))
	attempt.SetStatus(codes.Ok, "")
	attempt.End()
	for i := range 20 { // over the limit of 16: some are dropped
		server.SetAttributes(attribute.Int(strings.Repeat("k", i+1), i))
	}
	server.SetStatus(codes.Error, "upstream failed")
	server.End(trace.WithTimestamp(start.Add(time.Second)))
	_, other := tracerB.Start(context.Background(), "elsewhere", trace.WithSpanKind(trace.SpanKindProducer))
	other.End()
	_, consumer := tracerB.Start(context.Background(), "consumer", trace.WithSpanKind(trace.SpanKindConsumer))
	consumer.End()
	return rec.Ended()
}

// TestExporterMatchesStock: the reusing conversion sends what the stock OTLP exporter sends for
// the same spans, batch after batch, including after a batch of another shape reused its
// messages; and the copies already sent do not change when the messages are reused.
func TestExporterMatchesStock(t *testing.T) {
	ctx := context.Background()
	stockClient, ourClient := &captureClient{}, &captureClient{}
	stock, err := otlptrace.New(ctx, stockClient)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := newOTLPExporter(ctx, ourClient)
	if err != nil {
		t.Fatal(err)
	}
	a, b := recordedSpans(t, false), recordedSpans(t, true)
	rev := slices.Clone(a)
	slices.Reverse(rev) // root spans where children were: nothing of a slot's last span may stay
	batches := [][]sdktrace.ReadOnlySpan{a, b, a[:3], append(slices.Clone(b), a...), a, rev}
	for i, batch := range batches {
		if err := stock.ExportSpans(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := ours.ExportSpans(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if !sameBatch(stockClient.batches[i], ourClient.batches[i]) {
			t.Fatalf("batch %d: ours differs from the stock exporter's\nstock: %s\nours:  %s", i, text(stockClient.batches[i]), text(ourClient.batches[i]))
		}
	}
	if n := len(ourClient.batches[0]); n != 2 {
		t.Fatalf("%d resources in the first batch, want 2", n)
	}
	if !sameBatch(ourClient.batches[0], ourClient.batches[4]) {
		t.Fatalf("the same spans again, after reuse, differ:\n%s\n%s", text(ourClient.batches[0]), text(ourClient.batches[4]))
	}
	if err := ours.ExportSpans(ctx, nil); err != nil || len(ourClient.batches) != len(batches) {
		t.Fatalf("an empty batch: err %v, %d uploads", err, len(ourClient.batches))
	}
	ourClient.fail = errors.New("collector down")
	if err := ours.ExportSpans(ctx, a); err == nil || !strings.Contains(err.Error(), "collector down") {
		t.Fatalf("a failed upload: err %v", err)
	}
	if err := ours.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExporterAllocatesNothingOnceWarm: converting a batch of spans like the ones before it
// allocates nothing; the stock exporter allocates for every span. (A tracestate the caller sent
// costs one string per span, which the gateway's benchmark traffic does not carry.)
func TestExporterAllocatesNothingOnceWarm(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "gw"))))
	tr := tp.Tracer("gw", trace.WithInstrumentationVersion("1"))
	sctx, server := tr.Start(ctx, "POST /v1/chat/completions", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.route", "/v1/chat/completions")))
	for _, n := range []string{"auth", "admission", "settlement"} {
		_, s := tr.Start(sctx, n)
		s.End()
	}
	_, s := tr.Start(sctx, "chat m", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("gen_ai.request.model", "m"),
		attribute.Int("llmgate.attempt", 1), attribute.Bool("llmgate.stream", true), attribute.Float64("f", 1)))
	s.SetStatus(codes.Error, "")
	s.End()
	server.SetAttributes(attribute.Int("http.response.status_code", 200))
	server.End()
	spans := rec.Ended()
	discard := discardClient{}
	ours, _ := newOTLPExporter(ctx, discard)
	stock, _ := otlptrace.New(ctx, discard)
	if n := testing.AllocsPerRun(100, func() { _ = ours.ExportSpans(ctx, spans) }); n != 0 {
		t.Errorf("%v allocations per batch of %d spans, want 0", n, len(spans))
	}
	if n := testing.AllocsPerRun(100, func() { _ = stock.ExportSpans(ctx, spans) }); n < float64(len(spans)) {
		t.Errorf("the stock exporter: %v allocations per batch; the measure cannot see conversion", n)
	}
}

func sameBatch(a, b []*tracepb.ResourceSpans) bool {
	return slices.EqualFunc(a, b, func(x, y *tracepb.ResourceSpans) bool { return proto.Equal(x, y) })
}

func text(rs []*tracepb.ResourceSpans) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(prototext.Format(r))
	}
	return b.String()
}

// discardClient sends nothing.
type discardClient struct{}

func (discardClient) Start(context.Context) error                                  { return nil }
func (discardClient) Stop(context.Context) error                                   { return nil }
func (discardClient) UploadTraces(context.Context, []*tracepb.ResourceSpans) error { return nil }

// TestHTTPJSONFromEnvironment: when the environment asks the HTTP exporter for OTLP/JSON
// (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json), the spans still arrive, with their names: the
// stock client encodes JSON from the messages' fields, which the protobuf encoder leaves empty.
func TestHTTPJSONFromEnvironment(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
	tr, err := New(context.Background(), Options{Enabled: true, Endpoint: srv.URL, Sampler: SamplerAlwaysOn}, "1.2.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	exported(t, tr)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || !strings.HasPrefix(bodies[0], "application/json ") || !strings.Contains(bodies[0], `"probe"`) {
		t.Fatalf("exports %q: want one JSON export holding the span \"probe\"", bodies)
	}
}
