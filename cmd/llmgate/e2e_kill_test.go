package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// llmgateBinary builds the gateway once per test run.
func llmgateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "llmgate-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "llmgate")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serveProcess runs `llmgate serve` with the env's configuration as a separate process and
// returns it with its public URL, read from its start-up log line.
func (e *env) serveProcess(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	p := e.serveProcessIn(t, t.TempDir())
	return p.cmd, p.url
}

// gatewayProcess is `llmgate serve` running as a child process of the test.
type gatewayProcess struct {
	cmd      *exec.Cmd
	url      string // public listener, http://host:port
	adminURL string
	log      *procLog // its stderr

	waitOnce sync.Once
	done     chan struct{} // closed when cmd.Wait has returned
	waitErr  error
}

// exited waits for the process (cmd.Wait, once) in the background and returns a channel closed
// once it has exited and its log was read to the end; waitErr is set then. Do not call it while
// another goroutine is in cmd.Wait.
func (p *gatewayProcess) exited() <-chan struct{} {
	p.waitOnce.Do(func() {
		go func() {
			err := p.cmd.Wait()
			<-p.log.eof
			p.waitErr = err
			close(p.done)
		}()
	})
	return p.done
}

// serveProcessIn is serveProcess with dataDir as the process's data_dir, so that a test can
// start a gateway again on the usage spool a previous one left there. The process gets the env's
// database, Redis, providers, models, gateway.key_cache_ttl, usage and shutdown sections; it is killed when
// the test ends, if still running.
func (e *env) serveProcessIn(t *testing.T, dataDir string) *gatewayProcess {
	t.Helper()
	cfg := e.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: %q\ndatabase_url: %q\nredis_url: %q\nadmin_token: %q\nlog: {level: info}\n",
		dataDir, cfg.DatabaseURL, cfg.RedisURL, cfg.AdminToken)
	fmt.Fprintf(&b, "gateway: {key_cache_ttl: %s}\n", cfg.Gateway.KeyCacheTTL)
	u := cfg.Usage
	fmt.Fprintf(&b, "usage: {queue_size: %d, batch_size: %d, flush_interval: %s, write_retries: %d, write_timeout: %s, spool_sync_interval: %s, replay_interval: %s}\n",
		u.QueueSize, u.BatchSize, u.FlushInterval, u.WriteRetries, u.WriteTimeout, u.SpoolSyncInterval, u.ReplayInterval)
	fmt.Fprintf(&b, "shutdown: {pre_stop_delay: %s, drain_timeout: %s, flush_timeout: %s}\n",
		cfg.Shutdown.PreStopDelay, cfg.Shutdown.DrainTimeout, cfg.Shutdown.FlushTimeout)
	fmt.Fprintf(&b, "outbound: {allow: [%s]}\n", strings.Join(cfg.Outbound.Allow, ", "))
	fmt.Fprintf(&b, "quota: {default_tier: open, tiers: {open: {}}, lease_ttl: %s}\nproviders:\n", cfg.Quota.LeaseTTL)
	for _, p := range cfg.Providers {
		fmt.Fprintf(&b, "  - {name: %s, type: %s, base_url: %q, api_key: %q}\n", p.Name, p.Type, p.BaseURL, p.APIKey)
	}
	b.WriteString("models:\n")
	for _, m := range cfg.Models {
		fmt.Fprintf(&b, "  - name: %s\n    deployments:\n", m.Name)
		for _, d := range m.Deployments {
			fmt.Fprintf(&b, "      - {provider: %s, model: %s, priority: %d}\n", d.Provider, d.Model, d.Priority)
		}
	}
	path := filepath.Join(t.TempDir(), "llmgate.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(llmgateBinary(t), "serve", "--config", path)
	cmd.Env = append(os.Environ(), "LLMGATE_ADMIN_TOKEN=") // the file's token, not the caller's
	return startGatewayProcess(t, cmd)
}

