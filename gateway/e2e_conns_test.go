package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldRequest sends a request's headers announcing a body of 1000 bytes and then nothing, as a
// slowloris client does, and waits (up to limit) for the server to close the connection. It
// returns the status line the server answered with ("" for none) and how long it took the
// server to close the connection (limit when it did not).
func heldRequest(t *testing.T, addr, method, path, key string, limit time.Duration) (status string, closedAfter time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Errorf("dial: %v", err)
		return "", limit
	}
	defer conn.Close()
	hdr := method + " " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
	if key != "" {
		hdr += "Authorization: Bearer " + key + "\r\n"
	}
	start := time.Now()
	if _, err := io.WriteString(conn, hdr+"\r\n"); err != nil {
		t.Errorf("write: %v", err)
		return "", limit
	}
	_ = conn.SetReadDeadline(start.Add(limit))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err == nil {
		status = strings.TrimSpace(line)
	}
	_, err = io.Copy(io.Discard, br) // until the server closes (EOF, or a reset)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return status, limit
	}
	return status, time.Since(start)
}

// TestHeldRequestBodiesAreCutAtTheBodyDeadline: clients that announce a body and never send it
// are answered or closed within gateway.body_read_timeout on every route, with and without a
// key, and leave no goroutine behind. Before, net/http waited for the unread body with no
// deadline after the handler returned: the 401 was never sent and the connection stayed open.
func TestHeldRequestBodiesAreCutAtTheBodyDeadline(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.BodyReadTimeout = time.Second })
	addr := e.srv.Listener.Addr().String()
	routes := []struct{ method, path, key string }{
		{"POST", "/v1/chat/completions", ""},                     // 401 before the body
		{"POST", "/v1/chat/completions", "sk-lg-not-a-real-key"}, // 401 after a store lookup
		{"POST", "/v1/chat/completions", e.key},                  // the body read itself times out
		{"GET", "/v1/models", e.key},                             // answered without reading
		{"POST", "/v1/no-such-route", ""},                        // 404
		{"GET", "/health/live", ""},
		{"GET", "/health/ready", ""},
	}
	const perRoute = 15 // 105 sockets: the audit's 300 are too many for this machine's shared cores
	const limit = 15 * time.Second
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := map[string]int{}     // route → sockets the server did not close in time
	answered := map[string]int{} // route → sockets that got a status line
	for _, r := range routes {
		name := r.method + " " + r.path
		if r.key != "" {
			name += " (key " + r.key[:10] + "…)"
		}
		for i := 0; i < perRoute; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, after := heldRequest(t, addr, r.method, r.path, r.key, limit)
				mu.Lock()
				defer mu.Unlock()
				if after >= limit {
					held[name]++
				}
				if status != "" {
					answered[name+": "+status]++
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("answers: %v", answered)
	for name, n := range held {
		t.Errorf("%s: %d of %d connections still open %v after the request (body_read_timeout 1s)", name, n, perRoute, limit)
	}
	// Every server-side goroutine of those connections ends; the test's readers have returned.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+20 {
		t.Errorf("%d goroutines after the held requests, %d before", n, before)
	}
	// The gateway still serves, and a stream outlives the body deadline: it is cleared once the
	// body is in (10 events 200 ms apart take twice body_read_timeout).
	if st := e.chatStatus(e.key, "gpt-test"); st != http.StatusOK {
		t.Errorf("chat after the held requests: HTTP %d", st)
	}
	req, err := newStreamRequest(context.Background(), e.srv.URL, e.key)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	began := time.Now()
	raw, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err != nil || !strings.Contains(string(raw), "data: [DONE]") || time.Since(began) < time.Second {
		t.Errorf("a stream longer than body_read_timeout: HTTP %d after %v, %v: %.300s", resp.StatusCode, time.Since(began), err, raw)
	}
}

// chatStatus sends a chat request for model with key and returns the status.
func (e *env) chatStatus(key, model string) int {
	req, _ := http.NewRequest(http.MethodPost, e.baseURL+"/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
