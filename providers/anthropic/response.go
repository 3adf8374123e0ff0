package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// This file translates a non-stream Messages answer into a chat.completion, and holds what the
// stream translation shares with it: usage, finish_reason and JSON rendering.

// errNotMessage is an upstream 2xx body that is not a Messages answer.
var errNotMessage = errors.New("anthropic: the answer is not a message")

// translateResponse renders the chat.completion of a Messages answer. The id is Anthropic's
// (msg_…), model the upstream's (model when the answer has none), created the given time. Text
// blocks are joined into content, thinking blocks into reasoning_content, tool_use blocks become
// tool_calls (content is then null when there is no text); other blocks (redacted thinking,
// server tools and their results) have no OpenAI equivalent and are left out.
func translateResponse(raw []byte, model string, created int64) ([]byte, error) {
	if !gjson.ValidBytes(raw) {
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
			calls = appendString(calls, b.Get("id").Str)
			calls = append(calls, `,"type":"function","function":{"name":`...)
			calls = appendString(calls, b.Get("name").Str)
			calls = append(calls, `,"arguments":`...)
			calls = appendString(calls, compactJSON(b.Get("input"), "{}"))
			calls = append(calls, "}}"...)
		}
		return true
	})

	out := make([]byte, 0, 256+text.Len()+reasoning.Len()+len(calls))
	out = append(out, `{"id":`...)
	out = appendString(out, cmpOr(r.Get("id").Str, "msg_unknown"))
	out = append(out, `,"object":"chat.completion","created":`...)
	out = strconv.AppendInt(out, created, 10)
	out = append(out, `,"model":`...)
	out = appendString(out, cmpOr(r.Get("model").Str, model))
	out = append(out, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if hasText || nCalls == 0 {
		out = appendString(out, text.String())
	} else {
		out = append(out, "null"...)
	}
	if reasoning.Len() > 0 {
		out = append(out, `,"reasoning_content":`...)
		out = appendString(out, reasoning.String())
	}
	if nCalls > 0 {
		out = append(out, `,"tool_calls":[`...)
		out = append(out, calls...)
		out = append(out, ']')
	}
	out = append(out, `,"refusal":null},"logprobs":null,"finish_reason":`...)
	out = appendString(out, finishReason(r.Get("stop_reason").Str))
	out = append(out, '}', ']')
	if u := r.Get("usage"); u.IsObject() {
		var uc usageCounts
		uc.update(u)
		out = append(out, `,"usage":`...)
		out = uc.appendJSON(out)
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

// usageCounts are Anthropic's token counts of one answer.
type usageCounts struct {
	input, output, cacheRead, cacheWrite, thinking int64
	found                                          bool
}

// update overwrites the counts present in u: message_delta carries cumulative totals, which
// replace what message_start said and are never added (PROVIDERS.md §3.4).
func (c *usageCounts) update(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	c.found = true
	for _, f := range [...]struct {
		path string
		dst  *int64
	}{
		{"input_tokens", &c.input},
		{"output_tokens", &c.output},
		{"cache_read_input_tokens", &c.cacheRead},
		{"cache_creation_input_tokens", &c.cacheWrite},
		{"output_tokens_details.thinking_tokens", &c.thinking},
	} {
		if v := u.Get(f.path); v.Type == gjson.Number {
			*f.dst = max(v.Int(), 0)
		}
	}
}

// appendJSON renders OpenAI's usage object (PROVIDERS.md §7.1): prompt_tokens counts every input
// token, cache reads and writes included; cached_tokens is the cache reads; cache_write_tokens
// (OpenAI's name for prompt tokens written to the cache) the cache writes, which Anthropic bills
// at a premium; reasoning_tokens the thinking share of the output.
func (c *usageCounts) appendJSON(dst []byte) []byte {
	prompt := c.input + c.cacheRead + c.cacheWrite
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, prompt, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, c.output, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, prompt+c.output, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, c.cacheRead, 10)
	dst = append(dst, `,"cache_write_tokens":`...)
	dst = strconv.AppendInt(dst, c.cacheWrite, 10)
	dst = append(dst, `},"completion_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendInt(dst, min(c.thinking, c.output), 10)
	return append(dst, "}}"...)
}

// compactJSON is v's JSON without insignificant space, or def when v is not an object.
func compactJSON(v gjson.Result, def string) string {
	if !v.IsObject() {
		return def
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(v.Raw)); err != nil {
		return def
	}
	return b.String()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does;
// HTML characters are not escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
