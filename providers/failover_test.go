package providers

import (
	"net/http"
	"testing"
)

// TestFailover: the one failover rule, case by case. A request the upstream never saw always moves
// on, whatever retry_on_timeout says; a timeout after sending only with retry_on_timeout; an error
// status only when it is the deployment's fault; never once the answer has begun, nor for a client
// that went away.
func TestFailover(t *testing.T) {
	for _, tc := range []struct {
		name           string
		o              Outcome
		retryOnTimeout bool
		want           bool
	}{
		{"connect error, no retry_on_timeout", Outcome{Kind: Unsent}, false, true},
		{"connect error, retry_on_timeout", Outcome{Kind: Unsent}, true, true},
		{"connection broken after sending", Outcome{Kind: Broken}, false, true},
		{"timeout after sending, no retry_on_timeout", Outcome{Kind: TimedOut}, false, false},
		{"timeout after sending, retry_on_timeout", Outcome{Kind: TimedOut}, true, true},
		{"500", Outcome{Kind: Answered, Status: http.StatusInternalServerError}, false, true},
		{"502", Outcome{Kind: Answered, Status: http.StatusBadGateway}, false, true},
		{"503", Outcome{Kind: Answered, Status: http.StatusServiceUnavailable}, false, true},
		{"429", Outcome{Kind: Answered, Status: http.StatusTooManyRequests}, false, true},
		{"408", Outcome{Kind: Answered, Status: http.StatusRequestTimeout}, false, true},
		{"401: the gateway's credentials", Outcome{Kind: Answered, Status: http.StatusUnauthorized}, false, true},
		{"403: the gateway's credentials", Outcome{Kind: Answered, Status: http.StatusForbidden}, false, true},
		{"302: a redirect never followed", Outcome{Kind: Answered, Status: http.StatusFound}, false, true},
		{"308", Outcome{Kind: Answered, Status: http.StatusPermanentRedirect}, false, true},
		{"400: the request's fault", Outcome{Kind: Answered, Status: http.StatusBadRequest}, true, false},
		{"404: the request's fault", Outcome{Kind: Answered, Status: http.StatusNotFound}, false, false},
		{"413: the request's fault", Outcome{Kind: Answered, Status: http.StatusRequestEntityTooLarge}, false, false},
		{"422: the request's fault", Outcome{Kind: Answered, Status: http.StatusUnprocessableEntity}, false, false},
		{"answer begun", Outcome{Kind: Begun}, false, false},
		{"answer begun, retry_on_timeout", Outcome{Kind: Begun}, true, false},
		{"client gone", Outcome{Kind: ClientGone}, true, false},
		{"zero outcome", Outcome{}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Deployment{ID: "d", RetryOnTimeout: tc.retryOnTimeout}
			if got := Failover(d, tc.o); got != tc.want {
				t.Errorf("Failover(retry_on_timeout %v, %+v) = %v, want %v", tc.retryOnTimeout, tc.o, got, tc.want)
			}
		})
	}
}
