// Package bench is the benchmark behind `llmgate bench`: it starts mockllm, a minimal net/http
// pass-through (`llmgate bench-proxy`, ServeProxy) and `llmgate serve` (without and with the
// limiter in a redis-server of its own) as child processes, drives the same chat completions
// through each path round after round (and Responses API streams through direct and the gateway,
// whose ratio is set against the chat streams'), checks every answer, and reports RPS, latencies, time to
// the first content event, the proxies' CPU time and the Redis round trips per request beside the
// floors DESIGN.md sets. BENCHMARKS.md describes the method and the numbers.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmgate/llmgate/internal/adminclient"
)

// Options are the settings of one run; `llmgate bench` sets them from its flags.
type Options struct {
	Mockllm         string        // mockllm binary ("": next to the llmgate executable, else in PATH)
	Concurrency     int           // requests in flight during the RPS runs
	Duration        time.Duration // length of each RPS run
	LatencyRequests int           // requests per latency run at concurrency 1
	Chunks          int           // content chunks per streamed answer
	Rounds          int           // rounds; each measures every path, and the median is reported
	StreamRPS       bool          // also measure streaming RPS at Concurrency
	// ResponsesDuration is the length of each Responses API stream RPS run, on direct and gateway
	// only (0: not measured). It needs StreamRPS: its floor is relative to the chat stream ratio.
	ResponsesDuration time.Duration
	// MessagesDuration is the same for Anthropic Messages API streams (POST /v1/messages,
	// passthrough to the mock's Anthropic format), on direct and gateway only (0: not measured).
	MessagesDuration time.Duration
	JSON             bool   // print the report as JSON instead of text
	RedisServer      string // redis-server binary ("": in PATH)
	RequireRedis     bool   // fail instead of skipping gateway+redis when redis-server is missing
	// Tracing adds the gateway+tracing path: the gateway with tracing on for every request,
	// exporting over OTLP/HTTP to a receiver in the bench process.
	Tracing bool
	// AccessLogOff adds the gateway-accesslog-off path: the gateway with its access log off, so
	// that the report can show what the access log at its default costs the gateway.
	AccessLogOff bool
	// SlowStreams are the levels of the slow-streams scenario (concurrent streams of 20 events,
	// one every 500 ms, through a fresh gateway), run after the rounds; none skips it.
	SlowStreams []int
	// SlowStreamsOnly runs the slow-streams scenario alone: mockllm and its gateway, no rounds.
	SlowStreamsOnly bool
	// Ledger runs the ledger scenario after the rounds: charged records through the usage
	// recorder into a PostgreSQL the bench starts (initdb and postgres must be installed).
	Ledger bool
	// RequirePostgres fails the run instead of skipping the ledger scenario when PostgreSQL is
	// not installed.
	RequirePostgres bool
}

// warmupRequests are sent before every measurement, in its shape, so that connection pools,
// caches and the gateway's key cache are warm when the clock starts.
const warmupRequests = 300

// Floors the gateway is held to (DESIGN.md, "Performance baselines on this machine").
const (
	floorRPSRatio        = 0.30
	floorAddedVsBaseline = 60 * time.Microsecond
	// floorResponsesBelowChat is how far the gateway/direct stream RPS ratio of Responses API
	// passthrough may fall below the chat stream ratio of the same run.
	floorResponsesBelowChat = 0.05
	// floorMessagesBelowChat is the same for Messages API passthrough streams.
	floorMessagesBelowChat = 0.05
	// floorTracingBelowGateway is how far the gateway/direct RPS ratios with every request traced
	// may fall below the untraced gateway's of the same run.
	floorTracingBelowGateway = 0.03
	// floorAccessLogBelowOff is how far the gateway/direct RPS ratios with the access log at its
	// default may fall below those of the gateway with it off, in the same run.
	floorAccessLogBelowOff = 0.02
)

