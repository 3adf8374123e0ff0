package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/providers"
)

// withServerTiming turns the Server-Timing header on.
func withServerTiming() envOption {
	return func(c *envConfig) { c.ServerTiming = true }
}

// withAccessLog gives the gateway an access log writing to w, closed when the test ends (after
// the gateway's server).
func withAccessLog(t *testing.T, w io.Writer, o gateway.AccessLogOptions) envOption {
	l := gateway.NewAccessLog(w, o)
	t.Cleanup(l.Close)
	return func(c *envConfig) { c.accessLog = l }
}

// withLog sends the gateway's process log to w, as JSON.
func withLog(w io.Writer) envOption {
	return func(c *envConfig) { c.log = slog.New(slog.NewJSONHandler(w, nil)) }
}

// serverTiming parses a Server-Timing header into its durations in milliseconds.
func serverTiming(t *testing.T, h string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	re := regexp.MustCompile(`^([a-z]+);dur=([0-9]+\.[0-9]{3})$`)
	for _, part := range strings.Split(h, ", ") {
		m := re.FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("Server-Timing %q: entry %q is not name;dur=<ms with 3 decimals>", h, part)
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

// overhead reads llmgate_gateway_overhead_seconds for an endpoint: its sample count and sum.
func overhead(t *testing.T, reg *prometheus.Registry, endpoint string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "llmgate_gateway_overhead_seconds" {
			continue
		}
		if mf.GetType() != dto.MetricType_HISTOGRAM {
			t.Fatalf("llmgate_gateway_overhead_seconds is a %s", mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
				}
			}
		}
		return 0, 0
	}
	t.Fatal("no llmgate_gateway_overhead_seconds series")
	return 0, 0
}

// The gateway's own time is the request's minus the upstream's: an upstream that takes 300 ms
// shows in Server-Timing's upstream entry and leaves the gateway's entry and the overhead
// histogram small, for a whole answer and for a stream (whose header tells the time to its
// headers).
func TestOverheadAndServerTiming(t *testing.T) {
	const sleep = 300 * time.Millisecond
	e := newEnv(t, withServerTiming())
	ctx := context.Background()

	whole := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"mock":{"latency_ms":300}}`))
	io.Copy(io.Discard, whole.Body)
	whole.Body.Close()
	if whole.StatusCode != http.StatusOK {
		t.Fatalf("whole: status %d", whole.StatusCode)
	}
	st := serverTiming(t, whole.Header.Get("Server-Timing"))
	if st["upstream"] < float64(sleep.Milliseconds()) {
		t.Errorf("whole: upstream;dur=%.3f, want ≥ %d (the upstream's sleep)", st["upstream"], sleep.Milliseconds())
	}
	if _, ok := st["gw"]; !ok || st["gw"] > st["upstream"]/2 {
		t.Errorf("whole: gw;dur=%.3f, want present and well below upstream;dur=%.3f", st["gw"], st["upstream"])
	}

	// A stream whose headers come after 300 ms and whose body takes 5 × 100 ms more.
	stream := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}],"mock":{"hang_ms":300,"chunks":5,"interval_ms":100}}`))
	body, _ := io.ReadAll(stream.Body)
	stream.Body.Close()
	if stream.StatusCode != http.StatusOK || !strings.Contains(string(body), "[DONE]") {
		t.Fatalf("stream: status %d, body %q", stream.StatusCode, body)
	}
	st = serverTiming(t, stream.Header.Get("Server-Timing"))
	if st["upstream"] < float64(sleep.Milliseconds()) {
		t.Errorf("stream: upstream;dur=%.3f, want ≥ %d (time to the upstream's headers)", st["upstream"], sleep.Milliseconds())
	}
	if st["gw"] > st["upstream"]/2 {
		t.Errorf("stream: gw;dur=%.3f, want well below upstream;dur=%.3f", st["gw"], st["upstream"])
	}

	// One sample per request, each far below the upstream's time (the stream's took 800 ms).
	n, sum := overhead(t, e.reg, "chat/completions")
	if n != 2 {
		t.Fatalf("overhead samples for chat/completions: %d, want 2", n)
	}
	if sum > sleep.Seconds() {
		t.Errorf("overhead sum %.3fs over two requests that each waited ≥ %s on the upstream: the upstream's time was not subtracted", sum, sleep)
	}
	// A request refused by authentication is the gateway's time alone, and has its sample too.
	bad := e.post(ctx, "/embeddings", "sk-not-a-key", []byte(`{"model":"gpt-test","input":"x"}`))
	bad.Body.Close()
	if n, _ := overhead(t, e.reg, "embeddings"); n != 1 {
		t.Errorf("overhead samples for embeddings after a 401: %d, want 1", n)
	}
}

