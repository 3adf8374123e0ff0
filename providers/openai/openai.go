// Package openai is the adapter for OpenAI and every OpenAI-compatible upstream: the request body
// goes out byte for byte and the upstream's answer comes back as it is.
package openai

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/internal/headers"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/outbound"
)

// Options tune the upstream HTTP client.
type Options struct {
	// BaseURL is the API root including the version path, as an OpenAI SDK's base_url
	// ("https://api.openai.com/v1").
	BaseURL string
	// APIKey is sent as "Authorization: Bearer". Empty sends none (local vLLM, Ollama).
	APIKey string
	// MaxIdleConnsPerHost, DialTimeout and ResponseHeaderTimeout tune the client (see
	// outbound.Options for their defaults).
	MaxIdleConnsPerHost   int
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// Outbound is the address policy of every dial (the zero value allows public addresses only).
	Outbound outbound.Policy
	// Headers are sent with every request (e.g. Qianfan's appid, OpenAI-Organization).
	Headers map[string]string
	// Azure switches to Azure OpenAI: the key goes in an api-key header, and unless BaseURL is
	// the v1 API (…/openai/v1) requests go to {BaseURL}/openai/deployments/{model}/{endpoint}
	// with ?api-version=AzureAPIVersion, the upstream model being the deployment name. With a v1
	// BaseURL, an AzureAPIVersion sends images and audio to those deployment URLs (at the
	// resource root) and the rest to v1: Azure's v1 reference lists no images or audio paths.
	Azure           bool
	AzureAPIVersion string
	// MaxTokensOnly renames max_completion_tokens to max_tokens, for upstreams that know only the
	// older name (Zhipu GLM).
	MaxTokensOnly bool
	// Media lists the endpoints the upstream serves beyond chat/completions, completions and
	// embeddings (MediaEndpoints of the provider type): the gateway sends no other there.
	Media []providers.Endpoint
}

// Provider is an OpenAI-compatible upstream.
type Provider struct {
	base       string
	key        string // the configured api_key
	authHeader string // "Authorization", or "Api-Key" for Azure
	auth       string
	headers    http.Header
	// azureVersion, when set, selects Azure's deployment URLs.
	azureVersion string
	// azureMedia, when set, is the api-version of the deployment URLs that images and audio go
	// to from a v1 base_url, at azureRoot (the base_url without /openai/v1).
	azureMedia, azureRoot string
	maxTokensOnly         bool
	media                 []providers.Endpoint
	// targets are the URLs of the endpoints at base, made once instead of per request.
	targets map[providers.Endpoint]string
	client  *http.Client
	// secrets are the key and the configured header values, made once: Credentials runs on
	// every attempt.
	secrets []string
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.CredentialHolder = (*Provider)(nil)
	_ providers.EndpointServer   = (*Provider)(nil)
)

// New checks the options and builds the provider's client.
func New(opts Options) (*Provider, error) {
	if _, err := ParseBaseURL(opts.BaseURL); err != nil {
		return nil, err
	}
	p := &Provider{base: strings.TrimRight(opts.BaseURL, "/"), key: opts.APIKey, authHeader: "Authorization", headers: http.Header{},
		maxTokensOnly: opts.MaxTokensOnly, media: opts.Media, client: outbound.NewClient(outbound.Options{MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
			DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Policy: opts.Outbound})}
	for k, v := range opts.Headers {
		p.headers.Set(k, v)
	}
	if opts.APIKey != "" {
		p.auth = "Bearer " + opts.APIKey
	}
	if opts.Azure {
		p.authHeader, p.auth = "Api-Key", opts.APIKey
		if root, ok := strings.CutSuffix(p.base, "/openai/v1"); ok && opts.AzureAPIVersion != "" {
			p.azureMedia, p.azureRoot = url.QueryEscape(opts.AzureAPIVersion), root
		} else if !ok {
			if opts.AzureAPIVersion == "" {
				return nil, fmt.Errorf("api_version: required for Azure deployment URLs (or use a base_url ending in /openai/v1)")
			}
			p.azureVersion = url.QueryEscape(opts.AzureAPIVersion)
		}
	}
	p.targets = map[providers.Endpoint]string{}
	for _, ep := range append([]providers.Endpoint{providers.ChatCompletions, providers.Completions, providers.Embeddings, providers.Responses}, opts.Media...) {
		p.targets[ep] = p.base + "/" + string(ep)
	}
	if p.key != "" {
		p.secrets = append(p.secrets, p.key)
	}
	for _, v := range p.headers {
		p.secrets = append(p.secrets, v...)
	}
	return p, nil
}

