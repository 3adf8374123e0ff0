package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/quota"
)

// benchRedis is the redis-server of the gateway+redis path, and the bench's own connection to it.
type benchRedis struct {
	child   *benchChild
	url     string // redis://127.0.0.1:PORT, the gateway's redis_url
	version string
	// client has one connection, made without set-up commands (RESP2, no CLIENT SETINFO), so the
	// bench's only traffic in Redis's statistics is its INFO.
	client *redis.Client
}

// findRedisServer resolves --redis-server: the flag, else redis-server in PATH.
func findRedisServer(flagValue string) (string, error) {
	name := flagValue
	if name == "" {
		name = "redis-server"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("redis-server not found (%w)", err)
	}
	return filepath.Abs(p)
}

// startBenchRedis runs redis-server on a free loopback port, without persistence, and waits until
// it answers. On error the returned benchRedis (if any) holds the child to stop.
func startBenchRedis(ctx context.Context, path, dir string, env []string) (*benchRedis, error) {
	addr, err := benchFreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	child, _, err := startBenchChild(ctx, "redis-server", path, []string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, env, "", "")
	if err != nil {
		return nil, err
	}
	r := &benchRedis{child: child, url: "redis://" + addr}
	// Wait for the port with plain dials: the client's pool would log every refused one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case <-child.exited:
			return r, fmt.Errorf("redis-server exited during start-up: %v%s", child.err, child.lastLines())
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("redis-server not listening on %s within 30s: %v%s", addr, err, child.lastLines())
		}
	}
	r.client = redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, PoolSize: 1})
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := r.client.Info(ictx, "server").Result()
	if err != nil {
		return r, fmt.Errorf("redis-server at %s: %w%s", addr, err, child.lastLines())
	}
	r.version = infoField(info, "redis_version")
	return r, nil
}

// infoField returns a field of an INFO reply ("" when it is missing).
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// quotaSnapshot is what a gateway+redis measurement reads before and after its requests.
type quotaSnapshot struct {
	at       time.Time
	sent     int64            // requests sent to gateway+redis so far
	commands map[string]int64 // INFO commandstats: calls per command
	reads    int64            // INFO stats total_reads_processed: read events on client sockets
	redisCPU time.Duration
	cpuOK    bool
	quota    map[string]float64 // the gateway's quota metrics
}

func (e *benchEnv) quotaSnapshot(ctx context.Context) (quotaSnapshot, error) {
	s := quotaSnapshot{at: time.Now(), sent: e.redisGW.target.sent.Load()}
	s.redisCPU, s.cpuOK = e.redis.child.cpuTime()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := e.redis.client.Info(ictx, "commandstats", "stats").Result() // one command, one read
	if err != nil {
		return s, fmt.Errorf("redis INFO: %w", err)
	}
	if s.commands, s.reads, err = parseRedisInfo(info); err != nil {
		return s, err
	}
	s.quota, err = gatewayMetrics(ctx, e.redisGW.adminURL, metricQuotaDecisions, metricQuotaFallbacks, metricQuotaRedisCalls)
	return s, err
}

// parseRedisInfo reads the calls of each command (cmdstat_<name>:calls=N,…; subcommands are
// named like client|setinfo) and total_reads_processed from an INFO reply.
func parseRedisInfo(info string) (map[string]int64, int64, error) {
	calls := map[string]int64{}
	reads := int64(-1)
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "total_reads_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("redis INFO: %q: %w", line, err)
			}
			reads = n
			continue
		}
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, stats, _ := strings.Cut(rest, ":")
		v, _, _ := strings.Cut(stats, ",")
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "calls="), 10, 64)
		if err != nil || !strings.HasPrefix(v, "calls=") {
			return nil, 0, fmt.Errorf("redis INFO: cannot read %q", line)
		}
		calls[name] = n
	}
	if reads < 0 {
		return nil, 0, fmt.Errorf("redis INFO: no total_reads_processed")
	}
	return calls, reads, sc.Err()
}

// What a command in Redis's statistics is, for the gateway+redis report. INFO commandstats
// counts the commands a Lua script calls as well as those clients send, so the commands a
// client sends are told apart by name: Redis refuses EVAL, EVALSHA and SCRIPT inside scripts,
// and the gateway's scripts never call GET or PING.
const (
	roleRoundTrip  = "round trip"    // runs a script: the gateway's per-request calls
	roleBackground = "background"    // the policy watcher (version poll, pub/sub and its health check)
	roleSetup      = "set-up"        // sent once per new connection
	roleOwn        = "bench"         // the bench's own INFO
	roleInScript   = "inside script" // called by a script: part of a round trip, not one more
)

