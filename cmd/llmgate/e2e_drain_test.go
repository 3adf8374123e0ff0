package main

// Process-level tests of the graceful stop on SIGTERM: readiness off at once, the pre-stop delay
// during which the listener still serves, the drain of streams in flight, the cut at the drain
// deadline and by a second signal, and exactly one usage record for every accepted request.

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// drainEnv is a PostgreSQL-backed env whose gateway processes stop with the given pre-stop delay
// and drain timeout. Besides the env's models it serves "long": a stream of 30 chunks 200 ms
// apart (about 6 s).
func drainEnv(t *testing.T, preStop, drain time.Duration) *env {
	t.Helper()
	long := httptest.NewServer(mock.NewHandler(mock.Options{Chunks: 30, TokensPerSecond: 5, RequireKey: upstreamKey}))
	t.Cleanup(long.Close)
	return newEnv(t, withPostgres(t), func(c *Config) {
		c.Shutdown.PreStopDelay, c.Shutdown.DrainTimeout = preStop, drain
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "longup", Type: "openai", BaseURL: long.URL + "/v1", APIKey: upstreamKey}})
		c.Models = append(c.Models, providers.ModelConfig{Name: "long", Deployments: []providers.DeploymentConfig{{Provider: "longup", Model: "long-model"}}})
	})
}

// drainStream is a streaming chat answer read event by event.
type drainStream struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
	id   string // X-Request-Id
}

// openStream starts a stream of model through the process and reads its first event.
func (e *env) openStream(url, key, model string) *drainStream {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("stream of %s: %v %v", model, err, resp)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	s := &drainStream{t: e.t, resp: resp, r: bufio.NewReader(resp.Body), id: resp.Header.Get("X-Request-Id")}
	if _, err := s.r.ReadString('\n'); err != nil {
		e.t.Fatalf("first event of %s: %v", model, err)
	}
	return s
}

// rest reads the stream to its end: the data payloads, and the error that ended the body (nil
// for a clean end of the chunked body).
func (s *drainStream) rest() (payloads []string, err error) {
	for {
		line, err := s.r.ReadString('\n')
		if p, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: "); ok {
			payloads = append(payloads, p)
		}
		if errors.Is(err, io.EOF) {
			return payloads, nil
		}
		if err != nil {
			return payloads, err
		}
	}
}

// contentChunks counts the payloads that carry answer text.
func contentChunks(payloads []string) int {
	n := 0
	for _, p := range payloads {
		if gjson.Get(p, "choices.0.delta.content").String() != "" {
			n++
		}
	}
	return n
}

// health GETs a health or status path and returns the status code and the "status" field.
func (e *env) health(url, key string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, gjson.GetBytes(b, "status").String()
}

// ledgerRow is what the tests check of a request's usage records in PostgreSQL.
type ledgerRow struct {
	count      int
	status     int
	errType    string
	source     string
	completion int64
}

// row reads the usage records of one request id: their number, and the fields of one of them.
func (l *ledgerDB) row(requestID string) ledgerRow {
	l.t.Helper()
	var r ledgerRow
	l.queryRow(`SELECT count(*), COALESCE(max(status), 0), COALESCE(max(error_type), ''), COALESCE(max(usage_source), ''),
		COALESCE(max(completion_tokens), 0) FROM usage_records WHERE request_id = $1`, []any{requestID},
		&r.count, &r.status, &r.errType, &r.source, &r.completion)
	return r
}

// sigterm sends the process SIGTERM.
func (p *gatewayProcess) sigterm(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// exitsCleanly waits for the process to exit and fails unless it exited 0.
func (p *gatewayProcess) exitsCleanly(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-p.exited():
	case <-time.After(within):
		t.Fatalf("the gateway did not exit within %v:\n%s", within, p.log)
	}
	if p.waitErr != nil {
		t.Fatalf("the gateway exited with %v:\n%s", p.waitErr, p.log)
	}
}

