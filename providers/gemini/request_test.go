package gemini

import (
	"errors"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

func TestGeminiRequestTranslation(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{
			name: "roles, merging and sampling",
			in: `{"model":"gemini-2.5-flash","messages":[
				{"role":"system","content":"Be brief."},
				{"role":"user","content":"Hi"},
				{"role":"user","content":[{"type":"text","text":"there"}]},
				{"role":"assistant","content":"Hello!"},
				{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},
				{"role":"user","content":"Bye"}],
				"temperature":0.25,"top_p":0.9,"max_tokens":100,"stop":"END","seed":7,
				"presence_penalty":0.5,"frequency_penalty":-0.5,
				"stream":true,"stream_options":{"include_usage":true},"user":"u-1",
				"api_base":"http://evil.example","base_url":"http://evil.example","api_key":"stolen","parallel_tool_calls":true}`,
			want: `{"contents":[
				{"role":"user","parts":[{"text":"Hi"},{"text":"there"}]},
				{"role":"model","parts":[{"text":"Hello!"}]},
				{"role":"user","parts":[{"text":"Bye"}]}],
				"systemInstruction":{"parts":[{"text":"Be brief."},{"text":"Answer in French."}]},
				"generationConfig":{"maxOutputTokens":100,"temperature":0.25,"topP":0.9,"stopSequences":["END"],
				"presencePenalty":0.5,"frequencyPenalty":-0.5,"seed":7}}`,
		},
		{
			name: "max_completion_tokens wins and stop arrays",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":10,"max_completion_tokens":20,"stop":["a","b"],"n":1}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":20,"stopSequences":["a","b"]}}`,
		},
		{
			name: "images, audio and files",
			in: `{"model":"m","messages":[{"role":"user","content":[
				{"type":"text","text":"What is this?"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
				{"type":"image_url","image_url":{"url":"https://example.com/cat.webp?size=large"}},
				{"type":"image_url","image_url":{"url":"https://example.com/photo"}},
				{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},
				{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}}]}]}`,
			want: `{"contents":[{"role":"user","parts":[
				{"text":"What is this?"},
				{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
				{"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/cat.webp?size=large"}},
				{"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/photo"}},
				{"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}},
				{"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}}]}]}`,
		},
		{
			name: "tools with schemas cleaned, required",
			in: `{"model":"m","messages":[{"role":"user","content":"weather?"}],"tool_choice":"required","tools":[
				{"type":"function","function":{"name":"get_weather","description":"Weather now","strict":true,"parameters":{
					"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,
					"properties":{
						"city":{"type":"string","format":"uri","minLength":1},
						"unit":{"type":["string","null"],"enum":["c","f"]},
						"when":{"type":"string","format":"date-time"},
						"days":{"type":"integer","minimum":1,"exclusiveMaximum":10},
						"place":{"$ref":"#/$defs/Place"},
						"tags":{"type":"array","items":{"type":"string","const":"x"}},
						"either":{"oneOf":[{"type":"string"},{"type":"number","format":"double"}]},
						"many":{"type":["string","integer"]}},
					"required":["city","ghost"],
					"$defs":{"Place":{"type":"object","properties":{"lat":{"type":"number"}},"additionalProperties":false}}}}},
				{"type":"function","function":{"name":"no_params"}},
				{"type":"function","function":{"name":"empty_params","parameters":{"type":"object","properties":{}}}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"weather?"}]}],
				"tools":[{"functionDeclarations":[
					{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{
						"city":{"type":"string","minLength":1},
						"unit":{"type":"string","nullable":true,"enum":["c","f"]},
						"when":{"type":"string","format":"date-time"},
						"days":{"type":"integer","minimum":1},
						"place":{"type":"object","properties":{"lat":{"type":"number"}}},
						"tags":{"type":"array","items":{"type":"string","enum":["x"]}},
						"either":{"anyOf":[{"type":"string"},{"type":"number","format":"double"}]},
						"many":{"anyOf":[{"type":"string"},{"type":"integer"}]}},
						"required":["city"]}},
					{"name":"no_params"},
					{"name":"empty_params"}]}],
				"toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}`,
		},
		{
			name: "named tool_choice",
			in: `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"b"}},
				"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"a"},{"name":"b"}]}],
				"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["b"]}}}`,
		},
		{
			name: "tool_choice none and auto",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"none","tools":[{"type":"function","function":{"name":"a"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"a"}]}],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}}`,
		},
		{
			name: "allowed_tools in auto mode keeps only the allowed declarations",
			in: `{"model":"m","messages":[{"role":"user","content":"x"}],
				"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"b"}}]}},
				"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"b"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}}`,
		},
		{
			name: "tool_choice without tools is dropped",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}]}`,
		},
		{
			name: "tool call round trip",
			in: `{"model":"m","messages":[
				{"role":"user","content":"Weather and time in Paris?"},
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"call_r1_0__thought__c2ln","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"call_r1_1","type":"function","function":{"name":"get_time","arguments":""}}]},
				{"role":"tool","tool_call_id":"call_r1_1","content":"12:00"},
				{"role":"tool","tool_call_id":"call_r1_0__thought__c2ln","content":"{\"temp\":21}"},
				{"role":"user","content":"Thanks"}]}`,
			want: `{"contents":[
				{"role":"user","parts":[{"text":"Weather and time in Paris?"}]},
				{"role":"model","parts":[
					{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},
					{"functionCall":{"name":"get_time","args":{}}}]},
				{"role":"user","parts":[
					{"functionResponse":{"name":"get_time","response":{"content":"12:00"}}},
					{"functionResponse":{"name":"get_weather","response":{"temp":21}}},
					{"text":"Thanks"}]}]}`,
		},
		{
			name: "tool result as text parts and a JSON array result",
			in: `{"model":"m","messages":[{"role":"user","content":"x"},
				{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
				{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"[1,"},{"type":"text","text":"2]"}]}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]},
				{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},
				{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"content":"[1,2]"}}}]}]}`,
		},
		{
			name: "json_object response format",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":"application/json"}}`,
		},
		{
			name: "json_schema response format",
			in: `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,
				"schema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}}}}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":"application/json",
				"responseSchema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}}`,
		},
		{
			name: "reasoning effort asks for thoughts",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"high"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true,"thinkingBudget":24576}}}`,
		},
		{
			name: "reasoning effort none turns thinking off",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"none"}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"thinkingConfig":{"thinkingBudget":0}}}`,
		},
		{
			name: "empty messages are skipped and refusals are text",
			in: `{"model":"m","messages":[{"role":"user","content":""},{"role":"user","content":"x"},
				{"role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]},{"role":"assistant","content":null}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"x"}]},{"role":"model","parts":[{"text":"I can't."}]}]}`,
		},
		{
			name: "html characters are not escaped",
			in:   `{"model":"m","messages":[{"role":"user","content":"<b>&</b>"}]}`,
			want: `{"contents":[{"role":"user","parts":[{"text":"<b>&</b>"}]}]}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := translateRequest([]byte(tc.in))
			if err != nil {
				t.Fatalf("translate: %v", err)
			}
			fixture.JSONEqual(t, tr.body, tc.want)
		})
	}
}

func TestGeminiRequestMetadata(t *testing.T) {
	tr, err := translateRequest([]byte(`{"model":"gemini-x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"<&>"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr.model != "gemini-x" || !tr.includeUsage {
		t.Errorf("model %q includeUsage %v", tr.model, tr.includeUsage)
	}
	if !strings.Contains(string(tr.body), "<&>") {
		t.Errorf("HTML-escaped body: %s", tr.body)
	}
}

