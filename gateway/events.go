package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/api"
)

// /v1/usage and /v1/status answer as an event stream when the client asks for one (Accept:
// text/event-stream): the current answer at once as an event, then again whenever it changes,
// and a comment line every gateway.event_heartbeat so that proxies keep the connection and the
// client knows the gateway is there. Streams end when the gateway starts draining.
//
// How a stream learns of changes: it re-reads what it reports every gateway.event_poll. That
// covers every replica (the rollups and the quota counters are shared), the usage writer's delay
// and the breakers alike, for one read per stream and interval, and an event is sent only when
// the answer differs from the last one sent. A /v1/usage stream is also woken at once when one
// of its key's requests settles on this replica (a channel send, no I/O on the request path),
// so the counters of the key's own requests show without waiting for the poll.

// eventStreams keeps the open event streams of a gateway: how many each key holds, the usage
// streams to wake per key, and the drain that ends them all.
type eventStreams struct {
	mu    sync.Mutex
	open  map[string]int                        // key id → streams open
	watch map[string]map[chan struct{}]struct{} // key id → the wake channels of its usage streams
	// watched is len(watch), read without the lock by every settle.
	watched atomic.Int64
	// draining is closed when the gateway starts draining: every stream ends.
	draining  chan struct{}
	drainOnce sync.Once
}

func newEventStreams() *eventStreams {
	return &eventStreams{open: map[string]int{}, watch: map[string]map[chan struct{}]struct{}{}, draining: make(chan struct{})}
}

// acquire counts a new stream of key, unless the key holds max already.
func (s *eventStreams) acquire(key string, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= max {
		return false
	}
	s.open[key]++
	return true
}

func (s *eventStreams) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key]--; s.open[key] <= 0 {
		delete(s.open, key)
	}
}

// subscribe returns a channel that is ready when a request of key has settled, and the function
// that stops it.
func (s *eventStreams) subscribe(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.watch[key] == nil {
		s.watch[key] = map[chan struct{}]struct{}{}
		s.watched.Add(1)
	}
	s.watch[key][ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.watch[key], ch)
		if len(s.watch[key]) == 0 {
			delete(s.watch, key)
			s.watched.Add(-1)
		}
	}
}

// settled wakes the usage streams of key. It never blocks: a stream already woken is not woken
// twice.
func (s *eventStreams) settled(key string) {
	if s.watched.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watch[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// drain ends every stream, now and to come.
func (s *eventStreams) drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// wantsEvents reports whether the client asks for an event stream.
func wantsEvents(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/event-stream") {
			return true
		}
	}
	return false
}

// errTooManyStreams refuses an event stream beyond gateway.event_streams_per_key.
var errTooManyStreams = newError(http.StatusTooManyRequests, api.TypeRateLimit, "too_many_event_streams", "",
	"This API key holds as many event streams open as the gateway allows; close one, or poll without Accept: text/event-stream.")

// streamEvents serves an event stream of events named name: snapshot's answer at once and
// whenever it changes (looked at every gateway.event_poll, and when wake is ready), a heartbeat
// comment every gateway.event_heartbeat, until the client leaves, the gateway drains
// or the request is cut. A snapshot that fails is skipped: the stream keeps the last good answer
// and tries again at the next look.
func (x *exchange) streamEvents(name string, snapshot func(ctx context.Context) (any, error), wake <-chan struct{}) outcome {
	g := x.g
	key := x.id.Key.ID
	if !g.events.acquire(key, g.opts.EventStreamsPerKey) {
		return x.failed(errTooManyStreams)
	}
	defer g.events.release(key)
	w := x.c.Writer
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	var out outcome
	out.status = http.StatusOK
	deadline := g.writeDeadline(rc)
	write := func(b []byte) bool {
		deadline.arm(time.Now())
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	out.firstByte = time.Now()
	var last []byte
	send := func() bool {
		ctx, cancel := context.WithTimeout(x.ctx, 5*time.Second)
		v, err := snapshot(ctx)
		cancel()
		if err != nil {
			return true // keep the stream; the next look tries again
		}
		b, err := json.Marshal(v)
		if err != nil || bytes.Equal(b, last) {
			return true
		}
		last = b
		var ev bytes.Buffer
		ev.Grow(len(b) + len(name) + 16)
		ev.WriteString("event: ")
		ev.WriteString(name)
		ev.WriteString("\ndata: ")
		ev.Write(b)
		ev.WriteString("\n\n")
		return write(ev.Bytes())
	}
	if !send() {
		out.fail(context.Canceled)
		return out
	}
	poll := time.NewTicker(g.opts.EventPoll)
	defer poll.Stop()
	beat := time.NewTimer(g.opts.EventHeartbeat)
	defer beat.Stop()
	for {
		ok := true
		select {
		case <-x.ctx.Done():
			if x.cut() {
				out.errType = errTypeShutdown
			} else {
				out.fail(context.Canceled)
			}
			return out
		case <-g.events.draining:
			return out // a clean end: the client reconnects, to a replica that is not draining
		case <-poll.C:
			ok = send()
		case <-wake:
			ok = send()
		case <-beat.C:
			ok = write([]byte(": heartbeat\n\n"))
			beat.Reset(g.opts.EventHeartbeat)
		}
		if !ok {
			out.fail(context.Canceled) // the client stopped reading
			return out
		}
	}
}
