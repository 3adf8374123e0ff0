package gemini

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file translates streamGenerateContent?alt=sse into OpenAI chat.completion.chunk events,
// on Read: each upstream event is translated as soon as it has arrived, and what it yields is
// handed out before the next upstream read, so nothing waits for the end of the stream.
//
// Gemini's stream (PROVIDERS.md §4.3): "data: {GenerateContentResponse}" events, CRLF-delimited,
// no event names and no terminal marker (the stream ends when the connection does);
// usageMetadata on every chunk, cumulative; finishReason on the last candidate chunk; an error
// may arrive as a chunk whose top-level field is "error".
//
// What comes out, in order: one chunk per part (text → content, thought text → reasoning_content,
// functionCall → one tool_calls entry with its own index), the first carrying the role; then,
// once the upstream has ended, exactly one chunk with finish_reason, one usage chunk
// ("choices":[]) built from the last usageMetadata when include_usage was asked (the gateway
// always asks) and the upstream reported usage, and "data: [DONE]". The finish_reason waits for
// the end of the upstream because Gemini ends tool turns with STOP: only the whole answer tells
// "stop" from "tool_calls".
//
// A stream that ends without a finishReason, carries an error chunk, or sends an event that is not
// JSON ends instead with an OpenAI error event and no [DONE] (the gateway then knows the answer is
// incomplete, and adds its own interruption event). The usage chunk still precedes it when the
// last usageMetadata counted generated tokens, so what Gemini billed is known. A failure to read
// the upstream (a dropped connection, a canceled context) is returned by Read as it is, as
// passthrough adapters do, and the gateway reports it.

// maxEventBytes bounds one event: a larger one fails the stream rather than the process.
const maxEventBytes = 16 << 20

// doneMarker is the data of OpenAI's last event; an upstream event that carries it is skipped.
var doneMarker = []byte("[DONE]")

var (
	errNoFinish = api.NewError(api.TypeUpstream,
		"stream_interrupted", "", "The upstream stream ended before the answer was complete (no finish reason).")
	errBadEvent = api.NewError(api.TypeUpstream,
		"upstream_malformed_response", "", "The upstream sent a stream event that is not a Gemini response.")
	errHugeEvent = api.NewError(api.TypeUpstream,
		"upstream_malformed_response", "", "The upstream sent a stream event larger than the gateway accepts.")
)

// streamReader is the body of a translated stream. Like every response body it is read by one
// goroutine; it is not safe for concurrent use.
type streamReader struct {
	src    io.ReadCloser
	events *sse.Reader

	oairender.Pump      // Read: the translated bytes, Step: step
	done           bool // the translation is over: nothing more is emitted

	meta         answerMeta
	includeUsage bool
	head         []byte // `data: {"id":…,"object":…,"created":…,"model":…,` of every chunk; nil before the first
	respID       string
	roleSent     bool
	comma        bool // the open delta object already has a field
	ncalls       int
	finish       string // Gemini's finishReason, "" until one arrives
	blockReason  string
	usage        usage
	hasUsage     bool
	scratch      bytes.Buffer
}

func newStreamReader(src io.ReadCloser, meta answerMeta, includeUsage bool) *streamReader {
	s := &streamReader{src: src, events: sse.NewReader(src, maxEventBytes), meta: meta, includeUsage: includeUsage}
	s.Step = s.step
	return s
}

// Close closes the upstream body.
func (s *streamReader) Close() error { return s.src.Close() }

// step reads one upstream event and translates it. Gemini sends no event names, ids or retry
// hints: only the data of each event matters.
func (s *streamReader) step() {
	ev, err := s.events.Next()
	switch err {
	case nil:
		s.event(ev.Data)
	case sse.ErrUnterminated:
		s.event(ev.Data) // the last event may lack its blank line
		s.end()
	case io.EOF:
		s.end()
	case sse.ErrEventTooLarge:
		s.fail(errHugeEvent)
	default:
		s.Err = err
	}
}

// event translates one upstream event. Strings kept beyond it are cloned: data is reused.
func (s *streamReader) event(data []byte) {
	if bytes.Equal(data, doneMarker) {
		return
	}
	if !jsoncheck.Valid(data) {
		s.fail(errBadEvent)
		return
	}
	root := gjson.Parse(unsafe.String(unsafe.SliceData(data), len(data)))
	if root.IsArray() { // a chunk list, as Vertex has wrapped them
		root.ForEach(func(_, c gjson.Result) bool {
			s.chunk(c)
			return !s.done
		})
		return
	}
	s.chunk(root)
}

