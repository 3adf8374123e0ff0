package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/jsonappend"
)

// Every string survives the hand-made encoder as valid JSON with the same value (invalid UTF-8
// as U+FFFD, as encoding/json decodes it), and costs render as billing's exact decimals.
func TestAccessLineEncoding(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\n\r\t\x1f", "ünïcode ✓ 😀", "bad\xffutf8\xc3", "\u2028\u2029"} {
		var got string
		if err := json.Unmarshal(jsonappend.String(nil, s), &got); err != nil {
			t.Fatalf("%q: %s: %v", s, jsonappend.String(nil, s), err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if s == "bad\xffutf8\xc3" {
			want = "bad\ufffdutf8\ufffd"
		}
		if got != want {
			t.Errorf("%q round-trips as %q, want %q", s, got, want)
		}
	}
	for _, p := range []int64{0, 1, 999_999_999_999, 1_000_000_000_000, 1_234_500_000, -500_000_000_000, math.MaxInt64, math.MinInt64} {
		if got, want := string(appendPicoUSD(nil, p)), billing.FormatPico64(p); got != want {
			t.Errorf("%d pico-USD: %s, want %s", p, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0.000", 1500 * time.Nanosecond: "0.001", 12345678 * time.Nanosecond: "12.345", -time.Second: "0.000"} {
		if got := string(appendMillis(nil, d)); got != want {
			t.Errorf("%v: %s ms, want %s", d, got, want)
		}
	}
}

func benchEntry() *accessEntry {
	cost := int64(1_234_500_000)
	return &accessEntry{end: time.Now(), requestID: "01a24ad7-caa0-78f8-b43a-1cac5079f179", traceID: "0af7651916cd43dd8448eb211c80319c",
		keyPrefix: "sk-lg-AbCd", tenant: "default", user: "u1", model: "gpt-4o-mini", deployment: "openai/gpt-4o-mini",
		endpoint: "chat/completions", stream: true, status: 200, tokensIn: 120, tokensOut: 480, costPico: &cost,
		latency: 812 * time.Millisecond, ttft: 95 * time.Millisecond, overhead: 180 * time.Microsecond, upstream: 811 * time.Millisecond, attempts: 1}
}

// BenchmarkAccessLog compares the access log's hand-appended line with slog's JSON handler
// writing the same fields, both to io.Discard: what one line costs the request path besides
// the write itself.
func BenchmarkAccessLog(b *testing.B) {
	e := benchEntry()
	b.Run("appended", func(b *testing.B) {
		l := NewAccessLog(io.Discard, AccessLogOptions{})
		b.ReportAllocs()
		for b.Loop() {
			l.write(e)
		}
	})
	b.Run("slog", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(context.Background(), slog.LevelInfo, "access", slog.String("request_id", e.requestID), slog.String("trace_id", e.traceID),
				slog.String("client_request_id", e.clientRequestID), slog.String("key_prefix", e.keyPrefix), slog.String("tenant", e.tenant),
				slog.String("user", e.user), slog.String("model", e.model), slog.String("deployment", e.deployment),
				slog.String("endpoint", e.endpoint), slog.Bool("stream", e.stream), slog.Int("status", e.status),
				slog.String("error_type", e.errType), slog.String("error_code", e.errCode), slog.Int64("tokens_in", e.tokensIn),
				slog.Int64("tokens_out", e.tokensOut), slog.String("cost_usd", billing.FormatPico64(*e.costPico)),
				slog.Float64("latency_ms", float64(e.latency.Microseconds())/1000), slog.Float64("ttft_ms", float64(e.ttft.Microseconds())/1000),
				slog.Float64("overhead_ms", float64(e.overhead.Microseconds())/1000), slog.Float64("upstream_ms", float64(e.upstream.Microseconds())/1000),
				slog.Int("attempts", e.attempts))
		}
	})
}

// blockedWriter is an output that does not take anything until released, like a pipe nobody reads.
type blockedWriter struct {
	release chan struct{}
	n       atomic.Int64
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	w.n.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

// A request never waits on the access log's output: with the output blocked, lines beyond the
// queue are dropped and counted, and those queued are written once it moves again.
func TestAccessLogNeverBlocks(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	l := NewAccessLog(w, AccessLogOptions{})
	e := benchEntry()
	const extra = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < accessQueue+extra; i++ {
			l.write(e)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("write blocked on an output that does not move")
	}
	// The writer holds one batch (up to 64 KiB of lines) in its blocked Write; the queue holds
	// accessQueue more; the rest is dropped.
	if d := l.Dropped(); d == 0 || d > extra {
		t.Errorf("dropped %d lines, want between 1 and %d", d, extra)
	}
	close(w.release)
	l.Close()
	if got := uint64(w.n.Load()) + l.Dropped(); got != accessQueue+extra {
		t.Errorf("written %d + dropped %d = %d lines, want %d", w.n.Load(), l.Dropped(), got, accessQueue+extra)
	}
}

// An idle access log holds no batch: the writer's batch grows with the lines it gathers and is
// let go when a tick finds the queue empty, so what an idle gateway holds for it is the queue of
// line pointers alone (64 KiB), not also a batch's 64 KiB.
func TestAccessLogIdleHoldsNoBatch(t *testing.T) {
	const bound = 96 << 10
	live := func() int64 {
		runtime.GC()
		runtime.GC() // lineBufs keeps its buffers through the first
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := live()
	var w countingWriter
	l := NewAccessLog(&w, AccessLogOptions{})
	defer l.Close()
	time.Sleep(3 * accessFlushEvery)
	if got := live() - before; got > bound {
		t.Fatalf("a started, idle access log holds %.1f KiB of heap; want at most %d KiB", float64(got)/1024, bound>>10)
	}
	const n = 2000
	for range n {
		l.write(benchEntry())
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.lines.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := w.lines.Load(); got != n {
		t.Fatalf("%d of %d lines written", got, n)
	}
	time.Sleep(3 * accessFlushEvery)
	if got := live() - before; got > bound {
		t.Fatalf("an idle access log holds %.1f KiB of heap after %d lines; want at most %d KiB", float64(got)/1024, n, bound>>10)
	}
}

// countingWriter counts the lines written to it and keeps none of them.
type countingWriter struct{ lines atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}
