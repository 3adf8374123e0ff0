package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The slow-streams scenario measures what a gateway holds rather than how fast it goes: its
// resident memory at idle, its memory, goroutines and descriptors per open stream when thousands
// of clients each hold a slow stream (slowEvents content events, one every slowInterval), and the
// allocations it makes per relayed event. Memory and descriptors are read from outside, from
// /proc/PID, and goroutines and allocations from the gateway's own /metrics (the Go collector's
// go_goroutines and go_memstats_mallocs_total).
//
// It runs twice, each time on a fresh gateway: with the upstream over HTTP/1.1 (a connection, its
// two goroutines, buffers and descriptor per stream) and over TLS with HTTP/2, as production
// upstreams are (many streams share a connection). The targets are judged on the HTTP/2 run; the
// HTTP/1.1 figures are printed beside them.
const (
	slowEvents   = 20
	slowInterval = 500 * time.Millisecond
	// slowDialers bounds the streams being opened at once, so that thousands of connections do
	// not overflow the gateway's listen backlog (a dropped SYN costs a second's retransmit).
	slowDialers = 256
	// allocStreams streams of allocShortEvents and as many of allocLongEvents measure the
	// allocations per event: the difference, divided by the extra events, leaves out everything
	// a request costs once.
	allocStreams     = 200
	allocShortEvents = 10
	allocLongEvents  = 1010
	// fdsPerStream: a stream through the gateway holds the client's connection and, over
	// HTTP/1.1, the upstream's (over HTTP/2 a connection carries up to the upstream's stream
	// limit, 250 for mockllm's net/http, so the reserve covers those).
	fdsPerStream = 2
	fdsReserve   = 256 // the gateway's other descriptors: listeners, the database, logs
)

// Targets of the slow-streams scenario.
const (
	targetIdleRSSMB          = 40.0
	targetRSSPerThousandMB   = 48.0
	metricGoroutines         = "go_goroutines"
	metricStacks             = "go_memstats_stack_inuse_bytes"
	metricHeap               = "go_memstats_heap_inuse_bytes"
	metricMallocs            = "go_memstats_mallocs_total"
	slowStreamModelOverrides = `"mock":{"chunks":%d,"interval_ms":%d}`
)

// slowStreamsReport is the scenario's outcome.
type slowStreamsReport struct {
	Events     int   `json:"events_per_stream"`
	IntervalMS int64 `json:"event_interval_ms"`
	// FDLimit is the descriptors a process may open (RLIMIT_NOFILE), which caps the streams.
	FDLimit uint64 `json:"fd_limit"`
	// Runs: the upstream over HTTP/1.1, then over TLS with HTTP/2 (the one judged).
	Runs       []slowStreamsRun `json:"runs"`
	ErrorsN    int              `json:"errors"`
	FirstError string           `json:"first_error,omitempty"`
}

// slowStreamsRun is one fresh gateway in front of one upstream transport.
type slowStreamsRun struct {
	Upstream string `json:"upstream"` // "HTTP/1.1" or "HTTP/2 over TLS"
	// Judged is the run the targets are judged on: the production-like one.
	Judged     bool    `json:"judged"`
	IdleRSSMB  float64 `json:"idle_rss_mb"`
	IdleRSSMet bool    `json:"idle_rss_met"`
	IdleAnonMB float64 `json:"idle_rss_anon_mb"`
	// IdleFilePMDMB is the part of the idle RSS that is file pages mapped in 2 MB folios
	// (FilePmdMapped of /proc/PID/smaps_rollup): a whole folio of the binary counts as soon as
	// any byte of it is touched, and how much of the file the page cache holds in such folios
	// depends on how the file was written (a freshly linked binary: several MB; a copy: none).
	IdleFilePMDMB  float64          `json:"idle_file_pmd_mapped_mb"`
	IdleGoroutines float64          `json:"idle_goroutines"`
	IdleStackBytes float64          `json:"idle_stack_bytes"`
	IdleHeapBytes  float64          `json:"idle_heap_bytes"`
	IdleFDs        int              `json:"idle_descriptors"`
	Levels         []slowStreamLoad `json:"levels"`
	AllocsPerEvent float64          `json:"allocs_per_event"`
	AllocsMeasured bool             `json:"allocs_measured"`
	Capped         string           `json:"capped,omitempty"` // why a level was lowered
}

