// Package api holds the wire types shared by the public and admin APIs: the OpenAI error shape and
// the OpenAPI document.
package api

import (
	"encoding/json"
	"net/http"
)

// ErrorObject is OpenAI's error object: every error the gateway answers with, public or admin,
// uses it. It is the body of an error, not a Go error: packages that need one wrap it (gateway's
// Error adds the HTTP status).
type ErrorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// ErrorBody is the envelope OpenAI wraps an ErrorObject in.
type ErrorBody struct {
	Error ErrorObject `json:"error"`
}

// Error types used across the gateway. They follow OpenAI's names where OpenAI has one.
const (
	TypeInvalidRequest    = "invalid_request_error"
	TypeAuthentication    = "authentication_error"
	TypePermission        = "permission_error"
	TypeNotFound          = "not_found_error"
	TypeRateLimit         = "rate_limit_error"
	TypeInsufficientQuota = "insufficient_quota"
	TypeUpstream          = "upstream_error"
	TypeTimeout           = "timeout_error"
	TypeServer            = "server_error"
	TypeUnavailable       = "service_unavailable"
)

// NewError builds an ErrorObject; code and param are optional (empty means JSON null). Every
// error constructor of the tree takes these four in this order (type, code, param, message).
func NewError(typ, code, param, message string) ErrorObject {
	e := ErrorObject{Message: message, Type: typ}
	if code != "" {
		e.Code = &code
	}
	if param != "" {
		e.Param = &param
	}
	return e
}

// Marshal renders the error in OpenAI's envelope.
func (e ErrorObject) Marshal() []byte {
	b, _ := json.Marshal(ErrorBody{Error: e})
	return b
}

// Write sends the error with the given status as JSON.
func (e ErrorObject) Write(w http.ResponseWriter, status int) {
	b := e.Marshal()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
