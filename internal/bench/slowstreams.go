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

	"github.com/llmgate/llmgate/internal/adminclient"
)

// The slow-streams scenario measures what a gateway holds rather than how fast it goes: its
// resident memory at idle, its memory and goroutines per open stream when thousands of clients
// each hold a slow stream (slowEvents content events, one every slowInterval), and the
// allocations it makes per relayed event. Memory is read from outside, from /proc/PID/status, and
// goroutines and allocations from the gateway's own /metrics (the Go collector's go_goroutines
// and go_memstats_mallocs_total).
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
	// fdsPerStream: a stream through the gateway holds the client's connection and the upstream's.
	fdsPerStream = 2
	fdsReserve   = 256 // the gateway's other descriptors: listeners, the database, logs
)

// Targets of the slow-streams scenario.
const (
	targetIdleRSSMB          = 40.0
	targetRSSPerThousandMB   = 48.0
	metricGoroutines         = "go_goroutines"
	metricMallocs            = "go_memstats_mallocs_total"
	slowStreamModelOverrides = `"mock":{"chunks":%d,"interval_ms":%d}`
)

// slowStreamsReport is the scenario's outcome.
type slowStreamsReport struct {
	Events     int   `json:"events_per_stream"`
	IntervalMS int64 `json:"event_interval_ms"`
	// FDLimit is the descriptors a process may open (RLIMIT_NOFILE), which caps the streams.
	FDLimit        uint64           `json:"fd_limit"`
	IdleRSSMB      float64          `json:"idle_rss_mb"`
	IdleRSSMet     bool             `json:"idle_rss_met"`
	IdleGoroutines float64          `json:"idle_goroutines"`
	Levels         []slowStreamLoad `json:"levels"`
	AllocsPerEvent float64          `json:"allocs_per_event"`
	AllocsMeasured bool             `json:"allocs_measured"`
	Capped         string           `json:"capped,omitempty"` // why a level was lowered
	ErrorsN        int              `json:"errors"`
	FirstError     string           `json:"first_error,omitempty"`
}

// slowStreamLoad is one level: Streams asked for, Open when measured (opened and not yet ended).
type slowStreamLoad struct {
	Streams             int     `json:"streams"`
	Open                int     `json:"open_at_measurement"`
	RSSMB               float64 `json:"rss_mb"`
	RSSPerThousandMB    float64 `json:"rss_per_1k_streams_above_idle_mb"`
	RSSPerThousandMet   bool    `json:"rss_per_1k_met"`
	GoroutinesPerStream float64 `json:"goroutines_per_stream"`
}

// slowStreamsFDs is the descriptor limit the largest of levels needs in the gateway (which every
// process of the bench is given: mockllm and the bench's clients hold one per stream).
func slowStreamsFDs(levels []int) uint64 {
	return uint64(max(slices.Max(append([]int{0}, levels...)), 0)*fdsPerStream + fdsReserve)
}

// runSlowStreams starts a fresh gateway in front of mockURL (so that idle means never used), and
// measures it: idle, the allocations per event, then each level of concurrent slow streams.
func runSlowStreams(ctx context.Context, e *benchEnv, self string, env []string, mockURL string, levels []int, progress io.Writer) (*slowStreamsReport, error) {
	rep := &slowStreamsReport{Events: slowEvents, IntervalMS: slowInterval.Milliseconds(), FDLimit: raiseFDLimit(slowStreamsFDs(levels))}
	g, err := e.startSlowGateway(ctx, self, env, mockURL)
	if err != nil {
		return nil, err
	}
	defer g.child.stop()
	pid := g.child.cmd.Process.Pid
	// Idle: ready, a key made, nothing served. Let start-up garbage be collected first.
	time.Sleep(2 * time.Second)
	idle, err := readRSS(pid)
	if err != nil {
		return nil, err
	}
	m, err := gatewayMetrics(ctx, g.adminURL, metricGoroutines)
	if err != nil {
		return nil, err
	}
	rep.IdleRSSMB, rep.IdleGoroutines = mb(idle), m[metricGoroutines]
	rep.IdleRSSMet = rep.IdleRSSMB <= targetIdleRSSMB
	fmt.Fprintf(progress, "slow streams: idle gateway %.1f MB RSS, %.0f goroutines\n", rep.IdleRSSMB, rep.IdleGoroutines)

	cl := slowClient()
	defer cl.CloseIdleConnections()
	var errs errorTally
	if per, ok, err := allocsPerEvent(ctx, g, cl, &errs); err != nil {
		return nil, err
	} else if ok {
		rep.AllocsPerEvent, rep.AllocsMeasured = per, true
		fmt.Fprintf(progress, "slow streams: %.2f allocations per relayed event\n", per)
	}
	cl.CloseIdleConnections()

	maxStreams := 0
	if rep.FDLimit > fdsReserve {
		maxStreams = int(rep.FDLimit-fdsReserve) / fdsPerStream
	}
	for _, n := range levels {
		if maxStreams > 0 && n > maxStreams {
			rep.Capped = fmt.Sprintf("%d streams lowered to %d: the descriptor limit is %d and a stream holds %d in the gateway",
				n, maxStreams, rep.FDLimit, fdsPerStream)
			n = maxStreams
		}
		lv, err := slowLevel(ctx, g, cl, n, idle, rep.IdleGoroutines, &errs)
		if err != nil {
			return nil, err
		}
		cl.CloseIdleConnections()
		rep.Levels = append(rep.Levels, lv)
		fmt.Fprintf(progress, "slow streams: %d open of %d: %.1f MB RSS, %.1f MB per 1k above idle, %.2f goroutines per stream\n",
			lv.Open, lv.Streams, lv.RSSMB, lv.RSSPerThousandMB, lv.GoroutinesPerStream)
	}
	rep.ErrorsN, rep.FirstError = errs.N, errs.First
	return rep, nil
}

