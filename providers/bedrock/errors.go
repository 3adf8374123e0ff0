package bedrock

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// maxErrorBytes bounds an upstream error body.
const maxErrorBytes = 64 << 10

// translateErrorResponse turns a Bedrock error answer ({"message": …}, its exception named by
// the X-Amzn-ErrorType header; PROVIDERS-2.md §4.10) into an OpenAI-shaped one, with the status
// the gateway's failover and breaker decide on.
func translateErrorResponse(resp *http.Response) *http.Response {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	exception := resp.Header.Get("X-Amzn-Errortype")
	if exception == "" {
		exception = gjson.GetBytes(body, "__type").Str
	}
	msg := gjson.GetBytes(body, "message").Str
	if msg == "" {
		msg = gjson.GetBytes(body, "Message").Str
	}
	status, e := translateException(resp.StatusCode, exception, msg)
	extra := http.Header{}
	for _, k := range [...]string{"Retry-After", "X-Amzn-Requestid"} {
		if v := resp.Header.Get(k); v != "" {
			extra.Set(k, v)
		}
	}
	return oairender.ErrorResponse(status, e, extra)
}

// translateException maps a Bedrock exception to the status the gateway answers and the OpenAI
// error object. The name may carry a suffix after a colon (InvalidSignatureException:http://…)
// or a namespace before a '#'; the code is the bare name, so nothing is lost. The statuses
// follow the service model, except ModelNotReadyException (429 there: the model is loading,
// which another deployment does not suffer from, so it is answered as 503), ModelTimeoutException
// (408: the upstream's timeout, 504 here) and the model's own failures (424: 502 here).
func translateException(status int, exception, msg string) (int, api.ErrorObject) {
	name, _, _ := strings.Cut(exception, ":")
	if i := strings.LastIndexByte(name, '#'); i >= 0 {
		name = name[i+1:]
	}
	typ := api.TypeInvalidRequest
	switch strings.ToLower(name) {
	case "throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception":
		status, typ = http.StatusTooManyRequests, api.TypeRateLimit
	case "validationexception", "serializationexception":
		status = http.StatusBadRequest
	case "modelnotreadyexception", "serviceunavailableexception":
		status, typ = http.StatusServiceUnavailable, api.TypeServer
	case "accessdeniedexception":
		status, typ = http.StatusForbidden, api.TypePermission
	case "unrecognizedclientexception", "invalidsignatureexception", "incompletesignatureexception",
		"expiredtokenexception", "invalidclienttokenid", "missingauthenticationtokenexception", "requestexpired":
		status, typ = http.StatusUnauthorized, api.TypeAuthentication
	case "resourcenotfoundexception":
		status, typ = http.StatusNotFound, api.TypeNotFound
	case "modeltimeoutexception":
		status, typ = http.StatusGatewayTimeout, api.TypeTimeout
	case "modelerrorexception", "modelstreamerrorexception":
		status, typ = http.StatusBadGateway, api.TypeUpstream
	case "internalserverexception", "internalfailure":
		status, typ = http.StatusInternalServerError, api.TypeServer
	default:
		switch {
		case status == http.StatusTooManyRequests:
			typ = api.TypeRateLimit
		case status == http.StatusUnauthorized:
			typ = api.TypeAuthentication
		case status == http.StatusForbidden:
			typ = api.TypePermission
		case status == http.StatusNotFound:
			typ = api.TypeNotFound
		case status >= 500 || status < 400:
			status, typ = max(status, http.StatusBadGateway), api.TypeServer
		}
	}
	if msg == "" {
		msg = "The upstream answered HTTP " + strconv.Itoa(status) + "."
	}
	if name != "" {
		msg = name + ": " + msg
	}
	return status, api.NewError(typ, name, "", msg)
}
