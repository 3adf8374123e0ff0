package responses

import (
	"errors"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// TestFromChat: one case per row of the Chat → Responses answer mapping (PROVIDERS-2.md §1.11).
func TestFromChat(t *testing.T) {
	info := testInfo(t)
	head := `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"up-model","choices":[{"index":0,"message":`
	for _, tc := range []struct {
		name, chat string
		output     string // want: the output array
		status     string
		reason     string // incomplete_details.reason, "" for null
		usage      string // want: the usage object, "null" when absent
		u          Usage
	}{
		{"text",
			head + `{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":0}}}`,
			`[{"id":"msg_test_0","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello"}],"role":"assistant"}]`,
			"completed", "",
			`{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":12}`,
			Usage{Found: true, InputTokens: 10, OutputTokens: 2, CachedTokens: 4}},
		{"tool calls, no text",
			head + `{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{\"c\":1}"}},{"id":"call_b","type":"function","function":{"name":"t","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
			`[{"id":"fc_test_0","type":"function_call","status":"completed","arguments":"{\"c\":1}","call_id":"call_a","name":"w"},{"id":"fc_test_1","type":"function_call","status":"completed","arguments":"{}","call_id":"call_b","name":"t"}]`,
			"completed", "", "null", Usage{}},
		{"reasoning, text and a call",
			head + `{"role":"assistant","content":"Let me check.","reasoning_content":"Think.","tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,"completion_tokens_details":{"reasoning_tokens":6},"prompt_tokens_details":{"cache_write_tokens":3}}}`,
			`[{"id":"rs_test_0","type":"reasoning","status":"completed","summary":[],"content":[{"type":"reasoning_text","text":"Think."}]},
			  {"id":"msg_test_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Let me check."}],"role":"assistant"},
			  {"id":"fc_test_2","type":"function_call","status":"completed","arguments":"{}","call_id":"call_a","name":"w"}]`,
			"completed", "",
			`{"input_tokens":5,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":3},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":6},"total_tokens":14}`,
			Usage{Found: true, InputTokens: 5, OutputTokens: 9, ReasoningTokens: 6, CacheWriteTokens: 3, HasCacheWrites: true}},
		{"reasoning under vLLM's name",
			head + `{"role":"assistant","content":"ok","reasoning":"hm"},"finish_reason":"stop"}]}`,
			`[{"id":"rs_test_0","type":"reasoning","status":"completed","summary":[],"content":[{"type":"reasoning_text","text":"hm"}]},
			  {"id":"msg_test_1","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"ok"}],"role":"assistant"}]`,
			"completed", "", "null", Usage{}},
		{"length is incomplete: max_output_tokens",
			head + `{"role":"assistant","content":"Once"},"finish_reason":"length"}]}`,
			`[{"id":"msg_test_0","type":"message","status":"incomplete","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Once"}],"role":"assistant"}]`,
			"incomplete", "max_output_tokens", "null", Usage{}},
		{"content_filter is incomplete: content_filter",
			head + `{"role":"assistant","content":""},"finish_reason":"content_filter"}]}`,
			`[{"id":"msg_test_0","type":"message","status":"incomplete","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":""}],"role":"assistant"}]`,
			"incomplete", "content_filter", "null", Usage{}},
		{"refusal",
			head + `{"role":"assistant","content":null,"refusal":"I can't."},"finish_reason":"stop"}]}`,
			`[{"id":"msg_test_0","type":"message","status":"completed","content":[{"type":"refusal","refusal":"I can't."}],"role":"assistant"}]`,
			"completed", "", "null", Usage{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, u, err := FromChat([]byte(tc.chat), info)
			if err != nil {
				t.Fatal(err)
			}
			r := gjson.ParseBytes(body)
			fixture.JSONEqual(t, []byte(r.Get("output").Raw), tc.output)
			fixture.JSONEqual(t, []byte(r.Get("usage").Raw), tc.usage)
			if u != tc.u {
				t.Errorf("usage %+v, want %+v", u, tc.u)
			}
			if r.Get("status").Str != tc.status || r.Get("incomplete_details.reason").Str != tc.reason ||
				(tc.reason == "") != (r.Get("incomplete_details").Type == gjson.Null) {
				t.Errorf("status %s, incomplete_details %s", r.Get("status").Raw, r.Get("incomplete_details").Raw)
			}
			completed := r.Get("completed_at")
			if (tc.status == "completed") != (completed.Int() == testClock().Unix()) {
				t.Errorf("completed_at %s with status %s", completed.Raw, tc.status)
			}
			// The fixed fields and the echo of the request.
			for path, want := range map[string]string{
				"id": `"resp_test"`, "object": `"response"`, "created_at": "1700000100", "model": `"pub-model"`, "error": "null",
				"instructions": `"Be brief."`, "tools": `[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]`,
				"tool_choice": `"auto"`, "temperature": "1", "top_p": "1", "store": "true", "text": `{"format":{"type":"text"}}`,
				"previous_response_id": "null", "parallel_tool_calls": "true", "truncation": `"disabled"`, "metadata": "{}",
			} {
				if got := r.Get(path).Raw; got != want {
					t.Errorf("%s: %s, want %s", path, got, want)
				}
			}
		})
	}
}

// TestFromChatEchoesTheRequest: the Response repeats the request's parameters, as OpenAI does.
func TestFromChatEchoesTheRequest(t *testing.T) {
	_, info, err := ToChat([]byte(`{"model":"pub","input":"x","temperature":0.2,"top_p":0.5,"max_output_tokens":9,"metadata":{"a":"b"},"store":false,
		"previous_response_id":"resp_p","reasoning":{"effort":"low"},"text":{"format":{"type":"json_object"}},"tool_choice":"none","user":"u","parallel_tool_calls":false}`),
		Options{History: []byte(`[]`)})
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := FromChat([]byte(`{"choices":[{"message":{"content":"{}"},"finish_reason":"stop"}]}`), info)
	if err != nil {
		t.Fatal(err)
	}
	r := gjson.ParseBytes(body)
	for path, want := range map[string]string{
		"temperature": "0.2", "top_p": "0.5", "max_output_tokens": "9", "metadata": `{"a":"b"}`, "store": "false",
		"previous_response_id": `"resp_p"`, "reasoning": `{"effort":"low"}`, "text": `{"format":{"type":"json_object"}}`,
		"tool_choice": `"none"`, "user": `"u"`, "parallel_tool_calls": "false", "instructions": "null", "tools": "[]", "model": `"pub"`,
	} {
		if got := r.Get(path).Raw; got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}

func TestFromChatRefusesOtherBodies(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"choices":[]}`, `{"error":{"message":"x"}}`} {
		if _, _, err := FromChat([]byte(in), testInfo(t)); !errors.Is(err, ErrNotChatCompletion) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestNextHistory: a follow-up replays the conversation and the response's output, without
// reasoning items, and ToChat turns it into the chat history a second turn needs.
func TestNextHistory(t *testing.T) {
	_, info, err := ToChat([]byte(`{"model":"m","instructions":"not carried over","input":"weather in Paris?"}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	info.ResponseID = "resp_test"
	resp, _, err := FromChat([]byte(`{"choices":[{"message":{"content":null,"reasoning_content":"r","tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`), info)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := NextHistory(info.Input, resp)
	if err != nil {
		t.Fatal(err)
	}
	fixture.JSONEqual(t, hist, `[{"type":"message","role":"user","content":"weather in Paris?"},{"id":"fc_test_1","type":"function_call","status":"completed","arguments":"{}","call_id":"call_a","name":"w"}]`)
	chat, _, err := ToChat([]byte(`{"model":"m","previous_response_id":"resp_test","input":[{"type":"function_call_output","call_id":"call_a","output":"sunny"}]}`), Options{History: hist})
	if err != nil {
		t.Fatal(err)
	}
	fixture.JSONEqual(t, chat, `{"model":"m","messages":[{"role":"user","content":"weather in Paris?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","content":"sunny","tool_call_id":"call_a"}]}`)
	if _, err := NextHistory([]byte(`{}`), resp); err == nil {
		t.Error("NextHistory took an input that is not an array")
	}
	if err := PreviousResponseNotFound("resp_x"); err.Object().Code == nil || *err.Object().Code != CodePreviousNotFound ||
		err.Message != "Previous response with id 'resp_x' not found." {
		t.Errorf("%+v", err)
	}
}
