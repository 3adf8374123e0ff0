package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// accessLogRounds is a report of three rounds with direct, baseline, gateway, gateway+tracing and
// gateway-accesslog-off, whose RPS and stream RPS per round are given for direct, the gateway
// (access log at its default) and the gateway with it off.
func accessLogRounds(direct, gateway, off [3]float64) *benchReport {
	r := &benchReport{Settings: benchSettings{Concurrency: 32, StreamRPS: true}}
	for _, name := range []string{"direct", "baseline", "gateway", nameGatewayTracing, nameGatewayAccessLogOff} {
		r.Paths = append(r.Paths, &pathResult{Name: name})
	}
	for i := range 3 {
		r.Paths[0].Rounds = append(r.Paths[0].Rounds, pathRound{RPS: direct[i], StreamRPS: direct[i] / 4, P50: benchDuration(100 * time.Microsecond)})
		r.Paths[1].Rounds = append(r.Paths[1].Rounds, pathRound{RPS: direct[i] / 2, StreamRPS: direct[i] / 8})
		r.Paths[2].Rounds = append(r.Paths[2].Rounds, pathRound{RPS: gateway[i], StreamRPS: gateway[i] / 4,
			P50: benchDuration(300 * time.Microsecond), TTFTP50: benchDuration(400 * time.Microsecond), CPUPerRequest: benchDuration(100 * time.Microsecond)})
		r.Paths[3].Rounds = append(r.Paths[3].Rounds, pathRound{RPS: gateway[i] * 0.9, StreamRPS: gateway[i] / 4 * 0.9})
		r.Paths[4].Rounds = append(r.Paths[4].Rounds, pathRound{RPS: off[i], StreamRPS: off[i] / 4,
			P50: benchDuration(296 * time.Microsecond), TTFTP50: benchDuration(395 * time.Microsecond), CPUPerRequest: benchDuration(96 * time.Microsecond)})
	}
	return r
}

