package anthropic

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestTranslateRequest is the OpenAI → Messages table: each case gives the OpenAI body and the
// Messages body it must become (compared as JSON values).
func TestAnthropicTranslateRequest(t *testing.T) {
	tests := []struct {
		name     string
		settings Settings
		stream   bool
		in       string
		want     string
	}{
		{
			name: "defaults: max_tokens from the settings, string content as a text block",
			in:   `{"model":"ignored-public-name","messages":[{"role":"user","content":"Hello"}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]}`,
		},
		{
			name:     "configured default max_tokens",
			settings: Settings{DefaultMaxTokens: 512},
			in:       `{"model":"m","messages":[{"role":"user","content":"Hi"}]}`,
			want:     `{"model":"claude-test","max_tokens":512,"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]}`,
		},
		{
			name: "system and developer messages become the top-level system, in order, wherever they stand",
			in: `{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},
				{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},{"role":"assistant","content":"Salut"},
				{"role":"user","content":"Again"}]}`,
			want: `{"model":"claude-test","max_tokens":4096,
				"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Answer in French."}],
				"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},
				{"role":"assistant","content":[{"type":"text","text":"Salut"}]},
				{"role":"user","content":[{"type":"text","text":"Again"}]}]}`,
		},
		{
			name: "one system message is a plain string",
			in:   `{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]}`,
		},
		{
			name: "consecutive turns of one role are merged; empty text is dropped",
			in: `{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"},{"type":"text","text":""}]},
				{"role":"assistant","content":"c"},{"role":"assistant","content":""},{"role":"assistant","content":[{"type":"refusal","refusal":"d"}]}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}]}`,
		},
		{
			name: "images: https URL and base64 data URLs (image/jpg is image/jpeg)",
			in: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"Compare"},
				{"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"high"}},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
				{"type":"image_url","image_url":{"url":"data:image/JPG;base64,/9j/4AAQ"}}]}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"Compare"},
				{"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
				{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}}]}]}`,
		},
		{
			name: "a PDF file part becomes a document block",
			in:   `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}}]}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}}]}]}`,
		},
		{
			name: "tools and tool_choice auto; a function without parameters gets an empty object schema",
			in: `{"model":"m","messages":[{"role":"user","content":"Weather?"}],"tool_choice":"auto","tools":[
				{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]},"strict":true}},
				{"type":"function","function":{"name":"get_time"}}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"Weather?"}]}],
				"tools":[{"name":"get_weather","description":"Get the weather","input_schema":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}},
				{"name":"get_time","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto"}}`,
		},
		{
			name: "tool_choice required is any; parallel_tool_calls false disables parallel use",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required","parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`,
		},
		{
			name: "a named function is tool; parallel_tool_calls false alone is auto without parallel use",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"f"}},"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"tool","name":"f"}}`,
		},
		{
			name: "parallel_tool_calls false without tool_choice",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`,
		},
		{
			name: "tool_choice none keeps no parallel flag; tool_choice without tools is dropped",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"none","parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f"}}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`,
		},
		{
			name: "tool_choice without tools is dropped",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "assistant tool_calls become tool_use, tool messages tool_result blocks of one user turn, before its text",
			in: `{"model":"m","messages":[{"role":"user","content":"Weather in SF and Paris?"},
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"SF\"}"}},
					{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
				{"role":"tool","tool_call_id":"call_1","content":"15 C"},
				{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"18 C"}]},
				{"role":"user","content":"Thanks"}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[
				{"role":"user","content":[{"type":"text","text":"Weather in SF and Paris?"}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"location":"SF"}},
					{"type":"tool_use","id":"call_2","name":"get_weather","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"15 C"},
					{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"18 C"}]},
					{"type":"text","text":"Thanks"}]}]}`,
		},
		{
			name: "tool results move before text in a merged user turn",
			in: `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
				{"role":"user","content":"first"},{"role":"tool","tool_call_id":"c","content":""}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[
				{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"f","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"c"},{"type":"text","text":"first"}]}]}`,
		},
		{
			name:   "sampling, stop, limits, user; OpenAI-only and redirecting fields are dropped",
			stream: true,
			in: `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true},
				"max_tokens":100,"max_completion_tokens":50,"temperature":1.5,"top_p":0.9,"stop":["END","","###"],"user":"user-42",
				"frequency_penalty":0.5,"presence_penalty":0.1,"seed":7,"logprobs":false,"response_format":{"type":"text"},
				"api_base":"http://evil.example","base_url":"http://evil.example","api_key":"sk-stolen","mock":{"status":500},"n":1}`,
			want: `{"model":"claude-test","max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"stop_sequences":["END","###"],"temperature":1,"top_p":0.9,"stream":true,"metadata":{"user_id":"user-42"}}`,
		},
		{
			name: "a string stop; max_tokens when max_completion_tokens is absent; temperature in range kept",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":"\n\n","max_tokens":10,"temperature":0.3}`,
			want: `{"model":"claude-test","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"stop_sequences":["\n\n"],"temperature":0.3}`,
		},
		{
			name: "cache_control on parts, on messages (last block) and on tools is passed on",
			in: `{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"Long context","cache_control":{"type":"ephemeral"}}]},
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"cache_control":{"type":"ephemeral","ttl":"1h"}}],
				"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}]}`,
			want: `{"model":"claude-test","max_tokens":4096,"system":[{"type":"text","text":"Long context","cache_control":{"type":"ephemeral"}}],
				"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b","cache_control":{"type":"ephemeral","ttl":"1h"}}]}],
				"tools":[{"name":"f","input_schema":{"type":"object","properties":{}},"cache_control":{"type":"ephemeral"}}]}`,
		},
		{
			name:     "pass fields are copied verbatim",
			settings: Settings{PassFields: []string{"thinking", "top_k", "mock", "absent"}},
			in:       `{"model":"m","messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":1024},"top_k":5,"mock":{"chunks":2}}`,
			want: `{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"thinking":{"type":"enabled","budget_tokens":1024},"top_k":5,"mock":{"chunks":2}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := translateRequest([]byte(tt.in), testModel, tt.stream, &tt.settings)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(tr.body, &got); err != nil {
				t.Fatalf("output is not JSON: %v: %s", err, tr.body)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				w, _ := json.Marshal(want)
				t.Errorf("got  %s\nwant %s", tr.body, w)
			}
			if strings.Contains(string(tr.body), "sk-stolen") || strings.Contains(string(tr.body), "evil.example") {
				t.Errorf("a redirecting field leaked: %s", tr.body)
			}
		})
	}
}

func TestAnthropicTranslateRequestIncludeUsage(t *testing.T) {
	for in, want := range map[string]bool{
		`{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}`:  true,
		`{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":false}}`: false,
		`{"model":"m","messages":[],"stream":true}`:                                          false,
	} {
		tr, err := translateRequest([]byte(in), "", true, &Settings{})
		if err != nil || tr.includeUsage != want {
			t.Errorf("%s: includeUsage %v (%v), want %v", in, tr.includeUsage, err, want)
		}
		if !strings.Contains(string(tr.body), `"model":"m"`) {
			t.Errorf("without an upstream model the body's is kept: %s", tr.body)
		}
	}
}

