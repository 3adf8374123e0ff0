package providers

import (
	"net/http"
	"strings"
	"time"
)

// OutcomeKind is how an attempt on a deployment ended, as far as trying another one is
// concerned: what the upstream saw, and what the client already got.
type OutcomeKind uint8

// The ways an attempt ends.
const (
	// Unsent: the attempt failed before the request reached the upstream — a connection refused
	// or reset before the request was written, a dial error, a connect timeout, an address the
	// outbound policy refused. The upstream never saw the request, so nothing can be billed twice.
	Unsent OutcomeKind = iota + 1
	// Broken: the connection failed after the request was written and before the answer's
	// headers, other than by a timeout (reset, closed).
	Broken
	// TimedOut: the request was sent and no answer came in time (the first-byte timeout, or the
	// total one before any answer). The upstream may still be working on it, and billing for it.
	TimedOut
	// Answered: the upstream answered with an HTTP status of 300 or more (Outcome.Status), and no
	// byte of it reached the client.
	Answered
	// Begun: the answer began reaching the client. Whatever happens next (a timeout, a cut) it is
	// this deployment's answer.
	Begun
	// ClientGone: the client went away; there is no one left to answer.
	ClientGone
)

// Outcome is how one attempt ended.
type Outcome struct {
	Kind OutcomeKind
	// Status is the upstream's HTTP status, for Answered.
	Status int
	// RetryAfter is the pause the upstream asked for with an Answered status (0: none).
	RetryAfter time.Duration
	// Permanent: the same deployment would fail the same way at once (the outbound policy
	// refused its address), so it is not retried; another deployment may still be tried.
	Permanent bool
}

// Failover reports whether a request whose attempt on d ended with o may be tried on another
// deployment. It is the one place that rule is written:
//   - a request the upstream never saw (Unsent) always may;
//   - so may one whose connection broke before any answer (Broken), as an attempt with no answer;
//   - a timeout after the request was sent only where the deployment sets RetryOnTimeout, since
//     the upstream may still bill for the first attempt;
//   - an error status only when it is the deployment's fault (UpstreamFault), not the request's;
//   - never once the answer has begun, nor for a client that went away.
func Failover(d *Deployment, o Outcome) bool {
	switch o.Kind {
	case Unsent, Broken:
		return true
	case TimedOut:
		return d.RetryOnTimeout
	case Answered:
		return UpstreamFault(o.Status)
	}
	return false
}

// UpstreamFault reports whether an upstream's error status is the deployment's fault rather than
// the request's: it counts against the breaker and lets the request try another deployment.
func UpstreamFault(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true // the gateway's credentials, or the deployment's capacity
	}
	// A redirect is never followed: the deployment's base_url is wrong (or its upstream moved),
	// which another deployment may not suffer from.
	return status >= 500 || (status >= 300 && status < 400)
}

// Cause is why every deployment of a model failed, as far as trying another public model is
// concerned (ModelConfig's fallback lists).
type Cause uint8

// The causes a fallback list can name.
const (
	// CauseNone: the request failed for a reason no other model would mend (a bad request, a
	// client gone, a timeout the upstream may still bill).
	CauseNone Cause = iota
	// CauseUnavailable: the deployments failed (connection errors, 5xx, open breakers…).
	CauseUnavailable
	// CauseRateLimited: the last deployment answered 429.
	CauseRateLimited
	// CauseContextWindow: the request does not fit the model's context window.
	CauseContextWindow
	// CauseContentFiltered: the provider's content filter refused the request.
	CauseContentFiltered
)

// String names the cause in metrics and logs.
func (c Cause) String() string {
	switch c {
	case CauseUnavailable:
		return "unavailable"
	case CauseRateLimited:
		return "rate_limited"
	case CauseContextWindow:
		return "context_window_exceeded"
	case CauseContentFiltered:
		return "content_filtered"
	}
	return "none"
}

// CauseOf classifies an upstream's error answer (its status, and the code and message of its
// error body) for the fallback lists. The context window and the content filter show as a 400
// whose code or wording names them, as OpenAI, Azure, Anthropic and Gemini word them.
func CauseOf(status int, code, message string) Cause {
	switch {
	case status == http.StatusTooManyRequests:
		return CauseRateLimited
	case UpstreamFault(status):
		return CauseUnavailable
	case status < 400 || status >= 500:
		return CauseNone
	}
	code, msg := strings.ToLower(code), strings.ToLower(message)
	switch code {
	case "context_length_exceeded", "string_above_max_length":
		return CauseContextWindow
	case "content_filter", "content_policy_violation", "responsibleaipolicyviolation":
		return CauseContentFiltered
	}
	for _, s := range contextWindowWords {
		if strings.Contains(msg, s) {
			return CauseContextWindow
		}
	}
	for _, s := range contentFilterWords {
		if strings.Contains(msg, s) {
			return CauseContentFiltered
		}
	}
	return CauseNone
}

// contextWindowWords and contentFilterWords are how the providers word those refusals when no
// code names them: OpenAI's "maximum context length", Anthropic's "prompt is too long", Gemini's
// "exceeds the maximum number of tokens"; Azure's content filter and OpenAI's safety system.
var (
	contextWindowWords = []string{"maximum context length", "context window", "context_length_exceeded",
		"prompt is too long", "exceeds the maximum number of tokens", "too many tokens"}
	contentFilterWords = []string{"content filter", "content management policy", "content_filter",
		"safety system", "content policy"}
)
