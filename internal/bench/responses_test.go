package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers/mock"
)

// TestResponsesStreamAgainstMock sends the bench's Responses stream to the simulated upstream,
// straight and through the pass-through: both must count as complete, the first text delta
// timed before the end.
func TestResponsesStreamAgainstMock(t *testing.T) {
	up := httptest.NewServer(mock.NewHandler(mock.Options{Chunks: 3, TokensPerSecond: 10}))
	t.Cleanup(up.Close)
	pt := newPassThrough(up.URL)
	proxy := httptest.NewServer(pt)
	t.Cleanup(func() {
		proxy.Close()
		pt.client.CloseIdleConnections()
	})
	for _, tc := range []struct{ name, url string }{{"direct", up.URL}, {"baseline", proxy.URL}} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestTarget(t, tc.url)
			if err := tg.enableResponses(tc.url); err != nil {
				t.Fatal(err)
			}
			s, err := newBenchWorker(tg, 3).do(context.Background(), shapeResponsesStream)
			if err != nil {
				t.Fatalf("Responses stream: %v", err)
			}
			if s.ttft <= 0 || s.total-s.ttft < 150*time.Millisecond {
				t.Errorf("first delta after %v, whole stream %v: want the first delta about 200 ms before the end", s.ttft, s.total)
			}
			if got := tg.sentResponses.Load(); got != 1 || tg.sent.Load() != 1 {
				t.Errorf("sent %d, of them Responses %d; want 1 and 1", tg.sent.Load(), got)
			}
		})
	}
}

func TestResponsesStreamRejectsIncompleteStreams(t *testing.T) {
	ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
	delta := ev("response.output_text.delta", `{"type":"response.output_text.delta","delta":"hi"}`)
	created := ev("response.created", `{"type":"response.created","response":{"id":"resp_1"}}`)
	completed := ev("response.completed", `{"type":"response.completed","response":{"id":"resp_1","usage":{"input_tokens":3}}}`)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // "" for a success
	}{
		{"complete", http.StatusOK, created + delta + delta + completed, ""},
		{"error status", http.StatusBadRequest, `{"error":{"message":"no"}}`, "HTTP 400"},
		{"no terminal event", http.StatusOK, created + delta + delta, "without response.completed after 2 text deltas"},
		{"short of deltas", http.StatusOK, created + delta + completed, "1 text deltas, want 2"},
		{"incomplete", http.StatusOK, created + delta + delta + ev("response.incomplete", `{"type":"response.incomplete"}`), "ended with response.incomplete"},
		{"failed", http.StatusOK, created + delta + ev("response.failed", `{"type":"response.failed"}`), "ended with response.failed"},
		{"error event", http.StatusOK, created + ev("error", `{"type":"error","message":"boom"}`), "ended with error"},
		{"chat stream", http.StatusOK, `data: {"choices":[{"delta":{"content":"hi"}}]}` + "\n\ndata: [DONE]\n\n", "without response.completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotPath string
			var gotBody []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.Path
				gotBody, _ = io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			tg := newTestTarget(t, srv.URL)
			if err := tg.enableResponses(srv.URL); err != nil {
				t.Fatal(err)
			}
			_, err := newBenchWorker(tg, 2).do(context.Background(), shapeResponsesStream)
			if gotPath != "/v1/responses" || !bytes.Contains(gotBody, []byte(`"input":`)) || !bytes.Contains(gotBody, []byte(`"stream":true`)) {
				t.Errorf("request %s %s; want a streamed Responses call to /v1/responses", gotPath, gotBody)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("err = %v; want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v; want one mentioning %q", err, tc.want)
			}
		})
	}
}

// responsesRounds is a report of three rounds whose chat and Responses stream RPS are given per
// round for direct and gateway (baseline and redis-less).
func responsesRounds(directChat, gatewayChat, directResp, gatewayResp [3]float64) *benchReport {
	r := &benchReport{Settings: benchSettings{Concurrency: 32, StreamRPS: true, ResponsesDuration: "5s"}}
	for _, name := range []string{"direct", "baseline", "gateway"} {
		r.Paths = append(r.Paths, &pathResult{Name: name})
	}
	for i := range 3 {
		r.Paths[pathDirect].Rounds = append(r.Paths[pathDirect].Rounds, pathRound{RPS: 1000, StreamRPS: directChat[i], ResponsesRPS: directResp[i]})
		r.Paths[pathBaseline].Rounds = append(r.Paths[pathBaseline].Rounds, pathRound{RPS: 500, StreamRPS: directChat[i] / 2})
		r.Paths[pathGateway].Rounds = append(r.Paths[pathGateway].Rounds, pathRound{RPS: 400, StreamRPS: gatewayChat[i], ResponsesRPS: gatewayResp[i],
			CPUPerStream: benchDuration(180 * time.Microsecond), CPUPerResponses: benchDuration(240 * time.Microsecond)})
	}
	return r
}

