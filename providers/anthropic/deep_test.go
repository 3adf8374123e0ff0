package anthropic

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestDeeplyNestedAnswer: an upstream answer nested a million levels deep (a hostile or broken
// upstream) gets the client a clear upstream error, whole or streamed, and costs the process no
// more stack than any answer: the goroutine stacks are capped at 256 KiB here, where a validator
// that recursed per level would die with "stack overflow", taking the process with it.
func TestDeeplyNestedAnswer(t *testing.T) {
	deep := strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":1}}}\n\n")
			_, _ = io.WriteString(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"+deep+"}\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"msg_1","type":"message","content":`+deep+`}`)
	}))
	defer srv.Close()
	p, err := New(Options{BaseURL: srv.URL, Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	defer debug.SetMaxStack(debug.SetMaxStack(256 << 10))
	for _, stream := range []bool{false, true} {
		resp, err := p.Do(context.Background(), chatRequest(`{"messages":[{"role":"user","content":"x"}]}`, stream))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !stream && (resp.StatusCode != http.StatusBadGateway || gjson.GetBytes(b, "error.code").Str != "bad_upstream_response") {
			t.Errorf("whole: %d %.300s, want 502 bad_upstream_response", resp.StatusCode, b)
		}
		if stream && !strings.Contains(string(b), `"code":"bad_upstream_event"`) {
			t.Errorf("stream: %.300s, want a bad_upstream_event error", b)
		}
	}
}
