package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const benchUsage = `Usage: llmgate bench [flags]

Measures three paths against one mockllm process, in one run on this machine:
  direct    client → mockllm
  baseline  client → a minimal net/http pass-through proxy (llmgate bench-proxy) → mockllm
  gateway   client → llmgate serve (auth and usage recording on, SQLite; quota off) → mockllm
Paths alternate within each round and the median of the rounds is reported, since the client,
the upstream and the proxy share the CPUs.

It prints one row per path (RPS at --concurrency, p50/p99 at concurrency 1, time to the first
content event of a stream, the proxy's CPU time per request) and the comparisons DESIGN.md sets
floors for. Every answer is checked; a run in which any request failed exits with status 1.

Flags:
`

// benchOptions are the flags of `llmgate bench`.
type benchOptions struct {
	mockllm         string
	concurrency     int
	duration        time.Duration
	latencyRequests int
	chunks          int
	rounds          int
	streamRPS       bool
	json            bool
}

// warmupRequests are sent before every measurement, in its shape, so that connection pools,
// caches and the gateway's key cache are warm when the clock starts.
const warmupRequests = 300

// Floors the gateway is held to (DESIGN.md, "Performance baselines on this machine").
const (
	floorRPSRatio        = 0.30
	floorAddedVsBaseline = 60 * time.Microsecond
)

// benchCmd is `llmgate bench`: it starts mockllm, the pass-through and the gateway as child
// processes, measures the three paths, prints the report on stdout (progress on stderr) and stops
// the children. It fails, after printing, when any request failed.
func benchCmd(args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	mockPath, err := findMockllm(o.mockllm, self)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The load generator shares the CPUs with what it measures: collect garbage less often.
	debug.SetGCPercent(400)

	env, err := startBenchEnv(ctx, self, mockPath, o)
	defer env.close()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := env.watch(ctx)
	defer cancel()
	fmt.Fprintln(stderr, "bench: gateway quota is disabled (quota.enabled: false) so the limiter does not throttle the load; auth and usage recording are on (SQLite in "+env.dir+")")

	rep, err := runRounds(ctx, env, o, stderr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	rep.Usage = env.usage(ctx, 10*time.Second)
	if logged := env.gateway.out.String(); logged != "" {
		fmt.Fprintf(stderr, "bench: the gateway logged (warn and above), last lines:\n%s\n", logged)
	}
	if o.json {
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

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.mockllm, "mockllm", "", "mockllm binary (default: mockllm next to this executable, else in PATH)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "requests in flight during the RPS runs")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each RPS run")
	fs.IntVar(&o.latencyRequests, "latency-requests", 2000, "requests per latency run at concurrency 1 (non-stream and stream)")
	fs.IntVar(&o.chunks, "chunks", 20, "content chunks per streamed answer")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each measures every path, and the median is reported")
	fs.BoolVar(&o.streamRPS, "stream-rps", true, "also measure streaming RPS at --concurrency")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	case o.concurrency < 1 || o.concurrency > 10_000:
		return o, errors.New("bench: --concurrency must be between 1 and 10000")
	case o.duration <= 0:
		return o, errors.New("bench: --duration must be positive")
	case o.latencyRequests < 1:
		return o, errors.New("bench: --latency-requests must be at least 1")
	case o.chunks < 1 || o.chunks > 10_000:
		return o, errors.New("bench: --chunks must be between 1 and 10000")
	case o.rounds < 1:
		return o, errors.New("bench: --rounds must be at least 1")
	}
	return o, nil
}

// benchEnv is the running set-up: mockllm, the pass-through and the gateway, each a child
// process, and a client target for each path.
type benchEnv struct {
	dir      string
	children []*benchChild
	gateway  *benchChild
	adminURL string
	targets  []*benchTarget // direct, baseline, gateway: the report's row order
}

// startBenchEnv starts the three processes. On error the caller still closes the env, which stops
// whatever did start.
func startBenchEnv(ctx context.Context, self, mockPath string, o benchOptions) (*benchEnv, error) {
	e := &benchEnv{}
	var err error
	if e.dir, err = os.MkdirTemp("", "llmgate-bench-"); err != nil {
		return e, err
	}
	env := benchChildEnv()
	mock, mockURL, err := startBenchChild(ctx, "mockllm", mockPath,
		[]string{"--listen", "127.0.0.1:0", "--chunks", strconv.Itoa(o.chunks)}, env, "mockllm listening on")
	if mock != nil {
		e.children = append(e.children, mock)
	}
	if err != nil {
		return e, err
	}
	proxy, proxyURL, err := startBenchChild(ctx, "bench-proxy", self,
		[]string{"bench-proxy", "--upstream", mockURL, "--listen", "127.0.0.1:0"}, env, "bench-proxy listening on")
	if proxy != nil {
		e.children = append(e.children, proxy)
	}
	if err != nil {
		return e, err
	}

	listen, err := benchFreeAddr()
	if err != nil {
		return e, err
	}
	adminListen, err := benchFreeAddr()
	if err != nil {
		return e, err
	}
	token := newAdminToken()
	cfgPath := filepath.Join(e.dir, "llmgate.yaml")
	cfg := benchGatewayConfig(listen, adminListen, filepath.Join(e.dir, "data"), token, mockURL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return e, err
	}
	if e.gateway, _, err = startBenchChild(ctx, "gateway", self, []string{"serve", "--config", cfgPath}, env, ""); err != nil {
		return e, err
	}
	e.children = append(e.children, e.gateway)
	gatewayURL := "http://" + listen
	e.adminURL = "http://" + adminListen
	if err := waitGatewayReady(ctx, e.gateway, gatewayURL); err != nil {
		return e, err
	}
	adm := &adminClient{base: e.adminURL, token: token}
	key, err := adm.createKey(ctx, createKeyBody{Name: "bench"})
	if err != nil {
		return e, fmt.Errorf("create a gateway key: %w", err)
	}

	for _, p := range []struct {
		name, url, key string
		proc           *benchChild
	}{
		{"direct", mockURL, "", nil}, {"baseline", proxyURL, "", proxy}, {"gateway", gatewayURL, key.Key, e.gateway},
	} {
		t, err := newBenchTarget(p.name, p.url, p.key, p.proc, o.concurrency)
		if err != nil {
			return e, err
		}
		e.targets = append(e.targets, t)
	}
	return e, nil
}

