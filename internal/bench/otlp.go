package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// otlpSink is the collector of the gateway+tracing path: an OTLP/HTTP trace receiver on loopback,
// in the bench process, that reads each export, counts its spans and keeps nothing. It shows that
// the traced gateway really exported what it made. A real collector runs on another machine; this
// one shares the CPUs with the gateway and the load generator, so it does the least a receiver
// must: it walks the protobuf's fields down to the spans (countSpans) instead of decoding the
// whole message, so that the path's ratio measures the gateway's cost rather than the sink's.
type otlpSink struct {
	url     string // the endpoint for tracing.endpoint
	srv     *http.Server
	exports atomic.Int64
	spans   atomic.Int64
	// failed counts exports that could not be read or decoded.
	failed atomic.Int64
	bufs   sync.Pool // of *bytes.Buffer, an export's body
}

// The field numbers of the OTLP messages countSpans walks
// (opentelemetry/proto/collector/trace/v1/trace_service.proto, trace/v1/trace.proto).
const (
	fieldResourceSpans protowire.Number = 1 // ExportTraceServiceRequest.resource_spans
	fieldScopeSpans    protowire.Number = 2 // ResourceSpans.scope_spans
	fieldSpans         protowire.Number = 2 // ScopeSpans.spans
)

// countSpans counts the spans of an ExportTraceServiceRequest by walking its fields, without
// decoding the spans themselves; malformed protobuf is an error.
func countSpans(b []byte) (int, error) {
	n := 0
	err := eachField(b, fieldResourceSpans, func(rs []byte) error {
		return eachField(rs, fieldScopeSpans, func(ss []byte) error {
			return eachField(ss, fieldSpans, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls f with the contents of every length-delimited field number num of the message
// b, and checks that the other fields are well formed.
func eachField(b []byte, num protowire.Number, f func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := f(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}

// startOTLPSink starts the receiver on a free loopback port.
func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String(), bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
	empty, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := s.bufs.Get().(*bytes.Buffer)
		defer s.bufs.Put(buf)
		buf.Reset()
		_, err := buf.ReadFrom(r.Body)
		n := 0
		if err == nil {
			n, err = countSpans(buf.Bytes())
		}
		if err != nil || r.URL.Path != "/v1/traces" {
			s.failed.Add(1)
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
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
