package gateway

import (
	"log/slog"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
)

// attemptTimes is what a request spends waiting on its upstream attempts. An attempt's wait runs
// from just before its request is sent until the last read of its answer returns (the end of
// the body, or the read that failed), or until the call failed. The gateway's work between those
// reads (relaying a stream event by event, an adapter translating it) overlaps with the upstream
// still sending and counts with the upstream; what is left is the gateway's own time: before the
// first attempt, between attempts, and after the answer's last byte arrived.
type attemptTimes struct {
	done    time.Duration // the attempts before the current one
	current *attemptClock // the current attempt's clock; nil before the first attempt
	backoff time.Duration // waited between attempts: neither the upstream's time nor the gateway's work
	count   int           // attempts made
}

// begin starts timing an attempt whose clock is clk.
func (t *attemptTimes) begin(clk *attemptClock) {
	t.done += t.current.waited()
	t.current = clk
	t.count++
}

// upstream is the time spent on attempts so far; for the current attempt, up to its last read
// (or its headers, before any).
func (t *attemptTimes) upstream() time.Duration { return t.done + t.current.waited() }

// waited is an attempt's time from its start to its last activity (headers, a read, the failure).
func (c *attemptClock) waited() time.Duration {
	if c == nil {
		return 0
	}
	return max(time.Duration(c.since.Load()), 0)
}

// own is the gateway's own time of a request at now: the time since it began less the upstream
// attempts and the backoff between them.
func (x *exchange) own(now time.Time) time.Duration {
	return max(now.Sub(x.start)-x.times.upstream()-x.times.backoff, 0)
}

// serverTiming sets the Server-Timing header (gateway.server_timing) just before the answer's
// headers go out: gw is the gateway's own time so far, upstream the attempts' (for a stream, the
// answering attempt's counts to its headers), and backoff, when there was one, the waits between
// attempts; milliseconds with three decimals.
func (x *exchange) serverTiming() {
	if !x.g.opts.ServerTiming || x.c.Writer.Written() {
		return
	}
	var b [96]byte
	h := append(b[:0], "gw;dur="...)
	h = appendMillis(h, x.own(time.Now()))
	h = append(h, ", upstream;dur="...)
	h = appendMillis(h, x.times.upstream())
	if x.times.backoff > 0 {
		h = append(h, ", backoff;dur="...)
		h = appendMillis(h, x.times.backoff)
	}
	x.c.Writer.Header()["Server-Timing"] = []string{string(h)}
}

// finishTimes observes the request's own time and writes its access-log line, at end (when its
// answer has been flushed), once the record is complete.
func (x *exchange) finishTimes(end time.Time, out *outcome) {
	own := x.own(end)
	x.g.metrics.overheadBy.with(string(x.ep)).Observe(own.Seconds())
	r := &x.rec
	if !x.g.access.sampled(r.Status) {
		return
	}
	e := accessEntry{end: end, requestID: r.RequestID, traceID: r.TraceID, clientRequestID: r.ClientRequestID,
		keyPrefix: x.id.Key.Prefix, tenant: r.TenantID, user: r.UserID, model: r.Model, deployment: r.Deployment,
		endpoint: r.Endpoint, stream: r.Stream, status: r.Status, errType: r.ErrorType, errCode: out.errCode,
		tokensIn: r.PromptTokens, tokensOut: r.CompletionTokens, costPico: r.CostPicoUSD,
		latency: end.Sub(x.start), overhead: own, upstream: x.times.upstream(), attempts: x.times.count}
	if !out.firstByte.IsZero() {
		e.ttft = out.firstByte.Sub(x.start)
	}
	x.g.access.write(&e)
}

// refused observes and logs a request refused before it had an exchange (authentication failed):
// all of its time is the gateway's.
func (g *Gateway) refused(c *gin.Context, ep providers.Endpoint, status int, errType, errCode string) {
	m := metaOf(c)
	end := time.Now()
	own := end.Sub(m.start)
	g.metrics.overheadBy.with(string(ep)).Observe(own.Seconds())
	if !g.access.sampled(status) {
		return
	}
	g.access.write(&accessEntry{end: end, requestID: m.requestID, traceID: m.traceID, clientRequestID: m.clientRequestID,
		endpoint: string(ep), status: status, errType: errType, errCode: errCode, latency: own, overhead: own})
}

// failedAttempt is an upstream attempt that failed, kept until it is known whether the request
// moved on to another deployment.
type failedAttempt struct {
	d       *providers.Deployment
	n       int    // the attempt's number, from 1
	outcome string // http_<status>, error, or answer_cut
	reason  string // what failed: failureReason's words for an error, the error type of a cut answer
	took    time.Duration
}

// logAttempt logs a failed attempt as a warning: no body, header or URL, only what failed and
// where.
func (x *exchange) logAttempt(f *failedAttempt, failedOver bool) {
	if f.d == nil {
		return
	}
	attrs := []slog.Attr{slog.String("request_id", x.rec.RequestID), slog.String("deployment", f.d.ID),
		slog.Int("attempt", f.n), slog.String("outcome", f.outcome)}
	if f.reason != "" {
		attrs = append(attrs, slog.String("reason", f.reason))
	}
	attrs = append(attrs, slog.Float64("duration_ms", float64(f.took.Microseconds())/1000), slog.Bool("failed_over", failedOver))
	x.g.log.LogAttrs(x.ctx, slog.LevelWarn, "upstream attempt failed", attrs...)
	f.d = nil
}

// statusFailed is the outcome word of an attempt answered with an error status.
func statusFailed(status int) string { return "http_" + statusLabel(status) }

// errorCode is an error body's code, empty when it has none.
func errorCode(e api.ErrorObject) string {
	if e.Code == nil {
		return ""
	}
	return *e.Code
}
