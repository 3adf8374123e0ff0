package responses

import (
	"errors"
	"fmt"

	"github.com/llmgate/llmgate/api"
)

// RequestError is a request ToChat cannot translate faithfully: the gateway answers it with 400
// and Object, before any upstream call.
type RequestError struct {
	// Param names the offending field as OpenAI does ("tools[1].type", "input[0].content[2]").
	Param string
	// Code is OpenAI's machine-readable code: unknown_parameter, unsupported_parameter,
	// unsupported_value, invalid_value, missing_required_parameter, invalid_type.
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// Object is the error in OpenAI's shape.
func (e *RequestError) Object() api.ErrorObject {
	return api.NewError(api.TypeInvalidRequest, e.Code, e.Param, e.Message)
}

// Codes of RequestError.
const (
	CodeUnknownParameter     = "unknown_parameter"
	CodeUnsupportedParameter = "unsupported_parameter"
	CodeUnsupportedValue     = "unsupported_value"
	CodeInvalidValue         = "invalid_value"
	CodeInvalidType          = "invalid_type"
	CodeMissingParameter     = "missing_required_parameter"
	CodePreviousNotFound     = "previous_response_not_found"
)

func reqErr(param, code, format string, args ...any) *RequestError {
	return &RequestError{Param: param, Code: code, Message: fmt.Sprintf(format, args...)}
}

// PreviousResponseNotFound is the error OpenAI answers when previous_response_id names no
// response the caller may continue (unknown, expired, another tenant's, or stored with
// store:false).
func PreviousResponseNotFound(id string) *RequestError {
	return reqErr("previous_response_id", CodePreviousNotFound, "Previous response with id '%s' not found.", id)
}

// ErrNotChatCompletion is a body FromChat cannot read as a chat.completion.
var ErrNotChatCompletion = errors.New("responses: the upstream answer is not a chat completion")
