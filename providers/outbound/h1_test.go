package outbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func loopbackClient(t *testing.T) *http.Client {
	t.Helper()
	cl := NewClient(Options{Policy: Policy{AllowPrivate: true}})
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// traced is a context whose trace records whether each request got a reused connection and
// whether its headers were written.
func traced(reused *[]bool, wrote *atomic.Int32) context.Context {
	return httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn:      func(i httptrace.GotConnInfo) { *reused = append(*reused, i.Reused) },
		WroteHeaders: func() { wrote.Add(1) },
	})
}

// mustRead(t)(resp, err) is the whole body of an answer that came.
func mustRead(t *testing.T) func(*http.Response, error) string {
	return func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

// TestPlainHTTPKeepsConnectionsAndTraces: plain-HTTP requests, bodies and all, go one after the
// other over one kept connection, and the trace hooks the gateway times its attempts with fire.
func TestPlainHTTPKeepsConnectionsAndTraces(t *testing.T) {
	srv, conns := counting(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	cl := loopbackClient(t)
	var reused []bool
	var wrote atomic.Int32
	ctx := traced(&reused, &wrote)
	for i := range 5 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/x", strings.NewReader(fmt.Sprint("body", i)))
		resp, err := cl.Do(req)
		if got, want := mustRead(t)(resp, err), fmt.Sprint("POST /v1/x body", i); got != want {
			t.Fatalf("answer %q, want %q", got, want)
		}
	}
	resp, err := cl.Head(srv.URL) // no body to read: the connection goes back at once
	mustRead(t)(resp, err)
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 6 requests in a row, want 1", n)
	}
	if fmt.Sprint(reused) != "[false true true true true]" || wrote.Load() != 5 {
		t.Errorf("trace: reused %v, headers written %d times; want [false true true true true], 5", reused, wrote.Load())
	}
}

// TestPooledConnectionsHoldNoGoroutines: a kept connection costs no goroutine of the client, busy
// or idle (net/http's Transport runs two for each). The upstream is a bare listener with one
// goroutine per connection that answers once n requests are in, so n connections are open.
func TestPooledConnectionsHoldNoGoroutines(t *testing.T) {
	const n = 100
	addr := holdingUpstream(t, n, nil)
	cl := loopbackClient(t)
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := cl.Get("http://" + addr + "/")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	// The listener's n goroutines are still there; the client's own would come on top.
	if extra := runtime.NumGoroutine() - before - n; extra > n/10 {
		t.Errorf("%d goroutines besides the upstream's %d with %d kept connections; want about 0", extra, n, n)
	}
}

// TestUpstreamClosedIdleConnection: a kept connection the upstream closed is noticed before use,
// and the request (a POST with a body) goes over a new one.
func TestUpstreamClosedIdleConnection(t *testing.T) {
	srv, conns := counting(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	cl := loopbackClient(t)
	if got := mustRead(t)(cl.Post(srv.URL, "text/plain", strings.NewReader("one"))); got != "one" {
		t.Fatalf("answer %q", got)
	}
	srv.CloseClientConnections()
	// On loopback the close reaches the client's socket at once; the pool checks a connection
	// idle longer than peekAfter.
	time.Sleep(5 * peekAfter)
	var reused []bool
	var wrote atomic.Int32
	req, _ := http.NewRequestWithContext(traced(&reused, &wrote), http.MethodPost, srv.URL, strings.NewReader("two"))
	got := mustRead(t)(cl.Do(req))
	if got != "two" || conns.Load() != 2 {
		t.Errorf("answer %q over %d connections; want \"two\" over a second one", got, conns.Load())
	}
	if reused[len(reused)-1] {
		t.Errorf("the request went over a reused connection after the upstream closed it: %v", reused)
	}
}

// failingConn fails its writes once told to.
type failingConn struct {
	net.Conn
	fail *atomic.Bool
}

func (c failingConn) Write(p []byte) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("write: broken pipe")
	}
	return c.Conn.Write(p)
}

