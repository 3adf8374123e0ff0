package bench

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// tracingRounds is a report of three rounds with the gateway+tracing path after gateway+redis,
// whose RPS per round are given for direct, gateway and gateway+tracing.
func tracingRounds(direct, gateway, traced [3]float64) *benchReport {
	r := &benchReport{Settings: benchSettings{Concurrency: 32}}
	for _, name := range []string{"direct", "baseline", "gateway", nameGatewayRedis, nameGatewayTracing} {
		r.Paths = append(r.Paths, &pathResult{Name: name})
	}
	for i := range 3 {
		r.Paths[0].Rounds = append(r.Paths[0].Rounds, pathRound{RPS: direct[i], P50: benchDuration(100 * time.Microsecond)})
		r.Paths[1].Rounds = append(r.Paths[1].Rounds, pathRound{RPS: direct[i] / 2})
		r.Paths[2].Rounds = append(r.Paths[2].Rounds, pathRound{RPS: gateway[i], P50: benchDuration(300 * time.Microsecond),
			CPUPerRequest: benchDuration(100 * time.Microsecond)})
		r.Paths[3].Rounds = append(r.Paths[3].Rounds, pathRound{RPS: gateway[i] * 0.9})
		r.Paths[4].Rounds = append(r.Paths[4].Rounds, pathRound{RPS: traced[i], P50: benchDuration(320 * time.Microsecond),
			CPUPerRequest: benchDuration(110 * time.Microsecond)})
	}
	return r
}

// TestTracingRatioAndTarget: the traced gateway's ratio is set against the gateway's of the same
// round, and the 0.03 target is met or missed accordingly, wherever the path sits in the rows.
func TestTracingRatioAndTarget(t *testing.T) {
	for _, tc := range []struct {
		name      string
		traced    [3]float64
		wantVsGW  float64
		wantMet   string
		wantRatio float64
	}{
		// Gateway ratios per round: 0.40, 0.50, 0.45.
		{"0.02 below", [3]float64{380, 480, 430}, -0.02, "met", 0.43},
		{"0.05 below", [3]float64{350, 450, 400}, -0.05, "MISSED", 0.40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tracingRounds([3]float64{1000, 1000, 1000}, [3]float64{400, 500, 450}, tc.traced)
			r.summarize()
			q := r.Ratios.Tracing
			if q == nil || r.Floors.Tracing == nil {
				t.Fatal("no tracing ratios")
			}
			if !near(q.VsGateway, tc.wantVsGW) || !near(q.RPS, tc.wantRatio) {
				t.Errorf("tracing ratio %.3f (%+.3f vs gateway); want %.2f (%+.2f)", q.RPS, q.VsGateway, tc.wantRatio, tc.wantVsGW)
			}
			if q.OverGatewayP50 != benchDuration(20*time.Microsecond) || q.CPUOverGateway != benchDuration(10*time.Microsecond) {
				t.Errorf("added p50 %v, CPU %v; want +20µs, +10µs", q.OverGatewayP50, q.CPUOverGateway)
			}
			if r.Ratios.Redis == nil || !near(r.Ratios.Redis.RPS, 0.405) {
				t.Errorf("redis ratios %+v: the redis row must still be found", r.Ratios.Redis)
			}
			r.Redis = &redisReport{} // the redis row's traffic, which its lines print
			r.Tracing = &tracingReport{Sent: 100, Spans: 480, Exports: 2, SpansPerRequest: 4.8}
			var out bytes.Buffer
			if err := r.writeText(&out); err != nil {
				t.Fatal(err)
			}
			line := lineWith(out.String(), "gateway+tracing/direct RPS ratio")
			if !strings.Contains(line, "target ≥ gateway's − 0.03: "+tc.wantMet+")") {
				t.Errorf("report line %q; want the target %s", line, tc.wantMet)
			}
			if line := lineWith(out.String(), "spans received over OTLP"); !strings.Contains(line, "4.80 per request sent") {
				t.Errorf("spans line %q", line)
			}
		})
	}
	// Without Redis the traced gateway is the fourth row, which must not be taken for Redis's.
	r := tracingRounds([3]float64{1000, 1000, 1000}, [3]float64{400, 500, 450}, [3]float64{380, 480, 430})
	r.Paths = append(r.Paths[:3], r.Paths[4])
	r.summarize()
	if r.Ratios.Redis != nil || r.Ratios.Tracing == nil || !near(r.Ratios.Tracing.VsGateway, -0.02) {
		t.Errorf("without redis: redis %+v, tracing %+v", r.Ratios.Redis, r.Ratios.Tracing)
	}
}

