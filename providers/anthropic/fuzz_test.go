package anthropic

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// FuzzStream: whatever bytes the upstream sends, the translator never panics and its output is
// well-formed SSE (see wellFormed); reading one byte at a time changes nothing.
func FuzzStream(f *testing.F) {
	fixture.Seed(f, "testdata/stream/*.sse")
	fixture.FuzzStream(f, func(in []byte, oneByte bool) ([]byte, error) {
		return translateAll(in, true, oneByte)
	}, wellFormed)
}

// FuzzRequest: whatever the OpenAI body, translateRequest never panics; it either refuses it with
// a request error or produces a Messages body with a model, a positive max_tokens, a messages
// array of user/assistant turns, and no field it does not write.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"stop":["x"],"temperature":2}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false}`,
		`{"model":"m","messages":[],"thinking":{"type":"enabled"},"max_tokens":5}`,
	} {
		f.Add([]byte(s))
	}
	allowed := map[string]bool{"thinking": true}
	for k := range reservedFields {
		allowed[k] = true
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := translateRequest(in, "claude-fuzz", false, &Settings{PassFields: []string{"thinking"}})
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("not a request error: %v", err)
			}
			return
		}
		if !json.Valid(tr.body) {
			t.Fatalf("not JSON: %s", tr.body)
		}
		r := gjson.ParseBytes(tr.body)
		if r.Get("model").Str != "claude-fuzz" || r.Get("max_tokens").Int() < 1 || !r.Get("messages").IsArray() {
			t.Fatalf("incomplete: %s", tr.body)
		}
		r.ForEach(func(k, _ gjson.Result) bool {
			if !allowed[k.Str] {
				t.Fatalf("field %q leaked into %s", k.Str, tr.body)
			}
			return true
		})
		r.Get("messages").ForEach(func(_, m gjson.Result) bool {
			if role := m.Get("role").Str; role != "user" && role != "assistant" {
				t.Fatalf("role %q in %s", role, tr.body)
			}
			return true
		})
	})
}
