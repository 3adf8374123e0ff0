package messages

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers/internal/chatanswer"
)

// This file translates a chat.completion into a Message (PROVIDERS-2.md §2.6) and holds what
// the stream translation shares with it: usage and the stop reason.

// Usage is the token usage of one answer, in the Messages API's terms: InputTokens excludes the
// cached prompt tokens, as Anthropic counts (PROVIDERS.md §3.6).
type Usage struct {
	// Present is whether the upstream reported usage at all; without it the counts are zero and
	// the gateway estimates (from Stream.Text, or the answer).
	Present bool
	// InputTokens are the prompt tokens neither read from nor written to a cache.
	InputTokens int64
	// OutputTokens are every output token, reasoning included.
	OutputTokens int64
	// CacheReadInputTokens are the prompt tokens read from the upstream's cache
	// (prompt_tokens_details.cached_tokens, or DeepSeek's prompt_cache_hit_tokens).
	CacheReadInputTokens int64
	// CacheCreationInputTokens are the prompt tokens written to the cache, when the upstream
	// says (prompt_tokens_details.cache_write_tokens); 0 otherwise.
	CacheCreationInputTokens int64
	// ReasoningTokens are the share of OutputTokens spent reasoning.
	ReasoningTokens int64
}

// PromptTokens is the whole prompt, what the chat usage called prompt_tokens.
func (u Usage) PromptTokens() int64 {
	return u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
}

// parseUsage reads a chat usage object.
func parseUsage(u gjson.Result) Usage {
	out := Usage{
		Present:         true,
		OutputTokens:    u.Get("completion_tokens").Int(),
		ReasoningTokens: u.Get("completion_tokens_details.reasoning_tokens").Int(),
	}
	if c := u.Get("prompt_tokens_details.cached_tokens"); c.Type == gjson.Number {
		out.CacheReadInputTokens = c.Int()
	} else {
		out.CacheReadInputTokens = u.Get("prompt_cache_hit_tokens").Int()
	}
	out.CacheCreationInputTokens = u.Get("prompt_tokens_details.cache_write_tokens").Int()
	out.InputTokens = max(0, u.Get("prompt_tokens").Int()-out.CacheReadInputTokens-out.CacheCreationInputTokens)
	return out
}

