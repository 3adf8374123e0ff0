package oairender

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
)

func TestChunk(t *testing.T) {
	head := AppendChunkHead(nil, "chatcmpl-1", 1700000000, "m\"x")
	if want := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m\"x",`; string(head) != want {
		t.Fatalf("head %s, want %s", head, want)
	}
	for _, tc := range []struct {
		name, finish, delta, want string
	}{
		{"delta", "", `"content":"hi"`, `"choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}`},
		{"finish", "tool_calls", ``, `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := AppendChunkStart(nil, head)
			out = append(out, tc.delta...)
			out = AppendChunkEnd(out, tc.finish)
			if want := string(head) + tc.want + "\n\n"; string(out) != want {
				t.Errorf("got %s, want %s", out, want)
			}
			data, ok := bytes.CutPrefix(bytes.TrimSuffix(out, []byte("\n\n")), []byte("data: "))
			if !ok || !json.Valid(data) {
				t.Errorf("not one data event of JSON: %q", out)
			}
		})
	}
}

func TestCompletionHead(t *testing.T) {
	out := append(AppendCompletionHead(nil, "msg_1", 7, "claude"), `"choices":[]}`...)
	if want := `{"id":"msg_1","object":"chat.completion","created":7,"model":"claude","choices":[]}`; string(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    Usage
		want string
	}{
		{"without cache writes", Usage{PromptTokens: 10, CompletionTokens: 5, CachedTokens: 4, ReasoningTokens: 2},
			`{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}`},
		{"with cache writes", Usage{PromptTokens: 10, CompletionTokens: 5, CacheWriteTokens: 3, HasCacheWrites: true},
			`{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":3},"completion_tokens_details":{"reasoning_tokens":0}}`},
		{"zero cache writes are reported", Usage{HasCacheWrites: true},
			`{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tc.u.AppendJSON(nil)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	head := AppendChunkHead(nil, "c", 1, "m")
	chunk := AppendUsageChunk(nil, head, Usage{PromptTokens: 1})
	if j := gjson.ParseBytes(bytes.TrimPrefix(chunk, []byte("data: "))); !bytes.HasSuffix(chunk, []byte("}\n\n")) ||
		j.Get("choices.#").Int() != 0 || j.Get("usage.total_tokens").Int() != 1 || j.Get("object").Str != "chat.completion.chunk" {
		t.Errorf("usage chunk %q", chunk)
	}
}

func TestAppendArguments(t *testing.T) {
	var scratch bytes.Buffer
	for _, tc := range []struct{ name, in, want string }{
		{"object is compacted", `{ "a" : [1, 2], "b":"\u2028" }`, `"{\"a\":[1,2],\"b\":\"\\u2028\"}"`},
		{"empty object", `{}`, `"{}"`},
		{"missing", ``, `"{}"`},
		{"array", `[1]`, `"{}"`},
		{"string", `"{}"`, `"{}"`},
		{"null", `null`, `"{}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendArguments([]byte("x"), gjson.Parse(tc.in), &scratch))
			if got != "x"+tc.want {
				t.Errorf("got %s, want x%s", got, tc.want)
			}
		})
	}
}

func TestErrorEvent(t *testing.T) {
	got := string(AppendErrorEvent(nil, api.NewError(api.TypeUpstream, "bad_upstream_event", "", "boom")))
	if want := `data: {"error":{"message":"boom","type":"upstream_error","param":null,"code":"bad_upstream_event"}}` + "\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestResponses(t *testing.T) {
	hdr := http.Header{"Retry-After": {"7"}}
	resp := ErrorResponse(http.StatusServiceUnavailable, api.NewError(api.TypeServer, "overloaded_error", "", "Overloaded"), hdr)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Status != "503 Service Unavailable" || resp.Header.Get("Retry-After") != "7" ||
		resp.Header.Get("Content-Type") != "application/json" || resp.ContentLength != int64(len(body)) ||
		resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) ||
		string(body) != `{"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded_error"}}` {
		t.Errorf("HTTP %s %v length %d: %s", resp.Status, resp.Header, resp.ContentLength, body)
	}
	if len(hdr) != 1 {
		t.Errorf("the caller's header was modified: %v", hdr)
	}

	up := &http.Response{Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{"Content-Type": {"text/event-stream"}, "X-Upstream": {"1"}},
		Request: &http.Request{Method: http.MethodPost}}
	s := StreamResponse(up, io.NopCloser(bytes.NewReader(nil)))
	if s.StatusCode != 200 || s.ContentLength != -1 || s.Proto != "HTTP/2.0" || s.Request != up.Request ||
		s.Header.Get("Content-Type") != "text/event-stream" || s.Header.Get("Cache-Control") != "no-cache" || s.Header.Get("X-Upstream") != "" {
		t.Errorf("stream answer %+v", s)
	}
}
