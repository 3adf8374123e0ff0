package messages

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// jsonEqual compares two JSON texts as values.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("the test's want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestToChatText: the simplest request, a system prompt and one user turn, becomes a chat
// request with the upstream model, and RequestInfo tells what the answer needs.
func TestToChatText(t *testing.T) {
	chat, info, err := ToChat([]byte(`{"model":"claude-sonnet-4-5","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}],"stream":true}`),
		Options{Model: "gpt-up"})
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, chat, `{"model":"gpt-up","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],
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
