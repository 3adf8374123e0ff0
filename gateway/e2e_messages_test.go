package gateway_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/messages"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/quota"
)

// messagesEnv is a gateway serving Anthropic's Messages API. "claude-sonnet-4-5" (the name
// Claude Code sends) is served by a provider of type anthropic ("claude", upstream model
// "claude-up") in front of the mock's Messages API on loopback: passthrough. "gpt-test" is the
// harness's OpenAI-type deployment: translated. The quota tiers: "open" (no limits) and
// "tiny" (2 requests a minute).
func messagesEnv(t *testing.T, opts ...envOption) (*env, *mock.Handler, *httptest.Server) {
	t.Helper()
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	p, err := anthropic.New(anthropic.Options{BaseURL: srv.URL, APIKey: upstreamKey, Outbound: loopback})
	qo := quota.Options{DefaultTier: "open", Tiers: map[string]quota.Limits{"open": {}, "tiny": {RPM: 2}, "metered": {TPM: 10_000_000, Concurrent: 5}}}
	opts = append([]envOption{func(c *envConfig) { c.quota = &qo }, withRouting([]namedProvider{{"claude", p, err}},
		providers.ModelConfig{Name: "claude-sonnet-4-5", Deployments: []providers.DeploymentConfig{{ID: "claude-dep", Provider: "claude", Model: "claude-up"}}})},
		opts...)
	return newEnv(t, opts...), up, srv
}

// postMessages sends a Messages request the way the Anthropic SDK does: x-api-key and
// anthropic-version, plus hdr (name, value pairs).
func (e *env) postMessages(ctx context.Context, path, key, body string, hdr ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.baseURL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	req.Header.Set("Anthropic-Version", "2023-06-01")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// readAll reads and closes an answer.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const weatherTool = `{"name":"get_weather","description":"Weather of a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`

// mockIDs are the ids the mock makes per request, which differ between two identical requests.
var mockIDs = regexp.MustCompile(`(msg|toolu|req)_mock_[0-9a-z_]+`)

// TestMessagesPassthrough: a Messages request to an Anthropic deployment reaches it byte for byte
// but the model, with the client's anthropic-version and anthropic-beta and the gateway's
// credential (never the caller's key), and the answer, whole or streamed, is the upstream's as it
// is: the same bytes a direct call gets, every SSE event with its event line. The record is one
// "messages" record with the provider's usage (input counts the cache reads and writes).
func TestMessagesPassthrough(t *testing.T) {
	e, up, srv := messagesEnv(t)
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "whole", true: "stream"}[stream]
		t.Run(name, func(t *testing.T) {
			body := `{"model":"claude-sonnet-4-5","max_tokens":64,"system":[{"type":"text","text":"Be terse.","cache_control":{"type":"ephemeral"}}],` +
				`"messages":[{"role":"user","content":"use get_weather: what is the weather in Paris"}],"tools":[` + weatherTool + `],"metadata":{"user_id":"u1"}`
			if stream {
				body += `,"stream":true`
			}
			body += "}"
			// The same request straight to the upstream answers the same bytes, ids aside.
			want, _ := sjson.Set(body, "model", "claude-up")
			var d string
			for range 2 { // the first writes the prompt cache, which the second and the gateway's read
				direct, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(want))
				direct.Header.Set("X-Api-Key", upstreamKey)
				direct.Header.Set("Anthropic-Version", "2023-06-01")
				dresp, err := http.DefaultClient.Do(direct)
				if err != nil {
					t.Fatal(err)
				}
				d = readAll(t, dresp)
			}
			resp := e.postMessages(context.Background(), "/messages", e.key, body, "Anthropic-Beta", "interleaved-thinking-2025-05-14,claude-code-20250219")
			got := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, got)
			}
			sent := lastMessagesRequest(t, up)
			if sent.Body != want {
				t.Errorf("upstream body\n%s\nwant\n%s", sent.Body, want)
			}
			if sent.Headers["X-Api-Key"] != upstreamKey || sent.Headers["Anthropic-Version"] != "2023-06-01" ||
				sent.Headers["Anthropic-Beta"] != "interleaved-thinking-2025-05-14,claude-code-20250219" || strings.Contains(sent.Headers["Authorization"], e.key) {
				t.Errorf("upstream headers %v", sent.Headers)
			}
			if mockIDs.ReplaceAllString(d, "ID") != mockIDs.ReplaceAllString(got, "ID") {
				t.Errorf("through the gateway\n%s\ndirect\n%s", got, d)
			}
			if stream {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Errorf("Content-Type %q", ct)
				}
				if !strings.HasPrefix(got, "event: message_start\n") || !strings.Contains(got, "event: message_stop\n") {
					t.Errorf("stream %s", got)
				}
			} else if gjson.Get(got, "type").Str != "message" || gjson.Get(got, "content.0.type").Str != "tool_use" {
				t.Errorf("answer %s", got)
			}
			r := e.usageFor(resp.Header.Get("X-Request-Id"))
			if r.Endpoint != "messages" || r.Status != 200 || r.UsageSource != "provider" || r.Deployment != "claude-dep" ||
				r.Model != "claude-sonnet-4-5" || r.UpstreamModel != "claude-up" || r.Stream != stream {
				t.Errorf("record %+v", r)
			}
			// The mock's usage: input 3+8 for the user turn plus the cached system (3+2), read from
			// the cache.
			if r.PromptTokens != 16 || r.CachedTokens != 5 || r.CompletionTokens <= 0 {
				t.Errorf("tokens: prompt %d cached %d completion %d, want 16, 5, > 0", r.PromptTokens, r.CachedTokens, r.CompletionTokens)
			}
		})
	}
}

