package gemini

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
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

const (
	// readBufferSize is the upstream line buffer; longer lines are assembled in streamReader.line.
	readBufferSize = 8 << 10
	// maxEventBytes bounds one event: a larger one fails the stream rather than the process.
	maxEventBytes = 16 << 20
)

var (
	dataPrefix = []byte("data:")
	doneMarker = []byte("[DONE]")
)

var (
	errNoFinish = api.NewError(api.TypeUpstream,
		"The upstream stream ended before the answer was complete (no finish reason).", "stream_interrupted", "")
	errBadEvent = api.NewError(api.TypeUpstream,
		"The upstream sent a stream event that is not a Gemini response.", "upstream_malformed_response", "")
	errHugeEvent = api.NewError(api.TypeUpstream,
		"The upstream sent a stream event larger than the gateway accepts.", "upstream_malformed_response", "")
)

// streamReader is the body of a translated stream. Like every response body it is read by one
// goroutine; it is not safe for concurrent use.
type streamReader struct {
	src  io.ReadCloser
	br   *bufio.Reader
	line []byte // a line longer than br's buffer, being assembled
	data []byte // the data of the event being read, lines joined by "\n"
	// hasData tells an event with an empty data line from no data line at all.
	hasData bool

	out  []byte // translated bytes not yet handed out: out[off:]
	off  int
	err  error // returned once out is drained
	done bool  // the translation is over: nothing more is emitted

	meta         answerMeta
	includeUsage bool
	head         []byte // `"id":…,"object":…,"created":…,"model":…,` of every chunk; nil before the first
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
	return &streamReader{src: src, br: bufio.NewReaderSize(src, readBufferSize), meta: meta, includeUsage: includeUsage}
}

// Read hands out translated bytes, reading and translating upstream events as needed.
func (s *streamReader) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.off = s.out[:0], 0
		s.step()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// Close closes the upstream body.
func (s *streamReader) Close() error { return s.src.Close() }

// step reads one upstream line and acts on it.
func (s *streamReader) step() {
	line, err := s.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		if len(s.line)+len(line) > maxEventBytes {
			s.fail(errHugeEvent)
			return
		}
		s.line = append(s.line, line...)
		return
	}
	if len(s.line) > 0 {
		s.line = append(s.line, line...)
		line = s.line
	}
	if len(line) > 0 {
		s.processLine(line)
	}
	s.line = s.line[:0]
	switch {
	case err == io.EOF:
		s.dispatch() // the last event may lack its blank line
		s.end()
	case err != nil && !s.done:
		s.err = err
	}
}

// processLine handles one line of the SSE stream (https://html.spec.whatwg.org/multipage/server-sent-events.html).
// Only data lines matter: Gemini sends no event names, ids or retry hints, and comments are
// keep-alives.
func (s *streamReader) processLine(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		s.dispatch()
		return
	}
	if !bytes.HasPrefix(line, dataPrefix) {
		return
	}
	v := line[len(dataPrefix):]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	if len(s.data)+len(v)+1 > maxEventBytes {
		s.fail(errHugeEvent)
		return
	}
	if s.hasData {
		s.data = append(s.data, '\n')
	}
	s.data = append(s.data, v...)
	s.hasData = true
}

// dispatch translates the event read so far, if any.
func (s *streamReader) dispatch() {
	if s.hasData && !s.done {
		s.event(s.data)
	}
	s.data, s.hasData = s.data[:0], false
}

// event translates one upstream event. Strings kept beyond it are cloned: data is reused.
func (s *streamReader) event(data []byte) {
	if bytes.Equal(data, doneMarker) {
		return
	}
	if !gjson.ValidBytes(data) {
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
	h := append([]byte(nil), `"id":`...)
	h = appendString(h, "chatcmpl-"+idOr(s.respID, s.meta))
	h = append(h, `,"object":"chat.completion.chunk","created":`...)
	h = strconv.AppendInt(h, s.meta.now().Unix(), 10)
	h = append(h, `,"model":`...)
	h = appendString(h, model)
	s.head = append(h, ',')
}

// part emits the delta of one part. Empty text parts (Gemini sends some that only carry a thought
// signature) emit nothing.
func (s *streamReader) part(p gjson.Result) {
	if fc := p.Get("functionCall"); fc.IsObject() {
		s.beginChunk()
		s.field("tool_calls")
		s.out = append(s.out, `[{"index":`...)
		s.out = strconv.AppendInt(s.out, int64(s.ncalls), 10)
		s.out = append(s.out, `,"id":`...)
		s.out = appendCallID(s.out, p, s.respID, s.ncalls)
		s.out = append(s.out, `,"type":"function","function":{"name":`...)
		s.out = appendString(s.out, fc.Get("name").String())
		s.out = append(s.out, `,"arguments":`...)
		s.out = appendArgs(s.out, fc.Get("args"), &s.scratch)
		s.out = append(s.out, "}}]"...)
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
	s.out = appendString(s.out, text)
	s.endChunk("")
}

// beginChunk opens a chunk event up to the inside of its delta; the first one carries the role.
func (s *streamReader) beginChunk() {
	s.out = append(s.out, "data: {"...)
	s.out = append(s.out, s.head...)
	s.out = append(s.out, `"choices":[{"index":0,"delta":{`...)
	s.comma = false
	if !s.roleSent {
		s.out = append(s.out, `"role":"assistant"`...)
		s.roleSent, s.comma = true, true
	}
}

func (s *streamReader) field(name string) {
	if s.comma {
		s.out = append(s.out, ',')
	}
	s.out = append(s.out, '"')
	s.out = append(s.out, name...)
	s.out = append(s.out, `":`...)
	s.comma = true
}

// endChunk closes a chunk event with its finish_reason ("" for null).
func (s *streamReader) endChunk(finish string) {
	s.out = append(s.out, `},"logprobs":null,"finish_reason":`...)
	if finish == "" {
		s.out = append(s.out, "null"...)
	} else {
		s.out = appendString(s.out, finish)
	}
	s.out = append(s.out, "}]}\n\n"...)
}

func (s *streamReader) appendUsageChunk() {
	if s.head == nil {
		return
	}
	s.out = append(s.out, "data: {"...)
	s.out = append(s.out, s.head...)
	s.out = append(s.out, `"choices":[],"usage":`...)
	s.out = appendUsage(s.out, s.usage)
	s.out = append(s.out, "}\n\n"...)
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
	s.out = append(s.out, "data: [DONE]\n\n"...)
	s.done, s.err = true, io.EOF
}

// fail ends the translation with an error event and no [DONE].
func (s *streamReader) fail(e api.Error) {
	if s.done {
		return
	}
	if s.includeUsage && s.hasUsage && s.usage.candidates+s.usage.thoughts > 0 {
		s.appendUsageChunk()
	}
	s.out = appendErrorEvent(s.out, e)
	s.done, s.err = true, io.EOF
}
