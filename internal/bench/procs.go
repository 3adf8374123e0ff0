package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/llmgate/llmgate/quota"
)

// benchModel is the one public model of the gateway under test; the deployment uses the same
// name upstream so that all three paths send the mock identical bodies.
const benchModel = "bench-model"

// benchMessagesModel is the public model the gateway serves from an anthropic-type deployment of
// the same mock, for the Messages API passthrough path.
const benchMessagesModel = "bench-claude"

// benchChild is a process the bench started. Its output is kept (the tail) for error messages.
type benchChild struct {
	name   string
	cmd    *exec.Cmd
	out    *outputTail
	log    string        // the file its stderr goes to; "" when stderr goes to out
	exited chan struct{} // closed once the process is reaped
	err    error         // Wait's result, valid after exited is closed
}

// startBenchChild runs path with args. When announce is not empty, it waits (up to a minute) for
// a stdout line "<announce> http://ADDR" and returns ADDR's URL: that is how mockllm and
// bench-proxy tell which port they picked. When logPath is not empty the child's stderr is that
// file (appended to), else a pipe to out.
func startBenchChild(ctx context.Context, name, path string, args []string, env []string, announce, logPath string) (*benchChild, string, error) {
	return startBenchChildAttr(ctx, name, path, args, env, announce, logPath, benchChildAttr())
}

// startBenchChildAttr is startBenchChild with the child's process attributes (benchChildAttr, or
// benchChildAttrAs for a child that must run as another user).
func startBenchChildAttr(ctx context.Context, name, path string, args []string, env []string, announce, logPath string,
	attr *syscall.SysProcAttr) (*benchChild, string, error) {
	c := &benchChild{name: name, out: &outputTail{max: 16 << 10}, log: logPath, exited: make(chan struct{})}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = env
	c.cmd.SysProcAttr = attr
	lw := &announceWatcher{prefix: announce + " ", found: make(chan string, 1), next: c.out, done: announce == ""}
	c.cmd.Stdout, c.cmd.Stderr = lw, c.out
	if logPath != "" {
		// An *os.File is handed to the child as its descriptor: the child writes straight to
		// the file, with no pipe and no goroutine of the bench's in between.
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, "", fmt.Errorf("start %s: %w", name, err)
		}
		defer f.Close() // the child holds its own copy once started
		c.cmd.Stderr = f
	}
	if err := c.cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	if announce == "" {
		return c, "", nil
	}
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case u := <-lw.found:
		return c, u, nil
	case <-c.exited:
		return c, "", fmt.Errorf("%s exited before listening: %v%s", name, c.err, c.lastLines())
	case <-timer.C:
		c.stop()
		return c, "", fmt.Errorf("%s did not print %q within a minute%s", name, announce, c.lastLines())
	case <-ctx.Done():
		c.stop()
		return c, "", ctx.Err()
	}
}

// stop asks the process to exit (SIGTERM lets the gateway flush its usage records), kills it
// after five seconds, and waits until it is gone.
func (c *benchChild) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = c.cmd.Process.Kill()
	}
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// cpuTime is the CPU time (user and system, all threads) the process has used so far, read from
// /proc/PID/stat; ok is false for a nil child and where /proc is not available. The clock tick
// is taken as 1/100 s, the USER_HZ of every Linux ABI (proc(5)).
func (c *benchChild) cpuTime() (d time.Duration, ok bool) {
	if c == nil {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields follow the command name in parentheses, which may itself hold spaces; utime and stime
	// are fields 14 and 15, so the 12th and 13th after the name.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// benchChildEnv is the bench's environment without LLMGATE_* and MOCKLLM_* variables, which would
// otherwise override the gateway's generated config (environment beats file) or make mockllm
// demand a key.
func benchChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LLMGATE_") && !strings.HasPrefix(kv, "MOCKLLM_") {
			env = append(env, kv)
		}
	}
	return env
}

// findMockllm resolves --mockllm: the flag, else mockllm next to this executable, else in PATH.
func findMockllm(flagValue, self string) (string, error) {
	if flagValue != "" {
		p, err := exec.LookPath(flagValue)
		if err != nil {
			return "", fmt.Errorf("--mockllm %s: %w", flagValue, err)
		}
		return filepath.Abs(p)
	}
	beside := filepath.Join(filepath.Dir(self), "mockllm")
	if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
		return beside, nil
	}
	if p, err := exec.LookPath("mockllm"); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("mockllm not found next to %s nor in PATH: build it (go build -o bin/mockllm ./cmd/mockllm) and pass --mockllm PATH", self)
}

