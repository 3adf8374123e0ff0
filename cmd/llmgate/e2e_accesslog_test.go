package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// log.access and gateway.server_timing reach the gateway: with the access log in a file and a
// success sample rate of 0, an error gets its line there and a success none; the answers carry
// Server-Timing.
func TestAccessLogFileAndServerTiming(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	zero := 0.0
	e := newEnv(t, func(c *Config) {
		c.Log.Access.Output = path
		c.Log.Access.SuccessSampleRate = &zero
		c.Gateway.ServerTiming = true
	})
	ctx := context.Background()
	send := func(model string) *http.Response {
		resp := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	ok, bad := send("gpt-test"), send("no-such-model")
	if ok.StatusCode != http.StatusOK || bad.StatusCode != http.StatusNotFound {
		t.Fatalf("statuses %d and %d", ok.StatusCode, bad.StatusCode)
	}
	if h := ok.Header.Get("Server-Timing"); !strings.HasPrefix(h, "gw;dur=") || !strings.Contains(h, ", upstream;dur=") {
		t.Errorf("Server-Timing %q", h)
	}
	badID := bad.Header.Get("X-Request-Id")
	var log string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if log = string(b); strings.Contains(log, badID) {
			break
		}
	}
	if !strings.Contains(log, `"request_id":"`+badID+`"`) || !strings.Contains(log, `"status":404`) {
		t.Errorf("the access log has no line for the 404 %s:\n%s", badID, log)
	}
	if id := ok.Header.Get("X-Request-Id"); strings.Contains(log, id) {
		t.Errorf("the access log has the success %s at a sample rate of 0:\n%s", id, log)
	}
}