// slowStreamLoad is one level: Streams asked for, Open when measured (opened and not yet ended).
type slowStreamLoad struct {
	Streams           int     `json:"streams"`
	Open              int     `json:"open_at_measurement"`
	RSSMB             float64 `json:"rss_mb"`
	RSSPerThousandMB  float64 `json:"rss_per_1k_streams_above_idle_mb"`
	RSSPerThousandMet bool    `json:"rss_per_1k_met"`
	// AnonPerThousandMB is the anonymous part (heap and stacks) of RSSPerThousandMB: it leaves
	// out the binary's pages, whose share of the resident set varies from run to run.
	AnonPerThousandMB   float64 `json:"rss_anon_per_1k_streams_above_idle_mb"`
	GoroutinesPerStream float64 `json:"goroutines_per_stream"`
	// StackKiBPerStream and HeapKiBPerStream split the memory per stream from the gateway's
	// /metrics: its goroutines' stacks, and its heap in use (live objects and garbage not yet
	// collected), above idle.
	StackKiBPerStream float64 `json:"stack_kib_per_stream"`
	HeapKiBPerStream  float64 `json:"heap_kib_per_stream"`
	FDs               int     `json:"descriptors"`
	FDsPerStream      float64 `json:"descriptors_per_stream"`
}

// slowUpstream is the upstream of one run: mockllm's URL, and the certificate the gateway must
// trust (outbound.ca_file) when it is served over TLS.
type slowUpstream struct {
	name, url, caFile string
	tag               string // names the gateway's files
	// fds is the gateway's descriptors per stream, which caps the levels.
	fds    int
	judged bool
}

// slowStreamsFDs is the descriptor limit the largest of levels needs in the gateway (which every
// process of the bench is given: mockllm and the bench's clients hold one per stream).
func slowStreamsFDs(levels []int) uint64 {
	return uint64(max(slices.Max(append([]int{0}, levels...)), 0)*fdsPerStream + fdsReserve)
}

// startTLSMock starts a second mockllm serving HTTPS (HTTP/2 through ALPN) on a certificate it
// makes, and returns its URL and the certificate's file.
func (e *benchEnv) startTLSMock(ctx context.Context, mockPath string, env []string) (url, certPath string, err error) {
	certPath = filepath.Join(e.dir, "mockllm-tls.pem")
	mock, url, err := startBenchChild(ctx, "mockllm-tls", mockPath, []string{"--listen", "127.0.0.1:0", "--tls-cert-out", certPath},
		env, "mockllm listening on", "")
	if mock != nil {
		e.children = append(e.children, mock)
	}
	return url, certPath, err
}

// runSlowStreams measures a fresh gateway in front of mockURL (HTTP/1.1), then another in front
// of tlsURL (HTTP/2 over TLS, its certificate in caFile).
func runSlowStreams(ctx context.Context, e *benchEnv, self string, env []string, mockURL, tlsURL, caFile string, levels []int, progress io.Writer) (*slowStreamsReport, error) {
	rep := &slowStreamsReport{Events: slowEvents, IntervalMS: slowInterval.Milliseconds(), FDLimit: raiseFDLimit(slowStreamsFDs(levels))}
	var errs errorTally
	for _, up := range []slowUpstream{
		{name: "HTTP/1.1", tag: "h1", url: mockURL, fds: fdsPerStream},
		{name: "HTTP/2 over TLS", tag: "h2", url: tlsURL, caFile: caFile, fds: 1, judged: true},
	} {
		run, err := runSlowUpstream(ctx, e, self, env, up, levels, rep.FDLimit, &errs, progress)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, run)
	}
	rep.ErrorsN, rep.FirstError = errs.N, errs.First
	return rep, nil
}