// benchPermitLeases are the permit leases of the gateway+redis path (as its config sets them).
var benchPermitLeases = quota.PermitLeaseOptions{Enabled: true}

// benchTier is the quota tier of the gateway+redis path. Its limits are set, so the admission
// script checks every dimension, but a bench never reaches them.
const benchTier = "bench"

// TierLimits are the bench tier's limits (exported, as GatewayConfig is, for the binary's test of
// the config it loads).
var TierLimits = quota.Limits{RPM: 100_000_000, TPM: 100_000_000_000, TokensPerDay: 100_000_000_000_000, Concurrent: 100_000}

// benchTierText is TierLimits as the fields of a YAML flow mapping.
func benchTierText() string {
	l := TierLimits
	return fmt.Sprintf("rpm: %d, tpm: %d, tokens_per_day: %d, concurrent: %d", l.RPM, l.TPM, l.TokensPerDay, l.Concurrent)
}

// GatewayConfig is the temporary config of a gateway under test: one OpenAI-type provider
// pointing at mockllm, auth and usage recording on (SQLite in dataDir). Without redisURL quotas
// are off; with it they are on, with the limiter in that Redis and the bench tier as the default
// (the bench's key has no user, so it counts against the default tier). It is exported so that
// the binary's tests can check that its config loader accepts it.
func GatewayConfig(listen, adminListen, dataDir, token, mockURL, redisURL string) string {
	quota := "quota:\n  enabled: false\n"
	if redisURL != "" {
		// redis_timeout: at saturation on two shared cores a Redis call can miss the 50 ms default
		// through CPU starvation alone (the process descheduled), which would send decisions to the
		// local fallback; the bench measures the Redis path, so it gives Redis room and still
		// counts any fallback decision as an error.
		quota = fmt.Sprintf(`redis_url: %q
quota:
  default_tier: %s
  redis_timeout: 500ms
  permit_leases: {enabled: true}
  tiers:
    %s: {%s}
`, redisURL, benchTier, benchTier, benchTierText())
	}
	return fmt.Sprintf(`listen: %q
admin_listen: %q
data_dir: %q
admin_token: %q
`+gatewayLogSection+`outbound:
  allow: [127.0.0.1]  # mockllm listens on loopback
providers:
  - name: mock
    type: openai
    base_url: %q
  - name: mock-anthropic
    type: anthropic
    base_url: %q
models:
  - name: %s
    deployments:
      - provider: mock
        model: %s
  - name: %s
    deployments:
      - provider: mock-anthropic
        model: %s
`, listen, adminListen, dataDir, token, mockURL+"/v1", mockURL, benchModel, benchModel, benchMessagesModel, benchMessagesModel) + quota
}

// gatewayLogSection is GatewayConfig's log section: warnings and above, and the access log at
// its default (on, a line for every request, to stderr).
const gatewayLogSection = "log:\n  level: warn\n"

// AccessLogOffConfig is a GatewayConfig with the access log turned off, the only difference of
// the gateway-accesslog-off path. (The setting goes inside the config's log section: a second
// `log` key would be refused.)
func AccessLogOffConfig(gatewayConfig string) string {
	if !strings.Contains(gatewayConfig, gatewayLogSection) {
		panic("bench: AccessLogOffConfig: no log section in the gateway config")
	}
	return strings.Replace(gatewayConfig, gatewayLogSection, gatewayLogSection+"  access:\n    enabled: false\n", 1)
}

// TrustCAConfig is a GatewayConfig whose providers also trust the certificates in caFile
// (outbound.ca_file): the slow-streams scenario's gateway in front of mockllm serving TLS.
func TrustCAConfig(gatewayConfig, caFile string) string {
	if !strings.Contains(gatewayConfig, "\noutbound:\n") {
		panic("bench: TrustCAConfig: no outbound section in the gateway config")
	}
	return strings.Replace(gatewayConfig, "\noutbound:\n", fmt.Sprintf("\noutbound:\n  ca_file: %q\n", caFile), 1)
}