// TestMessagesCountTokensPassthrough: count_tokens goes to the Anthropic deployment as it came
// (no max_tokens needed); its record is one "messages/count_tokens" record without tokens or
// cost, and no tokens are counted against the quota.
func TestMessagesCountTokensPassthrough(t *testing.T) {
	e, up, _ := messagesEnv(t)
	k := e.newKey(keySpec{Name: "counter", UserID: "counter", Tier: "metered"})
	resp := e.postMessages(context.Background(), "/messages/count_tokens", k.Key, `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"one two three"}]}`)
	got := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || got != `{"input_tokens":6}` {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, got)
	}
	if r := up.Requests(1); len(r) != 1 || r[0].Path != "/v1/messages/count_tokens" || gjson.Get(r[0].Body, "model").Str != "claude-up" {
		t.Errorf("upstream requests %+v", r)
	}
	r := e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.Endpoint != "messages/count_tokens" || r.Status != 200 || r.UsageSource != "" || r.PromptTokens != 0 || r.CostPicoUSD != nil || r.Deployment != "claude-dep" {
		t.Errorf("record %+v", r)
	}
	if u := e.userQuota(k.Key, "user/counter"); u.TokensMinute != 0 || u.Requests != 1 || u.Concurrent != 0 {
		t.Errorf("quota %+v, want one request and no tokens", u)
	}
}

// anthropicErr reads an Anthropic error body: its error type, or "" when the body is not one.
func anthropicErr(body string) string {
	if gjson.Get(body, "type").Str != "error" || !gjson.Get(body, "error.message").Exists() {
		return ""
	}
	return gjson.Get(body, "error.type").Str
}

