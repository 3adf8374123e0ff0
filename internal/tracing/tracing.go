// Package tracing is the optional OpenTelemetry tracing of the request path: the `tracing`
// section of the config, and the tracer provider it builds, which exports spans over OTLP
// (HTTP/protobuf or gRPC) in batches off the request path.
//
// Tracing is off by default. Off, New installs nothing and Tracer is nil: the gateway then does no
// tracing work beyond a nil check. On, spans are queued to a batch processor (batcher) that
// exports from its own goroutine and drops spans when its queue is full, so a slow or absent
// collector never blocks a request; the exporter encodes them itself and sends them with the
// stock OTLP clients (exporter). No global tracer provider is set; the gateway is handed its tracer.
//
// The standard OTEL_* environment variables apply where the section leaves a field unset, as the
// SDK and its exporters read them themselves: OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY, _INSECURE; OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (only when sampler is unset); OTEL_BSP_* for the batch processor (read
// here, as the SDK reads them for its own);
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. A value in the file wins over the environment.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The exporter protocols of Options.Protocol, spelled as OTEL_EXPORTER_OTLP_PROTOCOL spells them.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// The samplers of Options.Sampler, spelled as OTEL_TRACES_SAMPLER spells them. The parent-based
// ones follow the sampled flag of an incoming traceparent and decide by their root sampler only
// for requests that bring none.
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// defaultServiceName is the service.name of the spans when neither the file nor
// OTEL_SERVICE_NAME names one.
const defaultServiceName = "llmgate"

// Options is the `tracing` section of the config. Zero values mean the defaults in brackets.
type Options struct {
	// Enabled turns tracing on [false].
	Enabled bool `yaml:"enabled"`
	// Protocol is the OTLP transport: http/protobuf or grpc [OTEL_EXPORTER_OTLP_PROTOCOL, else
	// http/protobuf].
	Protocol string `yaml:"protocol"`
	// Endpoint is where spans go: a URL (http:// sends in plain text, https:// over TLS; for
	// http/protobuf a URL without a path gets /v1/traces), or host:port, whose TLS Insecure
	// decides [the OTEL_EXPORTER_OTLP_* endpoint, else localhost:4318 for http/protobuf and
	// localhost:4317 for grpc].
	Endpoint string `yaml:"endpoint"`
	// Headers are sent with every export, e.g. a collector's API key (write it as ${VAR}).
	Headers map[string]string `yaml:"headers"`
	// Insecure sends to a host:port endpoint in plain text instead of TLS [false].
	Insecure bool `yaml:"insecure"`
	// Sampler decides which requests are traced: always_on, always_off, traceidratio,
	// parentbased_always_on, parentbased_always_off or parentbased_traceidratio
	// [OTEL_TRACES_SAMPLER, else parentbased_always_on].
	Sampler string `yaml:"sampler"`
	// SamplerRatio is the fraction of traces the traceidratio samplers keep, 0 to 1 [1].
	SamplerRatio *float64 `yaml:"sampler_ratio"`
	// ServiceName is the service.name resource attribute [OTEL_SERVICE_NAME, else llmgate].
	ServiceName string `yaml:"service_name"`
}

// Validate checks the section, enabled or not, so a typo shows before tracing is turned on.
func (o Options) Validate() error {
	switch o.Protocol {
	case "", ProtocolHTTP, ProtocolGRPC:
	default:
		return fmt.Errorf("tracing.protocol: %q is neither %s nor %s", o.Protocol, ProtocolHTTP, ProtocolGRPC)
	}
	switch o.Sampler {
	case "", SamplerAlwaysOn, SamplerAlwaysOff, SamplerTraceIDRatio, SamplerParentBasedAlwaysOn,
		SamplerParentBasedAlwaysOff, SamplerParentBasedTraceIDRatio:
	default:
		return fmt.Errorf("tracing.sampler: unknown sampler %q (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)", o.Sampler)
	}
	if r := o.SamplerRatio; r != nil && (*r < 0 || *r > 1) {
		return fmt.Errorf("tracing.sampler_ratio: %v is not between 0 and 1", *r)
	}
	if o.Endpoint != "" {
		if _, _, err := parseEndpoint(o.Endpoint); err != nil {
			return fmt.Errorf("tracing.endpoint: %w", err)
		}
	}
	for k := range o.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("tracing.headers: %q is not a header name", k)
		}
	}
	return nil
}