// TestSigtermPreStopDelayKeepsServing: after SIGTERM the gateway is not ready at once (public and
// admin /health/ready answer 503 draining, /v1/status says draining), yet for pre_stop_delay its
// listener still accepts and serves new requests normally, since a load balancer takes a moment
// to stop sending them; then it stops accepting and exits 0.
func TestSigtermPreStopDelayKeepsServing(t *testing.T) {
	const preStop = 8 * time.Second
	e := drainEnv(t, preStop, 30*time.Second)
	k := e.newKey(createKeyBody{Name: "prestop"})
	p := e.serveProcessIn(t, t.TempDir())
	if st, s := e.health(p.url+"/health/ready", ""); st != 200 {
		t.Fatalf("ready before SIGTERM: %d %s", st, s)
	}
	p.sigterm(t)
	sigterm := time.Now()
	waitFor(t, 4*time.Second, "public /health/ready to answer 503", func() bool {
		st, _ := e.health(p.url+"/health/ready", "")
		return st == http.StatusServiceUnavailable
	})
	if st, s := e.health(p.url+"/health/ready", ""); st != 503 || s != "draining" {
		t.Errorf("public /health/ready during the pre-stop delay: %d %q, want 503 draining", st, s)
	}
	if st, s := e.health(p.adminURL+"/health/ready", ""); st != 503 || s != "draining" {
		t.Errorf("admin /health/ready during the pre-stop delay: %d %q, want 503 draining", st, s)
	}
	if st, s := e.health(p.url+"/v1/status", k.Key); st != 200 || s != "draining" {
		t.Errorf("/v1/status during the pre-stop delay: %d %q, want 200 draining", st, s)
	}
	// A new connection, as from a load balancer that has not yet seen the readiness change.
	e.http.CloseIdleConnections()
	if st := e.chatStatus(&app{publicURL: p.url}, k.Key, "gpt-test"); st != 200 {
		t.Fatalf("chat completion during the pre-stop delay: HTTP %d, want 200", st)
	}
	if d := time.Since(sigterm); d >= preStop {
		t.Fatalf("the checks took %v, longer than the pre-stop delay %v: the machine is too slow for this test", d, preStop)
	}
	select {
	case <-p.exited():
		t.Fatalf("the gateway exited %v after SIGTERM, before its pre-stop delay of %v:\n%s", time.Since(sigterm), preStop, p.log)
	case <-time.After(time.Until(sigterm.Add(preStop - 500*time.Millisecond))):
	}
	p.exitsCleanly(t, 30*time.Second)
	if d := time.Since(sigterm); d < preStop {
		t.Errorf("exited %v after SIGTERM, before the pre-stop delay of %v ended", d, preStop)
	}
	if _, err := e.http.Get(p.url + "/health/live"); err == nil {
		t.Errorf("the public listener still accepts after the exit")
	}
}

// TestSigtermLetsAStreamFinish: a stream begun before SIGTERM runs to its end ([DONE], every
// chunk) within drain_timeout, the process then exits 0, and the request has one usage record.
func TestSigtermLetsAStreamFinish(t *testing.T) {
	e := drainEnv(t, 0, 20*time.Second)
	k := e.newKey(createKeyBody{Name: "drain-finish"})
	db := openLedger(t, e.cfg.DatabaseURL)
	p := e.serveProcessIn(t, t.TempDir())
	s := e.openStream(p.url, k.Key, "slow") // 10 chunks, about 2 s
	p.sigterm(t)
	payloads, err := s.rest()
	if err != nil {
		t.Fatalf("the stream broke after SIGTERM: %v (got %d events)\n%s", err, len(payloads), p.log)
	}
	if len(payloads) == 0 || payloads[len(payloads)-1] != "[DONE]" || contentChunks(payloads) < 9 {
		t.Fatalf("the stream did not finish after SIGTERM: %d content chunks after the first event, last %q", contentChunks(payloads), payloads)
	}
	p.exitsCleanly(t, 30*time.Second)
	if r := db.row(s.id); r.count != 1 || r.status != 200 {
		t.Errorf("usage records of the stream: %+v, want one with status 200", r)
	}
}

// TestDrainTimeoutCutsAStreamCleanly: a stream still running when drain_timeout is up is ended
// by the gateway with an SSE error event (gateway_shutting_down) and a clean end of the body,
// not a reset connection; its usage record lands exactly once (status 503, the tokens delivered,
// usage partial), and the process exits 0.
func TestDrainTimeoutCutsAStreamCleanly(t *testing.T) {
	e := drainEnv(t, 0, time.Second)
	k := e.newKey(createKeyBody{Name: "drain-cut"})
	db := openLedger(t, e.cfg.DatabaseURL)
	p := e.serveProcessIn(t, t.TempDir())
	s := e.openStream(p.url, k.Key, "long") // 30 chunks, about 6 s
	p.sigterm(t)
	checkCutStream(t, s, p)
	p.exitsCleanly(t, 30*time.Second)
	checkCutRecord(t, db, s.id)
}

