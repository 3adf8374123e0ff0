package vertex

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/llmgate/llmgate/providers/outbound"
)

// Scope is the OAuth scope of every access token: Vertex AI wants cloud-platform.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// tokenFetchTimeout bounds one call to the token endpoint: requests wait for it while no valid
// token is cached.
const tokenFetchTimeout = 30 * time.Second

// authorizer holds a provider's credentials: an API key, or an OAuth token source from
// golang.org/x/oauth2/google (a service account key, or application default credentials). The
// token source caches its token and fetches the next one shortly before it expires (oauth2's
// ReuseTokenSource, ten seconds ahead), so requests are not sent with a token about to lapse and
// do not wait for the token endpoint but once an hour; the authorizer keeps the token it last got
// too, so that a request finds it without starting a fetch.
type authorizer struct {
	key     string
	tokens  oauth2.TokenSource // nil with a key
	cached  atomic.Pointer[oauth2.Token]
	project string       // the credentials' project, if they name one
	client  *http.Client // the token endpoint's, nil with a key

	fixed []string // the key, or the service account's private key
	// current is fixed plus the access token last handed out, for Credentials; swapped when the
	// token changes, never modified.
	current atomic.Pointer[[]string]
	mu      sync.Mutex // serialises swaps of current
	last    string     // the token in current
}

// keyAuthorizer is an authorizer with an API key only (its header is set by the gemini adapter).
func keyAuthorizer(key string) *authorizer {
	a := &authorizer{key: key, fixed: []string{key}}
	a.current.Store(&a.fixed)
	return a
}

// newAuthorizer loads the credentials the settings name: a service account key from the file
// or the inline JSON, else application default credentials. Tokens are fetched through client's
// address policy.
func newAuthorizer(s Settings, co outbound.Options) (*authorizer, error) {
	hc := outbound.NewClient(co)
	hc.Timeout = tokenFetchTimeout
	// The context is kept by the token source for every fetch: it carries the client, and
	// outlives any request.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	a := &authorizer{client: hc}
	raw := []byte(s.CredentialsJSON)
	if s.CredentialsFile != "" {
		var err error
		if raw, err = os.ReadFile(s.CredentialsFile); err != nil {
			return nil, fmt.Errorf("vertex.credentials_file: %w", err)
		}
	}
	field := "vertex.credentials_json"
	if s.CredentialsFile != "" {
		field = "vertex.credentials_file"
	}
	switch {
	case len(raw) > 0:
		cfg, err := google.JWTConfigFromJSON(raw, Scope)
		if err != nil {
			return nil, fmt.Errorf("%s: not a usable service account key: %v", field, err)
		}
		if len(cfg.PrivateKey) == 0 || cfg.Email == "" {
			return nil, fmt.Errorf("%s: the key has no private_key or client_email", field)
		}
		if s.TokenURL != "" {
			cfg.TokenURL = s.TokenURL
		}
		a.tokens = cfg.TokenSource(ctx)
		a.project = projectOf(raw)
		a.fixed = []string{string(cfg.PrivateKey)}
	default:
		creds, err := google.FindDefaultCredentialsWithParams(ctx, google.CredentialsParams{Scopes: []string{Scope}, TokenURL: s.TokenURL})
		if err != nil {
			return nil, fmt.Errorf("vertex: no credentials_file or credentials_json, and no application default credentials: %w", err)
		}
		a.tokens, a.project = creds.TokenSource, creds.ProjectID
		if k := privateKeyOf(creds.JSON); k != "" {
			a.fixed = []string{k}
		}
	}
	a.current.Store(&a.fixed)
	return a, nil
}

// authorize sets the bearer token of a request: the cached one while it is valid (not within
// oauth2's ten seconds of its expiry), else a fresh one.
func (a *authorizer) authorize(r *http.Request) error {
	tok := a.cached.Load()
	if !tok.Valid() {
		var err error
		if tok, err = a.fetch(r.Context()); err != nil {
			return err
		}
	}
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return nil
}

// fetch asks the token source for a token (one fetch serves every request waiting: the source
// holds a lock over it) and gives up when ctx ends first, so a slow token endpoint holds a
// request no longer than its deadline or its client. An abandoned fetch runs on, bounded by the
// token client's timeout, and its token serves the next request.
func (a *authorizer) fetch(ctx context.Context) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := a.tokens.Token()
		if err == nil {
			a.remember(tok.AccessToken)
			a.cached.Store(tok)
		}
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, tokenError(r.err)
		}
		return r.tok, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("vertex: waiting for an access token: %w", ctx.Err())
	}
}

// remember adds a new access token to the credentials an error text is cleaned of.
func (a *authorizer) remember(token string) {
	if cur := *a.current.Load(); len(cur) > 0 && cur[len(cur)-1] == token {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != token {
		next := append(slices.Clip(a.fixed), token)
		a.current.Store(&next)
		a.last = token
	}
}

func (a *authorizer) secrets() []string { return *a.current.Load() }

func (a *authorizer) closeIdle() {
	if a.client != nil {
		a.client.CloseIdleConnections()
	}
}

// oauthCode is the shape of an RFC 6749 error code ("invalid_grant"): anything else is not quoted.
var oauthCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// tokenError tells why no token could be had, without the token endpoint's body (which may quote
// the assertion) or anything of the key.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		code := re.ErrorCode
		if code == "" { // the JWT flow leaves the body unread: take its RFC 6749 error code alone
			code = gjson.GetBytes(re.Body, "error").Str
		}
		if !oauthCode.MatchString(code) {
			code = ""
		}
		return fmt.Errorf("vertex: the token endpoint refused the credentials (HTTP %d %s)", status, code)
	}
	return fmt.Errorf("vertex: getting an access token: %w", err)
}