// Run starts mockllm, the pass-through and the gateways as child processes (self is the llmgate
// executable, which serves the pass-through and the gateways), measures the paths, prints the
// report on stdout (progress on stderr) and stops the children. It fails, after printing, when
// any request failed.
func Run(ctx context.Context, self string, o Options, stdout, stderr io.Writer) error {
	mockPath, err := findMockllm(o.Mockllm, self)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	redisPath, err := findRedisServer(o.RedisServer)
	redisSkipped := ""
	if err != nil {
		if o.RequireRedis {
			return fmt.Errorf("bench: %w", err)
		}
		redisSkipped = err.Error()
		fmt.Fprintf(stderr, "bench: skipping the gateway+redis path: %v (install redis-server, pass --redis-server PATH, or --require-redis to make this an error)\n", err)
	}

	if len(o.SlowStreams) > 0 {
		// Before any child starts: each inherits the limit it is started with, and mockllm
		// holds a descriptor per slow stream too.
		raiseFDLimit(slowStreamsFDs(o.SlowStreams))
	}
	if o.SlowStreamsOnly {
		return runSlowStreamsOnly(ctx, self, mockPath, o, stdout, stderr)
	}
	env, err := startBenchEnv(ctx, self, mockPath, redisPath, o)
	defer env.close()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := env.watch(ctx)
	defer cancel()
	fmt.Fprintf(stderr, "bench: the gateways' access log is at its default (on, a line per request, to stderr); their stderr goes to a file each in %s\n", env.dir)
	fmt.Fprintln(stderr, "bench: gateway quota is disabled (quota.enabled: false) so the limiter does not throttle the load; auth and usage recording are on (SQLite in "+env.dir+")")
	if env.redis != nil {
		fmt.Fprintf(stderr, "bench: gateway+redis has quotas on, limiter in redis-server %s at %s (tier %s: %s, set but never reached; permit leases on)\n",
			env.redis.version, env.redis.url, benchTier, benchTierText())
	}

	rep, err := runRounds(ctx, env, o, stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	rep.describeRedis(env.redis, redisSkipped)
	if len(o.SlowStreams) > 0 {
		tlsURL, caFile, err := env.startTLSMock(ctx, mockPath, benchChildEnv())
		if err != nil {
			return fmt.Errorf("bench: slow streams: %w", err)
		}
		if rep.SlowStreams, err = runSlowStreams(ctx, env, self, benchChildEnv(), env.mockURL, tlsURL, caFile, o.SlowStreams, stderr); err != nil {
			return fmt.Errorf("bench: slow streams: %w", err)
		}
	}
	if o.Ledger {
		if rep.Ledger, err = ledgerScenario(ctx, o.Rounds, o.RequirePostgres, stderr); err != nil {
			return fmt.Errorf("bench: ledger: %w", err)
		}
	}
	if env.tracingGW != nil {
		rep.Tracing = env.sink.report(env.tracingGW.target.sent.Load())
		if t := rep.Tracing; t.Failed > 0 || t.Spans == 0 {
			rep.path(env.tracingGW.target.name).Errors.merge(errorTally{N: max(int(t.Failed), 1),
				First: fmt.Sprintf("the OTLP receiver got %d spans and %d exports it could not decode", t.Spans, t.Failed)})
		}
	}
	for i, u := range env.usage(ctx, 10*time.Second) {
		g := env.gateways[i]
		logged, access := g.child.logged()
		u.AccessLogLines = access
		if m, err := gatewayMetrics(ctx, g.adminURL, metricAccessLogDropped); err == nil {
			u.AccessLogDropped = int64(m[metricAccessLogDropped])
		}
		rep.path(g.target.name).Usage = &u
		if logged != "" {
			fmt.Fprintf(stderr, "bench: %s logged (warn and above, access-log lines left out), last lines:\n%s\n", g.target.name, logged)
		}
		if !o.AccessLogOff {
			continue
		}
		// The access log's cost is only measured if the gateway wrote every line and the log-off
		// path none.
		switch g.target.name {
		case nameGatewayAccessLogOff:
			if access > 0 {
				rep.path(g.target.name).Errors.merge(errorTally{N: 1, First: fmt.Sprintf("%d access-log lines written with the access log off", access)})
			}
		case "gateway":
			if access == 0 || u.AccessLogDropped > 0 {
				rep.path(g.target.name).Errors.merge(errorTally{N: max(int(u.AccessLogDropped), 1),
					First: fmt.Sprintf("the access log wrote %d lines and dropped %d (its queue was full): its cost is not measured", access, u.AccessLogDropped)})
			}
		}
	}
	rep.Targets = rep.perfTargets()
	if o.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		return err
	}
	if n := rep.errorCount(); n > 0 {
		return fmt.Errorf("bench: %d requests failed, so the numbers above are not valid (see the errors column)", n)
	}
	return nil
}

