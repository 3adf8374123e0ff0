package gateway

import (
	"net/http"
	"runtime/debug"
	"time"

	"github.com/llmgate/llmgate/providers"
)

// A streamed answer is relayed on a goroutine whose stack holds little, so that the goroutine
// stays at the runtime's 8 KB while it waits on the upstream for the whole stream. The goroutine
// that serves a request starts small and doubles its stack whenever a call goes deeper; it keeps
// the largest size it reached for as long as it waits deeper than a quarter of it, so a stream
// that waits inside the request path's frames (relay, forward, tryModel, respond: some 6 KB,
// under net/http's and gin's 3 KB) holds 16 KB for its whole life. For 10,000 slow streams that
// was 80 MB.
//
// So a streamed request's path, from routing to the upstream's answer, runs aside (relayAside),
// on a worker goroutine that goes on to other requests once it has the answer.
// tryModel hands the answer back (exchange.handed) instead of relaying it, and the handler
// relays it (answerHanded) from the top of its frames. What the path needs net/http for once
// only, and 2.8 KB deep (writing the answer's headers), is done aside too, before the handoff
// (beginStream). The non-stream requests, which end at once, keep the path on the handler's
// goroutine: for them the handoff would only cost time. To a stream it costs some 15 µs of CPU
// on this 2-core machine (BenchmarkRelayStreamRequest 49-52 -> 62-72 µs), mostly in waking the
// other core.

// handoff is an upstream's answer that tryModel hands back instead of relaying it, with what it
// needs to settle the attempt once the answer is relayed (answered).
type handoff struct {
	resp     *http.Response
	injected bool
	secrets  []string
	d        *providers.Deployment
	span     *attemptSpan
	attempt  providers.Attempt
	began    time.Time
	n        int // the attempt's number
}

// relayAside runs the rest of the request path (f) on an aside worker and waits for it.
func (x *exchange) relayAside(f func() outcome) (out outcome) {
	x.aside = true
	runAside(func() { out = f() }, &out)
	return out
}

// runAside runs f on an aside worker and waits for it. A panic in f is raised again here, where
// settle recovers it, as a stepPanic that keeps f's stack and what out then held.
func runAside(f func(), out *outcome) {
	t := &asideTask{f: f, out: out, done: make(chan any, 1)}
	select {
	case asideTasks <- t: // a worker was waiting
	default:
		go asideWorker(t)
	}
	if p := <-t.done; p != nil {
		panic(p)
	}
}

// The aside workers are goroutines kept between tasks, so that a task runs on a stack already
// grown to what the request path needs: a goroutine started for each would start at 2-4 KB and
// copy its stack at every doubling, two or three times a stream. A worker waits for a next task
// for asideIdle, then ends; the collector shrinks the stacks of those waiting. asideTasks is
// unbuffered: a send succeeds only when a worker waits.
var asideTasks = make(chan *asideTask)

const asideIdle = 10 * time.Second

// asideTask is one call to run aside: f, and the outcome a panic reports (out); done receives
// nil when f returned, or its panic.
type asideTask struct {
	f    func()
	out  *outcome
	done chan any
}

func asideWorker(t *asideTask) {
	idle := time.NewTimer(asideIdle)
	defer idle.Stop()
	for {
		t.run()
		idle.Reset(asideIdle)
		select {
		case t = <-asideTasks:
		case <-idle.C:
			return
		}
	}
}

// run calls f and reports its end on done.
func (t *asideTask) run() {
	defer func() {
		p := recover()
		if p != nil {
			if _, ok := p.(*stepPanic); !ok {
				p = &stepPanic{value: p, stack: debug.Stack(), out: *t.out}
			}
		}
		t.done <- p
	}()
	t.f()
}

// answerHanded relays the answer tryModel handed back, on the handler's goroutine, and settles
// its attempt. It writes the outcome through out, as answered does, to keep outcomes (224 bytes)
// out of the frames a stream waits under.
func (x *exchange) answerHanded(out *outcome) {
	h := &x.handed
	defer carry(out)
	// The deployment is known before the relay: a panic in it is carried with it. answered sets
	// it again on the outcome the relay writes.
	out.d = h.d
	if x.plainStream(h.resp) { // respond's choice, without its frame in between
		defer h.resp.Body.Close()
		x.relayStream(out, h.resp, h.injected, h.secrets)
	} else {
		x.respondHanded(out)
	}
	x.answered(h, out)
}

// plainStream reports whether respond relays resp as it comes, with relayStream.
func (x *exchange) plainStream(resp *http.Response) bool {
	return x.translating == nil && x.msgsTranslating == nil && x.streamedAnswer(resp)
}

// streamedAnswer reports whether resp is relayed as a stream: the client asked for one and the
// upstream answers with an event stream (respond, and the translating relays).
func (x *exchange) streamedAnswer(resp *http.Response) bool {
	return x.rec.Stream && isEventStream(resp.Header.Get("Content-Type"))
}

// beginStream sends an SSE answer's headers, on the aside worker: writing them, net/http's
// frames go 3 KB deep. The handler's relayStream then sends the events. The client has the
// headers a little sooner, in a write of their own.
func (x *exchange) beginStream() {
	x.streamHeaders()
	_ = http.NewResponseController(x.c.Writer).Flush() // a client gone is found by the first event's write
	x.streamBegun = true
}

// respondHanded is respond for a handed answer that relayStream does not take (a translated
// stream, an answer that is not a stream). It is not inlined, so that respond's result stays out
// of answerHanded's frame.
//
//go:noinline
func (x *exchange) respondHanded(out *outcome) {
	h := &x.handed
	*out = x.respond(h.resp, h.injected, h.secrets)
}

// answered settles the attempt whose answer was relayed, as answer tells: its span, its
// deployment's breaker and latency, and the log line of an answer that broke off.
func (x *exchange) answered(h *handoff, answer *outcome) {
	answer.d = h.d
	endAttempt(h.span, h.resp.StatusCode, answer.errType)
	if !answer.firstByte.IsZero() {
		h.attempt.ObserveTTFT(answer.firstByte.Sub(h.began))
	}
	switch {
	case answer.status == StatusClientClosed:
		h.attempt.Excused()
	case answer.status >= 500: // the answer broke off: a failure, but too late to try another
		h.attempt.Failed("answer cut: " + answer.errType)
		cut := failedAttempt{d: h.d, n: h.n, outcome: "answer_cut", reason: answer.errType, took: time.Since(h.began)}
		x.logAttempt(&cut, false)
	default:
		h.attempt.Succeeded()
	}
}