// parseEndpoint tells a URL endpoint (isURL) from a host:port one, and checks it.
func parseEndpoint(s string) (u *url.URL, isURL bool, err error) {
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, "/?# ") || !strings.Contains(s, ":") {
			return nil, false, fmt.Errorf("%q: want host:port or an http(s):// URL", s)
		}
		return nil, false, nil
	}
	u, err = url.Parse(s)
	if err != nil {
		return nil, true, fmt.Errorf("%q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, true, fmt.Errorf("%q: want an http:// or https:// URL with a host", s)
	}
	if u.User != nil {
		return nil, true, errors.New("credentials in the URL: send them as tracing.headers")
	}
	return u, true, nil
}

// Tracing is the tracer provider built from Options; the zero value (and a nil *Tracing) is
// tracing off.
type Tracing struct {
	provider *sdktrace.TracerProvider // the SDK's, when the stock exporter is in use
	own      *tracer                  // else the request path's own
	tracer   trace.Tracer
}

// New builds the tracer provider of o, or returns an off Tracing when o is not enabled. version is
// the service.version of the spans. The exporter connects lazily: a collector that is down at
// start costs failed exports (logged), not a failed start. Export errors are logged on log: the
// SDK reports them only through OpenTelemetry's process-wide error handler, which New sets.
func New(ctx context.Context, o Options, version string, log *slog.Logger) (*Tracing, error) {
	if !o.Enabled {
		return &Tracing{}, nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	exp, err := newExporter(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := newResource(ctx, o, version)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if log != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: span export failed", "err", err) }))
	}
	s := sampler(o)
	if own, ok := exp.(*exporter); ok {
		if s == nil {
			s = samplerFromEnv()
		}
		t := &tracer{sampler: s, res: res, scope: instrumentation.Scope{Name: instrumentationName, Version: version}}
		t.provider = &provider{t: t}
		t.q = startBatcher(func(ctx context.Context, spans []*span) error { return own.exportOwn(ctx, t.res, t.scope, spans) },
			own.Shutdown, release, batchOptionsFromEnv())
		return &Tracing{own: t, tracer: t}, nil
	}
	// The stock exporter (OTLP/JSON) takes the SDK's spans: the SDK's tracer it is.
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(newBatcher(exp, batchOptionsFromEnv())), sdktrace.WithResource(res)}
	if s != nil { // else the SDK reads OTEL_TRACES_SAMPLER, default parentbased_always_on
		opts = append(opts, sdktrace.WithSampler(s))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: tp, tracer: tp.Tracer(instrumentationName, trace.WithInstrumentationVersion(version))}, nil
}

// instrumentationName is the instrumentation scope of the spans.
const instrumentationName = "github.com/llmgate/llmgate/gateway"

// newExporter builds the OTLP exporter of o's protocol; what o leaves unset the exporter takes
// from the OTEL_EXPORTER_OTLP_* environment.
func newExporter(ctx context.Context, o Options) (sdktrace.SpanExporter, error) {
	protocol := o.Protocol
	if protocol == "" {
		protocol = envProtocol()
	}
	u, isURL, err := parseEndpoint(o.Endpoint)
	if o.Endpoint == "" {
		isURL, err = false, nil
	}
	if err != nil {
		return nil, err
	}
	if protocol == ProtocolGRPC {
		var opts []otlptracegrpc.Option
		switch {
		case isURL:
			opts = append(opts, otlptracegrpc.WithEndpointURL(u.String()))
		case o.Endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(o.Endpoint))
		}
		if o.Insecure && !isURL {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
		}
		return newOTLPExporter(ctx, otlptracegrpc.NewClient(opts...))
	}
	var opts []otlptracehttp.Option
	switch {
	case isURL:
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	case o.Endpoint != "":
		opts = append(opts, otlptracehttp.WithEndpoint(o.Endpoint))
	}
	if o.Insecure && !isURL {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
	}
	if envHTTPJSON() {
		// The client then encodes JSON from the messages' fields, which the exporter's protobuf
		// encoding leaves empty: the stock exporter's conversion it is.
		return otlptracehttp.New(ctx, opts...)
	}
	return newOTLPExporter(ctx, otlptracehttp.NewClient(opts...))
}

