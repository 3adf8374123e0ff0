package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// Helpers of the admin API's end-to-end tests (e2e_admin_*_test.go).

// admClient is a raw client of the admin API: it returns every answer whatever its status, so a
// test can assert refusals as precisely as successes.
type admClient struct {
	t     *testing.T
	base  string
	token string // "" sends no Authorization header
	hc    *http.Client
}

// admResp is one answer of the admin API.
type admResp struct {
	Status int
	Body   string
	Header http.Header
}

// JSON reads a gjson path of the body.
func (r admResp) JSON(path string) gjson.Result { return gjson.Get(r.Body, path) }

// ids lists the "id" of every item of a list answer.
func (r admResp) ids() []string {
	var out []string
	for _, it := range r.JSON("data").Array() {
		out = append(out, it.Get("id").String())
	}
	return out
}

func newAdmClient(t *testing.T, e *env) *admClient {
	return &admClient{t: t, base: e.app.adminURL, token: testAdminToken, hc: e.http}
}

// as is the same client with another token ("" for none).
func (c *admClient) as(token string) *admClient {
	cp := *c
	cp.token = token
	return &cp
}

// do sends a request. body is nil, a string or []byte sent as is, or a value sent as JSON.
func (c *admClient) do(method, path string, body any) admResp {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return admResp{Status: resp.StatusCode, Body: string(raw), Header: resp.Header}
}

// must sends a request and stops the test unless the answer has the wanted status.
func (c *admClient) must(want int, method, path string, body any) admResp {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// refused sends a request that must be refused with status, as an OpenAI error naming param
// ("" when the error may name no field; "-" to leave param unchecked).
func (c *admClient) refused(status int, param, method, path string, body any) admResp {
	c.t.Helper()
	r := c.do(method, path, body)
	checkAdmError(c.t, r, status, param, method+" "+path)
	return r
}

// checkAdmError checks that r is an OpenAI error with status and, unless param is "-", that
// error.param names param.
func checkAdmError(t *testing.T, r admResp, status int, param, what string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: HTTP %d, want %d: %.300s", what, r.Status, status, r.Body)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: Content-Type %q, want JSON", what, r.Header.Get("Content-Type"))
	}
	if r.JSON("error.message").String() == "" || r.JSON("error.type").String() == "" {
		t.Errorf("%s: HTTP %d body is not an OpenAI error: %.300s", what, r.Status, r.Body)
		return
	}
	if param != "-" {
		if got := r.JSON("error.param").String(); got != param {
			t.Errorf("%s: error.param %q, want %q: %s", what, got, param, r.Body)
		}
	}
}

// adminStores runs body against an embedded SQLite gateway and against a PostgreSQL + Redis one.
func adminStores(t *testing.T, body func(t *testing.T, e *env), opts ...envOption) {
	t.Run("sqlite", func(t *testing.T) { body(t, newEnv(t, opts...)) })
	t.Run("postgres", func(t *testing.T) {
		o := append([]envOption{withPostgres(t), withRedisURL("redis://" + rdb.Addr(t))}, opts...)
		body(t, newEnv(t, o...))
	})
}

// admChat sends one small chat request with a key to the env's gateway and returns the status.
func admChat(e *env, key, model string) int { return e.chatStatus(e.app, key, model) }

// admWaitChat polls until a key's chat request answers want, and returns how long that took. It
// polls every 100 ms rather than waitFor's 10 ms: the requests that still pass count against the
// key's and the tenant's rpm.
func admWaitChat(t *testing.T, e *env, key, model string, want int, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for admChat(e, key, model) != want {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func futureRFC3339(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339Nano) }

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
