// Package chatanswer reads an upstream's chat completions answer, a chat.completion body (Parse)
// or a chat.completion.chunk stream one parsed chunk at a time (Reader), for the adapters that
// translate it into another API's (Messages, Responses). What the answer carries and how a
// stream ends are OpenAI's and the same for every such adapter; what each piece becomes is the
// adapter's. The stream reader holds one event at a time: a chunk is handed on as soon as its
// event is complete.
package chatanswer

import (
	"errors"
	"io"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/internal/sse"
)

// MaxEventBytes bounds one upstream event; a larger one ends the stream as broken.
const MaxEventBytes = 16 << 20

// Reader reads a chat.completion.chunk stream. It is not safe for concurrent use.
type Reader struct {
	events *sse.Reader
}

// NewReader reads the chunk stream in body.
func NewReader(body io.Reader) *Reader {
	return &Reader{events: sse.NewReader(body, MaxEventBytes)}
}

// Chunk is one chunk of the stream, parsed.
type Chunk struct {
	// Usage is the chunk's usage object: at the top level, or inside the choice where some
	// upstreams put it. IsObject is false when the chunk has none.
	Usage gjson.Result
	// Choice is choices[0]; IsObject is false for a chunk without one (the usage chunk).
	Choice gjson.Result
	// Delta is the choice's delta.
	Delta gjson.Result
}

// Completion is a chat.completion body, parsed.
type Completion struct {
	// Choice is choices[0], an object.
	Choice gjson.Result
	// Usage is the usage object; IsObject is false when the body has none.
	Usage gjson.Result
}

// Parse reads a chat.completion body; ok is false when it is not JSON (checked with
// jsoncheck.Valid, whose stack does not grow with the nesting), not an object or without a
// choice.
func Parse(body []byte) (c Completion, ok bool) {
	if !jsoncheck.Valid(body) {
		return Completion{}, false
	}
	r := gjson.ParseBytes(body)
	c = Completion{Choice: r.Get("choices.0"), Usage: r.Get("usage")}
	if !r.IsObject() || !c.Choice.IsObject() {
		return Completion{}, false
	}
	return c, true
}

// Reasoning is the delta's reasoning text (ReasoningText); empty when none.
func (c Chunk) Reasoning() string { return ReasoningText(c.Delta) }

// ReasoningText is a message's or delta's reasoning: reasoning_content (DeepSeek, Qwen, the
// translating adapters) or reasoning (vLLM, Ollama, OpenRouter).
func ReasoningText(m gjson.Result) string {
	if v := m.Get("reasoning_content"); v.Type == gjson.String && v.Str != "" {
		return v.Str
	}
	if v := m.Get("reasoning"); v.Type == gjson.String {
		return v.Str
	}
	return ""
}

// Content is the delta's text; empty when none.
func (c Chunk) Content() string { return c.deltaString("content") }

// Refusal is the delta's refusal text; empty when none.
func (c Chunk) Refusal() string { return c.deltaString("refusal") }

func (c Chunk) deltaString(name string) string {
	if v := c.Delta.Get(name); v.Type == gjson.String {
		return v.Str
	}
	return ""
}

// ToolCalls calls fn for each entry of the delta's tool_calls, with its index: the entry's
// own, or its position when the upstream left it out. fn returns false to stop.
func (c Chunk) ToolCalls(fn func(index int64, call gjson.Result) bool) {
	i := int64(0)
	c.Delta.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		idx := i
		if v := tc.Get("index"); v.Type == gjson.Number {
			idx = v.Int()
		}
		i++
		return fn(idx, tc)
	})
}

// FinishReason is the choice's finish_reason; empty while the answer goes on.
func (c Chunk) FinishReason() string {
	if f := c.Choice.Get("finish_reason"); f.Type == gjson.String {
		return f.Str
	}
	return ""
}

// UpstreamError is an error the upstream sent inside the stream ({"error":{…}}).
type UpstreamError struct {
	Type, Code, Param string
	// Message is the upstream's message, or a general one when it sent none.
	Message string
}

func (e *UpstreamError) Error() string { return "upstream stream error: " + e.Message }

// BrokenError is a stream the reader cannot follow: an event too large or not a JSON object.
// Message is what a client may be told.
type BrokenError struct{ Message string }

func (e *BrokenError) Error() string { return "broken upstream stream: " + e.Message }

// Next returns the next chunk. Its errors say how the stream ended: io.EOF at data: [DONE];
// io.ErrUnexpectedEOF when the body ended before it (an event left without its blank line may
// be cut anywhere, so it is not read); an *UpstreamError or a *BrokenError; or the body's read
// error.
func (r *Reader) Next() (Chunk, error) {
	ev, err := r.events.Next()
	switch {
	case err == nil:
	case errors.Is(err, sse.ErrEventTooLarge):
		return Chunk{}, &BrokenError{Message: "An upstream stream event exceeded the size limit."}
	case err == io.EOF, errors.Is(err, sse.ErrUnterminated):
		return Chunk{}, io.ErrUnexpectedEOF
	default:
		return Chunk{}, err
	}
	if string(ev.Data) == "[DONE]" {
		return Chunk{}, io.EOF
	}
	if !jsoncheck.Valid(ev.Data) {
		return Chunk{}, &BrokenError{Message: "The upstream sent a malformed stream event."}
	}
	doc := gjson.ParseBytes(ev.Data)
	if !doc.IsObject() {
		return Chunk{}, &BrokenError{Message: "The upstream sent a malformed stream event."}
	}
	if e := doc.Get("error"); e.IsObject() {
		ue := &UpstreamError{Type: e.Get("type").Str, Code: e.Get("code").String(), Param: e.Get("param").Str, Message: e.Get("message").Str}
		if ue.Message == "" {
			ue.Message = "The upstream failed while streaming its answer."
		}
		return Chunk{}, ue
	}
	c := Chunk{Usage: doc.Get("usage"), Choice: doc.Get("choices.0")}
	if !c.Usage.IsObject() {
		c.Usage = c.Choice.Get("usage")
	}
	c.Delta = c.Choice.Get("delta")
	return c, nil
}
