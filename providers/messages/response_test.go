package messages

import (
	"errors"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// testInfo is the RequestInfo of a request with a fixed id.
func testInfo(t testing.TB) RequestInfo {
	t.Helper()
	_, info, err := ToChat([]byte(`{"model":"claude-pub","max_tokens":100,"stream":true,"stop_sequences":["END"],"messages":[{"role":"user","content":"hi"}]}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	info.ID = "msg_test"
	return info
}

// TestFromChat: one case per row of the Chat → Messages answer mapping (PROVIDERS-2.md §2.6).
func TestFromChat(t *testing.T) {
	info := testInfo(t)
	head := `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"up-model","choices":[{"index":0,"message":`
	msg := func(content, reason, seq, usage string) string {
		return `{"id":"msg_test","type":"message","role":"assistant","model":"claude-pub","content":` + content +
			`,"stop_reason":` + reason + `,"stop_sequence":` + seq + `,"usage":` + usage + `}`
	}
	zero := `{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}`
	for _, tc := range []struct {
		name, chat, want string
		u                Usage
	}{
		{"text; input_tokens exclude the cached ones",
			head + `{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}`,
			msg(`[{"type":"text","text":"Hello"}]`, `"end_turn"`, "null", `{"input_tokens":6,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":2}`),
			Usage{Present: true, InputTokens: 6, CacheReadInputTokens: 4, OutputTokens: 2}},
		{"cache writes when the upstream says; DeepSeek's cache hits",
			head + `{"role":"assistant","content":"a"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_cache_hit_tokens":3,"prompt_tokens_details":{"cache_write_tokens":5}}}`,
			msg(`[{"type":"text","text":"a"}]`, `"end_turn"`, "null", `{"input_tokens":2,"cache_creation_input_tokens":5,"cache_read_input_tokens":3,"output_tokens":2}`),
			Usage{Present: true, InputTokens: 2, CacheCreationInputTokens: 5, CacheReadInputTokens: 3, OutputTokens: 2}},
		{"reasoning, text and calls in Anthropic's order; arguments parsed; tool_use",
			head + `{"role":"assistant","content":"Let me check.","reasoning_content":"Think.","tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{\"c\":1}"}},{"id":"call_b","type":"function","function":{"name":"t","arguments":"not json"}}]},"finish_reason":"tool_calls"}],
			 "usage":{"prompt_tokens":5,"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":6}}}`,
			msg(`[{"type":"thinking","thinking":"Think.","signature":""},{"type":"text","text":"Let me check."},{"type":"tool_use","id":"call_a","name":"w","input":{"c":1}},{"type":"tool_use","id":"call_b","name":"t","input":{}}]`,
				`"tool_use"`, "null", `{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":9}`),
			Usage{Present: true, InputTokens: 5, OutputTokens: 9, ReasoningTokens: 6}},
		{"reasoning under vLLM's name; its stop_reason names the stop sequence",
			head + `{"role":"assistant","content":"ok","reasoning":"hm"},"finish_reason":"stop","stop_reason":"END"}]}`,
			msg(`[{"type":"thinking","thinking":"hm","signature":""},{"type":"text","text":"ok"}]`, `"stop_sequence"`, `"END"`, zero), Usage{}},
		{"a stop string that is not one of the request's is end_turn",
			head + `{"role":"assistant","content":"ok"},"finish_reason":"stop","stop_reason":"</s>"}]}`,
			msg(`[{"type":"text","text":"ok"}]`, `"end_turn"`, "null", zero), Usage{}},
		{"a call without an id gets one; stop with calls is tool_use",
			head + `{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"w","arguments":"{}"}}]},"finish_reason":"stop"}]}`,
			msg(`[{"type":"tool_use","id":"toolu_test_0","name":"w","input":{}}]`, `"tool_use"`, "null", zero), Usage{}},
		{"length is max_tokens",
			head + `{"role":"assistant","content":"Once"},"finish_reason":"length"}]}`,
			msg(`[{"type":"text","text":"Once"}]`, `"max_tokens"`, "null", zero), Usage{}},
		{"content_filter is refusal; an empty answer has one empty text block",
			head + `{"role":"assistant","content":null},"finish_reason":"content_filter"}]}`,
			msg(`[{"type":"text","text":""}]`, `"refusal"`, "null", zero), Usage{}},
		{"a refusal is text, and stop_reason refusal",
			head + `{"role":"assistant","content":null,"refusal":"I can't."},"finish_reason":"stop"}]}`,
			msg(`[{"type":"text","text":"I can't."}]`, `"refusal"`, "null", zero), Usage{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, u, err := FromChat([]byte(tc.chat), info)
			if err != nil {
				t.Fatal(err)
			}
			fixture.JSONEqual(t, body, tc.want)
			if u != tc.u {
				t.Errorf("usage %+v, want %+v", u, tc.u)
			}
		})
	}
	for _, bad := range []string{`{"choices":[]}`, `not json`, `[]`} {
		if _, _, err := FromChat([]byte(bad), info); !errors.Is(err, ErrNotChatCompletion) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestRoundTrip: a translated answer sent back as the next assistant turn, with results for its
// calls, translates again: the calls keep their ids, the thinking block is dropped.
func TestRoundTrip(t *testing.T) {
	info := testInfo(t)
	answer, _, err := FromChat([]byte(`{"choices":[{"message":{"content":"Checking.","reasoning_content":"hm","tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{\"c\":\"P\"}"}}]},"finish_reason":"tool_calls"}]}`), info)
	if err != nil {
		t.Fatal(err)
	}
	content := gjson.GetBytes(answer, "content").Raw
	next := `{"model":"claude-pub","max_tokens":10,"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":` + content +
		`},{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_a","content":"sunny"}]}]}`
	chat, _, err := ToChat([]byte(next), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fixture.JSONEqual(t, chat, `{"model":"claude-pub","max_completion_tokens":10,"messages":[{"role":"user","content":"weather?"},
		{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{\"c\":\"P\"}"}}]},
		{"role":"tool","content":"sunny","tool_call_id":"call_a"}]}`)
}

// TestFromChatDeepArguments: a call whose arguments an upstream nested a million deep becomes a
// tool_use with input {}, with the stack bounded as a small goroutine's would be (a recursive
// check overflowed it, and a stack overflow is not a panic anything recovers).
func TestFromChatDeepArguments(t *testing.T) {
	args := strings.Repeat("[", 1_000_000)
	chat, err := sjson.Set(`{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":"tool_calls"}]}`,
		"choices.0.message.tool_calls.0.function.arguments", args)
	if err != nil {
		t.Fatal(err)
	}
	_, info, _ := ToChat([]byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`), Options{})
	defer debug.SetMaxStack(debug.SetMaxStack(256 << 10))
	msg, _, err := FromChat([]byte(chat), info)
	if err != nil {
		t.Fatal(err)
	}
	if got := gjson.GetBytes(msg, "content.0.input").Raw; got != "{}" {
		t.Errorf("tool_use input %.40s", got)
	}
}
