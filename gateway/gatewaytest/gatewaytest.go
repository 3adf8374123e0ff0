// Package gatewaytest is a client of the gateway's public API for tests: the requests, error
// decoding and status reads that the gateway's own behaviour tests and the binary's
// process-level tests both make, kept in one place. It is imported only by tests.
package gatewaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/providers/mock"
)

// IgnoreAsideWorkers is the goleak option every test package that runs a gateway passes to its
// leak check: the gateway keeps its aside workers between requests by design, each waiting up to
// asideIdle for a next one (gateway/aside.go). Only a waiting worker has asideWorker on top of
// its stack, so one still running a task is reported.
var IgnoreAsideWorkers = goleak.IgnoreTopFunction("github.com/llmgate/llmgate/gateway.asideWorker")

// Client calls one gateway's public API, failing T on transport errors.
type Client struct {
	T       testing.TB
	BaseURL string // the public API root, ending in /v1
	HTTP    *http.Client
	Key     string // the key GetJSON sends
}

// OpenAI is a go-openai client for the gateway with the given key.
func (c Client) OpenAI(key string) *openai.Client {
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = c.BaseURL
	cfg.HTTPClient = c.HTTP
	return openai.NewClientWithConfig(cfg)
}

// Post sends a raw JSON request to path (below BaseURL) with key (none when empty) and the
// header name/value pairs in hdr.
func (c Client) Post(ctx context.Context, path, key string, body []byte, hdr ...string) *http.Response {
	c.T.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// GetJSON GETs path (below BaseURL) with the client's key and decodes a 200 answer into out.
func (c Client) GetJSON(path string, out any) {
	c.T.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.BaseURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.Key)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		c.T.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		c.T.Fatal(err)
	}
}

// Deployment is one deployment as GET /v1/providers shows it.
type Deployment struct {
	ID        string   `json:"id"`
	Provider  string   `json:"provider"`
	Breaker   string   `json:"breaker"`
	Available bool     `json:"available"`
	Failed    int64    `json:"failed"`
	Models    []string `json:"models"`
}

// Deployment reads deployment id from GET /v1/providers, failing T when it is not there.
func (c Client) Deployment(id string) Deployment {
	c.T.Helper()
	var out struct {
		Data []struct {
			Name        string       `json:"name"`
			Deployments []Deployment `json:"deployments"`
		} `json:"data"`
	}
	c.GetJSON("/providers", &out)
	for _, p := range out.Data {
		for _, d := range p.Deployments {
			if d.ID == id {
				return d
			}
		}
	}
	c.T.Fatalf("deployment %s not in /v1/providers", id)
	return Deployment{}
}

// APIError decodes an OpenAI error body (and checks its JSON Content-Type), failing t when the
// body is not one.
func APIError(t testing.TB, resp *http.Response) (typ, code, msg string) {
	t.Helper()
	e := decodeError(t, resp)
	if e.Message == "" {
		t.Fatalf("HTTP %d: error without a message", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q", ct)
	}
	return e.Type, e.Code, e.Message
}

// ErrorBody is an OpenAI error body with its param.
type ErrorBody struct {
	Type, Code, Param, Message string
}

// ReadError decodes an OpenAI error body with its param, failing t when the body is not one.
func ReadError(t testing.TB, resp *http.Response) ErrorBody {
	t.Helper()
	return decodeError(t, resp)
}

func decodeError(t testing.TB, resp *http.Response) ErrorBody {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var b struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.Error == nil || b.Error.Type == "" {
		t.Fatalf("HTTP %d: body is not an OpenAI error: %.200s", resp.StatusCode, raw)
	}
	out := ErrorBody{Type: b.Error.Type, Message: b.Error.Message}
	if b.Error.Code != nil {
		out.Code = *b.Error.Code
	}
	if b.Error.Param != nil {
		out.Param = *b.Error.Param
	}
	return out
}

// StreamRequest is a streaming chat request for the model "slow" (the test gateways' slow
// stream), sent to publicURL (the listener's root, without /v1) with key.
func StreamRequest(ctx context.Context, publicURL, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, publicURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return req, nil
}

// WaitFor polls cond until it holds, failing t once timeout has passed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Switchable is a simulated OpenAI-compatible upstream on loopback that can be taken down: while
// Down it answers every request with an OpenAI-shaped 500, and it counts in Seen the API requests
// it received either way. FailNext injects a given number of failures.
type Switchable struct {
	*mock.Handler
	Down   atomic.Bool
	Seen   atomic.Int64
	Server *httptest.Server

	mu    sync.Mutex
	fault fault
}

// fault is the failure the next API requests get, while n > 0.
type fault struct {
	n      int
	status int
	body   string
	hdr    []string
}

// FailNext makes the next n API requests fail with status and body (an OpenAI-shaped error when
// body is empty) and the header name/value pairs in hdr (such as Retry-After); the requests after
// them are answered again.
func (s *Switchable) FailNext(n, status int, body string, hdr ...string) {
	if body == "" {
		body = `{"error":{"message":"simulated failure","type":"server_error","param":null,"code":null}}`
	}
	s.mu.Lock()
	s.fault = fault{n: n, status: status, body: body, hdr: hdr}
	s.mu.Unlock()
}

// takeFault returns the failure this request gets, if any.
func (s *Switchable) takeFault() (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault.n <= 0 {
		return fault{}, false
	}
	s.fault.n--
	return s.fault, true
}

// NewSwitchable starts a Switchable upstream with opts, up; it stops when t ends.
func NewSwitchable(t testing.TB, opts mock.Options) *Switchable {
	s := &Switchable{Handler: mock.NewHandler(opts)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			s.Seen.Add(1)
			if f, ok := s.takeFault(); ok {
				for i := 0; i+1 < len(f.hdr); i += 2 {
					w.Header().Set(f.hdr[i], f.hdr[i+1])
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(f.status)
				io.WriteString(w, f.body)
				return
			}
		}
		if s.Down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"message":"simulated outage","type":"server_error","param":null,"code":null}}`)
			return
		}
		s.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Server.Close)
	return s
}
