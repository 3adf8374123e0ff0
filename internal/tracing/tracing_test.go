package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

func ratio(f float64) *float64 { return &f }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		err  string // "" = valid
	}{
		{"zero", Options{}, ""},
		{"full http", Options{Enabled: true, Protocol: ProtocolHTTP, Endpoint: "https://otel.example:4318/v1/traces", Sampler: SamplerParentBasedTraceIDRatio, SamplerRatio: ratio(0.1)}, ""},
		{"grpc host:port", Options{Protocol: ProtocolGRPC, Endpoint: "collector:4317", Insecure: true}, ""},
		{"protocol", Options{Protocol: "http/json"}, "tracing.protocol"},
		{"sampler", Options{Sampler: "sometimes"}, "tracing.sampler"},
		{"ratio", Options{SamplerRatio: ratio(1.5)}, "tracing.sampler_ratio"},
		{"scheme", Options{Endpoint: "ftp://collector:21"}, "tracing.endpoint"},
		{"no port", Options{Endpoint: "collector"}, "tracing.endpoint"},
		{"credentials in URL", Options{Endpoint: "https://user:secret@collector:4318"}, "tracing.endpoint"},
		{"header name", Options{Headers: map[string]string{"bad name": "x"}}, "tracing.headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one naming %s", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("the error repeats a credential: %v", err)
			}
		})
	}
}

func TestOffIsNil(t *testing.T) {
	tr, err := New(context.Background(), Options{}, "test", nil)
	if err != nil || tr.Tracer() != nil {
		t.Fatalf("off: tracer %v, err %v", tr.Tracer(), err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// grpcReceiver is an OTLP/gRPC trace receiver on loopback.
type grpcReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	md   []metadata.MD
}

func (r *grpcReceiver) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.reqs, r.md = append(r.reqs, req), append(r.md, md)
	r.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// exported ends one span on tr and flushes it.
func exported(t *testing.T, tr *Tracing) {
	t.Helper()
	_, s := tr.Tracer().Start(context.Background(), "probe")
	s.End()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// serviceName is the service.name of an export's first resource.
func serviceName(req *coltracepb.ExportTraceServiceRequest) string {
	for _, kv := range req.ResourceSpans[0].Resource.Attributes {
		if kv.Key == "service.name" {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// TestExportGRPC: the grpc protocol exports to a host:port endpoint in plain text with insecure,
// with the configured headers and service name (which wins over OTEL_SERVICE_NAME).
func TestExportGRPC(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	recv := &grpcReceiver{}
	coltracepb.RegisterTraceServiceServer(srv, recv)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	tr, err := New(context.Background(), Options{Enabled: true, Protocol: ProtocolGRPC, Endpoint: ln.Addr().String(), Insecure: true,
		Headers: map[string]string{"x-collector-token": "tok"}, Sampler: SamplerAlwaysOn, ServiceName: "gw-test"}, "1.2.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	exported(t, tr)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.reqs) != 1 {
		t.Fatalf("%d exports, want 1", len(recv.reqs))
	}
	if got := serviceName(recv.reqs[0]); got != "gw-test" {
		t.Errorf("service.name %q", got)
	}
	if got := recv.md[0].Get("x-collector-token"); len(got) != 1 || got[0] != "tok" {
		t.Errorf("header x-collector-token %v", got)
	}
	if s := recv.reqs[0].ResourceSpans[0].ScopeSpans[0].Spans; len(s) != 1 || s[0].Name != "probe" {
		t.Errorf("spans %v", s)
	}
}

// TestEnvironmentFallback: with endpoint and service name unset, the SDK's own OTEL_* variables
// apply.
func TestEnvironmentFallback(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/custom/traces" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/custom/traces")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")

	tr, err := New(context.Background(), Options{Enabled: true}, "1.2.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	exported(t, tr)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d exports to the environment's endpoint, want 1", len(got))
	}
	if name := serviceName(got[0]); name != "from-env" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", name)
	}
}
