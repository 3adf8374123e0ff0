package gemini

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/outbound"
)

// loopback lets the provider dial the simulated upstreams on 127.0.0.1, which the default address
// policy refuses.
var loopback = outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

const testKey = "gemini-upstream-key"

func newProvider(t *testing.T, base string) *Provider {
	t.Helper()
	p, err := New(Options{BaseURL: base, APIKey: testKey, Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// mockUpstream serves the mock's Gemini endpoints, requiring the test key.
func mockUpstream(t *testing.T, opts mock.Options) (*Provider, *mock.Handler) {
	t.Helper()
	opts.RequireKey = testKey
	h := mock.NewHandler(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newProvider(t, srv.URL+"/v1beta"), h
}

func chat(body string, stream bool) *providers.Request {
	return &providers.Request{Endpoint: providers.ChatCompletions, Body: []byte(body), Stream: stream, Model: "gemini-test",
		Header: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "Authorization": {"Bearer sk-client-key"}}}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return string(b)
}

func TestGeminiNewOptions(t *testing.T) {
	p, err := New(Options{})
	if err != nil || p.base != DefaultBaseURL {
		t.Errorf("default base: %v %v", p, err)
	}
	for _, bad := range []string{"ftp://x", "not a url\x7f", "https://", "https://h/v1beta?key=secret", "https://user:pw@h/v1beta"} {
		if _, err := New(Options{BaseURL: bad}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks the URL's credentials: %v", err)
		}
	}
}

// TestGeminiRequestOnTheWire checks what reaches Gemini: the model's path, alt=sse for streams,
// the key in x-goog-api-key and never in the URL, no client Authorization, the trace header, and
// a translated body (fields naming other upstreams are ignored).
func TestGeminiRequestOnTheWire(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, gotBody = r, b
		mu.Unlock()
		if r.URL.Query().Get("alt") == "sse" {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"candidates":[{"content":{"parts":[{"text":"hi"}],"role":"model"},"finishReason":"STOP","index":0}]}`)
	}))
	defer srv.Close()
	p := newProvider(t, srv.URL+"/v1beta/")
	body := `{"model":"public-name","messages":[{"role":"user","content":"hello"}],"api_base":"http://127.0.0.1:1","base_url":"http://127.0.0.1:1","api_key":"sk-other"}`
	for _, stream := range []bool{false, true} {
		resp, err := p.Do(context.Background(), chat(body, stream))
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(t, resp)
		if resp.StatusCode != 200 || !strings.Contains(out, `"hi"`) {
			t.Fatalf("stream=%v: HTTP %d %s", stream, resp.StatusCode, out)
		}
		mu.Lock()
		wantPath := "/v1beta/models/gemini-test:generateContent"
		if stream {
			wantPath = "/v1beta/models/gemini-test:streamGenerateContent"
		}
		if got.URL.Path != wantPath || (stream && got.URL.RawQuery != "alt=sse") || (!stream && got.URL.RawQuery != "") {
			t.Errorf("stream=%v: URL %s", stream, got.URL)
		}
		if got.Header.Get("X-Goog-Api-Key") != testKey || got.Header.Get("Authorization") != "" {
			t.Errorf("credentials: key %q, Authorization %q", got.Header.Get("X-Goog-Api-Key"), got.Header.Get("Authorization"))
		}
		if got.Header.Get("Traceparent") == "" || got.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers: %v", got.Header)
		}
		if strings.Contains(string(gotBody), "127.0.0.1") || strings.Contains(string(gotBody), "sk-other") ||
			gjson.GetBytes(gotBody, "contents.0.parts.0.text").Str != "hello" {
			t.Errorf("body sent: %s", gotBody)
		}
		mu.Unlock()
		wantCT := "application/json"
		if stream {
			wantCT = "text/event-stream"
		}
		if resp.Header.Get("Content-Type") != wantCT {
			t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
		}
	}
}

func TestGeminiAgainstMock(t *testing.T) {
	p, h := mockUpstream(t, mock.Options{Chunks: 4})
	body := `{"model":"g","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Say hello"}],"stream_options":{"include_usage":true}}`

	resp, err := p.Do(context.Background(), chat(body, false))
	if err != nil {
		t.Fatal(err)
	}
	out := readAll(t, resp)
	j := gjson.Parse(out)
	if resp.StatusCode != 200 || j.Get("object").Str != "chat.completion" || j.Get("choices.0.message.content").Str != "the mock upstream streams" ||
		j.Get("choices.0.finish_reason").Str != "stop" || j.Get("model").Str != "gemini-test" {
		t.Fatalf("HTTP %d %s", resp.StatusCode, out)
	}
	// (3 + 2) + (3 + 2) prompt tokens, 4 completion tokens.
	if u := j.Get("usage"); u.Get("prompt_tokens").Int() != 10 || u.Get("completion_tokens").Int() != 4 || u.Get("total_tokens").Int() != 14 {
		t.Errorf("usage = %s", u.Raw)
	}

	resp, err = p.Do(context.Background(), chat(body, true))
	if err != nil {
		t.Fatal(err)
	}
	out = readAll(t, resp)
	if err := checkStream([]byte(out)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var text strings.Builder
	var usage gjson.Result
	for ev := range strings.SplitSeq(strings.TrimSuffix(out, "\n\n"), "\n\n") {
		d := gjson.Parse(strings.TrimPrefix(ev, "data: "))
		text.WriteString(d.Get("choices.0.delta.content").Str)
		if d.Get("usage").Exists() {
			usage = d.Get("usage")
		}
	}
	if text.String() != "the mock upstream streams" || usage.Get("prompt_tokens").Int() != 10 || usage.Get("completion_tokens").Int() != 4 {
		t.Errorf("text %q usage %s", text.String(), usage.Raw)
	}
	if s := h.Stats(); s.Completed != 2 || s.Errors != 0 {
		t.Errorf("mock stats = %+v", s)
	}
}

func TestGeminiToolsAndThoughtsAgainstMock(t *testing.T) {
	p, h := mockUpstream(t, mock.Options{Chunks: 3})
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","additionalProperties":false,
		"properties":{"city":{"type":"string"}},"required":["city"]}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]`
	body := `{"model":"g","reasoning_effort":"low","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather and time?"}],` + tools + `}`
	resp, err := p.Do(context.Background(), chat(body, true))
	if err != nil {
		t.Fatal(err)
	}
	out := readAll(t, resp)
	if err := checkStream([]byte(out)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ids, names []string
	var reasoning strings.Builder
	finish := ""
	var usage gjson.Result
	for ev := range strings.SplitSeq(strings.TrimSuffix(out, "\n\n"), "\n\n") {
		d := gjson.Parse(strings.TrimPrefix(ev, "data: "))
		reasoning.WriteString(d.Get("choices.0.delta.reasoning_content").Str)
		d.Get("choices.0.delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
			ids = append(ids, tc.Get("id").Str)
			names = append(names, tc.Get("function.name").Str)
			return true
		})
		if f := d.Get("choices.0.finish_reason").Str; f != "" {
			finish = f
		}
		if d.Get("usage").Exists() {
			usage = d.Get("usage")
		}
	}
	if len(ids) != 2 || names[0] != "get_weather" || names[1] != "get_time" || finish != "tool_calls" || reasoning.Len() == 0 {
		t.Fatalf("calls %v %v finish %q reasoning %q\n%s", ids, names, finish, reasoning.String(), out)
	}
	if !strings.Contains(ids[0], thoughtSeparator) {
		t.Errorf("the first call's thought signature is not carried in its id: %s", ids[0])
	}
	// Thoughts: 2 tokens; 2 calls of 3 tokens each.
	if usage.Get("completion_tokens_details.reasoning_tokens").Int() != 2 || usage.Get("completion_tokens").Int() != 8 {
		t.Errorf("usage = %s", usage.Raw)
	}

	// The round trip: the calls and their results go back; the answer is text.
	round := `{"model":"g","messages":[{"role":"user","content":"Weather and time?"},
		{"role":"assistant","content":null,"tool_calls":[
			{"id":"` + ids[0] + `","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"mock\"}"}},
			{"id":"` + ids[1] + `","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"` + ids[0] + `","content":"{\"temp\":21}"},
		{"role":"tool","tool_call_id":"` + ids[1] + `","content":"noon"}],` + tools + `}`
	resp, err = p.Do(context.Background(), chat(round, false))
	if err != nil {
		t.Fatal(err)
	}
	out = readAll(t, resp)
	if resp.StatusCode != 200 || gjson.Get(out, "choices.0.message.content").Str == "" || gjson.Get(out, "choices.0.finish_reason").Str != "stop" {
		t.Fatalf("HTTP %d %s", resp.StatusCode, out)
	}
	sent := h.Requests(1)[0].Body
	if gjson.Get(sent, "contents.1.parts.0.thoughtSignature").Str != "bW9jay1zaWduYXR1cmU=" ||
		gjson.Get(sent, "contents.2.parts.1.functionResponse.name").Str != "get_time" ||
		gjson.Get(sent, "contents.2.parts.1.functionResponse.response.content").Str != "noon" {
		t.Errorf("round trip sent %s", sent)
	}
}

func TestGeminiErrorsAgainstMock(t *testing.T) {
	t.Run("upstream failure keeps its status", func(t *testing.T) {
		p, _ := mockUpstream(t, mock.Options{ErrorRate: 1})
		for _, stream := range []bool{false, true} {
			resp, err := p.Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, stream))
			if err != nil {
				t.Fatal(err)
			}
			out := readAll(t, resp)
			if resp.StatusCode != 500 || gjson.Get(out, "error.type").Str != "server_error" || gjson.Get(out, "error.code").Str != "internal" ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("stream=%v: HTTP %d %s", stream, resp.StatusCode, out)
			}
		}
	})
	t.Run("wrong key is an authentication failure", func(t *testing.T) {
		h := mock.NewHandler(mock.Options{RequireKey: "another-key"})
		srv := httptest.NewServer(h)
		defer srv.Close()
		p := newProvider(t, srv.URL+"/v1beta")
		resp, err := p.Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, false))
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(t, resp)
		if resp.StatusCode != 401 || gjson.Get(out, "error.code").Str != "invalid_api_key" {
			t.Errorf("HTTP %d %s", resp.StatusCode, out)
		}
	})
	t.Run("untranslatable requests never reach Gemini", func(t *testing.T) {
		p, h := mockUpstream(t, mock.Options{})
		for _, req := range []*providers.Request{
			chat(`{"model":"g","n":3,"messages":[{"role":"user","content":"x"}]}`, false),
			{Endpoint: providers.Embeddings, Body: []byte(`{"model":"g","input":"x"}`), Model: "g"},
			{Endpoint: providers.Completions, Body: []byte(`{"model":"g","prompt":"x"}`), Model: "g"},
		} {
			resp, err := p.Do(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			out := readAll(t, resp)
			if resp.StatusCode != 400 || gjson.Get(out, "error.type").Str != "invalid_request_error" || gjson.Get(out, "error.message").Str == "" {
				t.Errorf("%s: HTTP %d %s", req.Endpoint, resp.StatusCode, out)
			}
		}
		if s := h.Stats(); s.Requests != 0 {
			t.Errorf("the mock saw %d requests", s.Requests)
		}
	})
	t.Run("429 carries Retry-After from RetryInfo", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(429)
			_, _ = io.WriteString(w, `{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"}]}}`)
		}))
		defer srv.Close()
		resp, err := newProvider(t, srv.URL).Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, true))
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(t, resp)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || gjson.Get(out, "error.type").Str != "rate_limit_error" {
			t.Errorf("HTTP %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), out)
		}
	})
	t.Run("redirects are not followed with the key", func(t *testing.T) {
		var reached atomic.Bool
		elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached.Store(true)
		}))
		defer elsewhere.Close()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		resp, err := newProvider(t, srv.URL).Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, false))
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(t, resp)
		if resp.StatusCode != http.StatusTemporaryRedirect || gjson.Get(out, "error.message").Str == "" || reached.Load() {
			t.Errorf("HTTP %d %s (redirect followed: %v)", resp.StatusCode, out, reached.Load())
		}
	})
	t.Run("connection refused is an error", func(t *testing.T) {
		p := newProvider(t, "http://127.0.0.1:1/v1beta")
		if resp, err := p.Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, false)); err == nil {
			resp.Body.Close()
			t.Error("no error")
		}
	})
	t.Run("a dropped stream is a read error", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"par\"}]}}]}\r\n\r\n")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}))
		defer srv.Close()
		resp, err := newProvider(t, srv.URL).Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(string(out), `"content":"par"`) {
			t.Errorf("err %v, out %s", err, out)
		}
	})
	t.Run("a stream without finish reason ends with an error event", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"par\"}]}}]}\r\n\r\n")
		}))
		defer srv.Close()
		resp, err := newProvider(t, srv.URL).Do(context.Background(), chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, true))
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(t, resp)
		if !strings.Contains(out, `"code":"stream_interrupted"`) || strings.Contains(out, "[DONE]") {
			t.Errorf("out %s", out)
		}
	})
}

// TestGeminiStreamCancel: canceling the context ends the stream's reads promptly.
func TestGeminiStreamCancel(t *testing.T) {
	p, h := mockUpstream(t, mock.Options{Chunks: 50, TokensPerSecond: 20})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := p.Do(ctx, chat(`{"model":"g","messages":[{"role":"user","content":"x"}]}`, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reads went on after the context was canceled")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Canceled != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := h.Stats(); s.Canceled != 1 {
		t.Errorf("mock stats = %+v", s)
	}
}
