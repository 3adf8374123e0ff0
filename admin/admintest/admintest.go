// Package admintest is a raw client of the admin API for tests, in the package's own tests and in
// the binary's end-to-end ones: it returns every answer whatever its status, so a test can assert
// refusals as precisely as successes.
package admintest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Client sends requests to one admin listener with one token.
type Client struct {
	t     testing.TB
	base  string
	token string // "" sends no Authorization header
	hc    *http.Client
	// cookies and header go with every request (a console session and its CSRF token).
	cookies []*http.Cookie
	header  http.Header
}

// Resp is one answer of the admin API.
type Resp struct {
	Status int
	Body   string
	Header http.Header
}

// JSON reads a gjson path of the body.
func (r Resp) JSON(path string) gjson.Result { return gjson.Get(r.Body, path) }

// IDs lists the "id" of every item of a list answer.
func (r Resp) IDs() []string {
	var out []string
	for _, it := range r.JSON("data").Array() {
		out = append(out, it.Get("id").String())
	}
	return out
}

// NewClient returns a client of the listener at base (http://host:port) sending token ("" for
// none) through hc.
func NewClient(t testing.TB, base, token string, hc *http.Client) *Client {
	return &Client{t: t, base: base, token: token, hc: hc}
}

// As is the same client with another token ("" for none).
func (c *Client) As(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// WithCookie is the same client sending a cookie too (the console's session).
func (c *Client) WithCookie(ck *http.Cookie) *Client {
	cp := *c
	cp.cookies = append(slices.Clip(c.cookies), ck)
	return &cp
}

// WithHeader is the same client sending a header too (X-CSRF-Token).
func (c *Client) WithHeader(name, value string) *Client {
	cp := *c
	cp.header = c.header.Clone()
	if cp.header == nil {
		cp.header = http.Header{}
	}
	cp.header.Set(name, value)
	return &cp
}

// Do sends a request. body is nil, a string or []byte sent as is, or a value sent as JSON.
func (c *Client) Do(method, path string, body any) Resp {
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
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	for k, v := range c.header {
		req.Header[k] = v
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
	return Resp{Status: resp.StatusCode, Body: string(raw), Header: resp.Header}
}

// Must sends a request and stops the test unless the answer has the wanted status.
func (c *Client) Must(want int, method, path string, body any) Resp {
	c.t.Helper()
	r := c.Do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// Refused sends a request that must be refused with status, as an OpenAI error naming param
// ("" when the error may name no field; "-" to leave param unchecked).
func (c *Client) Refused(status int, param, method, path string, body any) Resp {
	c.t.Helper()
	r := c.Do(method, path, body)
	CheckError(c.t, r, status, param, method+" "+path)
	return r
}

// CheckError checks that r is an OpenAI error with status and, unless param is "-", that
// error.param names param.
func CheckError(t testing.TB, r Resp, status int, param, what string) {
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

// SameSet reports whether got and want hold the same ids, in any order.
func SameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