// TestSecondSignalCutsTheDrainShort: with a long drain_timeout, a second SIGTERM during the drain
// ends it at once: the stream in flight is cut as at the deadline and still recorded once.
func TestSecondSignalCutsTheDrainShort(t *testing.T) {
	e := drainEnv(t, 0, 10*time.Minute)
	k := e.newKey(createKeyBody{Name: "drain-twice"})
	db := openLedger(t, e.cfg.DatabaseURL)
	p := e.serveProcessIn(t, t.TempDir())
	s := e.openStream(p.url, k.Key, "long") // 30 chunks, about 6 s
	p.sigterm(t)
	// Still draining (readiness off), the stream still flowing.
	waitFor(t, 10*time.Second, "the drain to begin", func() bool {
		return strings.Contains(p.log.String(), "draining")
	})
	if _, err := s.r.ReadString('\n'); err != nil {
		t.Fatalf("the stream stopped after the first SIGTERM: %v", err)
	}
	p.sigterm(t)
	checkCutStream(t, s, p)
	p.exitsCleanly(t, 30*time.Second)
	checkCutRecord(t, db, s.id)
}

// checkCutStream reads a stream of "long" to its end and checks that the gateway cut it cleanly.
func checkCutStream(t *testing.T, s *drainStream, p *gatewayProcess) {
	t.Helper()
	payloads, err := s.rest()
	if err != nil {
		t.Fatalf("the cut stream did not end cleanly: %v (after %d events)\n%s", err, len(payloads), p.log)
	}
	if n := contentChunks(payloads); n >= 29 {
		t.Fatalf("the stream ran to its end (%d more content chunks): it was not cut", n)
	}
	if len(payloads) == 0 {
		t.Fatalf("the cut stream ended with no event")
	}
	last := payloads[len(payloads)-1]
	if code := gjson.Get(last, "error.code").String(); code != "gateway_shutting_down" {
		t.Errorf("last event of the cut stream: %s, want an error event with code gateway_shutting_down", last)
	}
}

// checkCutRecord checks the one usage record of a stream the drain cut.
func checkCutRecord(t *testing.T, db *ledgerDB, requestID string) {
	t.Helper()
	r := db.row(requestID)
	if r.count != 1 || r.status != http.StatusServiceUnavailable || r.errType != "gateway_shutdown" || r.source != "partial" || r.completion == 0 {
		t.Errorf("usage records of the cut stream: %+v, want one: status 503, error_type gateway_shutdown, usage partial, the delivered tokens", r)
	}
}

// TestShutdownConfig: the shutdown section's defaults, its YAML keys, and errors naming the field
// for negative durations.
func TestShutdownConfig(t *testing.T) {
	cfg, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := ShutdownOptions{PreStopDelay: 5 * time.Second, DrainTimeout: 5 * time.Minute, FlushTimeout: 30 * time.Second}
	if cfg.Shutdown != want {
		t.Errorf("defaults: %+v, want %+v", cfg.Shutdown, want)
	}
	cfg, err = loadConfig(writeConfig(t, "shutdown:\n  pre_stop_delay: 0s\n  drain_timeout: 15m\n  flush_timeout: 1m\n"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want = ShutdownOptions{DrainTimeout: 15 * time.Minute, FlushTimeout: time.Minute}
	if cfg.Shutdown != want || cfg.validate() != nil {
		t.Errorf("from the file: %+v (validate: %v), want %+v", cfg.Shutdown, cfg.validate(), want)
	}
	for _, field := range []string{"pre_stop_delay", "drain_timeout", "flush_timeout"} {
		cfg, err := loadConfig(writeConfig(t, "shutdown:\n  "+field+": -1s\n"), envOf(nil))
		if err == nil {
			err = cfg.validate()
		}
		if err == nil || !strings.Contains(err.Error(), "shutdown."+field) {
			t.Errorf("%s: -1s: error %v, want one naming shutdown.%s", field, err, field)
		}
	}
}