func redisCommandRole(name string) string {
	base, _, _ := strings.Cut(name, "|")
	switch base {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "script", "fcall", "fcall_ro":
		return roleRoundTrip
	case "get", "subscribe", "unsubscribe", "ping":
		return roleBackground
	case "hello", "client", "auth", "select":
		return roleSetup
	case "info":
		return roleOwn
	}
	return roleInScript
}

// redisTally adds up what the gateway+redis measurements saw in Redis and in the gateway.
type redisTally struct {
	requests int64
	elapsed  time.Duration
	commands map[string]int64
	reads    int64
	quota    map[string]float64
	// rateRequests and rateCPU are redis-server's CPU time over the RPS runs, [0] non-stream and
	// [1] stream.
	rateRequests [2]int64
	rateCPU      [2]time.Duration
}

func newRedisTally() *redisTally {
	return &redisTally{commands: map[string]int64{}, quota: map[string]float64{}}
}

// add takes in one measurement and returns the progress line's note on it.
func (t *redisTally) add(a, b quotaSnapshot, ph benchPhase) string {
	n := b.sent - a.sent
	t.requests += n
	t.elapsed += b.at.Sub(a.at)
	t.reads += b.reads - a.reads - 1 // the later INFO's own read
	roundTrips := int64(0)
	for name, calls := range b.commands {
		d := calls - a.commands[name]
		if d == 0 {
			continue
		}
		t.commands[name] += d
		if redisCommandRole(name) == roleRoundTrip {
			roundTrips += d
		}
	}
	for name, v := range b.quota {
		t.quota[name] += v - a.quota[name]
	}
	if ph.rate && a.cpuOK && b.cpuOK {
		i := 0
		if ph.stream {
			i = 1
		}
		t.rateRequests[i] += n
		t.rateCPU[i] += b.redisCPU - a.redisCPU
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", Redis %.2f round trips each", float64(roundTrips)/float64(n))
}

// redisReport is the gateway+redis path's traffic to Redis, over all its measurements.
type redisReport struct {
	Requests int64 `json:"requests"`
	// RoundTrips counts the script calls (EVALSHA, EVAL, SCRIPT) per request; Admissions and
	// Settlements split the gateway's own count of calls into its Redis limiter, which permit
	// leases answer without Redis while one runs (its
	// llmgate_quota_redis_seconds histogram): admission decisions, and every other call.
	RoundTrips  float64 `json:"round_trips_per_request"`
	Admissions  float64 `json:"admission_calls_per_request"`
	Settlements float64 `json:"settlement_calls_per_request"`
	// ReadEvents is Redis's count of reads on client sockets per request, less the bench's and
	// the background commands' own: a check on RoundTrips that does not go by command names.
	ReadEvents    float64            `json:"read_events_per_request"`
	Commands      map[string]float64 `json:"round_trip_commands_per_request"`
	InsideScripts map[string]float64 `json:"commands_inside_scripts_per_request"`
	Background    map[string]float64 `json:"background_commands_per_second"`
	Setup         map[string]int64   `json:"connection_setup_commands,omitempty"`
	CPUPerRequest benchDuration      `json:"redis_cpu_per_request_us,omitempty"`
	CPUPerStream  benchDuration      `json:"redis_cpu_per_stream_us,omitempty"`
	Fallbacks     int64              `json:"admissions_without_redis"`
	// SubjectBytes is the Redis memory (MEMORY USAGE of its keys) of one subject limited by RPM
	// after a minute's worth of requests at 1k and at 10k requests per minute.
	SubjectBytes1k  int64 `json:"redis_bytes_per_subject_1k_rpm"`
	SubjectBytes10k int64 `json:"redis_bytes_per_subject_10k_rpm"`
}

// Floors of the gateway+redis path's traffic to Redis.
const (
	maxRoundTripsPerRequest = 1.0
	maxRedisCPUPerRequest   = 25 * time.Microsecond
)

// subjectBytesSpan is how long measureSubjectBytes drives each subject, and its limiter's
// window.
const subjectBytesSpan = 10 * time.Second

