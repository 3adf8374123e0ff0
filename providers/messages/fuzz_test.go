package messages

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// FuzzMessagesRequest: whatever the body, ToChat never panics; it either refuses it with a
// 400 *RequestError whose body is Anthropic's error shape, or produces a chat body that is valid
// JSON with the upstream model, a non-empty messages array of known roles in which every tool
// message answers a call made before it, and an id for the Message. The Message rendered for it
// is valid JSON too.
func FuzzMessagesRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s"}],"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"w"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"tool_use","id":"a","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","is_error":true,"content":[{"type":"text","text":"x"}]}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true}}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":2000},"output_config":{"effort":"max","format":{"type":"json_schema","schema":{}}},"stop_sequences":["a"],"metadata":{"user_id":"u"},"top_k":3}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"content","content":[{"type":"text","text":"d"}]}}]}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
		`{"model":"\u2028","max_tokens":1,"messages":[{"role":"user","content":"\ud800"}]}`, `[]`, `{}`, `{"model":1}`,
	} {
		f.Add([]byte(s))
	}
	roles := map[string]bool{"system": true, "user": true, "assistant": true, "tool": true}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, info, err := ToChat(in, Options{Model: "up", Reasoning: len(in)%2 == 0})
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Message == "" || re.Status != 400 || re.Type != TypeInvalidRequest {
				t.Fatalf("not a request error: %#v", err)
			}
			if b := re.Body(); !json.Valid(b) || gjson.GetBytes(b, "error.message").Str != re.Message {
				t.Fatalf("error body %s", b)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("not JSON: %s\nfrom %s", out, in)
		}
		r := gjson.ParseBytes(out)
		msgs := r.Get("messages")
		if r.Get("model").Str != "up" || !msgs.IsArray() || len(msgs.Array()) == 0 || len(info.ID) != 36 {
			t.Fatalf("incomplete: %s (id %q)", out, info.ID)
		}
		calls := map[string]bool{}
		msgs.ForEach(func(_, m gjson.Result) bool {
			if !roles[m.Get("role").Str] {
				t.Fatalf("role %q in %s", m.Get("role").Str, out)
			}
			m.Get("tool_calls.#.id").ForEach(func(_, id gjson.Result) bool { calls[id.Str] = true; return true })
			if m.Get("role").Str == "tool" && !calls[m.Get("tool_call_id").Str] {
				t.Fatalf("a tool message answers no call: %s", out)
			}
			return true
		})
		msg, _, err := FromChat([]byte(`{"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}`), info)
		if err != nil || !json.Valid(msg) {
			t.Fatalf("Message not JSON (%v): %s", err, msg)
		}
	})
}

// FuzzMessagesStream: whatever bytes the upstream sends, the stream translator never panics,
// its output is a well-formed Messages event stream (see wellFormedStream), and reading one
// byte at a time changes nothing.
func FuzzMessagesStream(f *testing.F) {
	fixture.Seed(f, "testdata/stream/*.sse")
	for _, s := range []string{
		"", "data: [DONE]\n\n", "data:\n\n", "data: {}\n\n", "data: []\n\n", ": ping\n\n",
		"data: {\"choices\":[{\"delta\":{\"refusal\":\"no\",\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
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