// Do implements providers.Provider.
func (p *Provider) Do(ctx context.Context, req *providers.Request) (*http.Response, error) {
	target, ok := p.targets[req.Endpoint]
	if !ok || req.Path != "" {
		target = p.base + "/" + string(req.Endpoint) + req.Path
	}
	switch {
	case p.azureVersion != "" && req.Endpoint == providers.Responses:
		// Azure's Responses API is not scoped to a deployment: the deployment is the body's model
		// (PROVIDERS-2.md §3.1), and the api-version must be 2025-03-01-preview or later.
		target = p.base + "/openai/responses" + req.Path + "?api-version=" + p.azureVersion
	case p.azureVersion != "":
		target = p.base + "/openai/deployments/" + url.PathEscape(req.Model) + "/" + string(req.Endpoint) + "?api-version=" + p.azureVersion
	case p.azureMedia != "" && azureDeploymentOnly(req.Endpoint):
		target = p.azureRoot + "/openai/deployments/" + url.PathEscape(req.Model) + "/" + string(req.Endpoint) + "?api-version=" + p.azureMedia
	}
	if req.Query != "" {
		sep := "?"
		if strings.Contains(target, "?") { // Azure's api-version
			sep = "&"
		}
		target += sep + req.Query
	}
	body := req.Body
	if p.maxTokensOnly {
		body = renameMaxTokens(body)
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if req.Upload != nil {
		rd = req.Upload.Open()
	}
	hr, err := http.NewRequestWithContext(ctx, cmp.Or(req.Method, http.MethodPost), target, rd)
	if err != nil {
		return nil, err
	}
	if req.Upload != nil {
		hr.ContentLength = req.Upload.Size
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	for k, v := range p.headers {
		hr.Header[k] = v
	}
	var kv [6]string // Accept, then Content-Type and the credential when there are
	kv[0], kv[1] = "Accept", "application/json"
	switch {
	case req.Stream:
		kv[1] = "text/event-stream"
	case req.Endpoint == providers.AudioSpeech, req.Endpoint == providers.AudioTranscriptions, req.Endpoint == providers.AudioTranslations:
		// Audio bytes, or a transcript as text, SubRip or WebVTT: whatever the request asked for.
		kv[1] = "*/*"
	}
	n := 2
	switch {
	case req.Upload != nil:
		kv[n], kv[n+1], n = "Content-Type", req.Upload.ContentType, n+2
	case body != nil:
		kv[n], kv[n+1], n = "Content-Type", "application/json", n+2
	}
	if p.auth != "" {
		kv[n], kv[n+1], n = p.authHeader, p.auth, n+2
	}
	headers.Set(hr.Header, kv[:n]...)
	return p.client.Do(hr)
}

// azureDeploymentOnly reports whether Azure serves ep only at its deployment URLs as far as its
// documentation says: images and audio are not in the v1 API's table (PROVIDERS-2.md §3.1, as of
// its 2026-01 page), while openai-node's AzureOpenAI sends them to /deployments/{model}/….
func azureDeploymentOnly(ep providers.Endpoint) bool {
	switch ep {
	case providers.ImageGenerations, providers.ImageEdits, providers.AudioTranscriptions, providers.AudioTranslations, providers.AudioSpeech:
		return true
	}
	return false
}

// Serves implements providers.EndpointServer: the text endpoints, and the configured media ones.
func (p *Provider) Serves(ep providers.Endpoint) bool {
	switch ep {
	case providers.ChatCompletions, providers.Completions, providers.Embeddings:
		return true
	}
	return slices.Contains(p.media, ep)
}

// renameMaxTokens turns max_completion_tokens into max_tokens (a copy; the request's body is
// reused on failover). A body with both keeps max_tokens.
func renameMaxTokens(body []byte) []byte {
	v := gjson.GetBytes(body, "max_completion_tokens")
	if !v.Exists() {
		return body
	}
	out, err := sjson.DeleteBytes(body, "max_completion_tokens")
	if err != nil {
		return body
	}
	if !gjson.GetBytes(out, "max_tokens").Exists() {
		if out, err = sjson.SetRawBytes(out, "max_tokens", []byte(v.Raw)); err != nil {
			return body
		}
	}
	return out
}

// Credentials implements providers.CredentialHolder: the key and the configured header values
// (an appid, an organisation id…).
func (p *Provider) Credentials() []string { return p.secrets }

// CloseIdleConnections drops pooled upstream connections (at shutdown, or when a reload replaces
// the provider).
func (p *Provider) CloseIdleConnections() { p.client.CloseIdleConnections() }

// ParseBaseURL checks an adapter's base_url: an absolute http(s) URL with a host. Its errors
// never show the URL's userinfo, which may hold credentials. Adapters add their own rules (no
// credentials, no query…) on the URL it returns.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("base_url: not a valid URL") // url.Error quotes the URL
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base_url: want an http(s) URL, got %q", redact(u))
	}
	return u, nil
}

// redact hides the whole userinfo, user name included (url.URL.Redacted keeps it, and a user
// name can be a key).
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = url.User("redacted")
	return c.String()
}
