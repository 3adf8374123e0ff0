package upstreamhttp

import (
	"context"
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewRequest(t *testing.T) {
	forward := http.Header{
		"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "X-Request-Id": {"req-1"},
		"Authorization": {"Bearer client-key"}, "x-api-key": {"client"}, "Content-Length": {"999"},
		"Content-Type": {"text/plain"}, "Accept": {"*/*"},
	}
	for _, tc := range []struct {
		stream bool
		accept string
	}{{false, "application/json"}, {true, "text/event-stream"}} {
		hr, err := NewRequest(context.Background(), "http://127.0.0.1:1/v1/x", []byte(`{}`), tc.stream, forward, "Authorization", "X-Api-Key")
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"Traceparent": forward.Get("Traceparent"), "X-Request-Id": "req-1", "Authorization": "", "X-Api-Key": "",
			"Content-Length": "", "Content-Type": "application/json", "Accept": tc.accept,
		} {
			if got := hr.Header.Get(k); got != want {
				t.Errorf("stream=%v: %s = %q, want %q", tc.stream, k, got, want)
			}
		}
		if hr.Method != http.MethodPost || hr.ContentLength != 2 {
			t.Errorf("%s with length %d", hr.Method, hr.ContentLength)
		}
	}
	if _, err := NewRequest(context.Background(), "http://[::1", nil, false, nil); err == nil {
		t.Error("a bad URL gave a request")
	}
}
