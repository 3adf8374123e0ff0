package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
)

// The timeouts of one attempt (providers.Timeouts). Each is a 504 naming what did not come in
// time; only a first-byte timeout may let the request move on to another deployment, and only
// where the deployment allows it (retry_on_timeout).
var (
	errConnectTimeout   = newError(http.StatusGatewayTimeout, api.TypeTimeout, "upstream_timeout", "", "The upstream could not be connected to in time.")
	errFirstByteTimeout = newError(http.StatusGatewayTimeout, api.TypeTimeout, "upstream_timeout", "", "The upstream did not start answering in time.")
	errIdleTimeout      = newError(http.StatusGatewayTimeout, api.TypeTimeout, "upstream_timeout", "", "The upstream stopped sending its answer for too long.")
	errTotalTimeout     = newError(http.StatusGatewayTimeout, api.TypeTimeout, "upstream_timeout", "", "The upstream's answer took longer than allowed.")
)

// isAttemptTimeout reports whether err is one of the attempt timeouts.
func isAttemptTimeout(err error) bool {
	return errors.Is(err, errConnectTimeout) || errors.Is(err, errFirstByteTimeout) ||
		errors.Is(err, errIdleTimeout) || errors.Is(err, errTotalTimeout)
}

// inProcess is implemented by providers that answer without a network (the mock): no connection
// is made, so the connect timeout does not apply.
type inProcess interface{ InProcess() bool }

// call sends one attempt to a deployment under its timeouts. The connect timeout runs until a
// connection is obtained, the first-byte timeout until the answer's headers, the idle timeout
// between reads of the body, and the total one over everything; each cancels the attempt with
// its own cause, which the returned error (or the body's read error) then is. The caller closes
// the body, which releases the timers.
func (x *exchange) call(d *providers.Deployment, req *providers.Request) (*http.Response, error) {
	t := d.Timeouts
	ctx, cancel := context.WithCancelCause(x.ctx)
	var stops []func() bool
	after := func(d time.Duration, cause error) *time.Timer {
		tm := time.AfterFunc(d, func() { cancel(cause) })
		stops = append(stops, tm.Stop)
		return tm
	}
	after(t.Total, errTotalTimeout)
	firstByte := after(t.FirstByte, errFirstByteTimeout)
	if ip, ok := d.Provider.(inProcess); !ok || !ip.InProcess() {
		connect := after(t.Connect, errConnectTimeout)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connect.Stop() }})
	}
	release := func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
	resp, err := d.Provider.Do(ctx, req)
	firstByte.Stop()
	if err != nil {
		if cause := context.Cause(ctx); isAttemptTimeout(cause) {
			err = cause
		}
		release()
		return nil, err
	}
	b := &watchedBody{rc: resp.Body, ctx: ctx, idle: t.Idle, release: release}
	b.timer = time.AfterFunc(t.Idle, func() { cancel(errIdleTimeout) })
	resp.Body = b
	return resp, nil
}

// watchedBody is an answer's body under the idle timeout: every read that returns restarts it.
// A read cut by one of the attempt's timeouts returns that timeout as its error.
type watchedBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	idle    time.Duration
	timer   *time.Timer
	release func()
	once    sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.timer.Reset(b.idle)
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); isAttemptTimeout(cause) {
			err = cause
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.release()
	})
	return err
}

// retryBudget caps retries at a share of requests, so a failing upstream does not multiply the
// load on the others: every request deposits retryRatio of a token, a retry withdraws a whole
// one, and at most retryBurst tokens are kept (the budget starts full).
type retryBudget struct {
	milli atomic.Int64 // thousandths of a token
}

const (
	retryRatio = 0.2
	retryBurst = 100
)

func newRetryBudget() *retryBudget {
	b := &retryBudget{}
	b.milli.Store(retryBurst * 1000)
	return b
}

func (b *retryBudget) deposit() {
	if b.milli.Add(retryRatio*1000) > retryBurst*1000 {
		b.milli.Store(retryBurst * 1000) // a lost race only rounds the cap
	}
}

func (b *retryBudget) withdraw() bool {
	for {
		v := b.milli.Load()
		if v < 1000 {
			return false
		}
		if b.milli.CompareAndSwap(v, v-1000) {
			return true
		}
	}
}
