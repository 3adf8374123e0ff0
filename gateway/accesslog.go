package gateway

import (
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/internal/jsonappend"
)

// AccessLogOptions is the `log.access` section: one JSON line per request of the public API.
// Zero values mean the defaults in brackets.
type AccessLogOptions struct {
	// Enabled writes the access log [true].
	Enabled *bool `yaml:"enabled"`
	// Output is where the lines go: stderr, stdout or a file path, opened for appending [stderr].
	Output string `yaml:"output"`
	// SuccessSampleRate is the share of successful requests (status below 400) that get a line,
	// from 0 to 1 [1]; every error gets one whatever it says.
	SuccessSampleRate *float64 `yaml:"success_sample_rate"`
}

// On reports whether the access log is written.
func (o AccessLogOptions) On() bool { return o.Enabled == nil || *o.Enabled }

// sampleRate is SuccessSampleRate with its default.
func (o AccessLogOptions) sampleRate() float64 {
	if o.SuccessSampleRate == nil {
		return 1
	}
	return *o.SuccessSampleRate
}

// AccessLog writes the access log: one JSON object per line and request, made of the allowlisted
// fields of accessEntry only, so that no prompt, answer, header value or secret can reach it.
//
// A request appends its line by hand to a pooled buffer (slog's JSON handler takes five times
// the time or more and eleven allocations for the same line, see BenchmarkAccessLog) and queues it;
// one goroutine writes what is queued, every accessFlushEvery or as soon as a quarter of the queue
// is taken, many lines per Write. It is not woken for each line: a wake-up and a write for every
// request cost more than the line itself. A request never waits on the output: when the queue
// is full (a blocked pipe, a slow disk) its line is dropped and counted (Dropped). Close writes
// what is queued.
type AccessLog struct {
	w       io.Writer
	rate    float64
	lines   chan *[]byte
	kick    chan struct{} // wakes the writer before its tick when the queue fills
	quit    chan struct{}
	done    chan struct{}
	stop    sync.Once
	dropped atomic.Uint64
}

// accessQueue is how many lines may wait for the writer: at tens of thousands of requests a
// second, a fraction of a second of them.
const accessQueue = 8192

// accessFlushEvery is how long a line may wait in the queue: lines reach the output within it.
const accessFlushEvery = 100 * time.Millisecond