// TestMessagesBadInput: what the gateway refuses on the Messages routes is answered in
// Anthropic's error shape with Anthropic's status, before any upstream call, and costs nothing:
// no request or token counted against the key's limits.
func TestMessagesBadInput(t *testing.T) {
	e, up, _ := messagesEnv(t)
	ok := `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, path, key, body string
		hdr                   []string
		status                int
		typ                   string
	}{
		{"no key", "/messages", "", ok, nil, 401, "authentication_error"},
		{"wrong key", "/messages", "sk-wrong", ok, nil, 401, "authentication_error"},
		{"not JSON", "/messages", "", `{"model":`, nil, 400, "invalid_request_error"},
		{"not an object", "/messages", "", `["model"]`, nil, 400, "invalid_request_error"},
		{"no model", "/messages", "", `{"max_tokens":16,"messages":[]}`, nil, 400, "invalid_request_error"},
		{"no max_tokens", "/messages", "", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, nil, 400, "invalid_request_error"},
		{"messages not an array", "/messages", "", `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":"hi"}`, nil, 400, "invalid_request_error"},
		{"bad role", "/messages", "", `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"system","content":"hi"}]}`, nil, 400, "invalid_request_error"},
		{"tool_result without tool_use", "/messages", "", `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"},` +
			`{"role":"assistant","content":"hello"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}`, nil, 400, "invalid_request_error"},
		{"count_tokens tool_result without tool_use", "/messages/count_tokens", "", `{"model":"claude-sonnet-4-5","messages":[` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}]}`, nil, 400, "invalid_request_error"},
		{"unknown beta", "/messages", "", ok, []string{"Anthropic-Beta", "claude-code-20250219,made-up-beta-2030-01-01"}, 400, "invalid_request_error"},
		{"unknown model", "/messages", "", `{"model":"claude-nope","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, nil, 404, "not_found_error"},
		{"body too large", "/messages", "", `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"` + strings.Repeat("a", 1<<20) + `"}]}`, nil, 413, "request_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := e.newKey(keySpec{Name: tc.name, UserID: "bad-" + strings.ReplaceAll(tc.name, " ", "-"), Tier: "metered"})
			key := tc.key
			if key == "" && !strings.HasSuffix(tc.name, "key") {
				key = k.Key
			}
			before := up.Stats().Requests
			resp := e.postMessages(context.Background(), tc.path, key, tc.body, tc.hdr...)
			got := readAll(t, resp)
			if resp.StatusCode != tc.status || anthropicErr(got) != tc.typ {
				t.Errorf("HTTP %d %s, want %d with an Anthropic %s", resp.StatusCode, got, tc.status, tc.typ)
			}
			if n := up.Stats().Requests - before; n != 0 {
				t.Errorf("%d upstream calls", n)
			}
			if key != k.Key {
				return
			}
			if r := e.recordOfKey(k.ID); r.Status != tc.status || r.Endpoint != strings.TrimPrefix(tc.path, "/") || r.UsageSource != "" ||
				r.PromptTokens+r.CompletionTokens != 0 || r.CostPicoUSD != nil {
				t.Errorf("record %+v", r)
			}
			if u := e.userQuota(k.Key, "user/"+"bad-"+strings.ReplaceAll(tc.name, " ", "-")); u.Requests != 0 || u.TokensMinute != 0 {
				t.Errorf("quota spent on a refused request: %+v", u)
			}
		})
	}
}