// runSlowUpstream starts a fresh gateway in front of up (so that idle means never used), and
// measures it: idle, the allocations per event, then each level of concurrent slow streams. The
// gateway is stopped at the end, so that the next run has the machine to itself.
func runSlowUpstream(ctx context.Context, e *benchEnv, self string, env []string, up slowUpstream, levels []int, fdLimit uint64, errs *errorTally, progress io.Writer) (slowStreamsRun, error) {
	run := slowStreamsRun{Upstream: up.name, Judged: up.judged}
	g, err := e.startSlowGateway(ctx, self, env, up)
	if err != nil {
		return run, err
	}
	defer g.child.stop()
	pid := g.child.cmd.Process.Pid
	// Idle: ready, a key made, nothing served. Let start-up garbage be collected first.
	time.Sleep(2 * time.Second)
	idle, err := readStatus(pid, "VmRSS", "RssAnon")
	if err != nil {
		return run, err
	}
	m, err := gatewayMetrics(ctx, g.adminURL, metricGoroutines, metricStacks, metricHeap)
	if err != nil {
		return run, err
	}
	run.IdleRSSMB, run.IdleAnonMB, run.IdleGoroutines, run.IdleFDs = mb(idle["VmRSS"]), mb(idle["RssAnon"]), m[metricGoroutines], countFDs(pid)
	if rollup, err := readProcKB(pid, "smaps_rollup", "FilePmdMapped"); err == nil {
		run.IdleFilePMDMB = mb(rollup["FilePmdMapped"])
	}
	run.IdleStackBytes, run.IdleHeapBytes = m[metricStacks], m[metricHeap]
	run.IdleRSSMet = run.IdleRSSMB <= targetIdleRSSMB
	fmt.Fprintf(progress, "slow streams, upstream %s: idle gateway %.1f MB RSS, %.0f goroutines, %d descriptors\n",
		up.name, run.IdleRSSMB, run.IdleGoroutines, run.IdleFDs)

	cl := slowClient()
	defer cl.CloseIdleConnections()
	if per, ok, err := allocsPerEvent(ctx, g, cl, errs); err != nil {
		return run, err
	} else if ok {
		run.AllocsPerEvent, run.AllocsMeasured = per, true
		fmt.Fprintf(progress, "slow streams, upstream %s: %.2f allocations per relayed event\n", up.name, per)
	}
	cl.CloseIdleConnections()

	maxStreams := 0
	if fdLimit > fdsReserve {
		maxStreams = int(fdLimit-fdsReserve) / up.fds
	}
	for _, n := range levels {
		if maxStreams > 0 && n > maxStreams {
			run.Capped = fmt.Sprintf("%d streams lowered to %d: the descriptor limit is %d and a stream holds %d in the gateway",
				n, maxStreams, fdLimit, up.fds)
			n = maxStreams
		}
		lv, err := slowLevel(ctx, g, cl, n, idle, run, errs)
		if err != nil {
			return run, err
		}
		cl.CloseIdleConnections()
		run.Levels = append(run.Levels, lv)
		fmt.Fprintf(progress, "slow streams, upstream %s: %d open of %d: %.1f MB RSS, %.1f MB per 1k above idle (anonymous %.1f; stacks %.1f KiB and heap %.1f KiB a stream), %.2f goroutines and %.2f descriptors per stream\n",
			up.name, lv.Open, lv.Streams, lv.RSSMB, lv.RSSPerThousandMB, lv.AnonPerThousandMB, lv.StackKiBPerStream, lv.HeapKiBPerStream, lv.GoroutinesPerStream, lv.FDsPerStream)
	}
	return run, nil
}