// appendJSON renders the usage object; zeros when none was reported, since the SDKs expect
// numbers.
func (u Usage) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, u.InputTokens, 10)
	dst = append(dst, `,"cache_creation_input_tokens":`...)
	dst = strconv.AppendInt(dst, u.CacheCreationInputTokens, 10)
	dst = append(dst, `,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, u.CacheReadInputTokens, 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, u.OutputTokens, 10)
	return append(dst, '}')
}

// stopReason maps a chat finish_reason to the Message's stop_reason and stop_sequence ("" for
// null). matched is the stop string the upstream says it stopped at (vLLM's stop_reason), if
// any: it is the stop_sequence only when it is one of the request's; other upstreams do not
// say, and their stop is end_turn. A stop with tool calls is tool_use, as some upstreams end a
// tool turn with stop.
func (info *RequestInfo) stopReason(finish, matched string, hadCalls bool) (reason, sequence string) {
	switch finish {
	case "length":
		return "max_tokens", ""
	case "tool_calls", "function_call":
		return "tool_use", ""
	case "content_filter":
		return "refusal", ""
	}
	if hadCalls {
		return "tool_use", ""
	}
	if finish == "stop" && matched != "" {
		for _, s := range info.StopSequences {
			if s == matched {
				return "stop_sequence", s
			}
		}
	}
	return "end_turn", ""
}

// matchedStop is the stop string a choice says it stopped at: vLLM's stop_reason, when a
// string.
func matchedStop(choice gjson.Result) string {
	if v := choice.Get("stop_reason"); v.Type == gjson.String {
		return v.Str
	}
	return ""
}

// appendMessage renders a Message object; content is the rendered blocks, comma-separated, and
// reason "" renders a null stop_reason (the message of message_start).
func (info *RequestInfo) appendMessage(dst []byte, content []byte, reason, sequence string, u Usage) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonappend.String(dst, info.ID)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = jsonappend.String(dst, info.Model)
	dst = append(dst, `,"content":[`...)
	dst = append(dst, content...)
	dst = append(dst, `],"stop_reason":`...)
	dst = appendOptString(dst, reason)
	dst = append(dst, `,"stop_sequence":`...)
	dst = appendOptString(dst, sequence)
	dst = append(dst, `,"usage":`...)
	dst = u.appendJSON(dst)
	return append(dst, '}')
}

// appendOptString renders s, or null when empty.
func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return jsonappend.String(dst, s)
}

func appendTextBlock(dst []byte, text string) []byte {
	dst = append(dst, `{"type":"text","text":`...)
	dst = jsonappend.String(dst, text)
	return append(dst, '}')
}

// appendThinkingBlock renders a thinking block. Its signature is empty: no chat upstream signs
// its reasoning, and this translation drops thinking blocks a client sends back.
func appendThinkingBlock(dst []byte, thinking string) []byte {
	dst = append(dst, `{"type":"thinking","thinking":`...)
	dst = jsonappend.String(dst, thinking)
	return append(dst, `,"signature":""}`...)
}

// appendToolUseBlock renders a tool_use block; input is a JSON object.
func appendToolUseBlock(dst []byte, id, name string, input []byte) []byte {
	dst = append(dst, `{"type":"tool_use","id":`...)
	dst = jsonappend.String(dst, id)
	dst = append(dst, `,"name":`...)
	dst = jsonappend.String(dst, name)
	dst = append(dst, `,"input":`...)
	dst = append(dst, input...)
	return append(dst, '}')
}

// toolUseID is a call's id, or one made from the Message id for an upstream that gave none.
func (info *RequestInfo) toolUseID(id string, n int) string {
	if id != "" {
		return id
	}
	return "toolu_" + info.ID[len("msg_"):] + "_" + strconv.Itoa(n)
}

// toolInput is a call's arguments as a tool_use input: the arguments when they are a JSON
// object, else {} (a tool_use input must be an object; an upstream that sent something else
// made a call no tool can take). The arguments are the upstream's: jsoncheck's bounded check, not
// gjson's recursive one, so a hostile nesting cannot overflow the stack.
func toolInput(args string) []byte {
	if jsoncheck.ValidString(args) && gjson.Parse(args).IsObject() {
		return []byte(args)
	}
	return []byte("{}")
}

// FromChat translates a chat.completion (a 2xx answer: the gateway maps upstream errors itself)
// into the Message of the request info describes, and returns the usage it reported. Blocks
// come in Anthropic's order: thinking, text, tool_use.
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
	msg := choice.Get("message")
	content := make([]byte, 0, len(chat)+256)
	n := 0
	next := func() {
		if n > 0 {
			content = append(content, ',')
		}
		n++
	}
	if rc := chatanswer.ReasoningText(msg); rc != "" {
		next()
		content = appendThinkingBlock(content, rc)
	}
	text, refusal := msg.Get("content").Str, msg.Get("refusal").Str
	text += refusal
	calls := msg.Get("tool_calls")
	hasCalls := calls.IsArray() && len(calls.Array()) > 0
	if text != "" || (!hasCalls && n == 0) {
		next()
		content = appendTextBlock(content, text)
	}
	k := 0
	calls.ForEach(func(_, c gjson.Result) bool {
		next()
		f := c.Get("function")
		content = appendToolUseBlock(content, info.toolUseID(c.Get("id").Str, k), f.Get("name").Str, toolInput(f.Get("arguments").Str))
		k++
		return true
	})
	reason, seq := info.stopReason(choice.Get("finish_reason").Str, matchedStop(choice), hasCalls)
	if refusal != "" && reason == "end_turn" {
		reason = "refusal"
	}
	return info.appendMessage(make([]byte, 0, len(content)+256), content, reason, seq, u), u, nil
}
