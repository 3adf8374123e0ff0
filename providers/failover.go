package providers

import "net/http"

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
