package mock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/tidwall/gjson"
)

const (
	testAWSKeyID  = "AKIAMOCKTESTKEY00001"
	testAWSSecret = "mock/secret/Key+0123456789abcdefghijklmn"
	testModelID   = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
)

// bedrockServer is the mock with SigV4 verification on.
func bedrockServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(Options{AWSAccessKeyID: testAWSKeyID, AWSSecretAccessKey: testAWSSecret, RequireKey: "bedrock-api-key-123"}))
	t.Cleanup(srv.Close)
	return srv
}

// signedPost sends body to the model's operation, signed with the SDK's signer for secret at
// time at (zero: now); the model id is escaped as the SDKs escape it.
func signedPost(t *testing.T, srv *httptest.Server, op, body, secret string, at time.Time) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/model/"+url.QueryEscape(testModelID)+"/"+op, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		if at.IsZero() {
			at = time.Now()
		}
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testAWSKeyID, SecretAccessKey: secret},
			req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

const converseBody = `{"system":[{"text":"Be terse."}],"messages":[{"role":"user","content":[{"text":"Say hello to mock"}]}],"inferenceConfig":{"maxTokens":5}}`

// TestMockBedrockSigV4: the mock recomputes the signature with the SDK's signer and refuses a
// wrong secret, a stale signing time and a missing signature with 403, as AWS does; a Bedrock
// API key passes only when it is the configured one.
func TestMockBedrockSigV4(t *testing.T) {
	srv := bedrockServer(t)
	if resp, b := signedPost(t, srv, "converse", converseBody, testAWSSecret, time.Time{}); resp.StatusCode != 200 {
		t.Fatalf("a good signature: HTTP %d %s", resp.StatusCode, b)
	}
	for _, tc := range []struct {
		name, secret, exception string
		at                      time.Time
	}{
		{"wrong secret", "not-the-secret", "InvalidSignatureException", time.Time{}},
		{"stale signature", testAWSSecret, "InvalidSignatureException", time.Now().Add(-20 * time.Minute)},
		{"no signature", "", "MissingAuthenticationTokenException", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := signedPost(t, srv, "converse", converseBody, tc.secret, tc.at)
			if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), tc.exception+":") ||
				gjson.GetBytes(b, "message").Str == "" {
				t.Errorf("HTTP %d %s %s", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b)
			}
		})
	}
	// A body changed after signing no longer matches.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/m/converse", strings.NewReader(converseBody))
	sum := sha256.Sum256([]byte("{}"))
	_ = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testAWSKeyID, SecretAccessKey: testAWSSecret},
		req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now())
	if resp, _ := do(t, srv, req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a body changed after signing: HTTP %d", resp.StatusCode)
	}
	for key, want := range map[string]int{"bedrock-api-key-123": 200, "another-key": 403} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/m/converse", strings.NewReader(converseBody))
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, b := do(t, srv, req); resp.StatusCode != want {
			t.Errorf("bearer %s: HTTP %d %s, want %d", key, resp.StatusCode, b, want)
		}
	}
}

// decodeFrames reads a whole event-stream body with the SDK's decoder, which checks both CRCs.
func decodeFrames(t *testing.T, body []byte) []eventstream.Message {
	t.Helper()
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(body)
	var out []eventstream.Message
	for r.Len() > 0 {
		m, err := dec.Decode(r, nil)
		if err != nil {
			t.Fatalf("message %d: %v", len(out), err)
		}
		out = append(out, m.Clone())
	}
	return out
}

func header(m eventstream.Message, name string) string {
	if v, ok := m.Headers.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

// TestMockBedrockInvokeStream: InvokeModelWithResponseStream answers Anthropic events, base64 in
// chunk messages with good CRCs, no ping; the body is checked as Bedrock checks it.
func TestMockBedrockInvokeStream(t *testing.T) {
	srv := bedrockServer(t)
	body := `{"anthropic_version":"bedrock-2023-05-31","max_tokens":3,"messages":[{"role":"user","content":"Say hello"}]}`
	resp, b := signedPost(t, srv, "invoke-with-response-stream", body, testAWSSecret, time.Time{})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != eventStreamType {
		t.Fatalf("HTTP %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var types []string
	var text string
	for _, m := range decodeFrames(t, b) {
		if header(m, ":event-type") != "chunk" || header(m, ":message-type") != "event" {
			t.Fatalf("headers %v", m.Headers)
		}
		ev, err := base64.StdEncoding.DecodeString(gjson.GetBytes(m.Payload, "bytes").Str)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, gjson.GetBytes(ev, "type").Str)
		text += gjson.GetBytes(ev, "delta.text").Str
	}
	if got := strings.Join(types, ","); got != "message_start,content_block_start,content_block_delta,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop" || text != "the mock upstream" {
		t.Errorf("events %s, text %q", got, text)
	}
	for _, bad := range []string{
		`{"anthropic_version":"bedrock-2023-05-31","model":"x","max_tokens":3,"messages":[{"role":"user","content":"a"}]}`,
		`{"anthropic_version":"2023-06-01","max_tokens":3,"messages":[{"role":"user","content":"a"}]}`,
		`{"anthropic_version":"bedrock-2023-05-31","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"a"}]}`,
	} {
		if resp, b := signedPost(t, srv, "invoke", bad, testAWSSecret, time.Time{}); resp.StatusCode != 400 ||
			!strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), "ValidationException") {
			t.Errorf("%s: HTTP %d %s", bad, resp.StatusCode, b)
		}
	}
}

// TestMockBedrockFaults: a status answers the exception of that status; fail_after ends a stream
// with an exception message, or with a message whose CRC is wrong.
func TestMockBedrockFaults(t *testing.T) {
	srv := bedrockServer(t)
	for status, exc := range map[int]string{429: "ThrottlingException", 400: "ValidationException", 503: "ServiceUnavailableException", 403: "AccessDeniedException"} {
		body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"additionalModelRequestFields":{"mock":{"status":` + strconv.Itoa(status) + `}}}`
		if resp, b := signedPost(t, srv, "converse", body, testAWSSecret, time.Time{}); resp.StatusCode != status ||
			!strings.HasPrefix(resp.Header.Get("X-Amzn-Errortype"), exc+":") {
			t.Errorf("status %d: HTTP %d %s %s", status, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b)
		}
	}
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"additionalModelRequestFields":{"mock":{"fail_after":2,"exception":"throttlingException"}}}`
	_, b := signedPost(t, srv, "converse-stream", body, testAWSSecret, time.Time{})
	frames := decodeFrames(t, b)
	last := frames[len(frames)-1]
	if len(frames) != 4 || header(last, ":message-type") != "exception" || header(last, ":exception-type") != "throttlingException" {
		t.Errorf("%d frames, last %v %s", len(frames), last.Headers, last.Payload)
	}
	body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"additionalModelRequestFields":{"mock":{"fail_after":1,"corrupt_frame":true}}}`
	_, b = signedPost(t, srv, "converse-stream", body, testAWSSecret, time.Time{})
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(b)
	var err error
	n := 0
	for err == nil {
		_, err = dec.Decode(r, nil)
		n++
	}
	if _, ok := err.(eventstream.ChecksumError); !ok || n != 3 {
		t.Errorf("after %d messages: %v, want a checksum error on the third", n, err)
	}
}
