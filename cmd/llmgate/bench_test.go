package main

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/internal/bench"
)

// TestBenchGatewayConfigLoads checks that the config the bench writes for its gateways is one
// this binary accepts, with quotas as the bench means them.
func TestBenchGatewayConfigLoads(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, redisURL := range []string{"", "redis://127.0.0.1:6390"} {
		raw := bench.GatewayConfig("127.0.0.1:1", "127.0.0.1:2", t.TempDir(), strings.Repeat("t", 40), "http://127.0.0.1:3", redisURL)
		cfg := defaultConfig() // as loadConfig starts
		if err := parseConfig([]byte(raw), noEnv, &cfg); err != nil {
			t.Fatalf("redis %q: %v\n%s", redisURL, err, raw)
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("redis %q: %v", redisURL, err)
		}
		q := cfg.Quota.WithDefaults()
		if cfg.RedisURL != redisURL || *q.Enabled != (redisURL != "") {
			t.Errorf("redis %q: redis_url %q, quota enabled %v", redisURL, cfg.RedisURL, *q.Enabled)
		}
		if redisURL == "" {
			continue
		}
		// A key without a user counts against the default tier: every limit set, none reachable.
		if l := q.TierLimits(""); l != bench.TierLimits {
			t.Errorf("default tier limits %+v, want the bench tier's %+v", l, bench.TierLimits)
		}
	}
}

