package mock

import (
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// appendMessageHead renders `{"id":"msg_mock_<seq>","type":"message","role":"assistant","model":…`
// leaving the object open.
func appendMessageHead(dst []byte, c *messagesCall, seq uint64) []byte {
	dst = append(dst, `{"id":"msg_mock_`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","type":"message","role":"assistant","model":`...)
	return append(dst, c.model...)
}

// appendAnthropicUsage renders a Messages usage object; output is the output_tokens to report.
func appendAnthropicUsage(dst []byte, u anthropicUsage, output int) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.input), 10)
	dst = append(dst, `,"cache_creation_input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.write), 10)
	dst = append(dst, `,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(u.read), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, int64(output), 10)
	return append(dst, '}')
}

func appendStopSequence(dst []byte, a *answerPlan) []byte {
	if a.stopSeq == "" {
		return append(dst, "null"...)
	}
	return append(append(append(dst, '"'), a.stopSeq...), '"') // a vocabulary word: no escaping
}

func toolUseID(seq uint64, i int) string {
	return "toolu_mock_" + strconv.FormatUint(seq, 10) + "_" + strconv.Itoa(i)
}

// appendMessage renders a whole non-stream answer.
func appendMessage(dst []byte, c *messagesCall, a *answerPlan, u anthropicUsage, seq uint64) []byte {
	dst = appendMessageHead(dst, c, seq)
	dst = append(dst, `,"content":[`...)
	if len(a.calls) == 0 {
		dst = append(dst, `{"type":"text","text":"`...)
		dst = appendWords(dst, 0, a.tokens)
		dst = append(dst, `"}`...)
	}
	for i, t := range a.calls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"tool_use","id":"`...)
		dst = append(dst, toolUseID(seq, i)...)
		dst = append(dst, `","name":`...)
		dst = appendJSONString(dst, t.name)
		dst = append(dst, `,"input":`...)
		dst = append(dst, a.inputs[i]...)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"stop_reason":"`...)
	dst = append(dst, a.stopReason...)
	dst = append(dst, `","stop_sequence":`...)
	dst = appendStopSequence(dst, a)
	if !c.b.noUsage {
		dst = append(dst, `,"usage":`...)
		dst = appendAnthropicUsage(dst, u, a.tokens)
	}
	return append(dst, '}')
}

func appendJSONString(dst []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(dst, q...)
}

// anthropicSSE writes named events, one flush each: as SSE, or, for Bedrock's
// InvokeModelWithResponseStream, as event-stream messages (frames).
type anthropicSSE struct {
	s      sseWriter
	buf    []byte
	frames *frameWriter
}

