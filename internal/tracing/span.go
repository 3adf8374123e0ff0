package tracing

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// tracer is the request path's own tracer: it makes the spans the gateway asks for the way the
// SDK's tracer does (ids, the configured sampler's decision, parent, kind, times, attributes,
// status), and hands the ended ones to its batcher, whose exporter encodes them straight to OTLP.
// The SDK's span, measured on the gateway's streamed chat, cost about a third of what tracing
// cost a request: its mutexes and attribute slices, the conversion to ReadOnlySpan snapshots,
// and the garbage of five spans per request. A span here is one pooled record with a fixed room
// for attributes; it goes back to the pool once the exporter has encoded it, and the encoding
// copies everything it says, so no request's attributes can show in another's spans. The
// caller must not use a span after End, as the gateway does not: a span ended is the exporter's.
//
// The sampler is the SDK's own (sdktrace.Sampler), asked for each span as the SDK's tracer asks
// it, so the decisions, flags and tracestate are the SDK's. Events and links are not recorded:
// the gateway adds none (AddEvent, AddLink and RecordError do nothing).
type tracer struct {
	embedded.Tracer
	sampler  sdktrace.Sampler
	q        *batcher[*span]
	provider *provider
	res      *resource.Resource
	scope    instrumentation.Scope
}

var _ trace.Tracer = (*tracer)(nil)

// provider is the tracer's TracerProvider, for Span.TracerProvider: every name gets the tracer.
type provider struct {
	embedded.TracerProvider
	t *tracer
}

func (p *provider) Tracer(string, ...trace.TracerOption) trace.Tracer { return p.t }

// spanAttrRoom is the room for attributes of a span: more than the gateway sets on any (the
// server span's are about twenty); attributes beyond it are dropped and counted, as the SDK's
// span limit drops them.
const spanAttrRoom = 32

// span is one recording span of the tracer.
type span struct {
	embedded.Span
	t          *tracer
	sc, parent trace.SpanContext
	kind       trace.SpanKind
	sampled    bool
	mu         sync.Mutex
	name       string
	start, end time.Time
	status     codes.Code
	desc       string
	n, dropped int
	attrs      [spanAttrRoom]attribute.KeyValue
}

var spanPool = sync.Pool{New: func() any { return new(span) }}

// release clears s and puts it back in the pool: its strings must not stay reachable, nor show
// in the next span.
// Only the attributes in use are cleared: the whole room is 2 KB of pointers.
func release(s *span) {
	clear(s.attrs[:s.n])
	s.t, s.sc, s.parent, s.kind, s.sampled = nil, trace.SpanContext{}, trace.SpanContext{}, 0, false
	s.name, s.start, s.end, s.status, s.desc, s.n, s.dropped = "", time.Time{}, time.Time{}, 0, "", 0, 0
	spanPool.Put(s)
}

// newIDs are random trace and span ids, never zero: the runtime's generator, seeded from the
// system's randomness, as the SDK's ids are random (it seeds math/rand from crypto/rand).
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(a>>(56-8*i)), byte(b>>(56-8*i))
		}
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		a := rand.Uint64()
		for i := range 8 {
			id[i] = byte(a >> (56 - 8*i))
		}
	}
	return id
}

// Start starts a span as the SDK's tracer does: the parent from ctx (none for WithNewRoot), its
// trace id or a new one, a new span id, the sampler's decision and tracestate, the parent's
// flags with the sampled bit set or cleared.
func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	var psc trace.SpanContext
	if cfg.NewRoot() {
		ctx = trace.ContextWithSpanContext(ctx, psc)
	} else {
		psc = trace.SpanContextFromContext(ctx)
	}
	tid := psc.TraceID()
	if !tid.IsValid() {
		tid = newTraceID()
	}
	res := t.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: name,
		Kind: cfg.SpanKind(), Attributes: cfg.Attributes(), Links: cfg.Links()})
	scc := trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceState: res.Tracestate}
	sampled := res.Decision == sdktrace.RecordAndSample
	if sampled {
		scc.TraceFlags = psc.TraceFlags() | trace.FlagsSampled
	} else {
		scc.TraceFlags = psc.TraceFlags() &^ trace.FlagsSampled
	}
	sc := trace.NewSpanContext(scc)
	if res.Decision == sdktrace.Drop {
		s := nonRecording{sc: sc, p: t.provider}
		return trace.ContextWithSpan(ctx, s), s
	}
	s := spanPool.Get().(*span)
	s.t, s.sc, s.parent, s.sampled = t, sc, psc, sampled
	s.kind, s.name = trace.ValidateSpanKind(cfg.SpanKind()), name
	if s.start = cfg.Timestamp(); s.start.IsZero() {
		s.start = time.Now()
	}
	s.add(res.Attributes)
	s.add(cfg.Attributes())
	return trace.ContextWithSpan(ctx, s), s
}

