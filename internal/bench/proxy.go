package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServeProxy serves `llmgate bench-proxy`: the minimal hand-written net/http pass-through to
// upstream (a base URL) that the bench measures beside the gateway, so that the cost of the
// gateway's features shows apart from the cost of being an HTTP proxy at all. It prints
// "bench-proxy listening on http://ADDR" once it accepts connections on listen, and serves until
// ctx ends.
func ServeProxy(ctx context.Context, upstream, listen string, stdout io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("bench-proxy: %w", err)
	}
	srv := &http.Server{
		Handler:           newPassThrough(upstream),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "bench-proxy listening on http://%s\n", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// passThrough relays each request to the upstream with the same path and body and copies back the
// status, Content-Type, Content-Length and body; event streams are flushed after every read. It
// has none of the gateway's features on purpose: it is the floor a net/http proxy cannot beat.
type passThrough struct {
	upstream string
	client   *http.Client
}

// maxPassThroughBody bounds a request body, as the gateway's max_body_bytes does.
const maxPassThroughBody = 16 << 20

// passThroughBuffers hold the relay's read buffers, so that no answer allocates one.
var passThroughBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newPassThrough(upstream string) *passThrough {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 512, // net/http's default of 2 would re-dial under concurrent load
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // relay bytes as they come; gzip would also hold back SSE events
	}
	return &passThrough{upstream: upstream, client: &http.Client{Transport: tr}}
}

func (p *passThrough) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read the body before going upstream, as the gateway does. Handing r.Body itself to the
	// client races: once the answer's headers go out, the server discards and closes r.Body while
	// the transport may still probe it for EOF, and the transport then drops the upstream
	// connection mid-answer.
	body, err := readPassThroughBody(w, r)
	if err != nil {
		http.Error(w, "bad request body", http.StatusBadRequest)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		out.Header.Set("Content-Type", ct)
	}
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, "upstream unavailable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	ct := resp.Header.Get("Content-Type")
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)

	// Copy through Write, never io.Copy: the ResponseWriter's ReadFrom would send the headers in
	// a write of their own and copy through a fresh 32 KiB buffer per answer.
	stream := strings.HasPrefix(ct, "text/event-stream")
	flusher, _ := w.(http.Flusher)
	bp := passThroughBuffers.Get().(*[]byte)
	defer passThroughBuffers.Put(bp)
	for {
		n, rerr := resp.Body.Read(*bp)
		if n > 0 {
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				return
			}
			if stream && flusher != nil {
				flusher.Flush() // each event as it arrives
			}
		}
		if rerr != nil {
			return
		}
	}
}

// readPassThroughBody reads the whole body, into one buffer of the announced size if there is
// one.
func readPassThroughBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, maxPassThroughBody)
	if r.ContentLength < 0 || r.ContentLength > maxPassThroughBody {
		return io.ReadAll(rd)
	}
	b := make([]byte, r.ContentLength)
	_, err := io.ReadFull(rd, b)
	return b, err
}
