package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

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
