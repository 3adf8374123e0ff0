package messages

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/providers/internal/chatanswer"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file translates a chat.completion.chunk stream into the Messages event stream
// (PROVIDERS-2.md §2.2, §2.6), on Read: each Read pulls upstream events until at least one
// translated event is ready, so events leave as the upstream's chunks arrive and nothing is
// buffered beyond one chunk.
//
//	first chunk                  → message_start (empty content, stop_reason null, the usage
//	                               known so far: zeros, as the chat usage comes last)
//	delta.reasoning_content      → content_block_start{thinking}, thinking_delta…
//	delta.content, delta.refusal → content_block_start{text}, text_delta…
//	delta.tool_calls[i] (new i)  → content_block_start{tool_use, id, name, input:{}}
//	tool_calls[i].function.arguments → input_json_delta
//	finish_reason                → content_block_stop of the open block; later deltas ignored
//	usage (any chunk)            → kept; the last one seen is the answer's
//	data: [DONE]                 → message_delta (stop_reason, stop_sequence, usage), message_stop;
//	                               the body ends
//	{"error":{…}}                → an error event; the body ends
//
// Blocks are sequential, as Anthropic streams them: a block of another kind, or another tool
// call, stops the open block first. Upstreams stream parallel tool calls one after the other;
// one that goes back to the arguments of a call already stopped cannot be relayed in this
// form, and the stream ends with an error event. A body that ends without [DONE] ends the
// stream with io.ErrUnexpectedEOF and no message_stop; the gateway then writes an error event
// (AppendError) and records the answer as partial.

// Stream is the translated body of a streamed Message. It is not safe for concurrent use
// (Close may be called while a Read is blocked, as for any response body).
type Stream struct {
	body   io.ReadCloser
	chunks *chatanswer.Reader

	oairender.Pump // Read: the translated bytes, Step: step

	info     RequestInfo
	started  bool
	finished bool   // the finish_reason arrived: the blocks are done
	finish   string // the finish_reason
	matched  string // the stop string the upstream says it stopped at
	refused  bool   // the upstream sent a refusal
	failed   bool
	usage    Usage
	text     strings.Builder // what the client was given: text, thinking, tool arguments

	block   byte // the open block: 0 none, 'k' thinking, 't' text, 'u' tool_use
	nBlocks int  // blocks started; the open one is nBlocks-1
	calls   []call
	scratch []byte
}

// call is a tool call of the answer, keyed by the chat tool_calls index.
type call struct {
	chatIndex int64
	block     int
}

// NewStream translates body, a chat.completion.chunk stream answering the request info
// describes.
func NewStream(body io.ReadCloser, info RequestInfo) *Stream {
	s := &Stream{body: body, chunks: chatanswer.NewReader(body), info: info}
	s.Step = s.step
	return s
}

// Close closes the upstream body.
func (s *Stream) Close() error {
	if s.Err == nil {
		s.Err = http.ErrBodyReadAfterClose
	}
	return s.body.Close()
}

// Usage is the usage the upstream reported so far (Present false when none).
func (s *Stream) Usage() Usage { return s.usage }

// Text is the answer delivered so far (text, thinking, tool call arguments), for counting
// tokens when the upstream reported no usage.
func (s *Stream) Text() string { return s.text.String() }

// Failed reports whether the stream ended with an error event (the upstream's, or for a
// broken upstream stream), after which no message_stop comes.
func (s *Stream) Failed() bool { return s.failed }

// AppendError appends an Anthropic error event: what the gateway writes when the upstream is
// cut or times out after the stream began (errType overloaded_error, api_error…).
func (s *Stream) AppendError(dst []byte, errType, message string) []byte {
	return AppendErrorEvent(dst, errType, message)
}

// AppendErrorEvent appends an Anthropic error event, for a stream that is not a translation
// (a relayed Messages stream cut by its upstream).
func AppendErrorEvent(dst []byte, errType, message string) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = appendErrorObject(dst, errType, message)
	return append(dst, "\n\n"...)
}

// step reads one upstream chunk and translates it.
func (s *Stream) step() {
	c, err := s.chunks.Next()
	var ue *chatanswer.UpstreamError
	var be *chatanswer.BrokenError
	switch {
	case err == nil:
		s.dispatch(c)
	case err == io.EOF: // data: [DONE]
		s.complete()
	case errors.As(err, &ue):
		s.fail(upstreamErrorType(ue.Type, ue.Code), ue.Message)
	case errors.As(err, &be):
		s.broken(be.Message)
	default:
		s.Err = err
	}
}

// dispatch translates one upstream chunk.
func (s *Stream) dispatch(c chatanswer.Chunk) {
	if c.Usage.IsObject() {
		s.usage = parseUsage(c.Usage)
	}
	s.start()
	if s.finished || !c.Choice.IsObject() {
		return
	}
	if r := c.Reasoning(); r != "" {
		s.delta('k', r)
	}
	if t := c.Content(); t != "" {
		s.delta('t', t)
	}
	if r := c.Refusal(); r != "" {
		s.refused = true
		s.delta('t', r)
	}
	c.ToolCalls(func(idx int64, tc gjson.Result) bool {
		s.callDelta(idx, tc)
		return !s.failed
	})
	if s.failed {
		return
	}
	if f := c.FinishReason(); f != "" {
		s.finish, s.matched, s.finished = f, matchedStop(c.Choice), true
		s.stopBlock()
	}
}