// benchFreeAddr returns a loopback address with a port that was free a moment ago. `llmgate serve`
// does not announce the port it bound, so the bench picks it.
func benchFreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitGatewayReady polls the gateway's readiness endpoint until it answers 200, the process
// exits, or a minute passes (migrations on a slow disk take a while).
func waitGatewayReady(ctx context.Context, gw *benchChild, publicURL string) error {
	deadline := time.Now().Add(time.Minute)
	cl := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, publicURL+"/health/ready", nil)
		if err != nil {
			return err
		}
		if resp, err := cl.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-gw.exited:
			return fmt.Errorf("gateway exited during start-up: %v%s", gw.err, gw.lastLines())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway not ready at %s/health/ready within a minute%s", publicURL, gw.lastLines())
		}
	}
}

// Gateway metrics the bench reads: the usage pipeline's counters, so the report shows that every
// measured request left a usage record, and the quota limiter's, to tell admissions from other
// quota calls to Redis and to catch decisions made without Redis.
const (
	metricUsageWritten    = "llmgate_usage_written_total"
	metricUsageDropped    = "llmgate_usage_dropped_total"
	metricQuotaDecisions  = "llmgate_quota_decisions_total"
	metricQuotaFallbacks  = "llmgate_quota_fallback_decisions_total"
	metricQuotaRedisCalls = "llmgate_quota_redis_seconds_count"
	// metricAccessLogDropped counts access-log lines the gateway dropped (its writer fell behind);
	// absent when the access log is off.
	metricAccessLogDropped = "llmgate_access_log_dropped_total"
)

// gatewayMetrics reads the gateway's /metrics and returns, for each of names that has series, the
// sum of its series' values (a name without any series yet is left out).
func gatewayMetrics(ctx context.Context, adminURL string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	m, err := parseMetrics(resp.Body, names)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return m, nil
}

// parseMetrics sums the series of names in the Prometheus text format (which the gateway writes
// without timestamps, so a sample's value is its line's last field).
func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line+" ", "{ ")]
		if !slices.Contains(names, name) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		m[name] += v
	}
	return m, sc.Err()
}

// announceWatcher passes a child's stdout on to next and reports the URL of the first line that
// starts with prefix.
type announceWatcher struct {
	prefix string
	found  chan string
	next   io.Writer
	line   []byte
	done   bool // found, or nothing to look for: pass through only
}

func (w *announceWatcher) Write(p []byte) (int, error) {
	if !w.done {
		w.line = append(w.line, p...)
		for {
			i := bytes.IndexByte(w.line, '\n')
			if i < 0 {
				break
			}
			line := strings.TrimSpace(string(w.line[:i]))
			w.line = w.line[i+1:]
			if u, ok := strings.CutPrefix(line, w.prefix); ok {
				w.found <- u
				w.done, w.line = true, nil
				break
			}
		}
	}
	return w.next.Write(p)
}

// outputTail keeps the last max bytes written to it; it is safe for concurrent use.
type outputTail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *outputTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept output.
func (t *outputTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func formatLastLines(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return "; its output ends with:\n" + s
}

// lastLines formats the child's kept output and logged lines for an error message.
func (c *benchChild) lastLines() string {
	logged, _ := c.logged()
	return formatLastLines(logged)
}

// accessLineMark is in every access-log line of the gateway (gateway.appendEntry) and in no other.
var accessLineMark = []byte(`"msg":"access","request_id":`)

// logged returns what the child wrote other than access-log lines, the last 16 KiB of it, and
// the number of access-log lines. For a child whose stderr is a file it reads the whole file
// (hundreds of MB after a long run: call it outside the measurements).
func (c *benchChild) logged() (string, int64) {
	if c.log == "" {
		return c.out.String(), 0
	}
	tail := &outputTail{max: 16 << 10}
	_, _ = tail.Write([]byte(c.out.String()))
	f, err := os.Open(c.log)
	if err != nil {
		_, _ = tail.Write([]byte("bench: " + err.Error() + "\n"))
		return tail.String(), 0
	}
	defer f.Close()
	var access int64
	r := bufio.NewReaderSize(f, 256<<10)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if bytes.Contains(line, accessLineMark) {
				access++
			} else {
				_, _ = tail.Write(line)
			}
		}
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer is no access-log line: keep its pieces as they come.
			continue
		}
		if err != nil {
			if err != io.EOF {
				_, _ = tail.Write([]byte("bench: reading " + c.log + ": " + err.Error() + "\n"))
			}
			return tail.String(), access
		}
	}
}
