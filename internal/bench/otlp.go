package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpSink is the collector of the gateway+tracing path: an OTLP/HTTP trace receiver on loopback,
// in the bench process, that decodes each export to count its spans and keeps nothing. It shows
// that the traced gateway really exported what it made, at a cost to the bench process of one
// protobuf decode per batch of spans.
type otlpSink struct {
	url     string // the endpoint for tracing.endpoint
	srv     *http.Server
	exports atomic.Int64
	spans   atomic.Int64
	// failed counts exports that could not be read or decoded.
	failed atomic.Int64
}

// startOTLPSink starts the receiver on a free loopback port.
func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String()}
	empty, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil || r.URL.Path != "/v1/traces" {
			s.failed.Add(1)
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		n := 0
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
		s.exports.Add(1)
		s.spans.Add(int64(n))
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(empty)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// report is what the sink received, set against the requests sent to the traced gateway.
func (s *otlpSink) report(sent int64) *tracingReport {
	t := &tracingReport{Exports: s.exports.Load(), Spans: s.spans.Load(), Failed: s.failed.Load(), Sent: sent}
	if sent > 0 {
		t.SpansPerRequest = float64(t.Spans) / float64(sent)
	}
	return t
}

func (s *otlpSink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = s.srv.Close()
	}
}

// TracingConfig is the `tracing` section of the gateway+tracing path: every request traced
// (always_on), exported over OTLP/HTTP to endpoint.
func TracingConfig(endpoint string) string {
	return fmt.Sprintf("tracing:\n  enabled: true\n  protocol: http/protobuf\n  endpoint: %q\n  sampler: always_on\n", endpoint)
}
