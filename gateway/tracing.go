package gateway

import (
	"context"
	"encoding/hex"
	"net/http"
	"slices"
	"sync"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/providers"
)

// The spans of a request, when tracing is on (Deps.Tracer):
//
//	POST /v1/chat/completions   server span, from before the handler to the end of the answer
//	├── auth                    the key lookup
//	├── admission               who pays, then the limiter's decision
//	├── chat {upstream model}   client span, one per upstream attempt, until its answer is relayed
//	└── settlement              the usage record and quota settlement
//
// The server span continues an incoming W3C traceparent; its trace id is the usage record's
// trace_id and the answer's Traceparent names it. Each attempt sends the upstream its own span as
// traceparent. Attributes follow the OpenTelemetry GenAI semantic conventions (gen_ai.*) plus the
// gateway's own (llmgate.*); span names, attributes and events never carry a prompt, a completion,
// a header value, an error message or a secret: only names, counts, codes and ids.
//
// With tracing off every helper here is a nil check, and the request path allocates nothing for it.

// Attribute keys: the GenAI and HTTP semantic conventions (semconv v1.40), and the gateway's own.
const (
	attrGenAIOperation    = attribute.Key("gen_ai.operation.name")
	attrGenAIProvider     = attribute.Key("gen_ai.provider.name")
	attrGenAIRequestModel = attribute.Key("gen_ai.request.model")
	attrGenAIMaxTokens    = attribute.Key("gen_ai.request.max_tokens")
	attrGenAIRespModel    = attribute.Key("gen_ai.response.model")
	attrGenAIInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	attrGenAIOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
	attrGenAICacheRead    = attribute.Key("gen_ai.usage.cache_read.input_tokens")
	attrHTTPMethod        = attribute.Key("http.request.method")
	attrHTTPRoute         = attribute.Key("http.route")
	attrHTTPStatus        = attribute.Key("http.response.status_code")
	attrErrorType         = attribute.Key("error.type")
	attrRequestID         = attribute.Key("llmgate.request_id")
	attrTenant            = attribute.Key("llmgate.tenant")
	attrKeyPrefix         = attribute.Key("llmgate.key_prefix")
	attrDeployment        = attribute.Key("llmgate.deployment")
	attrAttempt           = attribute.Key("llmgate.attempt")
	attrStream            = attribute.Key("llmgate.stream")
	attrCost              = attribute.Key("llmgate.cost_pico_usd")
	attrUsageSource       = attribute.Key("llmgate.usage_source")
)

// traceContext is the W3C propagator that reads the caller's traceparent and tracestate; the
// traceparent the answer and each upstream attempt get is written by traceparentOf.
var traceContext = propagation.TraceContext{}

// genAIOperation is gen_ai.operation.name for an endpoint: the convention's names where it has
// one, the endpoint itself otherwise.
func genAIOperation(ep providers.Endpoint) string {
	switch ep {
	case providers.ChatCompletions, providers.Responses:
		return "chat"
	case providers.Completions:
		return "text_completion"
	case providers.Embeddings:
		return "embeddings"
	}
	return string(ep)
}

// startServerSpan starts the request's server span, continuing the caller's traceparent, and
// puts it in the request's context so that the child spans hang under it. The meta's trace id
// and traceparent become the span's: the usage record and the answer name the span. The span's
// attributes are gathered in m.attrs (a pooled buffer) and set when it ends: the SDK copies a span's attribute
// list again at every call that adds to it. (The built-in samplers do not read attributes, so
// none is needed at the start.)
func (g *Gateway) startServerSpan(c *gin.Context, m *reqMeta) {
	r := c.Request
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	route := c.FullPath()
	ctx, span := g.tracer.Start(ctx, spanName(r.Method, route), serverSpanOptions...)
	m.span, m.attrs = span, spanAttrsPool.Get().(*spanAttrs)
	m.attrs.add(attrHTTPMethod.String(r.Method), attrHTTPRoute.String(route), attrRequestID.String(m.requestID))
	m.traceparent = traceparentOf(span.SpanContext())
	m.traceID = m.traceparent[3:35]
	c.Request = r.WithContext(ctx)
}

