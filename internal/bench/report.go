package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// benchDuration is a duration that JSON shows in microseconds and text as µs or ms.
type benchDuration time.Duration

// MarshalJSON writes the duration as a number of microseconds with one decimal.
func (m benchDuration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(m)/float64(time.Microsecond), 'f', 1, 64), nil
}

// String shows the duration in whole microseconds below 10 ms, else in milliseconds.
func (m benchDuration) String() string {
	d := time.Duration(m)
	if d.Abs() < 10*time.Millisecond {
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}

// perRequest is the progress line's note of a CPU cost ("" when there is none).
func (m benchDuration) perRequest() string {
	if m == 0 {
		return ""
	}
	return ", proxy CPU " + m.String() + " each"
}

// orDash shows a CPU cost, or "-" where there is none (direct has no proxy).
func (m benchDuration) orDash() string {
	if m == 0 {
		return "-"
	}
	return m.String()
}

// signed shows a difference with its sign.
func (m benchDuration) signed() string {
	if m >= 0 {
		return "+" + m.String()
	}
	return m.String()
}

// pathRound is one path's numbers from one round (or their medians over the rounds).
type pathRound struct {
	RPS       float64       `json:"rps"`
	P50       benchDuration `json:"p50_us"`
	P99       benchDuration `json:"p99_us"`
	TTFTP50   benchDuration `json:"stream_ttft_p50_us"`
	TTFTP99   benchDuration `json:"stream_ttft_p99_us"`
	StreamP50 benchDuration `json:"stream_total_p50_us"`
	StreamRPS float64       `json:"stream_rps,omitempty"`
	// CPUPerRequest and CPUPerStream are the proxy process's CPU time (user and system) per request
	// during the RPS runs, its usage record writes included: unlike RPS, this hardly depends on
	// what else runs on the machine. Zero for direct, which has no proxy.
	CPUPerRequest benchDuration `json:"proxy_cpu_per_request_us,omitempty"`
	CPUPerStream  benchDuration `json:"proxy_cpu_per_stream_us,omitempty"`
	// ResponsesRPS and CPUPerResponses are the same for Responses API streams (POST /v1/responses
	// with "stream": true), on the paths that take part (direct and gateway).
	ResponsesRPS    float64       `json:"responses_stream_rps,omitempty"`
	CPUPerResponses benchDuration `json:"proxy_cpu_per_responses_stream_us,omitempty"`
	// MessagesRPS and CPUPerMessages are the same for Messages API streams (POST /v1/messages).
	MessagesRPS    float64       `json:"messages_stream_rps,omitempty"`
	CPUPerMessages benchDuration `json:"proxy_cpu_per_messages_stream_us,omitempty"`
}

// describe is the progress line of one phase.
func (p *pathRound) describe(ph benchPhase) string {
	switch {
	case ph.responses:
		return fmt.Sprintf("%.0f Responses streams/s%s", p.ResponsesRPS, p.CPUPerResponses.perRequest())
	case ph.messages:
		return fmt.Sprintf("%.0f Messages streams/s%s", p.MessagesRPS, p.CPUPerMessages.perRequest())
	case ph.rate && ph.stream:
		return fmt.Sprintf("%.0f streams/s%s", p.StreamRPS, p.CPUPerStream.perRequest())
	case ph.rate:
		return fmt.Sprintf("%.0f req/s%s", p.RPS, p.CPUPerRequest.perRequest())
	case ph.stream:
		return fmt.Sprintf("TTFT p50 %s p99 %s, whole stream p50 %s", p.TTFTP50, p.TTFTP99, p.StreamP50)
	}
	return fmt.Sprintf("p50 %s p99 %s", p.P50, p.P99)
}

// describe is the suffix of a progress line: nothing, or the errors.
func (t errorTally) describe() string {
	if t.N == 0 {
		return ""
	}
	return fmt.Sprintf("  (%d errors; first: %s)", t.N, t.First)
}

// pathResult is one row of the report.
type pathResult struct {
	Name   string       `json:"name"`
	Median pathRound    `json:"median"`
	Rounds []pathRound  `json:"rounds"`
	Errors errorTally   `json:"errors"`
	Usage  *usageReport `json:"usage_records,omitempty"` // gateways only
}

// benchRatios compare the paths. Each is the median of the per-round values, since the paths of
// one round ran back to back on the same machine state.
type benchRatios struct {
	GatewayRPS          float64       `json:"gateway_direct_rps"`
	BaselineRPS         float64       `json:"baseline_direct_rps"`
	GatewayStreamRPS    float64       `json:"gateway_direct_stream_rps,omitempty"`
	BaselineStreamRPS   float64       `json:"baseline_direct_stream_rps,omitempty"`
	GatewayAddedP50     benchDuration `json:"gateway_added_p50_vs_direct_us"`
	BaselineAddedP50    benchDuration `json:"baseline_added_p50_vs_direct_us"`
	GatewayOverBaseline benchDuration `json:"gateway_added_p50_vs_baseline_us"`
	GatewayAddedTTFT    benchDuration `json:"gateway_added_stream_ttft_p50_us"`
	BaselineAddedTTFT   benchDuration `json:"baseline_added_stream_ttft_p50_us"`
	GatewayCPUOverBase  benchDuration `json:"gateway_cpu_per_request_vs_baseline_us"`
	GatewayCPURatio     float64       `json:"gateway_baseline_cpu_per_request"`
	Redis               *redisRatios  `json:"gateway_redis,omitempty"`
	// Responses compares the gateway's Responses API streams with direct ones; nil when they
	// were not measured.
	Responses *responsesRatios `json:"gateway_responses,omitempty"`
	// Messages compares the gateway's Messages API passthrough streams with direct ones, the same
	// way; nil when they were not measured.
	Messages *responsesRatios `json:"gateway_messages,omitempty"`
	// Tracing compares the gateway with tracing on with the gateway; nil without --tracing.
	Tracing *tracingRatios `json:"gateway_tracing,omitempty"`
	// AccessLog compares the gateway (access log at its default) with the gateway without it;
	// nil without --accesslog-off.
	AccessLog *accessLogRatios `json:"gateway_accesslog,omitempty"`
}

// accessLogRatios compare the gateway, whose access log is at its default (on, every success),
// with the gateway-accesslog-off path of the same rounds: what the access log costs.
type accessLogRatios struct {
	OffRPS       float64 `json:"accesslog_off_direct_rps"`
	OffStreamRPS float64 `json:"accesslog_off_direct_stream_rps,omitempty"`
	// CostRounds are, per round, the gateway's ratio to direct less the log-off path's (negative
	// when the access log costs throughput); Cost is their median. The same for streams.
	Cost             float64   `json:"gateway_minus_accesslog_off_direct_rps"`
	StreamCost       float64   `json:"gateway_minus_accesslog_off_direct_stream_rps,omitempty"`
	CostRounds       []float64 `json:"gateway_minus_accesslog_off_direct_rps_per_round"`
	StreamCostRounds []float64 `json:"gateway_minus_accesslog_off_direct_stream_rps_per_round,omitempty"`
	// AddedP50, AddedTTFT and CPUAdded are the gateway's less the log-off path's.
	AddedP50  benchDuration `json:"gateway_added_p50_vs_accesslog_off_us"`
	AddedTTFT benchDuration `json:"gateway_added_stream_ttft_p50_vs_accesslog_off_us"`
	CPUAdded  benchDuration `json:"gateway_cpu_per_request_vs_accesslog_off_us"`
	CPURatio  float64       `json:"gateway_accesslog_off_cpu_per_request"`
}

// tracingRatios compare the gateway+tracing path (every request traced and exported) with
// direct, and with the gateway without tracing in the same rounds.
type tracingRatios struct {
	RPS       float64 `json:"direct_rps"`
	StreamRPS float64 `json:"direct_stream_rps,omitempty"`
	// VsGateway and StreamVsGateway are the medians over the rounds of this path's ratio to
	// direct less the gateway's of the same round: what tracing costs, in the ratio's units.
	VsGateway       float64       `json:"minus_gateway_direct_rps"`
	StreamVsGateway float64       `json:"minus_gateway_direct_stream_rps,omitempty"`
	OverGatewayP50  benchDuration `json:"added_p50_vs_gateway_us"`
	OverGatewayTTFT benchDuration `json:"added_stream_ttft_p50_vs_gateway_us"`
	CPUOverGateway  benchDuration `json:"cpu_per_request_vs_gateway_us"`
	CPURatio        float64       `json:"gateway_cpu_per_request"`
}

// tracingReport is what the OTLP receiver of the gateway+tracing path got.
type tracingReport struct {
	Sent    int64 `json:"requests_sent"`
	Exports int64 `json:"exports"`
	Spans   int64 `json:"spans"`
	Failed  int64 `json:"failed_exports"`
	// SpansPerRequest is Spans / Sent: five for a chat request (server, auth, admission, one
	// upstream attempt, settlement), a little less when the last spans were still queued in the
	// gateway when the run ended.
	SpansPerRequest float64 `json:"spans_per_request"`
}

// responsesRatios compare Responses API passthrough streams through the gateway with the same
// streams straight from the upstream, and with the chat streams of the same rounds.
type responsesRatios struct {
	RPS float64 `json:"gateway_direct_responses_stream_rps"`
	// VsChat is the median over the rounds of the Responses ratio less the chat stream ratio of
	// the same round: negative when Responses passthrough costs the gateway more than chat.
	VsChat       float64       `json:"minus_gateway_direct_stream_rps"`
	CPUPerStream benchDuration `json:"gateway_cpu_per_responses_stream_us,omitempty"`
}

// redisRatios compare the gateway+redis path with direct and with the gateway without quotas,
// the same way.
type redisRatios struct {
	RPS             float64       `json:"direct_rps"`
	StreamRPS       float64       `json:"direct_stream_rps,omitempty"`
	AddedP50        benchDuration `json:"added_p50_vs_direct_us"`
	AddedP99        benchDuration `json:"added_p99_vs_direct_us"`
	OverGatewayP50  benchDuration `json:"added_p50_vs_gateway_us"`
	OverGatewayP99  benchDuration `json:"added_p99_vs_gateway_us"`
	AddedTTFT       benchDuration `json:"added_stream_ttft_p50_vs_direct_us"`
	OverGatewayTTFT benchDuration `json:"added_stream_ttft_p50_vs_gateway_us"`
	CPUOverGateway  benchDuration `json:"cpu_per_request_vs_gateway_us"`
	CPURatio        float64       `json:"gateway_cpu_per_request"`
}

// benchFloors are DESIGN.md's floors and whether this run met them.
type benchFloors struct {
	RPSRatioMin          float64       `json:"gateway_direct_rps_min"`
	RPSRatioMet          bool          `json:"gateway_direct_rps_met"`
	AddedOverBaselineMax benchDuration `json:"gateway_added_p50_vs_baseline_max_us"`
	AddedOverBaselineMet bool          `json:"gateway_added_p50_vs_baseline_met"`
	// Responses is the floor of the Responses stream ratio, when it was measured.
	Responses *responsesFloor `json:"gateway_responses,omitempty"`
	// Messages is the floor of the Messages stream ratio, when it was measured.
	Messages *responsesFloor `json:"gateway_messages,omitempty"`
	// Tracing is the target of the gateway+tracing RPS ratio, with --tracing.
	Tracing *tracingFloor `json:"gateway_tracing,omitempty"`
	// AccessLog is the floor of the access log's cost, with --accesslog-off.
	AccessLog *accessLogFloor `json:"gateway_accesslog,omitempty"`
}

// accessLogFloor: with the access log at its default, the gateway/direct RPS ratio (and the
// stream one) may be at most MaxBelowOff under the log-off gateway's of the same run.
type accessLogFloor struct {
	MaxBelowOff float64 `json:"max_below_accesslog_off_direct_rps"`
	Met         bool    `json:"met"`
}

// tracingFloor: with every request traced, the gateway/direct RPS ratio (and the stream one) may
// be at most MaxBelowGateway under the untraced gateway's of the same run.
type tracingFloor struct {
	MaxBelowGateway float64 `json:"max_below_gateway_direct_rps"`
	Met             bool    `json:"met"`
}

// responsesFloor: the Responses stream ratio may be at most MaxBelowChat under the chat stream
// ratio of the same run (above it is no failure).
type responsesFloor struct {
	MaxBelowChat float64 `json:"max_below_gateway_direct_stream_rps"`
	Met          bool    `json:"met"`
}

// usageReport is the gateway's usage pipeline after the run: every request sent to it should have
// left exactly one record.
type usageReport struct {
	Sent    int64  `json:"requests_sent"`
	Written int64  `json:"written"`
	Dropped int64  `json:"dropped"`
	Error   string `json:"error,omitempty"`
	// Responses counts the Responses API streams among the requests sent (they are metered as
	// every request is, so they are in Written too).
	Responses int64 `json:"responses_requests_sent,omitempty"`
	// Messages counts the Messages API streams among them.
	Messages int64 `json:"messages_requests_sent,omitempty"`
	// AccessLogLines are the access-log lines in the gateway's stderr (every request's, warm-ups
	// included, at the default settings; none with the access log off), and AccessLogDropped the
	// lines it dropped because its writer fell behind.
	AccessLogLines   int64 `json:"access_log_lines"`
	AccessLogDropped int64 `json:"access_log_dropped,omitempty"`
}

// benchSettings echo the flags in the JSON output.
type benchSettings struct {
	Concurrency     int    `json:"concurrency"`
	Duration        string `json:"duration"`
	LatencyRequests int    `json:"latency_requests"`
	Chunks          int    `json:"chunks"`
	Rounds          int    `json:"rounds"`
	StreamRPS       bool   `json:"stream_rps"`
	// ResponsesDuration is the length of each Responses stream RPS run ("": not measured).
	ResponsesDuration string `json:"responses_duration,omitempty"`
	// MessagesDuration is the same for Messages streams.
	MessagesDuration string `json:"messages_duration,omitempty"`
	Quota            string `json:"gateway_quota"`
	RedisQuota       string `json:"gateway_redis_quota"`
}

// benchReport is everything `llmgate bench` prints.
type benchReport struct {
	Date      time.Time `json:"date"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	// LoadStart and LoadEnd are the machine's load averages (1, 5, 15 min) around the run, empty
	// where /proc/loadavg does not exist: other work on the machine shows up here.
	LoadStart string `json:"load_average_start,omitempty"`
	LoadEnd   string `json:"load_average_end,omitempty"`
	// StealPercent is the share of the machine's CPU time the hypervisor gave to other guests
	// during the run (steal, from /proc/stat); nil where it cannot be read. A virtual machine on a
	// busy host loses that much of every path's CPU, and the ratios move with it.
	StealPercent *float64 `json:"cpu_steal_percent,omitempty"`
	cpuStart     cpuTimes
	Settings     benchSettings `json:"settings"`
	Paths        []*pathResult `json:"paths"` // direct, baseline, gateway[, gateway+redis]
	Ratios       benchRatios   `json:"ratios"`
	Floors       benchFloors   `json:"floors"`
	Redis        *redisReport  `json:"redis,omitempty"` // gateway+redis's traffic to Redis
	// Tracing is what the OTLP receiver of gateway+tracing got; nil without --tracing.
	Tracing *tracingReport `json:"tracing,omitempty"`
	// SlowStreams is the slow-streams scenario's outcome; nil when it did not run.
	SlowStreams *slowStreamsReport `json:"slow_streams,omitempty"`
	// Ledger is the ledger scenario's outcome (charged records into PostgreSQL); nil without
	// --ledger.
	Ledger *ledgerReport `json:"ledger,omitempty"`
	// Targets are the performance targets this run has a figure for, each met or missed.
	Targets []perfTarget `json:"targets,omitempty"`
}

// Rows of the report, in Paths.
const (
	pathDirect = iota
	pathBaseline
	pathGateway
	pathGatewayRedis // present when Redis ran (found by name: see index)
)

// Names of the optional paths.
const (
	nameGatewayRedis   = "gateway+redis"
	nameGatewayTracing = "gateway+tracing"
	// nameGatewayAccessLogOff is the gateway with its access log off, against which the
	// gateway's (access log at its default) is set.
	nameGatewayAccessLogOff = "gateway-accesslog-off"
)

// index is the row of the named path, -1 when it did not run.
func (r *benchReport) index(name string) int {
	for i, p := range r.Paths {
		if p.Name == name {
			return i
		}
	}
	return -1
}

func newBenchReport(o Options, targets []*benchTarget) *benchReport {
	r := &benchReport{
		Date:      time.Now().UTC().Truncate(time.Second),
		GoVersion: runtime.Version(),
		CPUs:      runtime.NumCPU(),
		LoadStart: machineLoad(),
		cpuStart:  readCPUTimes(),
		Settings: benchSettings{Concurrency: o.Concurrency, Duration: o.Duration.String(),
			LatencyRequests: o.LatencyRequests, Chunks: o.Chunks, Rounds: o.Rounds, StreamRPS: o.StreamRPS,
			Quota: "disabled"},
	}
	if o.StreamRPS && o.ResponsesDuration > 0 {
		r.Settings.ResponsesDuration = o.ResponsesDuration.String()
	}
	if o.StreamRPS && o.MessagesDuration > 0 {
		r.Settings.MessagesDuration = o.MessagesDuration.String()
	}
	for _, t := range targets {
		r.Paths = append(r.Paths, &pathResult{Name: t.name})
	}
	return r
}

// summarize takes the medians of the rounds and of the per-round comparisons.
func (r *benchReport) summarize() {
	r.LoadEnd = machineLoad()
	if p, ok := r.cpuStart.stealPercent(readCPUTimes()); ok {
		r.StealPercent = &p
	}
	for _, p := range r.Paths {
		p.Median = pathRound{
			RPS:       medianOf(roundValues(p.Rounds, func(x pathRound) float64 { return x.RPS })),
			P50:       medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.P50 })),
			P99:       medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.P99 })),
			TTFTP50:   medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.TTFTP50 })),
			TTFTP99:   medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.TTFTP99 })),
			StreamP50: medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.StreamP50 })),
			StreamRPS: medianOf(roundValues(p.Rounds, func(x pathRound) float64 { return x.StreamRPS })),

			CPUPerRequest: medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.CPUPerRequest })),
			CPUPerStream:  medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.CPUPerStream })),

			ResponsesRPS:    medianOf(roundValues(p.Rounds, func(x pathRound) float64 { return x.ResponsesRPS })),
			CPUPerResponses: medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.CPUPerResponses })),

			MessagesRPS:    medianOf(roundValues(p.Rounds, func(x pathRound) float64 { return x.MessagesRPS })),
			CPUPerMessages: medianOf(roundValues(p.Rounds, func(x pathRound) benchDuration { return x.CPUPerMessages })),
		}
	}
	// ratio and added are the medians over the rounds of path a's value against path b's.
	ratio := func(a, b int, f func(pathRound) float64) float64 {
		xs := make([]float64, len(r.Paths[a].Rounds))
		for i, x := range r.Paths[a].Rounds {
			xs[i] = safeRatio(f(x), f(r.Paths[b].Rounds[i]))
		}
		return medianOf(xs)
	}
	added := func(a, b int, f func(pathRound) benchDuration) benchDuration {
		xs := make([]benchDuration, len(r.Paths[a].Rounds))
		for i, x := range r.Paths[a].Rounds {
			xs[i] = f(x) - f(r.Paths[b].Rounds[i])
		}
		return medianOf(xs)
	}
	rps := func(x pathRound) float64 { return x.RPS }
	streamRPS := func(x pathRound) float64 { return x.StreamRPS }
	responsesRPS := func(x pathRound) float64 { return x.ResponsesRPS }
	cpu := func(x pathRound) float64 { return float64(x.CPUPerRequest) }
	p50 := func(x pathRound) benchDuration { return x.P50 }
	p99 := func(x pathRound) benchDuration { return x.P99 }
	ttft := func(x pathRound) benchDuration { return x.TTFTP50 }
	cpuD := func(x pathRound) benchDuration { return x.CPUPerRequest }
	r.Ratios = benchRatios{
		GatewayRPS:          ratio(pathGateway, pathDirect, rps),
		BaselineRPS:         ratio(pathBaseline, pathDirect, rps),
		GatewayStreamRPS:    ratio(pathGateway, pathDirect, streamRPS),
		BaselineStreamRPS:   ratio(pathBaseline, pathDirect, streamRPS),
		GatewayAddedP50:     added(pathGateway, pathDirect, p50),
		BaselineAddedP50:    added(pathBaseline, pathDirect, p50),
		GatewayOverBaseline: added(pathGateway, pathBaseline, p50),
		GatewayAddedTTFT:    added(pathGateway, pathDirect, ttft),
		BaselineAddedTTFT:   added(pathBaseline, pathDirect, ttft),
		GatewayCPUOverBase:  added(pathGateway, pathBaseline, cpuD),
		GatewayCPURatio:     ratio(pathGateway, pathBaseline, cpu),
	}
	if r.index(nameGatewayRedis) == pathGatewayRedis {
		r.Ratios.Redis = &redisRatios{
			RPS:             ratio(pathGatewayRedis, pathDirect, rps),
			StreamRPS:       ratio(pathGatewayRedis, pathDirect, streamRPS),
			AddedP50:        added(pathGatewayRedis, pathDirect, p50),
			AddedP99:        added(pathGatewayRedis, pathDirect, p99),
			OverGatewayP50:  added(pathGatewayRedis, pathGateway, p50),
			OverGatewayP99:  added(pathGatewayRedis, pathGateway, p99),
			AddedTTFT:       added(pathGatewayRedis, pathDirect, ttft),
			OverGatewayTTFT: added(pathGatewayRedis, pathGateway, ttft),
			CPUOverGateway:  added(pathGatewayRedis, pathGateway, cpuD),
			CPURatio:        ratio(pathGatewayRedis, pathGateway, cpu),
		}
	}
	r.Floors = benchFloors{
		RPSRatioMin:          floorRPSRatio,
		RPSRatioMet:          r.Ratios.GatewayRPS >= floorRPSRatio,
		AddedOverBaselineMax: benchDuration(floorAddedVsBaseline),
		AddedOverBaselineMet: r.Ratios.GatewayOverBaseline <= benchDuration(floorAddedVsBaseline),
	}
	if t := r.index(nameGatewayTracing); t >= 0 {
		c := r.compare(t, pathGateway)
		r.Ratios.Tracing = &tracingRatios{
			RPS:             ratio(t, pathDirect, rps),
			StreamRPS:       ratio(t, pathDirect, streamRPS),
			VsGateway:       c.cost,
			StreamVsGateway: c.streamCost,
			OverGatewayP50:  c.overP50,
			OverGatewayTTFT: c.overTTFT,
			CPUOverGateway:  c.cpuOver,
			CPURatio:        c.cpuRatio,
		}
		r.Floors.Tracing = &tracingFloor{MaxBelowGateway: floorTracingBelowGateway, Met: c.within(floorTracingBelowGateway)}
	}
	if off := r.index(nameGatewayAccessLogOff); off >= 0 {
		c := r.compare(pathGateway, off)
		r.Ratios.AccessLog = &accessLogRatios{
			OffRPS:           ratio(off, pathDirect, rps),
			OffStreamRPS:     ratio(off, pathDirect, streamRPS),
			Cost:             c.cost,
			StreamCost:       c.streamCost,
			CostRounds:       c.costRounds,
			StreamCostRounds: c.streamCostRounds,
			AddedP50:         c.overP50,
			AddedTTFT:        c.overTTFT,
			CPUAdded:         c.cpuOver,
			CPURatio:         c.cpuRatio,
		}
		r.Floors.AccessLog = &accessLogFloor{MaxBelowOff: floorAccessLogBelowOff, Met: c.within(floorAccessLogBelowOff)}
	}
	if r.Settings.ResponsesDuration != "" {
		// Per round, the Responses ratio against the chat stream ratio of that round.
		xs := make([]float64, len(r.Paths[pathGateway].Rounds))
		for i, g := range r.Paths[pathGateway].Rounds {
			d := r.Paths[pathDirect].Rounds[i]
			xs[i] = safeRatio(g.ResponsesRPS, d.ResponsesRPS) - safeRatio(g.StreamRPS, d.StreamRPS)
		}
		q := &responsesRatios{RPS: ratio(pathGateway, pathDirect, responsesRPS), VsChat: medianOf(xs),
			CPUPerStream: r.Paths[pathGateway].Median.CPUPerResponses}
		r.Ratios.Responses = q
		r.Floors.Responses = &responsesFloor{MaxBelowChat: floorResponsesBelowChat, Met: q.VsChat >= -floorResponsesBelowChat}
	}
	if r.Settings.MessagesDuration != "" {
		xs := make([]float64, len(r.Paths[pathGateway].Rounds))
		for i, g := range r.Paths[pathGateway].Rounds {
			d := r.Paths[pathDirect].Rounds[i]
			xs[i] = safeRatio(g.MessagesRPS, d.MessagesRPS) - safeRatio(g.StreamRPS, d.StreamRPS)
		}
		q := &responsesRatios{RPS: ratio(pathGateway, pathDirect, func(x pathRound) float64 { return x.MessagesRPS }), VsChat: medianOf(xs),
			CPUPerStream: r.Paths[pathGateway].Median.CPUPerMessages}
		r.Ratios.Messages = q
		r.Floors.Messages = &responsesFloor{MaxBelowChat: floorMessagesBelowChat, Met: q.VsChat >= -floorMessagesBelowChat}
	}
}

// gatewayCost sets one gateway configuration (path a) against another (path b) of the same
// rounds: what a feature on in a and off in b costs.
type gatewayCost struct {
	// costRounds are, per round, a's RPS ratio to direct less b's; cost is their median. The
	// stream ones are the same for stream RPS (nil and 0 when streams were not measured).
	costRounds, streamCostRounds []float64
	cost, streamCost             float64
	// overP50, overTTFT and cpuOver are the medians of a's value less b's per round; cpuRatio of
	// a's CPU per request over b's.
	overP50, overTTFT, cpuOver benchDuration
	cpuRatio                   float64
}

// compare is a's gatewayCost against b; both rows must hold every round.
func (r *benchReport) compare(a, b int) gatewayCost {
	perRound := func(f func(pathRound) float64) []float64 {
		xs := make([]float64, len(r.Paths[a].Rounds))
		for i, x := range r.Paths[a].Rounds {
			d := f(r.Paths[pathDirect].Rounds[i])
			xs[i] = safeRatio(f(x), d) - safeRatio(f(r.Paths[b].Rounds[i]), d)
		}
		return xs
	}
	added := func(f func(pathRound) benchDuration) benchDuration {
		xs := make([]benchDuration, len(r.Paths[a].Rounds))
		for i, x := range r.Paths[a].Rounds {
			xs[i] = f(x) - f(r.Paths[b].Rounds[i])
		}
		return medianOf(xs)
	}
	c := gatewayCost{
		costRounds: perRound(func(x pathRound) float64 { return x.RPS }),
		overP50:    added(func(x pathRound) benchDuration { return x.P50 }),
		overTTFT:   added(func(x pathRound) benchDuration { return x.TTFTP50 }),
		cpuOver:    added(func(x pathRound) benchDuration { return x.CPUPerRequest }),
	}
	c.cost = medianOf(c.costRounds)
	cpu := make([]float64, len(r.Paths[a].Rounds))
	for i, x := range r.Paths[a].Rounds {
		cpu[i] = safeRatio(float64(x.CPUPerRequest), float64(r.Paths[b].Rounds[i].CPUPerRequest))
	}
	c.cpuRatio = medianOf(cpu)
	if r.Settings.StreamRPS {
		c.streamCostRounds = perRound(func(x pathRound) float64 { return x.StreamRPS })
		c.streamCost = medianOf(c.streamCostRounds)
	}
	return c
}

// within reports whether the cost's medians (non-stream, and stream when measured) are at most
// floor below zero.
func (c gatewayCost) within(floor float64) bool {
	return c.cost >= -floor && (c.streamCostRounds == nil || c.streamCost >= -floor)
}

// path returns the row of the named path.
func (r *benchReport) path(name string) *pathResult {
	for _, p := range r.Paths {
		if p.Name == name {
			return p
		}
	}
	panic("bench: no path " + name)
}

// describeRedis notes in the settings how the gateway+redis path ran, or why it was skipped.
func (r *benchReport) describeRedis(rs *benchRedis, skipped string) {
	if rs == nil {
		r.Settings.RedisQuota = "skipped: " + skipped
		return
	}
	r.Settings.RedisQuota = fmt.Sprintf("the same with quota on, limiter in redis-server %s (own process, loopback); tier %s: %s, set but never reached; permit leases on (quota.permit_leases)",
		rs.version, benchTier, benchTierText())
}

func safeRatio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func roundValues[T any](rounds []pathRound, f func(pathRound) T) []T {
	out := make([]T, len(rounds))
	for i, x := range rounds {
		out[i] = f(x)
	}
	return out
}

// medianOf returns the median of xs (the mean of the middle two for an even count; zero for none).
func medianOf[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// errorCount is the number of failed requests over all paths, warm-ups included.
func (r *benchReport) errorCount() int {
	n := 0
	if r.SlowStreams != nil {
		n = r.SlowStreams.ErrorsN
	}
	for _, p := range r.Paths {
		n += p.Errors.N
	}
	return n
}

func (r *benchReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *benchReport) writeText(w io.Writer) error {
	s := r.Settings
	fmt.Fprintf(w, "llmgate bench — %s, %d CPUs shared by client, mockllm and proxies, %s\n",
		r.Date.Format(time.RFC3339), r.CPUs, r.GoVersion)
	fmt.Fprintf(w, "settings: concurrency %d, %s per RPS run, %d requests per c=1 run, %d-chunk streams, median of %d rounds\n",
		s.Concurrency, s.Duration, s.LatencyRequests, s.Chunks, s.Rounds)
	if s.ResponsesDuration != "" {
		fmt.Fprintf(w, "settings: Responses streams %s per RPS run, direct and gateway only (POST /v1/responses, passthrough to the openai-type deployment)\n",
			s.ResponsesDuration)
	}
	if s.MessagesDuration != "" {
		fmt.Fprintf(w, "settings: Messages streams %s per RPS run, direct and gateway only (POST /v1/messages, passthrough to the anthropic-type deployment)\n",
			s.MessagesDuration)
	}
	fmt.Fprintln(w, "gateway: auth and usage recording on (SQLite); quota disabled, so the limiter does not throttle the load")
	fmt.Fprintln(w, "gateway+redis:", s.RedisQuota)
	if r.Ratios.Tracing != nil {
		fmt.Fprintln(w, "gateway+tracing: the gateway with tracing on for every request (sampler always_on), exporting over OTLP/HTTP to a receiver in the bench process (loopback)")
	}
	if r.LoadStart != "" {
		fmt.Fprintf(w, "machine load average (1/5/15 min): %s at start, %s at end\n", r.LoadStart, r.LoadEnd)
	}
	if r.StealPercent != nil {
		fmt.Fprintf(w, "CPU steal during the run: %.1f %% of the machine's CPU time went to other guests of its host (from /proc/stat); every path ran that much short\n",
			*r.StealPercent)
	}
	fmt.Fprintln(w)

	c := strconv.Itoa(s.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	respCol := ""
	if s.ResponsesDuration != "" {
		respCol = "Responses stream RPS c=" + c + "\t"
	}
	if s.MessagesDuration != "" {
		respCol += "Messages stream RPS c=" + c + "\t"
	}
	fmt.Fprintf(tw, "path\tRPS c=%s\tp50 c=1\tp99 c=1\tstream TTFT p50\tstream TTFT p99\tstream total p50\tstream RPS c=%s\t%sproxy CPU/req\tproxy CPU/stream\terrors\t\n", c, c, respCol)
	for _, p := range r.Paths {
		m := p.Median
		streamRPS := "-"
		if s.StreamRPS {
			streamRPS = fmt.Sprintf("%.0f", m.StreamRPS)
		}
		respRPS := ""
		if s.ResponsesDuration != "" {
			respRPS = "-\t"
			if m.ResponsesRPS > 0 {
				respRPS = fmt.Sprintf("%.0f\t", m.ResponsesRPS)
			}
		}
		if s.MessagesDuration != "" {
			if m.MessagesRPS > 0 {
				respRPS += fmt.Sprintf("%.0f\t", m.MessagesRPS)
			} else {
				respRPS += "-\t"
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\t%s\t%d\t\n", p.Name, m.RPS, m.P50, m.P99, m.TTFTP50, m.TTFTP99,
			m.StreamP50, streamRPS, respRPS, m.CPUPerRequest.orDash(), m.CPUPerStream.orDash(), p.Errors.N)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	q, f := r.Ratios, r.Floors
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "gateway/direct RPS ratio\t%.2f\t(floor ≥ %.2f: %s)\n", q.GatewayRPS, f.RPSRatioMin, metOrMissed(f.RPSRatioMet))
	fmt.Fprintf(tw, "baseline/direct RPS ratio\t%.2f\n", q.BaselineRPS)
	fmt.Fprintf(tw, "gateway added p50 at c=1 vs direct\t%s\t(baseline adds %s)\n", q.GatewayAddedP50.signed(), q.BaselineAddedP50.signed())
	fmt.Fprintf(tw, "gateway added p50 vs baseline\t%s\t(floor ≤ %s: %s)\n", q.GatewayOverBaseline.signed(),
		f.AddedOverBaselineMax, metOrMissed(f.AddedOverBaselineMet))
	fmt.Fprintf(tw, "added stream TTFT p50 vs direct\t%s\t(baseline adds %s)\n", q.GatewayAddedTTFT.signed(), q.BaselineAddedTTFT.signed())
	if q.GatewayCPURatio > 0 {
		fmt.Fprintf(tw, "gateway CPU per request vs baseline\t%s\t(×%.2f)\n", q.GatewayCPUOverBase.signed(), q.GatewayCPURatio)
	}
	if s.StreamRPS {
		fmt.Fprintf(tw, "gateway/direct stream RPS ratio\t%.2f\t(baseline/direct %.2f)\n", q.GatewayStreamRPS, q.BaselineStreamRPS)
	}
	if rq := q.Responses; rq != nil {
		fmt.Fprintf(tw, "gateway/direct Responses stream RPS ratio\t%.2f\t(chat stream %.2f, %+.2f per round; floor ≥ chat stream ratio − %.2f: %s)\n",
			rq.RPS, q.GatewayStreamRPS, rq.VsChat, f.Responses.MaxBelowChat, metOrMissed(f.Responses.Met))
		if rq.CPUPerStream > 0 {
			fmt.Fprintf(tw, "gateway CPU per Responses stream\t%s\t(per chat stream %s)\n", rq.CPUPerStream, r.Paths[pathGateway].Median.CPUPerStream.orDash())
		}
	}
	if mq := q.Messages; mq != nil {
		fmt.Fprintf(tw, "gateway/direct Messages stream RPS ratio\t%.2f\t(chat stream %.2f, %+.2f per round; floor ≥ chat stream ratio − %.2f: %s)\n",
			mq.RPS, q.GatewayStreamRPS, mq.VsChat, f.Messages.MaxBelowChat, metOrMissed(f.Messages.Met))
		if mq.CPUPerStream > 0 {
			fmt.Fprintf(tw, "gateway CPU per Messages stream\t%s\t(per chat stream %s)\n", mq.CPUPerStream, r.Paths[pathGateway].Median.CPUPerStream.orDash())
		}
	}
	r.writeRedisLines(tw)
	r.writeTracingLines(tw)
	r.writeAccessLogLines(tw)
	if r.SlowStreams != nil {
		r.SlowStreams.writeText(tw)
	}
	r.writeLedgerLines(tw)
	for _, p := range r.Paths {
		if u := p.Usage; u != nil && u.Error != "" {
			fmt.Fprintf(tw, "%s usage records\tunknown\t(%s)\n", p.Name, u.Error)
		} else if u != nil {
			of := ""
			if u.Responses > 0 {
				of = fmt.Sprintf(", %d of them Responses streams", u.Responses)
			}
			if u.Messages > 0 {
				of += fmt.Sprintf(", %d Messages streams", u.Messages)
			}
			fmt.Fprintf(tw, "%s usage records\t%d written, %d dropped\t(%d requests sent to it%s)\n", p.Name, u.Written, u.Dropped, u.Sent, of)
			fmt.Fprintf(tw, "%s access-log lines\t%d written, %d dropped\t(in its stderr, a file)\n", p.Name, u.AccessLogLines, u.AccessLogDropped)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeTargets(w, r.Targets); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nRatios and added latencies are medians of per-round values; each round runs the paths back to back.")
	fmt.Fprintln(w, "proxy CPU: CPU time of the bench-proxy or gateway process per request in the RPS runs, usage writes included.")
	r.writeRedisCommands(w)
	if n := r.errorCount(); n > 0 {
		fmt.Fprintf(w, "\nERRORS: %d requests failed (warm-ups included):\n", n)
		for _, p := range r.Paths {
			if p.Errors.N > 0 {
				fmt.Fprintf(w, "  %s: %d, first: %s\n", p.Name, p.Errors.N, p.Errors.First)
			}
		}
	}
	return nil
}

// writeRedisLines adds the gateway+redis comparisons and its Redis traffic to the summary.
func (r *benchReport) writeRedisLines(tw io.Writer) {
	q := r.Ratios.Redis
	if q == nil {
		return
	}
	fmt.Fprintf(tw, "gateway+redis/direct RPS ratio\t%.2f\t(gateway %.2f; no floor of its own)\n", q.RPS, r.Ratios.GatewayRPS)
	fmt.Fprintf(tw, "gateway+redis added p50 at c=1 vs direct\t%s\t(p99 %s)\n", q.AddedP50.signed(), q.AddedP99.signed())
	fmt.Fprintf(tw, "gateway+redis added p50 vs gateway\t%s\t(p99 %s)\n", q.OverGatewayP50.signed(), q.OverGatewayP99.signed())
	fmt.Fprintf(tw, "gateway+redis added stream TTFT p50\t%s\t(vs direct; %s vs gateway)\n", q.AddedTTFT.signed(), q.OverGatewayTTFT.signed())
	if q.CPURatio > 0 {
		fmt.Fprintf(tw, "gateway+redis CPU per request vs gateway\t%s\t(×%.2f)\n", q.CPUOverGateway.signed(), q.CPURatio)
	}
	if r.Settings.StreamRPS {
		fmt.Fprintf(tw, "gateway+redis/direct stream RPS ratio\t%.2f\t(gateway/direct %.2f)\n", q.StreamRPS, r.Ratios.GatewayStreamRPS)
	}
	d := r.Redis
	fmt.Fprintf(tw, "redis round trips per request\t%.2f\t(by Redis's count of script calls; the gateway called its limiter for admission %.2f + settlement %.2f, permit leases answering most without Redis; target ≤ %.2f: %s)\n",
		d.RoundTrips, d.Admissions, d.Settlements, maxRoundTripsPerRequest, metOrMissed(d.RoundTrips <= maxRoundTripsPerRequest))
	if d.CPUPerRequest > 0 {
		fmt.Fprintf(tw, "redis-server CPU per request\t%s\t(per stream %s; RPS runs; target ≤ %s: %s)\n", d.CPUPerRequest, d.CPUPerStream.orDash(),
			benchDuration(maxRedisCPUPerRequest), metOrMissed(d.CPUPerRequest <= benchDuration(maxRedisCPUPerRequest)))
	}
	if d.SubjectBytes1k > 0 {
		// Bounded means the state does not grow with the rate: 10× the rate within 1.5× the bytes.
		fmt.Fprintf(tw, "redis bytes per subject at 1k / 10k requests/min\t%d / %d\t(target bounded, 10k ≤ 1.5 × 1k: %s)\n",
			d.SubjectBytes1k, d.SubjectBytes10k, metOrMissed(float64(d.SubjectBytes10k) <= 1.5*float64(d.SubjectBytes1k)))
	}
	if d.Fallbacks > 0 {
		fmt.Fprintf(tw, "admissions decided without Redis\t%d\t(Redis failed or missed the limiter's deadline: counted as errors)\n", d.Fallbacks)
	}
}

// writeTracingLines adds the gateway+tracing comparisons and what its OTLP receiver got.
func (r *benchReport) writeTracingLines(tw io.Writer) {
	q, f := r.Ratios.Tracing, r.Floors.Tracing
	if q == nil {
		return
	}
	fmt.Fprintf(tw, "gateway+tracing/direct RPS ratio\t%.2f\t(gateway %.2f, %+.2f per round; target ≥ gateway's − %.2f: %s)\n",
		q.RPS, r.Ratios.GatewayRPS, q.VsGateway, f.MaxBelowGateway, metOrMissed(f.Met))
	if r.Settings.StreamRPS {
		fmt.Fprintf(tw, "gateway+tracing/direct stream RPS ratio\t%.2f\t(gateway %.2f, %+.2f per round)\n",
			q.StreamRPS, r.Ratios.GatewayStreamRPS, q.StreamVsGateway)
	}
	fmt.Fprintf(tw, "gateway+tracing added p50 vs gateway\t%s\t(stream TTFT p50 %s)\n", q.OverGatewayP50.signed(), q.OverGatewayTTFT.signed())
	if q.CPURatio > 0 {
		fmt.Fprintf(tw, "gateway+tracing CPU per request vs gateway\t%s\t(×%.2f)\n", q.CPUOverGateway.signed(), q.CPURatio)
	}
	if t := r.Tracing; t != nil {
		fmt.Fprintf(tw, "spans received over OTLP\t%d\t(%.2f per request sent, in %d exports; %d undecodable)\n",
			t.Spans, t.SpansPerRequest, t.Exports, t.Failed)
	}
}

// writeAccessLogLines adds the access log's cost: the gateway against gateway-accesslog-off.
func (r *benchReport) writeAccessLogLines(tw io.Writer) {
	q, f := r.Ratios.AccessLog, r.Floors.AccessLog
	if q == nil {
		return
	}
	fmt.Fprintf(tw, "access log cost, gateway/direct RPS ratio\t%+.2f\t(gateway %.2f − access log off %.2f; per round %s; floor ≥ −%.2f: %s)\n",
		q.Cost, r.Ratios.GatewayRPS, q.OffRPS, signedList(q.CostRounds), f.MaxBelowOff, metOrMissed(f.Met))
	if r.Settings.StreamRPS {
		fmt.Fprintf(tw, "access log cost, gateway/direct stream RPS ratio\t%+.2f\t(gateway %.2f − access log off %.2f; per round %s)\n",
			q.StreamCost, r.Ratios.GatewayStreamRPS, q.OffStreamRPS, signedList(q.StreamCostRounds))
	}
	fmt.Fprintf(tw, "access log added p50 (gateway vs log off)\t%s\t(stream TTFT p50 %s)\n", q.AddedP50.signed(), q.AddedTTFT.signed())
	if q.CPURatio > 0 {
		fmt.Fprintf(tw, "access log CPU per request (gateway vs log off)\t%s\t(×%.2f)\n", q.CPUAdded.signed(), q.CPURatio)
	}
}

// signedList shows per-round differences with their signs and two decimals.
func signedList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
		if parts[i] == "-0.00" {
			parts[i] = "0.00" // a difference of a rounding error has no sign
		}
		if parts[i][0] != '-' {
			parts[i] = "+" + parts[i]
		}
	}
	return strings.Join(parts, " ")
}

// writeRedisCommands lists gateway+redis's Redis commands, too long for the aligned summary.
func (r *benchReport) writeRedisCommands(w io.Writer) {
	d := r.Redis
	if d == nil {
		return
	}
	fmt.Fprintf(w, "\nRedis commands of gateway+redis (INFO commandstats before and after each of its measurements, %d requests):\n", d.Requests)
	fmt.Fprintf(w, "  per request, round trips:     %s (Redis read events per request: %.2f)\n", formatRates(d.Commands, ""), d.ReadEvents)
	fmt.Fprintf(w, "  per request, inside scripts:  %s\n", formatRates(d.InsideScripts, ""))
	fmt.Fprintln(w, "    (commandstats counts the commands a Lua script calls too; they add no round trip)")
	bg := formatRates(d.Background, "/s") + " (policy watcher: version poll, pub/sub health check)"
	if len(d.Setup) > 0 {
		var setup []string
		for _, name := range slices.Sorted(maps.Keys(d.Setup)) {
			setup = append(setup, name+" "+strconv.FormatInt(d.Setup[name], 10))
		}
		bg += "; on new pool connections: " + strings.Join(setup, ", ")
	}
	fmt.Fprintf(w, "  background, not per request:  %s\n", bg)
}

// formatRates lists a command → value map, largest first, with two decimals and then unit ("-"
// when empty).
func formatRates(m map[string]float64, unit string) string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		v := strconv.FormatFloat(m[n], 'f', 2, 64)
		if m[n] > 0 && m[n] < 0.005 {
			v = "<0.01"
		}
		parts[i] = n + " " + v + unit
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// cpuTimes is the machine's CPU time so far, all CPUs together, in clock ticks: the total of the
// first eight fields of /proc/stat's "cpu" line (user to steal) and steal, the time the
// hypervisor ran another guest while this one had work. Zero where /proc/stat cannot be read.
type cpuTimes struct {
	total, steal uint64
}

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	return parseCPUTimes(string(b))
}

// parseCPUTimes reads the aggregate "cpu" line of /proc/stat's text.
func parseCPUTimes(stat string) cpuTimes {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTimes{}
		}
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t
}

// stealPercent is the share of the CPU time from t to end that was stolen; false when either
// reading is missing or no time passed.
func (t cpuTimes) stealPercent(end cpuTimes) (float64, bool) {
	if t.total == 0 || end.total <= t.total || end.steal < t.steal {
		return 0, false
	}
	return 100 * float64(end.steal-t.steal) / float64(end.total-t.total), true
}

// machineLoad returns the first three fields of /proc/loadavg, or "" where there is none.
func machineLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
