package tracing

import (
	"context"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// exporter sends spans through a stock OTLP client (HTTP or gRPC, which own the endpoint, TLS,
// headers, compression, retries and the OTEL_EXPORTER_OTLP_* environment) after converting them
// to OTLP messages itself. The stock exporter (otlptrace.Exporter) converts each batch into
// freshly allocated messages, about twenty per span: at every request traced that was the larger
// part of what tracing allocated and a fifth of its CPU. This conversion writes into messages kept
// from one batch to the next, so a steady flow of spans allocates nothing for it; what it
// produces is what the stock conversion does (TestExporterMatchesStock).
//
// The batch span processor exports one batch at a time; the mutex keeps a ForceFlush from
// sharing the messages with it, and holds them until the client has sent the batch.
type exporter struct {
	client otlptrace.Client

	mu       sync.Mutex
	conv     converter
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

// ExportSpans converts spans and has the client send them.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := e.conv.convert(spans)
	defer e.conv.release()
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

// spanSlot is one span's message with what it points to.
type spanSlot struct {
	span   tracepb.Span
	status tracepb.Status
	tid    [16]byte
	sid    [8]byte
	psid   [8]byte
}

// kvSlot is one attribute's message with its value and the value's wrappers, one per scalar
// type.
type kvSlot struct {
	kv commonpb.KeyValue
	v  commonpb.AnyValue
	s  commonpb.AnyValue_StringValue
	i  commonpb.AnyValue_IntValue
	b  commonpb.AnyValue_BoolValue
	d  commonpb.AnyValue_DoubleValue
}

// group is the spans of one resource and instrumentation scope in the batch.
type group struct {
	res   *resource.Resource
	scope instrumentation.Scope
	rs    *tracepb.ResourceSpans
	ss    *tracepb.ScopeSpans
}

// converter turns a batch of spans into OTLP messages, reusing those of the previous batch. Not
// safe for concurrent use.
type converter struct {
	spans    []*spanSlot
	kvs      []*kvSlot
	kvPtrs   []*commonpb.KeyValue // the attribute lists of the batch's spans, one after another
	groups   []group
	nSpans   int
	nKVs     int
	out      []*tracepb.ResourceSpans
	rsPool   []*tracepb.ResourceSpans
	ssPool   []*tracepb.ScopeSpans
	nRS, nSS int
	// The converted resources and scopes, which stay the same for the life of the process.
	resources map[*resource.Resource]*resourcepb.Resource
	scopes    map[instrumentation.Scope]*commonpb.InstrumentationScope
}

// convert returns the OTLP messages of spans, valid until release. Spans are grouped by resource,
// then by instrumentation scope, in the order the groups first appear.
func (c *converter) convert(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	c.out, c.groups = c.out[:0], c.groups[:0]
	c.kvPtrs = c.kvPtrs[:0]
	for _, sd := range spans {
		if sd == nil {
			continue
		}
		g := c.groupOf(sd.Resource(), sd.InstrumentationScope())
		g.ss.Spans = append(g.ss.Spans, c.span(sd))
	}
	return c.out
}

// release drops the batch's references to spans' strings, so that they can be collected, and
// makes the messages free for the next batch.
func (c *converter) release() {
	for _, s := range c.spans[:c.nSpans] {
		s.span.Name, s.span.TraceState, s.span.Attributes, s.span.Events, s.span.Links = "", "", nil, nil, nil
		s.status.Message = ""
	}
	for _, k := range c.kvs[:c.nKVs] {
		k.kv.Key, k.s.StringValue, k.v.Value = "", "", nil
	}
	clear(c.kvPtrs)
	for _, ss := range c.ssPool[:c.nSS] {
		clear(ss.Spans)
		ss.Spans = ss.Spans[:0]
	}
	for _, rs := range c.rsPool[:c.nRS] {
		clear(rs.ScopeSpans)
		rs.ScopeSpans = rs.ScopeSpans[:0]
	}
	clear(c.groups)
	c.nSpans, c.nKVs, c.nRS, c.nSS = 0, 0, 0, 0
	// Resources and scopes made at run time (a tracer per tenant, say) must not pile up.
	if len(c.resources) > 64 {
		clear(c.resources)
	}
	if len(c.scopes) > 64 {
		clear(c.scopes)
	}
}

// groupOf finds or adds the group of res and scope. A batch has one or two of them, so a linear
// search beats a map.
func (c *converter) groupOf(res *resource.Resource, scope instrumentation.Scope) *group {
	var rs *tracepb.ResourceSpans
	for i := range c.groups {
		g := &c.groups[i]
		if !sameResource(g.res, res) {
			continue
		}
		if g.scope == scope {
			return g
		}
		rs = g.rs
	}
	if rs == nil {
		rs = c.newResourceSpans()
		rs.Resource, rs.SchemaUrl = c.resource(res), res.SchemaURL()
		c.out = append(c.out, rs)
	}
	ss := c.newScopeSpans()
	ss.Scope, ss.SchemaUrl = c.scope(scope), scope.SchemaURL
	rs.ScopeSpans = append(rs.ScopeSpans, ss)
	c.groups = append(c.groups, group{res: res, scope: scope, rs: rs, ss: ss})
	return &c.groups[len(c.groups)-1]
}

// sameResource tells whether a and b describe the same resource, as the stock conversion
// groups them.
func sameResource(a, b *resource.Resource) bool {
	return a == b || a.Equivalent() == b.Equivalent()
}

func (c *converter) newResourceSpans() *tracepb.ResourceSpans {
	if c.nRS == len(c.rsPool) {
		c.rsPool = append(c.rsPool, &tracepb.ResourceSpans{})
	}
	rs := c.rsPool[c.nRS]
	c.nRS++
	return rs
}

func (c *converter) newScopeSpans() *tracepb.ScopeSpans {
	if c.nSS == len(c.ssPool) {
		c.ssPool = append(c.ssPool, &tracepb.ScopeSpans{})
	}
	ss := c.ssPool[c.nSS]
	c.nSS++
	return ss
}

// resource is the message of res, converted once.
func (c *converter) resource(res *resource.Resource) *resourcepb.Resource {
	if res == nil {
		return nil
	}
	if m, ok := c.resources[res]; ok {
		return m
	}
	m := &resourcepb.Resource{Attributes: iterKeyValues(res.Iter())}
	if c.resources == nil {
		c.resources = map[*resource.Resource]*resourcepb.Resource{}
	}
	c.resources[res] = m
	return m
}

// scope is the message of an instrumentation scope, converted once.
func (c *converter) scope(s instrumentation.Scope) *commonpb.InstrumentationScope {
	if s == (instrumentation.Scope{}) {
		return nil
	}
	if m, ok := c.scopes[s]; ok {
		return m
	}
	m := &commonpb.InstrumentationScope{Name: s.Name, Version: s.Version, Attributes: iterKeyValues(s.Attributes.Iter())}
	if c.scopes == nil {
		c.scopes = map[instrumentation.Scope]*commonpb.InstrumentationScope{}
	}
	c.scopes[s] = m
	return m
}

// span fills the next span message from sd.
func (c *converter) span(sd sdktrace.ReadOnlySpan) *tracepb.Span {
	if c.nSpans == len(c.spans) {
		c.spans = append(c.spans, &spanSlot{})
	}
	slot := c.spans[c.nSpans]
	c.nSpans++

	sc, parent, st := sd.SpanContext(), sd.Parent(), sd.Status()
	slot.tid, slot.sid = sc.TraceID(), sc.SpanID()
	slot.status.Code, slot.status.Message = statusCode(st.Code), st.Description
	s := &slot.span
	s.TraceId, s.SpanId = slot.tid[:], slot.sid[:]
	s.TraceState = sc.TraceState().String()
	s.ParentSpanId = nil
	if psid := parent.SpanID(); psid.IsValid() {
		slot.psid = psid
		s.ParentSpanId = slot.psid[:]
	}
	s.Flags = spanFlags(sc.TraceFlags(), parent)
	s.Name = sd.Name()
	s.Kind = spanKind(sd.SpanKind())
	s.StartTimeUnixNano = uint64(max(0, sd.StartTime().UnixNano())) // #nosec G115 -- not negative
	s.EndTimeUnixNano = uint64(max(0, sd.EndTime().UnixNano()))     // #nosec G115 -- not negative
	s.Attributes = c.keyValues(sd.Attributes())
	s.DroppedAttributesCount = clampUint32(sd.DroppedAttributes())
	s.Events = spanEvents(sd.Events())
	s.DroppedEventsCount = clampUint32(sd.DroppedEvents())
	s.Links = spanLinks(sd.Links())
	s.DroppedLinksCount = clampUint32(sd.DroppedLinks())
	s.Status = &slot.status
	return s
}

// keyValues fills the next attribute messages from attrs and returns their list, a part of the
// batch's one list of pointers.
func (c *converter) keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	start := len(c.kvPtrs)
	for _, a := range attrs {
		if c.nKVs == len(c.kvs) {
			c.kvs = append(c.kvs, &kvSlot{})
		}
		k := c.kvs[c.nKVs]
		c.nKVs++
		k.kv.Key, k.kv.Value = string(a.Key), &k.v
		switch a.Value.Type() {
		case attribute.STRING:
			k.s.StringValue = a.Value.AsString()
			k.v.Value = &k.s
		case attribute.INT64:
			k.i.IntValue = a.Value.AsInt64()
			k.v.Value = &k.i
		case attribute.BOOL:
			k.b.BoolValue = a.Value.AsBool()
			k.v.Value = &k.b
		case attribute.FLOAT64:
			k.d.DoubleValue = a.Value.AsFloat64()
			k.v.Value = &k.d
		default: // rare on spans: converted into new messages
			k.v.Value = anyValue(a.Value).Value
		}
		c.kvPtrs = append(c.kvPtrs, &k.kv)
	}
	// A full slice expression: the list must not reach into the next span's.
	return c.kvPtrs[start:len(c.kvPtrs):len(c.kvPtrs)]
}

// The conversions below allocate: they serve what the gateway's spans do not carry (events,
// links, attributes holding slices or maps) and the resource and scopes, converted once. They
// follow the stock conversion (go.opentelemetry.io/otel/exporters/otlp/otlptrace's
// internal/tracetransform) field for field.

func keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(attrs))
	for _, kv := range attrs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func iterKeyValues(it attribute.Iterator) []*commonpb.KeyValue {
	if it.Len() == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, it.Len())
	for it.Next() {
		kv := it.Attribute()
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

func anyValue(v attribute.Value) *commonpb.AnyValue {
	av := new(commonpb.AnyValue)
	array := func(vs []*commonpb.AnyValue) *commonpb.AnyValue_ArrayValue {
		return &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}
	}
	switch v.Type() {
	case attribute.BOOL:
		av.Value = &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}
	case attribute.INT64:
		av.Value = &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}
	case attribute.FLOAT64:
		av.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}
	case attribute.STRING:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: v.AsString()}
	case attribute.BYTESLICE:
		av.Value = &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}
	case attribute.BOOLSLICE:
		av.Value = array(convertEach(v.AsBoolSlice(), attribute.BoolValue))
	case attribute.INT64SLICE:
		av.Value = array(convertEach(v.AsInt64Slice(), attribute.Int64Value))
	case attribute.FLOAT64SLICE:
		av.Value = array(convertEach(v.AsFloat64Slice(), attribute.Float64Value))
	case attribute.STRINGSLICE:
		av.Value = array(convertEach(v.AsStringSlice(), attribute.StringValue))
	case attribute.SLICE:
		av.Value = array(convertEach(v.AsSlice(), func(x attribute.Value) attribute.Value { return x }))
	case attribute.MAP:
		av.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: keyValues(v.AsMap())}}
	case attribute.EMPTY:
	default:
		av.Value = &commonpb.AnyValue_StringValue{StringValue: "INVALID"}
	}
	return av
}