func TestGeminiRequestErrors(t *testing.T) {
	cases := []struct {
		name, in, param string
	}{
		{"not JSON", `{"model":`, ""},
		{"not an object", `[1]`, ""},
		{"no messages", `{"model":"m"}`, "messages"},
		{"only system", `{"model":"m","messages":[{"role":"system","content":"s"}]}`, "messages"},
		{"unknown role", `{"model":"m","messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role"},
		{"missing role", `{"model":"m","messages":[{"content":"x"}]}`, "messages[0].role"},
		{"content of the wrong type", `{"model":"m","messages":[{"role":"user","content":42}]}`, "messages[0].content"},
		{"unknown part", `{"model":"m","messages":[{"role":"user","content":[{"type":"video_url","video_url":"x"}]}]}`, "messages[0].content[0].type"},
		{"image in system", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"x"}]}`, "messages[0].content[0].type"},
		{"http image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://example.com/a.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"file URL image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"data URL not base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"file id", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{"unmatched tool result", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"r"}]}`, "messages[1].tool_call_id"},
		{"tool result without id", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"r"}]}`, "messages[1].tool_call_id"},
		{"arguments not JSON", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"arguments not an object", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments"},
		{"call without name", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"arguments":"{}"}}]}]}`, "messages[1].tool_calls[0].function.name"},
		{"n above 1", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"non-function tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}`, "tools[0].type"},
		{"tool without name", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]}`, "tools[0].function.name"},
		{"tool_choice names an unknown tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`, "tool_choice.function.name"},
		{"bad tool_choice", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}`, "tool_choice"},
		{"remote $ref", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object","properties":{"p":{"$ref":"https://x/schema.json"}}}}}]}`, "tools[0].function.parameters"},
		{"recursive $ref", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a","parameters":{"type":"object","properties":{"n":{"$ref":"#/$defs/N"}},"$defs":{"N":{"type":"object","properties":{"next":{"$ref":"#/$defs/N"}}}}}}}]}`, "tools[0].function.parameters"},
		{"temperature as a string", `{"model":"m","temperature":"hot","messages":[{"role":"user","content":"x"}]}`, "temperature"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"stop of numbers", `{"model":"m","stop":[1],"messages":[{"role":"user","content":"x"}]}`, "stop"},
		{"bad reasoning effort", `{"model":"m","reasoning_effort":"extreme","messages":[{"role":"user","content":"x"}]}`, "reasoning_effort"},
		{"bad response format", `{"model":"m","response_format":{"type":"xml"},"messages":[{"role":"user","content":"x"}]}`, "response_format.type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := translateRequest([]byte(tc.in))
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a requestError", err)
			}
			if re.param != tc.param || re.msg == "" {
				t.Errorf("param = %q (%s), want %q", re.param, re.msg, tc.param)
			}
		})
	}
}
