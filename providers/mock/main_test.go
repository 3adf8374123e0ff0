package mock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/sjson"
	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the in-process provider and
// every paced wait must end with their request.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer serves a fresh handler over loopback for the duration of the test.
func startServer(t *testing.T, opts Options) (*httptest.Server, *Handler) {
	t.Helper()
	h := NewHandler(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

// newClient returns a go-openai client of srv whose requests carry the "mock" override object
// (raw JSON, empty for none), the way a test drives the mock through the gateway.
func newClient(t *testing.T, srv *httptest.Server, override string) *openai.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := openai.DefaultConfig("sk-test")
	cfg.BaseURL = srv.URL + "/v1"
	cfg.HTTPClient = &http.Client{Transport: overrideTransport{base: tr, override: override}}
	return openai.NewClientWithConfig(cfg)
}

type overrideTransport struct {
	base     http.RoundTripper
	override string
}

func (o overrideTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if o.override == "" || r.Body == nil {
		return o.base.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if body, err = sjson.SetRawBytes(body, "mock", []byte(o.override)); err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return o.base.RoundTrip(r)
}

// post sends a raw JSON body and returns the response with its body read.
func post(t *testing.T, srv *httptest.Server, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, srv, req)
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t *testing.T, srv *httptest.Server, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// sseEvents splits an SSE body into the data of its events, checking OpenAI's framing: only
// "data: " lines, each event ended by a blank line.
func sseEvents(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	var events []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("malformed event %q", ev)
		}
		events = append(events, data)
	}
	return events
}

// readEvent reads one SSE event from r, for tests that watch a stream as it arrives.
func readEvent(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if _, err := r.ReadString('\n'); err != nil {
		return "", err
	}
	return strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "data: "), nil
}

// decode unmarshals s into a T, failing the test when the JSON is broken.
func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

// waitFor polls cond, since the handler counts a canceled request only after it notices.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answerText is the text of an answer of n tokens, per the package doc's formula.
func answerText(n int) string {
	return string(appendWords(nil, 0, n))
}

func chatRequest(stream, includeUsage bool, maxTokens int) openai.ChatCompletionRequest {
	req := openai.ChatCompletionRequest{
		Model: "gpt-test",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You are terse."},
			{Role: openai.ChatMessageRoleUser, Content: "Say hello\nto the  mock"},
		},
		MaxCompletionTokens: maxTokens,
		Stream:              stream,
	}
	if includeUsage {
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	return req
}

// chatPromptTokens is the prompt_tokens of chatRequest: (3 + 3 words) + (3 + 5 words).
const chatPromptTokens = 14

// testCtx bounds a test's client calls, so a hung mock fails the test instead of the run.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
