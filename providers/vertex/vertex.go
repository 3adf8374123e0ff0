// Package vertex is the adapter for Google Cloud's Vertex AI: Gemini models through
// generateContent and streamGenerateContent?alt=sse under
// {base}/projects/{project}/locations/{region}/publishers/google/models/{model}, and Anthropic's
// Claude models through rawPredict and streamRawPredict under …/publishers/anthropic/models/{model}
// (PROVIDERS-2.md §5). The wire formats are those of the Gemini API and of Anthropic's Messages
// API, so the translations are theirs (providers/gemini, providers/anthropic); this package adds
// the URLs, the Claude body's anthropic_version and Google's authentication (auth.go).
//
// A deployment's model picks the publisher: a name starting with "claude" is Anthropic's
// (written as Vertex AI names them, "claude-3-7-sonnet@20250219"), any other Google's. Only chat
// completions are served; the gateway translates what it receives in other dialects (Anthropic
// Messages, Responses) to them.
package vertex

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/gemini"
	"github.com/llmgate/llmgate/providers/internal/oairender"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
)

// AnthropicVersion is the anthropic_version of every Claude body sent to Vertex AI.
const AnthropicVersion = "vertex-2023-10-16"

// Settings are the type's own options in the config file (the provider's `vertex:` section).
type Settings struct {
	// Project is the Google Cloud project id; empty takes the credentials' own (a service
	// account key's project_id). Without it, an API key reaches Vertex AI's express mode.
	Project string `yaml:"project" json:"project,omitempty"`
	// Region is the location of the models ("us-central1", "europe-west4", "global", "us", "eu");
	// it names the host ({region}-aiplatform.googleapis.com, aiplatform.googleapis.com for global,
	// aiplatform.{us|eu}.rep.googleapis.com for the multi-regions) and the path. Required but in
	// express mode.
	Region string `yaml:"region" json:"region,omitempty"`
	// CredentialsFile is the path of a service account's JSON key.
	CredentialsFile string `yaml:"credentials_file" json:"credentials_file,omitempty"`
	// CredentialsJSON is a service account's JSON key itself (typically ${ENV}). With neither
	// it nor CredentialsFile nor an api_key, application default credentials are used.
	CredentialsJSON string `yaml:"credentials_json" json:"credentials_json,omitempty"`
	// TokenURL replaces the OAuth token endpoint of the credentials (token_uri of a key), for a
	// private endpoint or a test's.
	TokenURL string `yaml:"token_url" json:"token_url,omitempty"`
	// Anthropic tunes the translation for Claude models (default_max_tokens, pass_fields, beta).
	Anthropic anthropic.Settings `yaml:"anthropic" json:"anthropic,omitzero"`
}

// Options configure one Vertex AI provider.
type Options struct {
	// BaseURL is the API root with its version path; empty derives it from the region
	// (https://{region}-aiplatform.googleapis.com/v1).
	BaseURL string
	// APIKey, when set, is sent as x-goog-api-key instead of an OAuth token; Vertex AI accepts
	// keys for Gemini models only.
	APIKey string
	Settings
	// MaxIdleConnsPerHost, DialTimeout and ResponseHeaderTimeout tune the HTTP client as for the
	// openai adapter (same defaults).
	MaxIdleConnsPerHost   int
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// Outbound is the address policy of every dial, the token endpoint's included.
	Outbound outbound.Policy
}

// Provider is a Vertex AI upstream. It is safe for concurrent use.
type Provider struct {
	google *gemini.Provider
	claude *anthropic.Provider // nil with an API key: Vertex AI takes keys for Gemini only
	auth   *authorizer
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.IdleCloser       = (*Provider)(nil)
	_ providers.CredentialHolder = (*Provider)(nil)
)

