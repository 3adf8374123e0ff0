package mock

import (
	"strconv"
)

// vocabulary supplies the answer's words: plain ASCII letters, so they need no JSON escaping and
// each is one whitespace-separated word.
var vocabulary = [16]string{
	"the", "mock", "upstream", "streams", "deterministic", "words", "so", "tests",
	"can", "count", "every", "token", "it", "sends", "back", "today",
}

// appendWords renders tokens [from, to) of an answer.
func appendWords(dst []byte, from, to int) []byte {
	for j := from; j < to; j++ {
		if j > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, vocabulary[j%len(vocabulary)]...)
	}
	return dst
}

// plan splits an answer: completion tokens, content chunks, and the finish_reason, "length" when
// the request's token limit cut the answer short.
func (c *call) plan() (tokens, chunks int, finish string) {
	tpc := c.b.tokensPerChunk
	tokens, finish = c.b.chunks*tpc, "stop"
	if c.maxTokens > 0 && c.maxTokens < tokens {
		tokens, finish = c.maxTokens, "length"
	}
	return tokens, (tokens + tpc - 1) / tpc, finish
}

// appendHead renders the fields every answer object starts with, leaving the object open:
// `{"id":…,"object":…,"created":…,"model":…,`.
func appendHead(dst []byte, ep endpoint, object string, seq uint64, created int64, model string) []byte {
	if ep == epChat {
		dst = append(dst, `{"id":"chatcmpl-mock-`...)
	} else {
		dst = append(dst, `{"id":"cmpl-mock-`...)
	}
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","object":"`...)
	dst = append(dst, object...)
	dst = append(dst, `","created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = append(dst, model...)
	return append(dst, ',')
}

// appendUsage renders OpenAI's CompletionUsage, details included, since gateways read
// cached_tokens and reasoning_tokens from there.
func appendUsage(dst []byte, prompt, completion int) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(prompt), 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, int64(completion), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(prompt+completion), 10)
	return append(dst, `,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`...)
}

// appendFinish renders a finish_reason value, null while the answer goes on.
func appendFinish(dst []byte, finish string) []byte {
	if finish == "" {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = append(dst, finish...)
	return append(dst, '"')
}

// appendCompletion renders a whole non-stream answer: a chat.completion or a text_completion.
func appendCompletion(dst []byte, ep endpoint, c *call, seq uint64, created int64) []byte {
	tokens, _, finish := c.plan()
	if calls, n := c.plannedCalls(seq); ep == epChat && len(calls) > 0 {
		dst = appendHead(dst, ep, "chat.completion", seq, created, c.model)
		dst = append(dst, `"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[`...)
		for i, cc := range calls {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendToolCall(dst, i, cc, false, false)
		}
		dst = append(dst, `],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}]`...)
		if !c.b.noUsage {
			dst = append(dst, `,"usage":`...)
			dst = appendUsage(dst, c.promptTokens, n)
		}
		return append(dst, '}')
	}
	if ep == epChat {
		dst = appendHead(dst, ep, "chat.completion", seq, created, c.model)
		dst = append(dst, `"choices":[{"index":0,"message":{"role":"assistant","content":"`...)
		dst = appendWords(dst, 0, tokens)
		dst = append(dst, `","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":`...)
	} else {
		dst = appendHead(dst, ep, "text_completion", seq, created, c.model)
		dst = append(dst, `"choices":[{"text":"`...)
		dst = appendWords(dst, 0, tokens)
		dst = append(dst, `","index":0,"logprobs":null,"finish_reason":`...)
	}
	dst = appendFinish(dst, finish)
	dst = append(dst, "}]"...)
	if !c.b.noUsage {
		dst = append(dst, `,"usage":`...)
		dst = appendUsage(dst, c.promptTokens, tokens)
	}
	return append(dst, '}')
}

// appendStreamChoices renders the choices of a stream chunk carrying tokens [from, to) and the
// finish_reason (null when finish is empty).
func appendStreamChoices(dst []byte, ep endpoint, from, to int, finish string) []byte {
	if ep == epChat {
		dst = append(dst, `"choices":[{"index":0,"delta":{`...)
		if to > from {
			dst = append(dst, `"content":"`...)
			dst = appendWords(dst, from, to)
			dst = append(dst, '"')
		}
		dst = append(dst, `},"logprobs":null,"finish_reason":`...)
	} else {
		dst = append(dst, `"choices":[{"text":"`...)
		dst = appendWords(dst, from, to)
		dst = append(dst, `","index":0,"logprobs":null,"finish_reason":`...)
	}
	dst = appendFinish(dst, finish)
	return append(dst, "}]"...)
}
