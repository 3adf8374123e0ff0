package mock

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

const geminiPath = "/v1beta/models/gemini-test:generateContent"
const geminiStreamPath = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"

// geminiBody is a request of 2 contents and a system instruction:
// (3 + 2 words) + (3 + 2 words) + (3 + 3 words) = 16 prompt tokens.
const geminiBody = `{"systemInstruction":{"parts":[{"text":"Be terse."}]},
	"contents":[{"role":"user","parts":[{"text":"Say hello"},{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]},
	{"role":"model","parts":[{"text":"hello there friend"}]}]%s}`

const geminiPromptTokens = 16

func geminiReq(extra string) string { return strings.Replace(geminiBody, "%s", extra, 1) }

// geminiEvents splits a Gemini SSE body: "data: " events separated by CRLF CRLF.
func geminiEvents(t *testing.T, body string) []gjson.Result {
	t.Helper()
	if !strings.HasSuffix(body, "\r\n\r\n") {
		t.Fatalf("stream does not end with CRLF CRLF: %q", body)
	}
	var out []gjson.Result
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\r\n\r\n"), "\r\n\r\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !gjson.Valid(data) {
			t.Fatalf("malformed event %q", ev)
		}
		out = append(out, gjson.Parse(data))
	}
	return out
}

func TestMockGeminiGenerateContent(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 4, TokensPerChunk: 2})
	resp, body := post(t, srv, geminiPath, geminiReq(""))
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	j := gjson.Parse(body)
	c := j.Get("candidates.0")
	if c.Get("content.role").Str != "model" || c.Get("content.parts.0.text").Str != answerText(8) || c.Get("finishReason").Str != "STOP" {
		t.Errorf("candidate = %s", c.Raw)
	}
	u := j.Get("usageMetadata")
	if u.Get("promptTokenCount").Int() != geminiPromptTokens || u.Get("candidatesTokenCount").Int() != 8 || u.Get("totalTokenCount").Int() != geminiPromptTokens+8 {
		t.Errorf("usage = %s", u.Raw)
	}
	if j.Get("modelVersion").Str != "gemini-test" || !strings.HasPrefix(j.Get("responseId").Str, "mock-") {
		t.Errorf("model/id: %s", body)
	}
	if s := h.Stats(); s.Requests != 1 || s.Completed != 1 {
		t.Errorf("stats = %+v", s)
	}
	if r := h.Requests(1); len(r) != 1 || r[0].Path != geminiPath {
		t.Errorf("recorded %+v", r)
	}
}

func TestMockGeminiMaxTokensAndThoughts(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 10, TokensPerChunk: 3})
	_, body := post(t, srv, geminiPath, geminiReq(`,"generationConfig":{"maxOutputTokens":5,"thinkingConfig":{"includeThoughts":true}}`))
	j := gjson.Parse(body)
	parts := j.Get("candidates.0.content.parts").Array()
	if len(parts) != 2 || !parts[0].Get("thought").Bool() || parts[0].Get("text").Str != answerText(6) || parts[1].Get("text").Str != answerText(5) {
		t.Errorf("parts = %v", parts)
	}
	if j.Get("candidates.0.finishReason").Str != "MAX_TOKENS" {
		t.Errorf("finish = %s", j.Get("candidates.0.finishReason"))
	}
	u := j.Get("usageMetadata")
	if u.Get("candidatesTokenCount").Int() != 5 || u.Get("thoughtsTokenCount").Int() != 6 || u.Get("totalTokenCount").Int() != geminiPromptTokens+11 {
		t.Errorf("usage = %s", u.Raw)
	}
	// A thinking budget caps the thoughts; a zero budget turns them off.
	_, body = post(t, srv, geminiPath, geminiReq(`,"generationConfig":{"thinkingConfig":{"includeThoughts":true,"thinkingBudget":4}}`))
	if n := gjson.Get(body, "usageMetadata.thoughtsTokenCount").Int(); n != 4 {
		t.Errorf("thoughts with budget 4 = %d", n)
	}
	_, body = post(t, srv, geminiPath, geminiReq(`,"generationConfig":{"thinkingConfig":{"includeThoughts":true,"thinkingBudget":0}}`))
	if gjson.Get(body, "usageMetadata.thoughtsTokenCount").Exists() || gjson.Get(body, "candidates.0.content.parts.#").Int() != 1 {
		t.Errorf("budget 0 still thought: %s", body)
	}
}

