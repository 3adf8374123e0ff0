package bedrock

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file translates ConverseStream's event-stream body (PROVIDERS-2.md §4.5) into OpenAI's
// chat.completion.chunk stream on Read, one upstream message at a time:
//
//	messageStart                        → the role chunk
//	contentBlockStart toolUse           → tool_calls[{index, id, type, function{name, arguments:""}}]
//	contentBlockDelta text              → {"content": …}
//	contentBlockDelta reasoningContent  → {"reasoning_content": …} (signatures are dropped)
//	contentBlockDelta toolUse.input     → tool_calls[{index, function{arguments: …}}]
//	contentBlockStop                    → arguments "{}" for a tool that streamed no input
//	messageStop                         → the finish_reason chunk (stopReason mapped)
//	metadata                            → usage noted (it comes after messageStop)
//	end of body after messageStop       → the usage chunk (with include_usage), "data: [DONE]"
//	exception or error message          → data: {"error":{…}} with the exception's OpenAI type,
//	                                      and the end of the stream without [DONE]
//	a malformed message, a CRC mismatch → data: {"error":{…}} bad_upstream_event, the end
//
// A body that ends before messageStop ends the stream with io.ErrUnexpectedEOF: the gateway
// tells the client the stream was cut.

var errNotConverse = errors.New("bedrock: the answer is not a Converse answer")

// converseStream is the translated body. Not safe for concurrent use.
type converseStream struct {
	body   io.ReadCloser
	frames *frameReader
	oairender.Pump

	includeUsage bool
	head         []byte
	started      bool
	stopped      bool // messageStop arrived: the finish chunk went out
	usage        oairender.Usage
	hasUsage     bool
	tools        []toolState
}

// toolState follows one toolUse content block.
type toolState struct {
	block int64 // Converse's contentBlockIndex
	index int   // OpenAI's tool_calls index
	args  bool
}

func newConverseStream(body io.ReadCloser, id, model string, created int64, includeUsage bool) *converseStream {
	s := &converseStream{body: body, frames: newFrameReader(body), includeUsage: includeUsage,
		head: oairender.AppendChunkHead(nil, id, created, model)}
	s.Step = s.step
	return s
}

// Close closes the upstream body.
func (s *converseStream) Close() error {
	if s.Err == nil {
		s.Err = http.ErrBodyReadAfterClose
	}
	return s.body.Close()
}

func (s *converseStream) step() {
	fr, err := s.frames.next()
	switch {
	case err == io.EOF && s.stopped:
		if s.includeUsage && s.hasUsage {
			s.Out = oairender.AppendUsageChunk(s.Out, s.head, s.usage)
		}
		s.Out = append(s.Out, oairender.Done...)
		s.Err = io.EOF
		return
	case err == io.EOF:
		s.Err = io.ErrUnexpectedEOF
		return
	case isBadFrame(err):
		s.broken("The upstream sent a malformed event-stream message.")
		return
	case err != nil:
		s.Err = err
		return
	}
	switch fr.kind {
	case frameException:
		_, e := translateException(http.StatusInternalServerError, fr.name, gjson.GetBytes(fr.payload, "message").Str)
		s.fail(e)
		return
	case frameError:
		_, e := translateException(http.StatusInternalServerError, fr.name, fr.message)
		s.fail(e)
		return
	}
	if !jsoncheck.Valid(fr.payload) {
		s.broken("The upstream sent a malformed stream event.")
		return
	}
	ev := gjson.ParseBytes(fr.payload)
	switch fr.name {
	case "messageStart":
		s.start()
	case "contentBlockStart":
		if tu := ev.Get("start.toolUse"); tu.IsObject() {
			s.toolStart(ev.Get("contentBlockIndex").Int(), tu)
		}
	case "contentBlockDelta":
		d := ev.Get("delta")
		switch {
		case d.Get("text").Type == gjson.String:
			s.deltaText("content", d.Get("text"))
		case d.Get("reasoningContent.text").Type == gjson.String:
			s.deltaText("reasoning_content", d.Get("reasoningContent.text"))
		case d.Get("toolUse.input").Type == gjson.String:
			if t := s.tool(ev.Get("contentBlockIndex").Int()); t != nil && d.Get("toolUse.input").Str != "" {
				s.toolArgs(t, []byte(d.Get("toolUse.input").Raw))
			}
		}
	case "contentBlockStop":
		if t := s.tool(ev.Get("contentBlockIndex").Int()); t != nil && !t.args {
			s.toolArgs(t, []byte(`"{}"`))
		}
	case "messageStop":
		if s.stopped {
			return
		}
		s.start()
		for i := range s.tools {
			if !s.tools[i].args {
				s.toolArgs(&s.tools[i], []byte(`"{}"`))
			}
		}
		s.stopped = true
		s.Out = oairender.AppendChunkStart(s.Out, s.head)
		s.Out = oairender.AppendChunkEnd(s.Out, converseStopReason(ev.Get("stopReason").Str))
	case "metadata":
		if u := ev.Get("usage"); u.IsObject() {
			s.usage, s.hasUsage = converseUsage(u), true
		}
	}
}

