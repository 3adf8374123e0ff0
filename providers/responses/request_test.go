package responses

import (
	"errors"
	"testing"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// TestToChatMapping: one case per row of the Responses → Chat request mapping (PROVIDERS-2.md
// §1.11) this package implements.
func TestToChatMapping(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		opts     Options
		want     string
	}{
		{"input string is one user message",
			`{"model":"m","input":"Hi"}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"Hi"}]}`},
		{"instructions are a system message first",
			`{"model":"m","instructions":"Be brief.","input":"Hi"}`, Options{},
			`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}`},
		{"message items keep their roles; input_text and output_text become text",
			`{"model":"m","input":[{"role":"developer","content":"d"},{"type":"message","role":"system","content":[{"type":"input_text","text":"s"}]},
			 {"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},
			 {"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"x","annotations":[]},{"type":"output_text","text":"y"}]}]}`, Options{},
			`{"model":"m","messages":[{"role":"developer","content":"d"},{"role":"system","content":[{"type":"text","text":"s"}]},
			 {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":"xy"}]}`},
		{"an assistant refusal part is the refusal",
			`{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`, Options{},
			`{"model":"m","messages":[{"role":"assistant","content":null,"refusal":"no"}]}`},
		{"input_image is an image_url part with its detail",
			`{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,AA==","detail":"low"},{"type":"input_image","image_url":"https://example.com/a.png"}]}]}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA==","detail":"low"}},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`},
		{"input_file is a file part",
			`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_data":"data:application/pdf;base64,AA==","filename":"a.pdf"}]}]}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,AA==","filename":"a.pdf"}}]}]}`},
		{"consecutive function_calls merge into the assistant message before them; outputs are tool messages; reasoning is dropped",
			`{"model":"m","input":[{"role":"user","content":"weather?"},{"type":"reasoning","id":"rs_1","summary":[]},
			 {"role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
			 {"type":"function_call","call_id":"call_a","name":"w","arguments":"{\"c\":\"P\"}","id":"fc_1","status":"completed"},
			 {"type":"function_call","call_id":"call_b","name":"t","arguments":"{}"},
			 {"type":"function_call_output","call_id":"call_a","output":"sunny"},
			 {"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"noon"}]},
			 {"type":"function_call","call_id":"call_c","name":"w","arguments":"{}"}]}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"weather?"},
			 {"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_a","type":"function","function":{"name":"w","arguments":"{\"c\":\"P\"}"}},{"id":"call_b","type":"function","function":{"name":"t","arguments":"{}"}}]},
			 {"role":"tool","content":"sunny","tool_call_id":"call_a"},{"role":"tool","content":[{"type":"text","text":"noon"}],"tool_call_id":"call_b"},
			 {"role":"assistant","content":null,"tool_calls":[{"id":"call_c","type":"function","function":{"name":"w","arguments":"{}"}}]}]}`},
		{"function tools are nested; an empty list is left out",
			`{"model":"m","input":"x","tools":[{"type":"function","name":"w","description":"weather","parameters":{"type":"object","properties":{"c":{"type":"string"}}},"strict":true},{"type":"function","name":"n"}]}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"w","description":"weather","parameters":{"type":"object","properties":{"c":{"type":"string"}}},"strict":true}},{"type":"function","function":{"name":"n"}}]}`},
		{"tool_choice strings as they are", `{"model":"m","input":"x","tool_choice":"required","tools":[]}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`},
		{"tool_choice function is nested", `{"model":"m","input":"x","tool_choice":{"type":"function","name":"w"}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"w"}}}`},
		{"tool_choice allowed_tools is nested", `{"model":"m","input":"x","tool_choice":{"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"w"}]}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"w"}}]}}}`},
		{"max_output_tokens is max_completion_tokens", `{"model":"m","input":"x","max_output_tokens":100}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":100}`},
		{"max_output_tokens is max_tokens when the options say so", `{"model":"m","input":"x","max_output_tokens":100}`, Options{MaxTokensField: MaxTokens},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100}`},
		{"text.format json_schema is nested in response_format; verbosity goes along",
			`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"out","description":"d","schema":{"type":"object"},"strict":true},"verbosity":"low"}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"verbosity":"low","response_format":{"type":"json_schema","json_schema":{"name":"out","description":"d","schema":{"type":"object"},"strict":true}}}`},
		{"text.format json_object", `{"model":"m","input":"x","text":{"format":{"type":"json_object"}}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`},
		{"text.format text is left out", `{"model":"m","input":"x","text":{"format":{"type":"text"}}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}]}`},
		{"reasoning.effort is reasoning_effort; summary has no equivalent", `{"model":"m","input":"x","reasoning":{"effort":"high","summary":"auto"}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"high"}`},
		{"stream asks for usage", `{"model":"m","input":"x","stream":true,"stream_options":{"include_obfuscation":false}}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`},
		{"shared fields pass as they are",
			`{"model":"m","input":"x","temperature":0.5,"top_p":0.9,"metadata":{"k":"v"},"user":"u","parallel_tool_calls":false,"safety_identifier":"s","prompt_cache_key":"p","service_tier":"auto","store":true,"background":false,"truncation":"disabled","include":["reasoning.encrypted_content"],"previous_response_id":null}`, Options{},
			`{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0.5,"top_p":0.9,"metadata":{"k":"v"},"user":"u","parallel_tool_calls":false,"safety_identifier":"s","prompt_cache_key":"p","service_tier":"auto"}`},
		{"the deployment's model replaces the public one", `{"model":"public","input":"x"}`, Options{Model: "upstream"},
			`{"model":"upstream","messages":[{"role":"user","content":"x"}]}`},
		{"a stored history comes before the input, after the instructions",
			`{"model":"m","instructions":"i","previous_response_id":"resp_1","input":[{"type":"function_call_output","call_id":"call_a","output":"ok"}]}`,
			Options{History: []byte(`[{"type":"message","role":"user","content":"q"},{"type":"function_call","call_id":"call_a","name":"f","arguments":"{}"}]`)},
			`{"model":"m","messages":[{"role":"system","content":"i"},{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"ok","tool_call_id":"call_a"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := ToChat([]byte(tc.in), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			fixture.JSONEqual(t, out, tc.want)
		})
	}
}

