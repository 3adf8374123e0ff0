package tracing

import (
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestSpanCostsTwoAllocations: once warm, a child span of the request path, started with its
// attributes set and ended into the batcher, costs two allocations (the small ref the caller
// holds and the context that carries it, which Start must return), not the SDK span's four: its
// record is pooled and goes back once encoded.
func TestSpanCostsTwoAllocations(t *testing.T) {
	tr, err := New(context.Background(), Options{Enabled: true, Endpoint: "http://127.0.0.1:1", Sampler: SamplerAlwaysOn}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Shutdown(context.Background()) }()
	ctx, server := tr.Tracer().Start(context.Background(), "server")
	defer server.End()
	kv := []attribute.KeyValue{attribute.String("gen_ai.request.model", "m"), attribute.Int("llmgate.attempt", 1)}
	child := func() {
		_, s := tr.Tracer().Start(ctx, "auth")
		s.SetAttributes(kv...)
		s.End()
	}
	for range 64 {
		child()
	}
	// The export of what queued (to a closed port: it fails) gives the records back to the pool.
	_ = tr.ForceFlush(context.Background())
	if n := testing.AllocsPerRun(200, child); n > 2.5 {
		t.Errorf("%v allocations per child span, want at most 2", n)
	}
	if !server.SpanContext().IsSampled() || !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("the server span is not sampled")
	}
}

// testTracer is a tracer as New makes it, exporting through ours to client; each batch is
// handed to also, as the SDK's spans of the same content, before it is encoded.
func testTracer(t *testing.T, s sdktrace.Sampler, client otlptrace.Client, o batchOptions, also func([]sdktrace.ReadOnlySpan)) *tracer {
	t.Helper()
	exp, err := newOTLPExporter(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracer{sampler: s, res: resource.NewSchemaless(attribute.String("service.name", "gw"), attribute.Int("pid", 7)),
		scope: instrumentation.Scope{Name: instrumentationName, Version: "1.2.3"}}
	tr.provider = &provider{t: tr}
	tr.q = startBatcher(func(ctx context.Context, spans []*span) error {
		if also != nil {
			also(snapshots(tr, spans))
		}
		return exp.exportOwn(ctx, tr.res, tr.scope, spans)
	}, exp.Shutdown, release, o)
	return tr
}

// snapshots are the SDK's read-only spans saying what spans say.
func snapshots(tr *tracer, spans []*span) []sdktrace.ReadOnlySpan {
	out := make([]sdktrace.ReadOnlySpan, 0, len(spans))
	for _, s := range spans {
		out = append(out, tracetest.SpanStub{Name: s.name, SpanContext: s.sc, Parent: s.parent, SpanKind: s.kind,
			StartTime: s.start, EndTime: s.end, Attributes: slices.Clone(s.attrs[:s.n]), DroppedAttributes: s.dropped,
			Status: sdktrace.Status{Code: s.status, Description: s.desc}, Resource: tr.res, InstrumentationScope: tr.scope}.Snapshot())
	}
	return out
}

// TestOwnSpansMatchStock: the spans of the tracer, of every shape the gateway makes and more
// (a continued remote parent with a tracestate, children, each kind, each attribute type, a key
// set twice, an invalid and too many attributes, a rename, statuses, given times), arrive as the
// stock exporter sends the same spans, batch after batch.
func TestOwnSpansMatchStock(t *testing.T) {
	ctx := context.Background()
	stockClient, ourClient := &captureClient{}, &captureClient{}
	stock, err := otlptrace.New(ctx, stockClient)
	if err != nil {
		t.Fatal(err)
	}
	tr := testTracer(t, sdktrace.AlwaysSample(), ourClient, batchOptions{maxQueue: 64, maxBatch: 5, delay: time.Hour, timeout: 10 * time.Second},
		func(spans []sdktrace.ReadOnlySpan) {
			if err := stock.ExportSpans(ctx, spans); err != nil {
				t.Error(err)
			}
		})
	ts, _ := trace.ParseTraceState("vendor=opaque,other=1")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	start := time.Unix(1_700_000_000, 123)
	for i := range 3 {
		rctx := trace.ContextWithRemoteSpanContext(ctx, remote)
		if i == 1 {
			rctx = ctx
		}
		sctx, server := tr.Start(rctx, "POST /v1/chat/completions", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
			trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.Bool("llmgate.stream", i == 2),
				attribute.Int64("gen_ai.usage.input_tokens", 11), attribute.Float64("ratio", 0.5),
				attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}),
				attribute.BoolSlice("bs", []bool{true}), attribute.Float64Slice("fs", []float64{1.5}),
				attribute.Slice("mixed", attribute.StringValue("s"), attribute.IntValue(3)),
				attribute.Map("m", attribute.String("k", "v")), attribute.ByteSlice("raw", []byte{0, 1}),
				attribute.KeyValue{Key: "empty"}, attribute.KeyValue{}))
		for _, n := range []string{"auth", "admission", "settlement"} {
			_, s := tr.Start(sctx, n)
			if n == "admission" {
				s.SetStatus(codes.Error, "")
				s.SetAttributes(attribute.String("error.type", "rate_limited"))
			}
			s.End()
		}
		_, attempt := tr.Start(sctx, "chat", trace.WithSpanKind(trace.SpanKindClient))
		attempt.SetName("chat up-m")
		attempt.SetStatus(codes.Ok, "")
		attempt.SetStatus(codes.Error, "lower: ignored")
		attempt.End()
		for j := range 40 { // over the room: some are dropped
			server.SetAttributes(attribute.Int(strings.Repeat("k", j%35+1), j))
		}
		server.SetAttributes(attribute.String("http.request.method", "PUT"))
		server.SetStatus(codes.Error, "upstream failed")
		server.End(trace.WithTimestamp(start.Add(time.Second)))
		server.SetAttributes(attribute.String("after", "end")) // ignored
		_, p := tr.Start(ctx, "elsewhere", trace.WithSpanKind(trace.SpanKindProducer))
		p.End()
		_, c := tr.Start(ctx, "consumer", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot())
		c.End()
	}
	if err := tr.q.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ourClient.batches) < 4 || len(ourClient.batches) != len(stockClient.batches) {
		t.Fatalf("%d batches sent, the stock exporter %d", len(ourClient.batches), len(stockClient.batches))
	}
	for i := range ourClient.batches {
		if !sameBatch(stockClient.batches[i], ourClient.batches[i]) {
			t.Fatalf("batch %d: ours differs from the stock exporter's\nstock: %s\nours:  %s", i, text(stockClient.batches[i]), text(ourClient.batches[i]))
		}
	}
}

