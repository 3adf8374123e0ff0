package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// testPrice prices a model at $1 per 1M input tokens and $2 per 1M output tokens.
func testPrice(model string) billing.Price {
	return billing.Price{Model: model, InputPerM: 1_000_000, OutputPerM: 2_000_000, Version: "test"}
}

// idemPost sends body to /v1/chat/completions with an Idempotency-Key and reads the whole answer.
func (e *env) idemPost(idemKey string, body string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(body), append([]string{"Idempotency-Key", idemKey}, hdr...)...)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode < 300 { // settled: its answer is kept for a retry
		e.usageFor(resp.Header.Get("X-Request-Id"))
	}
	return resp, b
}

// TestIdempotentRetryReplaysWithoutUpstream: a retry of a completed request (whole or streamed)
// gets the first answer, byte for byte, without a second upstream call, and its record costs
// nothing and names the first request.
func TestIdempotentRetryReplaysWithoutUpstream(t *testing.T) {
	e := newEnv(t, withPrices(testPrice("gpt-test")))
	for _, tc := range []struct{ name, body string }{
		{"whole", `{"model":"gpt-test","messages":[{"role":"user","content":"hello there"}]}`},
		{"stream", `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello there"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.up.Stats().Requests
			r1, b1 := e.idemPost("retry-"+tc.name, tc.body)
			if r1.StatusCode != 200 {
				t.Fatalf("first: HTTP %d %s", r1.StatusCode, b1)
			}
			r2, b2 := e.idemPost("retry-"+tc.name, tc.body)
			if r2.StatusCode != 200 || !bytes.Equal(b1, b2) {
				t.Fatalf("retry: HTTP %d, answer differs from the first:\n%s\n---\n%s", r2.StatusCode, b1, b2)
			}
			if n := e.up.Stats().Requests - before; n != 1 {
				t.Fatalf("upstream calls = %d, want 1", n)
			}
			if got := r2.Header.Get("Idempotent-Replayed"); got != "true" {
				t.Errorf("Idempotent-Replayed = %q", got)
			}
			if ct := r2.Header.Get("Content-Type"); ct != r1.Header.Get("Content-Type") {
				t.Errorf("Content-Type %q, first was %q", ct, r1.Header.Get("Content-Type"))
			}
			first, again := e.usageFor(r1.Header.Get("X-Request-Id")), e.usageFor(r2.Header.Get("X-Request-Id"))
			if first.CostPicoUSD == nil || *first.CostPicoUSD == 0 {
				t.Fatalf("the first request was not charged: %+v", first)
			}
			if again.UsageSource != "cache" || again.ReplayOf != first.RequestID || again.CostPicoUSD == nil || *again.CostPicoUSD != 0 ||
				again.Charge || again.PromptTokens != 0 || again.Deployment != "" || again.Status != 200 {
				t.Fatalf("replay record: %+v", again)
			}
		})
	}
}

// TestIdempotencyConflictWhileRunning: a retry while the first request still runs gets 409, and
// the first completes.
func TestIdempotencyConflictWhileRunning(t *testing.T) {
	e := newEnv(t)
	body := `{"model":"gpt-test","mock":{"latency_ms":2000},"messages":[{"role":"user","content":"take your time"}]}`
	var wg sync.WaitGroup
	var first int
	wg.Go(func() {
		r, _ := e.idemPost("busy", body)
		first = r.StatusCode
	})
	waitFor(t, 10*time.Second, "the first request upstream", func() bool { return e.up.Stats().InFlight == 1 })
	r, b := e.idemPost("busy", body)
	if r.StatusCode != http.StatusConflict {
		t.Fatalf("retry while running: HTTP %d %s, want 409", r.StatusCode, b)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	if typ, code, _ := apiError(t, r); typ != "invalid_request_error" || code != "idempotency_key_in_use" {
		t.Errorf("409 error: %s %s", typ, code)
	}
	wg.Wait()
	if first != 200 {
		t.Fatalf("first request: HTTP %d", first)
	}
	if n := e.up.Stats().Requests; n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
}

// TestIdempotencyKeyReusedWithOtherBody: the same key with another body is refused with 422
// (the key names one request), and costs no upstream call.
func TestIdempotencyKeyReusedWithOtherBody(t *testing.T) {
	e := newEnv(t)
	if r, b := e.idemPost("k", `{"model":"gpt-test","messages":[{"role":"user","content":"one"}]}`); r.StatusCode != 200 {
		t.Fatalf("first: HTTP %d %s", r.StatusCode, b)
	}
	// The same request in another key order and spacing is the same request.
	if r, b := e.idemPost("k", `{ "messages":[{"content":"one","role":"user"}], "model":"gpt-test" }`); r.StatusCode != 200 {
		t.Fatalf("same request, other spelling: HTTP %d %s", r.StatusCode, b)
	}
	r, b := e.idemPost("k", `{"model":"gpt-test","messages":[{"role":"user","content":"two"}]}`)
	if r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("other body: HTTP %d %s, want 422", r.StatusCode, b)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	if _, code, _ := apiError(t, r); code != "idempotency_key_reused" {
		t.Errorf("code %q", code)
	}
	if n := e.up.Stats().Requests; n != 1 {
		t.Fatalf("upstream calls = %d, want 1", n)
	}
	r, b = e.idemPost(string(bytes.Repeat([]byte("x"), 300)), `{"model":"gpt-test","messages":[{"role":"user","content":"one"}]}`)
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("overlong key: HTTP %d %s, want 400", r.StatusCode, b)
	}
}

// TestIdempotencyFailedAttemptFreesKey: only a successful answer is kept; a retry of a failed
// request calls the upstream again.
func TestIdempotencyFailedAttemptFreesKey(t *testing.T) {
	sw := newSwitchable(t, mock.Options{})
	e := newEnv(t, withRouting([]namedProvider{openaiProvider("sw", sw.Server.URL)},
		providers.ModelConfig{Name: "sw", Deployments: []providers.DeploymentConfig{{Provider: "sw", Model: "m"}}}))
	body := `{"model":"sw","messages":[{"role":"user","content":"hi"}]}`
	sw.Down.Store(true)
	if r, _ := e.idemPost("f", body); r.StatusCode < 500 {
		t.Fatalf("first: HTTP %d, want a 5xx", r.StatusCode)
	}
	sw.Down.Store(false)
	if r, b := e.idemPost("f", body); r.StatusCode != 200 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after a failure: HTTP %d %s (replayed %q)", r.StatusCode, b, r.Header.Get("Idempotent-Replayed"))
	}
	if n := sw.Seen.Load(); n != 2 {
		t.Fatalf("upstream calls = %d, want 2", n)
	}
}