// convertEach converts the elements of a slice attribute.
func convertEach[T any](xs []T, value func(T) attribute.Value) []*commonpb.AnyValue {
	out := make([]*commonpb.AnyValue, len(xs))
	for i, x := range xs {
		out[i] = anyValue(value(x))
	}
	return out
}

func spanEvents(es []sdktrace.Event) []*tracepb.Span_Event {
	if len(es) == 0 {
		return nil
	}
	out := make([]*tracepb.Span_Event, len(es))
	for i, e := range es {
		out[i] = &tracepb.Span_Event{
			Name:                   e.Name,
			TimeUnixNano:           uint64(max(0, e.Time.UnixNano())), // #nosec G115 -- not negative
			Attributes:             keyValues(e.Attributes),
			DroppedAttributesCount: clampUint32(e.DroppedAttributeCount),
		}
	}
	return out
}

func spanLinks(ls []sdktrace.Link) []*tracepb.Span_Link {
	if len(ls) == 0 {
		return nil
	}
	out := make([]*tracepb.Span_Link, 0, len(ls))
	for _, l := range ls {
		tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out = append(out, &tracepb.Span_Link{
			TraceId:                tid[:],
			SpanId:                 sid[:],
			Attributes:             keyValues(l.Attributes),
			DroppedAttributesCount: clampUint32(l.DroppedAttributeCount),
			Flags:                  spanFlags(l.SpanContext.TraceFlags(), l.SpanContext),
		})
	}
	return out
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

func statusCode(c codes.Code) tracepb.Status_StatusCode {
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
