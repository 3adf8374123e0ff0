package anthropic

import (
	"cmp"
	"io"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file translates a Messages event stream (PROVIDERS.md §3.4) into OpenAI's
// chat.completion.chunk stream, on Read: each Read pulls upstream events until at least one
// translated event is ready, so chunks leave as the upstream's events arrive and nothing is
// buffered beyond one event.
//
//	message_start                 → the role chunk ({"role":"assistant","content":""}); usage noted
//	content_block_start text      → nothing (or its text, if any)
//	content_block_start tool_use  → tool_calls[{index, id, type, function{name, arguments:""}}]
//	content_block_delta text      → {"content": …}
//	content_block_delta thinking  → {"reasoning_content": …}
//	content_block_delta input_json→ tool_calls[{index, function{arguments: …}}]
//	content_block_stop            → arguments "{}" for a tool that streamed no input
//	message_delta                 → stop_reason and cumulative usage noted
//	message_stop                  → the finish_reason chunk, the usage chunk (choices: [], only
//	                                when stream_options.include_usage), "data: [DONE]"
//	error                         → data: {"error":{…}} in OpenAI's shape, then the end of the
//	                                stream without [DONE]: the gateway records an upstream failure
//	ping, signature and citation deltas, unknown events → nothing
//
// A stream that ends before message_stop ends the body with io.ErrUnexpectedEOF (no [DONE]);
// an event that is not JSON ends it with an error event, as a broken upstream.

// maxEventBytes bounds one upstream event; a larger one ends the stream as broken.
const maxEventBytes = 16 << 20

// streamReader is the translated body. It is not safe for concurrent use (Close may be called
// while a Read is blocked, as for any response body).
type streamReader struct {
	body   io.ReadCloser
	events *sse.Reader

	oairender.Pump // Read: the translated bytes, Step: step

	model        string
	created      int64
	includeUsage bool
	head         []byte // `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,`
	started      bool   // the role chunk went out
	stopReason   string
	usage        Usage
	tools        []toolState
}

// toolState follows one tool_use block of the stream.
type toolState struct {
	block int64 // Anthropic's content block index
	index int   // OpenAI's tool_calls index
	args  bool  // some arguments were sent
}

func newStreamReader(body io.ReadCloser, model string, created int64, includeUsage bool) *streamReader {
	s := &streamReader{body: body, events: sse.NewReader(body, maxEventBytes), model: model,
		created: created, includeUsage: includeUsage}
	s.Step = s.step
	return s
}

// Close closes the upstream body.
func (s *streamReader) Close() error {
	if s.Err == nil {
		s.Err = http.ErrBodyReadAfterClose
	}
	return s.body.Close()
}

// step reads one upstream event and translates it.
func (s *streamReader) step() {
	ev, err := s.events.Next()
	switch err {
	case nil:
		s.dispatch(ev)
	case sse.ErrEventTooLarge:
		s.broken("An upstream stream event exceeded the size limit.")
	case io.EOF, sse.ErrUnterminated:
		// The upstream ended before message_stop. An event it left without its blank line is
		// dropped, as the SSE spec says: it may be cut anywhere.
		s.Err = io.ErrUnexpectedEOF
	default:
		s.Err = err
	}
}

// dispatch translates one upstream event.
func (s *streamReader) dispatch(raw sse.Event) {
	if !jsoncheck.Valid(raw.Data) {
		s.broken("The upstream sent a malformed stream event.")
		return
	}
	ev := gjson.ParseBytes(raw.Data)
	typ := ev.Get("type").Str
	if typ == "" {
		typ = string(raw.Name)
	}
	switch typ {
	case "message_start":
		m := ev.Get("message")
		s.setHead(m.Get("id"), m.Get("model"))
		s.usage.Update(m.Get("usage"))
		s.start()
	case "content_block_start":
		s.blockStart(ev.Get("index").Int(), ev.Get("content_block"))
	case "content_block_delta":
		s.blockDelta(ev.Get("index").Int(), ev.Get("delta"))
	case "content_block_stop":
		if t := s.tool(ev.Get("index").Int()); t != nil && !t.args {
			s.toolArgs(t, []byte(`"{}"`))
		}
	case "message_delta":
		if r := ev.Get("delta.stop_reason"); r.Type == gjson.String {
			s.stopReason = r.Str
		}
		s.usage.Update(ev.Get("usage"))
	case "message_stop":
		s.finish()
	case "error":
		e := ev.Get("error")
		typ, msg := e.Get("type").Str, e.Get("message").Str
		if msg == "" {
			msg = "The upstream failed while streaming its answer."
		}
		s.fail(api.NewError(openAIType(http.StatusInternalServerError, typ), typ, "", msg))
	}
}

// setHead fixes the fields every chunk starts with, from message_start (or from defaults when
// an upstream skipped it).
func (s *streamReader) setHead(id, model gjson.Result) {
	if s.head != nil {
		return
	}
	s.head = oairender.AppendChunkHead(make([]byte, 0, 128), cmp.Or(id.Str, "msg_unknown"), s.created, cmp.Or(model.Str, s.model))
}

// start sends the role chunk once, before anything else of the answer.
func (s *streamReader) start() {
	if s.started {
		return
	}
	s.setHead(gjson.Result{}, gjson.Result{})
	s.started = true
	s.openChunk()
	s.Out = append(s.Out, `"role":"assistant","content":""`...)
	s.closeChunk("")
}

func (s *streamReader) blockStart(index int64, cb gjson.Result) {
	switch cb.Get("type").Str {
	case "text":
		s.deltaText("content", cb.Get("text"))
	case "thinking":
		s.deltaText("reasoning_content", cb.Get("thinking"))
	case "tool_use":
		if s.tool(index) != nil {
			return // a repeated start: the call is already announced
		}
		s.start()
		s.tools = append(s.tools, toolState{block: index, index: len(s.tools)})
		t := &s.tools[len(s.tools)-1]
		s.openChunk()
		s.Out = append(s.Out, `"tool_calls":[{"index":`...)
		s.Out = strconv.AppendInt(s.Out, int64(t.index), 10)
		s.Out = append(s.Out, `,"id":`...)
		s.Out = appendRawString(s.Out, cb.Get("id"))
		s.Out = append(s.Out, `,"type":"function","function":{"name":`...)
		s.Out = appendRawString(s.Out, cb.Get("name"))
		s.Out = append(s.Out, `,"arguments":""}}]`...)
		s.closeChunk("")
		// Streamed tool_use blocks start with input {}; an upstream that sends the whole input
		// here instead still gets it through.
		if in := cb.Get("input"); in.IsObject() && len(in.Map()) > 0 {
			s.toolArgs(t, jsonappend.String(nil, in.Raw))
		}
	}
}

func (s *streamReader) blockDelta(index int64, d gjson.Result) {
	switch d.Get("type").Str {
	case "text_delta":
		s.deltaText("content", d.Get("text"))
	case "thinking_delta":
		s.deltaText("reasoning_content", d.Get("thinking"))
	case "input_json_delta":
		pj := d.Get("partial_json")
		if t := s.tool(index); t != nil && pj.Type == gjson.String && pj.Str != "" {
			s.toolArgs(t, []byte(pj.Raw))
		}
	}
}

// deltaText sends a text-like delta field, unless empty.
func (s *streamReader) deltaText(field string, v gjson.Result) {
	if v.Type != gjson.String || v.Str == "" {
		return
	}
	s.start()
	s.openChunk()
	s.Out = append(s.Out, '"')
	s.Out = append(s.Out, field...)
	s.Out = append(s.Out, `":`...)
	s.Out = append(s.Out, v.Raw...)
	s.closeChunk("")
}

// toolArgs sends a fragment of a tool call's arguments; frag is a JSON string.
func (s *streamReader) toolArgs(t *toolState, frag []byte) {
	t.args = true
	s.openChunk()
	s.Out = append(s.Out, `"tool_calls":[{"index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(t.index), 10)
	s.Out = append(s.Out, `,"function":{"arguments":`...)
	s.Out = append(s.Out, frag...)
	s.Out = append(s.Out, `}}]`...)
	s.closeChunk("")
}

func (s *streamReader) tool(block int64) *toolState {
	for i := range s.tools {
		if s.tools[i].block == block {
			return &s.tools[i]
		}
	}
	return nil
}

// openChunk starts a chunk, up to the inside of its delta object.
func (s *streamReader) openChunk() { s.Out = oairender.AppendChunkStart(s.Out, s.head) }

// closeChunk ends a chunk with its finish_reason (null when empty).
func (s *streamReader) closeChunk(finish string) { s.Out = oairender.AppendChunkEnd(s.Out, finish) }

// finish ends a complete stream: the one chunk with finish_reason, the one usage chunk, [DONE].
func (s *streamReader) finish() {
	s.start()
	for i := range s.tools {
		if !s.tools[i].args {
			s.toolArgs(&s.tools[i], []byte(`"{}"`))
		}
	}
	s.openChunk()
	s.closeChunk(finishReason(s.stopReason))
	if s.includeUsage && s.usage.Found {
		s.Out = oairender.AppendUsageChunk(s.Out, s.head, s.usage.openAI())
	}
	s.Out = append(s.Out, oairender.Done...)
	s.Err = io.EOF
}

// fail ends the stream with an OpenAI error event and no [DONE].
func (s *streamReader) fail(e api.ErrorObject) {
	s.Out = oairender.AppendErrorEvent(s.Out, e)
	s.Err = io.EOF
}

// broken ends a stream the adapter cannot follow.
func (s *streamReader) broken(msg string) {
	s.fail(api.NewError(api.TypeUpstream, "bad_upstream_event", "", msg))
}

// appendRawString appends a string value's JSON, or "" when v is not a string.
func appendRawString(dst []byte, v gjson.Result) []byte {
	if v.Type != gjson.String {
		return append(dst, `""`...)
	}
	return append(dst, v.Raw...)
}
