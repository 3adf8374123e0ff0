package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/internal/headers"
)

// ctxMeta is the gin context key of a request's *reqMeta.
const ctxMeta = "llmgate.meta"

// reqMeta is what requestMeta learns of a request before any handler runs. It is stored once, as
// one pointer: the request path then pays one context entry instead of one per field.
type reqMeta struct {
	start           time.Time
	requestID       string
	clientRequestID string
	traceID         string
	traceparent     string
	// pathModel is the public model a path names (an Azure deployment path), which wins over the
	// body's; empty on the other paths.
	pathModel string
	// span is the request's server span, and attrs the attributes it gets when it ends; nil when
	// tracing is off.
	span  trace.Span
	attrs *spanAttrs
}

// metaOf returns the request's meta: requestMeta runs before every /v1 (and Azure path) handler.
func metaOf(c *gin.Context) *reqMeta { return c.MustGet(ctxMeta).(*reqMeta) }

// requestMeta gives every request the gateway's own id (UUIDv7, the ledger key) and a W3C trace
// context, and returns both. A valid client X-Request-Id is kept aside for audit, never used as a
// key: a client that reuses ids must not lose records.
func (g *Gateway) requestMeta(c *gin.Context) {
	m := &reqMeta{start: time.Now(), requestID: newRequestID()}
	if cid := c.GetHeader("X-Request-Id"); validClientRequestID(cid) {
		m.clientRequestID = cid
	}
	if g.tracer != nil {
		g.startServerSpan(c, m)
	} else {
		m.traceID, m.traceparent = childTraceparent(c.GetHeader("Traceparent"))
	}
	headers.Set(c.Writer.Header(), "X-Request-Id", m.requestID, "Traceparent", m.traceparent)
	c.Set(ctxMeta, m)
	if m.span != nil {
		g.tracedNext(c, m)
		return
	}
	c.Next()
}

func newRequestID() string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return u.String()
}

// validClientRequestID: at most 128 characters of [A-Za-z0-9._:-].
func validClientRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// childTraceparent continues the caller's trace with a new span id for the gateway's hop, or
// starts a new trace when the header is missing or malformed
// (https://www.w3.org/TR/trace-context/#traceparent-header).
func childTraceparent(in string) (traceID, header string) {
	// One random read and one buffer for the whole header: this runs on every request.
	var rnd [24]byte
	_, _ = rand.Read(rnd[:])
	var b [55]byte
	copy(b[:], "00-")
	flags := "01"
	if len(in) == 55 && in[2] == '-' && in[35] == '-' && in[52] == '-' && in[:2] != "ff" &&
		isLowerHex(in[:2]) && isLowerHex(in[3:35]) && isLowerHex(in[36:52]) && isLowerHex(in[53:]) &&
		in[3:35] != "00000000000000000000000000000000" && in[36:52] != "0000000000000000" {
		copy(b[3:35], in[3:35])
		flags = in[53:]
	} else {
		hex.Encode(b[3:35], rnd[:16])
	}
	b[35] = '-'
	hex.Encode(b[36:52], rnd[16:])
	b[52] = '-'
	copy(b[53:], flags)
	header = string(b[:])
	return header[3:35], header
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