// TestToChatInfo: what the gateway learns of a request.
func TestToChatInfo(t *testing.T) {
	_, info, err := ToChat([]byte(`{"model":"pub","input":"x","stream":true,"store":false,"previous_response_id":"resp_prev","max_output_tokens":64}`),
		Options{Now: testClock, History: []byte(`[{"role":"user","content":"before"}]`)})
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != "pub" || !info.Stream || info.Store || info.PreviousResponseID != "resp_prev" || info.MaxOutputTokens != 64 ||
		info.CreatedAt != testClock().Unix() || len(info.ResponseID) != len("resp_")+48 {
		t.Errorf("info %+v", info)
	}
	fixture.JSONEqual(t, info.Input, `[{"role":"user","content":"before"},{"type":"message","role":"user","content":"x"}]`)
	if PreviousResponseID([]byte(`{"previous_response_id":"resp_prev"}`)) != "resp_prev" {
		t.Error("PreviousResponseID")
	}
	_, other, _ := ToChat([]byte(`{"model":"pub","input":"x"}`), Options{})
	if other.ResponseID == info.ResponseID || !other.Store || other.Stream {
		t.Errorf("a second request: %+v", other)
	}
}

// TestToChatRefuses: what cannot be honoured is a 400 naming the param, never a silent drop.
func TestToChatRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in, param, code string
	}{
		{"not JSON", `{"model":`, "", CodeInvalidValue},
		{"not an object", `[]`, "", CodeInvalidType},
		{"no model", `{"input":"x"}`, "model", CodeMissingParameter},
		{"no input", `{"model":"m"}`, "input", CodeMissingParameter},
		{"only instructions", `{"model":"m","instructions":"i","input":[]}`, "input", CodeMissingParameter},
		{"unknown field", `{"model":"m","input":"x","frobnicate":1}`, "frobnicate", CodeUnknownParameter},
		{"web_search", `{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"web_search"}]}`, "tools[1].type", CodeUnsupportedValue},
		{"web_search_preview", `{"model":"m","input":"x","tools":[{"type":"web_search_preview"}]}`, "tools[0].type", CodeUnsupportedValue},
		{"file_search", `{"model":"m","input":"x","tools":[{"type":"file_search","vector_store_ids":["vs"]}]}`, "tools[0].type", CodeUnsupportedValue},
		{"computer", `{"model":"m","input":"x","tools":[{"type":"computer_use_preview"}]}`, "tools[0].type", CodeUnsupportedValue},
		{"code_interpreter", `{"model":"m","input":"x","tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}`, "tools[0].type", CodeUnsupportedValue},
		{"image_generation", `{"model":"m","input":"x","tools":[{"type":"image_generation"}]}`, "tools[0].type", CodeUnsupportedValue},
		{"mcp", `{"model":"m","input":"x","tools":[{"type":"mcp","server_label":"s"}]}`, "tools[0].type", CodeUnsupportedValue},
		{"unknown tool type", `{"model":"m","input":"x","tools":[{"type":"teleport"}]}`, "tools[0].type", CodeInvalidValue},
		{"function tool without name", `{"model":"m","input":"x","tools":[{"type":"function"}]}`, "tools[0].name", CodeMissingParameter},
		{"tool_choice of a built-in", `{"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}}`, "tool_choice.type", CodeUnsupportedValue},
		{"background", `{"model":"m","input":"x","background":true}`, "background", CodeUnsupportedValue},
		{"conversation", `{"model":"m","input":"x","conversation":"conv_1"}`, "conversation", CodeUnsupportedParameter},
		{"prompt template", `{"model":"m","prompt":{"id":"pmpt_1"}}`, "prompt", CodeUnsupportedParameter},
		{"truncation auto", `{"model":"m","input":"x","truncation":"auto"}`, "truncation", CodeUnsupportedValue},
		{"include logprobs", `{"model":"m","input":"x","include":["message.output_text.logprobs"]}`, "include", CodeUnsupportedValue},
		{"top_logprobs", `{"model":"m","input":"x","top_logprobs":5}`, "top_logprobs", CodeUnsupportedParameter},
		{"max_tool_calls", `{"model":"m","input":"x","max_tool_calls":2}`, "max_tool_calls", CodeUnsupportedParameter},
		{"item_reference", `{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0]", CodeUnsupportedValue},
		{"built-in tool call item", `{"model":"m","input":[{"type":"web_search_call","id":"ws_1"}]}`, "input[0].type", CodeUnsupportedValue},
		{"image by file_id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, "input[0].content[0].file_id", CodeUnsupportedParameter},
		{"file by file_url", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_url":"https://example.com/a.pdf"}]}]}`, "input[0].content[0].file_url", CodeUnsupportedParameter},
		{"bad role", `{"model":"m","input":[{"role":"tool","content":"x"}]}`, "input[0].role", CodeInvalidValue},
		{"function_call without call_id", `{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0].call_id", CodeMissingParameter},
		{"json_schema without name", `{"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{}}}}`, "text.format.name", CodeMissingParameter},
		{"max_output_tokens not positive", `{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens", CodeInvalidValue},
		{"history not an array", `{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id", CodeInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{}
			if tc.name == "history not an array" {
				opts.History = []byte(`{}`)
			}
			out, _, err := ToChat([]byte(tc.in), opts)
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("got %s, %v; want a RequestError", out, err)
			}
			if re.Param != tc.param || re.Code != tc.code || re.Message == "" {
				t.Errorf("param %q code %q (%s), want %q %q", re.Param, re.Code, re.Message, tc.param, tc.code)
			}
			o := re.Object()
			if o.Type != "invalid_request_error" || (tc.param != "" && (o.Param == nil || *o.Param != tc.param)) {
				t.Errorf("error object %+v", o)
			}
		})
	}
}
