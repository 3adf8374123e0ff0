package gemini

import (
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// requestError is a request this adapter cannot translate: answered 400 without calling Gemini.
type requestError struct {
	param, msg string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(param, msg string) *requestError { return &requestError{param: param, msg: msg} }

// translateErrorResponse turns Gemini's non-2xx answer into the same status with an OpenAI error
// body (PROVIDERS.md §4.6, §9). It consumes and closes resp.Body.
func translateErrorResponse(resp *http.Response) *http.Response {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	status, e := openAIError(resp.StatusCode, raw)
	hdr := make(http.Header)
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		hdr.Set("Retry-After", ra)
	} else if d := retryDelay(raw); d > 0 {
		hdr.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
	return oairender.ErrorResponse(status, e, hdr)
}

// openAIError maps a Gemini error body ({"error":{"code","message","status","details"}}, possibly
// wrapped in a one-element array, as Vertex has sent it) to an OpenAI error. The HTTP status is
// kept, with one exception: Gemini answers an invalid API key with 400 INVALID_ARGUMENT (reason
// API_KEY_INVALID), which is the gateway's credential failing, not the caller's request; it
// becomes 401 so that the gateway reports an upstream authentication failure.
func openAIError(status int, raw []byte) (int, api.ErrorObject) {
	e := errorObject(raw)
	msg := e.Get("message").String()
	grpc := e.Get("status").String()
	if reasonOf(e) == "API_KEY_INVALID" {
		if msg == "" {
			msg = "API key not valid."
		}
		return http.StatusUnauthorized, api.NewError(api.TypeAuthentication, "invalid_api_key", "", msg)
	}
	if msg == "" {
		msg = "The upstream answered HTTP " + strconv.Itoa(status) + "."
	}
	code := strings.ToLower(grpc)
	return status, api.NewError(errorType(status, grpc), code, "", msg)
}

// errorObject finds the "error" object of a Gemini error body.
func errorObject(raw []byte) gjson.Result {
	if !jsoncheck.Valid(raw) {
		return gjson.Result{}
	}
	root := gjson.ParseBytes(raw)
	if root.IsArray() {
		root = root.Get("0")
	}
	if e := root.Get("error"); e.IsObject() {
		return e
	}
	return gjson.Result{}
}

// reasonOf returns the reason of the error's google.rpc.ErrorInfo detail, if any.
func reasonOf(e gjson.Result) string {
	var reason string
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		if strings.HasSuffix(d.Get("@type").Str, "google.rpc.ErrorInfo") {
			reason = d.Get("reason").Str
			return false
		}
		return true
	})
	return reason
}

// retryDelay reads google.rpc.RetryInfo's retryDelay ("37s", "1.5s") from an error body.
func retryDelay(raw []byte) time.Duration {
	var d time.Duration
	errorObject(raw).Get("details").ForEach(func(_, det gjson.Result) bool {
		if strings.HasSuffix(det.Get("@type").Str, "google.rpc.RetryInfo") {
			if v, err := time.ParseDuration(det.Get("retryDelay").Str); err == nil && v > 0 && v < 24*time.Hour {
				d = v
			}
			return false
		}
		return true
	})
	return d
}

// errorType names the OpenAI error type of a Gemini error, by its RPC status first (it is more
// precise: 429 and 402 are both RESOURCE_EXHAUSTED), then by HTTP status.
func errorType(status int, grpc string) string {
	switch grpc {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return api.TypeInvalidRequest
	case "UNAUTHENTICATED":
		return api.TypeAuthentication
	case "PERMISSION_DENIED":
		return api.TypePermission
	case "NOT_FOUND":
		return api.TypeNotFound
	case "RESOURCE_EXHAUSTED":
		if status == http.StatusPaymentRequired {
			return api.TypeInsufficientQuota
		}
		return api.TypeRateLimit
	case "DEADLINE_EXCEEDED":
		return api.TypeTimeout
	case "UNAVAILABLE":
		return api.TypeUnavailable
	case "INTERNAL", "UNKNOWN", "DATA_LOSS":
		return api.TypeServer
	}
	switch {
	case status == http.StatusUnauthorized:
		return api.TypeAuthentication
	case status == http.StatusForbidden:
		return api.TypePermission
	case status == http.StatusNotFound:
		return api.TypeNotFound
	case status == http.StatusTooManyRequests:
		return api.TypeRateLimit
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return api.TypeTimeout
	case status >= 500:
		return api.TypeServer
	case status >= 400:
		return api.TypeInvalidRequest
	}
	return api.TypeUpstream
}
