package oairender

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"github.com/llmgate/llmgate/api"
)

// JSONResponse is an answer the adapter makes itself, with a JSON body: a translated
// chat.completion, or an error. The fields of hdr are copied in (hdr is not modified).
func JSONResponse(status int, body []byte, hdr http.Header) *http.Response {
	h := make(http.Header, len(hdr)+2)
	for k, v := range hdr {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
}

// ErrorResponse is an OpenAI error answer the adapter makes itself; see JSONResponse for hdr.
func ErrorResponse(status int, e api.ErrorObject, hdr http.Header) *http.Response {
	return JSONResponse(status, e.Marshal(), hdr)
}

// StreamResponse is the 200 answer whose body is the translation of upstream's stream. Nothing
// of the upstream's headers survives: they describe the upstream's format, not OpenAI's.
func StreamResponse(upstream *http.Response, body io.ReadCloser) *http.Response {
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         upstream.Proto,
		ProtoMajor:    upstream.ProtoMajor,
		ProtoMinor:    upstream.ProtoMinor,
		Header:        http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}},
		Body:          body,
		ContentLength: -1,
		Request:       upstream.Request,
	}
}