// fixedIDs gives the SDK's tracer the ids ours chose, so that both decide on the same trace ids.
type fixedIDs struct {
	tid trace.TraceID
	sid trace.SpanID
}

func (f *fixedIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID)  { return f.tid, f.sid }
func (f *fixedIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return f.sid }

// TestOwnSamplingMatchesSDK: for every sampler, on new traces and under remote parents sampled
// or not, with and without a tracestate, and for their children, the tracer's spans have the
// span context (ids, flags, tracestate) and the recording state the SDK's tracer gives them with
// the same sampler on the same ids.
func TestOwnSamplingMatchesSDK(t *testing.T) {
	half := 0.5
	ts, _ := trace.ParseTraceState("k=v")
	for _, name := range []string{SamplerAlwaysOn, SamplerAlwaysOff, SamplerTraceIDRatio, SamplerParentBasedAlwaysOn,
		SamplerParentBasedAlwaysOff, SamplerParentBasedTraceIDRatio} {
		s := sampler(Options{Sampler: name, SamplerRatio: &half})
		ours := testTracer(t, s, discardClient{}, batchOptions{maxQueue: 4096, maxBatch: 512, delay: time.Hour, timeout: time.Second}, nil)
		ids := &fixedIDs{}
		sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithIDGenerator(ids)).Tracer("t")
		sampled := 0
		for i := range 400 {
			ctx := context.Background()
			var tid trace.TraceID
			binary.BigEndian.PutUint64(tid[:8], uint64(i)+1)
			binary.BigEndian.PutUint64(tid[8:], uint64(i)*0x9E3779B97F4A7C15)
			if i%4 != 0 { // a remote parent, sampled or not, with a tracestate or not
				cfg := trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{9}, Remote: true}
				if i%4 != 1 {
					cfg.TraceFlags = trace.FlagsSampled
				}
				if i%4 == 3 {
					cfg.TraceState = ts
				}
				ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
			}
			octx, o := ours.Start(ctx, "server", trace.WithSpanKind(trace.SpanKindServer))
			ids.tid, ids.sid = o.SpanContext().TraceID(), o.SpanContext().SpanID()
			sctx, p := sdk.Start(ctx, "server", trace.WithSpanKind(trace.SpanKindServer))
			_, oc := ours.Start(octx, "auth")
			ids.sid = oc.SpanContext().SpanID()
			_, pc := sdk.Start(sctx, "auth")
			for _, pair := range [][2]trace.Span{{o, p}, {oc, pc}} {
				if !pair[0].SpanContext().Equal(pair[1].SpanContext()) || pair[0].IsRecording() != pair[1].IsRecording() {
					t.Fatalf("%s, case %d: ours %+v (recording %v), the SDK's %+v (recording %v)", name, i,
						pair[0].SpanContext(), pair[0].IsRecording(), pair[1].SpanContext(), pair[1].IsRecording())
				}
			}
			if o.SpanContext().IsSampled() {
				sampled++
			}
			oc.End()
			o.End()
		}
		if name == SamplerTraceIDRatio && (sampled < 100 || sampled > 300) {
			t.Errorf("%s at 0.5: %d of 400 sampled", name, sampled)
		}
		_ = ours.q.Shutdown(context.Background())
	}
}

