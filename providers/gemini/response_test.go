package gemini

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// TestGeminiResponseGolden translates each generateContent answer under testdata/response and
// compares the chat.completion body (or the error it becomes) with its golden file.
func TestGeminiResponseGolden(t *testing.T) {
	for _, f := range fixture.Files(t, "testdata/response/*.json") {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			out, err := translateResponse(fixture.Read(t, f), testMeta())
			var got []byte
			if err != nil {
				var re *responseError
				if !errors.As(err, &re) {
					t.Fatalf("error %T %v is not a responseError", err, err)
				}
				got = fmt.Appendf(nil, "status %d\n%s\n", re.status, re.err.Marshal())
			} else {
				if !gjson.ValidBytes(out) {
					t.Fatalf("not JSON: %s", out)
				}
				j := gjson.ParseBytes(out)
				if j.Get("object").Str != "chat.completion" || j.Get("choices.0.finish_reason").Str == "" {
					t.Errorf("not a chat.completion: %s", out)
				}
				if u := j.Get("usage"); u.Exists() && u.Get("total_tokens").Int() != u.Get("prompt_tokens").Int()+u.Get("completion_tokens").Int() {
					t.Errorf("usage does not add up: %s", u.Raw)
				}
				got = append(out, '\n')
			}
			fixture.Golden(t, strings.TrimSuffix(f, ".json")+".golden", got)
		})
	}
}

func TestGeminiErrorMapping(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantType   string
		wantCode   string
		wantMsg    string
	}{
		{"rate limit", 429, `{"error":{"code":429,"message":"Resource has been exhausted.","status":"RESOURCE_EXHAUSTED"}}`, 429, "rate_limit_error", "resource_exhausted", "Resource has been exhausted."},
		{"credits", 402, `{"error":{"code":402,"message":"Prepaid credits exhausted.","status":"RESOURCE_EXHAUSTED"}}`, 402, "insufficient_quota", "resource_exhausted", "Prepaid credits exhausted."},
		{"bad request", 400, `{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified","status":"INVALID_ARGUMENT"}}`, 400, "invalid_request_error", "invalid_argument", "* GenerateContentRequest.contents: contents is not specified"},
		{"region", 400, `{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}`, 400, "invalid_request_error", "failed_precondition", "User location is not supported for the API use."},
		{"bad key", 400, `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}`, 401, "authentication_error", "invalid_api_key", "API key not valid. Please pass a valid API key."},
		{"permission", 403, `{"error":{"code":403,"message":"Permission denied.","status":"PERMISSION_DENIED"}}`, 403, "permission_error", "permission_denied", "Permission denied."},
		{"not found", 404, `{"error":{"code":404,"message":"models/nope is not found.","status":"NOT_FOUND"}}`, 404, "not_found_error", "not_found", "models/nope is not found."},
		{"internal", 500, `{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}`, 500, "server_error", "internal", "An internal error has occurred."},
		{"overloaded", 503, `{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`, 503, "service_unavailable", "unavailable", "The model is overloaded."},
		{"deadline", 504, `{"error":{"code":504,"message":"Deadline exceeded.","status":"DEADLINE_EXCEEDED"}}`, 504, "timeout_error", "deadline_exceeded", "Deadline exceeded."},
		{"array wrapped", 429, `[{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}]`, 429, "rate_limit_error", "resource_exhausted", "Quota exceeded."},
		{"html", 502, `<html>Bad Gateway</html>`, 502, "server_error", "", "The upstream answered HTTP 502."},
		{"empty", 500, ``, 500, "server_error", "", "The upstream answered HTTP 500."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, e := openAIError(tc.status, []byte(tc.body))
			code := ""
			if e.Code != nil {
				code = *e.Code
			}
			if status != tc.wantStatus || e.Type != tc.wantType || code != tc.wantCode || e.Message != tc.wantMsg {
				t.Errorf("got %d %s %q %q; want %d %s %q %q", status, e.Type, code, e.Message, tc.wantStatus, tc.wantType, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestGeminiRetryDelay(t *testing.T) {
	body := `{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.Help"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"36.5s"}]}}`
	if d := retryDelay([]byte(body)); d.Seconds() != 36.5 {
		t.Errorf("retryDelay = %v", d)
	}
}
