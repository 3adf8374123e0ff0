// Package adminclient is the client of the admin API over HTTP: Client, which the demo, the
// benchmark and the tests use to create keys and call the API, and the admin command line
// (`llmgate keys|users|tenants|tokens|pricing|quota|credits|deployments|audit|billing|audit-log`),
// one admin API request per command. It knows the
// API only by its paths and JSON fields (api/openapi.yaml), never by the server's code.
package adminclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls the admin API, as the CLI, the demo and the benchmark do. It is safe for
// concurrent use.
type Client struct {
	base  string
	token string
	http  http.Client
}

// New returns the client of the admin API at baseURL (http://HOST:PORT) with an admin token.
func New(baseURL, token string) *Client {
	return &Client{base: baseURL, token: token}
}

// NewToken makes a random admin token (43 characters) for a gateway whose config the caller
// writes itself: the demo and the benchmark's gateways.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// adminTimeout bounds one admin API call.
const adminTimeout = 30 * time.Second

// CreateKeyBody is the part of POST /admin/keys the demo, the benchmark and the tests use.
type CreateKeyBody struct {
	Name      string     `json:"name,omitempty"`
	Models    []string   `json:"models,omitempty"`
	UserID    string     `json:"user_id,omitempty"`
	Tier      string     `json:"tier,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Key is a key as the admin API answers it; Key.Key holds the plaintext only in the answer that
// created it.
type Key struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	UserID    string     `json:"user_id"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	CreatedAt time.Time  `json:"created_at"`
	Key       string     `json:"key,omitempty"`
}

// Do sends a request and decodes a 2xx JSON answer into out (nil: ignored); other answers become
// errors carrying the API's message.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	raw, err := c.Call(ctx, method, path, in)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// Call sends a request (in, when not nil, as its JSON body) and returns the body of a 2xx answer
// as it came.
func (c *Client) Call(ctx context.Context, method, path string, in any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	// The timeout is the context's, not the client's: one client may serve concurrent calls.
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, apiError(resp.StatusCode, raw)
	}
	return raw, nil
}

// apiError is the error of a non-2xx answer, carrying the API's message.
func apiError(status int, raw []byte) error {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("admin API: %s (HTTP %d)", e.Error.Message, status)
	}
	return fmt.Errorf("admin API: HTTP %d", status)
}

// Download sends a GET and copies a 2xx answer's body to w as it arrives, however long it is:
// only the wait for the answer's headers is bounded (as a whole call is by Call).
func (c *Client) Download(ctx context.Context, path string, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	headers := time.AfterFunc(adminTimeout, cancel)
	resp, err := c.http.Do(req)
	headers.Stop()
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return apiError(resp.StatusCode, raw)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("admin API: copying the answer: %w", err)
	}
	return nil
}

// CreateKey creates a key; the answer carries its plaintext, which the API shows only once.
func (c *Client) CreateKey(ctx context.Context, b CreateKeyBody) (Key, error) {
	var k Key
	return k, c.Do(ctx, http.MethodPost, "/admin/keys", b, &k)
}
