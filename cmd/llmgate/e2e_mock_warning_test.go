package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/adminclient"
	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/providers/mock"
)

// statusWarnings is what GET /v1/status says of simulated answers.
type statusWarnings struct {
	Warnings []string `json:"warnings"`
	Models   []struct {
		ID   string `json:"id"`
		Mock bool   `json:"mock"`
	} `json:"models"`
}

// mockModels lists the models /v1/status marks as served by the mock.
func (s statusWarnings) mockModels() []string {
	var out []string
	for _, m := range s.Models {
		if m.Mock {
			out = append(out, m.ID)
		}
	}
	return out
}

func getStatus(t *testing.T, baseURL, key string) statusWarnings {
	t.Helper()
	var s statusWarnings
	tr := &http.Transport{}
	defer tr.CloseIdleConnections() // no idle connection outlives the test (the suite's leak check)
	gatewaytest.Client{T: t, BaseURL: baseURL, HTTP: &http.Client{Transport: tr}, Key: key}.GetJSON("/status", &s)
	return s
}

// mockWarnLines are the WARN lines of a JSON log that name the mock provider.
func mockWarnLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Level == "WARN" && strings.Contains(l.Msg, "mock") {
			out = append(out, line)
		}
	}
	return out
}

// TestServeWithoutConfigWarnsOfMock: `llmgate serve` with no config answers real model names from
// the built-in mock; it says so once at start, in a WARN line naming the models and what to do,
// and in GET /v1/status.
func TestServeWithoutConfigWarnsOfMock(t *testing.T) {
	cmd := exec.Command(llmgateBinary(t), "serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	cmd.Env, cmd.Dir = append(cleanEnviron(), "LLMGATE_ADMIN_TOKEN="+testAdminToken), t.TempDir()
	gw := startGatewayProcess(t, cmd)
	var lines []string
	waitFor(t, 10*time.Second, "a WARN line about the mock provider", func() bool {
		lines = mockWarnLines(gw.log.String())
		return len(lines) > 0
	})
	for _, want := range []string{"gpt-4o-mini", "text-embedding-3-small", "configs/production.yaml"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the warning does not name %s: %s", want, lines[0])
		}
	}
	k, err := adminclient.New(gw.adminURL, testAdminToken).CreateKey(context.Background(), createKeyBody{Name: "status"})
	if err != nil {
		t.Fatal(err)
	}
	s := getStatus(t, gw.url+"/v1", k.Key)
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "gpt-4o-mini") || !strings.Contains(s.Warnings[0], "mock") {
		t.Errorf("/v1/status warnings = %q, want one naming the mock and its models", s.Warnings)
	}
	if got := strings.Join(s.mockModels(), ","); got != "gpt-4o-mini,text-embedding-3-small" {
		t.Errorf("/v1/status marks %q as mock", got)
	}
	if n := len(mockWarnLines(gw.log.String())); n != 1 {
		t.Errorf("%d WARN lines about the mock, want one", n)
	}
}

// TestDemoDoesNotWarnOfMock: demo is meant to run on the mock; its log has no WARN about it
// (its printed text says so already).
func TestDemoDoesNotWarnOfMock(t *testing.T) {
	cmd := exec.Command(llmgateBinary(t), "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	cmd.Env, cmd.Dir = cleanEnviron(), t.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Stop with Ctrl-C") {
				ok = true
				break
			}
		}
		ready <- ok
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("demo ended before printing its text")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not print its text")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo: %v\n%s", err, &stderr)
	}
	if lines := mockWarnLines(stderr.String()); len(lines) > 0 {
		t.Errorf("demo warned of the mock: %s", lines)
	}
}

// TestMockWarningFollowsReload: a reload that removes the mock provider drops the warning from
// /v1/status; one that brings it back warns again, in the log too.
func TestMockWarningFollowsReload(t *testing.T) {
	up := httptest.NewServer(mock.NewHandler(mock.Options{}))
	defer up.Close()
	const real = `
providers:
  - {name: up, type: openai, base_url: "` + "URL" + `/v1", api_key: k, allow_private_network: true}
`
	withMock := strings.Replace(real, "URL", up.URL, 1) + `  - {name: sim, type: mock}
models:
  - name: gpt-4o
    deployments: [{provider: up, model: gpt-4o}]
  - name: gpt-4o-mini
    deployments: [{provider: up, model: gpt-4o-mini}, {provider: sim, model: mock-gpt, priority: 1}]
`
	without := strings.Replace(real, "URL", up.URL, 1) + `models:
  - name: gpt-4o
    deployments: [{provider: up, model: gpt-4o}]
  - name: gpt-4o-mini
    deployments: [{provider: up, model: gpt-4o-mini}]
`
	path := writeConfig(t, withMock)
	cfg, err := loadConfig(path, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.AdminListen, cfg.DataDir, cfg.AdminToken = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), testAdminToken
	var logBuf testlog.Buffer
	a, err := start(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.shutdown(ctx)
	}()
	a.warnOfMock()                     // as serve does after start
	keepListeners := func(c *Config) { // the test's listeners and store, as at start
		c.Listen, c.AdminListen, c.DataDir, c.AdminToken = cfg.Listen, cfg.AdminListen, cfg.DataDir, cfg.AdminToken
	}
	k, err := adminclient.New(a.adminURL, testAdminToken).CreateKey(context.Background(), createKeyBody{Name: "status"})
	if err != nil {
		t.Fatal(err)
	}
	base := a.publicURL + "/v1"
	if s := getStatus(t, base, k.Key); len(s.Warnings) != 1 || strings.Join(s.mockModels(), ",") != "gpt-4o-mini" {
		t.Fatalf("with a mock fallback: warnings %q, mock models %q", s.Warnings, s.mockModels())
	}
	if n := len(mockWarnLines(logBuf.String())); n != 1 {
		t.Fatalf("%d WARN lines at start, want 1:\n%s", n, logBuf.String())
	}

	if err := os.WriteFile(path, []byte(without), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.reload(path, keepListeners); err != nil {
		t.Fatal(err)
	}
	if s := getStatus(t, base, k.Key); len(s.Warnings) != 0 || len(s.mockModels()) != 0 {
		t.Errorf("after the mock was removed: warnings %q, mock models %q", s.Warnings, s.mockModels())
	}

	if err := os.WriteFile(path, []byte(withMock), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.reload(path, keepListeners); err != nil {
		t.Fatal(err)
	}
	if s := getStatus(t, base, k.Key); len(s.Warnings) != 1 {
		t.Errorf("after the mock came back: warnings %q", s.Warnings)
	}
	if n := len(mockWarnLines(logBuf.String())); n != 2 {
		t.Errorf("%d WARN lines after the mock came back, want 2:\n%s", n, logBuf.String())
	}
}