// startSlowGateway starts `llmgate serve` in front of up with the gateway path's config (trusting
// up's certificate when it has one) and a key, outside the measured paths.
func (e *benchEnv) startSlowGateway(ctx context.Context, self string, env []string, up slowUpstream) (*benchGateway, error) {
	edit := func(cfg string) string {
		// No cap on the public listener's connections (8192 by default): the levels are capped
		// by the descriptor limit instead.
		cfg = AccessLogOffConfig(cfg) + "gateway:\n  max_connections: -1\n"
		if up.caFile != "" {
			cfg = TrustCAConfig(cfg, up.caFile)
		}
		return cfg
	}
	return e.launchGateway(ctx, self, env, "gateway-slow-"+up.tag, up.url, "", edit, "bench-slow", 1)
}

// slowClient is the clients' side: one connection per stream, none kept between levels.
func slowClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: slowDialers,
		DisableCompression:  true,
		ReadBufferSize:      1 << 10,
		WriteBufferSize:     1 << 10,
	}}
}

// slowBody is a streamed chat request for events content events, interval apart.
func slowBody(events int, interval time.Duration) []byte {
	return []byte(`{"model":"` + benchModel + `","stream":true,` + fmt.Sprintf(slowStreamModelOverrides, events, interval.Milliseconds()) +
		`,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}`)
}

// slowStream sends one streamed request and reads it to the end; started is called once its
// headers arrived. It checks that every content event and [DONE] came.
func slowStream(ctx context.Context, g *benchGateway, cl *http.Client, body []byte, events int, started func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.publicURL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = g.target.streaming.Header
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	started()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 1<<10)
	content, done := 0, false
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			done = true
		} else if bytes.Contains(line, []byte(`"content":"`)) {
			content++
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
	}
	if !done || content < events {
		return fmt.Errorf("stream ended after %d content events (want %d) and [DONE] %v", content, events, done)
	}
	return nil
}

