package anthropic

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// TestResponseGolden translates each testdata/response/*.json Messages answer and compares the
// chat.completion with its .golden file (-update rewrites them).
func TestAnthropicResponseGolden(t *testing.T) {
	for _, f := range fixture.Files(t, "testdata/response/*.json") {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			out, err := translateResponse(fixture.Read(t, f), testModel, testCreated)
			if err != nil {
				t.Fatal(err)
			}
			var v struct {
				Object  string `json:"object"`
				Choices []struct {
					Message struct {
						Content   *string `json:"content"`
						ToolCalls []struct {
							Function struct{ Arguments string } `json:"function"`
						} `json:"tool_calls"`
					} `json:"message"`
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
			}
			if err := json.Unmarshal(out, &v); err != nil || v.Object != "chat.completion" || len(v.Choices) != 1 {
				t.Fatalf("not a chat.completion (%v): %s", err, out)
			}
			for _, tc := range v.Choices[0].Message.ToolCalls {
				if !json.Valid([]byte(tc.Function.Arguments)) {
					t.Errorf("arguments are not JSON: %q", tc.Function.Arguments)
				}
			}
			var pretty bytes.Buffer
			_ = json.Indent(&pretty, out, "", "  ")
			pretty.WriteByte('\n')
			fixture.Golden(t, strings.TrimSuffix(f, ".json")+".golden", pretty.Bytes())
		})
	}
}

func TestAnthropicResponseNotAMessage(t *testing.T) {
	for _, in := range []string{``, `not json`, `[]`, `{"type":"message"}`, `{"content":"x"}`} {
		if out, err := translateResponse([]byte(in), testModel, testCreated); err == nil {
			t.Errorf("%q: translated to %s, want an error", in, out)
		}
	}
}

func TestAnthropicFinishReason(t *testing.T) {
	for in, want := range map[string]string{
		"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "": "stop", "something_new": "stop",
		"max_tokens": "length", "model_context_window_exceeded": "length",
		"tool_use": "tool_calls", "refusal": "content_filter",
	} {
		if got := finishReason(in); got != want {
			t.Errorf("finishReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnthropicTranslateError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantType   string
		wantCode   string
		wantMsg    string
	}{
		{"invalid request", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: at least one message is required"},"request_id":"req_1"}`,
			400, api.TypeInvalidRequest, "invalid_request_error", "messages: at least one message is required"},
		{"authentication", 401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			401, api.TypeAuthentication, "authentication_error", "invalid x-api-key"},
		{"permission", 403, `{"type":"error","error":{"type":"permission_error","message":"no"}}`,
			403, api.TypePermission, "permission_error", "no"},
		{"not found", 404, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}`,
			404, api.TypeNotFound, "not_found_error", "model: claude-x"},
		{"too large", 413, `{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}`,
			413, api.TypeInvalidRequest, "request_too_large", "Request exceeds the maximum allowed number of bytes."},
		{"rate limit", 429, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`,
			429, api.TypeRateLimit, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"},
		{"spend limit", 429, `{"type":"error","error":{"type":"rate_limit_error","message":"spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}`,
			429, api.TypeRateLimit, "enforced_spend_limit_reached", "spend limit"},
		{"billing", 402, `{"type":"error","error":{"type":"billing_error","message":"credit balance too low"}}`,
			402, api.TypeInsufficientQuota, "billing_error", "credit balance too low"},
		{"api error", 500, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`,
			500, api.TypeServer, "api_error", "Internal server error"},
		{"overloaded 529 becomes 503", 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			503, api.TypeServer, "overloaded_error", "Overloaded"},
		{"timeout", 504, `{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}`,
			504, api.TypeTimeout, "timeout_error", "Request timed out"},
		{"html from a proxy", 502, `<html><body>Bad Gateway</body></html>`,
			502, api.TypeServer, "", "The upstream answered HTTP 502."},
		{"empty 429", 429, ``, 429, api.TypeRateLimit, "", "The upstream answered HTTP 429."},
		// Vertex AI answers in Google's shape on Claude's routes too, sometimes in an array.
		{"vertex quota", 429, `{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model","status":"RESOURCE_EXHAUSTED"}}`,
			429, api.TypeRateLimit, "resource_exhausted", "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model"},
		{"vertex in an array", 400, `[{"error":{"code":400,"message":"Project p is not allowed to use Publisher Model","status":"FAILED_PRECONDITION"}}]`,
			400, api.TypeInvalidRequest, "failed_precondition", "Project p is not allowed to use Publisher Model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := translateError(tt.status, []byte(tt.body))
			code := ""
			if e.Code != nil {
				code = *e.Code
			}
			if status != tt.wantStatus || e.Type != tt.wantType || code != tt.wantCode || e.Message != tt.wantMsg {
				t.Errorf("got %d %q %q %q, want %d %q %q %q", status, e.Type, code, e.Message,
					tt.wantStatus, tt.wantType, tt.wantCode, tt.wantMsg)
			}
			if e.Param != nil {
				t.Errorf("param %q, want null", *e.Param)
			}
		})
	}
	// The status check does not depend on the body being Anthropic's.
	if s, _ := translateError(http.StatusServiceUnavailable, nil); s != 503 {
		t.Errorf("503 → %d", s)
	}
}
