package outbound

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport carries plain-HTTP (http://) requests over HTTP/1.1 keep-alive connections on the
// caller's goroutine. net/http's Transport gives every connection a reader and a writer goroutine
// and hands each request between them and the caller over channels: for the upstreams that speak
// plain HTTP (vLLM, Ollama, a sidecar or an in-cluster proxy) that is several goroutine wake-ups
// per request and two goroutines for every pooled connection. Here the caller writes the request
// and reads the answer's header itself, whoever reads the response's Body reads the connection,
// and the connection goes back to the pool when the body ends.
//
// It keeps what the gateway relies on from net/http: the httptrace hooks (GetConn, GotConn,
// WroteHeaders), the request's context cancelling the exchange at any point (the body's reads
// included), a bounded wait for the answer's header, the dialer and its address policy, and
// net/http's own request writer and response parser. A request that fails to write on a pooled
// connection is sent again once on a new one (the upstream cannot have answered it); a pooled
// connection the upstream closed is found before it is used.
type h1Transport struct {
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle       int           // idle connections kept per host
	idleTimeout   time.Duration // an idle connection is closed after this long
	headerTimeout time.Duration // wait for the answer's header (0: none)
	bufSize       int           // each connection's read and write buffer

	mu    sync.Mutex
	idle  map[string][]*h1Conn // host:port → idle connections, the most recently used last
	sweep *time.Timer          // closes connections idle too long; nil when the pool is empty
}

// h1Conn is one connection of the pool.
type h1Conn struct {
	t      *h1Transport
	key    string
	nc     net.Conn
	raw    syscall.RawConn // for the liveness check; nil when the connection has none
	lr     limitedReader   // what br reads: the connection, bounded while a header is read
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool

	// mu guards the read deadline, which both the exchange (the header's wait) and a cancelled
	// context (a deadline in the past) set.
	mu       sync.Mutex
	canceled bool
}

// handles reports whether the request is one h1Transport carries: plain HTTP without an
// expectation or upgrade (those stay with net/http).
func (t *h1Transport) handles(req *http.Request) bool {
	return req.URL.Scheme == "http" && req.Method != http.MethodConnect &&
		req.Header.Get("Expect") == "" && req.Header.Get("Upgrade") == ""
}

// hostPort is the pool key of a URL: host:port, port 80 when the URL has none.
func hostPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		return host
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// RoundTrip sends req and returns the answer with its header read.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	key := hostPort(req.URL.Host)
	for attempt := 0; ; attempt++ {
		if trace != nil && trace.GetConn != nil {
			trace.GetConn(key)
		}
		c, err := t.getConn(ctx, key)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		if trace != nil && trace.GotConn != nil {
			info := httptrace.GotConnInfo{Conn: c.nc, Reused: c.reused}
			if c.reused {
				info.WasIdle, info.IdleTime = true, time.Since(c.idleAt)
			}
			trace.GotConn(info)
		}
		resp, wroteErr, err := c.exchange(ctx, req)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		// A pooled connection that fails while the request is written: the upstream closed it
		// and cannot have answered; once more on a new connection when the body can be sent
		// again.
		if !wroteErr || !c.reused || attempt > 0 {
			return nil, err
		}
		if req, err = rewound(req); err != nil {
			return nil, err
		}
	}
}

