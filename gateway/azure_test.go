package gateway

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestValidAPIVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"2024-10-21": true, "2025-04-01-preview": true, "preview": true, "latest": true,
		"": false, "2024-10-2": false, "2024/10/21": false, "2024-10-21-beta": false, "2024-10-21preview": false,
		"v1": false, "2024-1a-21": false, "2024-10-21-previewx": false, "2024-10-21-": false,
	} {
		if got := validAPIVersion(v); got != want {
			t.Errorf("validAPIVersion(%q) = %v, want %v", v, got, want)
		}
	}
}

// withModel sets the path's model, keeps a body that already names it byte for byte, and leaves
// what is not a valid JSON object for parseRequest to refuse.
func TestWithModel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"messages":[]}`, `{"messages":[],"model":"m"}`},
		{`{"model":"other","messages":[]}`, `{"model":"m","messages":[]}`},
		{`{"model": "m" ,"x":1}`, `{"model": "m" ,"x":1}`},
		{`{"model":null}`, `{"model":"m"}`},
		{`{"messages":[`, `{"messages":[`},
		{`["model"]`, `["model"]`},
		{``, ``},
	} {
		got := string(withModel([]byte(tc.in), "m"))
		if got != tc.want {
			t.Errorf("withModel(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if gjson.Valid(tc.in) && tc.in[0] == '{' && gjson.Get(got, "model").Str != "m" {
			t.Errorf("withModel(%s): model %s", tc.in, gjson.Get(got, "model").Raw)
		}
	}
}

// TestWithModelDeepBody: a hostile body nested a million deep is returned as it is (for
// parseRequest's depth check to refuse), with the stack bounded as a small goroutine's would be:
// a recursive check here crashed the process (a stack overflow is not a panic a guard recovers).
func TestWithModelDeepBody(t *testing.T) {
	body := []byte(`{"messages":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`)
	defer debug.SetMaxStack(debug.SetMaxStack(256 << 10))
	if got := withModel(body, "m"); !bytes.Equal(got, body) {
		t.Errorf("withModel changed a body nested too deep to take a model: %.40s…", got)
	}
}