// NewAccessLog returns the access log writing to w, or nil when o turns it off. Its writer runs
// until Close.
func NewAccessLog(w io.Writer, o AccessLogOptions) *AccessLog {
	if !o.On() || w == nil {
		return nil
	}
	l := &AccessLog{w: w, rate: min(max(o.sampleRate(), 0), 1), lines: make(chan *[]byte, accessQueue),
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Close writes the lines queued so far and stops the writer; lines queued later are not written.
func (l *AccessLog) Close() {
	if l == nil {
		return
	}
	l.stop.Do(func() { close(l.quit) })
	<-l.done
}

// Dropped is the number of lines dropped because the queue was full.
func (l *AccessLog) Dropped() uint64 { return l.dropped.Load() }

// run writes the queued lines at each tick, or when a writer kicks it, in Writes of up to 64 KiB.
// The batch grows with the lines it gathers and is let go when a tick finds nothing queued, so
// an idle gateway does not hold its 64 KiB.
func (l *AccessLog) run() {
	defer close(l.done)
	var batch []byte
	tick := time.NewTicker(accessFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if len(l.lines) == 0 {
				batch = nil
				continue
			}
		case <-l.kick:
		case <-l.quit:
			l.drain(batch)
			return
		}
		batch = l.drain(batch)
	}
}

// drain writes every line queued now, gathering them into Writes of up to 64 KiB, and returns
// the emptied batch.
func (l *AccessLog) drain(batch []byte) []byte {
	for {
		select {
		case bp := <-l.lines:
			batch = append(batch, *bp...)
			putLine(bp)
			if len(batch) >= 64<<10 {
				batch = l.flush(batch)
			}
		default:
			return l.flush(batch)
		}
	}
}

// flush writes batch and returns it emptied. A failed write loses its lines: retrying could
// only fall further behind.
func (l *AccessLog) flush(batch []byte) []byte {
	if len(batch) > 0 {
		_, _ = l.w.Write(batch)
	}
	return batch[:0]
}

// sampled reports whether a request that ended with status gets a line.
func (l *AccessLog) sampled(status int) bool {
	if l == nil {
		return false
	}
	return status >= 400 || l.rate >= 1 || (l.rate > 0 && rand.Float64() < l.rate)
}

// accessEntry is one line's fields: the allowlist. Strings here are identifiers the gateway
// made or checked (ids, names of models and deployments, error types), never request content.
type accessEntry struct {
	end                     time.Time
	requestID, traceID      string
	clientRequestID         string
	keyPrefix               string
	tenant, user            string
	model, deployment       string
	endpoint                string
	stream                  bool
	status                  int
	errType, errCode        string
	tokensIn, tokensOut     int64
	costPico                *int64 // nil: the model has no price
	latency, ttft, overhead time.Duration
	upstream                time.Duration
	attempts                int
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// write queues e as one line, or drops it when the queue is full.
func (l *AccessLog) write(e *accessEntry) {
	bp := lineBufs.Get().(*[]byte)
	*bp = appendEntry((*bp)[:0], e)
	select {
	case l.lines <- bp:
		if len(l.lines) >= accessQueue/4 {
			select {
			case l.kick <- struct{}{}:
			default: // already kicked
			}
		}
	default:
		l.dropped.Add(1)
		putLine(bp)
	}
}

func putLine(bp *[]byte) {
	if cap(*bp) <= 16<<10 { // do not keep a rare huge line's buffer
		lineBufs.Put(bp)
	}
}

// appendEntry renders e in the shape of the process's slog JSON lines (time, level, msg first).
func appendEntry(b []byte, e *accessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.end.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","level":"INFO","msg":"access","request_id":`...)
	b = jsonappend.String(b, e.requestID)
	b = append(b, `,"trace_id":`...)
	b = jsonappend.String(b, e.traceID)
	b = append(b, `,"client_request_id":`...)
	b = jsonappend.String(b, e.clientRequestID)
	b = append(b, `,"key_prefix":`...)
	b = jsonappend.String(b, e.keyPrefix)
	b = append(b, `,"tenant":`...)
	b = jsonappend.String(b, e.tenant)
	b = append(b, `,"user":`...)
	b = jsonappend.String(b, e.user)
	b = append(b, `,"model":`...)
	b = jsonappend.String(b, e.model)
	b = append(b, `,"deployment":`...)
	b = jsonappend.String(b, e.deployment)
	b = append(b, `,"endpoint":`...)
	b = jsonappend.String(b, e.endpoint)
	b = append(b, `,"stream":`...)
	b = strconv.AppendBool(b, e.stream)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"error_type":`...)
	b = jsonappend.String(b, e.errType)
	b = append(b, `,"error_code":`...)
	b = jsonappend.String(b, e.errCode)
	b = append(b, `,"tokens_in":`...)
	b = strconv.AppendInt(b, e.tokensIn, 10)
	b = append(b, `,"tokens_out":`...)
	b = strconv.AppendInt(b, e.tokensOut, 10)
	b = append(b, `,"cost_usd":`...)
	if e.costPico == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = appendPicoUSD(b, *e.costPico)
		b = append(b, '"')
	}
	b = append(b, `,"latency_ms":`...)
	b = appendMillis(b, e.latency)
	b = append(b, `,"ttft_ms":`...)
	b = appendMillis(b, e.ttft)
	b = append(b, `,"overhead_ms":`...)
	b = appendMillis(b, e.overhead)
	b = append(b, `,"upstream_ms":`...)
	b = appendMillis(b, e.upstream)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.attempts), 10)
	return append(b, "}\n"...)
}

// appendMillis renders d in milliseconds with three decimals (microseconds); negative is 0.
func appendMillis(b []byte, d time.Duration) []byte {
	us := max(d.Microseconds(), 0)
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendPicoUSD renders integer pico-USD as exact decimal USD without trailing zeros, as
// billing.FormatPico64 does, without its big.Int allocations.
func appendPicoUSD(b []byte, pico int64) []byte {
	const unit = 1_000_000_000_000
	u := uint64(pico)
	if pico < 0 {
		b = append(b, '-')
		u = uint64(-pico) // -MinInt64 wraps to itself, which as uint64 is its magnitude
	}
	b = strconv.AppendUint(b, u/unit, 10)
	frac := u % unit
	if frac == 0 {
		return b
	}
	var digits [12]byte
	for i := 11; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 12
	for n > 0 && digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// registerAccessMetrics exports the access log's dropped lines, when there is an access log.
func registerAccessMetrics(reg prometheus.Registerer, l *AccessLog) {
	if reg == nil || l == nil {
		return
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "llmgate_access_log_dropped_total",
		Help: "Access-log lines dropped because the writer had fallen behind (its queue was full).",
	}, func() float64 { return float64(l.Dropped()) }))
}