// Server-Timing is opt-in: without gateway.server_timing no answer carries it.
func TestServerTimingOffByDefault(t *testing.T) {
	e := newEnv(t)
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if h := resp.Header.Get("Server-Timing"); h != "" {
		t.Errorf("Server-Timing %q without gateway.server_timing", h)
	}
}

// accessFields is the exact field set of an access-log line.
var accessFields = []string{"time", "level", "msg", "request_id", "trace_id", "client_request_id", "key_prefix", "tenant", "user",
	"model", "deployment", "endpoint", "stream", "status", "error_type", "error_code", "tokens_in", "tokens_out", "cost_usd",
	"latency_ms", "ttft_ms", "overhead_ms", "upstream_ms", "attempts"}

// accessLine finds the one access-log line of a request id and decodes it, checking its fields.
func accessLine(t *testing.T, logs *testlog.Buffer, requestID string) map[string]any {
	t.Helper()
	var lines []string
	deadline := time.Now().Add(5 * time.Second) // the line is written as the request settles, after its answer
	for time.Now().Before(deadline) {
		if lines = logs.Lines(`"msg":"access"`, `"request_id":"`+requestID+`"`); len(lines) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(lines) != 1 {
		t.Fatalf("access lines of request %s: %d, want 1; log:\n%s", requestID, len(lines), logs.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("access line %q: %v", lines[0], err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Clone(accessFields)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("access line fields %v, want exactly %v", keys, want)
	}
	return m
}

// The access log has one line per request with the allowlisted fields, for a success, a stream,
// the gateway's own 4xx (and a 401) and an upstream 5xx that failed over (which also logs the
// failed attempt); neither the prompt, the answer nor any key reaches it.
func TestAccessLog(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
	}))
	defer failing.Close()
	logs, procLogs := &testlog.Buffer{}, &testlog.Buffer{}
	e := newEnv(t, withAccessLog(t, logs, gateway.AccessLogOptions{}), withLog(procLogs),
		withRouting([]namedProvider{openaiProvider("failing", failing.URL)},
			providers.ModelConfig{Name: "flaky", Deployments: []providers.DeploymentConfig{
				{Provider: "failing", Model: "m", Priority: 0}, {Provider: "up", Model: "fallback-model", Priority: 1}}}))
	ctx := context.Background()
	const prompt = "PROMPT-TEXT-MUST-NOT-BE-LOGGED"
	chat := func(model string, stream bool, hdr ...string) (*http.Response, string) {
		t.Helper()
		body := `{"model":"` + model + `","stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"` + prompt + `"}]}`
		resp := e.post(ctx, "/chat/completions", e.key, []byte(body), hdr...)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	ok, answer := chat("gpt-test", false, "X-Request-Id", "client-id-1", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if ok.StatusCode != http.StatusOK {
		t.Fatalf("success: status %d", ok.StatusCode)
	}
	m := accessLine(t, logs, ok.Header.Get("X-Request-Id"))
	want := map[string]any{"msg": "access", "level": "INFO", "model": "gpt-test", "deployment": "up/up-model", "endpoint": "chat/completions",
		"stream": false, "status": 200.0, "error_type": "", "error_code": "", "attempts": 1.0, "client_request_id": "client-id-1",
		"trace_id": "0af7651916cd43dd8448eb211c80319c", "tenant": "default", "user": ""}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("success: %s = %v, want %v", k, m[k], v)
		}
	}
	if p, _ := m["key_prefix"].(string); p == "" || p == e.key || !strings.HasPrefix(e.key, p) {
		t.Errorf("success: key_prefix %q, want a proper prefix of the key", p)
	}
	if m["tokens_in"].(float64) <= 0 || m["tokens_out"].(float64) <= 0 {
		t.Errorf("success: tokens %v in, %v out", m["tokens_in"], m["tokens_out"])
	}
	if m["latency_ms"].(float64) <= 0 || m["ttft_ms"].(float64) <= 0 || m["upstream_ms"].(float64) <= 0 {
		t.Errorf("success: latency %v, ttft %v, upstream %v ms", m["latency_ms"], m["ttft_ms"], m["upstream_ms"])
	}
	if m["overhead_ms"].(float64) > m["latency_ms"].(float64) {
		t.Errorf("success: overhead %v ms above latency %v ms", m["overhead_ms"], m["latency_ms"])
	}

	st, _ := chat("gpt-test", true)
	if st.StatusCode != http.StatusOK {
		t.Fatalf("stream: status %d", st.StatusCode)
	}
	m = accessLine(t, logs, st.Header.Get("X-Request-Id"))
	if m["stream"] != true || m["status"] != 200.0 || m["ttft_ms"].(float64) <= 0 || m["tokens_out"].(float64) <= 0 {
		t.Errorf("stream: %v", m)
	}

	notFound, _ := chat("no-such-model", false)
	if notFound.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown model: status %d", notFound.StatusCode)
	}
	m = accessLine(t, logs, notFound.Header.Get("X-Request-Id"))
	if m["status"] != 404.0 || m["error_type"] != "invalid_request_error" || m["error_code"] != "model_not_found" ||
		m["attempts"] != 0.0 || m["deployment"] != "" || m["upstream_ms"] != 0.0 {
		t.Errorf("unknown model: %v", m)
	}

	const badKey = "sk-lg-NotAKeyAtAllButLongEnough0123456789"
	unauth := e.post(ctx, "/chat/completions", badKey, []byte(`{"model":"gpt-test","messages":[]}`))
	unauth.Body.Close()
	m = accessLine(t, logs, unauth.Header.Get("X-Request-Id"))
	if m["status"] != 401.0 || m["error_code"] != "invalid_api_key" || m["key_prefix"] != "" || m["endpoint"] != "chat/completions" {
		t.Errorf("401: %v", m)
	}

	flaky, _ := chat("flaky", false)
	if flaky.StatusCode != http.StatusOK {
		t.Fatalf("failover: status %d", flaky.StatusCode)
	}
	id := flaky.Header.Get("X-Request-Id")
	m = accessLine(t, logs, id)
	if m["attempts"] != 2.0 || m["deployment"] != "up/fallback-model" || m["status"] != 200.0 {
		t.Errorf("failover: %v", m)
	}
	attempts := procLogs.Lines(`"msg":"upstream attempt failed"`, id)
	if len(attempts) != 1 {
		t.Fatalf("attempt lines of %s: %d, want 1; log:\n%s", id, len(attempts), procLogs.String())
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(attempts[0]), &a); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"level": "WARN", "deployment": "failing/m", "attempt": 1.0, "outcome": "http_503", "failed_over": true} {
		if a[k] != v {
			t.Errorf("attempt line: %s = %v, want %v (%s)", k, a[k], v, attempts[0])
		}
	}
	if d, ok := a["duration_ms"].(float64); !ok || d <= 0 {
		t.Errorf("attempt line: duration_ms %v", a["duration_ms"])
	}

	all := logs.String() + procLogs.String()
	for _, secret := range []string{prompt, e.key, badKey, upstreamKey, "overloaded", strings.TrimPrefix(failing.URL, "http://"), strings.TrimSpace(answer[strings.Index(answer, `"content":"`)+11:][:20])} {
		if strings.Contains(all, secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
}

// With a success sample rate of 0 only errors are logged; with the access log off nothing is.
func TestAccessLogSampling(t *testing.T) {
	zero, off := 0.0, false
	for _, tc := range []struct {
		name      string
		opts      gateway.AccessLogOptions
		wantError bool
	}{
		{"errors only", gateway.AccessLogOptions{SuccessSampleRate: &zero}, true},
		{"off", gateway.AccessLogOptions{Enabled: &off}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testlog.Buffer{}
			l := gateway.NewAccessLog(logs, tc.opts)
			e := newEnv(t, func(c *envConfig) { c.accessLog = l })
			ctx := context.Background()
			for i := 0; i < 5; i++ {
				resp := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			bad := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"no-such-model","messages":[]}`))
			bad.Body.Close()
			if tc.wantError {
				accessLine(t, logs, bad.Header.Get("X-Request-Id"))
			}
			e.srv.Close() // every request has settled
			l.Close()     // and every line queued is written
			got := logs.Lines(`"msg":"access"`)
			want := 0
			if tc.wantError {
				want = 1
			}
			if len(got) != want {
				t.Errorf("access lines: %d, want %d:\n%s", len(got), want, strings.Join(got, "\n"))
			}
		})
	}
}
