package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/headers"
	"github.com/llmgate/llmgate/internal/redact"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/responses"
)

var (
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	// eventReaders are the relay's SSE readers: 1 KiB of read buffer each, reused from stream to
	// stream. Every open stream holds one for its whole life, so its size is memory per stream
	// (1 KiB instead of 2 measured 1.0 MB less per 1,000 slow streams, 42.1 against 43.1 MB over
	// HTTP/1.1, four runs each); chat chunks are a few hundred bytes, so 1 KiB still sees the next
	// event for EventBuffered, and a longer line is assembled by the reader (one more copy of it,
	// into a buffer the pooled reader keeps). One event is not bounded beyond what memory allows
	// (math.MaxInt), as before the relay shared the reader.
	eventReaders = sync.Pool{New: func() any { return sse.NewRawReader(nil, math.MaxInt, 1<<10) }}
)

func getBuffer() *bytes.Buffer { b := bufPool.Get().(*bytes.Buffer); b.Reset(); return b }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 { // do not keep rare huge buffers alive
		bufPool.Put(b)
	}
}

var (
	dataField  = []byte("data")
	doneMarker = []byte("[DONE]")
	usageKey   = []byte(`"usage":`)
	usageNull  = []byte(`"usage":null`)
	errorField = []byte(`"error"`)
)

// errStreamCut is the upstream ending a stream without its [DONE] marker.
var errStreamCut = errors.New("upstream stream ended before [DONE]")

// sseRelay forwards one SSE stream event by event: each event is written and flushed as soon as
// its terminating blank line arrives, never coalesced. It reads usage on the way and, when the
// gateway injected stream_options.include_usage, hides what the client did not ask for. It builds
// the stream's outcome as it goes.
type sseRelay struct {
	x        *exchange
	w        http.ResponseWriter
	rc       *http.ResponseController
	events   *sse.Reader
	secrets  []string // the deployment's credentials, never relayed in its error events
	injected bool
	deadline writeDeadline
	sawDone  bool // the stream's end arrived: [DONE], or a Responses stream's terminal event
	upErr    bool // the upstream sent an error event
	out      outcome
	// resp follows a Responses API stream, whose events differ from chat chunks; nil for others.
	resp *responsesStream
	// msgs follows an Anthropic Messages stream; nil for others.
	msgs *messagesStream
}

// relayStream relays an SSE answer and reports how it ended through out (not as a result, which
// would add an outcome to the frames of answerHanded, see aside.go).
func (x *exchange) relayStream(out *outcome, resp *http.Response, injected bool, secrets []string) {
	x.g.metrics.streams.Inc()
	defer x.g.metrics.streams.Dec()
	rc := http.NewResponseController(x.c.Writer)
	s := &sseRelay{x: x, w: x.c.Writer, rc: rc, deadline: x.g.writeDeadline(rc), injected: injected, secrets: secrets}
	defer carry(&s.out)
	s.out.status = http.StatusOK
	if !x.streamBegun {
		x.streamHeaders()
	}

	events := eventReaders.Get().(*sse.Reader)
	events.Reset(resp.Body)
	s.events = events
	defer func() {
		events.Reset(nil)
		eventReaders.Put(events)
	}()
	handle := s.event
	if x.ep == providers.Responses {
		s.resp = &responsesStream{seq: -1}
		s.resp.translated, _ = resp.Body.(*responses.Stream)
		defer s.waitRemembered()
		handle = s.responsesEvent
	} else if x.ep == providers.Messages {
		s.msgs = &messagesStream{}
		s.msgs.translated, _ = resp.Body.(messagesTranslatedStream)
		handle = s.messagesEvent
	} else if isAudio(x.ep) {
		handle = s.audioEvent
	} else if isImages(x.ep) {
		handle = s.imageEvent
	}
	var err error
	for err == nil {
		var ev sse.Event
		ev, err = events.Next()
		if err != nil && err != sse.ErrUnterminated {
			break
		}
		// The last event without its blank line is passed on all the same.
		if handle(ev) != nil {
			s.out.fail(context.Canceled) // the client went away
			*out = s.out
			return
		}
	}
	if err == sse.ErrUnterminated {
		err = io.EOF
	}
	// A retrieval's stream (GET /v1/responses/{id}?stream=true) holds only the events after
	// starting_after, none when the response was complete by then: its clean end is the end. A
	// dropped connection is still a cut.
	if err == io.EOF && !s.sawDone && !x.lookup {
		err = errStreamCut
	}
	s.finish(err)
	*out = s.out
}

// streamHeaders sets an SSE answer's headers and its status, 200: how relayStream begins, unless
// they are out already (exchange.streamBegun).
func (x *exchange) streamHeaders() {
	h := x.c.Writer.Header()
	headers.Set(h, "Content-Type", "text/event-stream", "Cache-Control", "no-cache", "X-Accel-Buffering", "no")
	h.Del("Content-Length")
	x.serverTiming()
	x.c.Writer.WriteHeader(http.StatusOK)
}

