package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/llmgate/llmgate/internal/tracing"
)

// otlpReceiver is an OTLP/HTTP trace receiver on loopback: it keeps every export's raw bytes and
// its decoded spans.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	raw   [][]byte
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver: %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		var ex coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &ex); err != nil {
			t.Errorf("OTLP receiver: decode: %v", err)
			http.Error(w, "bad protobuf", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.raw = append(r.raw, b)
		for _, rs := range ex.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *otlpReceiver) snapshot() ([]*tracepb.Span, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), bytes.Join(r.raw, nil)
}

// spanAttrs flattens a span's attributes to strings and integers.
func spanAttrs(s *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, kv := range s.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.Key] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			out[kv.Key] = v.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			out[kv.Key] = v.DoubleValue
		}
	}
	return out
}

// TestTracingStreamedChat: with tracing on, a streamed chat request that brings a traceparent is
// exported over OTLP/HTTP as one server span continuing the caller's trace, with one child span
// each for auth, admission, the upstream attempt and settlement; the attributes follow the GenAI
// conventions and agree with the usage record, the upstream gets the attempt span's traceparent,
// and neither the prompt, the completion nor a key is in the exported bytes.
func TestTracingStreamedChat(t *testing.T) {
	recv := newOTLPReceiver(t)
	e := newEnv(t, func(c *Config) {
		c.Tracing = tracing.Options{Enabled: true, Endpoint: recv.srv.URL, Sampler: tracing.SamplerParentBasedAlwaysOn}
	})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	const prompt = "tracing-prompt-text-that-must-not-leave-the-gateway"
	body := `{"model":"gpt-test","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"` + prompt + `"}]}`
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body), "Traceparent", "00-"+traceID+"-"+parentID+"-01")
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), "[DONE]") {
		t.Fatalf("status %d: %s", resp.StatusCode, answer)
	}
	reqID := resp.Header.Get("X-Request-Id")
	rec := e.usageFor(reqID)
	if rec.TraceID != traceID {
		t.Errorf("record trace id %q, want the caller's %q", rec.TraceID, traceID)
	}

	var server *tracepb.Span
	var spans []*tracepb.Span
	var raw []byte
	deadline := time.Now().Add(10 * time.Second)
	for server == nil && time.Now().Before(deadline) {
		if err := e.app.tracing.ForceFlush(context.Background()); err != nil {
			t.Fatalf("flush: %v", err)
		}
		spans, raw = recv.snapshot()
		for _, s := range spans {
			if s.Kind == tracepb.Span_SPAN_KIND_SERVER && spanAttrs(s)["llmgate.request_id"] == reqID {
				server = s
			}
		}
		if server == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if server == nil {
		t.Fatalf("no server span for request %s among %d exported spans", reqID, len(spans))
	}
	if got := hex.EncodeToString(server.TraceId); got != traceID {
		t.Errorf("server span trace id %s, want the caller's %s", got, traceID)
	}
	if got := hex.EncodeToString(server.ParentSpanId); got != parentID {
		t.Errorf("server span parent %s, want the caller's span %s", got, parentID)
	}
	if server.Name != "POST /v1/chat/completions" {
		t.Errorf("server span name %q", server.Name)
	}
	if tp := resp.Header.Get("Traceparent"); tp != "00-"+traceID+"-"+hex.EncodeToString(server.SpanId)+"-01" {
		t.Errorf("answer's Traceparent %q does not name the server span %x", tp, server.SpanId)
	}
	sa := spanAttrs(server)
	for k, want := range map[string]any{
		"gen_ai.operation.name":      "chat",
		"gen_ai.request.model":       "gpt-test",
		"gen_ai.response.model":      rec.UpstreamModel,
		"gen_ai.provider.name":       rec.Provider,
		"gen_ai.request.max_tokens":  int64(50),
		"gen_ai.usage.input_tokens":  rec.PromptTokens,
		"gen_ai.usage.output_tokens": rec.CompletionTokens,
		"llmgate.stream":             true,
		"llmgate.request_id":         reqID,
		"llmgate.tenant":             rec.TenantID,
		"llmgate.deployment":         rec.Deployment,
		"llmgate.usage_source":       rec.UsageSource,
		"http.request.method":        "POST",
		"http.route":                 "/v1/chat/completions",
		"http.response.status_code":  int64(200),
	} {
		if sa[k] != want {
			t.Errorf("server span %s = %v (%T), want %v (%T)", k, sa[k], sa[k], want, want)
		}
	}
	if rec.PromptTokens == 0 || rec.CompletionTokens == 0 {
		t.Errorf("record tokens %d/%d: the mock reports usage", rec.PromptTokens, rec.CompletionTokens)
	}
	if p, _ := sa["llmgate.key_prefix"].(string); p == "" || !strings.HasPrefix(e.key, p) || len(p) >= len(e.key) {
		t.Errorf("llmgate.key_prefix %q is not a prefix of the key", p)
	}

	children := map[string]*tracepb.Span{}
	for _, s := range spans {
		if bytes.Equal(s.TraceId, server.TraceId) && bytes.Equal(s.ParentSpanId, server.SpanId) {
			if children[s.Name] != nil {
				t.Errorf("two child spans named %q", s.Name)
			}
			children[s.Name] = s
		}
	}
	for _, name := range []string{"auth", "admission", "chat up-model", "settlement"} {
		if children[name] == nil {
			names := []string{}
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("no child span %q of the server span; exported: %v", name, names)
		}
	}
	if len(children) != 4 {
		t.Errorf("%d child spans, want 4", len(children))
	}
	attempt := children["chat up-model"]
	if attempt.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("attempt span kind %v", attempt.Kind)
	}
	aa := spanAttrs(attempt)
	for k, want := range map[string]any{
		"gen_ai.operation.name":     "chat",
		"gen_ai.request.model":      "up-model",
		"gen_ai.provider.name":      "up",
		"llmgate.deployment":        rec.Deployment,
		"llmgate.attempt":           int64(1),
		"http.response.status_code": int64(200),
	} {
		if aa[k] != want {
			t.Errorf("attempt span %s = %v (%T), want %v (%T)", k, aa[k], aa[k], want, want)
		}
	}
	if ups := e.up.Requests(1); len(ups) != 1 || ups[0].Headers["Traceparent"] != "00-"+traceID+"-"+hex.EncodeToString(attempt.SpanId)+"-01" {
		t.Errorf("upstream got Traceparent %q, want the attempt span's %x", ups[0].Headers["Traceparent"], attempt.SpanId)
	}
	// The completion: the text of the answer's content deltas.
	var completion strings.Builder
	for _, line := range strings.Split(string(answer), "\n") {
		if c := gjson.Get(strings.TrimPrefix(line, "data: "), "choices.0.delta.content"); c.Exists() {
			completion.WriteString(c.Str)
		}
	}
	if completion.Len() < 8 {
		t.Fatalf("completion %q: too short to look for", completion.String())
	}
	for _, secret := range []string{prompt, completion.String(), e.key, upstreamKey, "Bearer"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the exported spans contain %q", secret)
		}
	}
}

