package upstreamhttp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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

// TestClientDoesNotFollowRedirects: the key in a custom header must not travel to the host a
// redirect names; the 3xx itself comes back.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer up.Close()
	c := NewClient(ClientOptions{})
	defer c.CloseIdleConnections()
	hr, err := NewRequest(context.Background(), up.URL, []byte(`{}`), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("X-Api-Key", "sk-secret")
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || elsewhere.Load() != 0 {
		t.Errorf("HTTP %d, %d requests reached the redirect's target", resp.StatusCode, elsewhere.Load())
	}
}