// New checks the options, loads the credentials (no network call but on Google Compute Engine,
// where application default credentials ask the metadata server) and builds the clients.
func New(opts Options) (*Provider, error) {
	s := opts.Settings
	express := opts.APIKey != "" && s.Project == ""
	if opts.APIKey != "" && (s.CredentialsFile != "" || s.CredentialsJSON != "") {
		return nil, errors.New("api_key: set either an API key or vertex credentials, not both")
	}
	if s.CredentialsFile != "" && s.CredentialsJSON != "" {
		return nil, errors.New("vertex.credentials_json: set either credentials_file or credentials_json, not both")
	}
	if s.TokenURL != "" {
		if _, err := openai.ParseBaseURL(s.TokenURL); err != nil {
			return nil, fmt.Errorf("vertex.token_url: %s", strings.TrimPrefix(err.Error(), "base_url: "))
		}
	}
	if !express && s.Region == "" {
		return nil, errors.New("vertex.region: required (the location of the models, such as us-central1 or global)")
	}
	if strings.ContainsAny(s.Region, "/?#@:") || strings.ContainsAny(s.Project, "/?#@:") {
		return nil, errors.New("vertex: project and region must be plain names")
	}
	base := cmp.Or(opts.BaseURL, defaultBaseURL(s.Region, express))
	u, err := openai.ParseBaseURL(base)
	if err != nil {
		return nil, err
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("base_url: want an http(s) URL without credentials or a query string")
	}
	base = strings.TrimRight(base, "/")
	client := outbound.Options{MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost, DialTimeout: opts.DialTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Policy: opts.Outbound}
	p := &Provider{}
	if opts.APIKey != "" {
		p.auth = keyAuthorizer(opts.APIKey)
	} else {
		if p.auth, err = newAuthorizer(s, client); err != nil {
			return nil, err
		}
		if s.Project == "" {
			s.Project = p.auth.project
		}
		if s.Project == "" {
			return nil, errors.New("vertex.project: required (the credentials name none)")
		}
	}
	root := base + "/publishers/"
	if !express {
		root = base + "/projects/" + url.PathEscape(s.Project) + "/locations/" + url.PathEscape(s.Region) + "/publishers/"
	}
	gopts := gemini.Options{BaseURL: root + "google", APIKey: opts.APIKey, MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
		DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Outbound: opts.Outbound}
	if opts.APIKey == "" {
		gopts.Authorize = p.auth.authorize
	}
	if p.google, err = gemini.New(gopts); err != nil {
		return nil, err
	}
	if opts.APIKey == "" {
		claudeRoot := root + "anthropic/models/"
		p.claude, err = anthropic.New(anthropic.Options{Settings: s.Anthropic, MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
			DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Outbound: opts.Outbound,
			Platform: &anthropic.Platform{Version: AnthropicVersion, Authorize: p.auth.authorize,
				URL: func(model string, stream bool) string {
					if stream {
						return claudeRoot + url.PathEscape(model) + ":streamRawPredict"
					}
					return claudeRoot + url.PathEscape(model) + ":rawPredict"
				}}})
		if err != nil {
			return nil, fmt.Errorf("vertex.%w", err)
		}
	}
	return p, nil
}

// defaultBaseURL is the API root of a region: the regional host, the global one for "global" and
// express mode, and the multi-region hosts for "us" and "eu" (as Anthropic's Vertex SDK has them).
func defaultBaseURL(region string, express bool) string {
	switch {
	case express || region == "global":
		return "https://aiplatform.googleapis.com/v1"
	case region == "us" || region == "eu":
		return "https://aiplatform." + region + ".rep.googleapis.com/v1"
	}
	return "https://" + region + "-aiplatform.googleapis.com/v1"
}

// Do implements providers.Provider: the model's publisher answers.
func (p *Provider) Do(ctx context.Context, req *providers.Request) (*http.Response, error) {
	if req.Endpoint != providers.ChatCompletions {
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
			"unsupported_endpoint", "",
			"This model is served by a Vertex AI deployment, which supports only /v1/chat/completions."), nil), nil
	}
	if !IsClaude(req.Model) {
		return p.google.Do(ctx, req)
	}
	if p.claude == nil {
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
			"unsupported_model", "model",
			"This model is served by a Vertex AI deployment with an API key, which reaches Gemini models only."), nil), nil
	}
	return p.claude.Do(ctx, req)
}

// IsClaude reports whether a Vertex AI model id is one of Anthropic's.
func IsClaude(model string) bool { return strings.HasPrefix(model, "claude") }

// Credentials implements providers.CredentialHolder: the API key or the service account's private
// key, and the access tokens in use.
func (p *Provider) Credentials() []string { return p.auth.secrets() }

// CloseIdleConnections drops pooled upstream connections.
func (p *Provider) CloseIdleConnections() {
	p.google.CloseIdleConnections()
	if p.claude != nil {
		p.claude.CloseIdleConnections()
	}
	p.auth.closeIdle()
}
