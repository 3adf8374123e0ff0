// Package oairender renders what a translating adapter hands the gateway in OpenAI's format:
// the pieces of chat.completion and chat.completion.chunk bodies that do not depend on the
// upstream (object heads, chunk framing, the usage object, tool call arguments, error events)
// and the synthesised *http.Response values that carry them. What an upstream's fields mean
// stays in its adapter; this package only knows OpenAI's side.
//
// Bodies are rendered by appending to byte slices: a stream renders every chunk this way,
// without reflection or an allocation per chunk.
package oairender

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
)

// Done is the event that ends a complete OpenAI stream. A stream that failed ends with an error
// event instead (AppendErrorEvent), so that the client and the gateway know it is incomplete.
const Done = "data: [DONE]\n\n"

// AppendCompletionHead appends the fields a chat.completion body starts with, leaving the object
// open: `{"id":…,"object":"chat.completion","created":…,"model":…,`.
func AppendCompletionHead(dst []byte, id string, created int64, model string) []byte {
	dst = append(dst, `{"id":`...)
	return appendObjectTail(dst, id, "chat.completion", created, model)
}

// AppendMessageChoice appends a chat.completion's one choice, `"choices":[{…}]`, from a
// translated answer's parts: its text (content is null when textNull: tool calls and no text),
// its reasoning (left out when empty), its tool calls already rendered and comma-separated (left
// out when empty), and the finish reason.
func AppendMessageChoice(dst []byte, text string, textNull bool, reasoning string, calls []byte, finish string) []byte {
	dst = append(dst, `"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if textNull {
		dst = append(dst, "null"...)
	} else {
		dst = jsonappend.String(dst, text)
	}
	if reasoning != "" {
		dst = append(dst, `,"reasoning_content":`...)
		dst = jsonappend.String(dst, reasoning)
	}
	if len(calls) > 0 {
		dst = append(dst, `,"tool_calls":[`...)
		dst = append(dst, calls...)
		dst = append(dst, ']')
	}
	dst = append(dst, `,"refusal":null},"logprobs":null,"finish_reason":`...)
	dst = jsonappend.String(dst, finish)
	return append(dst, '}', ']')
}

// AppendChunkHead appends the prefix every chunk event of a stream shares, leaving the object
// open: `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,`. A stream
// renders it once and hands it to AppendChunkStart and AppendUsageChunk.
func AppendChunkHead(dst []byte, id string, created int64, model string) []byte {
	dst = append(dst, `data: {"id":`...)
	return appendObjectTail(dst, id, "chat.completion.chunk", created, model)
}

func appendObjectTail(dst []byte, id, object string, created int64, model string) []byte {
	dst = jsonappend.String(dst, id)
	dst = append(dst, `,"object":"`...)
	dst = append(dst, object...)
	dst = append(dst, `","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = jsonappend.String(dst, model)
	return append(dst, ',')
}

// AppendChunkStart opens a chunk event from its head (AppendChunkHead) up to the inside of its
// only choice's delta object, where the caller appends the delta's fields.
func AppendChunkStart(dst, head []byte) []byte {
	dst = append(dst, head...)
	return append(dst, `"choices":[{"index":0,"delta":{`...)
}

// AppendChunkEnd closes what AppendChunkStart opened with the choice's finish_reason (null
// when finish is empty) and ends the event.
func AppendChunkEnd(dst []byte, finish string) []byte {
	dst = append(dst, `},"logprobs":null,"finish_reason":`...)
	if finish == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonappend.String(dst, finish)
	}
	return append(dst, "}]}\n\n"...)
}

// AppendUsageChunk appends the event that reports a stream's usage, as OpenAI sends it when
// stream_options.include_usage is set: an empty choices array and the usage object.
func AppendUsageChunk(dst, head []byte, u Usage) []byte {
	dst = append(dst, head...)
	dst = append(dst, `"choices":[],"usage":`...)
	dst = u.AppendJSON(dst)
	return append(dst, "}\n\n"...)
}

// AppendErrorEvent appends an error met inside a stream as the event OpenAI's SDKs raise: one
// whose data is {"error":{…}}.
func AppendErrorEvent(dst []byte, e api.ErrorObject) []byte {
	dst = append(dst, "data: "...)
	dst = append(dst, e.Marshal()...)
	return append(dst, "\n\n"...)
}

// Usage is OpenAI's CompletionUsage object, once an adapter has mapped its upstream's counts
// (PROVIDERS.md §7.1).
type Usage struct {
	// PromptTokens counts every input token, cached or not; CompletionTokens every output token,
	// reasoning included. total_tokens is their sum.
	PromptTokens, CompletionTokens int64
	// CachedTokens is the share of the prompt read from the upstream's cache.
	CachedTokens int64
	// CacheWriteTokens is the share of the prompt written to the cache, rendered as
	// prompt_tokens_details.cache_write_tokens only when HasCacheWrites: an upstream that reports
	// no such count leaves the field out rather than claim zero.
	CacheWriteTokens int64
	HasCacheWrites   bool
	// ReasoningTokens is the share of the completion spent on reasoning.
	ReasoningTokens int64
}

// AppendJSON appends the usage object.
func (u Usage) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, u.PromptTokens, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, u.CompletionTokens, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, u.PromptTokens+u.CompletionTokens, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.CachedTokens, 10)
	if u.HasCacheWrites {
		dst = append(dst, `,"cache_write_tokens":`...)
		dst = strconv.AppendInt(dst, u.CacheWriteTokens, 10)
	}
	dst = append(dst, `},"completion_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendInt(dst, u.ReasoningTokens, 10)
	return append(dst, "}}"...)
}

// AppendArguments appends a tool call's input object as OpenAI's function.arguments: a JSON
// string holding the object's compacted JSON text. Input that is missing or not an object
// becomes "{}", which every client can parse. scratch is reused between calls.
func AppendArguments(dst []byte, input gjson.Result, scratch *bytes.Buffer) []byte {
	if !input.IsObject() {
		return append(dst, `"{}"`...)
	}
	scratch.Reset()
	if err := json.Compact(scratch, []byte(input.Raw)); err != nil {
		return append(dst, `"{}"`...)
	}
	return jsonappend.String(dst, scratch.String())
}
