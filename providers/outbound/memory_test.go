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

// TestKeptConnectionHeap: every connection a client keeps, busy with a stream or idle in the
// pool, holds its read and write buffers for its life, so they are most of what an open stream
// costs on the upstream side. The upstream here is a bare loopback listener that answers once N
// requests are in, so the client opens N connections and keeps them.
func TestKeptConnectionHeap(t *testing.T) {
	const n = 200
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hold atomic.Bool // hold each connection's first request until n are in
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var conns sync.WaitGroup
	defer conns.Wait()
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				buf := make([]byte, 512)
				var req []byte
				first := true
				for {
					k, err := c.Read(buf)
					if err != nil {
						return
					}
					if req = append(req, buf[:k]...); !bytes.Contains(req, []byte("\r\n\r\n")) {
						continue
					}
					req = req[:0]
					if first && hold.Load() {
						arrived.Done()
						<-all
					}
					first = false
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						return
					}
				}
			}()
		}
	}()

	cl := NewClient(Options{Policy: Policy{AllowPrivate: true}})
	defer cl.CloseIdleConnections()
	url := "http://" + ln.Addr().String() + "/"
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