// startSlowGateway starts `llmgate serve` with the gateway path's config and a key, outside the
// measured paths.
func (e *benchEnv) startSlowGateway(ctx context.Context, self string, env []string, mockURL string) (*benchGateway, error) {
	listen, err := benchFreeAddr()
	if err != nil {
		return nil, err
	}
	adminListen, err := benchFreeAddr()
	if err != nil {
		return nil, err
	}
	token := adminclient.NewToken()
	cfgPath := filepath.Join(e.dir, "gateway-slow.yaml")
	cfg := GatewayConfig(listen, adminListen, filepath.Join(e.dir, "gateway-slow-data"), token, mockURL, "")
	// No cap on the public listener's connections (8192 by default): the levels are capped by
	// the descriptor limit instead.
	cfg = AccessLogOffConfig(cfg) + "gateway:\n  max_connections: -1\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	g := &benchGateway{adminURL: "http://" + adminListen, publicURL: "http://" + listen}
	if g.child, _, err = startBenchChild(ctx, "gateway-slow", self, []string{"serve", "--config", cfgPath}, env, "",
		filepath.Join(e.dir, "gateway-slow.stderr")); err != nil {
		return nil, err
	}
	e.children = append(e.children, g.child)
	if err := waitGatewayReady(ctx, g.child, g.publicURL); err != nil {
		return g, err
	}
	key, err := adminclient.New(g.adminURL, token).CreateKey(ctx, adminclient.CreateKeyBody{Name: "bench-slow"})
	if err != nil {
		return g, fmt.Errorf("gateway-slow: create a key: %w", err)
	}
	if g.target, err = newBenchTarget("gateway-slow", g.publicURL, key.Key, g.child, 1); err != nil {
		return g, err
	}
	return g, nil
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
// gateway's RSS and goroutines; then it waits for every stream to end.
func slowLevel(ctx context.Context, g *benchGateway, cl *http.Client, n int, idleRSS int64, idleGoroutines float64, errs *errorTally) (slowStreamLoad, error) {
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
	rss, err := readRSS(g.child.cmd.Process.Pid)
	if err != nil {
		return lv, err
	}
	m, err := gatewayMetrics(ctx, g.adminURL, metricGoroutines)
	if err != nil {
		return lv, err
	}
	lv.Open = int(startedN.Load() - ended.Load())
	lv.RSSMB = mb(rss)
	if lv.Open > 0 {
		lv.RSSPerThousandMB = mb(rss-idleRSS) / float64(lv.Open) * 1000
		lv.GoroutinesPerStream = (m[metricGoroutines] - idleGoroutines) / float64(lv.Open)
	}
	lv.RSSPerThousandMet = lv.Open > 0 && lv.RSSPerThousandMB <= targetRSSPerThousandMB
	wg.Wait()
	// Let the gateway close what the streams left (usage records, idle upstream connections).
	g.waitUsage(ctx, time.Now().Add(10*time.Second))
	return lv, nil
}

// readRSS is the process's resident set in bytes (VmRSS of /proc/PID/status).
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("slow streams: RSS needs /proc: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("slow streams: no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// writeText prints the scenario's lines, each with its target.
func (r *slowStreamsReport) writeText(tw io.Writer) {
	fmt.Fprintf(tw, "slow streams: idle gateway RSS\t%.1f MB\t(target ≤ %.0f MB: %s; %.0f goroutines)\n",
		r.IdleRSSMB, float64(targetIdleRSSMB), metOrMissed(r.IdleRSSMet), r.IdleGoroutines)
	for _, lv := range r.Levels {
		fmt.Fprintf(tw, "slow streams: RSS per 1k streams above idle, %d open\t%.1f MB\t(target ≤ %.0f MB: %s; %.1f MB in all)\n",
			lv.Open, lv.RSSPerThousandMB, float64(targetRSSPerThousandMB), metOrMissed(lv.RSSPerThousandMet), lv.RSSMB)
		fmt.Fprintf(tw, "slow streams: goroutines per stream, %d open\t%.2f\t(reported)\n", lv.Open, lv.GoroutinesPerStream)
	}
	if r.AllocsMeasured {
		// The target (0 in the relay) is held by BenchmarkRelayEvent and a test in gateway/; this
		// count is the whole process: net/http's chunk framing (its fmt.Fprintf of a chunk's
		// length boxes lengths of 256 and more, once per flush) and background work included.
		fmt.Fprintf(tw, "slow streams: allocations per relayed event, whole process\t%.2f\t(target 0 in the relay: BenchmarkRelayEvent in gateway/; here net/http's chunk framing and background work too)\n",
			r.AllocsPerEvent)
	} else {
		fmt.Fprintf(tw, "slow streams: allocations per relayed event\tunknown\t(a stream of the measurement failed)\n")
	}
	if r.Capped != "" {
		fmt.Fprintf(tw, "slow streams: capped\t%s\n", r.Capped)
	}
	if r.ErrorsN > 0 {
		fmt.Fprintf(tw, "slow streams: ERRORS\t%d\t(first: %s)\n", r.ErrorsN, r.FirstError)
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
	ctx, cancel := e.watch(ctx)
	defer cancel()
	rep, err := runSlowStreams(ctx, e, self, env, mockURL, o.SlowStreams, stderr)
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
		fmt.Fprintf(stdout, "settings: %d events a stream, one every %s, through one fresh gateway (auth and usage recording on, SQLite, quota off, access log off); memory from /proc, goroutines and allocations from its /metrics\n\n",
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