// watch returns a context that ends, with the reason as its cause, when a child exits: a run
// whose upstream or proxy died would otherwise go on counting refused connections.
func (e *benchEnv) watch(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	for _, c := range e.children {
		go func() {
			select {
			case <-c.exited:
				cancel(fmt.Errorf("%s exited during the run: %v%s", c.name, c.err, c.out.lastLines()))
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { cancel(nil) }
}

// close stops the children (all at once) and removes the temporary directory.
func (e *benchEnv) close() {
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

// usage waits (up to timeout) for the gateway's usage recorder to catch up with the requests the
// bench sent it (it flushes every 200 ms), then reports its counters. Between measurements this
// keeps the gateway's batch writes of one phase out of the next phase's numbers.
func (e *benchEnv) usage(ctx context.Context, timeout time.Duration) usageReport {
	sent := e.targets[2].sent.Load()
	u := usageReport{Sent: sent}
	deadline := time.Now().Add(timeout)
	for {
		written, dropped, err := gatewayUsageCounters(ctx, e.adminURL)
		if err != nil {
			u.Error = err.Error()
			return u
		}
		u.Written, u.Dropped = int64(written), int64(dropped)
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
}

// runRounds measures every phase on every path, round after round. Within a phase the paths run
// back to back, in an order that rotates each round, so slow drifts of a shared machine hit
// every path alike.
func runRounds(ctx context.Context, e *benchEnv, o benchOptions, progress io.Writer) (*benchReport, error) {
	c := strconv.Itoa(o.concurrency)
	phases := []benchPhase{
		{label: "non-stream c=" + c, rate: true},
		{label: "non-stream c=1"},
		{label: "stream c=1", stream: true},
	}
	if o.streamRPS {
		phases = append(phases, benchPhase{label: "stream c=" + c, stream: true, rate: true})
	}
	rep := newBenchReport(o, e.targets)
	for r := range o.rounds {
		rounds := make([]pathRound, len(e.targets))
		for _, ph := range phases {
			for i := range e.targets {
				p := (i + r) % len(e.targets)
				errs, err := e.measure(ctx, e.targets[p], ph, o, &rounds[p])
				if err != nil {
					return nil, err
				}
				rep.Paths[p].Errors.merge(errs)
				fmt.Fprintf(progress, "round %d/%d  %-8s  %-16s %s%s\n", r+1, o.rounds, e.targets[p].name, ph.label,
					rounds[p].describe(ph), errs.describe())
			}
		}
		for p := range rounds {
			rep.Paths[p].Rounds = append(rep.Paths[p].Rounds, rounds[p])
		}
	}
	rep.summarize()
	return rep, nil
}

// measure warms the path up in the phase's shape, then takes the phase's numbers into pr.
func (e *benchEnv) measure(ctx context.Context, t *benchTarget, ph benchPhase, o benchOptions, pr *pathRound) (errorTally, error) {
	conc := 1
	if ph.rate {
		conc = o.concurrency
	}
	errs, err := loadCount(ctx, t, conc, warmupRequests, o.chunks, ph.stream)
	if err != nil {
		return errs, err
	}
	e.usage(ctx, 10*time.Second) // the gateway's backlog of earlier phases is not this phase's
	if !ph.rate {
		res, err := loadLatency(ctx, t, o.latencyRequests, o.chunks, ph.stream)
		if ph.stream {
			pr.TTFTP50, pr.TTFTP99 = benchDuration(nearestRank(res.ttft, 0.50)), benchDuration(nearestRank(res.ttft, 0.99))
			pr.StreamP50 = benchDuration(nearestRank(res.total, 0.50))
		} else {
			pr.P50, pr.P99 = benchDuration(nearestRank(res.total, 0.50)), benchDuration(nearestRank(res.total, 0.99))
		}
		errs.merge(res.errs)
		return errs, err
	}
	cpu0, cpuOK := t.proc.cpuTime()
	sent0 := t.sent.Load()
	res, err := loadRate(ctx, t, o.concurrency, o.chunks, o.duration, ph.stream)
	errs.merge(res.errs)
	if err != nil {
		return errs, err
	}
	// The usage records of these requests are part of their cost: wait for them to be written.
	e.usage(ctx, 10*time.Second)
	cpu1, cpuOK1 := t.proc.cpuTime()
	var perRequest benchDuration
	if n := t.sent.Load() - sent0; cpuOK && cpuOK1 && n > 0 {
		perRequest = benchDuration((cpu1 - cpu0) / time.Duration(n))
	}
	if ph.stream {
		pr.StreamRPS, pr.CPUPerStream = res.rps, perRequest
	} else {
		pr.RPS, pr.CPUPerRequest = res.rps, perRequest
	}
	return errs, nil
}