// TestOwnSpansKeepTheirAttributes: requests traced at once on many goroutines, their span records
// reused from batch to batch, each export decoded: every span carries its own request's
// attribute and parent, none another's, even though each request also writes to its spans after
// ending them (which must do nothing). Run under -race, it also checks that a record is reused
// only after its export.
func TestOwnSpansKeepTheirAttributes(t *testing.T) {
	var mu sync.Mutex
	want := map[trace.TraceID]string{} // a request's trace, its id
	servers := map[trace.TraceID]trace.SpanID{}
	client := &checkingClient{check: func(rs []*tracepb.ResourceSpans) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			for _, ss := range r.ScopeSpans {
				for _, s := range ss.Spans {
					var tid trace.TraceID
					copy(tid[:], s.TraceId)
					var got string
					for _, kv := range s.Attributes {
						if kv.Key == "llmgate.request_id" {
							got = kv.Value.GetStringValue()
						}
					}
					if got != want[tid] || len(s.Attributes) != 2 || s.Name == "late" || s.Status.GetMessage() != "" {
						t.Errorf("span %s of trace %s: request id %q, %d attributes; want %q and 2", s.Name, tid, got, len(s.Attributes), want[tid])
					}
					if sid := servers[tid]; s.Name != "server" && string(s.ParentSpanId) != string(sid[:]) {
						t.Errorf("span %s of trace %s: parent %x, want %s", s.Name, tid, s.ParentSpanId, sid)
					}
				}
			}
		}
	}}
	tr := testTracer(t, sdktrace.AlwaysSample(), client, batchOptions{maxQueue: 100000, maxBatch: 7, delay: time.Millisecond, timeout: 10 * time.Second}, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev []trace.Span // the spans of the request before, ended and exported
			for i := range 100 {
				id := strconv.Itoa(g) + "-" + strconv.Itoa(i)
				ctx, server := tr.Start(context.Background(), "server")
				mu.Lock()
				want[server.SpanContext().TraceID()], servers[server.SpanContext().TraceID()] = id, server.SpanContext().SpanID()
				mu.Unlock()
				var ended []trace.Span
				for _, n := range []string{"auth", "admission", "chat m", "settlement"} {
					_, s := tr.Start(ctx, n)
					s.SetAttributes(attribute.String("llmgate.request_id", id), attribute.Int("n", i))
					// Late calls on the spans of the request before, whose records are likely this
					// request's now: they must do nothing.
					for _, p := range prev {
						p.SetAttributes(attribute.String("llmgate.request_id", "late"), attribute.Int("late", i))
						p.SetName("late")
						p.SetStatus(codes.Error, "late")
						p.End()
					}
					s.End()
					ended = append(ended, s)
				}
				server.SetAttributes(attribute.String("llmgate.request_id", id), attribute.String("http.route", "/v1/chat/completions"))
				server.End()
				prev = append(ended, server)
				if err := tr.q.ForceFlush(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := tr.q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if client.spans != 8*100*5 {
		t.Fatalf("%d spans exported, want %d", client.spans, 8*100*5)
	}
}

// checkingClient decodes each export as a receiver does and hands it to check.
type checkingClient struct {
	check func([]*tracepb.ResourceSpans)
	spans int
}

func (c *checkingClient) Start(context.Context) error { return nil }
func (c *checkingClient) Stop(context.Context) error  { return nil }
func (c *checkingClient) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return err
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return err
	}
	for _, r := range req.ResourceSpans {
		for _, ss := range r.ScopeSpans {
			c.spans += len(ss.Spans)
		}
	}
	c.check(req.ResourceSpans)
	return nil
}
