// Package connlimit caps how many connections a listener holds open at once. A connection
// beyond the cap is shed: answered at once with a 503 in OpenAI's error shape and closed, before
// any byte of it is read and without a goroutine, so the connections being served keep their
// share of the process (file descriptors, goroutines, memory) and the excess learns to retry.
//
// golang.org/x/net/netutil.LimitListener is not used: it blocks Accept at the cap, which leaves
// the excess in the kernel's backlog with no answer until a slot frees up, and counts nothing.
package connlimit

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/api"
)

// Metrics are the connection series of every listener wrapped by Listener, labelled by listener
// name.
type Metrics struct {
	open *prometheus.GaugeVec
	shed *prometheus.CounterVec
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llmgate_connections_open",
			Help: "Connections open now, by listener (public, admin)."}, []string{"listener"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_connections_shed_total",
			Help: "Connections closed at accept (answered 503) because the listener held its maximum, by listener."}, []string{"listener"}),
	}
	reg.MustRegister(m.open, m.shed)
	return m
}

// shedAnswer is what a shed connection receives: a whole HTTP/1.1 503 that closes the
// connection. It fits any socket's send buffer, so writing it never waits on the client.
var shedAnswer = func() []byte {
	body := api.NewError(api.TypeUnavailable, "too_many_connections", "",
		"The gateway has too many open connections; retry shortly.").Marshal()
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
}()

// Listener wraps l so that at most max connections accepted from it are open at once (max ≤ 0:
// no cap; connections are still counted). name labels the metrics.
func (m *Metrics) Listener(l net.Listener, name string, max int) net.Listener {
	return &listener{Listener: l, max: int64(max), gauge: m.open.WithLabelValues(name), shed: m.shed.WithLabelValues(name)}
}

type listener struct {
	net.Listener
	max   int64
	open  atomic.Int64
	gauge prometheus.Gauge
	shed  prometheus.Counter
}

// Accept returns the next connection within the cap, shedding those beyond it.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.shed.Inc()
			// The deadline is a guard only: a fresh socket's send buffer takes the whole answer.
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write(shedAnswer)
			_ = c.Close()
			continue
		}
		l.gauge.Inc()
		return &conn{Conn: c, l: l}, nil
	}
}

// conn gives its slot back once, on the first Close.
type conn struct {
	net.Conn
	l    *listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.gauge.Dec()
	})
	return err
}

// CloseWrite half-closes a TCP connection: net/http uses it to let the client read a final
// answer before the connection is closed.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