// TestMessagesQuotaHeaders: on /v1/messages, admission adds Anthropic's rate-limit headers to
// OpenAI's, on answers and on the 429 that refuses (with retry-after, in Anthropic's shape).
func TestMessagesQuotaHeaders(t *testing.T) {
	e, _, _ := messagesEnv(t)
	k := e.newKey(keySpec{Name: "tiny", UserID: "tiny", Tier: "tiny"})
	body := `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	for i := range 3 {
		resp := e.postMessages(context.Background(), "/messages", k.Key, body)
		got := readAll(t, resp)
		h := resp.Header
		wantStatus, remaining := 200, []string{"1", "0"}[min(i, 1)]
		if i == 2 {
			wantStatus = 429
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("request %d: HTTP %d %s", i, resp.StatusCode, got)
		}
		reset, err := time.Parse(time.RFC3339, h.Get("Anthropic-Ratelimit-Requests-Reset"))
		if h.Get("Anthropic-Ratelimit-Requests-Limit") != "2" || h.Get("Anthropic-Ratelimit-Requests-Remaining") != remaining ||
			err != nil || reset.Before(time.Now().Add(-time.Second)) || reset.After(time.Now().Add(61*time.Second)) || h.Get("X-Ratelimit-Limit-Requests") != "2" {
			t.Errorf("request %d: headers %v", i, h)
		}
		if i == 2 && (anthropicErr(got) != "rate_limit_error" || h.Get("Retry-After") == "") {
			t.Errorf("refusal %s, retry-after %q", got, h.Get("Retry-After"))
		}
	}
}

// TestMessagesUpstreamErrors: an upstream's error reaches the client in Anthropic's shape with
// its own type and message; Anthropic's 529 overloaded stays a 529 overloaded_error (with its
// retry-after), and a stream the upstream ends with an error event reaches the client with that
// event, recorded as a failed stream with the tokens delivered.
func TestMessagesUpstreamErrors(t *testing.T) {
	dead, err := anthropic.New(anthropic.Options{BaseURL: "http://127.0.0.1:1", Outbound: loopback})
	e, _, _ := messagesEnv(t, withRouting([]namedProvider{{"deadclaude", dead, err}},
		providers.ModelConfig{Name: "claude-dead", Deployments: []providers.DeploymentConfig{{ID: "dead-dep", Provider: "deadclaude", Model: "claude-up",
			Breaker: providers.BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Hour}}}},
		providers.ModelConfig{Name: "claude-idle", Deployments: []providers.DeploymentConfig{{Provider: "claude", Model: "claude-up",
			Timeouts: providers.Timeouts{Idle: 300 * time.Millisecond}}}}))
	for _, tc := range []struct {
		name, mock string
		status     int
		typ        string
	}{
		{"overloaded", `{"status":529}`, 529, "overloaded_error"},
		{"bad request", `{"status":400}`, 400, "invalid_request_error"},
		{"rate limited", `{"status":429}`, 429, "rate_limit_error"},
		{"server error", `{"status":500}`, 502, "api_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.postMessages(context.Background(), "/messages", e.key, `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}],"mock":`+tc.mock+`}`)
			got := readAll(t, resp)
			if resp.StatusCode != tc.status || anthropicErr(got) != tc.typ || !strings.Contains(gjson.Get(got, "error.message").Str, "mock: simulated") {
				t.Errorf("HTTP %d %s, want %d %s with the upstream's message", resp.StatusCode, got, tc.status, tc.typ)
			}
			if (tc.status == 529 || tc.status == 429) && resp.Header.Get("Retry-After") != "1" {
				t.Errorf("retry-after %q", resp.Header.Get("Retry-After"))
			}
		})
	}
	t.Run("every breaker open", func(t *testing.T) {
		// The first request fails to connect (502 api_error) and opens the breaker; the next finds
		// no deployment to try: the OpenAI routes' 503, here Anthropic's 529 overloaded_error.
		body := `{"model":"claude-dead","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
		for i, want := range []struct {
			status int
			typ    string
		}{{502, "api_error"}, {529, "overloaded_error"}} {
			resp := e.postMessages(context.Background(), "/messages", e.key, body)
			got := readAll(t, resp)
			if resp.StatusCode != want.status || anthropicErr(got) != want.typ {
				t.Errorf("request %d: HTTP %d %s, want %d %s", i, resp.StatusCode, got, want.status, want.typ)
			}
		}
	})
	t.Run("gateway's error event", func(t *testing.T) {
		// The upstream stalls mid-stream past the idle timeout: the gateway ends the stream with
		// an error event in Anthropic's form.
		resp := e.postMessages(context.Background(), "/messages", e.key, `{"model":"claude-idle","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}],"mock":{"interval_ms":3000}}`)
		got := readAll(t, resp)
		evs := strings.Split(strings.TrimSpace(got), "\n\n")
		last := evs[len(evs)-1]
		if !strings.HasPrefix(last, "event: error\ndata: ") || anthropicErr(strings.TrimPrefix(last, "event: error\ndata: ")) != "timeout_error" || eventNames(t, got)[0] != "message_start" {
			t.Errorf("stream %s", got)
		}
	})
	t.Run("error event mid-stream", func(t *testing.T) {
		resp := e.postMessages(context.Background(), "/messages", e.key, `{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}],"mock":{"fail_after":2}}`)
		var events []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events = append(events, name)
			}
		}
		resp.Body.Close()
		if len(events) == 0 || events[len(events)-1] != "error" || strings.Count(strings.Join(events, ","), "error") != 1 {
			t.Errorf("events %v, want the upstream's one error event last", events)
		}
		r := e.usageFor(resp.Header.Get("X-Request-Id"))
		if r.Status != 502 || r.UsageSource != "partial" || r.Endpoint != "messages" {
			t.Errorf("record %+v", r)
		}
	})
}

