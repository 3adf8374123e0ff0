package connlimit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestListenerShedsBeyondTheCap: with a cap of 3, a fourth connection gets a 503 in OpenAI's
// shape and is closed and counted, while the first three are still served; once one of them
// closes, a new connection is served again.
func TestListenerShedsBeyondTheCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := m.Listener(inner, "public", 3)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	open, shed := m.open.WithLabelValues("public"), m.shed.WithLabelValues("public")

	get := func(c net.Conn, br *bufio.Reader) (int, string) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return 0, err.Error()
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	dial := func() client {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return client{c, bufio.NewReader(c)}
	}
	var held []client
	for i := 0; i < 3; i++ {
		cl := dial()
		if st, body := get(cl.c, cl.br); st != 200 {
			t.Fatalf("connection %d: %d %s", i, st, body)
		}
		held = append(held, cl)
	}
	if v := testutil.ToFloat64(open); v != 3 {
		t.Errorf("open connections gauge = %v, want 3", v)
	}
	extra := dial()
	_ = extra.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(extra.br, nil)
	if err != nil {
		t.Fatalf("the fourth connection: %v, want a 503", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"code":"too_many_connections"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the fourth connection: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	if _, err := extra.br.ReadByte(); err == nil {
		t.Error("the fourth connection stayed open")
	}
	if v := testutil.ToFloat64(shed); v != 1 {
		t.Errorf("shed counter = %v, want 1", v)
	}
	for i, cl := range held {
		if st, body := get(cl.c, cl.br); st != 200 {
			t.Errorf("held connection %d after the shed: %d %s", i, st, body)
		}
	}
	held[0].c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(open) != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(open); v != 2 {
		t.Fatalf("open connections gauge after a close = %v, want 2", v)
	}
	again := dial()
	if st, body := get(again.c, again.br); st != 200 {
		t.Errorf("a connection after a slot freed: %d %s", st, body)
	}
	if v := testutil.ToFloat64(shed); v != 1 {
		t.Errorf("shed counter = %v, want still 1", v)
	}
}