// TestOTLPSinkCountsSpans: the receiver decodes an OTLP/HTTP export and counts its spans.
func TestOTLPSinkCountsSpans(t *testing.T) {
	s, err := startOTLPSink()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{
		{Spans: []*tracepb.Span{{Name: "a"}, {Name: "b"}}}, {Spans: []*tracepb.Span{{Name: "c"}}}}}}}
	b, _ := proto.Marshal(req)
	resp, err := http.Post(s.url+"/v1/traces", "application/x-protobuf", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bad, err := http.Post(s.url+"/v1/traces", "application/x-protobuf", strings.NewReader("\xff\xff not protobuf"))
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	rep := s.report(2)
	if resp.StatusCode != http.StatusOK || rep.Spans != 3 || rep.Exports != 1 || rep.Failed != 1 || rep.SpansPerRequest != 1.5 {
		t.Errorf("status %d, report %+v; want 3 spans in 1 export, 1 failed, 1.5 per request", resp.StatusCode, rep)
	}
}

// gatewayExport is an export like the traced gateway's: n requests of five spans each, with
// their attributes, under one resource and scope.
func gatewayExport(n int) *coltracepb.ExportTraceServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	ss := &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "github.com/llmgate/llmgate/gateway", Version: "dev"}}
	for i := range n {
		tid := bytes.Repeat([]byte{byte(i + 1)}, 16)
		for _, name := range []string{"POST /v1/chat/completions", "auth", "admission", "chat up-m", "settlement"} {
			s := &tracepb.Span{TraceId: tid, SpanId: bytes.Repeat([]byte{2}, 8), ParentSpanId: bytes.Repeat([]byte{3}, 8), Name: name,
				Kind: tracepb.Span_SPAN_KIND_INTERNAL, StartTimeUnixNano: 1, EndTimeUnixNano: 2, Flags: 0x301, Status: &tracepb.Status{}}
			if name[0] == 'P' || name[0] == 'c' {
				s.Attributes = []*commonpb.KeyValue{str("gen_ai.request.model", "m"), str("llmgate.deployment", "mock/up-m"),
					num("llmgate.attempt", 1), num("gen_ai.usage.input_tokens", 11), str("llmgate.tenant", "default"),
					{Key: "nested", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{num("spans", 99)}}}}}}
				s.Events = []*tracepb.Span_Event{{Name: "e", Attributes: []*commonpb.KeyValue{num("n", 1)}}}
			}
			ss.Spans = append(ss.Spans, s)
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "llmgate")}},
		ScopeSpans: []*tracepb.ScopeSpans{ss}}}}
}

// TestCountSpansWalksRealExports: the receiver's count walks the fields of a real export, nested
// messages and all, to the same number a full decode finds; a cut body is an error.
func TestCountSpansWalksRealExports(t *testing.T) {
	b, err := proto.Marshal(gatewayExport(40))
	if err != nil {
		t.Fatal(err)
	}
	n, err := countSpans(b)
	if err != nil || n != 200 {
		t.Fatalf("count %d, err %v; want 200", n, err)
	}
	if _, err := countSpans(b[:len(b)-3]); err == nil {
		t.Fatal("a cut export counted without error")
	}
}

// BenchmarkOTLPSinkCount sets the receiver's walk against a full decode of a 512-span export (the
// batch processor's batch), the receiver's work before.
func BenchmarkOTLPSinkCount(b *testing.B) {
	body, _ := proto.Marshal(gatewayExport(512 / 5))
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if _, err := countSpans(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
