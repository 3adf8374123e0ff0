package responses

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/providers/internal/chatanswer"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file translates a chat.completion.chunk stream into the Responses event stream
// (PROVIDERS-2.md §1.7–1.9, §1.11), on Read: each Read pulls upstream events until at least one
// translated event is ready, so events leave as the upstream's chunks arrive and nothing is
// buffered beyond one chunk.
//
//	first chunk                  → response.created, response.in_progress
//	delta.reasoning_content      → output_item.added{reasoning}, content_part.added{reasoning_text},
//	                               reasoning_text.delta…
//	delta.content                → (the reasoning item closed) output_item.added{message},
//	                               content_part.added{output_text}, output_text.delta…
//	delta.refusal                → a refusal part: content_part.added{refusal}, refusal.delta…
//	delta.tool_calls[i] (new i)  → (reasoning and message closed) output_item.added{function_call}
//	tool_calls[i].function.arguments → function_call_arguments.delta
//	finish_reason                → every open item closed: output_text.done, content_part.done,
//	                               function_call_arguments.done, output_item.done…
//	usage (any chunk)            → kept; the last one seen is the answer's
//	data: [DONE]                 → response.completed, or response.incomplete (length,
//	                               content_filter), with output and usage; the body ends
//	{"error":{…}}                → an error event; the body ends
//
// Function calls stay open until the finish_reason (or another kind of item), so that argument
// fragments of calls streamed side by side all land in their item. Deltas after the
// finish_reason are ignored: the items are done. A body that ends without [DONE] ends the stream
// with io.ErrUnexpectedEOF and no terminal event; the gateway then writes an error event
// (AppendError) and records the answer as partial.

// Stream is the translated body of a streamed Response. It is not safe for concurrent use
// (Close may be called while a Read is blocked, as for any response body).
type Stream struct {
	body   io.ReadCloser
	chunks *chatanswer.Reader

	oairender.Pump // Read: the translated bytes, Step: step

	info     RequestInfo
	seq      int64
	started  bool
	finished bool   // the finish_reason arrived: every item is done
	finish   string // the finish_reason
	usage    Usage
	text     strings.Builder // what the client was given: text, refusal, reasoning, arguments
	items    []byte          // the done items, comma-separated
	nItems   int             // the next output_index
	final    []byte          // the Response of the terminal event
	failed   bool            // the stream ended with an error event

	reasoning textItem
	message   messageItem
	calls     []callItem
	scratch   []byte
}

// textItem is an open reasoning item (or a message's part): its output_index, id and text.
type textItem struct {
	open  bool
	index int
	id    string
	buf   strings.Builder
}

// messageItem is an open message item and its current content part.
type messageItem struct {
	textItem
	part     byte   // 0 none, 't' output_text, 'r' refusal
	parts    int    // content parts opened so far
	done     []byte // the finished parts, rendered, comma-separated
	partText strings.Builder
}

// callItem is a function_call item, keyed by the chat tool_calls index.
type callItem struct {
	chatIndex int64
	index     int
	id        string
	callID    string
	name      string
	// args are the arguments so far: bytes, not a strings.Builder, since the item is kept by
	// value in a slice that is copied as it grows.
	args []byte
	open bool
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

// Usage is the usage the upstream reported so far (Found false when none).
func (s *Stream) Usage() Usage { return s.usage }

// Text is the answer text delivered so far (output text, refusals, reasoning, function call
// arguments), for counting tokens when the upstream reported no usage.
func (s *Stream) Text() string { return s.text.String() }

// Response is the final Response object, as the terminal event carried it; nil until the stream
// completed. The gateway stores it (and NextHistory of it) for GET and previous_response_id.
func (s *Stream) Response() []byte { return s.final }

// Failed reports whether the stream ended with an error event (the upstream's or a broken
// upstream stream), after which no terminal event comes.
func (s *Stream) Failed() bool { return s.failed }

// AppendError appends an error event with the stream's next sequence number: what the gateway
// writes when the upstream is cut or times out after the stream began.
func (s *Stream) AppendError(dst []byte, e api.ErrorObject) []byte {
	dst = s.appendEventHead(dst, "error")
	dst = append(dst, `,"code":`...)
	dst = appendOptString(dst, e.Code)
	dst = append(dst, `,"message":`...)
	dst = jsonappend.String(dst, e.Message)
	dst = append(dst, `,"param":`...)
	dst = appendOptString(dst, e.Param)
	return append(dst, "}\n\n"...)
}

func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return jsonappend.String(dst, *s)
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
		s.fail(api.NewError(api.TypeUpstream, ue.Code, ue.Param, ue.Message))
	case errors.As(err, &be):
		s.broken(be.Message)
	default:
		s.Err = err
	}
}