// checkRequest refuses what net/http's Transport refuses before sending (its request writer,
// used here, does not check): a URL without a host, and header names or values that are not
// valid HTTP; a value with a line break would end the header block early and smuggle what
// follows.
func checkRequest(req *http.Request) error {
	if req.URL.Host == "" {
		return errors.New("http: no Host in request URL")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// rewound is req with its body from the start, for a second attempt.
func rewound(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("http: the connection failed and the request's body cannot be sent again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := new(http.Request)
	*r = *req
	r.Body = body
	return r, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// exchange writes req on the connection and reads the answer's header. wroteErr says the error
// came while writing the request.
func (c *h1Conn) exchange(ctx context.Context, req *http.Request) (resp *http.Response, wroteErr bool, err error) {
	stop := context.AfterFunc(ctx, c.cancel)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if err := req.Write(c.bw); err != nil {
		return nil, true, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, true, err
	}
	if c.t.headerTimeout > 0 {
		c.setReadDeadline(time.Now().Add(c.t.headerTimeout))
	}
	c.lr.left = maxHeaderBytes
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				err = errors.New("net/http: timeout awaiting response headers")
			}
			if c.lr.left <= 0 {
				err = errHeaderTooLarge
			}
			return nil, false, err
		}
		// 1xx answers other than 101 come before the final one.
		if resp.StatusCode >= 200 || resp.StatusCode < 100 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	c.lr.left = math.MaxInt64
	if c.t.headerTimeout > 0 {
		c.setReadDeadline(time.Time{})
	}
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		if !stop() {
			keep = false // cancelled just now: the connection's deadline is in the past
		}
		c.release(keep)
		return resp, false, nil
	}
	resp.Body = &h1Body{rc: resp.Body, c: c, ctx: ctx, stop: stop, keep: keep}
	return resp, false, nil
}

// cancel is the context's end: every blocked or later read and write of the connection fails.
func (c *h1Conn) cancel() {
	c.mu.Lock()
	c.canceled = true
	c.nc.SetDeadline(aLongTimeAgo)
	c.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

// peekAfter is how long a connection must have been idle before its liveness is checked when
// it is taken from the pool. One that carried an answer a moment ago is used as is: an upstream
// closes an idle connection after seconds (its keep-alive timeout), and under load connections
// go back out within microseconds, where the check would be a system call per request.
const peekAfter = time.Millisecond

// maxHeaderBytes bounds an answer's header block (1xx ones included): an upstream that sends
// more is cut off rather than filling memory.
const maxHeaderBytes = 1 << 20

var errHeaderTooLarge = errors.New("net/http: the upstream's response header is larger than 1 MiB")

// limitedReader reads r while left is above zero.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (c *h1Conn) setReadDeadline(at time.Time) {
	c.mu.Lock()
	if !c.canceled {
		c.nc.SetReadDeadline(at)
	}
	c.mu.Unlock()
}

// release ends the connection's exchange: back to the pool when it can carry another.
func (c *h1Conn) release(keep bool) {
	// Bytes after the answer's end are not the start of the next one's: an upstream that sends
	// them is not trusted with another request on this connection.
	if !keep || c.br.Buffered() > 0 {
		c.nc.Close()
		return
	}
	c.t.putIdle(c)
}

// h1Body is an answer's body: it reads the connection, and gives the connection back to the pool
// at its end, or closes it when the body is closed before its end or fails.
type h1Body struct {
	rc   io.ReadCloser
	c    *h1Conn
	ctx  context.Context
	stop func() bool
	keep bool

	mu   sync.Mutex
	done bool
	err  error // what reads return once done
}

var errBodyClosed = errors.New("http: read on closed response body")

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(b.keep, io.EOF)
	case err != nil:
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
		b.finish(false, err)
	}
	return n, err
}

// Close ends the body; before its end, that closes the connection (which also stops a read in
// progress).
func (b *h1Body) Close() error {
	b.finish(false, errBodyClosed)
	return nil
}

func (b *h1Body) finish(keep bool, err error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done, b.err = true, err
	b.mu.Unlock()
	// A context cancelled at this moment may have set its deadline already: the connection is
	// not taken back then.
	if !b.stop() {
		keep = false
	}
	b.c.release(keep)
}

// getConn returns a live pooled connection to key, or a new one.
func (t *h1Transport) getConn(ctx context.Context, key string) (*h1Conn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		if idle := now.Sub(c.idleAt); idle < t.idleTimeout && (idle < peekAfter || c.alive()) {
			c.reused = true
			return c, nil
		}
		c.nc.Close()
	}
	nc, err := t.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{t: t, key: key, nc: nc, lr: limitedReader{r: nc, left: math.MaxInt64}, bw: bufio.NewWriterSize(nc, t.bufSize)}
	c.br = bufio.NewReaderSize(&c.lr, t.bufSize)
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c, nil
}

// putIdle pools a connection whose exchange ended cleanly.
func (t *h1Transport) putIdle(c *h1Conn) {
	c.idleAt = time.Now()
	c.canceled = false
	t.mu.Lock()
	if t.idle == nil {
		t.idle = make(map[string][]*h1Conn)
	}
	list := t.idle[c.key]
	if len(list) >= t.maxIdle {
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	t.idle[c.key] = append(list, c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.sweepIdle)
	}
	t.mu.Unlock()
}

// sweepIdle closes the connections idle longer than idleTimeout, and comes again while any are
// left.
func (t *h1Transport) sweepIdle() {
	now := time.Now()
	var old []*h1Conn
	t.mu.Lock()
	for key, list := range t.idle {
		n := 0
		for n < len(list) && now.Sub(list[n].idleAt) >= t.idleTimeout {
			n++
		}
		old = append(old, list[:n]...)
		if n == len(list) {
			delete(t.idle, key)
			continue
		}
		t.idle[key] = append(list[:0], list[n:]...)
	}
	if len(t.idle) > 0 {
		t.sweep.Reset(t.idleTimeout / 2)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
}

// CloseIdleConnections closes every pooled connection.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.nc.Close()
		}
	}
}

// splitTransport sends plain-HTTP requests through h1 and the rest (TLS, HTTP/2) through std.
type splitTransport struct {
	h1  *h1Transport
	std *http.Transport
}

func (t *splitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.h1.handles(req) {
		return t.h1.RoundTrip(req)
	}
	return t.std.RoundTrip(req)
}

// CloseIdleConnections closes both transports' pooled connections (http.Client calls it).
func (t *splitTransport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.std.CloseIdleConnections()
}