func TestMockGeminiStream(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 5})
	resp, body := post(t, srv, geminiStreamPath, geminiReq(`,"generationConfig":{"thinkingConfig":{"includeThoughts":true}}`))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	evs := geminiEvents(t, body)
	if len(evs) != 2+5 {
		t.Fatalf("%d events, want 7: %s", len(evs), body)
	}
	var text strings.Builder
	for i, ev := range evs {
		p := ev.Get("candidates.0.content.parts.0")
		if thought := i < 2; p.Get("thought").Bool() != thought {
			t.Errorf("event %d thought = %v", i, !thought)
		} else if !thought {
			text.WriteString(p.Get("text").Str)
		}
		u := ev.Get("usageMetadata")
		wantCand := max(i-1, 0)
		wantThoughts := min(i+1, 2)
		if u.Get("promptTokenCount").Int() != geminiPromptTokens || u.Get("candidatesTokenCount").Int() != int64(wantCand) || u.Get("thoughtsTokenCount").Int() != int64(wantThoughts) {
			t.Errorf("event %d usage = %s (cumulative: want %d candidates, %d thoughts)", i, u.Raw, wantCand, wantThoughts)
		}
		if fr := ev.Get("candidates.0.finishReason").Str; (fr != "") != (i == len(evs)-1) || (fr != "" && fr != "STOP") {
			t.Errorf("event %d finishReason %q", i, fr)
		}
	}
	if text.String() != answerText(5) {
		t.Errorf("text = %q", text.String())
	}
	if s := h.Stats(); s.Completed != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestMockGeminiFunctionCalls(t *testing.T) {
	srv, _ := startServer(t, Options{})
	tools := `,"tools":[{"functionDeclarations":[
		{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]},"days":{"type":"integer"},"ok":{"type":"boolean"}}}},
		{"name":"get_time"}]}]`
	t.Run("auto calls every function in one turn", func(t *testing.T) {
		_, body := post(t, srv, geminiPath, geminiReq(tools))
		parts := gjson.Get(body, "candidates.0.content.parts").Array()
		if len(parts) != 2 || parts[0].Get("functionCall.name").Str != "get_weather" || parts[1].Get("functionCall.name").Str != "get_time" {
			t.Fatalf("parts = %v", parts)
		}
		if args := parts[0].Get("functionCall.args").Raw; args != `{"city":"mock","unit":"c","days":1,"ok":true}` {
			t.Errorf("args = %s", args)
		}
		if parts[0].Get("thoughtSignature").Str == "" || parts[1].Get("thoughtSignature").Exists() {
			t.Errorf("thought signature on the first call only: %v", parts)
		}
		if gjson.Get(body, "candidates.0.finishReason").Str != "STOP" || gjson.Get(body, "usageMetadata.candidatesTokenCount").Int() != 2*geminiCallTokens {
			t.Errorf("answer = %s", body)
		}
	})
	t.Run("after a function response the answer is text", func(t *testing.T) {
		req := `{"contents":[{"role":"user","parts":[{"text":"weather?"}]},
			{"role":"model","parts":[{"functionCall":{"name":"get_time","args":{}}}]},
			{"role":"user","parts":[{"functionResponse":{"name":"get_time","response":{"content":"noon"}}}]}]` + tools + `}`
		_, body := post(t, srv, geminiPath, req)
		if p := gjson.Get(body, "candidates.0.content.parts.0"); p.Get("text").Str == "" {
			t.Errorf("answer = %s", body)
		}
	})
	t.Run("ANY with allowed names", func(t *testing.T) {
		_, body := post(t, srv, geminiPath, geminiReq(tools+`,"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_time"]}}`))
		parts := gjson.Get(body, "candidates.0.content.parts").Array()
		if len(parts) != 1 || parts[0].Get("functionCall.name").Str != "get_time" {
			t.Errorf("parts = %v", parts)
		}
	})
	t.Run("NONE answers text", func(t *testing.T) {
		_, body := post(t, srv, geminiPath, geminiReq(tools+`,"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}`))
		if gjson.Get(body, "candidates.0.content.parts.0.functionCall").Exists() {
			t.Errorf("answer = %s", body)
		}
	})
	t.Run("stream", func(t *testing.T) {
		_, body := post(t, srv, geminiStreamPath, geminiReq(tools))
		evs := geminiEvents(t, body)
		if len(evs) != 1 || evs[0].Get("candidates.0.content.parts.#").Int() != 2 || evs[0].Get("candidates.0.finishReason").Str != "STOP" {
			t.Errorf("events = %v", evs)
		}
	})
}

