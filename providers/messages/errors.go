package messages

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/llmgate/llmgate/internal/jsonappend"
)

// Anthropic's error types (the "type" inside "error"), PROVIDERS-2.md §2.3.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypeBilling        = "billing_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRequestTooBig  = "request_too_large"
	TypeRateLimit      = "rate_limit_error"
	TypeAPI            = "api_error"
	TypeTimeout        = "timeout_error"
	TypeOverloaded     = "overloaded_error"
)

// StatusOverloaded is Anthropic's status for an API-wide overload (no net/http constant).
const StatusOverloaded = 529

// RequestError is a request ToChat cannot translate faithfully: the gateway answers it with
// Status and Body, before any upstream call.
type RequestError struct {
	Status  int    // always 400 today
	Type    string // Anthropic's error type: invalid_request_error
	Message string // Anthropic's style: "<field path>: <what is wrong>"
}

func (e *RequestError) Error() string { return e.Message }

// Body is the error in Anthropic's shape.
func (e *RequestError) Body() []byte { return ErrorBody(e.Type, e.Message) }

// invalid builds a 400 invalid_request_error; the message names the field first, as
// Anthropic's own validation does ("max_tokens: Field required"). It is made valid UTF-8, as
// it may quote the client's bytes.
func invalid(format string, args ...any) *RequestError {
	msg := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	return &RequestError{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Message: msg}
}

// ErrorBody renders an error in Anthropic's shape: {"type":"error","error":{"type","message"}}.
func ErrorBody(errType, message string) []byte {
	return appendErrorObject(make([]byte, 0, len(message)+64), errType, message)
}

func appendErrorObject(dst []byte, errType, message string) []byte {
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = jsonappend.String(dst, errType)
	dst = append(dst, `,"message":`...)
	dst = jsonappend.String(dst, message)
	return append(dst, "}}"...)
}

// ErrorType is Anthropic's error type for an HTTP status (PROVIDERS-2.md §2.3): the SDKs pick
// their exception class by status, and clients such as Claude Code decide on retries by type.
// Other 4xx statuses are invalid_request_error, as Anthropic uses it; other 5xx api_error, but
// 503 (no capacity behind the gateway) is overloaded_error, what Anthropic reports for that.
func ErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return TypeAuthentication
	case http.StatusPaymentRequired:
		return TypeBilling
	case http.StatusForbidden:
		return TypePermission
	case http.StatusNotFound:
		return TypeNotFound
	case http.StatusRequestEntityTooLarge:
		return TypeRequestTooBig
	case http.StatusTooManyRequests:
		return TypeRateLimit
	case http.StatusGatewayTimeout:
		return TypeTimeout
	case http.StatusServiceUnavailable, StatusOverloaded:
		return TypeOverloaded
	}
	if status >= 500 {
		return TypeAPI
	}
	return TypeInvalidRequest
}

// ErrNotChatCompletion is a body FromChat cannot read as a chat.completion.
var ErrNotChatCompletion = errors.New("messages: the upstream answer is not a chat completion")