// serverSpanOptions and clientSpanOptions are made once: a span's options cost allocations.
var (
	serverSpanOptions = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientSpanOptions = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// spanName is the server span's name, "METHOD route", without building it for the routes the
// gateway serves most.
func spanName(method, route string) string {
	if method == http.MethodPost {
		switch route {
		case "/v1/chat/completions":
			return "POST /v1/chat/completions"
		case "/v1/responses":
			return "POST /v1/responses"
		case "/v1/embeddings":
			return "POST /v1/embeddings"
		case "/v1/completions":
			return "POST /v1/completions"
		case "/v1/messages":
			return "POST /v1/messages"
		}
	}
	return method + " " + route
}

// spanAttrs gathers the server span's attributes over the request, to be set in one call when
// it ends. Its room covers every attribute the gateway sets on it; more are dropped.
type spanAttrs struct {
	kv [24]attribute.KeyValue
	n  int
}

func (a *spanAttrs) add(kv ...attribute.KeyValue) { a.n += copy(a.kv[a.n:], kv) }

// spanAttrsPool and attemptPool keep the gathering buffers from request to request: a span
// copies its attributes when they are set, so a buffer is free again once its span has ended,
// and it is cleared first, so no request's values stay reachable or show in another's.
var (
	spanAttrsPool = sync.Pool{New: func() any { return new(spanAttrs) }}
	attemptPool   = sync.Pool{New: func() any { return new(attemptSpan) }}
)

// endServerSpan ends the server span with the answer's status: an error for a 5xx only, as the
// HTTP conventions have it for servers (a 4xx is the client's).
func (g *Gateway) endServerSpan(c *gin.Context, m *reqMeta) {
	status := c.Writer.Status()
	m.attrs.add(attrHTTPStatus.Int(status))
	m.span.SetAttributes(m.attrs.kv[:m.attrs.n]...)
	if status >= 500 {
		m.span.SetStatus(codes.Error, "")
	}
	m.span.End()
	a := m.attrs
	m.attrs = nil
	*a = spanAttrs{}
	spanAttrsPool.Put(a)
}

// tracedNext runs the request's handlers inside its server span, ending the span even when a
// handler panics.
func (g *Gateway) tracedNext(c *gin.Context, m *reqMeta) {
	defer g.endServerSpan(c, m)
	c.Next()
}

// traceparentOf is the W3C traceparent header naming sc, built in one allocation.
func traceparentOf(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	copy(b[52:], "-00")
	if sc.IsSampled() {
		b[54] = '1'
	}
	return string(b[:])
}

// startSpan starts a child span of the span in ctx; nil when tracing is off.
func (g *Gateway) startSpan(ctx context.Context, name string) trace.Span {
	if g.tracer == nil {
		return nil
	}
	_, s := g.tracer.Start(ctx, name)
	return s
}

// endSpan ends s (nil: tracing off), marked failed with err's error type when err is not nil.
// The error's message is never recorded: an upstream's may quote the request.
func endSpan(s trace.Span, err error) {
	if s == nil {
		return
	}
	if err != nil {
		_, body := classify(err)
		s.SetAttributes(attrErrorType.String(errorTypeOf(body.Code, body.Type)))
		s.SetStatus(codes.Error, "")
	}
	s.End()
}

// errorTypeOf is error.type: the error's code, else its type.
func errorTypeOf(code *string, typ string) string {
	if code != nil && *code != "" {
		return *code
	}
	return typ
}

// traceRequest notes what the body asks for on the server span, once it is read.
func (x *exchange) traceRequest(req request) {
	if x.span == nil {
		return
	}
	a := [3]attribute.KeyValue{attrGenAIRequestModel.String(req.model), attrStream.Bool(req.stream)}
	n := 2
	if req.maxTokens > 0 {
		a[n] = attrGenAIMaxTokens.Int64(req.maxTokens)
		n++
	}
	x.noteOnSpan(a[:n])
}

// noteOnSpan adds attributes to the server span: to those gathered for its end, or, on a span
// startServerSpan did not start, to the span itself.
func (x *exchange) noteOnSpan(a []attribute.KeyValue) {
	if x.attrs != nil {
		x.attrs.add(a...)
		return
	}
	x.span.SetAttributes(slices.Clone(a)...) // a copy: a stays on the caller's stack
}

// attemptSpan is an upstream attempt's client span with the attributes it gets when it ends, all
// set in one call (see startServerSpan).
type attemptSpan struct {
	span trace.Span
	kv   [7]attribute.KeyValue
	n    int
}

// startAttempt starts the client span of an upstream attempt and returns it with the headers the
// attempt sends, whose traceparent names it; with tracing off, nil and hdr as they are.
func (x *exchange) startAttempt(d *providers.Deployment, ep providers.Endpoint, n int, hdr http.Header) (*attemptSpan, http.Header) {
	if x.span == nil {
		return nil, hdr
	}
	op := genAIOperation(ep)
	_, s := x.g.tracer.Start(x.ctx, op+" "+d.Model, clientSpanOptions...)
	a := attemptPool.Get().(*attemptSpan)
	a.span, a.n = s, 5
	a.kv[0], a.kv[1], a.kv[2] = attrGenAIOperation.String(op), attrGenAIProvider.String(d.ProviderName), attrGenAIRequestModel.String(d.Model)
	a.kv[3], a.kv[4] = attrDeployment.String(d.ID), attrAttempt.Int(n)
	h := make(http.Header, len(hdr)+1)
	for k, v := range hdr {
		h[k] = v
	}
	h["Traceparent"] = []string{traceparentOf(s.SpanContext())}
	return a, h
}

// endAttempt ends an attempt's span (nil: tracing off), once, with the upstream's status (0: none came)
// and, when the attempt failed, the error type: a code of the gateway's, never upstream text. The
// tokens are the server span's only: each attribute costs every exported span allocations.
func endAttempt(a *attemptSpan, status int, errType string) {
	if a == nil {
		return
	}
	if status > 0 {
		a.kv[a.n] = attrHTTPStatus.Int(status)
		a.n++
	}
	if errType != "" {
		a.kv[a.n] = attrErrorType.String(errType)
		a.n++
		a.span.SetStatus(codes.Error, "")
	}
	a.span.SetAttributes(a.kv[:a.n]...)
	a.span.End()
	*a = attemptSpan{}
	attemptPool.Put(a)
}

// traceSettled notes on the server span who asked (tenant and key prefix, never the key) and
// what the usage record says, in one call.
func (x *exchange) traceSettled() {
	if x.span == nil {
		return
	}
	r := &x.rec
	var a [13]attribute.KeyValue
	a[0], a[1] = attrTenant.String(r.TenantID), attrKeyPrefix.String(x.id.Key.Prefix)
	a[2] = attrGenAIOperation.String(genAIOperation(x.ep))
	a[3], a[4] = attrGenAIInputTokens.Int64(r.PromptTokens), attrGenAIOutputTokens.Int64(r.CompletionTokens)
	a[5] = attrUsageSource.String(r.UsageSource)
	n := 6
	if r.CachedTokens > 0 {
		a[n] = attrGenAICacheRead.Int64(r.CachedTokens)
		n++
	}
	if r.Deployment != "" {
		a[n], a[n+1], a[n+2] = attrDeployment.String(r.Deployment), attrGenAIProvider.String(r.Provider), attrGenAIRespModel.String(r.UpstreamModel)
		n += 3
	}
	if r.CostPicoUSD != nil {
		a[n] = attrCost.Int64(*r.CostPicoUSD)
		n++
	}
	if r.ErrorType != "" {
		a[n] = attrErrorType.String(r.ErrorType)
		n++
	}
	x.noteOnSpan(a[:n])
}