// TestTranslateRequestErrors: what cannot be translated is a 400 naming the parameter.
func TestAnthropicTranslateRequestErrors(t *testing.T) {
	tests := []struct{ name, in, param string }{
		{"not JSON", `{"model":`, ""},
		{"not an object", `[1]`, ""},
		{"messages missing", `{"model":"m"}`, "messages"},
		{"n > 1", `{"model":"m","messages":[],"n":2}`, "n"},
		{"max_tokens not an integer", `{"model":"m","messages":[],"max_tokens":1.5}`, "max_tokens"},
		{"max_completion_tokens zero", `{"model":"m","messages":[],"max_completion_tokens":0}`, "max_completion_tokens"},
		{"unknown role", `{"model":"m","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role"},
		{"function role", `{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role"},
		{"message not an object", `{"model":"m","messages":["hi"]}`, "messages[0]"},
		{"image with a file URL", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"image of an unsupported type", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}`, "messages[0].content[0].image_url.url"},
		{"data URL not base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"audio", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"file by id", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{"image in a system message", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}`, "messages[0].content[0].type"},
		{"tool call arguments not JSON", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool call arguments not an object", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool call without id", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}`, "messages[0].tool_calls[0].id"},
		{"legacy function_call", `{"model":"m","messages":[{"role":"assistant","function_call":{"name":"f","arguments":"{}"}}]}`, "messages[0].function_call"},
		{"tool message without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"a non-function tool", `{"model":"m","messages":[],"tools":[{"type":"custom","custom":{"name":"x"}}]}`, "tools[0].type"},
		{"a tool without a name", `{"model":"m","messages":[],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name"},
		{"unknown tool_choice", `{"model":"m","messages":[],"tool_choice":"sometimes"}`, "tool_choice"},
		{"allowed_tools tool_choice", `{"model":"m","messages":[],"tool_choice":{"type":"allowed_tools","allowed_tools":{}}}`, "tool_choice"},
		{"stop of numbers", `{"model":"m","messages":[],"stop":[1]}`, "stop"},
		{"temperature a string", `{"model":"m","messages":[],"temperature":"hot"}`, "temperature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := translateRequest([]byte(tt.in), testModel, false, &Settings{})
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("err %v, want a request error", err)
			}
			if re.param != tt.param || re.msg == "" {
				t.Errorf("param %q (%s), want %q", re.param, re.msg, tt.param)
			}
		})
	}
}
