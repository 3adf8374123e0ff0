package anthropic

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/internal/fixture"
	"github.com/llmgate/llmgate/providers/outbound"
)

// loopback lets the provider dial the simulated upstreams on 127.0.0.1, which the default address
// policy refuses.
var loopback = outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// upstream is a loopback server standing in for Anthropic: it records what it received and
// answers with a canned status, content type and body.
type upstream struct {
	mu     sync.Mutex
	got    []*http.Request
	bodies []string
	status int
	ctype  string
	body   string
	header http.Header
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.got = append(u.got, r)
	u.bodies = append(u.bodies, string(b))
	status, ctype, body, header := u.status, u.ctype, u.body, u.header
	u.mu.Unlock()
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	if ctype == "text/event-stream" { // one event per write and flush, as a real stream
		f := w.(http.Flusher)
		for _, ev := range strings.SplitAfter(body, "\n\n") {
			_, _ = io.WriteString(w, ev)
			f.Flush()
		}
		return
	}
	_, _ = io.WriteString(w, body)
}

func newProvider(t *testing.T, u *upstream, s Settings) (*Provider, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	p, err := New(Options{BaseURL: srv.URL + "/", APIKey: "sk-ant-test", Settings: s, Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	p.now = func() time.Time { return time.Unix(testCreated, 0) }
	return p, srv
}

func chatRequest(body string, stream bool) *providers.Request {
	return &providers.Request{Endpoint: providers.ChatCompletions, Body: []byte(body), Stream: stream, Model: "claude-up",
		Header: http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			"X-Request-Id": {"req-1"}, "Authorization": {"Bearer client-key"}}}
}

func TestAnthropicDoNonStream(t *testing.T) {
	fixture, _ := os.ReadFile("testdata/response/tool_use.json")
	u := &upstream{status: 200, ctype: "application/json", body: string(fixture)}
	p, _ := newProvider(t, u, Settings{Beta: []string{"a-2025", "b-2026"}})
	resp, err := p.Do(context.Background(), chatRequest(`{"model":"claude-up","messages":[{"role":"user","content":"hi"}],"api_key":"sk-leak"}`, false))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("HTTP %d %q length %d: %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, body)
	}
	var c struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &c); err != nil || c.ID != "msg_01Aq9w938a90dw8q" || c.Created != testCreated || c.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("answer %s (%v)", body, err)
	}
	r := u.got[0]
	if r.URL.Path != "/v1/messages" || r.Method != http.MethodPost {
		t.Errorf("%s %s", r.Method, r.URL.Path)
	}
	for k, want := range map[string]string{
		"X-Api-Key": "sk-ant-test", "Anthropic-Version": APIVersion, "Anthropic-Beta": "a-2025,b-2026",
		"Content-Type": "application/json", "Accept": "application/json", "Authorization": "",
		"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "X-Request-Id": "req-1",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("upstream header %s = %q, want %q", k, got, want)
		}
	}
	if strings.Contains(u.bodies[0], "sk-leak") || !strings.Contains(u.bodies[0], `"model":"claude-up"`) {
		t.Errorf("upstream body %s", u.bodies[0])
	}
}

func TestAnthropicDoStream(t *testing.T) {
	raw, _ := os.ReadFile("testdata/stream/tool_use_parallel.sse")
	want, _ := os.ReadFile("testdata/stream/tool_use_parallel.golden")
	u := &upstream{status: 200, ctype: "text/event-stream", body: string(raw)}
	p, _ := newProvider(t, u, Settings{})
	resp, err := p.Do(context.Background(), chatRequest(`{"model":"x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out, err := io.ReadAll(resp.Body)
	if got := fixture.Render(out, err); got != string(want) {
		t.Errorf("stream over HTTP differs from the golden file:\n%s", got)
	}
	if a := u.got[0].Header.Get("Accept"); a != "text/event-stream" {
		t.Errorf("Accept %q", a)
	}
	if !strings.Contains(u.bodies[0], `"stream":true`) || strings.Contains(u.bodies[0], "stream_options") {
		t.Errorf("upstream body %s", u.bodies[0])
	}
}

// TestDoStreamCanceled: canceling the request ends the translated body's reads.
func TestAnthropicDoStreamCanceled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p, err := New(Options{BaseURL: srv.URL, Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := p.Do(ctx, chatRequest(`{"messages":[{"role":"user","content":"x"}]}`, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, `"role":"assistant"`) {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	if _, err := io.ReadAll(br); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
}

func TestAnthropicDoUpstreamErrors(t *testing.T) {
	u := &upstream{status: 529, ctype: "application/json", body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}`,
		header: http.Header{"Retry-After": {"7"}, "Request-Id": {"req_011"}}}
	p, _ := newProvider(t, u, Settings{})
	resp, err := p.Do(context.Background(), chatRequest(`{"messages":[{"role":"user","content":"x"}]}`, true))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("Request-Id") != "req_011" ||
		string(body) != `{"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded_error"}}` {
		t.Errorf("HTTP %d %v: %s", resp.StatusCode, resp.Header, body)
	}
}

// TestDoAnsweredLocally: unsupported endpoints and untranslatable requests never reach the
// upstream; a dead upstream is an error (no response), as for every provider.
func TestAnthropicDoAnsweredLocally(t *testing.T) {
	u := &upstream{status: 200, ctype: "application/json", body: `{}`}
	p, _ := newProvider(t, u, Settings{})
	for _, tc := range []struct {
		req    *providers.Request
		status int
		code   string
	}{
		{&providers.Request{Endpoint: providers.Embeddings, Body: []byte(`{"model":"x","input":"a"}`)}, 400, "unsupported_endpoint"},
		{&providers.Request{Endpoint: providers.Completions, Body: []byte(`{"model":"x","prompt":"a"}`)}, 400, "unsupported_endpoint"},
		{chatRequest(`{"model":"x","messages":[{"role":"user","content":"x"}],"n":3}`, false), 400, "invalid_value"},
	} {
		resp, err := p.Do(context.Background(), tc.req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
			t.Errorf("HTTP %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
		}
	}
	if len(u.got) != 0 {
		t.Errorf("%d requests reached the upstream", len(u.got))
	}
	dead, err := New(Options{BaseURL: "http://127.0.0.1:1", Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := dead.Do(context.Background(), chatRequest(`{"messages":[]}`, false)); err == nil {
		resp.Body.Close()
		t.Error("a refused connection gave a response")
	}
}

func TestAnthropicNewOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		ok   bool
	}{
		{Options{}, true}, // https://api.anthropic.com
		{Options{BaseURL: "http://127.0.0.1:9"}, true},
		{Options{BaseURL: "ftp://x"}, false},
		{Options{BaseURL: "https://user:secret@host"}, true},
		{Options{BaseURL: "://"}, false},
		{Options{Settings: Settings{DefaultMaxTokens: -1}}, false},
		{Options{Settings: Settings{PassFields: []string{"messages"}}}, false},
		{Options{Settings: Settings{PassFields: []string{""}}}, false},
		{Options{Settings: Settings{PassFields: []string{"thinking"}}}, true},
	} {
		p, err := New(tc.opts)
		if (err == nil) != tc.ok {
			t.Errorf("New(%+v): %v", tc.opts, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a credential: %v", err)
		}
		if p != nil {
			if tc.opts.BaseURL == "" && p.endpoint != DefaultBaseURL+"/v1/messages" {
				t.Errorf("endpoint %q", p.endpoint)
			}
			p.CloseIdleConnections()
		}
	}
}
