package anthropic

import (
	"bytes"
	"cmp"
	"errors"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file translates a non-stream Messages answer into a chat.completion, and holds what the
// stream translation shares with it: usage and finish_reason.

// errNotMessage is an upstream 2xx body that is not a Messages answer.
var errNotMessage = errors.New("anthropic: the answer is not a message")

// translateResponse renders the chat.completion of a Messages answer. The id is Anthropic's
// (msg_…), model the upstream's (model when the answer has none), created the given time. Text
// blocks are joined into content, thinking blocks into reasoning_content, tool_use blocks become
// tool_calls (content is then null when there is no text); other blocks (redacted thinking,
// server tools and their results) have no OpenAI equivalent and are left out.
func translateResponse(raw []byte, model string, created int64) ([]byte, error) {
	if !jsoncheck.Valid(raw) {
		return nil, errNotMessage
	}
	r := gjson.ParseBytes(raw)
	content := r.Get("content")
	if !r.IsObject() || !content.IsArray() {
		return nil, errNotMessage
	}
	var text, reasoning strings.Builder
	hasText := false
	var calls []byte
	var scratch bytes.Buffer
	nCalls := 0
	content.ForEach(func(_, b gjson.Result) bool {
		switch b.Get("type").Str {
		case "text":
			hasText = true
			text.WriteString(b.Get("text").Str)
		case "thinking":
			reasoning.WriteString(b.Get("thinking").Str)
		case "tool_use":
			if nCalls > 0 {
				calls = append(calls, ',')
			}
			nCalls++
			calls = append(calls, `{"id":`...)
			calls = jsonappend.String(calls, b.Get("id").Str)
			calls = append(calls, `,"type":"function","function":{"name":`...)
			calls = jsonappend.String(calls, b.Get("name").Str)
			calls = append(calls, `,"arguments":`...)
			calls = oairender.AppendArguments(calls, b.Get("input"), &scratch)
			calls = append(calls, "}}"...)
		}
		return true
	})

	out := make([]byte, 0, 256+text.Len()+reasoning.Len()+len(calls))
	out = oairender.AppendCompletionHead(out, cmp.Or(r.Get("id").Str, "msg_unknown"), created, cmp.Or(r.Get("model").Str, model))
	out = oairender.AppendMessageChoice(out, text.String(), !hasText && nCalls > 0, reasoning.String(), calls, finishReason(r.Get("stop_reason").Str))
	if u := r.Get("usage"); u.IsObject() {
		var uc Usage
		uc.Update(u)
		out = append(out, `,"usage":`...)
		out = uc.openAI().AppendJSON(out)
	}
	return append(out, '}'), nil
}

// finishReason maps a stop_reason (PROVIDERS.md §7.2). pause_turn has no OpenAI equivalent and
// ends as "stop"; unknown and missing values too.
func finishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// Usage is Anthropic's token counts of one answer, as message_start, message_delta and a whole
// Message report them; the gateway reads those of a relayed Messages answer with it too.
type Usage struct {
	Input, Output, CacheRead, CacheWrite, Thinking int64
	Found                                          bool // the answer reported usage
}

// Update overwrites the counts present in u: message_delta carries cumulative totals, which
// replace what message_start said and are never added (PROVIDERS.md §3.4).
func (c *Usage) Update(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	c.Found = true
	for _, f := range [...]struct {
		path string
		dst  *int64
	}{
		{"input_tokens", &c.Input},
		{"output_tokens", &c.Output},
		{"cache_read_input_tokens", &c.CacheRead},
		{"cache_creation_input_tokens", &c.CacheWrite},
		{"output_tokens_details.thinking_tokens", &c.Thinking},
	} {
		if v := u.Get(f.path); v.Type == gjson.Number {
			*f.dst = max(v.Int(), 0)
		}
	}
}

// openAI maps the counts to OpenAI's usage object (PROVIDERS.md §7.1): prompt_tokens counts every
// input token, cache reads and writes included; cached_tokens is the cache reads; cache_write_tokens
// (OpenAI's name for prompt tokens written to the cache) the cache writes, which Anthropic bills
// at a premium; reasoning_tokens the thinking share of the output.
func (c *Usage) openAI() oairender.Usage {
	return oairender.Usage{
		PromptTokens:     c.Input + c.CacheRead + c.CacheWrite,
		CompletionTokens: c.Output,
		CachedTokens:     c.CacheRead,
		CacheWriteTokens: c.CacheWrite,
		HasCacheWrites:   true,
		ReasoningTokens:  min(c.Thinking, c.Output),
	}
}
