package gateway

import (
	"errors"
	"net/http"
	"testing"

	"github.com/llmgate/llmgate/api"
)

// TestAnthropicError: the status and type an error of the gateway gets on the Messages routes.
func TestAnthropicError(t *testing.T) {
	for _, tc := range []struct {
		status  int
		typ     string
		wantSt  int
		wantTyp string
	}{
		{400, api.TypeInvalidRequest, 400, "invalid_request_error"},
		{401, api.TypeAuthentication, 401, "authentication_error"},
		{403, api.TypePermission, 403, "permission_error"},
		{404, api.TypeInvalidRequest, 404, "not_found_error"},
		{408, api.TypeTimeout, 408, "timeout_error"},
		{413, api.TypeInvalidRequest, 413, "request_too_large"},
		{429, api.TypeRateLimit, 429, "rate_limit_error"},
		{429, api.TypeInsufficientQuota, 429, "billing_error"},
		{500, api.TypeServer, 500, "api_error"},
		{502, api.TypeUpstream, 502, "api_error"},
		{502, "overloaded_error", 529, "overloaded_error"}, // the upstream's 529, relayed
		{503, api.TypeUnavailable, 529, "overloaded_error"},
		{504, api.TypeTimeout, 504, "timeout_error"},
		{400, "not_a_type_of_anthropic", 400, "invalid_request_error"},
	} {
		st, typ := anthropicError(tc.status, api.NewError(tc.typ, "", "", "m"))
		if st != tc.wantSt || typ != tc.wantTyp {
			t.Errorf("%d %s: %d %s, want %d %s", tc.status, tc.typ, st, typ, tc.wantSt, tc.wantTyp)
		}
	}
}

// TestCheckMessagesBody: what the gateway refuses itself, and what it leaves to the upstream.
func TestCheckMessagesBody(t *testing.T) {
	for _, tc := range []struct {
		body     string
		counting bool
		param    string // "" when accepted
	}{
		{`{"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, false, ""},
		{`{"messages":[{"role":"user","content":"hi"}]}`, true, ""},
		{`{"messages":[{"role":"user","content":"hi"}]}`, false, "max_tokens"},
		{`{"max_tokens":1.5,"messages":[]}`, false, "max_tokens"},
		{`{"max_tokens":1}`, false, "messages"},
		{`{"max_tokens":1,"messages":[{"role":"user","content":"hi"}],"system":7}`, false, "system"},
		{`{"max_tokens":1,"messages":[{"role":"tool","content":"hi"}]}`, false, "messages.0.role"},
		{`{"max_tokens":1,"messages":[{"role":"user","content":7}]}`, false, "messages.0.content"},
		{`{"max_tokens":1,"messages":[{"role":"user","content":[7]}]}`, false, "messages.0.content.0"},
		// Unknown block types and fields are the upstream's to judge.
		{`{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"future_block","x":1}]}],"future":true}`, false, ""},
		// A tool_result answers a tool_use of the assistant turn just before, and no other.
		{`{"max_tokens":1,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}`, false, ""},
		{`{"max_tokens":1,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t2","content":"r"}]}]}`, false, "messages.2.content.0"},
		{`{"max_tokens":1,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":"x"},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}`, false, "messages.2.content.0"},
	} {
		err := checkMessagesBody([]byte(tc.body), tc.counting)
		var ge *Error
		switch {
		case tc.param == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.body, err)
		case tc.param != "" && (!errors.As(err, &ge) || ge.Status != http.StatusBadRequest || ge.API.Param == nil || *ge.API.Param != tc.param):
			t.Errorf("%s: %v, want a 400 naming %s", tc.body, err, tc.param)
		}
	}
}

// FuzzCheckMessagesBody: any body is accepted or refused with a 400, never a panic.
func FuzzCheckMessagesBody(f *testing.F) {
	f.Add([]byte(`{"max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`), false)
	f.Add([]byte(`{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t"}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, counting bool) {
		var ge *Error
		if err := checkMessagesBody(body, counting); err != nil && (!errors.As(err, &ge) || ge.Status != http.StatusBadRequest) {
			t.Fatalf("%v", err)
		}
	})
}