// TestWriteFailureOnKeptConnectionRetried: a kept connection that fails while the request is
// written cannot have delivered it; the request goes once more over a new connection, its body
// from the start, and a body that cannot be read again is not guessed at.
func TestWriteFailureOnKeptConnectionRetried(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	srv, conns := counting(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Write(b)
	})
	var broken [2]atomic.Bool // the first connection's writes fail once broken[0] is set
	var dials atomic.Int32
	d := &net.Dialer{}
	tr := &h1Transport{maxIdle: 4, idleTimeout: time.Minute, bufSize: 2048,
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			i := min(int(dials.Add(1))-1, 1)
			return failingConn{c, &broken[i]}, nil // not a syscall.Conn: no liveness peek
		}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	if got := mustRead(t)(cl.Post(srv.URL, "text/plain", strings.NewReader("first"))); got != "first" {
		t.Fatalf("answer %q", got)
	}
	broken[0].Store(true)
	if got := mustRead(t)(cl.Post(srv.URL, "text/plain", strings.NewReader("second"))); got != "second" {
		t.Fatalf("answer %q after the retry", got)
	}
	if fmt.Sprint(bodies) != "[first second]" || conns.Load() != 2 {
		t.Errorf("upstream saw %q over %d connections; want [first second] over 2", bodies, conns.Load())
	}
	// A body without GetBody cannot be sent again: the error says so.
	broken[1].Store(true)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("third")))
	if _, err := cl.Do(req); err == nil || !strings.Contains(err.Error(), "cannot be sent again") {
		t.Errorf("a failed write of a one-shot body: %v", err)
	}
}

// TestCancelStopsTheExchange: the request's context ends the wait for the answer's header and a
// read of its body, with the context's cause, and the connection is not used again.
func TestCancelStopsTheExchange(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv, conns := counting(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	cl := loopbackClient(t)
	cause := errors.New("attempt timed out")

	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/header", nil)
	if _, err := cl.Do(req); !errors.Is(err, cause) {
		t.Errorf("cancelled while waiting for the header: %v, want the cause", err)
	}

	ctx, cancel = context.WithCancelCause(context.Background())
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stream", nil)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "first" {
		t.Fatalf("first read %q, %v", buf[:n], err)
	}
	time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, cause) {
		t.Errorf("cancelled while reading the body: %v, want the cause", err)
	}
	resp.Body.Close()
	if n, err := resp.Body.Read(buf); n != 0 || err == nil {
		t.Errorf("a read after the end: %d, %v", n, err)
	}

	var reused []bool
	var wrote atomic.Int32
	req, _ = http.NewRequestWithContext(traced(&reused, &wrote), http.MethodGet, srv.URL+"/stream", nil)
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fmt.Sprint(reused) != "[false]" || conns.Load() != 3 {
		t.Errorf("after two cancelled exchanges: reused %v, %d connections; want [false], 3", reused, conns.Load())
	}
}

// TestHeaderWaitBounded: an upstream that never answers is given up on after the header timeout.
func TestHeaderWaitBounded(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	cl := NewClient(Options{Policy: Policy{AllowPrivate: true}, ResponseHeaderTimeout: 100 * time.Millisecond})
	defer cl.CloseIdleConnections()
	if _, err := cl.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("an upstream that never answers: %v", err)
	}
}

// TestBodyArrivesAsSent: a streamed answer's chunks reach the reader as the upstream sends them
// (the next one is sent only after the reader has the previous one).
func TestBodyArrivesAsSent(t *testing.T) {
	next := make(chan struct{})
	srv, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	cl := loopbackClient(t)
	resp, err := cl.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q, %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}
}

// rawServer answers every connection's first request with answer, then closes the connection.
func rawServer(t *testing.T, answer string) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int32)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					io.WriteString(c, answer)
				}
			})
		}
	}()
	return ln.Addr().String(), conns
}