// benchEnv is the running set-up: mockllm, the pass-through, the gateways and Redis, each a
// child process, and a client target for each path.
type benchEnv struct {
	dir      string
	mockURL  string
	children []*benchChild
	gateways []*benchGateway // gateway, then gateway+redis when Redis runs
	redisGW  *benchGateway   // the gateway+redis path; nil when it is skipped
	redis    *benchRedis     // the limiter's Redis; nil when the path is skipped
	// tracingGW is the gateway+tracing path and sink the OTLP receiver it exports to; nil
	// without --tracing.
	tracingGW *benchGateway
	sink      *otlpSink
	// targets are direct, baseline, gateway[, gateway+redis][, gateway+tracing][,
	// gateway-accesslog-off]: the report's row order.
	targets []*benchTarget
}

// benchGateway is one `llmgate serve` under test.
type benchGateway struct {
	child     *benchChild
	adminURL  string
	publicURL string
	target    *benchTarget
}

// startBenchEnv starts the processes; redisPath is empty when the gateway+redis path is skipped.
// On error the caller still closes the env, which stops whatever did start.
func startBenchEnv(ctx context.Context, self, mockPath, redisPath string, o Options) (*benchEnv, error) {
	e := &benchEnv{}
	var err error
	if e.dir, err = os.MkdirTemp("", "llmgate-bench-"); err != nil {
		return e, err
	}
	env := benchChildEnv()
	mock, mockURL, err := startBenchChild(ctx, "mockllm", mockPath,
		[]string{"--listen", "127.0.0.1:0", "--chunks", strconv.Itoa(o.Chunks)}, env, "mockllm listening on", "")
	if mock != nil {
		e.children = append(e.children, mock)
	}
	e.mockURL = mockURL
	if err != nil {
		return e, err
	}
	proxy, proxyURL, err := startBenchChild(ctx, "bench-proxy", self,
		[]string{"bench-proxy", "--upstream", mockURL, "--listen", "127.0.0.1:0"}, env, "bench-proxy listening on", "")
	if proxy != nil {
		e.children = append(e.children, proxy)
	}
	if err != nil {
		return e, err
	}
	for _, p := range []struct {
		name, url string
		proc      *benchChild
	}{{"direct", mockURL, nil}, {"baseline", proxyURL, proxy}} {
		t, err := newBenchTarget(p.name, p.url, "", p.proc, o.Concurrency)
		if err != nil {
			return e, err
		}
		if p.name == "direct" {
			if err := t.enableResponses(mockURL); err != nil {
				return e, err
			}
			if err := t.enableMessages(mockURL); err != nil {
				return e, err
			}
		}
		e.targets = append(e.targets, t)
	}
	gw, err := e.startGateway(ctx, self, env, "gateway", mockURL, "", nil, o)
	if err != nil {
		return e, err
	}
	// The gateway relays the Responses API to its openai-type deployment as it comes (passthrough).
	if err := gw.target.enableResponses(gw.publicURL); err != nil {
		return e, err
	}
	// And the Messages API to its anthropic-type deployment of the same mock (passthrough).
	if err := gw.target.enableMessages(gw.publicURL); err != nil {
		return e, err
	}
	if redisPath == "" {
		return e, e.startVariants(ctx, self, env, mockURL, o)
	}
	r, err := startBenchRedis(ctx, redisPath, e.dir, env)
	if r != nil {
		e.children = append(e.children, r.child)
		e.redis = r
	}
	if err != nil {
		return e, err
	}
	if e.redisGW, err = e.startGateway(ctx, self, env, nameGatewayRedis, mockURL, r.url, nil, o); err != nil {
		return e, err
	}
	// OpenAI's rate-limit header is set from the limiter's answer: its absence means the
	// limiter did not run.
	e.redisGW.target.requireHeader = "X-Ratelimit-Limit-Requests"
	return e, e.startVariants(ctx, self, env, mockURL, o)
}

