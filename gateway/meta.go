package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// Context keys set by requestMeta.
const (
	ctxRequestID       = "llmgate.request_id"
	ctxClientRequestID = "llmgate.client_request_id"
	ctxTraceparent     = "llmgate.traceparent"
	ctxTraceID         = "llmgate.trace_id"
	ctxStart           = "llmgate.start"
)

// requestMeta gives every request the gateway's own id (UUIDv7, the ledger key) and a W3C trace
// context, and returns both. A valid client X-Request-Id is kept aside for audit, never used as a
// key: a client that reuses ids must not lose records.
func (g *Gateway) requestMeta(c *gin.Context) {
	c.Set(ctxStart, time.Now())
	id := newRequestID()
	c.Set(ctxRequestID, id)
	h := c.Writer.Header()
	h.Set("X-Request-Id", id)
	if cid := c.GetHeader("X-Request-Id"); validClientRequestID(cid) {
		c.Set(ctxClientRequestID, cid)
	}
	traceID, tp := childTraceparent(c.GetHeader("Traceparent"))
	c.Set(ctxTraceID, traceID)
	c.Set(ctxTraceparent, tp)
	h.Set("Traceparent", tp)
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
	var span [8]byte
	_, _ = rand.Read(span[:])
	flags := "01"
	if len(in) == 55 && in[2] == '-' && in[35] == '-' && in[52] == '-' && in[:2] != "ff" &&
		isLowerHex(in[:2]) && isLowerHex(in[3:35]) && isLowerHex(in[36:52]) && isLowerHex(in[53:]) &&
		in[3:35] != "00000000000000000000000000000000" && in[36:52] != "0000000000000000" {
		traceID, flags = in[3:35], in[53:]
	} else {
		var t [16]byte
		_, _ = rand.Read(t[:])
		traceID = hex.EncodeToString(t[:])
	}
	return traceID, "00-" + traceID + "-" + hex.EncodeToString(span[:]) + "-" + flags
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
