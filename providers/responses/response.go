package responses

import (
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/providers/internal/chatanswer"
)

// This file translates a chat.completion into a Response object (PROVIDERS-2.md §1.5, §1.11)
// and holds what the stream translation shares with it: the Response's rendering, its items,
// usage and status.

// Usage is the token usage of one answer, in the Responses API's terms.
type Usage struct {
	// Found is whether the upstream reported usage at all; without it the counts are zero and
	// the gateway estimates.
	Found bool
	// InputTokens counts every prompt token, cached or not; OutputTokens every output token,
	// reasoning included.
	InputTokens, OutputTokens int64
	// CachedTokens is the share of InputTokens read from the upstream's cache.
	CachedTokens int64
	// CacheWriteTokens is the share of InputTokens written to the cache, reported only when
	// HasCacheWrites: an upstream that does not count it is not claimed to have written zero.
	CacheWriteTokens int64
	HasCacheWrites   bool
	// ReasoningTokens is the share of OutputTokens spent reasoning.
	ReasoningTokens int64
}

// parseUsage reads a chat usage object.
func parseUsage(u gjson.Result) Usage {
	out := Usage{
		Found:           true,
		InputTokens:     u.Get("prompt_tokens").Int(),
		OutputTokens:    u.Get("completion_tokens").Int(),
		CachedTokens:    u.Get("prompt_tokens_details.cached_tokens").Int(),
		ReasoningTokens: u.Get("completion_tokens_details.reasoning_tokens").Int(),
	}
	if cw := u.Get("prompt_tokens_details.cache_write_tokens"); cw.Type == gjson.Number {
		out.CacheWriteTokens, out.HasCacheWrites = cw.Int(), true
	}
	return out
}

// appendJSON renders the usage object, null when none was found.
func (u Usage) appendJSON(dst []byte) []byte {
	if !u.Found {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, u.InputTokens, 10)
	dst = append(dst, `,"input_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.CachedTokens, 10)
	if u.HasCacheWrites {
		dst = append(dst, `,"cache_write_tokens":`...)
		dst = strconv.AppendInt(dst, u.CacheWriteTokens, 10)
	}
	dst = append(dst, `},"output_tokens":`...)
	dst = strconv.AppendInt(dst, u.OutputTokens, 10)
	dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendInt(dst, u.ReasoningTokens, 10)
	dst = append(dst, `},"total_tokens":`...)
	dst = strconv.AppendInt(dst, u.InputTokens+u.OutputTokens, 10)
	return append(dst, '}')
}

// Statuses of a Response.
const (
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
	statusIncomplete = "incomplete"
)

// outcome maps a chat finish_reason to the Response's status and incomplete reason.
func outcome(finish string) (status, reason string) {
	switch finish {
	case "length":
		return statusIncomplete, "max_output_tokens"
	case "content_filter":
		return statusIncomplete, "content_filter"
	}
	return statusCompleted, ""
}

// itemID is the id of the output item at index: prefix, the response id's random part, the index.
func (info *RequestInfo) itemID(prefix string, index int) string {
	return prefix + strings.TrimPrefix(info.ResponseID, "resp_") + "_" + strconv.Itoa(index)
}

func (info *RequestInfo) now() time.Time {
	if info.clock != nil {
		return info.clock()
	}
	return time.Now()
}

// appendResponse renders a Response object. output is the rendered items, comma-separated;
// completedAt 0 renders null.
func (info *RequestInfo) appendResponse(dst []byte, status, reason string, output []byte, u Usage, completedAt int64) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonappend.String(dst, info.ResponseID)
	dst = append(dst, `,"object":"response","created_at":`...)
	dst = strconv.AppendInt(dst, info.CreatedAt, 10)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","background":false,"completed_at":`...)
	if completedAt == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, completedAt, 10)
	}
	dst = append(dst, `,"error":null,"incomplete_details":`...)
	if reason == "" {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, `{"reason":"`...)
		dst = append(dst, reason...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `,"model":`...)
	dst = jsonappend.String(dst, info.Model)
	dst = append(dst, `,"output":[`...)
	dst = append(dst, output...)
	dst = append(dst, `],"usage":`...)
	dst = u.appendJSON(dst)
	if info.echo == nil {
		info.echo = (&translator{}).appendEcho(nil, info)
	}
	dst = append(dst, info.echo...)
	return append(dst, '}')
}