// errTypeStreamBroken is the record's error type of a stream the upstream broke off or ended
// with an error event, after the answer had begun.
const errTypeStreamBroken = "upstream_stream_error"

// finish decides how the stream ended. A client that left is 499; an upstream that failed after
// the first byte, or a drain deadline that cut the stream, gets an SSE error event so the client
// never mistakes it for a clean end.
func (s *sseRelay) finish(err error) {
	switch {
	case s.sawDone && !s.upErr:
		// [DONE] reached the client: the stream is complete, even if the client hung up before
		// the upstream's end of body was read.
	case s.sawDone:
		s.out.status, s.out.errType = http.StatusBadGateway, errTypeStreamBroken
	case s.x.cut(): // the drain deadline: the client is still there and gets told why
		s.out.fail(errShuttingDown)
		_ = s.errorEvent(errShuttingDown)
	case s.x.ctx.Err() != nil:
		s.out.fail(context.Canceled) // the client went away
	case s.upErr:
		// The upstream (or a translating adapter) ended with an error event: the client has it,
		// and a second one would only confuse.
		s.out.status, s.out.errType = http.StatusBadGateway, errTypeStreamBroken
	case isAttemptTimeout(err): // the deployment's idle or total timeout cut it
		s.out.fail(err)
		_ = s.errorEvent(err)
	case err != io.EOF:
		s.out.status, s.out.errType = http.StatusBadGateway, errTypeStreamBroken
		_ = s.errorEvent(errStreamInterrupted)
	}
}

// errStreamInterrupted ends a stream the upstream broke off.
var errStreamInterrupted = newError(http.StatusBadGateway, api.TypeUpstream, "stream_interrupted", "", "The upstream stream was interrupted before it completed.")

// errorEvent tells the client that the stream failed, in the stream's own form: a data-only
// event with the error envelope for chat and completions, an "error" event for the Responses API
// and the Messages API.
func (s *sseRelay) errorEvent(err error) error {
	status, e := classify(err)
	switch {
	case s.resp != nil:
		return s.write(s.resp.errorEvent(e))
	case s.msgs != nil:
		return s.write(s.msgs.errorEvent(status, e))
	}
	return s.write(append(append([]byte("data: "), e.Marshal()...), '\n', '\n'))
}

// event handles one complete event: ev.Raw holds its lines, without the blank line that ended
// them, and is the Reader's buffer, free to be rewritten in place until the next event.
func (s *sseRelay) event(e sse.Event) error {
	ev, payload := e.Raw, e.Data
	if payload == nil {
		return s.write(append(ev, '\n')) // comment or keep-alive: pass it on
	}
	if bytes.Equal(payload, doneMarker) {
		s.sawDone = true
		return s.write(append(ev, '\n'))
	}
	if indexQuoted(payload, errorField) >= 0 && gjson.GetBytes(payload, "error").IsObject() {
		s.upErr = true // error text is never counted as answer
		// An error event's message is relayed, as an error answer's is, without credentials.
		if m := gjson.GetBytes(payload, "error.message"); m.Type == gjson.String {
			if clean := redact.Credentials(m.Str, s.secrets...); clean != m.Str {
				if out, err := sjson.SetBytes(payload, "error.message", clean); err == nil {
					return s.write(rewriteEvent(ev, out))
				}
			}
		}
	} else {
		s.out.answer.addChunk(payload)
	}
	// Where "usage": first appears, and whether it appears again: one scan of the payload in all
	// (this runs for every event), where counting and then searching took two or three.
	first := indexQuoted(payload, usageKey)
	again := first >= 0 && indexQuoted(payload[first+len(usageKey):], usageKey) >= 0
	switch {
	case first < 0:
	case !again && bytes.HasPrefix(payload[first:], usageNull):
		// Every chunk of a stream with include_usage carries "usage":null. When the gateway asked
		// for it, splice it out without parsing the chunk; other spellings take the path below.
		if s.injected {
			if out, ok := dropUsageNull(ev); ok {
				return s.write(append(out, '\n'))
			}
			if stripped, err := sjson.DeleteBytes(payload, "usage"); err == nil {
				return s.write(rewriteEvent(ev, stripped))
			}
		}
	default:
		// Providers differ in where usage comes: a chunk of its own (OpenAI, DeepSeek, Ollama), the
		// chunk with the finish_reason (GLM), inside the choice (Moonshot), or on every chunk,
		// cumulative (vLLM's continuous_usage_stats). Each is the total so far, so the last one
		// seen is the answer's usage: it is billed once.
		u := gjson.GetBytes(payload, "usage")
		if u.IsObject() {
			s.out.usage = parseUsage(u)
		} else if cu := gjson.GetBytes(payload, "choices.0.usage"); cu.IsObject() {
			s.out.usage = parseUsage(cu)
			if s.injected {
				stripped, err := sjson.DeleteBytes(payload, "choices.0.usage")
				if err == nil && u.Exists() {
					stripped, err = sjson.DeleteBytes(stripped, "usage")
				}
				if err == nil {
					return s.write(rewriteEvent(ev, stripped))
				}
			}
		}
		if s.injected && u.Exists() {
			if u.IsObject() && gjson.GetBytes(payload, "choices.#").Int() == 0 {
				return s.flush() // the usage chunk only the gateway asked for: dropped
			}
			stripped, err := sjson.DeleteBytes(payload, "usage")
			if err == nil {
				return s.write(rewriteEvent(ev, stripped))
			}
		}
	}
	return s.write(append(ev, '\n'))
}

