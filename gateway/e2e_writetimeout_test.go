package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/providers"
)

// A client that stops reading a stream cannot pin it: once the socket buffers are full, the
// event being written waits at most gateway.write_timeout, then the stream ends (499, the client
// is gone) and the upstream request is cancelled, even though the upstream still has events.
func TestStalledStreamClientCut(t *testing.T) {
	// The padding is in a field the gateway does not count, so settling the cut stream does not
	// count megabytes of answer text.
	event := "data: " + `{"id":"c","object":"chat.completion.chunk","pad":"` + strings.Repeat("x", 256<<10) +
		`","choices":[{"index":0,"delta":{"content":"x"}}]}` + "\n\n"
	upstreamDone := make(chan error, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ { // more than any socket buffer holds: 256 KiB events for as long as it is read
			if _, err := fmt.Fprint(w, event); err != nil {
				upstreamDone <- err
				return
			}
			w.(http.Flusher).Flush()
			if r.Context().Err() != nil {
				upstreamDone <- r.Context().Err()
				return
			}
		}
	}))
	defer up.Close()
	e := newEnv(t, func(c *envConfig) { c.Options.WriteTimeout = 400 * time.Millisecond },
		withRouting([]namedProvider{openaiProvider("flood", up.URL)}, providers.ModelConfig{Name: "flood",
			Deployments: []providers.DeploymentConfig{{Provider: "flood", Model: "flood"}}}))

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	body := `{"model":"flood","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", e.key, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The client reads nothing more. The gateway must end the stream by itself.
	select {
	case <-upstreamDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream request was not cancelled 30 s after the client stopped reading (write_timeout 400ms)")
	}
	r := e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.Status != gateway.StatusClientClosed {
		t.Errorf("record status %d (%s), want %d", r.Status, r.ErrorType, gateway.StatusClientClosed)
	}
}