// TestAccessLogCostAndFloor: the access log's cost is the gateway's ratio to direct less the
// log-off gateway's of the same round, per round and as their median, non-stream and stream; the
// 0.02 floor is met when the gateway is at most that far below, in the text and the JSON report.
func TestAccessLogCostAndFloor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		off        [3]float64
		wantRounds [3]float64
		wantCost   float64
		wantMet    string
	}{
		// Gateway ratios per round: 0.40, 0.50, 0.45.
		{"0.01 below", [3]float64{410, 500, 470}, [3]float64{-0.01, 0, -0.02}, -0.01, "met"},
		{"0.03 below", [3]float64{430, 530, 470}, [3]float64{-0.03, -0.03, -0.02}, -0.03, "MISSED"},
		{"above", [3]float64{390, 480, 440}, [3]float64{0.01, 0.02, 0.01}, 0.01, "met"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := accessLogRounds([3]float64{1000, 1000, 1000}, [3]float64{400, 500, 450}, tc.off)
			r.summarize()
			q, f := r.Ratios.AccessLog, r.Floors.AccessLog
			if q == nil || f == nil {
				t.Fatal("no access log comparison")
			}
			for i, want := range tc.wantRounds {
				if len(q.CostRounds) != 3 || !near(q.CostRounds[i], want) || len(q.StreamCostRounds) != 3 || !near(q.StreamCostRounds[i], want) {
					t.Fatalf("per round %v (stream %v); want %v for both", q.CostRounds, q.StreamCostRounds, tc.wantRounds)
				}
			}
			if !near(q.Cost, tc.wantCost) || !near(q.StreamCost, tc.wantCost) {
				t.Errorf("median cost %+.3f, stream %+.3f; want %+.2f", q.Cost, q.StreamCost, tc.wantCost)
			}
			if !near(q.OffRPS, medianOf([]float64{tc.off[0] / 1000, tc.off[1] / 1000, tc.off[2] / 1000})) {
				t.Errorf("log-off ratio %.3f", q.OffRPS)
			}
			if q.AddedP50 != benchDuration(4*time.Microsecond) || q.AddedTTFT != benchDuration(5*time.Microsecond) ||
				q.CPUAdded != benchDuration(4*time.Microsecond) {
				t.Errorf("added p50 %v, TTFT %v, CPU %v; want +4µs, +5µs, +4µs", q.AddedP50, q.AddedTTFT, q.CPUAdded)
			}
			if f.MaxBelowOff != 0.02 || metOrMissed(f.Met) != tc.wantMet {
				t.Errorf("floor %+v; want 0.02, %s", f, tc.wantMet)
			}
			if r.Ratios.Tracing == nil || !near(r.Ratios.Tracing.VsGateway, -0.045) {
				t.Errorf("tracing %+v: its row must still be compared with the gateway's", r.Ratios.Tracing)
			}

			var out bytes.Buffer
			if err := r.writeText(&out); err != nil {
				t.Fatal(err)
			}
			line := lineWith(out.String(), "access log cost, gateway/direct RPS ratio")
			if !strings.Contains(line, "floor ≥ −0.02: "+tc.wantMet+")") || !strings.Contains(line, "per round") {
				t.Errorf("report line %q; want the per-round values and the floor %s", line, tc.wantMet)
			}
			if lineWith(out.String(), "access log cost, gateway/direct stream RPS ratio") == "" {
				t.Errorf("no stream line in\n%s", out.String())
			}
			out.Reset()
			if err := r.writeJSON(&out); err != nil {
				t.Fatal(err)
			}
			var j struct {
				Ratios struct {
					AccessLog map[string]any `json:"gateway_accesslog"`
				} `json:"ratios"`
				Floors struct {
					AccessLog map[string]any `json:"gateway_accesslog"`
				} `json:"floors"`
			}
			if err := json.Unmarshal(out.Bytes(), &j); err != nil {
				t.Fatal(err)
			}
			if c, ok := j.Ratios.AccessLog["gateway_minus_accesslog_off_direct_rps"].(float64); !ok || !near(c, tc.wantCost) ||
				j.Floors.AccessLog["met"] != (tc.wantMet == "met") {
				t.Errorf("JSON ratios %v, floors %v", j.Ratios.AccessLog, j.Floors.AccessLog)
			}
		})
	}
	// Without the path there is no comparison.
	r := accessLogRounds([3]float64{1000, 1000, 1000}, [3]float64{400, 500, 450}, [3]float64{400, 500, 450})
	r.Paths = r.Paths[:4]
	r.summarize()
	if r.Ratios.AccessLog != nil || r.Floors.AccessLog != nil {
		t.Errorf("without the path: %+v, %+v", r.Ratios.AccessLog, r.Floors.AccessLog)
	}
}

// TestChildStderrToFile: a child started with a log file writes its stderr there (not through the
// bench), and logged counts its access-log lines apart from the lines kept for messages.
func TestChildStderrToFile(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	access := `{"time":"2026-12-06T11:00:00.000000Z","level":"INFO","msg":"access","request_id":"r1","status":200}`
	script := "printf '%s\\n%s\\n' '" + access + "' '" + access + "' >&2; echo 'level=WARN msg=\"store slow\"' >&2"
	logPath := filepath.Join(t.TempDir(), "child.stderr")
	c, _, err := startBenchChild(context.Background(), "sh", sh, []string{"-c", script}, os.Environ(), "", logPath)
	if err != nil {
		t.Fatal(err)
	}
	<-c.exited
	if b, err := os.ReadFile(logPath); err != nil || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("log file %q, %v; want the child's three stderr lines", b, err)
	}
	logged, n := c.logged()
	if n != 2 || strings.TrimSpace(logged) != `level=WARN msg="store slow"` {
		t.Errorf("logged %q, %d access lines; want the warning alone and 2", logged, n)
	}
	if c.out.String() != "" {
		t.Errorf("stderr also reached the bench: %q", c.out.String())
	}
}
