package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
			if _, err := w.do(ctx, false); err != nil {
				t.Fatalf("non-stream: %v", err)
			}
			s, err := w.do(ctx, true)
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
			_, err := newBenchWorker(newTestTarget(t, srv.URL), 2).do(context.Background(), tc.stream)
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
