package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// panickingProvider panics in Do, or (midStream) answers with a stream whose body panics after
// its first event.
type panickingProvider struct{ midStream bool }

func (p panickingProvider) Do(context.Context, *providers.Request) (*http.Response, error) {
	if !p.midStream {
		panic("provider bug")
	}
	first := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there, how are you\"}}]}\n\n"
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(io.MultiReader(strings.NewReader(first), panicReader{}))}, nil
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("body bug") }

// A panic while serving a request still ends it with exactly one usage record: a 500 with
// server_error, naming the deployment it was sent to, and counting (as partial) what the client
// had already received.
func TestPanicSettlesOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		midStream  bool
		wantSource string
		wantStatus int // the client's
	}{
		{"in the provider", false, "", http.StatusInternalServerError},
		{"mid-stream", true, sourcePartial, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, key, u := newTestGateway(t, panickingProvider{midStream: tc.midStream})
			srv := httptest.NewServer(g.Handler())
			status, body := postChat(t, srv, key, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			srv.Close() // waits for the handler, and so for settle
			if status != tc.wantStatus {
				t.Fatalf("client got %d, want %d: %s", status, tc.wantStatus, body)
			}
			if tc.midStream && !bytes.Contains(body, []byte("Hello there")) {
				t.Fatalf("the event before the panic did not reach the client: %q", body)
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			if len(u.recs) != 1 {
				t.Fatalf("%d usage records, want 1", len(u.recs))
			}
			r := u.recs[0]
			if r.Status != http.StatusInternalServerError || r.ErrorType != "server_error" || r.UsageSource != tc.wantSource ||
				r.UpstreamModel != "up-m" || r.Deployment == "" {
				t.Fatalf("record: status %d, error type %q, usage source %q, upstream model %q, deployment %q",
					r.Status, r.ErrorType, r.UsageSource, r.UpstreamModel, r.Deployment)
			}
			if tc.midStream && (r.CompletionTokens == 0 || r.TTFTMS < 0) {
				t.Fatalf("a mid-stream panic lost what was delivered: %+v", r)
			}
		})
	}
}
