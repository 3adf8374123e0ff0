package outbound

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// holdingUpstream is a bare loopback upstream, a goroutine per connection, that answers "ok" to
// every request (bodiless: it reads up to the end of the header) but holds each connection's
// first one, while hold is set (nil: always), until n have arrived: a client then opens n
// connections and keeps them. It reads through a 512-byte buffer, so that what it holds per
// connection stays small beside a client's. The listener
// closes, and its goroutines are waited for, when the test ends (after the clients made later
// have closed their connections).
func holdingUpstream(t *testing.T, n int, hold *atomic.Bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				buf := make([]byte, 512)
				var req []byte
				for first := true; ; first = false {
					for !bytes.Contains(req, []byte("\r\n\r\n")) {
						k, err := c.Read(buf)
						if err != nil {
							return
						}
						req = append(req, buf[:k]...)
					}
					req = req[:0]
					if first && (hold == nil || hold.Load()) {
						arrived.Done()
						<-all
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						return
					}
				}
			})
		}
	}()
	return ln.Addr().String()
}

// TestKeptConnectionHeap: every connection a client keeps, busy with a stream or idle in the
// pool, holds its read and write buffers for its life, so they are most of what an open stream
// costs on the upstream side. The upstream holds each connection's first request until N are in,
// so the client opens N connections and keeps them.
func TestKeptConnectionHeap(t *testing.T) {
	const n = 200
	var hold atomic.Bool // hold each connection's first request until n are in
	addr := holdingUpstream(t, n, &hold)

	cl := NewClient(Options{Policy: Policy{AllowPrivate: true}})
	defer cl.CloseIdleConnections()
	url := "http://" + addr + "/"
	var before, after runtime.MemStats
	settle := func(m *runtime.MemStats) {
		runtime.GC() // twice: sync.Pools keep what they held for one more cycle
		runtime.GC()
		runtime.ReadMemStats(m)
	}
	// One request first: what the client sets up once is not a connection's cost.
	if resp, err := cl.Get(url); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	cl.CloseIdleConnections()
	hold.Store(true)
	// The runtime keeps a goroutine's descriptor for reuse once it ends: have as many goroutines
	// as the measured part will start exist once before, so their descriptors are not counted.
	var gs sync.WaitGroup
	release := make(chan struct{})
	for range 5 * n {
		gs.Go(func() { <-release })
	}
	close(release)
	gs.Wait()
	settle(&before)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := cl.Get(url)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	settle(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("%.0f bytes of heap per kept connection", per)
	if per > 9<<10 {
		t.Fatalf("each kept connection holds %.1f KiB of heap; want at most 9 KiB", per/1024)
	}
}
