package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llmgate/llmgate/internal/bench"
)

const benchUsage = `Usage: llmgate bench [flags]

Measures four to six paths against one mockllm process, in one run on this machine:
  direct         client → mockllm
  baseline       client → a minimal net/http pass-through proxy (llmgate bench-proxy) → mockllm
  gateway        client → llmgate serve (auth and usage recording on, SQLite; quota off) → mockllm
  gateway+redis  the same gateway with quotas on and the limiter in Redis (a redis-server the
                 bench starts on a free loopback port; limits set but never reached). Skipped
                 when redis-server is not found, unless --require-redis.
  gateway+tracing
                 the gateway with OpenTelemetry tracing on for every request (sampler
                 always_on), exporting over OTLP/HTTP to a receiver in the bench process on
                 loopback; its ratio is set against the gateway's of the same rounds
                 (--tracing=false leaves it out).
  gateway-accesslog-off
                 the gateway with its access log off; the gateway's ratio (access log at its
                 default: on, every request, to stderr, which the bench sends to a file) less
                 this path's of the same rounds is the access log's cost (--accesslog-off=false
                 leaves it out).
  slow streams   after the rounds (--slow-streams), a fresh gateway of its own: its idle RSS,
                 then thousands of concurrent slow streams (20 events, one every 500 ms) at each
                 level: RSS per 1,000 streams above idle (from /proc) and goroutines per stream
                 (from its /metrics), and its allocations per relayed event (go_memstats_mallocs_total
                 over streams of 10 and of 1,010 events). Levels above what the descriptor limit
                 allows (two per stream in the gateway) are lowered; the soft limit is raised to
                 the hard one. --slow-streams-only runs this scenario alone.
  ledger         after the rounds (--ledger), the usage recorder in this process with the gateway's
                 default writers carries 200,000 records, each charging one of 1,000 (then 50)
                 credit accounts, into a PostgreSQL the bench starts (initdb on a temporary
                 directory, loopback, durability off): rows per second against the target.
                 Skipped when initdb and postgres are not found, unless --require-postgres.
Paths alternate within each round and the median of the rounds is reported, since the client,
the upstream and the proxy share the CPUs. Right after the chat streams, direct and gateway also
stream the Responses API (POST /v1/responses, which the gateway relays as it comes) and
Anthropic's Messages API (POST /v1/messages, relayed as it comes to an anthropic-type deployment),
so that their gateway/direct ratios can be set against the chat stream ratio of the same rounds.

It prints one row per path (RPS at --concurrency, p50/p99 at concurrency 1, time to the first
content event of a stream, the proxy's CPU time per request), the comparisons DESIGN.md sets
floors for, and the Redis round trips per gateway+redis request (from INFO commandstats). Every
answer is checked; a run in which any request failed exits with status 1.

Flags:
`

// benchCmd is `llmgate bench`: it parses the flags and runs the benchmark (internal/bench) until
// it ends or SIGINT/SIGTERM.
func benchCmd(args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The load generator shares the CPUs with what it measures: collect garbage less often.
	debug.SetGCPercent(400)
	return bench.Run(ctx, self, o, stdout, stderr)
}

func parseBenchFlags(args []string, stderr io.Writer) (bench.Options, error) {
	var o bench.Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Mockllm, "mockllm", "", "mockllm binary (default: mockllm next to this executable, else in PATH)")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "requests in flight during the RPS runs")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each RPS run")
	fs.IntVar(&o.LatencyRequests, "latency-requests", 2000, "requests per latency run at concurrency 1 (non-stream and stream)")
	fs.IntVar(&o.Chunks, "chunks", 20, "content chunks per streamed answer")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds; each measures every path, and the median is reported")
	fs.BoolVar(&o.StreamRPS, "stream-rps", true, "also measure streaming RPS at --concurrency")
	fs.DurationVar(&o.ResponsesDuration, "responses-duration", 5*time.Second,
		"length of each Responses API stream RPS run (direct and gateway only; needs --stream-rps; 0 skips it)")
	fs.DurationVar(&o.MessagesDuration, "messages-duration", 5*time.Second,
		"length of each Anthropic Messages API stream RPS run (direct and gateway only; needs --stream-rps; 0 skips it)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON")
	fs.StringVar(&o.RedisServer, "redis-server", "", "redis-server binary for the gateway+redis path (default: redis-server in PATH)")
	fs.BoolVar(&o.RequireRedis, "require-redis", false, "fail instead of skipping the gateway+redis path when redis-server is not found")
	fs.BoolVar(&o.Tracing, "tracing", true, "also measure the gateway+tracing path (every request traced, exported over OTLP/HTTP to a loopback receiver)")
	fs.BoolVar(&o.AccessLogOff, "accesslog-off", true, "also measure the gateway-accesslog-off path (the gateway with its access log off), to report what the access log costs")
	slow := fs.String("slow-streams", "2000,10000", "levels of the slow-streams scenario: concurrent streams, comma-separated (empty skips it)")
	fs.BoolVar(&o.SlowStreamsOnly, "slow-streams-only", false, "run only the slow-streams scenario (mockllm and one gateway)")
	fs.BoolVar(&o.Ledger, "ledger", true, "also measure charged usage records into a PostgreSQL the bench starts (skipped when PostgreSQL is not installed)")
	fs.BoolVar(&o.RequirePostgres, "require-postgres", false, "fail instead of skipping the ledger scenario when PostgreSQL is not installed")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range strings.FieldsFunc(*slow, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100_000 {
			return o, fmt.Errorf("bench: --slow-streams: %q is not a number of streams between 1 and 100000", f)
		}
		o.SlowStreams = append(o.SlowStreams, n)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	case o.Concurrency < 1 || o.Concurrency > 10_000:
		return o, errors.New("bench: --concurrency must be between 1 and 10000")
	case o.Duration <= 0:
		return o, errors.New("bench: --duration must be positive")
	case o.ResponsesDuration < 0:
		return o, errors.New("bench: --responses-duration must not be negative (0 skips the Responses path)")
	case o.MessagesDuration < 0:
		return o, errors.New("bench: --messages-duration must not be negative (0 skips the Messages path)")
	case o.LatencyRequests < 1:
		return o, errors.New("bench: --latency-requests must be at least 1")
	case o.Chunks < 1 || o.Chunks > 10_000:
		return o, errors.New("bench: --chunks must be between 1 and 10000")
	case o.Rounds < 1:
		return o, errors.New("bench: --rounds must be at least 1")
	case o.SlowStreamsOnly && len(o.SlowStreams) == 0:
		return o, errors.New("bench: --slow-streams-only needs --slow-streams levels")
	}
	return o, nil
}

// benchProxyCmd is the hidden `llmgate bench-proxy` subcommand: the minimal net/http pass-through
// that `llmgate bench` starts and measures beside the gateway (bench.ServeProxy). It prints
// "bench-proxy listening on http://ADDR" once it accepts connections and serves until SIGINT or
// SIGTERM.
func benchProxyCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:9090 (required)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on; port 0 picks a free one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("bench-proxy: --upstream: want an http(s) URL, got %q", *upstream)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.ServeProxy(ctx, strings.TrimRight(*upstream, "/"), *listen, stdout)
}