// upstreamErrorType keeps an upstream's error type, or else its code, when it is one of
// Anthropic's (an overloaded_error code tells a client it may retry), else api_error.
func upstreamErrorType(typ, code string) string {
	for _, t := range [...]string{typ, code} {
		switch t {
		case TypeInvalidRequest, TypeAuthentication, TypeBilling, TypePermission, TypeNotFound,
			TypeRequestTooBig, TypeRateLimit, TypeAPI, TypeTimeout, TypeOverloaded:
			return t
		}
	}
	return TypeAPI
}

// event appends one event whose data is the rest of the bytes appended until end: the head
// opens the data object after "type".
func (s *Stream) head(typ string) {
	s.Out = append(s.Out, "event: "...)
	s.Out = append(s.Out, typ...)
	s.Out = append(s.Out, "\ndata: {\"type\":\""...)
	s.Out = append(s.Out, typ...)
	s.Out = append(s.Out, '"')
}

func (s *Stream) end() { s.Out = append(s.Out, "}\n\n"...) }

func (s *Stream) index(i int) {
	s.Out = append(s.Out, `,"index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(i), 10)
}

// start sends message_start once, before anything else.
func (s *Stream) start() {
	if s.started {
		return
	}
	s.started = true
	s.head("message_start")
	s.Out = append(s.Out, `,"message":`...)
	s.Out = s.info.appendMessage(s.Out, nil, "", "", s.usage)
	s.end()
}

// startBlock stops the open block and starts a new one, rendered in s.scratch.
func (s *Stream) startBlock(kind byte, block []byte) {
	s.stopBlock()
	s.block = kind
	s.nBlocks++
	s.head("content_block_start")
	s.index(s.nBlocks - 1)
	s.Out = append(s.Out, `,"content_block":`...)
	s.Out = append(s.Out, block...)
	s.end()
}

// stopBlock sends content_block_stop for the open block, if any.
func (s *Stream) stopBlock() {
	if s.block == 0 {
		return
	}
	s.block = 0
	s.head("content_block_stop")
	s.index(s.nBlocks - 1)
	s.end()
}

// delta adds text to a thinking ('k') or text ('t') block, starting one as needed.
func (s *Stream) delta(kind byte, text string) {
	if s.block != kind {
		if kind == 'k' {
			s.startBlock(kind, appendThinkingBlock(s.scratch[:0], ""))
		} else {
			s.startBlock(kind, appendTextBlock(s.scratch[:0], ""))
		}
	}
	s.text.WriteString(text)
	s.head("content_block_delta")
	s.index(s.nBlocks - 1)
	if kind == 'k' {
		s.Out = append(s.Out, `,"delta":{"type":"thinking_delta","thinking":`...)
	} else {
		s.Out = append(s.Out, `,"delta":{"type":"text_delta","text":`...)
	}
	s.Out = jsonappend.String(s.Out, text)
	s.Out = append(s.Out, '}')
	s.end()
}

// callDelta handles one tool_calls entry of a chunk.
func (s *Stream) callDelta(chatIndex int64, tc gjson.Result) {
	var c *call
	for i := range s.calls {
		if s.calls[i].chatIndex == chatIndex {
			c = &s.calls[i]
		}
	}
	f := tc.Get("function")
	switch {
	case c == nil:
		id := s.info.toolUseID(tc.Get("id").Str, len(s.calls))
		s.startBlock('u', appendToolUseBlock(s.scratch[:0], id, f.Get("name").Str, []byte("{}")))
		s.calls = append(s.calls, call{chatIndex: chatIndex, block: s.nBlocks - 1})
		c = &s.calls[len(s.calls)-1]
	case s.block != 'u' || c.block != s.nBlocks-1:
		if a := f.Get("arguments"); a.Str == "" {
			return // nothing for the stopped call: its id or name repeated
		}
		s.broken("The upstream interleaved the arguments of its tool calls, which the Messages stream cannot carry.")
		return
	}
	if a := f.Get("arguments"); a.Type == gjson.String && a.Str != "" {
		s.text.WriteString(a.Str)
		s.head("content_block_delta")
		s.index(c.block)
		s.Out = append(s.Out, `,"delta":{"type":"input_json_delta","partial_json":`...)
		s.Out = jsonappend.String(s.Out, a.Str)
		s.Out = append(s.Out, '}')
		s.end()
	}
}

// complete ends a stream at [DONE]: the open block is stopped, then message_delta and
// message_stop.
func (s *Stream) complete() {
	s.start()
	s.stopBlock()
	reason, seq := s.info.stopReason(s.finish, s.matched, len(s.calls) > 0)
	if s.refused && reason == "end_turn" {
		reason = "refusal"
	}
	s.head("message_delta")
	s.Out = append(s.Out, `,"delta":{"stop_reason":`...)
	s.Out = appendOptString(s.Out, reason)
	s.Out = append(s.Out, `,"stop_sequence":`...)
	s.Out = appendOptString(s.Out, seq)
	s.Out = append(s.Out, `},"usage":`...)
	s.Out = s.usage.appendJSON(s.Out)
	s.end()
	s.head("message_stop")
	s.end()
	s.Err = io.EOF
}

// fail ends the stream with an error event and no message_stop.
func (s *Stream) fail(errType, message string) {
	s.failed = true
	s.Out = s.AppendError(s.Out, errType, message)
	s.Err = io.EOF
}

// broken ends a stream the translator cannot follow.
func (s *Stream) broken(msg string) { s.fail(TypeAPI, msg) }