// envHTTPJSON tells whether the environment has the HTTP client send OTLP/JSON, as it reads
// the variables: the traces one first.
func envHTTPJSON() bool {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(os.Getenv(k)); v != "" {
			return v == "http/json"
		}
	}
	return false
}

// envProtocol is the protocol the OTLP environment variables name, http/protobuf by default. The
// exporters read the variable too, but each speaks only its own protocol: choosing the exporter
// is ours.
func envProtocol() string {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(os.Getenv(k)); v != "" {
			if v == ProtocolGRPC {
				return ProtocolGRPC
			}
			return ProtocolHTTP
		}
	}
	return ProtocolHTTP
}

// newResource describes the process: service.name (the file's, else OTEL_SERVICE_NAME, else
// llmgate), service.version, the SDK's own attributes and OTEL_RESOURCE_ATTRIBUTES.
func newResource(ctx context.Context, o Options, version string) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(attribute.String("service.name", defaultServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // later options win: the environment over the default
		resource.WithAttributes(attribute.String("service.version", version)),
	}
	if o.ServiceName != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.name", o.ServiceName)))
	}
	return resource.New(ctx, opts...)
}

// sampler is o's sampler, nil when o names none.
func sampler(o Options) sdktrace.Sampler {
	ratio := 1.0
	if o.SamplerRatio != nil {
		ratio = *o.SamplerRatio
	}
	switch o.Sampler {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample()
	case SamplerAlwaysOff:
		return sdktrace.NeverSample()
	case SamplerTraceIDRatio:
		return sdktrace.TraceIDRatioBased(ratio)
	case SamplerParentBasedAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case SamplerParentBasedTraceIDRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	}
	return nil
}

// samplerFromEnv is the sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name, read as
// the SDK reads them: an unknown sampler is parentbased_always_on, a ratio that is not a number
// from 0 to 1 is 1, and both are reported.
func samplerFromEnv() sdktrace.Sampler {
	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() sdktrace.Sampler {
		if arg == "" {
			return sdktrace.TraceIDRatioBased(1)
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || v < 0 || v > 1 {
			otel.Handle(fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q is not a ratio from 0 to 1: 1 it is", arg))
			return sdktrace.TraceIDRatioBased(1)
		}
		return sdktrace.TraceIDRatioBased(v)
	}
	switch name {
	case "", SamplerParentBasedAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample()
	case SamplerAlwaysOff:
		return sdktrace.NeverSample()
	case SamplerTraceIDRatio:
		return ratio()
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case SamplerParentBasedTraceIDRatio:
		return sdktrace.ParentBased(ratio())
	}
	otel.Handle(fmt.Errorf("tracing: OTEL_TRACES_SAMPLER %q is not a sampler: parentbased_always_on it is", name))
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// Tracer is the tracer of the request path; nil when tracing is off.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tracer
}

// ForceFlush exports the spans ended so far.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	switch {
	case t == nil:
	case t.own != nil:
		return t.own.q.ForceFlush(ctx)
	case t.provider != nil:
		return t.provider.ForceFlush(ctx)
	}
	return nil
}

// Shutdown exports the spans still queued (within ctx) and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	switch {
	case t == nil:
	case t.own != nil:
		return t.own.q.Shutdown(ctx)
	case t.provider != nil:
		return t.provider.Shutdown(ctx)
	}
	return nil
}