func TestResponsesRatioAndFloor(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		gatewayResp           [3]float64
		wantRatio, wantVsChat float64
		wantMet               string
	}{
		// Chat stream ratios per round: 0.50, 0.40, 0.45 (median 0.45).
		{"equal", [3]float64{2500, 1600, 2025}, 0.45, 0, "met"},          // 0.50, 0.40, 0.45 of direct's 5000, 4000, 4500
		{"0.04 below", [3]float64{2300, 1440, 1845}, 0.41, -0.04, "met"}, // 0.46, 0.36, 0.41
		{"0.10 below", [3]float64{2000, 1200, 1575}, 0.35, -0.10, "MISSED"},
		{"above", [3]float64{4000, 3200, 3600}, 0.80, 0.35, "met"}, // a cheaper Responses path is no failure
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := responsesRounds([3]float64{6000, 5000, 5000}, [3]float64{3000, 2000, 2250},
				[3]float64{5000, 4000, 4500}, tc.gatewayResp)
			r.summarize()
			q := r.Ratios.Responses
			if q == nil {
				t.Fatal("no Responses ratios")
			}
			if !near(q.RPS, tc.wantRatio) || !near(q.VsChat, tc.wantVsChat) || !near(r.Ratios.GatewayStreamRPS, 0.45) {
				t.Errorf("Responses ratio %.3f (%+.3f vs chat %.3f); want %.2f (%+.2f vs 0.45)", q.RPS, q.VsChat, r.Ratios.GatewayStreamRPS,
					tc.wantRatio, tc.wantVsChat)
			}
			if q.CPUPerStream != benchDuration(240*time.Microsecond) {
				t.Errorf("CPU per Responses stream %v, want 240µs", q.CPUPerStream)
			}
			if got := metOrMissed(r.Floors.Responses.Met); got != tc.wantMet || r.Floors.Responses.MaxBelowChat != 0.05 {
				t.Errorf("floor %+v: %s, want %s", r.Floors.Responses, got, tc.wantMet)
			}
			var out bytes.Buffer
			if err := r.writeText(&out); err != nil {
				t.Fatal(err)
			}
			line := lineWith(out.String(), "gateway/direct Responses stream RPS ratio")
			if !strings.Contains(line, "; floor ≥ chat stream ratio − 0.05: "+tc.wantMet+")") {
				t.Errorf("report line %q; want the floor %s", line, tc.wantMet)
			}
		})
	}
}

func TestResponsesReportLines(t *testing.T) {
	r := responsesRounds([3]float64{6000, 5000, 5000}, [3]float64{3000, 2000, 2250},
		[3]float64{5000, 4000, 4500}, [3]float64{2300, 1440, 1845})
	r.summarize()
	r.Paths[pathGateway].Usage = &usageReport{Sent: 1000, Written: 1000, Responses: 300}
	var out bytes.Buffer
	if err := r.writeText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []struct{ prefix, rest string }{
		{"gateway/direct Responses stream RPS ratio", "0.41  (chat stream 0.45, -0.04 per round; floor ≥ chat stream ratio − 0.05: met)"},
		{"gateway CPU per Responses stream", "240µs  (per chat stream 180µs)"},
		{"gateway usage records", "1000 written, 0 dropped  (1000 requests sent to it, 300 of them Responses streams)"},
		{"settings: Responses", "Responses streams 5s per RPS run, direct and gateway only"},
	} {
		line := lineWith(text, want.prefix)
		if !strings.HasSuffix(strings.Join(strings.Fields(line), " "), strings.Join(strings.Fields(want.rest), " ")) &&
			!strings.Contains(line, want.rest) {
			t.Errorf("line %q; want it to show %q", line, want.rest)
		}
	}
	// The table's column: the measured paths show their rate, the others a dash.
	header := lineWith(text, "path")
	if !strings.Contains(header, "Responses stream RPS c=32") {
		t.Errorf("table header %q without the Responses column", header)
	}
	if f := strings.Fields(lineWith(text, "baseline ")); len(f) < 9 || f[8] != "-" {
		t.Errorf("baseline row %q: want - in the Responses column", f)
	}
	var js bytes.Buffer
	if err := r.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"responses_stream_rps": 1845`, `"gateway_direct_responses_stream_rps"`, `"responses_requests_sent": 300`} {
		if !strings.Contains(js.String(), key) {
			t.Errorf("JSON without %s", key)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// lineWith returns the first line of text that starts with prefix (after leading spaces).
func lineWith(text, prefix string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), prefix) {
			return line
		}
	}
	return ""
}
