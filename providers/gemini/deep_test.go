package gemini

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
// upstream), whole, streamed or as an error body, gets the client a clear upstream error and
// costs the process no more stack than any answer: the goroutine stacks are capped at 256 KiB
// here, where a validator that recursed per level would die with "stack overflow", taking the
// process with it.
func TestDeeplyNestedAnswer(t *testing.T) {
	deep := strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000)
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "streamGenerateContent") {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"candidates\":"+deep+"}\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"candidates":`+deep+`}`)
	}))
	defer srv.Close()
	p := newProvider(t, srv.URL+"/v1beta")
	defer debug.SetMaxStack(debug.SetMaxStack(256 << 10))
	for _, tc := range []struct {
		name   string
		stream bool
		status int
	}{{"whole", false, 200}, {"stream", true, 200}, {"error body", false, 500}} {
		status = tc.status
		resp, err := p.Do(context.Background(), chat(`{"messages":[{"role":"user","content":"x"}]}`, tc.stream))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case tc.stream && !strings.Contains(string(b), `"type":"upstream_error"`):
			t.Errorf("%s: %.300s, want an upstream error event", tc.name, b)
		case tc.status == 200 && !tc.stream && (resp.StatusCode != http.StatusBadGateway || gjson.GetBytes(b, "error.type").Str != "upstream_error"):
			t.Errorf("%s: %d %.300s, want a 502 upstream error", tc.name, resp.StatusCode, b)
		case tc.status == 500 && (resp.StatusCode != 500 || gjson.GetBytes(b, "error.message").Str != "The upstream answered HTTP 500."):
			t.Errorf("%s: %d %.300s, want the upstream's status with a message of the gateway's own", tc.name, resp.StatusCode, b)
		}
	}
}
