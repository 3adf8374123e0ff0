package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/outbound"
)

// The timeouts of one attempt (providers.Timeouts). Each is a 504 naming what did not come in
// time. A connect timeout lets the request move on to another deployment (the upstream never saw
// it); a first-byte timeout, or a total one before the answer, only where the deployment allows
// it (retry_on_timeout); once the answer has begun, no timeout does (see providers.Failover).
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

// call sends one attempt to a deployment under its timeouts. The connect timeout runs from the
// moment the transport starts getting a connection until it has one (what an adapter does
// before, such as translating the request, is not connecting), the first-byte timeout until the
// answer's headers, the idle timeout between reads of the body, and the total one over
// everything; each cancels the attempt with its own cause, which the returned error (or the
// body's read error) then is. wrote reports whether the request's headers were written to a
// connection (always true for an in-process provider): until then the upstream cannot have seen
// it. The caller closes the body, which releases the clock.
func (x *exchange) call(d *providers.Deployment, req *providers.Request) (resp *http.Response, wrote bool, err error) {
	ctx, cancel := context.WithCancelCause(x.ctx)
	clk := newAttemptClock(d.Timeouts, cancel)
	x.times.begin(clk)
	if ip, ok := d.Provider.(inProcess); !ok || !ip.InProcess() {
		clk.enter(phasePrepare)
		clk.trace = httptrace.ClientTrace{
			GetConn:      func(string) { clk.enter(phaseConnect) },
			GotConn:      func(httptrace.GotConnInfo) { clk.enter(phaseFirstByte) },
			WroteHeaders: func() { clk.wrote.Store(true) },
		}
		ctx = httptrace.WithClientTrace(ctx, &clk.trace)
	} else {
		clk.wrote.Store(true)
		clk.enter(phaseFirstByte)
	}
	resp, err = d.Provider.Do(ctx, req)
	if err != nil {
		if cause := context.Cause(ctx); isAttemptTimeout(cause) {
			err = cause
		}
		clk.touch() // the attempt's time ends with its failure
		clk.stop()
		return nil, clk.wrote.Load(), err
	}
	clk.enter(phaseBody)
	clk.body = watchedBody{rc: resp.Body, ctx: ctx, clk: clk}
	resp.Body = &clk.body
	return resp, true, nil
}

// failedOutcome says how an attempt whose call failed with err ended, for providers.Failover:
// Unsent when the upstream cannot have seen the request (a connect timeout, a dial error such as
// a refused connection or the outbound policy's refusal — Permanent, never retried on the same
// deployment — or a refused or reset connection or a
// timeout before the request was written), TimedOut for a timeout after it was sent, Broken for
// any other failure.
func failedOutcome(err error, wrote bool) providers.Outcome {
	var oe *net.OpError
	switch {
	case errors.As(err, new(*outbound.RefusedError)):
		return providers.Outcome{Kind: providers.Unsent, Permanent: true}
	case errors.Is(err, errConnectTimeout),
		errors.As(err, &oe) && oe.Op == "dial",
		!wrote && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)),
		!wrote && (isAttemptTimeout(err) || isTimeout(err)):
		return providers.Outcome{Kind: providers.Unsent}
	case isAttemptTimeout(err) || isTimeout(err):
		return providers.Outcome{Kind: providers.TimedOut}
	}
	return providers.Outcome{Kind: providers.Broken}
}

// Phases of an attempt, each with its own deadline.
const (
	phasePrepare int32 = iota // the adapter prepares its request: only the total timeout applies
	phaseConnect
	phaseFirstByte
	phaseBody
)

// attemptClock enforces an attempt's timeouts with one timer. Moving to a later phase and every
// read of the body only record a time (no timer call on the hot path); when the timer fires it
// checks the deadline in force and either cancels the attempt with that phase's cause or re-arms
// itself for the rest. A phase whose deadline may come sooner than the one armed re-arms at once.
type attemptClock struct {
	t       providers.Timeouts
	cancel  context.CancelCauseFunc
	start   time.Time
	total   time.Time
	phase   atomic.Int32
	since   atomic.Int64 // since start, in ns: phase start, then the last read of the body
	wrote   atomic.Bool  // the request's headers were written to a connection
	mu      sync.Mutex
	timer   *time.Timer
	armed   time.Time
	stopped bool
	// trace and body are the attempt's connection hooks and its answer's body, made with the
	// clock in one allocation since they live as long as it does.
	trace httptrace.ClientTrace
	body  watchedBody
}

func newAttemptClock(t providers.Timeouts, cancel context.CancelCauseFunc) *attemptClock {
	now := time.Now()
	return &attemptClock{t: t, cancel: cancel, start: now, total: now.Add(t.Total)}
}

// deadline is the phase's deadline, capped by the total, and the cause to cancel with.
func (c *attemptClock) deadline() (time.Time, error) {
	since := c.start.Add(time.Duration(c.since.Load()))
	var at time.Time
	var cause error
	switch c.phase.Load() {
	case phasePrepare:
		at, cause = c.total, errTotalTimeout
	case phaseConnect:
		at, cause = since.Add(c.t.Connect), errConnectTimeout
	case phaseFirstByte:
		at, cause = c.start.Add(c.t.FirstByte), errFirstByteTimeout
	default:
		at, cause = since.Add(c.t.Idle), errIdleTimeout
	}
	if c.total.Before(at) {
		return c.total, errTotalTimeout
	}
	return at, cause
}

// enter moves the attempt to a phase.
func (c *attemptClock) enter(phase int32) {
	c.mark()
	c.phase.Store(phase)
	at, _ := c.deadline()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if c.timer == nil {
		c.armed = at
		c.timer = time.AfterFunc(time.Until(at), c.fire)
		return
	}
	if at.Before(c.armed) {
		c.armed = at
		c.timer.Reset(time.Until(at))
	}
}

// touch records activity in the body phase: it pushes the idle deadline back.
func (c *attemptClock) touch() { c.mark() }

// mark records now as the time since the attempt's start: on the monotonic clock, read once
// (time.Since reads no wall clock), as this runs for every read of a body.
func (c *attemptClock) mark() { c.since.Store(int64(time.Since(c.start))) }

func (c *attemptClock) fire() {
	at, cause := c.deadline()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if now := time.Now(); now.Before(at) {
		c.armed = at
		c.timer.Reset(at.Sub(now))
		return
	}
	c.stopped = true
	c.cancel(cause)
}

// stop ends the clock and releases the attempt's context.
func (c *attemptClock) stop() {
	c.mu.Lock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cancel(nil)
}

// watchedBody is an answer's body under the idle timeout: every read pushes it back. A read cut
// by one of the attempt's timeouts returns that timeout as its error.
type watchedBody struct {
	rc   io.ReadCloser
	ctx  context.Context
	clk  *attemptClock
	once sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.clk.touch()
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); isAttemptTimeout(cause) {
			err = cause
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.clk.stop)
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