// measureSubjectBytes drives, through a limiter of its own set up as the gateway's (permit leases
// on), one subject limited by RPM at 1k and one at 10k requests per minute, each at its rate
// (paced, both at once, every request settled at once) for subjectBytesSpan with a window that
// long, and records the memory of each subject's keys (MEMORY USAGE) scaled to a minute's window:
// the RPM log grows by a member per request (with leases: per lease) and the token buckets by a
// field per second, both in proportion to the window. It runs after every measurement, so its
// commands do not count in them.
func (r *benchRedis) measureSubjectBytes(ctx context.Context, rep *redisReport) error {
	c := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(r.url, "redis://"), Protocol: 2, DisableIdentity: true, PoolSize: 16})
	defer c.Close()
	l := quota.NewRedis(c, quota.LimiterOptions{Window: subjectBytesSpan, PermitLeases: benchPermitLeases})
	rates := []int64{1_000, 10_000}
	subject := func(rpm int64) quota.Subject {
		return quota.Subject{Kind: quota.KindKey, ID: fmt.Sprintf("bytes-%d", rpm), Tenant: "bench-bytes",
			Limits: quota.Limits{RPM: rpm, TPM: rpm * 1000, Concurrent: 100}}
	}
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	var wg sync.WaitGroup
	for _, rpm := range rates {
		wg.Go(func() {
			s := subject(rpm)
			gap := time.Minute / time.Duration(rpm)
			tick := time.NewTicker(gap)
			defer tick.Stop()
			var requests sync.WaitGroup
			defer requests.Wait()
			for i := range int(subjectBytesSpan / gap) {
				select {
				case <-tick.C:
				case <-ctx.Done():
					fail(ctx.Err())
					return
				}
				requests.Go(func() {
					res, err := l.Admit(ctx, quota.Request{ID: fmt.Sprintf("bytes-%d-%d", rpm, i), Subjects: []quota.Subject{s}, Tokens: 100})
					if err == nil && !res.Allowed {
						err = fmt.Errorf("refused (%s)", res.Dimension)
					}
					if err == nil {
						err = l.Settle(ctx, res.Lease, quota.Spent{Tokens: 80})
					}
					if err != nil {
						fail(fmt.Errorf("redis bytes per subject at %d rpm: %w", rpm, err))
					}
				})
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for _, rpm := range rates {
		s := subject(rpm)
		if _, err := l.Usage(ctx, s); err != nil { // gives back the leases still running
			return fmt.Errorf("redis bytes per subject: %w", err)
		}
		keys, err := c.Keys(ctx, "{t:bench-bytes}:q:key:"+s.ID+":*").Result()
		if err != nil {
			return fmt.Errorf("redis bytes per subject: %w", err)
		}
		var total int64
		for _, k := range keys {
			n, err := c.MemoryUsage(ctx, k).Result()
			if err != nil {
				return fmt.Errorf("redis MEMORY USAGE %s: %w", k, err)
			}
			total += n
		}
		total = total * int64(time.Minute/subjectBytesSpan)
		if rpm == 1_000 {
			rep.SubjectBytes1k = total
		} else {
			rep.SubjectBytes10k = total
		}
		if len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
	}
	return nil
}

func (t *redisTally) report() *redisReport {
	r := &redisReport{
		Requests: t.requests, Commands: map[string]float64{}, InsideScripts: map[string]float64{},
		Background: map[string]float64{}, Setup: map[string]int64{},
		Fallbacks: int64(t.quota[metricQuotaFallbacks]),
	}
	if t.requests == 0 {
		return r
	}
	per := func(x float64) float64 { return x / float64(t.requests) }
	reads := t.reads
	for name, calls := range t.commands {
		switch redisCommandRole(name) {
		case roleRoundTrip:
			r.Commands[name] = per(float64(calls))
			r.RoundTrips += per(float64(calls))
		case roleInScript:
			r.InsideScripts[name] = per(float64(calls))
		case roleBackground:
			r.Background[name] = float64(calls) / t.elapsed.Seconds()
			reads -= calls
		case roleSetup:
			r.Setup[name] = calls
		}
	}
	r.ReadEvents = per(float64(reads))
	redisAdmissions := t.quota[metricQuotaDecisions] - t.quota[metricQuotaFallbacks]
	r.Admissions = per(redisAdmissions)
	r.Settlements = per(t.quota[metricQuotaRedisCalls] - redisAdmissions)
	for i, dst := range []*benchDuration{&r.CPUPerRequest, &r.CPUPerStream} {
		if t.rateRequests[i] > 0 {
			*dst = benchDuration(t.rateCPU[i] / time.Duration(t.rateRequests[i]))
		}
	}
	return r
}
