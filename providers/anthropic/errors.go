package anthropic

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// StatusOverloaded is Anthropic's 529: the API as a whole is overloaded. It is answered as 503,
// the status OpenAI and HTTP clients know for "overloaded, retry later" (a non-standard status
// confuses proxies and SDKs); the error code keeps "overloaded_error".
const StatusOverloaded = 529

// translateErrorResponse turns an upstream error answer into an OpenAI-shaped one with the same
// status (529 → 503). Retry-After and Anthropic's request-id survive; the upstream body's
// message is kept, since it tells the caller what was wrong with its request.
func translateErrorResponse(resp *http.Response) *http.Response {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	status, e := translateError(resp.StatusCode, body)
	extra := http.Header{}
	for _, k := range [...]string{"Retry-After", "Request-Id"} {
		if v := resp.Header.Get(k); v != "" {
			extra.Set(k, v)
		}
	}
	return oairender.ErrorResponse(status, e, extra)
}

// translateError maps an Anthropic error body ({"type":"error","error":{"type","message"}}) and
// its status to OpenAI's error object (Google's {"error":{"code","message","status"}}, which
// Vertex AI sends for its own failures, is read too). The OpenAI type follows the status class, as an OpenAI
// upstream would send it; the code is Anthropic's own error type (or its details.error_code,
// such as enforced_spend_limit_reached), so no information is lost. Bodies that are not
// Anthropic's (an HTML page from a proxy) are not echoed.
func translateError(status int, body []byte) (int, api.ErrorObject) {
	r := gjson.ParseBytes(body)
	if r.IsArray() { // Vertex AI may wrap its error in an array
		r = r.Get("0")
	}
	typ := r.Get("error.type").String()
	msg := r.Get("error.message").String()
	code := r.Get("error.details.error_code").String()
	if code == "" {
		code = typ
	}
	if code == "" { // Google's shape, which Vertex AI answers with even on Anthropic's models
		code = strings.ToLower(r.Get("error.status").String())
	}
	if status == StatusOverloaded {
		status = http.StatusServiceUnavailable
	}
	if msg == "" {
		msg = "The upstream answered HTTP " + strconv.Itoa(status) + "."
	}
	return status, api.NewError(openAIType(status, typ), code, "", msg)
}

// openAIType is the OpenAI error type for an Anthropic error type, falling back on the status.
func openAIType(status int, anthropicType string) string {
	switch anthropicType {
	case "invalid_request_error", "request_too_large":
		return api.TypeInvalidRequest
	case "authentication_error":
		return api.TypeAuthentication
	case "permission_error":
		return api.TypePermission
	case "not_found_error":
		return api.TypeNotFound
	case "rate_limit_error":
		return api.TypeRateLimit
	case "billing_error":
		return api.TypeInsufficientQuota
	case "timeout_error":
		return api.TypeTimeout
	case "api_error", "overloaded_error":
		return api.TypeServer
	}
	switch {
	case status == http.StatusTooManyRequests:
		return api.TypeRateLimit
	case status >= 500:
		return api.TypeServer
	case status == http.StatusUnauthorized:
		return api.TypeAuthentication
	case status == http.StatusForbidden:
		return api.TypePermission
	}
	return api.TypeInvalidRequest
}
