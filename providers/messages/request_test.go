package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// TestToChatText: the simplest request, a system prompt and one user turn, becomes a chat
// request with the upstream model, and RequestInfo tells what the answer needs.
func TestToChatText(t *testing.T) {
	chat, info, err := ToChat([]byte(`{"model":"claude-sonnet-4-5","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}],"stream":true}`),
		Options{Model: "gpt-up"})
	if err != nil {
		t.Fatal(err)
	}
	fixture.JSONEqual(t, chat, `{"model":"gpt-up","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],
		"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":100}`)
	if info.Model != "claude-sonnet-4-5" || !info.Stream || info.MaxTokens != 100 || len(info.ID) < 20 || info.ID[:4] != "msg_" {
		t.Errorf("info %+v", info)
	}
	_, _, err = ToChat([]byte(`{"model":"m","messages":[{"role":"user","content":"Hi"}]}`), Options{})
	var re *RequestError
	if !errors.As(err, &re) || re.Status != 400 || re.Type != "invalid_request_error" || re.Message != "max_tokens: Field required" {
		t.Errorf("missing max_tokens: %#v", err)
	}
}

// TestToChatMapping: one case per row of the Messages → Chat request mapping this package
// implements (see the package doc).
func TestToChatMapping(t *testing.T) {
	const head = `{"model":"m","max_tokens":10,`
	const chatHead = `{"model":"m","max_completion_tokens":10,`
	user := `{"role":"user","content":"x"}`
	for _, tc := range []struct {
		name, in string
		opts     Options
		want     string
	}{
		{"system text blocks are one system message; text-only user turns are one string",
			head + `"system":[{"type":"text","text":"A","cache_control":{"type":"ephemeral"}},{"type":"text","text":"B"}],
			 "messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}}]}]}`, Options{},
			chatHead + `"messages":[{"role":"system","content":"A\n\nB"},{"role":"user","content":"a\n\nb"}]}`},
		{"multi-turn keeps the turns; consecutive assistant turns merge; thinking blocks are dropped",
			head + `"messages":[{"role":"user","content":"1"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"text","text":"2"}]},
			 {"role":"assistant","content":"3"},{"role":"user","content":"4"},{"role":"assistant","content":[{"type":"redacted_thinking","data":"x"},{"type":"text","text":"5"}]}]}`, Options{},
			chatHead + `"messages":[{"role":"user","content":"1"},{"role":"assistant","content":"23"},{"role":"user","content":"4"},{"role":"assistant","content":"5"}]}`},
		{"images: base64 is a data URL, url as it is; a turn with an image keeps parts",
			head + `"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}},
			 {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},{"type":"text","text":"what?"}]}]}`, Options{},
			chatHead + `"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}},
			 {"type":"image_url","image_url":{"url":"https://example.com/a.png"}},{"type":"text","text":"what?"}]}]}`},
		{"documents: a base64 PDF is a file part, a text document text",
			head + `"messages":[{"role":"user","content":[{"type":"document","title":"r.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}},
			 {"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}}]}]}`, Options{},
			chatHead + `"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"r.pdf","file_data":"data:application/pdf;base64,JVBE"}},{"type":"text","text":"plain"}]}]}`},
		{"tool_use is tool_calls; tool_result a tool message before the turn's text; is_error and block content",
			head + `"messages":[{"role":"user","content":"weather?"},
			 {"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_a","name":"w","input":{"c":"P"}},{"type":"tool_use","id":"toolu_b","name":"t","input":{}}]},
			 {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_a","content":"sunny"},
			  {"type":"tool_result","tool_use_id":"toolu_b","is_error":true,"content":[{"type":"text","text":"no clock"},{"type":"image","source":{"type":"url","url":"https://example.com/c.png"}}]},
			  {"type":"text","text":"and?"}]}]}`, Options{},
			chatHead + `"messages":[{"role":"user","content":"weather?"},
			 {"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_a","type":"function","function":{"name":"w","arguments":"{\"c\":\"P\"}"}},{"id":"toolu_b","type":"function","function":{"name":"t","arguments":"{}"}}]},
			 {"role":"tool","content":"sunny","tool_call_id":"toolu_a"},{"role":"tool","content":"Error: no clock","tool_call_id":"toolu_b"},
			 {"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/c.png"}},{"type":"text","text":"and?"}]}]}`},
		{"a turn of tool results only adds no user message; a call-only assistant turn has null content",
			head + `"messages":[{"role":"user","content":"go"},{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"f","input":{"a":[1]}}]},
			 {"role":"user","content":[{"type":"tool_result","tool_use_id":"c1"}]}]}`, Options{},
			chatHead + `"messages":[{"role":"user","content":"go"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":[1]}"}}]},
			 {"role":"tool","content":"","tool_call_id":"c1"}]}`},
		{"tools are functions; tool_choice any is required; disable_parallel_tool_use is parallel_tool_calls false",
			head + `"messages":[` + user + `],"tools":[{"name":"w","description":"weather","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}},{"type":"custom","name":"n","input_schema":{"type":"object"},"strict":true}],
			 "tool_choice":{"type":"any","disable_parallel_tool_use":true}}`, Options{},
			chatHead + `"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"w","description":"weather","parameters":{"type":"object"}}},
			 {"type":"function","function":{"name":"n","parameters":{"type":"object"},"strict":true}}],"tool_choice":"required","parallel_tool_calls":false}`},
		{"tool_choice tool is a named function",
			head + `"messages":[` + user + `],"tools":[{"name":"w","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"w"}}`, Options{},
			chatHead + `"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"w"}}}`},
		{"tool_choice auto and none",
			head + `"messages":[` + user + `],"tools":[{"name":"w","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"}}`, Options{},
			chatHead + `"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],"tool_choice":"none"}`},
		{"tool_choice without tools is left out",
			head + `"messages":[` + user + `],"tools":[],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`, Options{},
			chatHead + `"messages":[` + user + `]}`},
		{"stop_sequences are stop; temperature and top_p as they are; top_k dropped; metadata.user_id is user",
			head + `"messages":[` + user + `],"stop_sequences":["END","##"],"temperature":0.5,"top_p":0.9,"top_k":40,"metadata":{"user_id":"u-1"}}`, Options{},
			chatHead + `"messages":[` + user + `],"stop":["END","##"],"temperature":0.5,"top_p":0.9,"user":"u-1"}`},
		{"a metadata.user_id longer than OpenAI's 64-character user identifiers is dropped (Claude Code sends about 160)",
			head + `"messages":[` + user + `],"metadata":{"user_id":"user_` + strings.Repeat("a", 64) + `_account_x_session_y"}}`, Options{},
			chatHead + `"messages":[` + user + `]}`},
		{"max_tokens goes to max_tokens when the options say so; the upstream model is written",
			head + `"messages":[` + user + `]}`, Options{MaxTokensField: MaxTokens, Model: "up"},
			`{"model":"up","max_tokens":10,"messages":[` + user + `]}`},
		{"thinking is dropped for a target without reasoning; context_management, service_tier too",
			head + `"messages":[` + user + `],"thinking":{"type":"enabled","budget_tokens":31999},"context_management":{"edits":[]},"service_tier":"auto"}`, Options{},
			chatHead + `"messages":[` + user + `]}`},
		{"thinking budget is reasoning_effort for a target with reasoning",
			head + `"messages":[` + user + `],"thinking":{"type":"enabled","budget_tokens":31999}}`, Options{Reasoning: true},
			chatHead + `"messages":[` + user + `],"reasoning_effort":"high"}`},
		{"a small thinking budget is low",
			head + `"messages":[` + user + `],"thinking":{"type":"enabled","budget_tokens":1024}}`, Options{Reasoning: true},
			chatHead + `"messages":[` + user + `],"reasoning_effort":"low"}`},
		{"output_config.effort wins; disabled thinking has none",
			head + `"messages":[` + user + `],"thinking":{"type":"adaptive"},"output_config":{"effort":"medium"}}`, Options{Reasoning: true},
			chatHead + `"messages":[` + user + `],"reasoning_effort":"medium"}`},
		{"disabled thinking has no effort",
			head + `"messages":[` + user + `],"thinking":{"type":"disabled"},"output_config":{"effort":"low"}}`, Options{Reasoning: true},
			chatHead + `"messages":[` + user + `]}`},
		{"output_config.format is response_format json_schema",
			head + `"messages":[` + user + `],"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`, Options{},
			chatHead + `"messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"output","schema":{"type":"object"}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := ToChat([]byte(tc.in), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			fixture.JSONEqual(t, got, tc.want)
		})
	}
}

// TestToChatInfo: what the answer's translation needs comes back in RequestInfo.
func TestToChatInfo(t *testing.T) {
	_, info, err := ToChat([]byte(`{"model":"claude-x","max_tokens":7,"stop_sequences":["a","b"],"messages":[{"role":"user","content":"x"}]}`), Options{Model: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != "claude-x" || info.Stream || info.MaxTokens != 7 || !reflect.DeepEqual(info.StopSequences, []string{"a", "b"}) {
		t.Errorf("%+v", info)
	}
	_, other, _ := ToChat([]byte(`{"model":"claude-x","max_tokens":7,"messages":[{"role":"user","content":"x"}]}`), Options{})
	if other.ID == info.ID {
		t.Errorf("two requests got one id %s", info.ID)
	}
	// The effort thinking stands for is reported even when the body leaves it out.
	chat, thinking, _ := ToChat([]byte(`{"model":"claude-x","max_tokens":9000,"thinking":{"type":"enabled","budget_tokens":3000},"messages":[{"role":"user","content":"x"}]}`), Options{})
	if thinking.ReasoningEffort != "medium" || bytes.Contains(chat, []byte("reasoning_effort")) || info.ReasoningEffort != "" {
		t.Errorf("effort %q with body %s; %q without thinking", thinking.ReasoningEffort, chat, info.ReasoningEffort)
	}
}

// TestToChatRefuses: what cannot be translated faithfully is an Anthropic-shaped 400 naming the
// field, found before any upstream call.
func TestToChatRefuses(t *testing.T) {
	const head = `{"model":"m","max_tokens":10,`
	user := `{"role":"user","content":"x"}`
	for _, tc := range []struct{ name, in, want string }{
		{"malformed JSON", `{"model":`, "The request body is not valid JSON."},
		{"not an object", `[]`, "The request body must be a JSON object."},
		{"missing model", `{"max_tokens":1,"messages":[]}`, "model: Field required"},
		{"missing max_tokens", `{"model":"m","messages":[` + user + `]}`, "max_tokens: Field required"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[` + user + `]}`, "max_tokens: Input should be a positive integer"},
		{"missing messages", `{"model":"m","max_tokens":1}`, "messages: Field required"},
		{"empty messages", head + `"messages":[]}`, "messages: at least one message is required"},
		{"unknown field", head + `"messages":[` + user + `],"frequency_penalty":1}`, "frequency_penalty: Extra inputs are not permitted"},
		{"unknown role", head + `"messages":[{"role":"system","content":"x"}]}`, "messages.0.role: Input should be 'user' or 'assistant'"},
		{"unknown block", head + `"messages":[{"role":"user","content":[{"type":"video","x":1}]}]}`, `messages.0.content.0: content blocks of type "video" cannot be sent to this model's deployment`},
		{"server tool block in an assistant turn", head + `"messages":[{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]}`,
			`messages.0.content.0: content blocks of type "server_tool_use" cannot be sent to this model's deployment`},
		{"tool_result without its tool_use", head + `"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_x","content":"r"}]}]}`,
			"messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_x. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."},
		{"tool_result answering a call of an older turn", head + `"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"a"}]},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a"}]}]}`,
			"messages.3.content.0: unexpected `tool_use_id` found in `tool_result` blocks: a. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."},
		{"server tool", head + `"messages":[` + user + `],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]}`,
			"tools.0: the web_search_20250305 tool is not available for this model's deployment: only custom tools (name, description, input_schema) are"},
		{"Anthropic-defined client tool", head + `"messages":[` + user + `],"tools":[{"type":"bash_20250124","name":"bash"}]}`,
			"tools.0: the bash_20250124 tool is not available for this model's deployment: only custom tools (name, description, input_schema) are"},
		{"tool without schema", head + `"messages":[` + user + `],"tools":[{"name":"f"}]}`, "tools.0.input_schema: Field required (a JSON Schema object)"},
		{"mcp_servers", head + `"messages":[` + user + `],"mcp_servers":[{"type":"url","url":"https://example.com","name":"x"}]}`,
			"mcp_servers: not supported for this model's deployment, which has no Anthropic-hosted tools"},
		{"image by file id", head + `"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`,
			`messages.0.content.0.source: images given by "file" are not supported for this model's deployment: send base64 data or a URL`},
		{"unknown thinking type", head + `"messages":[` + user + `],"thinking":{"type":"on"}}`,
			`thinking: Input tag "on" found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'`},
		{"unknown tool_choice", head + `"messages":[` + user + `],"tool_choice":{"type":"required"}}`,
			`tool_choice: Input tag "required" found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'`},
		{"stream not a boolean", head + `"messages":[` + user + `],"stream":"yes"}`, "stream: Input should be a valid boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ToChat([]byte(tc.in), Options{})
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a RequestError", err)
			}
			if re.Status != 400 || re.Type != TypeInvalidRequest || re.Message != tc.want {
				t.Errorf("got %d %s %q, want 400 invalid_request_error %q", re.Status, re.Type, re.Message, tc.want)
			}
			fixture.JSONEqual(t, re.Body(), `{"type":"error","error":{"type":"invalid_request_error","message":`+string(mustJSON(tc.want))+`}}`)
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCountTokensToChat: a count_tokens body needs no max_tokens and takes none of the
// create-only fields.
func TestCountTokensToChat(t *testing.T) {
	chat, _, err := CountTokensToChat([]byte(`{"model":"m","system":"s","messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object"}}]}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fixture.JSONEqual(t, chat, `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`)
	_, _, err = CountTokensToChat([]byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`), Options{})
	var re *RequestError
	if !errors.As(err, &re) || re.Message != "max_tokens: Extra inputs are not permitted" {
		t.Errorf("max_tokens in count_tokens: %v", err)
	}
}

// TestErrorType: statuses map to Anthropic's error types.
func TestErrorType(t *testing.T) {
	for status, want := range map[int]string{400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
		403: "permission_error", 404: "not_found_error", 409: "invalid_request_error", 413: "request_too_large", 422: "invalid_request_error",
		429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"} {
		if got := ErrorType(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
	fixture.JSONEqual(t, ErrorBody("overloaded_error", "Overloaded \"now\""), `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded \"now\""}}`)
}