// TestBenchTrustCAConfigLoads: the slow-streams scenario's gateway in front of mockllm over TLS
// trusts the certificate file it is given.
func TestBenchTrustCAConfigLoads(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "mockllm-tls.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := bench.GatewayConfig("127.0.0.1:1", "127.0.0.1:2", t.TempDir(), strings.Repeat("t", 40), srv.URL, "")
	raw := bench.TrustCAConfig(bench.AccessLogOffConfig(gw), caFile)
	cfg := defaultConfig() // as loadConfig starts
	if err := parseConfig([]byte(raw), func(string) (string, bool) { return "", false }, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if roots, err := cfg.Outbound.RootCAs(); err != nil || roots == nil || cfg.Outbound.CAFile != caFile || len(cfg.Outbound.Allow) != 1 {
		t.Errorf("outbound %+v: roots %v, %v", cfg.Outbound, roots != nil, err)
	}
}

// TestBenchTracingConfigLoads checks that the gateway+tracing path's config is accepted and
// traces every request to the given endpoint, and that the path is on by default.
func TestBenchTracingConfigLoads(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	raw := bench.GatewayConfig("127.0.0.1:1", "127.0.0.1:2", t.TempDir(), strings.Repeat("t", 40), "http://127.0.0.1:3", "") +
		bench.TracingConfig("http://127.0.0.1:4")
	cfg := defaultConfig() // as loadConfig starts
	if err := parseConfig([]byte(raw), noEnv, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if tr := cfg.Tracing; !tr.Enabled || tr.Endpoint != "http://127.0.0.1:4" || tr.Sampler != "always_on" || tr.Protocol != "http/protobuf" {
		t.Errorf("tracing section %+v", tr)
	}
	if o, err := parseBenchFlags(nil, io.Discard); err != nil || !o.Tracing {
		t.Errorf("defaults: tracing %v, err %v; want the path measured", o.Tracing, err)
	}
	if o, _ := parseBenchFlags([]string{"--tracing=false"}, io.Discard); o.Tracing {
		t.Error("--tracing=false: the path is still on")
	}
}

// TestBenchResponsesDurationFlag checks the Responses path's flag: on by default for a short run
// of its own, off with 0, and a negative length refused.
func TestBenchResponsesDurationFlag(t *testing.T) {
	o, err := parseBenchFlags(nil, io.Discard)
	if err != nil || o.ResponsesDuration != 5*time.Second || !o.StreamRPS {
		t.Errorf("defaults: Responses %v, stream RPS %v, err %v; want 5s, true, nil", o.ResponsesDuration, o.StreamRPS, err)
	}
	if o, err := parseBenchFlags([]string{"--responses-duration", "0"}, io.Discard); err != nil || o.ResponsesDuration != 0 {
		t.Errorf("--responses-duration 0: %v, %v; want it skipped", o.ResponsesDuration, err)
	}
	if _, err := parseBenchFlags([]string{"--responses-duration", "-1s"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--responses-duration") {
		t.Errorf("--responses-duration -1s: err %v, want one naming the flag", err)
	}
}

// TestBenchAccessLogOffConfigLoads checks that the gateway-accesslog-off path's config is the
// gateway's with the access log off (and the gateway's own has it on, at its default), and that
// the path is on by default.
func TestBenchAccessLogOffConfigLoads(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	gw := bench.GatewayConfig("127.0.0.1:1", "127.0.0.1:2", t.TempDir(), strings.Repeat("t", 40), "http://127.0.0.1:3", "")
	for _, tc := range []struct {
		raw  string
		want bool
	}{{gw, true}, {bench.AccessLogOffConfig(gw), false}} {
		cfg := defaultConfig() // as loadConfig starts
		if err := parseConfig([]byte(tc.raw), noEnv, &cfg); err != nil {
			t.Fatalf("%v\n%s", err, tc.raw)
		}
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		if a := cfg.Log.Access; a.On() != tc.want || a.Output != "" || a.SuccessSampleRate != nil || cfg.Log.Level != "warn" {
			t.Errorf("log section %+v; want the access log on %v, the rest at its defaults\n%s", cfg.Log, tc.want, tc.raw)
		}
	}
	if o, err := parseBenchFlags(nil, io.Discard); err != nil || !o.AccessLogOff {
		t.Errorf("defaults: access-log-off path %v, err %v; want it measured", o.AccessLogOff, err)
	}
	if o, _ := parseBenchFlags([]string{"--accesslog-off=false"}, io.Discard); o.AccessLogOff {
		t.Error("--accesslog-off=false: the path is still on")
	}
}

// TestBenchSlowStreamsFlags checks the slow-streams scenario's flags: on by default at 2,000
// and 10,000 streams, off with an empty list, alone with --slow-streams-only, and a level that
// is not a number refused.
func TestBenchSlowStreamsFlags(t *testing.T) {
	o, err := parseBenchFlags(nil, io.Discard)
	if err != nil || !slices.Equal(o.SlowStreams, []int{2000, 10000}) || o.SlowStreamsOnly {
		t.Errorf("defaults: levels %v, only %v, err %v; want [2000 10000], false, nil", o.SlowStreams, o.SlowStreamsOnly, err)
	}
	if o, err := parseBenchFlags([]string{"--slow-streams", ""}, io.Discard); err != nil || len(o.SlowStreams) != 0 {
		t.Errorf("--slow-streams '': %v, %v; want it skipped", o.SlowStreams, err)
	}
	if o, err := parseBenchFlags([]string{"--slow-streams-only", "--slow-streams", "1000"}, io.Discard); err != nil ||
		!o.SlowStreamsOnly || !slices.Equal(o.SlowStreams, []int{1000}) {
		t.Errorf("--slow-streams-only --slow-streams 1000: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"--slow-streams", "many"}, {"--slow-streams", "0"}, {"--slow-streams-only", "--slow-streams", ""}} {
		if _, err := parseBenchFlags(bad, io.Discard); err == nil || !strings.Contains(err.Error(), "--slow-streams") {
			t.Errorf("%q: err %v, want one naming the flag", bad, err)
		}
	}
}

// TestBenchLedgerFlags checks the ledger scenario's flags: on by default, skipped (not failed)
// without PostgreSQL unless --require-postgres, and off with --ledger=false.
func TestBenchLedgerFlags(t *testing.T) {
	o, err := parseBenchFlags(nil, io.Discard)
	if err != nil || !o.Ledger || o.RequirePostgres {
		t.Errorf("defaults: ledger %v, require-postgres %v, err %v; want the scenario on, PostgreSQL optional", o.Ledger, o.RequirePostgres, err)
	}
	if o, err := parseBenchFlags([]string{"--ledger=false", "--require-postgres"}, io.Discard); err != nil || o.Ledger || !o.RequirePostgres {
		t.Errorf("--ledger=false --require-postgres: ledger %v, require-postgres %v, err %v", o.Ledger, o.RequirePostgres, err)
	}
}