// start sends the role chunk once, before anything else of the answer.
func (s *converseStream) start() {
	if s.started {
		return
	}
	s.started = true
	s.Out = oairender.AppendChunkStart(s.Out, s.head)
	s.Out = append(s.Out, `"role":"assistant","content":""`...)
	s.Out = oairender.AppendChunkEnd(s.Out, "")
}

func (s *converseStream) toolStart(block int64, tu gjson.Result) {
	if s.tool(block) != nil {
		return
	}
	s.start()
	s.tools = append(s.tools, toolState{block: block, index: len(s.tools)})
	t := &s.tools[len(s.tools)-1]
	s.Out = oairender.AppendChunkStart(s.Out, s.head)
	s.Out = append(s.Out, `"tool_calls":[{"index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(t.index), 10)
	s.Out = append(s.Out, `,"id":`...)
	s.Out = appendString(s.Out, tu.Get("toolUseId"))
	s.Out = append(s.Out, `,"type":"function","function":{"name":`...)
	s.Out = appendString(s.Out, tu.Get("name"))
	s.Out = append(s.Out, `,"arguments":""}}]`...)
	s.Out = oairender.AppendChunkEnd(s.Out, "")
}

// deltaText sends a text-like delta field, unless empty.
func (s *converseStream) deltaText(field string, v gjson.Result) {
	if v.Str == "" {
		return
	}
	s.start()
	s.Out = oairender.AppendChunkStart(s.Out, s.head)
	s.Out = append(s.Out, '"')
	s.Out = append(s.Out, field...)
	s.Out = append(s.Out, `":`...)
	s.Out = append(s.Out, v.Raw...)
	s.Out = oairender.AppendChunkEnd(s.Out, "")
}

// toolArgs sends a fragment of a call's arguments; frag is a JSON string.
func (s *converseStream) toolArgs(t *toolState, frag []byte) {
	t.args = true
	s.Out = oairender.AppendChunkStart(s.Out, s.head)
	s.Out = append(s.Out, `"tool_calls":[{"index":`...)
	s.Out = strconv.AppendInt(s.Out, int64(t.index), 10)
	s.Out = append(s.Out, `,"function":{"arguments":`...)
	s.Out = append(s.Out, frag...)
	s.Out = append(s.Out, `}}]`...)
	s.Out = oairender.AppendChunkEnd(s.Out, "")
}

func (s *converseStream) tool(block int64) *toolState {
	for i := range s.tools {
		if s.tools[i].block == block {
			return &s.tools[i]
		}
	}
	return nil
}

// fail ends the stream with an OpenAI error event and no [DONE].
func (s *converseStream) fail(e api.ErrorObject) {
	s.Out = oairender.AppendErrorEvent(s.Out, e)
	s.Err = io.EOF
}

// broken ends a stream the adapter cannot follow.
func (s *converseStream) broken(msg string) {
	s.fail(api.NewError(api.TypeUpstream, "bad_upstream_event", "", msg))
}

// isBadFrame reports whether err is a message the decoder refused.
func isBadFrame(err error) bool { return err != nil && errors.Is(err, errBadFrame) }

// appendString appends a string value's JSON, or "" when v is not a string.
func appendString(dst []byte, v gjson.Result) []byte {
	if v.Type != gjson.String {
		return append(dst, `""`...)
	}
	return append(dst, v.Raw...)
}
