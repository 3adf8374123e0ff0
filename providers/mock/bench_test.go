package mock

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that costs nothing, so the benchmark measures the handler
// alone.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

func BenchmarkHandlerChat(b *testing.B) {
	const messages = `"messages":[{"role":"system","content":"You are a helpful assistant."},` +
		`{"role":"user","content":"Write a haiku about gateways and the tokens that flow through them."}]`
	for _, bc := range []struct{ name, body string }{
		{"non-stream", `{"model":"gpt-4o-mini",` + messages + `}`},
		{"stream", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},` + messages + `}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := NewHandler(Options{})
			body := []byte(bc.body)
			rd := bytes.NewReader(body)
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
			r.Body, r.ContentLength = io.NopCloser(rd), int64(len(body))
			w := &discardWriter{header: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				clear(w.header)
				h.ServeHTTP(w, r)
			}
		})
	}
}
