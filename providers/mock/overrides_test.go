package mock

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

func TestStatusOverride(t *testing.T) {
	tests := []struct {
		status   int
		wantType string
		wantCode any // go-openai reads a null code as 0
	}{
		{400, "invalid_request_error", 0},
		{401, "invalid_request_error", "invalid_api_key"},
		{429, "rate_limit_error", "rate_limit_exceeded"},
		{500, "server_error", 0},
		{503, "server_error", 0},
	}
	srv, h := startServer(t, Options{})
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			client := newClient(t, srv, `{"status":`+strconv.Itoa(tt.status)+`}`)
			var err error
			if stream {
				var s *openai.ChatCompletionStream
				if s, err = client.CreateChatCompletionStream(testCtx(t), chatRequest(true, true, 0)); err == nil {
					s.Close()
				}
			} else {
				_, err = client.CreateChatCompletion(testCtx(t), chatRequest(false, false, 0))
			}
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("status %d, stream %v: want an APIError, got %v", tt.status, stream, err)
			}
			if apiErr.HTTPStatusCode != tt.status || apiErr.Type != tt.wantType || apiErr.Code != tt.wantCode ||
				apiErr.Message == "" {
				t.Errorf("status %d, stream %v: %#v", tt.status, stream, apiErr)
			}
		}
	}
	if s := h.Stats(); s.Errors != int64(2*len(tests)) || s.Completed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestErrorBodyOverride(t *testing.T) {
	tests := []struct {
		mock, wantBody, wantType string
		wantStatus               int
	}{
		{`{"status":502,"error_body":"<html>bad gateway</html>"}`, "<html>bad gateway</html>",
			"text/plain; charset=utf-8", 502},
		{`{"error_body":"{\"detail\":\"boom\"}"}`, `{"detail":"boom"}`, "application/json", 500},
	}
	srv, _ := startServer(t, Options{})
	for _, tt := range tests {
		resp, body := post(t, srv, "/v1/chat/completions",
			`{"model":"m","stream":true,"messages":[],"mock":`+tt.mock+`}`)
		if resp.StatusCode != tt.wantStatus || body != tt.wantBody || resp.Header.Get("Content-Type") != tt.wantType {
			t.Errorf("%s: %d %q %q", tt.mock, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}

func TestFailAfter(t *testing.T) {
	tests := []struct {
		failAfter, chunks, wantContent int
	}{
		{failAfter: 0, chunks: 5, wantContent: 0},
		{failAfter: 2, chunks: 5, wantContent: 2},
		{failAfter: 9, chunks: 5, wantContent: 5}, // dropped before the finish chunk
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.failAfter), func(t *testing.T) {
			srv, h := startServer(t, Options{Chunks: tt.chunks})
			client := newClient(t, srv, `{"fail_after":`+strconv.Itoa(tt.failAfter)+`}`)
			stream, err := client.CreateChatCompletionStream(testCtx(t), chatRequest(true, true, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			content := 0
			for {
				c, err := stream.Recv()
				if err != nil {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("stream ended with %v, want an unexpected EOF", err)
					}
					break
				}
				if c.Choices[0].FinishReason != "" {
					t.Errorf("finish chunk in a dropped stream")
				}
				if c.Choices[0].Delta.Content != "" {
					content++
				}
			}
			if content != tt.wantContent {
				t.Errorf("%d content chunks, want %d", content, tt.wantContent)
			}
			waitFor(t, "aborted", func() bool { return h.Stats().Aborted == 1 })
		})
	}
}

func TestPacing(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		override string
		minGap   time.Duration
	}{
		{name: "interval_ms", opts: Options{Chunks: 5}, override: `{"interval_ms":60}`, minGap: 60 * time.Millisecond},
		{name: "tokens_per_second", opts: Options{Chunks: 5, TokensPerChunk: 2, TokensPerSecond: 40},
			minGap: 50 * time.Millisecond},
		{name: "interval_ms beats tokens_per_second", opts: Options{Chunks: 5, TokensPerSecond: 1},
			override: `{"interval_ms":40}`, minGap: 40 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := startServer(t, tt.opts)
			start := time.Now()
			stream, err := newClient(t, srv, tt.override).CreateChatCompletionStream(testCtx(t),
				chatRequest(true, false, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			var times []time.Time
			for {
				c, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.Choices[0].Delta.Content != "" {
					times = append(times, time.Now())
				}
			}
			if len(times) != 5 {
				t.Fatalf("%d content chunks", len(times))
			}
			// Timers never fire early, so the last chunk cannot arrive before four gaps have passed
			// since the request was sent. A single gap seen by the client may be shorter than the
			// server's (a late delivery of the chunk before it, on a loaded machine), so the lower
			// bound is on the whole; the upper bound only guards against a stuck stream.
			if total := times[len(times)-1].Sub(start); total < time.Duration(len(times)-1)*tt.minGap {
				t.Errorf("last chunk %v after the request, want at least %v", total, time.Duration(len(times)-1)*tt.minGap)
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap > tt.minGap+time.Second {
					t.Errorf("gap %d: %v, want about %v", i, gap, tt.minGap)
				}
			}
		})
	}
}

func TestLatencyAndTTFT(t *testing.T) {
	srv, _ := startServer(t, Options{LatencyMS: 100, TTFTMS: 150, Chunks: 2})

	start := time.Now()
	if _, err := newClient(t, srv, "").CreateChatCompletion(testCtx(t), chatRequest(false, false, 0)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("non-stream answered after %v, want ≥ latency_ms", d)
	}

	start = time.Now()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	headers := time.Since(start)
	if _, err := readEvent(bufio.NewReader(resp.Body)); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	if first < 150*time.Millisecond || first-headers < 100*time.Millisecond {
		t.Errorf("headers after %v, first chunk after %v; want headers at once, the chunk after ttft_ms", headers, first)
	}
}

func TestCancellation(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"hang_ms", `{"model":"m","messages":[],"mock":{"hang_ms":20000}}`},
		{"latency_ms", `{"model":"m","messages":[],"mock":{"latency_ms":20000}}`},
		{"between chunks", `{"model":"m","stream":true,"messages":[],"mock":{"interval_ms":20000}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, h := startServer(t, Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
				strings.NewReader(tt.body))
			if resp, err := srv.Client().Do(req); err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Fatal("the request completed despite the cancellation")
				}
			}
			start := time.Now()
			waitFor(t, "the cancellation to be counted", func() bool {
				s := h.Stats()
				return s.Canceled == 1 && s.InFlight == 0
			})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the handler noticed the cancellation after %v", d)
			}
		})
	}
}

func TestErrorRate(t *testing.T) {
	run := func(h *Handler, override string) []int {
		codes := make([]int, 200)
		for i := range codes {
			rec := httptest.NewRecorder()
			body := `{"model":"m","messages":[]` + override + `}`
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
			codes[i] = rec.Code
		}
		return codes
	}
	a := run(NewHandler(Options{ErrorRate: 0.3, Seed: 42}), "")
	b := run(NewHandler(Options{ErrorRate: 0.3, Seed: 42}), "")
	if !slices.Equal(a, b) {
		t.Errorf("the same seed failed different requests")
	}
	failed := 0
	for _, c := range a {
		if c == http.StatusInternalServerError {
			failed++
		} else if c != http.StatusOK {
			t.Fatalf("status %d", c)
		}
	}
	if failed < 30 || failed > 90 {
		t.Errorf("%d of 200 failed at error_rate 0.3", failed)
	}
	for _, c := range run(NewHandler(Options{}), `,"mock":{"error_rate":1}`) {
		if c != http.StatusInternalServerError {
			t.Fatalf("error_rate 1 answered %d", c)
		}
	}
	// A request's own seed fixes its fate whatever came before; different seeds differ.
	seen := map[int]bool{}
	for seed := range 20 {
		codes := run(NewHandler(Options{}), `,"mock":{"error_rate":0.5,"seed":`+strconv.Itoa(seed)+`}`)
		if slices.Min(codes) != slices.Max(codes) {
			t.Fatalf("seed %d: the same request got different answers", seed)
		}
		seen[codes[0]] = true
	}
	if len(seen) != 2 {
		t.Errorf("20 seeds at error_rate 0.5 all answered %v", seen)
	}
}

func TestRequireKey(t *testing.T) {
	srv, _ := startServer(t, Options{RequireKey: "sk-upstream"})
	body := `{"model":"m","messages":[]}`
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer sk-other", 401}, {"Bearer sk-upstream", 200}} {
		resp, got := post(t, srv, "/v1/chat/completions", body, "Authorization", tt.auth)
		if resp.StatusCode != tt.want {
			t.Errorf("Authorization %q: %d %s", tt.auth, resp.StatusCode, got)
		}
	}
	// require_key in a request checks that request alone.
	open, _ := startServer(t, Options{})
	for _, tt := range []struct {
		auth string
		want int
	}{{"Bearer sk-other", 401}, {"Bearer sk-request", 200}} {
		resp, got := post(t, open, "/v1/chat/completions", `{"model":"m","messages":[],"mock":{"require_key":"sk-request"}}`,
			"Authorization", tt.auth)
		if resp.StatusCode != tt.want {
			t.Errorf("require_key override, Authorization %q: %d %s", tt.auth, resp.StatusCode, got)
		}
	}
	// The introspection endpoints stay open, so tests can look at what was rejected.
	if resp, _ := do(t, srv, mustRequest(t, http.MethodGet, srv.URL+"/_mock/stats")); resp.StatusCode != 200 {
		t.Errorf("stats: %d", resp.StatusCode)
	}
}
