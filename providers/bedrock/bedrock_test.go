package bedrock

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/outbound"
)

const (
	mockKeyID  = "AKIAUNITTESTKEY00001"
	mockSecret = "unit/Test+Secret0123456789abcdefghijklmno"
	mockAPIKey = "bedrock-api-key-unit-test-0123456789"
)

var loopback = outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

// isolateAWS points every source of the SDK's credential chain at nothing of this machine's:
// no shared files, no environment credentials, and no instance metadata service (which the chain
// would otherwise try last, on a link-local address).
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"), "HOME": dir,
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
	} {
		t.Setenv(k, v)
	}
}

// call sends one Converse chat request through p and returns the status and body.
func call(t *testing.T, p *Provider) (int, string) {
	t.Helper()
	resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: "amazon.nova-lite-v1:0",
		Body: []byte(`{"model":"amazon.nova-lite-v1:0","messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCredentialSources: static keys, the environment, a shared profile and a Bedrock API key
// each authenticate against the mock, which verifies SigV4 signatures with the SDK's signer; the
// secrets the chain handed out join those redacted from error text.
func TestCredentialSources(t *testing.T) {
	up := mock.NewHandler(mock.Options{AWSAccessKeyID: mockKeyID, AWSSecretAccessKey: mockSecret, RequireKey: mockAPIKey})
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T) Options
		secret string
		bearer bool
	}{
		{"static keys", func(t *testing.T) Options {
			return Options{Settings: Settings{Region: "us-east-1", AccessKeyID: mockKeyID, SecretAccessKey: mockSecret}}
		}, mockSecret, false},
		{"environment", func(t *testing.T) Options {
			t.Setenv("AWS_ACCESS_KEY_ID", mockKeyID)
			t.Setenv("AWS_SECRET_ACCESS_KEY", mockSecret)
			t.Setenv("AWS_SESSION_TOKEN", "env-session-token-0123456789")
			t.Setenv("AWS_REGION", "eu-west-3")
			return Options{}
		}, "env-session-token-0123456789", false},
		{"shared profile", func(t *testing.T) Options {
			dir := t.TempDir()
			creds := filepath.Join(dir, "credentials")
			conf := filepath.Join(dir, "config")
			write(t, creds, "[other]\naws_access_key_id = AKIAOTHER00000000000\naws_secret_access_key = other\n\n[gw]\naws_access_key_id = "+mockKeyID+"\naws_secret_access_key = "+mockSecret+"\n")
			write(t, conf, "[profile gw]\nregion = ap-southeast-2\n")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
			t.Setenv("AWS_CONFIG_FILE", conf)
			return Options{Settings: Settings{Profile: "gw"}}
		}, mockSecret, false},
		{"api key", func(t *testing.T) Options {
			return Options{APIKey: mockAPIKey, Settings: Settings{Region: "us-east-1"}}
		}, mockAPIKey, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateAWS(t)
			opts := tc.setup(t)
			opts.BaseURL, opts.Outbound = srv.URL, loopback
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.CloseIdleConnections()
			if status, body := call(t, p); status != 200 || gjson.Get(body, "choices.0.message.content").Str == "" {
				t.Fatalf("HTTP %d %s", status, body)
			}
			auth := up.Requests(1)[0].Headers["Authorization"]
			if tc.bearer != strings.HasPrefix(auth, "Bearer ") || (!tc.bearer && !strings.Contains(auth, "/"+p.Region()+"/bedrock/aws4_request")) {
				t.Errorf("Authorization %q (region %s)", auth, p.Region())
			}
			if !slices.Contains(p.Credentials(), tc.secret) {
				t.Errorf("credentials to redact %d, lack the source's secret", len(p.Credentials()))
			}
		})
	}
	t.Run("wrong secret", func(t *testing.T) {
		isolateAWS(t)
		p, err := New(Options{BaseURL: srv.URL, Outbound: loopback, Settings: Settings{Region: "us-east-1", AccessKeyID: mockKeyID, SecretAccessKey: "wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseIdleConnections()
		// The upstream refuses the signature: the gateway's credentials are at fault, which the
		// gateway counts against the deployment (providers.UpstreamFault).
		if status, body := call(t, p); status != http.StatusUnauthorized || gjson.Get(body, "error.code").Str != "InvalidSignatureException" {
			t.Errorf("HTTP %d %s", status, body)
		}
	})
	t.Run("no region", func(t *testing.T) {
		isolateAWS(t)
		if _, err := New(Options{Settings: Settings{AccessKeyID: mockKeyID, SecretAccessKey: mockSecret}}); err == nil || !strings.Contains(err.Error(), "bedrock.region") {
			t.Errorf("no region: %v", err)
		}
	})
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTranslateException: Bedrock's exceptions become the statuses the gateway's failover and
// breaker decide on, in OpenAI's shape.
func TestTranslateException(t *testing.T) {
	for _, tc := range []struct {
		status    int
		exception string
		want      int
		typ       string
	}{
		{429, "ThrottlingException", 429, "rate_limit_error"},
		{400, "ValidationException", 400, "invalid_request_error"},
		{429, "ModelNotReadyException", 503, "server_error"},
		{503, "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/", 503, "server_error"},
		{403, "AccessDeniedException", 403, "permission_error"},
		{403, "InvalidSignatureException", 401, "authentication_error"},
		{403, "UnrecognizedClientException", 401, "authentication_error"},
		{404, "com.amazon.coral.service#ResourceNotFoundException", 404, "not_found_error"},
		{408, "ModelTimeoutException", 504, "timeout_error"},
		{424, "ModelErrorException", 502, "upstream_error"},
		{500, "InternalServerException", 500, "server_error"},
		{400, "ServiceQuotaExceededException", 429, "rate_limit_error"},
		{418, "", 418, "invalid_request_error"},
		{502, "", 502, "server_error"},
	} {
		status, e := translateException(tc.status, tc.exception, "boom")
		if status != tc.want || e.Type != tc.typ || !strings.HasSuffix(e.Message, "boom") {
			t.Errorf("%d %s: %d %+v, want %d %s", tc.status, tc.exception, status, e, tc.want, tc.typ)
		}
	}
}

// TestConverseBody: the Converse request of a chat request with every kind of content.
func TestConverseBody(t *testing.T) {
	chat := `{"model":"m","messages":[
	 {"role":"system","content":"Be brief."},
	 {"role":"user","content":[{"type":"text","text":"What is this?","cache_control":{"type":"ephemeral"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
	 {"role":"assistant","content":"Let me check.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"look","arguments":"{\"q\":\"x\"}"}}]},
	 {"role":"tool","tool_call_id":"call_1","content":"a cat"}],
	 "tools":[{"type":"function","function":{"name":"look","description":"Look it up","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}],
	 "tool_choice":{"type":"function","function":{"name":"look"}},
	 "max_tokens":50,"temperature":0.5,"top_p":0.9,"stop":["END"],"top_k":7,"user":"u1"}`
	body, _, err := converseBody([]byte(chat), "m", Settings{PassFields: []string{"top_k"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"messages":[{"role":"user","content":[{"text":"What is this?"},{"cachePoint":{"type":"default"}},{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}]},` +
		`{"role":"assistant","content":[{"text":"Let me check."},{"toolUse":{"input":{"q":"x"},"name":"look","toolUseId":"call_1"}}]},` +
		`{"role":"user","content":[{"toolResult":{"content":[{"text":"a cat"}],"toolUseId":"call_1"}}]}],` +
		`"system":[{"text":"Be brief."}],"inferenceConfig":{"maxTokens":50,"temperature":0.5,"topP":0.9,"stopSequences":["END"]},` +
		`"toolConfig":{"tools":[{"toolSpec":{"description":"Look it up","inputSchema":{"json":{"type":"object","properties":{"q":{"type":"string"}}}},"name":"look"}}],"toolChoice":{"tool":{"name":"look"}}},` +
		`"additionalModelRequestFields":{"top_k":7}}`
	if string(body) != want {
		t.Errorf("got\n%s\nwant\n%s", body, want)
	}
	for _, bad := range []struct{ body, param string }{
		{`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`, "messages"},
		{`{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}`, "stop"},
		{`{"messages":[{"role":"user","content":"x"}],"n":2}`, "n"},
		{`{"messages":"x"}`, "messages"},
	} {
		_, _, err := converseBody([]byte(bad.body), "m", Settings{})
		refused := refusalResponse(err)
		if refused == nil || refused.StatusCode != 400 {
			t.Errorf("%s: %v", bad.body, err)
			continue
		}
		b, _ := io.ReadAll(refused.Body)
		if gjson.GetBytes(b, "error.param").Str != bad.param {
			t.Errorf("%s: %s", bad.body, b)
		}
	}
}

// TestInvokePath: the model id is escaped in the path as AWS's SDKs escape it, and the request
// reaches the mock's InvokeModel under the id it was given.
func TestInvokePath(t *testing.T) {
	isolateAWS(t)
	up := mock.NewHandler(mock.Options{AWSAccessKeyID: mockKeyID, AWSSecretAccessKey: mockSecret})
	var raw string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw = r.URL.EscapedPath()
		up.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p, err := New(Options{BaseURL: srv.URL, Outbound: loopback, Settings: Settings{Region: "us-east-1", AccessKeyID: mockKeyID, SecretAccessKey: mockSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	const arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/anthropic.x1"
	resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: arn,
		Body: []byte(`{"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || raw != "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fanthropic.x1/invoke" ||
		up.Requests(1)[0].Path != "/model/"+arn+"/invoke" {
		t.Errorf("HTTP %d %s; path %s", resp.StatusCode, b, raw)
	}
}

// TestConverseCompletion: a whole Converse answer with reasoning, text and a tool call, and usage
// whose inputTokens leave out the cache reads and writes.
func TestConverseCompletion(t *testing.T) {
	raw := `{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"Think.","signature":"c2ln"}}},` +
		`{"text":"Calling."},{"toolUse":{"toolUseId":"tooluse_1","name":"look","input":{"q": "x"}}}]}},"stopReason":"tool_use",` +
		`"usage":{"inputTokens":10,"outputTokens":7,"totalTokens":37,"cacheReadInputTokens":15,"cacheWriteInputTokens":5},"metrics":{"latencyMs":9}}`
	out, err := converseCompletion([]byte(raw), "chatcmpl-bdrk-1", "amazon.nova-pro-v1:0", 7)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"chatcmpl-bdrk-1","object":"chat.completion","created":7,"model":"amazon.nova-pro-v1:0","choices":[{"index":0,"message":{"role":"assistant","content":"Calling.","reasoning_content":"Think.",` +
		`"tool_calls":[{"id":"tooluse_1","type":"function","function":{"name":"look","arguments":"{\"q\":\"x\"}"}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],` +
		`"usage":{"prompt_tokens":30,"completion_tokens":7,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":15,"cache_write_tokens":5},"completion_tokens_details":{"reasoning_tokens":0}}}`
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	for _, bad := range []string{`not json`, `{"output":{}}`, `[]`} {
		if _, err := converseCompletion([]byte(bad), "x", "m", 1); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestNewRefuses: settings that cannot work stop the start with the field named.
func TestNewRefuses(t *testing.T) {
	isolateAWS(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Settings: Settings{Region: "us-east-1", API: "chat"}}, "bedrock.api"},
		{Options{Settings: Settings{Region: "us-east-1", PassFields: []string{"messages"}}}, "bedrock.pass_fields"},
		{Options{Settings: Settings{Region: "us-east-1", PassFields: []string{"a.b"}}}, "bedrock.pass_fields"},
		{Options{Settings: Settings{Region: "us-east-1", AccessKeyID: mockKeyID}}, "secret_access_key"},
		{Options{APIKey: mockAPIKey, Settings: Settings{Region: "us-east-1", AccessKeyID: mockKeyID, SecretAccessKey: mockSecret}}, "exclude each other"},
		{Options{Settings: Settings{Region: "us-east-1", DefaultMaxTokens: -1}}, "bedrock.default_max_tokens"},
		{Options{Settings: Settings{Region: "us-east-1", Profile: "no-such-profile"}}, "AWS configuration"},
	} {
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts.Settings, err, tc.want)
		}
	}
}