// dispatch translates one upstream chunk.
func (s *Stream) dispatch(c chatanswer.Chunk) {
	s.start()
	if c.Usage.IsObject() {
		s.usage = parseUsage(c.Usage)
	}
	if s.finished || !c.Choice.IsObject() {
		return
	}
	if r := c.Reasoning(); r != "" {
		s.reasoningDelta(r)
	}
	if t := c.Content(); t != "" {
		s.messageDelta('t', t)
	}
	if r := c.Refusal(); r != "" {
		s.messageDelta('r', r)
	}
	c.ToolCalls(func(idx int64, tc gjson.Result) bool {
		s.callDelta(idx, tc)
		return true
	})
	if f := c.FinishReason(); f != "" {
		s.finish, s.finished = f, true
		s.closeAll()
	}
}

// appendEventHead opens an event of type typ up to the inside of its data object, after
// type and sequence_number, and takes the next sequence number.
func (s *Stream) appendEventHead(dst []byte, typ string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, typ...)
	dst = append(dst, `","sequence_number":`...)
	dst = strconv.AppendInt(dst, s.seq, 10)
	s.seq++
	return dst
}

func (s *Stream) head(typ string) { s.Out = s.appendEventHead(s.Out, typ) }

func (s *Stream) end() { s.Out = append(s.Out, "}\n\n"...) }

