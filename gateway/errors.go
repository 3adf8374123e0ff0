package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/redact"
)

// StatusClientClosed is nginx's 499: the client went away before the answer was complete.
const StatusClientClosed = 499

// Error is an error the caller is meant to see: it carries its HTTP status and OpenAI error body.
// Anything that is not an *Error is mapped by classify, which hides its text.
type Error struct {
	Status int
	API    api.ErrorObject
	// retryAfter is sent as Retry-After on 429s and 503s.
	retryAfter time.Duration
}

func (e *Error) Error() string { return e.API.Message }

// newError builds an *Error: the status, then api.NewError's arguments in its order.
func newError(status int, typ, code, param, msg string) *Error {
	return &Error{Status: status, API: api.NewError(typ, code, param, msg)}
}

// Errors shared by several code paths.
var (
	errNoKey     = newError(http.StatusUnauthorized, api.TypeAuthentication, "missing_api_key", "", "You didn't provide an API key. Send it as 'Authorization: Bearer <key>', 'api-key' or 'x-api-key'.")
	errBadKey    = newError(http.StatusUnauthorized, api.TypeAuthentication, "invalid_api_key", "", "Incorrect API key provided.")
	errExpired   = newError(http.StatusUnauthorized, api.TypeAuthentication, "expired_api_key", "", "This API key has expired.")
	errRevoked   = newError(http.StatusUnauthorized, api.TypeAuthentication, "revoked_api_key", "", "This API key has been revoked.")
	errTooLarge  = newError(http.StatusRequestEntityTooLarge, api.TypeInvalidRequest, "request_too_large", "", "The request body is too large.")
	errNoUpstrm  = newError(http.StatusBadGateway, api.TypeUpstream, "upstream_unavailable", "", "No upstream deployment could be reached.")
	errNotObject = newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_json", "", "We could not parse the JSON body of your request: it must be a JSON object.")
	// errBodyTimeout is a body that did not arrive within gateway.body_read_timeout: the gateway
	// gave up on the client, which is a timeout, not a client that went away (499).
	errBodyTimeout = newError(http.StatusRequestTimeout, api.TypeTimeout, "body_read_timeout", "", "The request body was not received in time.")
	errStoreDown   = newError(http.StatusServiceUnavailable, api.TypeUnavailable, "store_unavailable", "", "The gateway cannot verify API keys right now; retry shortly.")

	// errShuttingDown ends the requests still in flight when the process's drain time is up (or
	// a second signal cut the drain short): the client may retry on another replica.
	errShuttingDown = newError(http.StatusServiceUnavailable, api.TypeUnavailable, "gateway_shutting_down", "", "The gateway is shutting down and this request did not finish within its drain time; retry it.")
)

// classify maps any error to the status and body the client sees. It is the one place that does:
// *Error speaks for itself, timeouts are 504, a client that left is 499, and everything else is a
// 502 whose text is hidden (it may name internal hosts).
func classify(err error) (int, api.ErrorObject) {
	var ge *Error
	switch {
	case errors.As(err, &ge):
		return ge.Status, ge.API
	case errors.Is(err, context.Canceled):
		return StatusClientClosed, api.NewError(api.TypeInvalidRequest, "client_closed_request", "", "The client closed the request.")
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return http.StatusGatewayTimeout, api.NewError(api.TypeTimeout, "upstream_timeout", "", "The upstream did not answer in time.")
	default:
		return http.StatusBadGateway, api.NewError(api.TypeUpstream, "upstream_unavailable", "", "The upstream could not be reached.")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// upstreamError turns an upstream's non-2xx answer into the error the client sees. The upstream's
// own OpenAI-style message is kept (it tells the caller what was wrong with its request), less
// anything in it that looks like a credential and the provider's own credentials (secrets); other
// bodies are not echoed. Upstream 401/403 mean the gateway's credentials are wrong, not the
// caller's, so they become 502. A 3xx is a redirect the gateway does not follow (it would carry
// the credentials elsewhere): a 502 that names neither the target nor the upstream.
func upstreamError(status int, body []byte, secrets ...string) *Error {
	msg := gjson.GetBytes(body, "error.message").String()
	if msg == "" {
		msg = gjson.GetBytes(body, "message").String()
	}
	typ := gjson.GetBytes(body, "error.type").String()
	code := gjson.GetBytes(body, "error.code").String()
	param := gjson.GetBytes(body, "error.param").String()
	out := status
	switch {
	case status >= 300 && status < 400:
		out, typ, code, param = http.StatusBadGateway, api.TypeUpstream, "upstream_redirect", ""
		msg = "The upstream answered with a redirect (HTTP " + strconv.Itoa(status) + "), which the gateway does not follow; its base_url needs fixing."
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		out, typ, code = http.StatusBadGateway, api.TypeUpstream, "upstream_auth_failed"
		msg = "The upstream rejected the gateway's credentials."
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		out, typ = http.StatusGatewayTimeout, api.TypeTimeout
	case status == http.StatusTooManyRequests:
		if typ == "" {
			typ = api.TypeRateLimit
		}
	case status >= 500:
		out = http.StatusBadGateway
		if typ == "" {
			typ = api.TypeUpstream
		}
	case status >= 400:
		if typ == "" {
			typ = api.TypeInvalidRequest
		}
	default:
		out, typ = http.StatusBadGateway, api.TypeUpstream
	}
	if msg == "" {
		msg = "The upstream answered HTTP " + strconv.Itoa(status) + "."
	}
	return newError(out, typ, code, param, redact.Credentials(msg, secrets...))
}

// retryAfterSeconds renders a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
