package mock

import (
	"net/http"
	"time"
)

// roleChoices is the first chat chunk's body, as OpenAI sends it: the role and empty content.
const roleChoices = `"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`

// writeStream answers a chat or text completion as server-sent events, one flush per event.
func writeStream(w http.ResponseWriter, wt *waiter, ep endpoint, c *call, seq uint64) outcome {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	buf := getBuffer()
	defer putBuffer(buf)
	s := sseWriter{w: w, rc: http.NewResponseController(w), usage: c.includeUsage && !c.b.noUsage}
	if !s.flush() {
		return outcomeCanceled
	}
	object := "text_completion"
	if ep == epChat {
		object = "chat.completion.chunk"
	}
	s.buf = append(*buf, "data: "...)
	s.buf = appendHead(s.buf, ep, object, seq, time.Now().Unix(), c.model)
	s.head = len(s.buf)
	defer func() { *buf = s.buf }()

	if !wt.wait(c.b.ttft) {
		return outcomeCanceled
	}
	if ep == epChat && !s.send(append(s.buf[:s.head], roleChoices...)) {
		return outcomeCanceled
	}
	if calls, n := c.plannedCalls(seq); ep == epChat && len(calls) > 0 {
		return s.sendCalls(wt, c, calls, n)
	}
	tokens, chunks, finish := c.plan()
	tpc, gap := c.b.tokensPerChunk, c.b.gap()
	for i := range chunks {
		if i == c.b.failAfter {
			return outcomeAborted
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		if !s.send(appendStreamChoices(s.buf[:s.head], ep, i*tpc, min((i+1)*tpc, tokens), "")) {
			return outcomeCanceled
		}
	}
	if c.b.failAfter >= chunks {
		return outcomeAborted
	}
	if !s.send(appendStreamChoices(s.buf[:s.head], ep, 0, 0, finish)) {
		return outcomeCanceled
	}
	return s.sendEnd(c, tokens)
}

// sendCalls streams a chat answer that calls tools (chat_tools.go): two chunks a call, the
// finish, the usage when asked for, [DONE]. fail_after counts the chunks of calls.
func (s *sseWriter) sendCalls(wt *waiter, c *call, calls []toolCall, tokens int) outcome {
	for i, cc := range calls {
		for j, argsOnly := range [...]bool{false, true} {
			if 2*i+j == c.b.failAfter {
				return outcomeAborted
			}
			if (i > 0 || j > 0) && !wt.wait(c.b.gap()) {
				return outcomeCanceled
			}
			ev := append(s.buf[:s.head], `"choices":[{"index":0,"delta":{"tool_calls":[`...)
			ev = appendToolCall(ev, i, cc, true, argsOnly)
			if !s.send(append(ev, `]},"logprobs":null,"finish_reason":null}]`...)) {
				return outcomeCanceled
			}
		}
	}
	if c.b.failAfter >= 0 && c.b.failAfter >= 2*len(calls) {
		return outcomeAborted
	}
	if !s.send(append(s.buf[:s.head], `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]`...)) {
		return outcomeCanceled
	}
	return s.sendEnd(c, tokens)
}

// sendEnd ends a chat stream: the usage chunk when asked for, then [DONE].
func (s *sseWriter) sendEnd(c *call, tokens int) outcome {
	if s.usage {
		ev := append(s.buf[:s.head], `"choices":[],"usage":`...)
		ev = appendUsage(ev, c.promptTokens, tokens)
		if !s.sendRaw(append(ev, "}\n\n"...)) {
			return outcomeCanceled
		}
	}
	if !s.sendRaw(append(s.buf[:0], "data: [DONE]\n\n"...)) {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// openEventStream starts an event stream answer that needs no usage chunk (images, transcripts):
// the headers, flushed, then the wait for the first byte. ok is false when the client left.
func openEventStream(w http.ResponseWriter, wt *waiter, c *call) (s sseWriter, ok bool) {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s = sseWriter{w: w, rc: http.NewResponseController(w)}
	if !s.flush() || !wt.wait(c.b.ttft) {
		return s, false
	}
	return s, true
}

// sseWriter writes the events of one stream. buf[:head] holds `data: ` and the answer's head
// fields, rendered once; each event is appended after it, so no event allocates.
type sseWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	buf   []byte
	head  int
	usage bool // include_usage: every chunk but the usage chunk carries "usage":null
}

// send closes the chunk object ev (head plus choices), writes it as one event and flushes it.
func (s *sseWriter) send(ev []byte) bool {
	if s.usage {
		ev = append(ev, `,"usage":null}`...)
	} else {
		ev = append(ev, '}')
	}
	return s.sendRaw(append(ev, "\n\n"...))
}

// sendRaw writes a complete event and flushes it, reporting whether the client is still there.
// It keeps ev as the buffer, which may have grown.
func (s *sseWriter) sendRaw(ev []byte) bool {
	s.buf = ev
	if _, err := s.w.Write(ev); err != nil {
		return false
	}
	return s.flush()
}

func (s *sseWriter) flush() bool {
	return s.rc.Flush() == nil
}