// TestTracingAccessLogTraceID: a traced request's access-log line names the trace of its server
// span, for a request that starts its trace at the gateway (no traceparent) as for one that
// continues the caller's, so that a log line leads to its trace.
func TestTracingAccessLogTraceID(t *testing.T) {
	recv := newOTLPReceiver(t)
	path := filepath.Join(t.TempDir(), "access.log")
	all := 1.0
	e := newEnv(t, func(c *Config) {
		c.Tracing = tracing.Options{Enabled: true, Endpoint: recv.srv.URL, Sampler: tracing.SamplerParentBasedAlwaysOn}
		c.Log.Access.Output = path
		c.Log.Access.SuccessSampleRate = &all
	})
	body := []byte(`{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	for _, traceparent := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		var resp *http.Response
		if traceparent == "" {
			resp = e.post(context.Background(), "/chat/completions", e.key, body)
		} else {
			resp = e.post(context.Background(), "/chat/completions", e.key, body, "Traceparent", traceparent)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		reqID := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusOK || reqID == "" {
			t.Fatalf("status %d, request id %q", resp.StatusCode, reqID)
		}
		var server *tracepb.Span
		for deadline := time.Now().Add(10 * time.Second); server == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err := e.app.tracing.ForceFlush(context.Background()); err != nil {
				t.Fatalf("flush: %v", err)
			}
			spans, _ := recv.snapshot()
			for _, s := range spans {
				if s.Kind == tracepb.Span_SPAN_KIND_SERVER && spanAttrs(s)["llmgate.request_id"] == reqID {
					server = s
				}
			}
		}
		if server == nil {
			t.Fatalf("no server span for request %s", reqID)
		}
		var line string
		for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(path)
			for _, l := range strings.Split(string(b), "\n") {
				if gjson.Get(l, "request_id").Str == reqID {
					line = l
				}
			}
		}
		if line == "" {
			t.Fatalf("no access-log line for request %s", reqID)
		}
		want := hex.EncodeToString(server.TraceId)
		if got := gjson.Get(line, "trace_id").Str; got != want {
			t.Errorf("traceparent %q: access-log trace_id %q, the server span's trace is %s", traceparent, got, want)
		}
		if traceparent != "" && want != traceparent[3:35] {
			t.Errorf("the server span's trace %s does not continue the caller's %s", want, traceparent)
		}
	}
}

// TestTracingSamplerOff: with the sampler off, no span is exported, and the request keeps the
// caller's trace id in its record.
func TestTracingSamplerOff(t *testing.T) {
	recv := newOTLPReceiver(t)
	e := newEnv(t, func(c *Config) {
		c.Tracing = tracing.Options{Enabled: true, Endpoint: recv.srv.URL, Sampler: tracing.SamplerAlwaysOff}
	})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body), "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if rec := e.usageFor(resp.Header.Get("X-Request-Id")); rec.TraceID != traceID {
		t.Errorf("record trace id %q, want %q", rec.TraceID, traceID)
	}
	if err := e.app.tracing.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans, _ := recv.snapshot(); len(spans) != 0 {
		t.Errorf("%d spans exported with the sampler off", len(spans))
	}
}

// TestTracingFailoverAndAuth: each upstream attempt is its own client span, numbered, the failed
// one marked with its error type; a request with an unknown key has a failed auth span under a
// server span that carries its 401.
func TestTracingFailoverAndAuth(t *testing.T) {
	recv := newOTLPReceiver(t)
	e := newEnv(t, func(c *Config) {
		c.Tracing = tracing.Options{Enabled: true, Endpoint: recv.srv.URL, Sampler: tracing.SamplerAlwaysOn}
	})
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"failover","messages":[{"role":"user","content":"hi"}]}`))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.usageFor(resp.Header.Get("X-Request-Id"))
	bad := e.post(context.Background(), "/chat/completions", "sk-unknown-key-0123456789", []byte(`{"model":"gpt-test","messages":[]}`))
	bad.Body.Close()
	if bad.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown key: status %d", bad.StatusCode)
	}

	byName := map[string]*tracepb.Span{}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := e.app.tracing.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		spans, _ := recv.snapshot()
		servers := 0
		for _, s := range spans {
			if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				servers++
			}
		}
		if servers == 2 {
			for _, s := range spans {
				byName[s.Name+"/"+hex.EncodeToString(s.TraceId)] = s
			}
			break
		}
	}
	okTrace := strings.Split(resp.Header.Get("Traceparent"), "-")[1]
	badTrace := strings.Split(bad.Header.Get("Traceparent"), "-")[1]
	first, second := byName["chat m/"+okTrace], byName["chat fallback-model/"+okTrace]
	if first == nil || second == nil {
		t.Fatalf("attempt spans missing: %v", spanKeys(byName))
	}
	if a := spanAttrs(first); a["llmgate.attempt"] != int64(1) || a["error.type"] != "connection error" || first.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("first attempt: %v, status %v", a, first.Status)
	}
	if a := spanAttrs(second); a["llmgate.attempt"] != int64(2) || a["http.response.status_code"] != int64(200) || a["error.type"] != nil {
		t.Errorf("second attempt: %v", a)
	}
	auth, server := byName["auth/"+badTrace], byName["POST /v1/chat/completions/"+badTrace]
	if auth == nil || server == nil {
		t.Fatalf("spans of the refused request missing: %v", spanKeys(byName))
	}
	if a := spanAttrs(auth); a["error.type"] == nil || auth.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("auth span of an unknown key: %v, status %v", a, auth.Status)
	}
	if a := spanAttrs(server); a["http.response.status_code"] != int64(401) || server.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("server span of a 401: %v, status %v (a 4xx is not the server's error)", a, server.Status)
	}
	if byName["admission/"+badTrace] != nil || byName["settlement/"+badTrace] != nil {
		t.Error("a refused key got admission or settlement spans")
	}
}

func spanKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTracingChangeNeedsRestart: the tracer is built once at start, so a reload that changes the
// section says it applies only at restart.
func TestTracingChangeNeedsRestart(t *testing.T) {
	running := defaultConfig()
	next := running
	next.Tracing = tracing.Options{Enabled: true, Endpoint: "http://127.0.0.1:4318"}
	if got := restartOnly(running, next); len(got) != 1 || got[0] != "tracing" {
		t.Errorf("restart-only sections %v, want [tracing]", got)
	}
}
