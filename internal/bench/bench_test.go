package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/llmgate/llmgate/providers/mock"
)

// newTestTarget is a bench target for url whose idle connections are closed after the test.
func newTestTarget(t *testing.T, url string) *benchTarget {
	t.Helper()
	tg, err := newBenchTarget("test", url, "", nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.client.CloseIdleConnections)
	return tg
}

func TestPassThroughRelaysAnswersAndStreamsEvents(t *testing.T) {
	// Three chunks 100 ms apart: a pass-through that buffered the stream would deliver the first
	// content event only at the end.
	up := httptest.NewServer(mock.NewHandler(mock.Options{Chunks: 3, TokensPerSecond: 10}))
	t.Cleanup(up.Close)
	pt := newPassThrough(up.URL)
	proxy := httptest.NewServer(pt)
	t.Cleanup(func() {
		proxy.Close()
		pt.client.CloseIdleConnections()
	})
	ctx := context.Background()

	for _, tc := range []struct{ name, url string }{{"direct", up.URL}, {"baseline", proxy.URL}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newBenchWorker(newTestTarget(t, tc.url), 3)
			if _, err := w.do(ctx, shapePlain); err != nil {
				t.Fatalf("non-stream: %v", err)
			}
			s, err := w.do(ctx, shapeStream)
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if s.ttft <= 0 || s.total-s.ttft < 150*time.Millisecond {
				t.Errorf("first content after %v, whole stream %v: want the first event about 200 ms before the end", s.ttft, s.total)
			}
		})
	}

	resp, err := http.Get(proxy.URL + "/v1/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" ||
		!strings.Contains(string(body), "unknown_url") {
		t.Errorf("GET /v1/nowhere through the pass-through: %d %q %s; want the mock's 404 as it is",
			resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestBenchWorkerRejectsIncompleteAnswers(t *testing.T) {
	const event = `data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}` + "\n\n"
	for _, tc := range []struct {
		name   string
		stream bool
		status int
		body   string
		want   string
	}{
		{"error status", false, http.StatusTooManyRequests, `{"error":{"message":"slow down"}}`, "HTTP 429"},
		{"no choices", false, http.StatusOK, `{"id":"x"}`, "without choices"},
		{"stream without DONE", true, http.StatusOK, event + event, "without data: [DONE]"},
		{"stream short of chunks", true, http.StatusOK, event + "data: [DONE]\n\n", "1 content events, want 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			_, err := newBenchWorker(newTestTarget(t, srv.URL), 2).do(context.Background(), streamShape(tc.stream))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHasContentDelta(t *testing.T) {
	for payload, want := range map[string]bool{
		`{"choices":[{"delta":{"role":"assistant","content":"","refusal":null}}]}`: false,
		`{"choices":[{"delta":{"content":" mock"}}]}`:                              true,
		`{"choices":[{"delta":{},"finish_reason":"stop"}]}`:                        false,
	} {
		if got := hasContentDelta([]byte(payload)); got != want {
			t.Errorf("hasContentDelta(%s) = %v, want %v", payload, got, want)
		}
	}
}

func TestNearestRankAndMedian(t *testing.T) {
	samples := make([]time.Duration, 100)
	for i := range samples {
		samples[i] = time.Duration(i+1) * time.Microsecond
	}
	if got := nearestRank(samples, 0.50); got != 50*time.Microsecond {
		t.Errorf("p50 = %v, want 50µs", got)
	}
	if got := nearestRank(samples, 0.99); got != 99*time.Microsecond {
		t.Errorf("p99 = %v, want 99µs", got)
	}
	if got := nearestRank(nil, 0.5); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
	if got := medianOf([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3,1,2 = %v, want 2", got)
	}
	if got := medianOf([]benchDuration{4, 1, 3, 2}); got != 2 { // (2+3)/2 in integer nanoseconds
		t.Errorf("median of 4,1,3,2 = %v, want 2", got)
	}
}

func TestBenchWorkerRequiresHeader(t *testing.T) {
	for _, limited := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if limited {
				w.Header().Set("X-Ratelimit-Limit-Requests", "100")
			}
			_, _ = io.WriteString(w, `{"choices":[]}`)
		}))
		t.Cleanup(srv.Close)
		tg := newTestTarget(t, srv.URL)
		tg.requireHeader = "X-Ratelimit-Limit-Requests"
		_, err := newBenchWorker(tg, 1).do(context.Background(), shapePlain)
		if limited && err != nil {
			t.Errorf("answer with the header: %v", err)
		}
		if !limited && (err == nil || !strings.Contains(err.Error(), "without X-Ratelimit-Limit-Requests")) {
			t.Errorf("answer without the header: err = %v, want one naming it", err)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	const text = `# HELP llmgate_quota_decisions_total Admission decisions.
# TYPE llmgate_quota_decisions_total counter
llmgate_quota_decisions_total{dimension="none",result="admitted"} 41
llmgate_quota_decisions_total{dimension="rpm",result="rejected"} 1
llmgate_quota_redis_seconds_bucket{le="0.0001"} 3
llmgate_quota_redis_seconds_count 84
llmgate_usage_written_total 7
`
	m, err := parseMetrics(strings.NewReader(text), []string{metricQuotaDecisions, metricQuotaRedisCalls, metricQuotaFallbacks, metricUsageWritten})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{metricQuotaDecisions: 42, metricQuotaRedisCalls: 84, metricUsageWritten: 7}
	if len(m) != len(want) {
		t.Errorf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestRedisTally(t *testing.T) {
	const before = "# Stats\r\ntotal_reads_processed:100\r\n# Commandstats\r\n" +
		"cmdstat_info:calls=1,usec=10,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=10,usec=1,usec_per_call=0.10,rejected_calls=0,failed_calls=0\r\n"
	const after = "# Stats\r\ntotal_reads_processed:325\r\n# Commandstats\r\n" +
		"cmdstat_info:calls=2,usec=20,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_get:calls=14,usec=1,usec_per_call=0.10,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_evalsha:calls=200,usec=1,usec_per_call=0.10,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_eval:calls=20,usec=1,usec_per_call=0.10,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_time:calls=200,usec=1,usec_per_call=0.10,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=1,usec_per_call=0.10,rejected_calls=0,failed_calls=0\r\n"
	snap := func(info string, at time.Time, sent int64, quota map[string]float64) quotaSnapshot {
		calls, reads, err := parseRedisInfo(info)
		if err != nil {
			t.Fatal(err)
		}
		return quotaSnapshot{at: at, sent: sent, commands: calls, reads: reads, quota: quota}
	}
	t0 := time.Now()
	a := snap(before, t0, 1000, map[string]float64{metricQuotaDecisions: 500, metricQuotaRedisCalls: 1000})
	b := snap(after, t0.Add(2*time.Second), 1100, map[string]float64{metricQuotaDecisions: 600, metricQuotaRedisCalls: 1200})
	tally := newRedisTally()
	if note := tally.add(a, b, benchPhase{}); note != ", Redis 2.20 round trips each" {
		t.Errorf("note %q", note)
	}
	r := tally.report()
	if r.Requests != 100 || r.RoundTrips != 2.2 || r.Commands["evalsha"] != 2 || r.Commands["eval"] != 0.2 {
		t.Errorf("round trips %v %v from %d requests; want 2.2 (evalsha 2, eval 0.2) from 100", r.RoundTrips, r.Commands, r.Requests)
	}
	if r.Admissions != 1 || r.Settlements != 1 {
		t.Errorf("admission %v + settlement %v, want 1 + 1", r.Admissions, r.Settlements)
	}
	if r.InsideScripts["time"] != 2 || len(r.InsideScripts) != 1 || r.Background["get"] != 2 || r.Setup["client|setinfo"] != 2 {
		t.Errorf("inside %v, background %v, set-up %v", r.InsideScripts, r.Background, r.Setup)
	}
	// 225 reads less the later INFO's and the 4 GETs: 220 for 220 script calls.
	if r.ReadEvents != 2.2 {
		t.Errorf("read events per request %v, want 2.2", r.ReadEvents)
	}
}

// TestBenchRedis starts redis-server as the bench does (skipped where there is none) and checks
// that the bench's own connection shows up in Redis's statistics as INFO alone, and that the
// server is gone after stop.
func TestBenchRedis(t *testing.T) {
	path, err := findRedisServer("")
	if err != nil {
		t.Skip(err)
	}
	r, err := startBenchRedis(context.Background(), path, t.TempDir(), benchChildEnv())
	if r != nil {
		t.Cleanup(func() {
			if r.client != nil {
				_ = r.client.Close()
			}
			r.child.stop()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.version == "" {
		t.Error("no redis_version")
	}
	e := &benchEnv{redis: r}
	var calls [2]map[string]int64
	for i := range calls {
		info, err := e.redis.client.Info(context.Background(), "commandstats", "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		if calls[i], _, err = parseRedisInfo(info); err != nil {
			t.Fatal(err)
		}
	}
	for name, n := range calls[1] {
		if d := n - calls[0][name]; d != 0 && name != "info" {
			t.Errorf("the bench's connection sent %s (%d calls) between two INFOs", name, d)
		}
	}
	_ = r.client.Close()
	r.child.stop()
	select {
	case <-r.child.exited:
	default:
		t.Error("redis-server still running after stop")
	}
}

// TestSlowStreamsReport: the scenario reads a process's RSS and descriptors from /proc, and prints
// each figure of the judged run (HTTP/2) with its target and whether it was met, and the other
// run's beside them.
func TestSlowStreamsReport(t *testing.T) {
	if rss, err := readRSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("readRSS(self) = %d, %v", rss, err)
	}
	if st, err := readStatus(os.Getpid(), "VmRSS", "RssAnon"); err != nil || st["RssAnon"] < 1<<20 || st["RssAnon"] > st["VmRSS"] {
		t.Errorf("readStatus(self) = %v, %v", st, err)
	}
	if st, err := readProcKB(os.Getpid(), "smaps_rollup", "Rss", "FilePmdMapped"); err != nil || st["Rss"] < 1<<20 || st["FilePmdMapped"] > st["Rss"] {
		t.Errorf("readProcKB(self, smaps_rollup) = %v, %v", st, err)
	}
	if n := countFDs(os.Getpid()); n < 3 {
		t.Errorf("countFDs(self) = %d", n)
	}
	r := &slowStreamsReport{Runs: []slowStreamsRun{
		{Upstream: "HTTP/1.1", IdleRSSMB: 39.5, IdleRSSMet: true, AllocsMeasured: true, AllocsPerEvent: 0.03,
			Levels: []slowStreamLoad{{Streams: 2000, Open: 2000, RSSMB: 180, RSSPerThousandMB: 70.2, GoroutinesPerStream: 4, FDs: 4030, FDsPerStream: 2}}},
		{Upstream: "HTTP/2 over TLS", Judged: true, IdleRSSMB: 38.2, IdleRSSMet: true, IdleAnonMB: 8.1, IdleFilePMDMB: 6.3, AllocsMeasured: true, AllocsPerEvent: 0.02,
			Levels: []slowStreamLoad{{Streams: 2000, Open: 2000, RSSMB: 150, RSSPerThousandMB: 55.9, AnonPerThousandMB: 54.1, GoroutinesPerStream: 3,
				StackKiBPerStream: 16.25, HeapKiBPerStream: 30.5, FDs: 2038, FDsPerStream: 1.01}}},
	}}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	r.writeText(tw)
	tw.Flush()
	for _, want := range []string{
		"upstream HTTP/2 over TLS: idle gateway RSS  38.2 MB  (target ≤ 40 MB: met; anonymous 8.1 MB, the binary's pages mapped in 2 MB folios 6.3 MB;",
		"upstream HTTP/2 over TLS: RSS per 1k streams above idle, 2000 open  55.9 MB  (target ≤ 48 MB: MISSED; 150.0 MB in all; anonymous 54.1 MB per 1k)",
		"upstream HTTP/2 over TLS: goroutines per stream, 2000 open  3.00",
		"upstream HTTP/2 over TLS: goroutines per stream, 2000 open  3.00  (reported; their stacks 16.2 KiB a stream, the heap in use 30.5 KiB)",
		"upstream HTTP/2 over TLS: descriptors per stream, 2000 open  1.01",
		"upstream HTTP/1.1: RSS per 1k streams above idle, 2000 open  70.2 MB  (beside the judged HTTP/2 figure",
		"upstream HTTP/1.1: descriptors per stream, 2000 open  2.00",
		"upstream HTTP/2 over TLS: allocations per relayed event, whole process  0.02"} {
		if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPerfTargets: every performance target the run has a figure for is printed with its figure
// and met or missed; the added latencies are medians of per-round differences from the
// pass-through, and a slow-streams level that was capped below its count does not meet its target.
func TestPerfTargets(t *testing.T) {
	round := func(rps, stream float64, p50, p99 time.Duration) pathRound {
		return pathRound{RPS: rps, StreamRPS: stream, P50: benchDuration(p50), P99: benchDuration(p99)}
	}
	us := time.Microsecond
	r := &benchReport{Settings: benchSettings{StreamRPS: true}, Paths: []*pathResult{
		{Name: "direct", Rounds: []pathRound{round(1000, 100, 100*us, 200*us), round(1000, 100, 100*us, 200*us)}},
		{Name: "baseline", Rounds: []pathRound{round(500, 70, 200*us, 300*us), round(500, 70, 210*us, 300*us)}},
		{Name: "gateway", Rounds: []pathRound{round(460, 60, 225*us, 500*us), round(460, 60, 235*us, 400*us)}},
		{Name: nameGatewayRedis, Rounds: []pathRound{round(300, 55, 400*us, 600*us), round(300, 55, 420*us, 600*us)}},
	}}
	for i, cpu := range []time.Duration{0, 50 * us, 60 * us, 90 * us} {
		for j := range r.Paths[i].Rounds {
			r.Paths[i].Rounds[j].CPUPerRequest = benchDuration(cpu)
		}
	}
	r.summarize()
	r.Redis = &redisReport{Requests: 1000, RoundTrips: 1.2, CPUPerRequest: benchDuration(20 * us), SubjectBytes1k: 13488, SubjectBytes10k: 14256}
	r.SlowStreams = &slowStreamsReport{Runs: []slowStreamsRun{
		{Upstream: "HTTP/1.1", IdleRSSMB: 41, Levels: []slowStreamLoad{{Streams: 2000, Open: 2000, RSSPerThousandMB: 50},
			{Streams: 10000, Open: 9000, RSSPerThousandMB: 52}}},
		{Upstream: "HTTP/2 over TLS", Judged: true, IdleRSSMB: 39, IdleRSSMet: true, AllocsMeasured: true, AllocsPerEvent: 0.2,
			Levels: []slowStreamLoad{{Streams: 2000, Open: 2000, RSSPerThousandMB: 40, RSSPerThousandMet: true},
				{Streams: 10000, Open: 9872, RSSPerThousandMB: 41, RSSPerThousandMet: true}}}}}
	r.Ledger = &ledgerReport{Writers: 2, Runs: []ledgerRun{{Accounts: 1000, RowsPerSecond: 51000, Met: true}, {Accounts: 50, RowsPerSecond: 42000}}}
	r.Targets = r.perfTargets()
	var b strings.Builder
	if err := writeTargets(&b, r.Targets); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"performance targets: 9 of 15 met",
		"ledger: charged rows/s into PostgreSQL, 1000 accounts, 2 writers 51000 (target ≥ 50000: met)",
		"ledger: charged rows/s into PostgreSQL, 50 accounts, 2 writers 42000 (target ≥ 50000: MISSED)",
		"Redis bytes per RPM-limited subject at 1k / 10k requests/min 13488 / 14256 (target bounded (10k ≤ 1.5 × 1k): met)",
		"gateway CPU per request / pass-through's ×1.20 (target ≤ ×1.25: met)",
		"gateway+redis/direct RPS 0.30 (target ≥ 0.35: MISSED)",
		"gateway+redis/direct stream RPS 0.55 (target ≥ 0.50: met)",
		"Redis round trips per request 1.20 (target ≤ 1.00: MISSED)",
		"redis-server CPU per request 20µs (target ≤ 25µs: met)",
		"gateway/direct RPS 0.46 (target ≥ 0.45: met)",
		"gateway/direct stream RPS 0.60 (target ≥ 0.65: MISSED)",
		"gateway p50 at c=1 over the pass-through +25µs (target ≤ +30µs: met)",
		"gateway p99 at c=1 over the pass-through +150µs (target ≤ +150µs: met)",
		"gateway+redis p50 at c=1 over the pass-through +205µs (target ≤ +120µs: MISSED)",
		"slow streams: idle RSS (upstream HTTP/2 over TLS) 39.0 MB; HTTP/1.1: 41.0 MB (target ≤ 40 MB: met)",
		"slow streams: RSS per 1k streams, 9872 open (upstream HTTP/2 over TLS) 41.0 MB; HTTP/1.1: 52.0 MB at 9000 open (target ≤ 48 MB at 10000: MISSED)",
		"allocations per relayed SSE event, whole process (upstream HTTP/2 over TLS) 0.20 (reported; target 0 in the relay, held by BenchmarkRelayEvent",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, b.String())
		}
	}
}