// TestAnswersThatEndTheConnection: "Connection: close", a body that runs to the end of the
// connection, and a 1xx before the answer are read whole, and a closing connection is not kept;
// nor is one on which the upstream sent more than the answer (it would be read as the next
// request's).
func TestAnswersThatEndTheConnection(t *testing.T) {
	for name, tc := range map[string]struct{ answer, body string }{
		"connection close": {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		"read to the end":  {"HTTP/1.1 200 OK\r\n\r\nuntil closed", "until closed"},
		"HTTP/1.0":         {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok"},
		"bytes after it":   {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged", "ok"},
		"1xx first":        {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody", "body"},
	} {
		t.Run(name, func(t *testing.T) {
			addr, conns := rawServer(t, tc.answer)
			cl := loopbackClient(t)
			for range 2 {
				if got := mustRead(t)(cl.Get("http://" + addr + "/")); got != tc.body {
					t.Fatalf("body %q, want %q", got, tc.body)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections for two requests, want 2 (none kept)", n)
			}
		})
	}
}

// TestHugeHeaderRefused: an answer whose header block runs past 1 MiB is cut off.
func TestHugeHeaderRefused(t *testing.T) {
	addr, _ := rawServer(t, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 2<<20)+"\r\n\r\n")
	if _, err := loopbackClient(t).Get("http://" + addr + "/"); !errors.Is(err, errHeaderTooLarge) {
		t.Errorf("a 2 MiB header: %v", err)
	}
}

// TestEarlyCloseAndSweep: a body closed before its end takes its connection with it; a kept
// connection idle past the idle timeout is closed.
func TestEarlyCloseAndSweep(t *testing.T) {
	closed := make(chan struct{}, 8)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(bytes.Repeat([]byte("x"), 1<<20))
			return
		}
		io.WriteString(w, "small")
	}))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed:
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	d := &net.Dialer{}
	tr := &h1Transport{dial: d.DialContext, maxIdle: 4, idleTimeout: 200 * time.Millisecond, bufSize: 2048}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	resp, err := cl.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 100))
	resp.Body.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection of a body closed early is still open")
	}
	if got := mustRead(t)(cl.Get(srv.URL + "/small")); got != "small" || conns.Load() != 2 {
		t.Fatalf("answer %q over %d connections, want \"small\" over a second one", got, conns.Load())
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection idle past the idle timeout is still open")
	}
	tr.mu.Lock()
	left := len(tr.idle)
	tr.mu.Unlock()
	if left != 0 {
		t.Errorf("%d hosts still in the pool after the sweep", left)
	}
}

// TestConcurrentUse: many requests at once, some bodies closed early and some contexts
// cancelled mid-body, all over one transport (for the race detector), and every complete answer
// intact.
func TestConcurrentUse(t *testing.T) {
	srv, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 20 {
			fmt.Fprintf(w, "%s-%d;", r.URL.Query().Get("i"), i)
			w.(http.Flusher).Flush()
		}
	})
	cl := loopbackClient(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/?i=%d", srv.URL, i), nil)
			resp, err := cl.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			switch i % 4 {
			case 1:
				resp.Body.Read(make([]byte, 8))
				return
			case 2:
				resp.Body.Read(make([]byte, 8))
				cancel()
				io.Copy(io.Discard, resp.Body)
				return
			}
			b, err := io.ReadAll(resp.Body)
			var want strings.Builder
			for k := range 20 {
				fmt.Fprintf(&want, "%d-%d;", i, k)
			}
			if err != nil || string(b) != want.String() {
				t.Errorf("request %d: %q, %v", i, b, err)
			}
		})
	}
	wg.Wait()
}

// TestInvalidHeaderNotSent: a header value with a line break, or a name that is not a token, is
// refused before anything is sent (written as is, it would end the header block and smuggle what
// follows as a request of its own).
func TestInvalidHeaderNotSent(t *testing.T) {
	srv, conns := counting(t, func(w http.ResponseWriter, r *http.Request) {})
	cl := loopbackClient(t)
	for _, h := range [][2]string{{"X-Note", "a\r\n\r\nGET /smuggled HTTP/1.1"}, {"X Bad", "v"}} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		req.Header[h[0]] = []string{h[1]}
		if _, err := cl.Do(req); err == nil || !strings.Contains(err.Error(), "invalid header field") {
			t.Errorf("header %q: %v", h[0], err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections made for refused requests", n)
	}
}