// startGatewayProcess starts cmd, an `llmgate serve` command line, and returns once its start-up
// log line names its listeners; the process is killed when the test ends, if still running.
func startGatewayProcess(t *testing.T, cmd *exec.Cmd) *gatewayProcess {
	t.Helper()
	p := &gatewayProcess{cmd: cmd, log: &procLog{started: make(chan procStart, 1), eof: make(chan struct{})}, done: make(chan struct{})}
	// Stderr is a pipe of our own rather than cmd.StderrPipe, which Wait closes: the log is read
	// to its end (EOF: the process is gone) whoever waits for the process, and a caller may call
	// cmd.Wait itself.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = w
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	go p.log.readFrom(r)
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.exited() })
	select {
	case s := <-p.log.started:
		p.url, p.adminURL = s.listen, s.admin
		return p
	case <-p.log.eof:
		t.Fatalf("llmgate serve exited during start:\n%s", p.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("llmgate serve did not start:\n%s", p.log)
	}
	return nil
}

// procStart is what a gateway's start-up log line says.
type procStart struct{ listen, admin string }

// procLog is a child gateway's stderr (JSON log lines): it reports the start-up line and keeps
// the last lines for failure messages.
type procLog struct {
	started chan procStart // buffered: the first start-up line
	eof     chan struct{}  // closed when the process's stderr is closed: it has exited

	mu    sync.Mutex
	rest  []byte   // an incomplete last line
	lines []string // the last procLogLines lines
}

const procLogLines = 200

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rest = append(l.rest, p...)
	for {
		i := bytes.IndexByte(l.rest, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := l.rest[:i]
		var s struct {
			Msg         string `json:"msg"`
			Listen      string `json:"listen"`
			AdminListen string `json:"admin_listen"`
		}
		if json.Unmarshal(line, &s) == nil && s.Msg == "llmgate started" {
			select {
			case l.started <- procStart{s.Listen, s.AdminListen}:
			default:
			}
		}
		if len(l.lines) == procLogLines {
			l.lines = l.lines[1:]
		}
		l.lines = append(l.lines, string(line))
		l.rest = l.rest[i+1:]
	}
}

// readFrom reads the process's stderr until it ends.
func (l *procLog) readFrom(r *os.File) {
	_, _ = io.Copy(l, r)
	r.Close()
	close(l.eof)
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestKill9FreesConcurrencySlots: a gateway killed with SIGKILL while holding a user's
// concurrency slots leaves them to expire with their lease: another replica refuses the user at
// first and admits it again within the lease TTL, with no operator action.
func TestKill9FreesConcurrencySlots(t *testing.T) {
	const ttl = 2 * time.Second
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)), func(c *Config) { c.Quota.LeaseTTL = ttl })
	k := e.newKey(createKeyBody{Name: "victim", UserID: "kill9-user"})
	e.putPolicy("/admin/quota/policy/kill9-user", `{"userConcurrent":2}`)
	proc, url := e.serveProcess(t)
	// two long streams through the process fill the user's two slots
	var bodies []io.ReadCloser
	for i := 0; i < 2; i++ {
		req, _ := newStreamRequest(context.Background(), url, k.Key)
		resp, err := e.http.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d through the process: %v %v", i, err, resp)
		}
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	killed := time.Now()
	for _, b := range bodies {
		b.Close()
	}
	if s := e.chatStatus(e.app, k.Key, "gpt-test"); s != 429 {
		t.Fatalf("right after the kill: status %d, want 429 (the dead gateway's leases still count)", s)
	}
	waitFor(t, ttl+3*time.Second, "the dead gateway's slots to expire", func() bool {
		return e.chatStatus(e.app, k.Key, "gpt-test") == 200
	})
	if d := time.Since(killed); d > ttl+time.Second {
		t.Errorf("slots freed %v after the kill, lease TTL %v", d, ttl)
	} else {
		t.Logf("slots freed %v after the kill (lease TTL %v)", d, ttl)
	}
}