// chunk translates one GenerateContentResponse.
func (s *streamReader) chunk(c gjson.Result) {
	if !c.IsObject() {
		s.fail(errBadEvent)
		return
	}
	if e := c.Get("error"); e.Exists() {
		_, ae := openAIError(int(e.Get("code").Int()), []byte(c.Raw))
		s.fail(ae)
		return
	}
	if s.head == nil {
		s.start(c)
	}
	if u := c.Get("usageMetadata"); u.IsObject() {
		s.usage, s.hasUsage = parseUsage(u), true
	}
	if br := c.Get("promptFeedback.blockReason").Str; br != "" {
		s.blockReason = strings.Clone(br)
	}
	cand := firstCandidate(c)
	cand.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
		s.part(p)
		return true
	})
	if fr := cand.Get("finishReason").Str; fr != "" {
		s.finish = strings.Clone(fr)
	}
}

// start renders the fields every chunk starts with, from the first upstream chunk.
func (s *streamReader) start(c gjson.Result) {
	if id := c.Get("responseId").Str; safeID(id) {
		s.respID = strings.Clone(id)
	}
	model := c.Get("modelVersion").Str
	if model == "" {
		model = s.meta.model
	}
	s.head = oairender.AppendChunkHead(nil, "chatcmpl-"+idOr(s.respID, s.meta), s.meta.now().Unix(), model)
}

// part emits the delta of one part. Empty text parts (Gemini sends some that only carry a thought
// signature) emit nothing.
func (s *streamReader) part(p gjson.Result) {
	if fc := p.Get("functionCall"); fc.IsObject() {
		s.beginChunk()
		s.field("tool_calls")
		s.Out = append(s.Out, `[{"index":`...)
		s.Out = strconv.AppendInt(s.Out, int64(s.ncalls), 10)
		s.Out = append(s.Out, `,"id":`...)
		s.Out = appendCallID(s.Out, p, s.respID, s.ncalls)
		s.Out = append(s.Out, `,"type":"function","function":{"name":`...)
		s.Out = jsonappend.String(s.Out, fc.Get("name").String())
		s.Out = append(s.Out, `,"arguments":`...)
		s.Out = oairender.AppendArguments(s.Out, fc.Get("args"), &s.scratch)
		s.Out = append(s.Out, "}}]"...)
		s.endChunk("")
		s.ncalls++
		return
	}
	text := p.Get("text").Str
	if text == "" {
		return
	}
	s.beginChunk()
	if p.Get("thought").Bool() {
		s.field("reasoning_content")
	} else {
		s.field("content")
	}
	s.Out = jsonappend.String(s.Out, text)
	s.endChunk("")
}

// beginChunk opens a chunk event up to the inside of its delta; the first one carries the role.
func (s *streamReader) beginChunk() {
	s.Out = oairender.AppendChunkStart(s.Out, s.head)
	s.comma = false
	if !s.roleSent {
		s.Out = append(s.Out, `"role":"assistant"`...)
		s.roleSent, s.comma = true, true
	}
}

func (s *streamReader) field(name string) {
	if s.comma {
		s.Out = append(s.Out, ',')
	}
	s.Out = append(s.Out, '"')
	s.Out = append(s.Out, name...)
	s.Out = append(s.Out, `":`...)
	s.comma = true
}

// endChunk closes a chunk event with its finish_reason ("" for null).
func (s *streamReader) endChunk(finish string) { s.Out = oairender.AppendChunkEnd(s.Out, finish) }

func (s *streamReader) appendUsageChunk() {
	if s.head == nil {
		return
	}
	s.Out = oairender.AppendUsageChunk(s.Out, s.head, s.usage.openAI())
}

// end finishes the translation once the upstream has ended.
func (s *streamReader) end() {
	if s.done {
		return
	}
	reason := s.finish
	if reason == "" && s.blockReason != "" {
		reason = "SAFETY" // the prompt was blocked: no candidate at all
	}
	if reason == "" {
		s.fail(errNoFinish)
		return
	}
	s.beginChunk()
	s.endChunk(finishReason(reason, s.ncalls > 0))
	if s.includeUsage && s.hasUsage {
		s.appendUsageChunk()
	}
	s.Out = append(s.Out, oairender.Done...)
	s.done, s.Err = true, io.EOF
}

// fail ends the translation with an error event and no [DONE].
func (s *streamReader) fail(e api.ErrorObject) {
	if s.done {
		return
	}
	if s.includeUsage && s.hasUsage && s.usage.candidates+s.usage.thoughts > 0 {
		s.appendUsageChunk()
	}
	s.Out = oairender.AppendErrorEvent(s.Out, e)
	s.done, s.Err = true, io.EOF
}