// startVariants starts the gateways that differ from the gateway path in one feature: with
// --tracing the OTLP receiver and gateway+tracing, with --accesslog-off gateway-accesslog-off.
func (e *benchEnv) startVariants(ctx context.Context, self string, env []string, mockURL string, o Options) error {
	if o.Tracing {
		var err error
		if e.sink, err = startOTLPSink(); err != nil {
			return err
		}
		traced := func(cfg string) string { return cfg + TracingConfig(e.sink.url) }
		if e.tracingGW, err = e.startGateway(ctx, self, env, nameGatewayTracing, mockURL, "", traced, o); err != nil {
			return err
		}
	}
	if o.AccessLogOff {
		if _, err := e.startGateway(ctx, self, env, nameGatewayAccessLogOff, mockURL, "", AccessLogOffConfig, o); err != nil {
			return err
		}
	}
	return nil
}

// startGateway starts `llmgate serve` with its own config and data directory (quotas on with
// Redis when redisURL is set; edit, when not nil, changes the config), waits until it is ready,
// creates a key and adds the path.
func (e *benchEnv) startGateway(ctx context.Context, self string, env []string, name, mockURL, redisURL string, edit func(string) string, o Options) (*benchGateway, error) {
	g, err := e.launchGateway(ctx, self, env, name, mockURL, redisURL, edit, "bench", o.Concurrency)
	if err != nil {
		return nil, err
	}
	e.gateways = append(e.gateways, g)
	e.targets = append(e.targets, g.target)
	return g, nil
}

