package main

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
	e := newEnv(t, func(c *Config) { c.Gateway.BodyReadTimeout = time.Second })
	addr := strings.TrimPrefix(e.app.publicURL, "http://")
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
	if st := e.chatStatus(e.app, e.key, "gpt-test"); st != http.StatusOK {
		t.Errorf("chat after the held requests: HTTP %d", st)
	}
	req, err := newStreamRequest(context.Background(), e.app.publicURL, e.key)
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

// rawGet sends GET path on an open connection and returns the status and body of the answer.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) (int, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		return 0, err.Error()
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricLine returns the value of one series (name with its labels) in a /metrics page.
func metricLine(page, series string) string {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestConnectionCapsShedAndCount: with gateway.max_connections 4 and admin_max_connections 2,
// one connection more on either listener is answered 503 and closed, and counted by listener,
// while the connections within the cap go on being served.
func TestConnectionCapsShedAndCount(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Gateway.MaxConnections, c.AdminMaxConnections = 4, 2 })
	type held struct {
		c  net.Conn
		br *bufio.Reader
	}
	dial := func(url string) held {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return held{c, bufio.NewReader(c)}
	}
	fill := func(url string, n int) []held {
		var hs []held
		for i := 0; i < n; i++ {
			h := dial(url)
			if st, body := rawGet(t, h.c, h.br, "/health/live"); st != 200 {
				t.Fatalf("%s connection %d within the cap: %d %s", url, i, st, body)
			}
			hs = append(hs, h)
		}
		return hs
	}
	// A connection dialled once the listener is full gets the 503 without sending anything.
	shedOne := func(url string) {
		h := dial(url)
		_ = h.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(h.br, nil)
		if err != nil {
			t.Errorf("%s: the connection beyond the cap: %v, want a 503", url, err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(b), `"type":"service_unavailable"`) {
			t.Errorf("%s: the connection beyond the cap: %d %s", url, resp.StatusCode, b)
		}
	}
	// The setup's admin connections (making the key) close; one connection of the test's own
	// reads the metrics throughout.
	e.http.CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	probe := dial(e.app.adminURL)
	metrics := func() string {
		st, page := rawGet(t, probe.c, probe.br, "/metrics")
		if st != 200 {
			t.Fatalf("/metrics: %d", st)
		}
		return page
	}
	waitFor(t, 10*time.Second, "the setup's connections to close", func() bool {
		page := metrics()
		return metricLine(page, `llmgate_connections_open{listener="admin"}`) == "1" &&
			metricLine(page, `llmgate_connections_open{listener="public"}`) == "0"
	})
	public := fill(e.app.publicURL, 4)
	shedOne(e.app.publicURL)
	fill(e.app.adminURL, 1) // the probe is the other one
	shedOne(e.app.adminURL)
	for i, h := range public {
		if st, body := rawGet(t, h.c, h.br, "/v1/models"); st != 401 {
			t.Errorf("public connection %d after the shed: %d %s", i, st, body)
		}
	}
	page := metrics()
	for series, want := range map[string]string{
		`llmgate_connections_shed_total{listener="public"}`: "1",
		`llmgate_connections_shed_total{listener="admin"}`:  "1",
		`llmgate_connections_open{listener="public"}`:       "4",
		`llmgate_connections_open{listener="admin"}`:        "2",
	} {
		if got := metricLine(page, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	// A freed slot takes a new connection.
	public[0].c.Close()
	waitFor(t, 10*time.Second, "a public slot to free up", func() bool {
		return metricLine(metrics(), `llmgate_connections_open{listener="public"}`) == "3"
	})
	fill(e.app.publicURL, 1)
}
