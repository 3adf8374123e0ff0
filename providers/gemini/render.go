package gemini

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file holds what the stream and non-stream translators share: reading a candidate's parts,
// mapping finishReason and usageMetadata, and the ids of tool calls.

// usage is a usageMetadata snapshot. Gemini repeats it, cumulative, on every stream chunk: the
// last one wins, never a sum.
type usage struct {
	prompt, toolPrompt, candidates, thoughts, cached int64
}

func parseUsage(u gjson.Result) usage {
	count := func(field string) int64 { return min(max(u.Get(field).Int(), 0), maxCount) }
	return usage{
		prompt:     count("promptTokenCount"),
		toolPrompt: count("toolUsePromptTokenCount"),
		candidates: count("candidatesTokenCount"),
		thoughts:   count("thoughtsTokenCount"),
		cached:     count("cachedContentTokenCount"),
	}
}

// maxCount bounds each token count read, so that sums never overflow whatever an upstream sends.
const maxCount = 1 << 40

// openAI maps the snapshot to OpenAI's usage object (PROVIDERS.md §7.1): tool-use prompt tokens
// are prompt tokens, thinking tokens are completion tokens (Gemini bills them as output) and
// also reasoning_tokens, cached content tokens are the cached subset of the prompt. Gemini writes
// caches by a separate call, so an answer has no cache writes to report.
func (u usage) openAI() oairender.Usage {
	return oairender.Usage{
		PromptTokens:     u.prompt + u.toolPrompt,
		CompletionTokens: u.candidates + u.thoughts,
		CachedTokens:     u.cached,
		ReasoningTokens:  u.thoughts,
	}
}

// finishReason maps a Gemini finishReason (or a promptFeedback.blockReason) to OpenAI's, following
// PROVIDERS.md §7.2. Gemini ends tool turns with STOP, so STOP becomes "tool_calls" when the
// answer called a function. Reasons without an OpenAI equivalent (OTHER, LANGUAGE,
// MALFORMED_FUNCTION_CALL…) become "stop": the answer did end, and the client keeps what came.
func finishReason(reason string, calledTools bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
		"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
		return "content_filter"
	}
	if calledTools {
		return "tool_calls"
	}
	return "stop"
}

// firstCandidate returns the candidate with index 0 (requests never ask for more, see n).
func firstCandidate(chunk gjson.Result) gjson.Result {
	var found gjson.Result
	chunk.Get("candidates").ForEach(func(_, c gjson.Result) bool {
		if c.Get("index").Int() == 0 {
			found = c
			return false
		}
		return true
	})
	return found
}

// thoughtSeparator joins a synthesised tool call id and the thought signature Gemini attached to
// the function call. Gemini 3 requires the signature back with the call in the next request, and
// the tool call id is the only field OpenAI clients are sure to echo.
const thoughtSeparator = "__thought__"

// appendCallID renders the id of the n-th tool call of an answer. Gemini's function calls carry
// no id before Gemini 3, and the adapter needs none (a tool result is matched to its call by
// name), so every id is made here, derived from the response id: the same answer always yields
// the same ids, the calls of one answer never share one, and ids of different answers differ.
func appendCallID(dst []byte, part gjson.Result, respID string, n int) []byte {
	start := len(dst)
	dst = append(dst, "\"call_"...)
	if respID != "" {
		dst = append(dst, respID...)
		dst = append(dst, '_')
	}
	dst = strconv.AppendInt(dst, int64(n), 10)
	if sig := part.Get("thoughtSignature").Str; sig != "" {
		// Re-render as a JSON string: a signature is base64, but nothing guarantees it.
		id := string(dst[start+1:])
		dst = jsonappend.String(dst[:start], id+thoughtSeparator+sig)
		return dst
	}
	return append(dst, '"')
}

// safeID reports whether s can be used in an id as is: short and made of URL-safe characters.
func safeID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