// allocsPerEvent relays allocStreams short and as many long fast streams (the same shape as the
// slow ones, without the wait) and returns the gateway's allocations per extra event.
func allocsPerEvent(ctx context.Context, g *benchGateway, cl *http.Client, errs *errorTally) (float64, bool, error) {
	batch := func(events int) (float64, error) {
		before, err := gatewayMetrics(ctx, g.adminURL, metricMallocs)
		if err != nil {
			return 0, err
		}
		body := slowBody(events, 0)
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range allocStreams {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := slowStream(ctx, g, cl, body, events, func() {}); err != nil {
					mu.Lock()
					errs.merge(errorTally{N: 1, First: "allocations run: " + err.Error()})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		g.waitUsage(ctx, time.Now().Add(10*time.Second))
		after, err := gatewayMetrics(ctx, g.adminURL, metricMallocs)
		if err != nil {
			return 0, err
		}
		if _, ok := after[metricMallocs]; !ok {
			return 0, errors.New("GET /metrics: " + metricMallocs + " missing")
		}
		return after[metricMallocs] - before[metricMallocs], nil
	}
	if _, err := batch(allocShortEvents); err != nil { // warm-up: pools and the key cache
		return 0, false, err
	}
	short, err := batch(allocShortEvents)
	if err != nil {
		return 0, false, err
	}
	long, err := batch(allocLongEvents)
	if err != nil {
		return 0, false, err
	}
	return max(long-short, 0) / float64(allocStreams*(allocLongEvents-allocShortEvents)), errs.N == 0, nil
}

// slowLevel opens n slow streams, and once all have started (or the first has ended) reads the
// gateway's RSS, goroutines, stacks, heap and descriptors; then it waits for every stream to end.
func slowLevel(ctx context.Context, g *benchGateway, cl *http.Client, n int, idle map[string]int64, run slowStreamsRun, errs *errorTally) (slowStreamLoad, error) {
	lv := slowStreamLoad{Streams: n}
	body := slowBody(slowEvents, slowInterval)
	var startedN, ended atomic.Int64
	allStarted := make(chan struct{})
	firstEnded := make(chan struct{})
	var endOnce sync.Once
	sem := make(chan struct{}, slowDialers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	go func() {
		for range n {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				start := func() {
					once.Do(func() {
						<-sem
						if startedN.Add(1) == int64(n) {
							close(allStarted)
						}
					})
				}
				err := slowStream(ctx, g, cl, body, slowEvents, start)
				start()
				ended.Add(1)
				endOnce.Do(func() { close(firstEnded) })
				if err != nil {
					mu.Lock()
					errs.merge(errorTally{N: 1, First: err.Error()})
					mu.Unlock()
				}
			}()
		}
	}()
	select {
	case <-allStarted:
	case <-firstEnded:
	case <-ctx.Done():
		return lv, ctx.Err()
	}
	// The streams that started last have their first events in flight: give them one interval.
	time.Sleep(slowInterval)
	st, err := readStatus(g.child.cmd.Process.Pid, "VmRSS", "RssAnon")
	if err != nil {
		return lv, err
	}
	rss := st["VmRSS"]
	lv.FDs = countFDs(g.child.cmd.Process.Pid)
	m, err := gatewayMetrics(ctx, g.adminURL, metricGoroutines, metricStacks, metricHeap)
	if err != nil {
		return lv, err
	}
	lv.Open = int(startedN.Load() - ended.Load())
	lv.RSSMB = mb(rss)
	if lv.Open > 0 {
		lv.RSSPerThousandMB = mb(rss-idle["VmRSS"]) / float64(lv.Open) * 1000
		lv.AnonPerThousandMB = mb(st["RssAnon"]-idle["RssAnon"]) / float64(lv.Open) * 1000
		lv.GoroutinesPerStream = (m[metricGoroutines] - run.IdleGoroutines) / float64(lv.Open)
		lv.StackKiBPerStream = (m[metricStacks] - run.IdleStackBytes) / 1024 / float64(lv.Open)
		lv.HeapKiBPerStream = (m[metricHeap] - run.IdleHeapBytes) / 1024 / float64(lv.Open)
		lv.FDsPerStream = float64(lv.FDs-run.IdleFDs) / float64(lv.Open)
	}
	lv.RSSPerThousandMet = lv.Open > 0 && lv.RSSPerThousandMB <= targetRSSPerThousandMB
	wg.Wait()
	// Let the gateway close what the streams left (usage records, idle upstream connections).
	g.waitUsage(ctx, time.Now().Add(10*time.Second))
	return lv, nil
}

// readRSS is the process's resident set in bytes (VmRSS of /proc/PID/status).
func readRSS(pid int) (int64, error) {
	m, err := readStatus(pid, "VmRSS")
	return m["VmRSS"], err
}

// readStatus reads fields of /proc/PID/status given in kB (VmRSS, RssAnon…), in bytes.
func readStatus(pid int, fields ...string) (map[string]int64, error) {
	return readProcKB(pid, "status", fields...)
}

// readProcKB reads fields given in kB from /proc/PID/file (status, smaps_rollup), in bytes.
func readProcKB(pid int, file string, fields ...string) (map[string]int64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/" + file
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("slow streams: RSS needs /proc: %w", err)
	}
	out := make(map[string]int64, len(fields))
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(fields, name) {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("slow streams: %s %s: %w", path, name, err)
		}
		out[name] = kb << 10
	}
	for _, f := range fields {
		if _, ok := out[f]; !ok {
			return nil, fmt.Errorf("slow streams: no %s in %s", f, path)
		}
	}
	return out, nil
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// countFDs is the descriptors the process has open (the entries of /proc/PID/fd), -1 where they
// cannot be read.
func countFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// writeText prints the scenario's lines: the judged run's with their targets, the other's beside
// them.
func (r *slowStreamsReport) writeText(tw io.Writer) {
	for _, run := range r.Runs {
		run.writeText(tw)
	}
	if r.ErrorsN > 0 {
		fmt.Fprintf(tw, "slow streams: ERRORS\t%d\t(first: %s)\n", r.ErrorsN, r.FirstError)
	}
}

func (r *slowStreamsRun) writeText(tw io.Writer) {
	judge := func(target float64, met bool) string {
		if !r.Judged {
			return "beside the judged HTTP/2 figure"
		}
		return fmt.Sprintf("target ≤ %.0f MB: %s", target, metOrMissed(met))
	}
	up := ", upstream " + r.Upstream
	fmt.Fprintf(tw, "slow streams%s: idle gateway RSS\t%.1f MB\t(%s; anonymous %.1f MB, the binary's pages mapped in 2 MB folios %.1f MB; %.0f goroutines, %d descriptors)\n",
		up, r.IdleRSSMB, judge(targetIdleRSSMB, r.IdleRSSMet), r.IdleAnonMB, r.IdleFilePMDMB, r.IdleGoroutines, r.IdleFDs)
	for _, lv := range r.Levels {
		fmt.Fprintf(tw, "slow streams%s: RSS per 1k streams above idle, %d open\t%.1f MB\t(%s; %.1f MB in all; anonymous %.1f MB per 1k)\n",
			up, lv.Open, lv.RSSPerThousandMB, judge(targetRSSPerThousandMB, lv.RSSPerThousandMet), lv.RSSMB, lv.AnonPerThousandMB)
		fmt.Fprintf(tw, "slow streams%s: goroutines per stream, %d open\t%.2f\t(reported; their stacks %.1f KiB a stream, the heap in use %.1f KiB)\n",
			up, lv.Open, lv.GoroutinesPerStream, lv.StackKiBPerStream, lv.HeapKiBPerStream)
		fmt.Fprintf(tw, "slow streams%s: descriptors per stream, %d open\t%.2f\t(reported; %d in all)\n", up, lv.Open, lv.FDsPerStream, lv.FDs)
	}
	if r.AllocsMeasured {
		// The target (0 in the relay) is held by BenchmarkRelayEvent and a test in gateway/; this
		// count is the whole process: net/http's chunk framing (its fmt.Fprintf of a chunk's
		// length boxes lengths of 256 and more, once per flush) and background work included.
		fmt.Fprintf(tw, "slow streams%s: allocations per relayed event, whole process\t%.2f\t(target 0 in the relay: BenchmarkRelayEvent in gateway/; here net/http's chunk framing and background work too)\n",
			up, r.AllocsPerEvent)
	} else {
		fmt.Fprintf(tw, "slow streams%s: allocations per relayed event\tunknown\t(a stream of the measurement failed)\n", up)
	}
	if r.Capped != "" {
		fmt.Fprintf(tw, "slow streams%s: capped\t%s\n", up, r.Capped)
	}
}

// runSlowStreamsOnly is `llmgate bench --slow-streams-only`: mockllm and the scenario's gateway,
// nothing else, and the scenario's lines as the report.
func runSlowStreamsOnly(ctx context.Context, self, mockPath string, o Options, stdout, stderr io.Writer) error {
	e := &benchEnv{}
	defer e.close()
	var err error
	if e.dir, err = os.MkdirTemp("", "llmgate-bench-"); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	env := benchChildEnv()
	mock, mockURL, err := startBenchChild(ctx, "mockllm", mockPath, []string{"--listen", "127.0.0.1:0"}, env, "mockllm listening on", "")
	if mock != nil {
		e.children = append(e.children, mock)
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	tlsURL, caFile, err := e.startTLSMock(ctx, mockPath, env)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, cancel := e.watch(ctx)
	defer cancel()
	rep, err := runSlowStreams(ctx, e, self, env, mockURL, tlsURL, caFile, o.SlowStreams, stderr)
	if err != nil {
		return fmt.Errorf("bench: slow streams: %w", err)
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "llmgate bench, slow streams only — %s, %d CPUs, %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.Version())
		fmt.Fprintf(stdout, "settings: %d events a stream, one every %s, through a fresh gateway (auth and usage recording on, SQLite, quota off, access log off) per upstream transport: HTTP/1.1, then TLS with HTTP/2 (production upstreams; the targets are judged on it); memory and descriptors from /proc, goroutines and allocations from its /metrics\n\n",
			slowEvents, slowInterval)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		rep.writeText(tw)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if rep.ErrorsN > 0 {
		return fmt.Errorf("bench: %d slow streams failed, so the numbers above are not valid", rep.ErrorsN)
	}
	return nil
}