// eventNames checks a Messages event stream's grammar as the SDKs read it (each event line names
// its data's type) and returns the event names in order.
func eventNames(t *testing.T, stream string) []string {
	t.Helper()
	var names []string
	for _, ev := range strings.Split(strings.TrimSpace(stream), "\n\n") {
		name, data, ok := strings.Cut(ev, "\ndata: ")
		name, ok2 := strings.CutPrefix(name, "event: ")
		if !ok || !ok2 || gjson.Get(data, "type").Str != name {
			t.Fatalf("event %q of stream\n%s", ev, stream)
		}
		names = append(names, name)
	}
	return names
}

// TestMessagesTranslated: a Messages request for a model served by an OpenAI-type deployment is
// translated to chat completions and its answer back, whole and streamed, with a tool call and
// its follow-up tool_result; the record is one "messages" record with the upstream's usage.
// count_tokens for such a model is counted by the gateway, without an upstream call. A model
// with a passthrough deployment that cannot be reached fails over to a translated one.
func TestMessagesTranslated(t *testing.T) {
	dead, err := anthropic.New(anthropic.Options{BaseURL: "http://127.0.0.1:1", APIKey: upstreamKey, Outbound: loopback})
	e, _, _ := messagesEnv(t, withRouting([]namedProvider{{"deadclaude", dead, err}},
		providers.ModelConfig{Name: "mixed", Deployments: []providers.DeploymentConfig{
			{ID: "mixed-up", Provider: "up", Model: "up-model"}, {ID: "mixed-dead", Provider: "deadclaude", Model: "claude-up"}}}))
	ask := `{"model":"gpt-test","max_tokens":64,"system":"Be terse.","messages":[{"role":"user","content":"use get_weather: what is the weather in Paris"}],"tools":[` + weatherTool + `]`
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "whole", true: "stream"}[stream], func(t *testing.T) {
			body := ask
			if stream {
				body += `,"stream":true`
			}
			e.up.Reset()
			resp := e.postMessages(context.Background(), "/messages", e.key, body+"}")
			got := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, got)
			}
			sent := e.up.Requests(1)
			if len(sent) != 1 || sent[0].Path != "/v1/chat/completions" || gjson.Get(sent[0].Body, "model").Str != "up-model" ||
				gjson.Get(sent[0].Body, "messages.0.role").Str != "system" || gjson.Get(sent[0].Body, "tools.0.function.name").Str != "get_weather" {
				t.Fatalf("upstream got %+v", sent)
			}
			var callID, input string
			if stream {
				names := strings.Join(eventNames(t, got), ",")
				if !strings.HasPrefix(names, "message_start,content_block_start,content_block_delta") || !strings.HasSuffix(names, "content_block_stop,message_delta,message_stop") {
					t.Errorf("events %s", names)
				}
				for _, ev := range strings.Split(got, "\n\n") {
					_, data, _ := strings.Cut(ev, "data: ")
					if id := gjson.Get(data, "content_block.id").Str; id != "" {
						callID = id
					}
					input += gjson.Get(data, "delta.partial_json").Str
					if gjson.Get(data, "type").Str == "message_delta" && (gjson.Get(data, "delta.stop_reason").Str != "tool_use" || gjson.Get(data, "usage.output_tokens").Int() <= 0) {
						t.Errorf("message_delta %s", data)
					}
				}
			} else {
				if gjson.Get(got, "type").Str != "message" || gjson.Get(got, "model").Str != "gpt-test" || !strings.HasPrefix(gjson.Get(got, "id").Str, "msg_") ||
					gjson.Get(got, "stop_reason").Str != "tool_use" || gjson.Get(got, "content.0.type").Str != "tool_use" {
					t.Fatalf("answer %s", got)
				}
				callID, input = gjson.Get(got, "content.0.id").Str, gjson.Get(got, "content.0.input").Raw
			}
			if callID == "" || gjson.Get(input, "city").Str == "" {
				t.Fatalf("tool call %q with input %q", callID, input)
			}
			r := e.usageFor(resp.Header.Get("X-Request-Id"))
			if r.Endpoint != "messages" || r.Status != 200 || r.UsageSource != "provider" || r.UpstreamModel != "up-model" || r.PromptTokens <= 0 || r.CompletionTokens <= 0 {
				t.Errorf("record %+v", r)
			}

			// The follow-up with the tool's result gets the final text.
			follow, _ := sjson.SetRaw(ask+"}", "messages", `[{"role":"user","content":"use get_weather: what is the weather in Paris"},{"role":"assistant","content":[{"type":"tool_use","id":"`+callID+
				`","name":"get_weather","input":`+input+`}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"`+callID+`","content":"sunny"}]}]`)
			resp = e.postMessages(context.Background(), "/messages", e.key, follow)
			got = readAll(t, resp)
			if resp.StatusCode != http.StatusOK || gjson.Get(got, "stop_reason").Str != "end_turn" || gjson.Get(got, "content.0.type").Str != "text" || gjson.Get(got, "content.0.text").Str == "" {
				t.Errorf("follow-up: HTTP %d %s", resp.StatusCode, got)
			}
			if m := gjson.Get(e.up.Requests(1)[0].Body, "messages.3"); m.Get("role").Str != "tool" || m.Get("tool_call_id").Str != callID {
				t.Errorf("upstream follow-up %s", e.up.Requests(1)[0].Body)
			}
		})
	}
	t.Run("count_tokens", func(t *testing.T) {
		e.up.Reset()
		body := `{"model":"gpt-test","system":"Be terse.","messages":[{"role":"user","content":"one two three"}],"tools":[` + weatherTool + `]}`
		resp := e.postMessages(context.Background(), "/messages/count_tokens", e.key, body)
		got := readAll(t, resp)
		chat, _, err := messages.CountTokensToChat([]byte(body), messages.Options{})
		if err != nil {
			t.Fatal(err)
		}
		est, _ := tokens.New()
		if want := est.Prompt("chat/completions", "up-model", chat); resp.StatusCode != 200 || got != `{"input_tokens":`+strconv.FormatInt(want, 10)+`}` {
			t.Errorf("HTTP %d %s, want %d input tokens", resp.StatusCode, got, want)
		}
		if n := e.up.Stats().Requests; n != 0 {
			t.Errorf("%d upstream calls for a count", n)
		}
		if r := e.usageFor(resp.Header.Get("X-Request-Id")); r.Endpoint != "messages/count_tokens" || r.Status != 200 || r.UsageSource != "" || r.CostPicoUSD != nil {
			t.Errorf("record %+v", r)
		}
	})
	t.Run("failover from passthrough to translated", func(t *testing.T) {
		resp := e.postMessages(context.Background(), "/messages", e.key, `{"model":"mixed","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
		got := readAll(t, resp)
		if resp.StatusCode != 200 || gjson.Get(got, "type").Str != "message" || gjson.Get(got, "model").Str != "mixed" {
			t.Fatalf("HTTP %d %s", resp.StatusCode, got)
		}
		if r := e.usageFor(resp.Header.Get("X-Request-Id")); r.Deployment != "mixed-up" || r.UsageSource != "provider" {
			t.Errorf("record %+v", r)
		}
		if d := e.deploymentStatus("mixed-dead"); d.Failed == 0 {
			t.Errorf("the passthrough deployment was not tried first: %+v", d)
		}
	})
}

// TestMessagesClaudeCode: a request as Claude Code sends it (PROVIDERS-2.md §2.5: ?beta=true,
// Authorization: Bearer from ANTHROPIC_AUTH_TOKEN, its betas and headers, stream, thinking,
// metadata.user_id, a large max_tokens) is served for a Claude model name whatever deployment
// the config lists for it: passed through to an Anthropic one, translated for an OpenAI one.
func TestMessagesClaudeCode(t *testing.T) {
	e, up, _ := messagesEnv(t, withRouting(nil, providers.ModelConfig{Name: "claude-haiku-4-5",
		Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}}))
	for _, tc := range []struct{ model, extra string }{
		{"claude-sonnet-4-5", ""},
		{"claude-haiku-4-5", `,"context_management":{"edits":[]}`},
	} {
		t.Run(tc.model, func(t *testing.T) {
			body := `{"model":"` + tc.model + `","max_tokens":32000,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},` +
				`"metadata":{"user_id":"user_abc_account_def_session_123"},"system":[{"type":"text","text":"You are Claude Code."}],` +
				`"messages":[{"role":"user","content":[{"type":"text","text":"list the files"}]}]` + tc.extra + `}`
			req, _ := http.NewRequest(http.MethodPost, e.baseURL+"/messages?beta=true", strings.NewReader(body))
			hdr := []string{"Authorization", "Bearer " + e.key, "Anthropic-Version", "2023-06-01", "Content-Type", "application/json",
				"Anthropic-Beta", "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
				"X-App", "cli", "User-Agent", "claude-cli/2.1.0 (external, cli)", "Anthropic-Dangerous-Direct-Browser-Access", "true"}
			for i := 0; i < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := e.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, resp)
			names := eventNames(t, got)
			if resp.StatusCode != 200 || names[0] != "message_start" || names[len(names)-1] != "message_stop" {
				t.Fatalf("HTTP %d %s", resp.StatusCode, got)
			}
			if r := e.usageFor(resp.Header.Get("X-Request-Id")); r.Model != tc.model || r.Endpoint != "messages" || r.UsageSource != "provider" {
				t.Errorf("record %+v", r)
			}
			if tc.model == "claude-sonnet-4-5" {
				if h := lastMessagesRequest(t, up).Headers; h["Anthropic-Beta"] != "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14" {
					t.Errorf("upstream headers %v", h)
				}
			}
		})
	}
}

// TestMessagesThinkingOnReasoningDeployment: a translated request's thinking becomes
// reasoning_effort only for deployments marked reasoning, and is dropped for the others (an
// OpenAI model that does not reason refuses reasoning_effort, and Claude Code sends thinking with
// every request).
func TestMessagesThinkingOnReasoningDeployment(t *testing.T) {
	e, _, _ := messagesEnv(t, withRouting(nil, providers.ModelConfig{Name: "reasoner", Deployments: []providers.DeploymentConfig{
		{ID: "reasoner-up", Provider: "up", Model: "o-model", Reasoning: true}}}))
	for _, c := range []struct{ model, thinking, want string }{
		{"reasoner", `{"type":"enabled","budget_tokens":3000}`, "medium"},
		{"reasoner", `{"type":"enabled","budget_tokens":8000}`, "high"},
		{"reasoner", `{"type":"disabled"}`, ""},
		{"gpt-test", `{"type":"enabled","budget_tokens":3000}`, ""},
	} {
		e.up.Reset()
		resp := e.postMessages(context.Background(), "/messages", e.key,
			`{"model":"`+c.model+`","max_tokens":9000,"thinking":`+c.thinking+`,"messages":[{"role":"user","content":"hi"}]}`)
		if got := readAll(t, resp); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: HTTP %d %s", c.model, c.thinking, resp.StatusCode, got)
		}
		sent := e.up.Requests(1)
		if len(sent) != 1 {
			t.Fatalf("%s: upstream got %d requests", c.model, len(sent))
		}
		if got := gjson.Get(sent[0].Body, "reasoning_effort"); got.Str != c.want || got.Exists() != (c.want != "") {
			t.Errorf("%s %s: upstream reasoning_effort %s, want %q (body %s)", c.model, c.thinking, got.Raw, c.want, sent[0].Body)
		}
	}
}
