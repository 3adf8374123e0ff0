package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/sjson"
)

// TestRoutingFieldsNeverReachUpstream checks that fields naming an upstream or a credential are
// removed before forwarding, at the top level and inside extra_body, and that a body without them
// is forwarded as it came (but for the deployment's model name).
func TestRoutingFieldsNeverReachUpstream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	body := `{"model":"gpt-test","api_base":"http://127.0.0.1:9/evil","messages":[{"role":"user","content":"hi api_key"}],` +
		`"base_url":"http://127.0.0.1:9","api_k\u0065y":"sk-stolen","extra_headers":{"X-Evil":"1"},` +
		`"extra_body":{"api_key":"sk-stolen-2","keep":1,"api_base":"http://127.0.0.1:9","extra_headers":{}},"temperature":0.5}`
	resp := e.post(ctx, "/chat/completions", e.key, []byte(body))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	got := e.up.Requests(1)[0].Body
	for _, leak := range []string{"api_base", "base_url", `"api_k`, "extra_headers", "sk-stolen", "127.0.0.1:9"} {
		if strings.Contains(got, leak) {
			t.Errorf("upstream body contains %q: %s", leak, got)
		}
	}
	var fwd map[string]any
	if err := json.Unmarshal([]byte(got), &fwd); err != nil {
		t.Fatalf("upstream body is not JSON: %v: %s", err, got)
	}
	if eb, _ := fwd["extra_body"].(map[string]any); len(eb) != 1 || eb["keep"] != 1.0 || fwd["temperature"] != 0.5 || fwd["messages"] == nil {
		t.Errorf("other fields not kept: %s", got)
	}

	plain := `{"model":"gpt-test", "messages":[{"role":"user","content":"hi"}],  "extra_body":{"keep":true},"user":"u1"}`
	resp = e.post(ctx, "/chat/completions", e.key, []byte(plain))
	resp.Body.Close()
	want, _ := sjson.Set(plain, "model", "up-model")
	if got := e.up.Requests(1)[0].Body; got != want {
		t.Errorf("body without routing fields changed:\n got %s\nwant %s", got, want)
	}
}

// TestBodyReadTimeoutRecordedAsTimeout stalls a body past gateway.body_read_timeout: the client
// is answered 408 and the usage record says timeout, not a client that went away (499).
func TestBodyReadTimeoutRecordedAsTimeout(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.BodyReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	part := `{"model":"gpt-test",`
	_, err = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "+e.key+
		"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(part)+100)+"\r\n\r\n"+part)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // the body deadline is 300 ms
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	id := resp.Header.Get("X-Request-Id")
	got := readBodyError(t, resp)
	if resp.StatusCode != http.StatusRequestTimeout || got.Type != "timeout_error" {
		t.Errorf("HTTP %d %+v, want 408 timeout_error", resp.StatusCode, got)
	}
	if r := e.usageFor(id); r.Status != http.StatusRequestTimeout || r.ErrorType != "timeout_error" {
		t.Errorf("usage record = status %d error %q, want 408 timeout_error", r.Status, r.ErrorType)
	}
}
