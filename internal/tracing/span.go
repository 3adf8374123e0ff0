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
// copies everything it says, so no request's attributes can show in another's spans. The caller
// holds a small ref, not the record: a call after End finds the record ended or reused (its
// generation moved on) and does nothing, as the API wants.
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

// span is the record of one recording span of the tracer, pooled; the caller holds a ref to it.
type span struct {
	t          *tracer
	gen        uint64 // counts the record's uses: a ref of an earlier use is stale
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
	s.mu.Lock()
	s.gen++ // what a stale ref does from now on is nothing
	clear(s.attrs[:s.n])
	s.t, s.sc, s.parent, s.kind, s.sampled = nil, trace.SpanContext{}, trace.SpanContext{}, 0, false
	s.name, s.start, s.end, s.status, s.desc, s.n, s.dropped = "", time.Time{}, time.Time{}, 0, "", 0, 0
	s.mu.Unlock()
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
	r := &ref{s: s, gen: s.gen, sc: sc, p: t.provider}
	return trace.ContextWithSpan(ctx, r), r
}

// ref is the trace.Span the caller holds: the record and which use of it is the caller's. The
// API lets a caller use a span after End (it must do nothing); once the record is exported and
// reused, the generation tells such a late call from the record's new span's.
type ref struct {
	embedded.Span
	s   *span
	gen uint64
	sc  trace.SpanContext
	p   *provider
}

// live locks the record and tells whether it is still r's and not ended; when true the caller
// unlocks it.
func (r *ref) live() bool {
	r.s.mu.Lock()
	if r.s.gen != r.gen || !r.s.end.IsZero() {
		r.s.mu.Unlock()
		return false
	}
	return true
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
func (r *ref) End(opts ...trace.SpanEndOption) {
	now := time.Now()
	cfg := trace.NewSpanEndConfig(opts...)
	if !r.live() {
		return
	}
	s := r.s
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
func (r *ref) SetAttributes(kv ...attribute.KeyValue) {
	if r.live() {
		r.s.add(kv)
		r.s.mu.Unlock()
	}
}

// SetStatus sets the status as the SDK does: never lowered (Ok over Error over Unset), the
// description kept for an error only.
func (r *ref) SetStatus(code codes.Code, description string) {
	if !r.live() {
		return
	}
	s := r.s
	defer s.mu.Unlock()
	if s.status > code {
		return
	}
	s.status, s.desc = code, ""
	if code == codes.Error {
		s.desc = description
	}
}

// SetName renames the span until it ends.
func (r *ref) SetName(name string) {
	if r.live() {
		r.s.name = name
		r.s.mu.Unlock()
	}
}

// IsRecording tells whether the span has not ended.
func (r *ref) IsRecording() bool {
	if r.live() {
		r.s.mu.Unlock()
		return true
	}
	return false
}

func (r *ref) SpanContext() trace.SpanContext          { return r.sc }
func (r *ref) AddEvent(string, ...trace.EventOption)   {}
func (r *ref) AddLink(trace.Link)                      {}
func (r *ref) RecordError(error, ...trace.EventOption) {}
func (r *ref) TracerProvider() trace.TracerProvider    { return r.p }

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