// itemHead opens an event about one item: type, sequence_number, item_id, output_index.
func (s *Stream) itemHead(typ, id string, index int) {
	s.head(typ)
	s.Out = append(s.Out, `,"item_id":`...)
	s.Out = jsonappend.String(s.Out, id)
	s.Out = append(s.Out, `,"output_index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(index), 10)
}

func (s *Stream) contentIndex(i int) {
	s.Out = append(s.Out, `,"content_index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(i), 10)
}

// responseEvent sends an event carrying the whole Response.
func (s *Stream) responseEvent(typ string, resp []byte) {
	s.head(typ)
	s.Out = append(s.Out, `,"response":`...)
	s.Out = append(s.Out, resp...)
	s.end()
}

// itemEvent sends output_item.added or .done with the rendered item.
func (s *Stream) itemEvent(typ string, index int, item []byte) {
	s.head(typ)
	s.Out = append(s.Out, `,"output_index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(index), 10)
	s.Out = append(s.Out, `,"item":`...)
	s.Out = append(s.Out, item...)
	s.end()
}

// partEvent sends content_part.added or .done.
func (s *Stream) partEvent(typ, id string, index, content int, part []byte) {
	s.itemHead(typ, id, index)
	s.contentIndex(content)
	s.Out = append(s.Out, `,"part":`...)
	s.Out = append(s.Out, part...)
	s.end()
}

// start sends response.created and response.in_progress once, before anything else.
func (s *Stream) start() {
	if s.started {
		return
	}
	s.started = true
	resp := s.info.appendResponse(s.scratch[:0], statusInProgress, "", nil, Usage{}, 0)
	s.responseEvent("response.created", resp)
	s.responseEvent("response.in_progress", resp)
	s.scratch = resp[:0]
}

// newItem takes the next output_index and its id.
func (s *Stream) newItem(t *textItem, prefix string) {
	t.open, t.index, t.id = true, s.nItems, s.info.itemID(prefix, s.nItems)
	t.buf.Reset()
	s.nItems++
}

// itemDone keeps a finished item for the Response and sends output_item.done.
func (s *Stream) itemDone(index int, item []byte) {
	if len(s.items) > 0 {
		s.items = append(s.items, ',')
	}
	s.items = append(s.items, item...)
	s.itemEvent("response.output_item.done", index, item)
}

func (s *Stream) reasoningDelta(delta string) {
	r := &s.reasoning
	if !r.open {
		s.closeMessage()
		s.closeCalls()
		s.newItem(r, "rs_")
		s.itemEvent("response.output_item.added", r.index, appendReasoningItem(s.scratch[:0], r.id, statusInProgress, false, ""))
		s.partEvent("response.content_part.added", r.id, r.index, 0, appendReasoningPart(s.scratch[:0], ""))
	}
	r.buf.WriteString(delta)
	s.text.WriteString(delta)
	s.itemHead("response.reasoning_text.delta", r.id, r.index)
	s.contentIndex(0)
	s.Out = append(s.Out, `,"delta":`...)
	s.Out = jsonappend.String(s.Out, delta)
	s.end()
}

func (s *Stream) closeReasoning() {
	r := &s.reasoning
	if !r.open {
		return
	}
	r.open = false
	text := r.buf.String()
	s.itemHead("response.reasoning_text.done", r.id, r.index)
	s.contentIndex(0)
	s.Out = append(s.Out, `,"text":`...)
	s.Out = jsonappend.String(s.Out, text)
	s.end()
	s.partEvent("response.content_part.done", r.id, r.index, 0, appendReasoningPart(s.scratch[:0], text))
	s.itemDone(r.index, appendReasoningItem(s.scratch[:0], r.id, s.itemStatus(), true, text))
}

// messageDelta adds text (kind 't') or a refusal (kind 'r') to the message item, opening the
// item and the part as needed.
func (s *Stream) messageDelta(kind byte, delta string) {
	m := &s.message
	if !m.open {
		s.closeReasoning()
		s.closeCalls()
		s.newItem(&m.textItem, "msg_")
		m.part, m.parts, m.done = 0, 0, m.done[:0]
		s.itemEvent("response.output_item.added", m.index, appendMessageItem(s.scratch[:0], m.id, statusInProgress, nil))
	}
	if m.part != kind {
		s.closePart()
		m.part = kind
		m.partText.Reset()
		var part []byte
		if kind == 't' {
			part = appendTextPart(s.scratch[:0], "")
		} else {
			part = appendRefusalPart(s.scratch[:0], "")
		}
		s.partEvent("response.content_part.added", m.id, m.index, m.parts, part)
		m.parts++
	}
	m.partText.WriteString(delta)
	s.text.WriteString(delta)
	if kind == 't' {
		s.itemHead("response.output_text.delta", m.id, m.index)
	} else {
		s.itemHead("response.refusal.delta", m.id, m.index)
	}
	s.contentIndex(m.parts - 1)
	s.Out = append(s.Out, `,"delta":`...)
	s.Out = jsonappend.String(s.Out, delta)
	if kind == 't' {
		s.Out = append(s.Out, `,"logprobs":[]`...)
	}
	s.end()
}

// closePart ends the message's current content part.
func (s *Stream) closePart() {
	m := &s.message
	if m.part == 0 {
		return
	}
	text := m.partText.String()
	if len(m.done) > 0 {
		m.done = append(m.done, ',')
	}
	start := len(m.done)
	if m.part == 't' {
		s.itemHead("response.output_text.done", m.id, m.index)
		s.contentIndex(m.parts - 1)
		s.Out = append(s.Out, `,"text":`...)
		s.Out = jsonappend.String(s.Out, text)
		s.Out = append(s.Out, `,"logprobs":[]`...)
		m.done = appendTextPart(m.done, text)
	} else {
		s.itemHead("response.refusal.done", m.id, m.index)
		s.contentIndex(m.parts - 1)
		s.Out = append(s.Out, `,"refusal":`...)
		s.Out = jsonappend.String(s.Out, text)
		m.done = appendRefusalPart(m.done, text)
	}
	s.end()
	s.partEvent("response.content_part.done", m.id, m.index, m.parts-1, m.done[start:])
	m.part = 0
}

func (s *Stream) closeMessage() {
	m := &s.message
	if !m.open {
		return
	}
	s.closePart()
	m.open = false
	s.itemDone(m.index, appendMessageItem(s.scratch[:0], m.id, s.itemStatus(), m.done))
}

// callDelta handles one tool_calls entry of a chunk.
func (s *Stream) callDelta(chatIndex int64, tc gjson.Result) {
	var c *callItem
	for i := range s.calls {
		if s.calls[i].chatIndex == chatIndex && s.calls[i].open {
			c = &s.calls[i]
		}
	}
	f := tc.Get("function")
	if c == nil {
		s.closeReasoning()
		s.closeMessage()
		s.calls = append(s.calls, callItem{chatIndex: chatIndex, index: s.nItems, id: s.info.itemID("fc_", s.nItems),
			callID: tc.Get("id").Str, name: f.Get("name").Str, open: true})
		s.nItems++
		c = &s.calls[len(s.calls)-1]
		s.itemEvent("response.output_item.added", c.index, appendFunctionCallItem(s.scratch[:0], c.id, statusInProgress, c.callID, c.name, ""))
	} else {
		// Some upstreams send the id or name after the first fragment: the done item has them.
		if id := tc.Get("id").Str; id != "" && c.callID == "" {
			c.callID = id
		}
		if n := f.Get("name").Str; n != "" && c.name == "" {
			c.name = n
		}
	}
	if a := f.Get("arguments"); a.Type == gjson.String && a.Str != "" {
		c.args = append(c.args, a.Str...)
		s.text.WriteString(a.Str)
		s.itemHead("response.function_call_arguments.delta", c.id, c.index)
		s.Out = append(s.Out, `,"delta":`...)
		s.Out = jsonappend.String(s.Out, a.Str)
		s.end()
	}
}

func (s *Stream) closeCalls() {
	for i := range s.calls {
		c := &s.calls[i]
		if !c.open {
			continue
		}
		c.open = false
		args := string(c.args)
		s.itemHead("response.function_call_arguments.done", c.id, c.index)
		s.Out = append(s.Out, `,"name":`...)
		s.Out = jsonappend.String(s.Out, c.name)
		s.Out = append(s.Out, `,"arguments":`...)
		s.Out = jsonappend.String(s.Out, args)
		s.end()
		s.itemDone(c.index, appendFunctionCallItem(s.scratch[:0], c.id, s.itemStatus(), c.callID, c.name, args))
	}
}

// closeAll ends every open item.
func (s *Stream) closeAll() {
	s.closeReasoning()
	s.closeMessage()
	s.closeCalls()
}

// itemStatus is the status of an item closing now: incomplete when the answer was cut short.
func (s *Stream) itemStatus() string {
	if st, _ := outcome(s.finish); st == statusIncomplete {
		return statusIncomplete
	}
	return statusCompleted
}

// complete ends a stream at [DONE]: the items still open are closed, then the terminal event.
func (s *Stream) complete() {
	s.start()
	s.closeAll()
	status, reason := outcome(s.finish)
	var completedAt int64
	if status == statusCompleted {
		completedAt = s.info.now().Unix()
	}
	s.final = s.info.appendResponse(make([]byte, 0, len(s.items)+1024), status, reason, s.items, s.usage, completedAt)
	s.responseEvent("response."+status, s.final)
	s.Err = io.EOF
}

// fail ends the stream with an error event and no terminal event.
func (s *Stream) fail(e api.ErrorObject) {
	s.failed = true
	s.Out = s.AppendError(s.Out, e)
	s.Err = io.EOF
}

// broken ends a stream the translator cannot follow.
func (s *Stream) broken(msg string) {
	s.fail(api.NewError(api.TypeUpstream, "bad_upstream_event", "", msg))
}
