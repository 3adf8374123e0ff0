package tracing

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// exporter sends spans through a stock OTLP client (HTTP or gRPC, which own the endpoint, TLS,
// headers, compression, retries and the OTEL_EXPORTER_OTLP_* environment) after encoding them
// itself. The stock exporter (otlptrace.Exporter) converts each batch into freshly allocated
// protobuf messages, about twenty per span, which the client then marshals: with every request
// traced, that was the larger part of what tracing allocated and, with the marshalling, the
// largest single share of its CPU. This exporter writes the protobuf encoding of each
// ResourceSpans straight into a buffer kept from batch to batch (protowire) and hands the client
// ResourceSpans messages that carry those bytes as their unknown fields, which marshalling copies
// as they are: on the wire it is the same ExportTraceServiceRequest, decoded by any receiver as
// the stock exporter's (TestExporterMatchesStock), and a steady flow of spans allocates nothing
// for it.
//
// The batch span processor exports one batch at a time; the mutex keeps a ForceFlush from
// sharing the buffer with it, and holds it until the client has sent the batch.
type exporter struct {
	client otlptrace.Client

	mu       sync.Mutex
	enc      encoder
	stopOnce sync.Once
}

var _ sdktrace.SpanExporter = (*exporter)(nil)

// newOTLPExporter starts client and returns the exporter over it.
func newOTLPExporter(ctx context.Context, client otlptrace.Client) (*exporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &exporter{client: client}, nil
}

// ExportSpans encodes spans and has the client send them.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.enc.encode(spans)
	defer e.enc.release()
	if len(rs) == 0 {
		return nil
	}
	if err := e.client.UploadTraces(ctx, rs); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// exportOwn encodes the tracer's spans, puts them back in the pool (the encoding holds all they
// said) and has the client send them.
func (e *exporter) exportOwn(ctx context.Context, res *resource.Resource, scope instrumentation.Scope, spans []*span) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.enc.encodeOwn(res, scope, spans)
	defer e.enc.release()
	for _, s := range spans {
		release(s)
	}
	if len(rs) == 0 {
		return nil
	}
	if err := e.client.UploadTraces(ctx, rs); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// Shutdown stops the client, once.
func (e *exporter) Shutdown(ctx context.Context) error {
	var err error
	e.stopOnce.Do(func() { err = e.client.Stop(ctx) })
	return err
}

// The field numbers of the OTLP messages the encoder writes (opentelemetry/proto: trace/v1/
// trace.proto, common/v1/common.proto, resource/v1/resource.proto).
const (
	rsResource, rsScopeSpans, rsSchemaURL protowire.Number = 1, 2, 3 // ResourceSpans
	resAttributes                         protowire.Number = 1       // Resource
	ssScope, ssSpans, ssSchemaURL         protowire.Number = 1, 2, 3 // ScopeSpans
	// InstrumentationScope
	scopeName, scopeVersion, scopeAttributes protowire.Number = 1, 2, 3
	// Span
	spanTraceID, spanSpanID, spanTraceState, spanParentSpanID protowire.Number = 1, 2, 3, 4
	spanName, spanKindField, spanStart, spanEnd               protowire.Number = 5, 6, 7, 8
	spanAttributes, spanDroppedAttributes, spanEvents         protowire.Number = 9, 10, 11
	spanDroppedEvents, spanLinks, spanDroppedLinks            protowire.Number = 12, 13, 14
	spanStatus, spanFlagsField                                protowire.Number = 15, 16
	statusMessage, statusCode                                 protowire.Number = 2, 3 // Status
	// Span.Event
	eventTime, eventName, eventAttributes, eventDroppedAttributes protowire.Number = 1, 2, 3, 4
	// Span.Link
	linkTraceID, linkSpanID, linkAttributes, linkDroppedAttributes, linkFlags protowire.Number = 1, 2, 4, 5, 6
	kvKey, kvValue                                                            protowire.Number = 1, 2 // KeyValue
	// AnyValue, a oneof: every member is written even when zero
	anyString, anyBool, anyInt, anyDouble, anyArray, anyKVList, anyBytes protowire.Number = 1, 2, 3, 4, 5, 6, 7
	listValues                                                           protowire.Number = 1 // ArrayValue, KeyValueList
)

// group is a resource and an instrumentation scope of the batch.
type group struct {
	res   *resource.Resource
	scope instrumentation.Scope
}