// appendMessageItem renders a message item whose content is the rendered parts, comma-separated.
func appendMessageItem(dst []byte, id, status string, parts []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonappend.String(dst, id)
	dst = append(dst, `,"type":"message","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","content":[`...)
	dst = append(dst, parts...)
	return append(dst, `],"role":"assistant"}`...)
}

func appendTextPart(dst []byte, text string) []byte {
	dst = append(dst, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	dst = jsonappend.String(dst, text)
	return append(dst, '}')
}

func appendRefusalPart(dst []byte, refusal string) []byte {
	dst = append(dst, `{"type":"refusal","refusal":`...)
	dst = jsonappend.String(dst, refusal)
	return append(dst, '}')
}

func appendReasoningPart(dst []byte, text string) []byte {
	dst = append(dst, `{"type":"reasoning_text","text":`...)
	dst = jsonappend.String(dst, text)
	return append(dst, '}')
}

// appendReasoningItem renders a reasoning item whose one content part holds text (no part while
// hasText is false: the item as first announced).
func appendReasoningItem(dst []byte, id, status string, hasText bool, text string) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonappend.String(dst, id)
	dst = append(dst, `,"type":"reasoning","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","summary":[],"content":[`...)
	if hasText {
		dst = appendReasoningPart(dst, text)
	}
	return append(dst, "]}"...)
}

func appendFunctionCallItem(dst []byte, id, status, callID, name, args string) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonappend.String(dst, id)
	dst = append(dst, `,"type":"function_call","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","arguments":`...)
	dst = jsonappend.String(dst, args)
	dst = append(dst, `,"call_id":`...)
	dst = jsonappend.String(dst, callID)
	dst = append(dst, `,"name":`...)
	dst = jsonappend.String(dst, name)
	return append(dst, '}')
}

// FromChat translates a chat.completion (a 2xx answer: the gateway maps upstream errors itself)
// into the Response of the request info describes, and returns the usage it reported.
func FromChat(chat []byte, info RequestInfo) ([]byte, Usage, error) {
	c, ok := chatanswer.Parse(chat)
	if !ok {
		return nil, Usage{}, ErrNotChatCompletion
	}
	choice := c.Choice
	var u Usage
	if c.Usage.IsObject() {
		u = parseUsage(c.Usage)
	}
	status, reason := outcome(choice.Get("finish_reason").Str)
	msg := choice.Get("message")
	itemStatus := statusCompleted
	if status == statusIncomplete {
		itemStatus = statusIncomplete
	}

	out := make([]byte, 0, len(chat)+512)
	n := 0
	next := func() {
		if n > 0 {
			out = append(out, ',')
		}
		n++
	}
	if rc := chatanswer.ReasoningText(msg); rc != "" {
		next()
		out = appendReasoningItem(out, info.itemID("rs_", n-1), itemStatus, true, rc)
	}
	content, refusal := msg.Get("content"), msg.Get("refusal").Str
	calls := msg.Get("tool_calls")
	hasCalls := calls.IsArray() && len(calls.Array()) > 0
	if content.Type == gjson.String && (content.Str != "" || !hasCalls) || refusal != "" {
		next()
		var parts []byte
		if content.Type == gjson.String {
			parts = appendTextPart(parts, content.Str)
		}
		if refusal != "" {
			if parts != nil {
				parts = append(parts, ',')
			}
			parts = appendRefusalPart(parts, refusal)
		}
		out = appendMessageItem(out, info.itemID("msg_", n-1), itemStatus, parts)
	}
	calls.ForEach(func(_, c gjson.Result) bool {
		next()
		f := c.Get("function")
		out = appendFunctionCallItem(out, info.itemID("fc_", n-1), itemStatus, c.Get("id").Str, f.Get("name").Str, f.Get("arguments").Str)
		return true
	})
	var completedAt int64
	if status == statusCompleted {
		completedAt = info.now().Unix()
	}
	return info.appendResponse(make([]byte, 0, len(out)+1024), status, reason, out, u, completedAt), u, nil
}