// launchGateway starts `llmgate serve` with its own config and data directory (GatewayConfig,
// changed by edit when it is not nil), waits until it is ready, and creates a key named keyName
// for a client target of concurrency connections. The child is stopped with the others.
func (e *benchEnv) launchGateway(ctx context.Context, self string, env []string, name, mockURL, redisURL string, edit func(string) string, keyName string, concurrency int) (*benchGateway, error) {
	listen, err := benchFreeAddr()
	if err != nil {
		return nil, err
	}
	adminListen, err := benchFreeAddr()
	if err != nil {
		return nil, err
	}
	slug := strings.ReplaceAll(name, "+", "-")
	token := adminclient.NewToken()
	cfgPath := filepath.Join(e.dir, slug+".yaml")
	cfg := GatewayConfig(listen, adminListen, filepath.Join(e.dir, slug+"-data"), token, mockURL, redisURL)
	if edit != nil {
		cfg = edit(cfg)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	g := &benchGateway{adminURL: "http://" + adminListen, publicURL: "http://" + listen}
	if g.child, _, err = startBenchChild(ctx, name, self, []string{"serve", "--config", cfgPath}, env, "",
		filepath.Join(e.dir, slug+".stderr")); err != nil {
		return nil, err
	}
	e.children = append(e.children, g.child)
	if err := waitGatewayReady(ctx, g.child, g.publicURL); err != nil {
		return nil, err
	}
	key, err := adminclient.New(g.adminURL, token).CreateKey(ctx, adminclient.CreateKeyBody{Name: keyName})
	if err != nil {
		return nil, fmt.Errorf("%s: create a key: %w", name, err)
	}
	if g.target, err = newBenchTarget(name, g.publicURL, key.Key, g.child, concurrency); err != nil {
		return nil, err
	}
	return g, nil
}

// watch returns a context that ends, with the reason as its cause, when a child exits: a run
// whose upstream or proxy died would otherwise go on counting refused connections.
func (e *benchEnv) watch(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	for _, c := range e.children {
		go func() {
			select {
			case <-c.exited:
				cancel(fmt.Errorf("%s exited during the run: %v%s", c.name, c.err, c.lastLines()))
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { cancel(nil) }
}

// close stops the children (all at once) and removes the temporary directory.
func (e *benchEnv) close() {
	if e.sink != nil {
		e.sink.close()
	}
	if e.redis != nil && e.redis.client != nil {
		_ = e.redis.client.Close()
	}
	var wg sync.WaitGroup
	for _, c := range e.children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop()
		}()
	}
	wg.Wait()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// usage waits (up to timeout) for every gateway's usage recorder to catch up with the requests
// the bench sent it (it flushes every 200 ms), then reports its counters, in e.gateways' order.
// Between measurements this keeps the gateways' batch writes of one phase out of the next
// phase's numbers; a usage record is emitted after quota settlement, so it also waits for that.
func (e *benchEnv) usage(ctx context.Context, timeout time.Duration) []usageReport {
	deadline := time.Now().Add(timeout)
	out := make([]usageReport, len(e.gateways))
	for i, g := range e.gateways {
		out[i] = g.waitUsage(ctx, deadline)
	}
	return out
}

func (g *benchGateway) waitUsage(ctx context.Context, deadline time.Time) usageReport {
	sent := g.target.sent.Load()
	u := usageReport{Sent: sent, Responses: g.target.sentResponses.Load(), Messages: g.target.sentMessages.Load()}
	for {
		m, err := gatewayMetrics(ctx, g.adminURL, metricUsageWritten, metricUsageDropped)
		if err == nil && len(m) != 2 {
			err = errors.New("GET /metrics: usage counters missing")
		}
		if err != nil {
			u.Error = err.Error()
			return u
		}
		u.Written, u.Dropped = int64(m[metricUsageWritten]), int64(m[metricUsageDropped])
		if u.Written+u.Dropped >= sent || time.Now().After(deadline) || ctx.Err() != nil {
			return u
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchPhase is one kind of measurement, taken on every path in every round.
type benchPhase struct {
	label  string
	stream bool
	rate   bool // closed loop at --concurrency for --duration; otherwise --latency-requests at c=1
	// responses makes it the Responses API stream phase: a closed loop for --responses-duration,
	// on the paths that take part in it only; messages the Messages API's, for
	// --messages-duration.
	responses, messages bool
}

// shape is the kind of request the phase sends.
func (ph benchPhase) shape() benchShape {
	if ph.responses {
		return shapeResponsesStream
	}
	if ph.messages {
		return shapeMessagesStream
	}
	return streamShape(ph.stream)
}

// paths returns the indexes of the targets the phase runs on, in round r's order: the order
// rotates each round.
func (ph benchPhase) paths(targets []*benchTarget, r int) []int {
	var in []int
	for i, t := range targets {
		if (!ph.responses || t.responses != nil) && (!ph.messages || t.messages != nil) {
			in = append(in, i)
		}
	}
	out := make([]int, len(in))
	for i := range in {
		out[i] = in[(i+r)%len(in)]
	}
	return out
}

// runRounds measures every phase on every path, round after round. Within a phase the paths run
// back to back, in an order that rotates each round, so slow drifts of a shared machine hit
// every path alike.
func runRounds(ctx context.Context, e *benchEnv, o Options, progress io.Writer) (*benchReport, error) {
	c := strconv.Itoa(o.Concurrency)
	phases := []benchPhase{
		{label: "non-stream c=" + c, rate: true},
		{label: "non-stream c=1"},
		{label: "stream c=1", stream: true},
	}
	if o.StreamRPS {
		phases = append(phases, benchPhase{label: "stream c=" + c, stream: true, rate: true})
		if o.ResponsesDuration > 0 {
			// Right after the chat streams, so that the two ratios see the same machine state.
			phases = append(phases, benchPhase{label: "responses c=" + c, stream: true, rate: true, responses: true})
		}
		if o.MessagesDuration > 0 {
			phases = append(phases, benchPhase{label: "messages c=" + c, stream: true, rate: true, messages: true})
		}
	}
	rep := newBenchReport(o, e.targets)
	var redisSeen *redisTally
	if e.redis != nil {
		redisSeen = newRedisTally()
	}
	for r := range o.Rounds {
		rounds := make([]pathRound, len(e.targets))
		for _, ph := range phases {
			for _, p := range ph.paths(e.targets, r) {
				errs, note, err := e.measure(ctx, e.targets[p], ph, o, &rounds[p], redisSeen)
				if err != nil {
					return nil, err
				}
				rep.Paths[p].Errors.merge(errs)
				fmt.Fprintf(progress, "round %d/%d  %-21s  %-16s %s%s%s\n", r+1, o.Rounds, e.targets[p].name, ph.label,
					rounds[p].describe(ph), note, errs.describe())
			}
		}
		for p := range rounds {
			rep.Paths[p].Rounds = append(rep.Paths[p].Rounds, rounds[p])
		}
	}
	rep.summarize()
	if redisSeen != nil {
		rep.Redis = redisSeen.report()
		if err := e.redis.measureSubjectBytes(ctx, rep.Redis); err != nil {
			return nil, err
		}
		if n := rep.Redis.Fallbacks; n > 0 {
			rep.path(e.redisGW.target.name).Errors.merge(errorTally{N: int(n),
				First: fmt.Sprintf("%d admissions were decided without Redis (the limiter's fallback): Redis failed or missed its deadline", n)})
		}
	}
	return rep, nil
}

// measure warms the path up in the phase's shape, then takes the phase's numbers into pr. On the
// gateway+redis path it also reads Redis's and the gateway's quota counters around the numbers
// into seen, and returns a note on them for the progress line.
func (e *benchEnv) measure(ctx context.Context, t *benchTarget, ph benchPhase, o Options, pr *pathRound, seen *redisTally) (errorTally, string, error) {
	conc := 1
	if ph.rate {
		conc = o.Concurrency
	}
	errs, err := loadCount(ctx, t, conc, warmupRequests, o.Chunks, ph.shape())
	if err != nil {
		return errs, "", err
	}
	e.usage(ctx, 10*time.Second) // the gateway's backlog of earlier phases is not this phase's
	withRedis := e.redisGW != nil && t == e.redisGW.target
	var before quotaSnapshot
	if withRedis {
		if before, err = e.quotaSnapshot(ctx); err != nil {
			return errs, "", err
		}
	}
	if err := e.take(ctx, t, ph, o, pr, &errs); err != nil {
		return errs, "", err
	}
	if !withRedis {
		return errs, "", nil
	}
	e.usage(ctx, 10*time.Second) // the last requests' settlements precede their usage records
	after, err := e.quotaSnapshot(ctx)
	if err != nil {
		return errs, "", err
	}
	return errs, seen.add(before, after, ph), nil
}

// take runs the phase's timed part on t (a warm path) into pr, adding failures to errs.
func (e *benchEnv) take(ctx context.Context, t *benchTarget, ph benchPhase, o Options, pr *pathRound, errs *errorTally) error {
	if !ph.rate {
		res, err := loadLatency(ctx, t, o.LatencyRequests, o.Chunks, ph.stream)
		if ph.stream {
			pr.TTFTP50, pr.TTFTP99 = benchDuration(nearestRank(res.ttft, 0.50)), benchDuration(nearestRank(res.ttft, 0.99))
			pr.StreamP50 = benchDuration(nearestRank(res.total, 0.50))
		} else {
			pr.P50, pr.P99 = benchDuration(nearestRank(res.total, 0.50)), benchDuration(nearestRank(res.total, 0.99))
		}
		errs.merge(res.errs)
		return err
	}
	cpu0, cpuOK := t.proc.cpuTime()
	sent0 := t.sent.Load()
	d := o.Duration
	if ph.responses {
		d = o.ResponsesDuration
	}
	if ph.messages {
		d = o.MessagesDuration
	}
	res, err := loadRate(ctx, t, o.Concurrency, o.Chunks, d, ph.shape())
	errs.merge(res.errs)
	if err != nil {
		return err
	}
	// The usage records of these requests are part of their cost: wait for them to be written.
	e.usage(ctx, 10*time.Second)
	cpu1, cpuOK1 := t.proc.cpuTime()
	var perRequest benchDuration
	if n := t.sent.Load() - sent0; cpuOK && cpuOK1 && n > 0 {
		perRequest = benchDuration((cpu1 - cpu0) / time.Duration(n))
	}
	switch {
	case ph.responses:
		pr.ResponsesRPS, pr.CPUPerResponses = res.rps, perRequest
	case ph.messages:
		pr.MessagesRPS, pr.CPUPerMessages = res.rps, perRequest
	case ph.stream:
		pr.StreamRPS, pr.CPUPerStream = res.rps, perRequest
	default:
		pr.RPS, pr.CPUPerRequest = res.rps, perRequest
	}
	return nil
}