// encoder writes batches of spans as OTLP protobuf. Not safe for concurrent use.
type encoder struct {
	b      []byte
	groups []group // in the order they first appear; a batch has one or two
	ends   []int   // where each ResourceSpans's bytes end in b
	msgs   []*tracepb.ResourceSpans
	out    []*tracepb.ResourceSpans
	// The encoded resources and scopes, which stay the same for the life of the process.
	resources map[*resource.Resource][]byte
	scopes    map[instrumentation.Scope][]byte
}

// maxKeptBuffer is the largest buffer kept for the next batch: a burst of large batches must not
// hold its memory for good.
const maxKeptBuffer = 4 << 20

// encode returns the batch as ResourceSpans messages whose unknown fields hold their encoding,
// valid until release. Spans are grouped by resource, then by instrumentation scope, in the
// order the groups first appear, as the stock conversion groups them.
func (e *encoder) encode(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	e.groups, e.ends, e.b = e.groups[:0], e.ends[:0], e.b[:0]
	for _, sd := range spans {
		if sd != nil {
			e.addGroup(sd.Resource(), sd.InstrumentationScope())
		}
	}
	for i, g := range e.groups {
		if e.seenResource(i) {
			continue
		}
		if g.res != nil {
			e.bytesField(rsResource, e.resource(g.res))
		}
		for _, h := range e.groups[i:] {
			if sameResource(h.res, g.res) {
				e.scopeSpans(spans, h)
			}
		}
		e.str(rsSchemaURL, g.res.SchemaURL())
		e.ends = append(e.ends, len(e.b))
	}
	return e.messages()
}

// messages are the ResourceSpans messages of the encoded batch, their bytes as unknown fields.
func (e *encoder) messages() []*tracepb.ResourceSpans {
	e.out = e.out[:0]
	start := 0
	for i, end := range e.ends {
		if i == len(e.msgs) {
			e.msgs = append(e.msgs, &tracepb.ResourceSpans{})
		}
		m := e.msgs[i]
		m.ProtoReflect().SetUnknown(e.b[start:end:end])
		e.out = append(e.out, m)
		start = end
	}
	return e.out
}

// encodeOwn returns the tracer's spans, all of res and scope, as encode returns the SDK's: one
// ResourceSpans with one ScopeSpans, what the stock conversion makes of spans of one tracer.
func (e *encoder) encodeOwn(res *resource.Resource, scope instrumentation.Scope, spans []*span) []*tracepb.ResourceSpans {
	e.groups, e.ends, e.b = e.groups[:0], e.ends[:0], e.b[:0]
	if len(spans) == 0 {
		return nil
	}
	if res != nil {
		e.bytesField(rsResource, e.resource(res))
	}
	ss := e.open(rsScopeSpans)
	if scope != (instrumentation.Scope{}) {
		e.bytesField(ssScope, e.scope(scope))
	}
	for _, s := range spans {
		e.ownSpan(s)
	}
	e.str(ssSchemaURL, scope.SchemaURL)
	e.close(ss)
	e.str(rsSchemaURL, res.SchemaURL())
	e.ends = append(e.ends, len(e.b))
	return e.messages()
}

// ownSpan writes one Span message of the tracer's, field by field as span writes the SDK's.
func (e *encoder) ownSpan(s *span) {
	sp := e.open(ssSpans)
	tid, sid := s.sc.TraceID(), s.sc.SpanID()
	e.bytes(spanTraceID, tid[:])
	e.bytes(spanSpanID, sid[:])
	if ts := s.sc.TraceState(); ts.Len() > 0 {
		e.str(spanTraceState, ts.String())
	}
	if psid := s.parent.SpanID(); psid.IsValid() {
		e.bytes(spanParentSpanID, psid[:])
	}
	e.str(spanName, s.name)
	e.varint(spanKindField, uint64(spanKind(s.kind)))
	e.fixed64(spanStart, unixNano(s.start))
	e.fixed64(spanEnd, unixNano(s.end))
	for _, a := range s.attrs[:s.n] {
		e.keyValue(spanAttributes, a)
	}
	e.varint(spanDroppedAttributes, uint64(clampUint32(s.dropped)))
	st := e.open(spanStatus)
	e.str(statusMessage, s.desc)
	e.varint(statusCode, uint64(statusCodeOf(s.status)))
	e.close(st)
	e.fixed32(spanFlagsField, spanFlags(s.sc.TraceFlags(), s.parent))
	e.close(sp)
}

// release makes the buffer free for the next batch.
func (e *encoder) release() {
	for _, m := range e.out {
		m.ProtoReflect().SetUnknown(nil)
	}
	clear(e.out)
	clear(e.groups)
	if cap(e.b) > maxKeptBuffer {
		e.b = nil
	}
	// Resources and scopes made at run time (a tracer per tenant, say) must not pile up.
	if len(e.resources) > 64 {
		clear(e.resources)
	}
	if len(e.scopes) > 64 {
		clear(e.scopes)
	}
}