// add sets attributes as the SDK's span does: an invalid one is dropped, a key set again keeps
// its place and takes the new value; beyond the room they are dropped. Under s.mu or before s
// is shared.
func (s *span) add(kvs []attribute.KeyValue) {
next:
	for _, kv := range kvs {
		if !kv.Valid() {
			s.dropped++
			continue
		}
		for i := range s.attrs[:s.n] {
			if s.attrs[i].Key == kv.Key {
				s.attrs[i] = kv
				continue next
			}
		}
		if s.n == len(s.attrs) {
			s.dropped++
			continue
		}
		s.attrs[s.n] = kv
		s.n++
	}
}

// End ends the span and hands it to the exporter (or back to the pool when it is not sampled).
func (s *span) End(opts ...trace.SpanEndOption) {
	now := time.Now()
	cfg := trace.NewSpanEndConfig(opts...)
	s.mu.Lock()
	if !s.end.IsZero() {
		s.mu.Unlock()
		return
	}
	if s.end = cfg.Timestamp(); s.end.IsZero() {
		s.end = s.start.Add(now.Sub(s.start)) // the monotonic clock's duration, as the SDK's
	}
	s.mu.Unlock()
	if s.sampled {
		s.t.q.add(s)
	} else {
		release(s)
	}
}

// SetAttributes sets attributes until the span ends.
func (s *span) SetAttributes(kv ...attribute.KeyValue) {
	s.mu.Lock()
	if s.end.IsZero() {
		s.add(kv)
	}
	s.mu.Unlock()
}

// SetStatus sets the status as the SDK does: never lowered (Ok over Error over Unset), the
// description kept for an error only.
func (s *span) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.end.IsZero() || s.status > code {
		return
	}
	s.status, s.desc = code, ""
	if code == codes.Error {
		s.desc = description
	}
}

// SetName renames the span until it ends.
func (s *span) SetName(name string) {
	s.mu.Lock()
	if s.end.IsZero() {
		s.name = name
	}
	s.mu.Unlock()
}

func (s *span) SpanContext() trace.SpanContext { return s.sc }
func (s *span) IsRecording() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end.IsZero()
}
func (s *span) AddEvent(string, ...trace.EventOption)   {}
func (s *span) AddLink(trace.Link)                      {}
func (s *span) RecordError(error, ...trace.EventOption) {}
func (s *span) TracerProvider() trace.TracerProvider    { return s.t.provider }

// nonRecording is a span the sampler dropped: only its context, as the SDK's.
type nonRecording struct {
	embedded.Span
	sc trace.SpanContext
	p  *provider
}

func (s nonRecording) SpanContext() trace.SpanContext          { return s.sc }
func (s nonRecording) IsRecording() bool                       { return false }
func (s nonRecording) End(...trace.SpanEndOption)              {}
func (s nonRecording) SetAttributes(...attribute.KeyValue)     {}
func (s nonRecording) SetStatus(codes.Code, string)            {}
func (s nonRecording) SetName(string)                          {}
func (s nonRecording) AddEvent(string, ...trace.EventOption)   {}
func (s nonRecording) AddLink(trace.Link)                      {}
func (s nonRecording) RecordError(error, ...trace.EventOption) {}
func (s nonRecording) TracerProvider() trace.TracerProvider    { return s.p }