// rewriteEvent renders an event with new data: its other lines (event:, id:, retry:) are kept,
// and each line of data gets its own "data:" line, as SSE requires.
func rewriteEvent(ev, data []byte) []byte {
	out := make([]byte, 0, len(ev)+len(data)+8)
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i+1], ev[i+1:]
		} else {
			ev = nil
		}
		if !isDataLine(line) {
			out = append(out, line...)
			if line[len(line)-1] != '\n' {
				out = append(out, '\n')
			}
		}
	}
	for {
		line := data
		i := bytes.IndexByte(data, '\n')
		if i >= 0 {
			line = data[:i]
		}
		out = append(append(append(out, "data: "...), line...), '\n')
		if i < 0 {
			break
		}
		data = data[i+1:]
	}
	return append(out, '\n')
}

// isDataLine reports whether a line of an event is a data field ("data:…", or "data" alone, which
// SSE reads as empty data), as sse.Reader reads it.
func isDataLine(line []byte) bool {
	field := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if i := bytes.IndexByte(field, ':'); i >= 0 {
		field = field[:i]
	}
	return bytes.Equal(field, dataField)
}

// write sends bytes to the client under the write deadline and flushes them, unless a
// complete next event is already buffered from the upstream: then it goes out in the same write,
// so events that arrived together leave together and none ever waits for a later read.
func (s *sseRelay) write(b []byte) error {
	now := time.Now()
	s.deadline.arm(now)
	if s.out.firstByte.IsZero() {
		s.out.firstByte = now
	}
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.flush()
}

// writeDeadline is the write deadline of an answer written in many writes (a stream's events, a
// cached stream's parts, audio, /v1/usage events), so that a client that stops reading cannot pin
// it: each write gets gateway.write_timeout (T).
type writeDeadline struct {
	rc *http.ResponseController
	t  time.Duration
	at time.Time // the deadline set last
}

func (g *Gateway) writeDeadline(rc *http.ResponseController) writeDeadline {
	return writeDeadline{rc: rc, t: g.opts.WriteTimeout}
}

// arm is called before each write. It moves the connection's write deadline to now+T only when
// less than 7/8 T is left of the one set last: every write has between 7/8 T and T, and writes
// that come faster than T/8 apart set it once every T/8 instead of before each (setting one
// changes a runtime timer: 4 % of the stream relay's CPU in the bench profile).
func (d *writeDeadline) arm(now time.Time) {
	if d.at.Sub(now) >= d.t-d.t/8 {
		return
	}
	d.at = now.Add(d.t)
	_ = d.rc.SetWriteDeadline(d.at)
}

// flush sends what has been written unless a complete next event is already buffered.
func (s *sseRelay) flush() error {
	if s.events.EventBuffered() {
		return nil
	}
	return s.rc.Flush()
}

// indexQuoted is bytes.Index(b, sep) for a sep that begins with a quote, found by what follows
// the quote: JSON has a quote every few bytes, and a search led by one tries each of them
// (bytes.Index gives up on its fast path after a handful), where the letter after it is rare.
func indexQuoted(b, sep []byte) int {
	rest := sep[1:]
	for off := 0; ; {
		i := bytes.Index(b[off:], rest)
		if i < 0 {
			return -1
		}
		if i += off; i > 0 && b[i-1] == '"' {
			return i - 1
		}
		off = i + 1
	}
}

// dropUsageNull removes `,"usage":null` (or `"usage":null,`) from a raw event in place.
func dropUsageNull(ev []byte) ([]byte, bool) {
	i := indexQuoted(ev, usageNull)
	switch {
	case i < 0:
		return ev, false
	case i > 0 && ev[i-1] == ',':
		return append(ev[:i-1], ev[i+len(usageNull):]...), true
	case i+len(usageNull) < len(ev) && ev[i+len(usageNull)] == ',':
		return append(ev[:i], ev[i+len(usageNull)+1:]...), true
	}
	return ev, false
}
