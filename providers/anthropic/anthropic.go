// Package anthropic is the adapter for Anthropic's Messages API. It takes the gateway's
// OpenAI-format chat request, translates it into a Messages request (request.go), sends it to
// POST {base_url}/v1/messages, and translates the answer back into OpenAI's format: a
// chat.completion (response.go), a stream of chat.completion.chunk events ending in
// "data: [DONE]" translated event by event as the upstream's arrive (stream.go), or an
// OpenAI-shaped error (errors.go).
//
// Anthropic's own Messages endpoints (providers.Messages, MessagesCountTokens) are relayed as
// they are (passthrough.go). Otherwise only chat completions are supported; the other endpoints
// are answered with an OpenAI-shaped 400 without calling the upstream. The facts the translation relies on (field names, usage rules,
// stop reasons, error types) are in PROVIDERS.md §3, §7 and §9, with their sources.
package anthropic

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/internal/oairender"
	"github.com/llmgate/llmgate/providers/internal/upstreamhttp"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
)

const (
	// DefaultBaseURL is Anthropic's API root, without the version path.
	DefaultBaseURL = "https://api.anthropic.com"
	// APIVersion is the anthropic-version header every request carries. The wire format this
	// package translates is the one of this version.
	APIVersion = "2023-06-01"
	// DefaultMaxTokens is max_tokens when the OpenAI request names none: Anthropic requires it.
	DefaultMaxTokens = 4096

	// maxErrorBytes bounds an upstream error body.
	maxErrorBytes = 64 << 10
)

// Settings are the type's own options: the provider's `anthropic:` section in the config file and in
// the admin API's provider body (the JSON keys are the YAML ones).
type Settings struct {
	// DefaultMaxTokens is sent as max_tokens when the request sets neither max_tokens nor
	// max_completion_tokens (default 4096).
	DefaultMaxTokens int `yaml:"default_max_tokens" json:"default_max_tokens,omitempty"`
	// PassFields names top-level fields of the OpenAI request body copied verbatim into the
	// Messages request (for example "thinking", "top_k", "service_tier"), since Anthropic rejects
	// unknown fields and the adapter drops every field it does not translate. Fields the adapter
	// writes itself (model, messages, system, max_tokens, stream, tools, tool_choice,
	// stop_sequences, temperature, top_p, metadata) cannot be listed.
	PassFields []string `yaml:"pass_fields" json:"pass_fields,omitempty"`
	// Beta values are sent in the anthropic-beta header (joined with commas).
	Beta []string `yaml:"beta" json:"beta,omitempty"`
}

// Options configure one Anthropic provider.
type Options struct {
	// BaseURL is the API root without the version path (default https://api.anthropic.com);
	// requests go to BaseURL + "/v1/messages".
	BaseURL string
	// APIKey is sent as x-api-key.
	APIKey string
	Settings
	// MaxIdleConnsPerHost, DialTimeout and ResponseHeaderTimeout tune the HTTP client as for the
	// openai adapter (see openai.Options; same defaults).
	MaxIdleConnsPerHost   int
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// Outbound is the address policy of every dial (the zero value allows public addresses only).
	Outbound outbound.Policy
	// Platform, when set, sends chat requests to a cloud that serves Anthropic's models under
	// its own URL and credentials (BaseURL and APIKey are then unused for them).
	Platform *Platform
}

// reservedFields are written by the translation; PassFields may not name them.
var reservedFields = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "stream": true,
	"tools": true, "tool_choice": true, "stop_sequences": true, "temperature": true,
	"top_p": true, "metadata": true,
}

// Provider is an Anthropic Messages API upstream. It is safe for concurrent use.
type Provider struct {
	endpoint string // base + /v1/messages
	key      string
	secrets  []string // {key}, made once for Credentials
	beta     string
	settings Settings
	platform *Platform
	client   *http.Client
	now      func() time.Time
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.IdleCloser = (*Provider)(nil)

	_ providers.CredentialHolder = (*Provider)(nil)
)