func TestMockGeminiFailAfter(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 5})
	req, err := http.NewRequest(http.MethodPost, srv.URL+geminiStreamPath, strings.NewReader(geminiReq(`,"mock":{"fail_after":3}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	n := 0
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data: ") {
			n++
		}
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("stream ended with %v, want an unexpected EOF", err)
			}
			break
		}
	}
	if n != 3 {
		t.Errorf("%d events before the drop, want 3", n)
	}
	waitFor(t, "the aborted stream to be counted", func() bool { return h.Stats().Aborted == 1 })

	// fail_after past the end: every event, the last without its finishReason.
	_, body := postAllowingCut(t, srv.URL+geminiStreamPath, geminiReq(`,"mock":{"fail_after":99}`))
	evs := strings.Count(body, "data: ")
	if evs != 5 || strings.Contains(body, "finishReason") {
		t.Errorf("%d events, finishReason present: %v\n%s", evs, strings.Contains(body, "finishReason"), body)
	}
}

// postAllowingCut posts and reads what arrives before the connection drops.
func postAllowingCut(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestMockGeminiErrors(t *testing.T) {
	srv, _ := startServer(t, Options{})
	cases := []struct {
		name, path, body string
		header           []string
		status           int
		grpc             string
	}{
		{"status override", geminiPath, geminiReq(`,"mock":{"status":429}`), nil, 429, "RESOURCE_EXHAUSTED"},
		{"overloaded", geminiStreamPath, geminiReq(`,"mock":{"status":503}`), nil, 503, "UNAVAILABLE"},
		{"error rate", geminiPath, geminiReq(`,"mock":{"error_rate":1}`), nil, 500, "INTERNAL"},
		{"unknown field", geminiPath, geminiReq(`,"messages":[]`), nil, 400, "INVALID_ARGUMENT"},
		{"unknown generation field", geminiPath, geminiReq(`,"generationConfig":{"max_tokens":3}`), nil, 400, "INVALID_ARGUMENT"},
		{"schema keyword Gemini refuses", geminiPath, geminiReq(`,"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"object","additionalProperties":false}}}}]}]`), nil, 400, "INVALID_ARGUMENT"},
		{"bad role", geminiPath, `{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}`, nil, 400, "INVALID_ARGUMENT"},
		{"empty parts", geminiPath, `{"contents":[{"role":"user","parts":[]}]}`, nil, 400, "INVALID_ARGUMENT"},
		{"two data fields", geminiPath, `{"contents":[{"role":"user","parts":[{"text":"x","inlineData":{"mimeType":"a/b","data":"x"}}]}]}`, nil, 400, "INVALID_ARGUMENT"},
		{"non-object function response", geminiPath, `{"contents":[{"role":"user","parts":[{"functionResponse":{"name":"f","response":"x"}}]}]}`, nil, 400, "INVALID_ARGUMENT"},
		{"no contents", geminiPath, `{}`, nil, 400, "INVALID_ARGUMENT"},
		{"stream without alt=sse", "/v1beta/models/m:streamGenerateContent", geminiReq(""), nil, 400, "INVALID_ARGUMENT"},
		{"unknown method", "/v1beta/models/m:countTokens", geminiReq(""), nil, 404, "NOT_FOUND"},
		{"key in the URL", geminiPath + "?key=abc", geminiReq(""), nil, 400, "INVALID_ARGUMENT"},
		{"Authorization header", geminiPath, geminiReq(""), []string{"Authorization", "Bearer sk-client"}, 401, "UNAUTHENTICATED"},
		{"require_key override without key", geminiPath, geminiReq(`,"mock":{"require_key":"k1"}`), nil, 403, "PERMISSION_DENIED"},
		{"require_key override with a wrong key", geminiPath, geminiReq(`,"mock":{"require_key":"k1"}`), []string{"X-Goog-Api-Key", "k2"}, 400, "INVALID_ARGUMENT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, srv, tc.path, tc.body, tc.header...)
			e := gjson.Get(body, "error")
			if resp.StatusCode != tc.status || e.Get("code").Int() != int64(tc.status) || e.Get("status").Str != tc.grpc || e.Get("message").Str == "" {
				t.Errorf("HTTP %d: %s", resp.StatusCode, body)
			}
		})
	}
	resp, body := post(t, srv, geminiPath, geminiReq(`,"mock":{"status":429}`))
	if resp.StatusCode != 429 || gjson.Get(body, `error.details.#(@type%"*RetryInfo").retryDelay`).Str != "1s" {
		t.Errorf("429 without RetryInfo: %s", body)
	}
	resp, body = post(t, srv, geminiPath, geminiReq(`,"mock":{"error_body":"upstream exploded"}`))
	if resp.StatusCode != 500 || body != "upstream exploded" {
		t.Errorf("error_body: HTTP %d %q", resp.StatusCode, body)
	}
}

func TestMockGeminiRequireKey(t *testing.T) {
	srv, h := startServer(t, Options{RequireKey: "g-key"})
	if resp, body := post(t, srv, geminiPath, geminiReq("")); resp.StatusCode != 403 {
		t.Errorf("without key: HTTP %d %s", resp.StatusCode, body)
	}
	resp, body := post(t, srv, geminiPath, geminiReq(""), "X-Goog-Api-Key", "wrong")
	if resp.StatusCode != 400 || gjson.Get(body, "error.details.0.reason").Str != "API_KEY_INVALID" {
		t.Errorf("wrong key: HTTP %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, srv, geminiPath, geminiReq(""), "X-Goog-Api-Key", "g-key"); resp.StatusCode != 200 {
		t.Errorf("right key: HTTP %d %s", resp.StatusCode, body)
	}
	if s := h.Stats(); s.Requests != 3 || s.Errors != 2 || s.Completed != 1 {
		t.Errorf("stats = %+v", s)
	}
}
