package gemini

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// This file holds what the stream and non-stream translators share: reading a candidate's parts,
// mapping finishReason and usageMetadata, and rendering JSON by appending to byte slices (the
// stream path renders every chunk this way, without reflection or per-chunk allocation).

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does,
// so the output is always valid JSON whatever the upstream sent; U+2028 and U+2029 are escaped
// for JavaScript consumers.
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
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendArgs appends a function call's args object as the JSON string OpenAI's "arguments" is:
// the compacted JSON text, quoted. Missing or non-object args become "{}".
func appendArgs(dst []byte, args gjson.Result, scratch *bytes.Buffer) []byte {
	if !args.IsObject() {
		return append(dst, `"{}"`...)
	}
	scratch.Reset()
	if err := json.Compact(scratch, []byte(args.Raw)); err != nil {
		return append(dst, `"{}"`...)
	}
	return appendString(dst, scratch.String())
}

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

// appendUsage renders OpenAI's CompletionUsage (PROVIDERS.md §7.1): tool-use prompt tokens are
// prompt tokens, thinking tokens are completion tokens (Gemini bills them as output) and also
// reasoning_tokens, cached content tokens are the cached subset of the prompt.
func appendUsage(dst []byte, u usage) []byte {
	prompt := u.prompt + u.toolPrompt
	completion := u.candidates + u.thoughts
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, prompt, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, completion, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, prompt+completion, 10)
	dst = append(dst, `,"prompt_tokens_details":{"cached_tokens":`...)
	dst = strconv.AppendInt(dst, u.cached, 10)
	dst = append(dst, `},"completion_tokens_details":{"reasoning_tokens":`...)
	dst = strconv.AppendInt(dst, u.thoughts, 10)
	return append(dst, `}}`...)
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
		// Re-render through appendString: a signature is base64, but nothing guarantees it.
		id := string(dst[start+1:])
		dst = appendString(dst[:start], id+thoughtSeparator+sig)
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