// addGroup adds the group of res and scope unless the batch has it already.
func (e *encoder) addGroup(res *resource.Resource, scope instrumentation.Scope) {
	for _, g := range e.groups {
		if g.scope == scope && sameResource(g.res, res) {
			return
		}
	}
	e.groups = append(e.groups, group{res: res, scope: scope})
}

// seenResource tells whether a group before i has the resource of group i.
func (e *encoder) seenResource(i int) bool {
	for _, g := range e.groups[:i] {
		if sameResource(g.res, e.groups[i].res) {
			return true
		}
	}
	return false
}

// sameResource tells whether a and b describe the same resource, as the stock conversion
// groups them.
func sameResource(a, b *resource.Resource) bool {
	return a == b || a.Equivalent() == b.Equivalent()
}

// scopeSpans writes the ScopeSpans of group g: its scope and the spans of the batch in it.
func (e *encoder) scopeSpans(spans []sdktrace.ReadOnlySpan, g group) {
	ss := e.open(rsScopeSpans)
	if g.scope != (instrumentation.Scope{}) {
		e.bytesField(ssScope, e.scope(g.scope))
	}
	for _, sd := range spans {
		if sd != nil && sd.InstrumentationScope() == g.scope && sameResource(sd.Resource(), g.res) {
			e.span(sd)
		}
	}
	e.str(ssSchemaURL, g.scope.SchemaURL)
	e.close(ss)
}

// resource is the encoding of res's Resource message, made once.
func (e *encoder) resource(res *resource.Resource) []byte {
	if b, ok := e.resources[res]; ok {
		return b
	}
	var sub encoder
	for it := res.Iter(); it.Next(); {
		sub.keyValue(resAttributes, it.Attribute())
	}
	if e.resources == nil {
		e.resources = map[*resource.Resource][]byte{}
	}
	e.resources[res] = sub.b
	return sub.b
}

// scope is the encoding of an InstrumentationScope message, made once.
func (e *encoder) scope(s instrumentation.Scope) []byte {
	if b, ok := e.scopes[s]; ok {
		return b
	}
	var sub encoder
	sub.str(scopeName, s.Name)
	sub.str(scopeVersion, s.Version)
	for it := s.Attributes.Iter(); it.Next(); {
		sub.keyValue(scopeAttributes, it.Attribute())
	}
	if e.scopes == nil {
		e.scopes = map[instrumentation.Scope][]byte{}
	}
	e.scopes[s] = sub.b
	return sub.b
}

