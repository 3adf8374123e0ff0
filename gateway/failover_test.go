package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/outbound"
)

// TestFailedAttemptOutcome: how a failed call is classified for providers.Failover, on real
// attempts over loopback where one can be made. A connect failure (refused, a connect timeout, the
// outbound policy's refusal) fails over whatever retry_on_timeout says; a timeout after the
// request was sent only with it; a connection that broke after sending fails over as before.
func TestFailedAttemptOutcome(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/v1"
	closed.Close()

	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer hanging.Close()
	defer close(release)
	resetting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
		conn.Close()
	}))
	defer resetting.Close()

	plain := &http.Client{Transport: &http.Transport{}}
	// A dial that never connects. The transport may go on dialing for its pool after the attempt
	// gives up, so the dial also ends with the test (no goroutine outlives it).
	testOver := make(chan struct{})
	defer close(testOver)
	hang := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-testOver:
			return nil, errors.New("test over")
		}
	}}}
	policed := outbound.NewClient(outbound.Options{}) // the default policy refuses loopback
	nop := func(context.Context) {}
	x := &exchange{ctx: context.Background()}

	real := []struct {
		name     string
		client   *http.Client
		url      string
		timeouts providers.Timeouts
		want     providers.OutcomeKind
	}{
		{"connection refused", plain, closedURL, providers.Timeouts{}, providers.Unsent},
		{"connect timeout", hang, hanging.URL, providers.Timeouts{Connect: 100 * time.Millisecond}, providers.Unsent},
		{"outbound policy refusal", policed, hanging.URL, providers.Timeouts{}, providers.Unsent},
		{"first-byte timeout", plain, hanging.URL, providers.Timeouts{FirstByte: 200 * time.Millisecond}, providers.TimedOut},
		{"total timeout after sending", plain, hanging.URL, providers.Timeouts{Total: 200 * time.Millisecond}, providers.TimedOut},
		{"connection reset after sending", plain, resetting.URL, providers.Timeouts{}, providers.Broken},
	}
	for _, tc := range real {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.timeouts
			to.Connect = firstPositive(to.Connect, 10*time.Second)
			to.FirstByte = firstPositive(to.FirstByte, 10*time.Second)
			to.Idle = 10 * time.Second
			to.Total = firstPositive(to.Total, 20*time.Second)
			p := &preparingProvider{prep: nop, client: tc.client, url: tc.url}
			resp, wrote, err := x.call(&providers.Deployment{Provider: p, Timeouts: to}, &providers.Request{})
			if err == nil {
				resp.Body.Close()
				t.Fatal("the call succeeded")
			}
			if o := failedOutcome(err, wrote); o.Kind != tc.want {
				t.Fatalf("%v (request written: %v) is outcome %d, want %d", err, wrote, o.Kind, tc.want)
			}
		})
	}

	reset := func(op string) error {
		return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, syscall.ECONNRESET)}
	}
	for _, tc := range []struct {
		name  string
		err   error
		wrote bool
		want  providers.OutcomeKind
	}{
		{"connect timeout sentinel", errConnectTimeout, false, providers.Unsent},
		{"dial error", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}, false, providers.Unsent},
		{"policy refusal", &outbound.RefusedError{What: "link-local", Class: outbound.Forbidden}, false, providers.Unsent},
		{"reset before the request was written", reset("write"), false, providers.Unsent},
		{"refused before the request was written", os.NewSyscallError("connect", syscall.ECONNREFUSED), false, providers.Unsent},
		{"reset after the request was written", reset("read"), true, providers.Broken},
		{"timeout before the request was written (TLS handshake)", timeoutErr{}, false, providers.Unsent},
		{"first-byte timeout sentinel", errFirstByteTimeout, true, providers.TimedOut},
		{"response header timeout of the transport", timeoutErr{}, true, providers.TimedOut},
		{"total timeout sentinel after sending", errTotalTimeout, true, providers.TimedOut},
		{"upstream closed before answering", io.ErrUnexpectedEOF, true, providers.Broken},
		{"adapter failed before any connection", errors.New("cannot translate"), false, providers.Broken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if o := failedOutcome(tc.err, tc.wrote); o.Kind != tc.want {
				t.Errorf("outcome %d, want %d", o.Kind, tc.want)
			}
		})
	}
}

// timeoutErr is a net.Error timeout that is none of the gateway's own.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func firstPositive(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
