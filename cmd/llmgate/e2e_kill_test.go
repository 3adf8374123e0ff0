package main

import (
	"bufio"
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
	cfg := e.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: %q\ndatabase_url: %q\nredis_url: %q\nadmin_token: %q\nlog: {level: info}\n",
		t.TempDir(), cfg.DatabaseURL, cfg.RedisURL, cfg.AdminToken)
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
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "llmgate started" {
				found <- line.Listen
			}
		}
	}()
	select {
	case url := <-found:
		return cmd, url
	case <-time.After(30 * time.Second):
		t.Fatal("llmgate serve did not start")
	}
	return nil, ""
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