// span writes one Span message.
func (e *encoder) span(sd sdktrace.ReadOnlySpan) {
	sp := e.open(ssSpans)
	sc, parent := sd.SpanContext(), sd.Parent()
	tid, sid := sc.TraceID(), sc.SpanID()
	e.bytes(spanTraceID, tid[:])
	e.bytes(spanSpanID, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		e.str(spanTraceState, ts.String())
	}
	if psid := parent.SpanID(); psid.IsValid() {
		e.bytes(spanParentSpanID, psid[:])
	}
	e.str(spanName, sd.Name())
	e.varint(spanKindField, uint64(spanKind(sd.SpanKind())))
	e.fixed64(spanStart, unixNano(sd.StartTime()))
	e.fixed64(spanEnd, unixNano(sd.EndTime()))
	for _, a := range sd.Attributes() {
		e.keyValue(spanAttributes, a)
	}
	e.varint(spanDroppedAttributes, uint64(clampUint32(sd.DroppedAttributes())))
	for _, ev := range sd.Events() {
		m := e.open(spanEvents)
		e.fixed64(eventTime, unixNano(ev.Time))
		e.str(eventName, ev.Name)
		for _, a := range ev.Attributes {
			e.keyValue(eventAttributes, a)
		}
		e.varint(eventDroppedAttributes, uint64(clampUint32(ev.DroppedAttributeCount)))
		e.close(m)
	}
	e.varint(spanDroppedEvents, uint64(clampUint32(sd.DroppedEvents())))
	for _, l := range sd.Links() {
		m := e.open(spanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		e.bytes(linkTraceID, ltid[:])
		e.bytes(linkSpanID, lsid[:])
		for _, a := range l.Attributes {
			e.keyValue(linkAttributes, a)
		}
		e.varint(linkDroppedAttributes, uint64(clampUint32(l.DroppedAttributeCount)))
		e.fixed32(linkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		e.close(m)
	}
	e.varint(spanDroppedLinks, uint64(clampUint32(sd.DroppedLinks())))
	st := e.open(spanStatus) // present even when empty, as the stock conversion makes it
	status := sd.Status()
	e.str(statusMessage, status.Description)
	e.varint(statusCode, uint64(statusCodeOf(status.Code)))
	e.close(st)
	e.fixed32(spanFlagsField, spanFlags(sc.TraceFlags(), parent))
	e.close(sp)
}

// keyValue writes a KeyValue message as field num.
func (e *encoder) keyValue(num protowire.Number, kv attribute.KeyValue) {
	m := e.open(num)
	e.str(kvKey, string(kv.Key))
	e.anyValue(kvValue, kv.Value)
	e.close(m)
}

// anyValue writes an AnyValue message as field num, following the stock conversion: an empty
// value is an empty message, an invalid one the string "INVALID".
func (e *encoder) anyValue(num protowire.Number, v attribute.Value) {
	m := e.open(num)
	switch v.Type() {
	case attribute.STRING:
		e.b = protowire.AppendTag(e.b, anyString, protowire.BytesType)
		e.b = protowire.AppendString(e.b, v.AsString())
	case attribute.INT64:
		e.b = protowire.AppendTag(e.b, anyInt, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, uint64(v.AsInt64())) // #nosec G115 -- int64 is sent as its two's complement
	case attribute.BOOL:
		e.b = protowire.AppendTag(e.b, anyBool, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, protowire.EncodeBool(v.AsBool()))
	case attribute.FLOAT64:
		e.b = protowire.AppendTag(e.b, anyDouble, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, math.Float64bits(v.AsFloat64()))
	case attribute.BYTESLICE:
		e.b = protowire.AppendTag(e.b, anyBytes, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		array(e, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		array(e, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		array(e, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		array(e, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		a := e.open(anyArray)
		for _, x := range v.AsSlice() {
			e.anyValue(listValues, x)
		}
		e.close(a)
	case attribute.MAP:
		l := e.open(anyKVList)
		for _, kv := range v.AsMap() {
			e.keyValue(listValues, kv)
		}
		e.close(l)
	case attribute.EMPTY:
	default:
		e.b = protowire.AppendTag(e.b, anyString, protowire.BytesType)
		e.b = protowire.AppendString(e.b, "INVALID")
	}
	e.close(m)
}

// array writes an ArrayValue of xs as the value of an AnyValue.
func array[T any](e *encoder, xs []T, value func(T) attribute.Value) {
	a := e.open(anyArray)
	for _, x := range xs {
		e.anyValue(listValues, value(x))
	}
	e.close(a)
}

// open starts a length-delimited field num, with room for a one-byte length; close sets the
// length, moving the contents when it needs more bytes.
func (e *encoder) open(num protowire.Number) int {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = append(e.b, 0)
	return len(e.b)
}

func (e *encoder) close(start int) {
	n := len(e.b) - start
	if n < 0x80 {
		e.b[start-1] = byte(n)
		return
	}
	k := protowire.SizeVarint(uint64(n))
	e.b = append(e.b, make([]byte, k-1)...)
	copy(e.b[start+k-1:], e.b[start:start+n])
	protowire.AppendVarint(e.b[:start-1], uint64(n))
}

// The scalar fields below are left out when zero, as proto3 encodes them.

func (e *encoder) str(num protowire.Number, s string) {
	if s != "" {
		e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
		e.b = protowire.AppendString(e.b, s)
	}
}

func (e *encoder) bytes(num protowire.Number, b []byte) {
	if len(b) > 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, b)
	}
}

// bytesField writes b, an encoded message, as field num, even when empty.
func (e *encoder) bytesField(num protowire.Number, b []byte) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, b)
}

func (e *encoder) varint(num protowire.Number, v uint64) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

func (e *encoder) fixed64(num protowire.Number, v uint64) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.Fixed64Type)
		e.b = protowire.AppendFixed64(e.b, v)
	}
}

func (e *encoder) fixed32(num protowire.Number, v uint32) {
	if v != 0 {
		e.b = protowire.AppendTag(e.b, num, protowire.Fixed32Type)
		e.b = protowire.AppendFixed32(e.b, v)
	}
}

func unixNano(t time.Time) uint64 {
	return uint64(max(0, t.UnixNano())) // #nosec G115 -- not negative
}

// spanFlags are the W3C trace flags in the low byte, with the bits that say whether the parent
// is remote, which is always known here.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	flags := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

func statusCodeOf(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED
}

func clampUint32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if int64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v) // #nosec G115 -- checked above
}