// event writes `event: <name>\ndata: <data>\n\n`.
func (e *anthropicSSE) event(name string, data []byte) bool {
	if e.frames != nil {
		return e.frames.anthropicEvent(name, data)
	}
	b := append(e.buf[:0], "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	ok := e.s.sendRaw(b)
	e.buf = e.s.buf
	return ok
}

// writeMessagesStream answers as Anthropic's event stream: message_start, one content block per
// text answer (or per tool call), ping, the deltas, message_delta with the stop reason and the
// cumulative usage, message_stop. fail_after replaces the rest with an error event.
func writeMessagesStream(w http.ResponseWriter, wt *waiter, c *messagesCall, a *answerPlan, u anthropicUsage, seq uint64, frames *frameWriter) outcome {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	if frames != nil {
		hd.Set("Content-Type", eventStreamType)
	}
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Request-Id", "req_mock_"+strconv.FormatUint(seq, 10))
	w.WriteHeader(http.StatusOK)
	sb := getBuffer()
	defer putBuffer(sb)
	db := getBuffer()
	defer putBuffer(db)
	e := anthropicSSE{s: sseWriter{w: w, rc: http.NewResponseController(w), buf: *sb}, buf: *sb, frames: frames}
	defer func() { *sb = e.buf }()
	d := (*db)[:0]
	defer func() { *db = d }()
	if !e.s.flush() {
		return outcomeCanceled
	}
	if !wt.wait(c.b.ttft) {
		return outcomeCanceled
	}
	d = append(d[:0], `{"type":"message_start","message":`...)
	d = appendMessageHead(d, c, seq)
	d = append(d, `,"content":[],"stop_reason":null,"stop_sequence":null`...)
	if !c.b.noUsage {
		d = append(d, `,"usage":`...)
		d = appendAnthropicUsage(d, u, 1)
	}
	d = append(d, "}}"...)
	if !e.event("message_start", d) {
		return outcomeCanceled
	}
	failed := func() outcome {
		if !e.event("error", []byte(`{"type":"error","error":{"type":"overloaded_error","message":"mock: simulated overload mid-stream"}}`)) {
			return outcomeCanceled
		}
		return outcomeAborted
	}
	gap := c.b.gap()
	if len(a.calls) == 0 {
		if !e.event("content_block_start", []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)) ||
			!e.event("ping", []byte(`{"type": "ping"}`)) {
			return outcomeCanceled
		}
		tpc := c.b.tokensPerChunk
		for i := range a.chunks {
			if i == c.b.failAfter {
				return failed()
			}
			if i > 0 && !wt.wait(gap) {
				return outcomeCanceled
			}
			if c.expired != nil && c.expired() {
				if !e.event("error", []byte(`{"type":"error","error":{"type":"authentication_error","message":"`+errUnauthenticated+`"}}`)) {
					return outcomeCanceled
				}
				return outcomeError
			}
			d = append(d[:0], `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`...)
			d = appendWords(d, i*tpc, min((i+1)*tpc, a.tokens))
			d = append(d, `"}}`...)
			if !e.event("content_block_delta", d) {
				return outcomeCanceled
			}
		}
		if c.b.failAfter >= a.chunks {
			return failed()
		}
		if !e.event("content_block_stop", []byte(`{"type":"content_block_stop","index":0}`)) {
			return outcomeCanceled
		}
	}
	for i, t := range a.calls {
		if i == c.b.failAfter {
			return failed()
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		idx := strconv.Itoa(i)
		d = append(d[:0], `{"type":"content_block_start","index":`...)
		d = append(d, idx...)
		d = append(d, `,"content_block":{"type":"tool_use","id":"`...)
		d = append(d, toolUseID(seq, i)...)
		d = append(d, `","name":`...)
		d = appendJSONString(d, t.name)
		d = append(d, `,"input":{}}}`...)
		if !e.event("content_block_start", d) {
			return outcomeCanceled
		}
		if i == 0 && !e.event("ping", []byte(`{"type": "ping"}`)) {
			return outcomeCanceled
		}
		// The input arrives as JSON fragments, the first one empty, as Anthropic streams it.
		in := a.inputs[i]
		for _, frag := range append([]string{""}, fragments(in, 8)...) {
			d = append(d[:0], `{"type":"content_block_delta","index":`...)
			d = append(d, idx...)
			d = append(d, `,"delta":{"type":"input_json_delta","partial_json":`...)
			d = appendJSONString(d, frag)
			d = append(d, "}}"...)
			if !e.event("content_block_delta", d) {
				return outcomeCanceled
			}
		}
		d = append(d[:0], `{"type":"content_block_stop","index":`...)
		d = append(d, idx...)
		d = append(d, '}')
		if !e.event("content_block_stop", d) {
			return outcomeCanceled
		}
	}
	if len(a.calls) > 0 && c.b.failAfter >= len(a.calls) {
		return failed()
	}
	d = append(d[:0], `{"type":"message_delta","delta":{"stop_reason":"`...)
	d = append(d, a.stopReason...)
	d = append(d, `","stop_sequence":`...)
	d = appendStopSequence(d, a)
	d = append(d, '}')
	if !c.b.noUsage {
		d = append(d, `,"usage":`...)
		d = appendAnthropicUsage(d, u, a.tokens)
	}
	d = append(d, '}')
	if !e.event("message_delta", d) || !e.event("message_stop", []byte(`{"type":"message_stop"}`)) {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// fragments splits s into pieces of about n bytes, never inside a UTF-8 sequence.
func fragments(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		k := min(n, len(s))
		for k < len(s) && !utf8.RuneStart(s[k]) {
			k++
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}
