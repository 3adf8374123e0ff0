package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gcGauges reads the gateway process's GOGC and its count of completed collections from its
// admin /metrics (the Go collector's go_gc_gogc_percent and go_gc_duration_seconds_count).
func gcGauges(t *testing.T, adminURL string) (gogc, cycles float64) {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	gogc, cycles = -1, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_gc_gogc_percent":
			gogc, _ = strconv.ParseFloat(value, 64)
		case "go_gc_duration_seconds_count":
			cycles, _ = strconv.ParseFloat(value, 64)
		}
	}
	if gogc < 0 || cycles < 0 {
		t.Fatalf("admin /metrics lacks go_gc_gogc_percent or go_gc_duration_seconds_count")
	}
	return gogc, cycles
}

// gcProcess starts `llmgate serve` on the built-in mock with extra config lines.
func gcProcess(t *testing.T, extra string) *gatewayProcess {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndata_dir: %q\nlog: {level: info, access: {enabled: false}}\n%s", dir, extra)
	path := filepath.Join(dir, "llmgate.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(llmgateBinary(t), "serve", "--config", path)
	cmd.Env = append(os.Environ(), "LLMGATE_ADMIN_TOKEN=", "GOGC=")
	return startGatewayProcess(t, cmd)
}

// allocate sends n requests with an unknown key: each is refused (401) and allocates a little.
func allocate(t *testing.T, url string, n int) {
	t.Helper()
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`
	for range n {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-llmgate-unknown")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a request with an unknown key: HTTP %d, want 401", resp.StatusCode)
		}
	}
}

// TestGCHeadroom: by default the gateway gives its small heap 32 MiB between collections (GOGC
// well above 100 once a collection has measured it), and gc_min_headroom_bytes: 0 leaves GOGC
// at the process's own 100 through the same traffic.
func TestGCHeadroom(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		p := gcProcess(t, "")
		deadline := time.Now().Add(30 * time.Second)
		for {
			gogc, cycles := gcGauges(t, p.adminURL)
			if gogc > 200 {
				t.Logf("GOGC %v after %v collections", gogc, cycles)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %v after %v collections and 30 s of traffic; want above 200 for a heap of a few MB", gogc, cycles)
			}
			allocate(t, p.url, 200)
		}
	})
	t.Run("off", func(t *testing.T) {
		p := gcProcess(t, "gc_min_headroom_bytes: 0\n")
		_, before := gcGauges(t, p.adminURL)
		deadline := time.Now().Add(30 * time.Second)
		for {
			allocate(t, p.url, 200)
			gogc, cycles := gcGauges(t, p.adminURL)
			if gogc != 100 {
				t.Fatalf("GOGC %v with gc_min_headroom_bytes: 0; want 100", gogc)
			}
			if cycles >= before+2 {
				return // collections ran and GOGC stayed
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %v collections in 30 s of traffic; the test needs two", cycles-before)
			}
		}
	})
}