// New checks the options and builds the provider's client.
func New(opts Options) (*Provider, error) {
	// Userinfo in the URL is allowed: net/http sends it as basic auth (for a proxy in front).
	base := cmp.Or(opts.BaseURL, DefaultBaseURL)
	if _, err := openai.ParseBaseURL(base); err != nil {
		return nil, err
	}
	if opts.DefaultMaxTokens < 0 {
		return nil, errors.New("anthropic.default_max_tokens: must not be negative")
	}
	if opts.DefaultMaxTokens == 0 {
		opts.DefaultMaxTokens = DefaultMaxTokens
	}
	for _, f := range opts.PassFields {
		if f == "" || reservedFields[f] {
			return nil, fmt.Errorf("anthropic.pass_fields: %q cannot be passed through (the adapter writes it)", f)
		}
	}
	return &Provider{
		endpoint: strings.TrimRight(base, "/") + "/v1/messages",
		key:      opts.APIKey,
		secrets:  []string{opts.APIKey},
		beta:     strings.Join(opts.Beta, ","),
		settings: opts.Settings,
		platform: opts.Platform,
		client: outbound.NewClient(outbound.Options{MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
			DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Policy: opts.Outbound}),
		now: time.Now,
	}, nil
}

// Do implements providers.Provider: translate, call, translate back. Requests the adapter cannot
// translate and endpoints it does not support are answered without an upstream call.
func (p *Provider) Do(ctx context.Context, req *providers.Request) (*http.Response, error) {
	if req.Endpoint == providers.Messages || req.Endpoint == providers.MessagesCountTokens {
		return p.doMessages(ctx, req)
	}
	if req.Endpoint != providers.ChatCompletions {
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
			"unsupported_endpoint", "",
			"The anthropic provider supports only /v1/chat/completions, not /v1/"+string(req.Endpoint)+"."), nil), nil
	}
	tr, err := translateRequest(req.Body, req.Model, req.Stream, &p.settings)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "invalid_value", re.param, re.msg), nil), nil
		}
		return nil, err
	}
	target, body := p.endpoint, tr.body
	if p.platform != nil {
		target = p.platform.URL(req.Model, req.Stream)
		if body, err = platformBody(body, p.platform.Version); err != nil {
			return nil, err
		}
	}
	hr, err := upstreamhttp.NewRequest(ctx, target, body, req.Stream, req.Header,
		"Authorization", "X-Api-Key", "Api-Key", "Anthropic-Version", "Anthropic-Beta", "Host")
	if err != nil {
		return nil, err
	}
	hr.Header.Set("anthropic-version", APIVersion)
	if p.beta != "" {
		hr.Header.Set("anthropic-beta", p.beta)
	}
	switch {
	case p.platform != nil:
		if err := p.platform.Authorize(hr); err != nil {
			return nil, fmt.Errorf("anthropic: %w", err)
		}
	case p.key != "":
		hr.Header.Set("x-api-key", p.key)
	}
	resp, err := p.client.Do(hr)
	if err != nil {
		return nil, err
	}
	created := p.now().Unix()
	switch {
	case resp.StatusCode >= 300:
		return translateErrorResponse(resp), nil
	case req.Stream && isEventStream(resp.Header.Get("Content-Type")):
		return oairender.StreamResponse(resp, newStreamReader(resp.Body, req.Model, created, tr.includeUsage)), nil
	}
	raw, tooLarge, err := upstreamhttp.ReadAnswer(resp)
	if err != nil {
		return nil, fmt.Errorf("anthropic: reading the answer: %w", err)
	}
	if tooLarge != nil {
		return tooLarge, nil
	}
	out, err := translateResponse(raw, req.Model, created)
	if err != nil {
		return oairender.ErrorResponse(http.StatusBadGateway, api.NewError(api.TypeUpstream,
			"bad_upstream_response", "", "The upstream's answer could not be translated."), nil), nil
	}
	return oairender.JSONResponse(http.StatusOK, out, nil), nil
}

// Credentials implements providers.CredentialHolder.
func (p *Provider) Credentials() []string { return p.secrets }

// CloseIdleConnections drops pooled upstream connections.
func (p *Provider) CloseIdleConnections() { p.client.CloseIdleConnections() }

func isEventStream(ct string) bool {
	return len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
}
