package responses

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// FuzzResponsesRequest: whatever the body, ToChat never panics; it either refuses it with a
// *RequestError or produces a chat body that is valid JSON with the model, a non-empty messages
// array of known roles, and an Input that is a JSON array. The Response rendered for it is valid
// JSON too.
func FuzzResponsesRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","instructions":"i","input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"data:image/png;base64,AA==","detail":"low"}]}],"max_output_tokens":5,"stream":true}`,
		`{"model":"m","input":[{"role":"assistant","content":[{"type":"output_text","text":"x"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"ok"},{"type":"reasoning","summary":[]}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"},"strict":true}],"tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"f"}]}}`,
		`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}},"verbosity":"low"},"reasoning":{"effort":"low","summary":"auto"},"metadata":{"a":"b"},"temperature":0.1,"include":["reasoning.encrypted_content"],"store":false}`,
		`{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, `{"model":"m","input":"x","background":true}`,
		`{"model":"\u2028","input":[{"role":"user","content":"\ud800"}]}`, `[]`, `{}`, `{"model":1}`,
	} {
		f.Add([]byte(s))
	}
	roles := map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, info, err := ToChat(in, Options{Model: "up"})
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Message == "" {
				t.Fatalf("not a request error: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("not JSON: %s\nfrom %s", out, in)
		}
		r := gjson.ParseBytes(out)
		msgs := r.Get("messages")
		if r.Get("model").Str != "up" || !msgs.IsArray() || len(msgs.Array()) == 0 {
			t.Fatalf("incomplete: %s", out)
		}
		msgs.ForEach(func(_, m gjson.Result) bool {
			if !roles[m.Get("role").Str] {
				t.Fatalf("role %q in %s", m.Get("role").Str, out)
			}
			return true
		})
		if !json.Valid(info.Input) || !gjson.ParseBytes(info.Input).IsArray() {
			t.Fatalf("Input is not a JSON array: %s", info.Input)
		}
		resp, _, err := FromChat([]byte(`{"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}`), info)
		if err != nil || !json.Valid(resp) {
			t.Fatalf("Response not JSON (%v): %s", err, resp)
		}
	})
}

// FuzzResponsesStream: whatever bytes the upstream sends, the stream translator never panics,
// its output is a well-formed Responses event stream (see wellFormedStream), and reading one
// byte at a time changes nothing.
func FuzzResponsesStream(f *testing.F) {
	fixture.Seed(f, "testdata/stream/*.sse")
	for _, s := range []string{
		"", "data: [DONE]\n\n", "data:\n\n", "data: {}\n\n", "data: []\n\n", ": ping\n\n",
		"data: {\"choices\":[{\"delta\":{\"refusal\":\"no\",\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"refusal\":\"r\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\"}},{\"index\":0,\"id\":\"x\"}]}}]}\n\ndata: {\"choices\":[{\"delta\":{\"reasoning\":\"r\"}}]}\n\ndata: [DONE]\n\n",
	} {
		f.Add([]byte(s))
	}
	info := testInfo(f)
	fixture.FuzzStream(f, func(in []byte, oneByte bool) ([]byte, error) {
		_, out, err := translateStream(info, in, oneByte)
		return out, err
	}, wellFormedStream)
}
