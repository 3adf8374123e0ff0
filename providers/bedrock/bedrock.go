// Package bedrock is the adapter for Amazon Bedrock Runtime (PROVIDERS-2.md §4). It takes the
// gateway's OpenAI-format chat request and sends it one of two ways:
//
//   - InvokeModel / InvokeModelWithResponseStream (POST {base}/model/{modelId}/invoke and
//     /invoke-with-response-stream) for Anthropic's models: the anthropic package's translation,
//     with anthropic_version "bedrock-2023-05-31" in the body and the model in the path
//     (invoke.go). The stream arrives in AWS's binary event-stream framing, each message's payload
//     a base64 Anthropic event, which is turned back into Anthropic's SSE and translated as the
//     anthropic provider translates it.
//   - Converse / ConverseStream (POST …/converse and /converse-stream) for any model:
//     converse_request.go, converse_response.go and converse_stream.go translate.
//
// Requests are signed with AWS Signature Version 4 through the SDK's signer and credential chain,
// or carry a Bedrock API key as a bearer token (auth.go). Errors, whether answers or exception
// messages inside a stream, are mapped to OpenAI's shape and to the statuses the gateway's
// failover and breaker decide on (errors.go). A malformed event-stream message, a CRC mismatch or
// an exception mid-stream end the translated stream with an error event, never a clean end.
//
// Only chat completions are served; the other endpoints are answered with an OpenAI-shaped 400
// without calling the upstream (the gateway translates Responses and Messages requests to chat).
package bedrock

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
	"github.com/llmgate/llmgate/providers/internal/oairender"
	"github.com/llmgate/llmgate/providers/internal/upstreamhttp"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
)

// The APIs a deployment's requests go to (Settings.API).
const (
	// APIAuto sends Anthropic models (model ids with "anthropic." in them, inference profiles
	// such as us.anthropic.… included) to InvokeModel and every other model to Converse.
	APIAuto = "auto"
	// APIInvoke sends every request to InvokeModel with an Anthropic Messages body.
	APIInvoke = "invoke"
	// APIConverse sends every request to Converse.
	APIConverse = "converse"
)

// AnthropicVersion is the anthropic_version InvokeModel bodies carry for Anthropic's models.
const AnthropicVersion = "bedrock-2023-05-31"

// Settings are the type's own options: the provider's `bedrock:` section in the config file and in
// the admin API's provider body (the JSON keys are the YAML ones).
type Settings struct {
	// Region is the AWS region of the endpoint and of the signature (default: AWS_REGION or the
	// profile's region). A cross-region inference profile id (us.anthropic.…) is a deployment's
	// model, called in this region.
	Region string `yaml:"region" json:"region,omitempty"`
	// API is auto (default), invoke or converse.
	API string `yaml:"api" json:"api,omitempty"`
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials. Without them (and
	// without the provider's api_key, a Bedrock API key) the SDK's default chain is used:
	// environment, shared files (Profile), web identity, container and instance roles.
	AccessKeyID     string `yaml:"access_key_id" json:"access_key_id,omitempty"`
	SecretAccessKey string `yaml:"secret_access_key" json:"secret_access_key,omitempty"`
	SessionToken    string `yaml:"session_token" json:"session_token,omitempty"`
	// Profile names the shared config profile the chain reads (default: AWS_PROFILE, else
	// "default").
	Profile string `yaml:"profile" json:"profile,omitempty"`
	// DefaultMaxTokens is the maximum output when the request names none: for InvokeModel 4096
	// when unset (Anthropic's models require one); for Converse, unset leaves it to the model.
	DefaultMaxTokens int `yaml:"default_max_tokens" json:"default_max_tokens,omitempty"`
	// PassFields names top-level fields of the OpenAI request copied as they are: into the
	// InvokeModel body, or into Converse's additionalModelRequestFields (model-native
	// parameters such as "thinking" or "top_k").
	PassFields []string `yaml:"pass_fields" json:"pass_fields,omitempty"`
	// Beta values are sent as the InvokeModel body's anthropic_beta list.
	Beta []string `yaml:"beta" json:"beta,omitempty"`
}

// Options configure one Bedrock provider.
type Options struct {
	// BaseURL overrides the endpoint (default https://bedrock-runtime.{region}.amazonaws.com).
	BaseURL string
	// APIKey is a Bedrock API key, sent as a bearer token instead of a SigV4 signature.
	APIKey string
	Settings
	// MaxIdleConnsPerHost, DialTimeout and ResponseHeaderTimeout tune the HTTP client as for the
	// openai adapter (see openai.Options; same defaults).
	MaxIdleConnsPerHost   int
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// Outbound is the address policy of every dial (the zero value allows public addresses only).
	Outbound outbound.Policy
}

// reservedFields are written by the translations; pass_fields may not name them.
var reservedFields = map[string]bool{
	"model": true, "messages": true, "system": true, "max_tokens": true, "stream": true,
	"tools": true, "tool_choice": true, "stop_sequences": true, "temperature": true,
	"top_p": true, "metadata": true, "anthropic_version": true, "anthropic_beta": true,
}

// Provider is a Bedrock Runtime upstream. It is safe for concurrent use.
type Provider struct {
	base     string // without a trailing slash
	api      string
	auth     *authenticator
	settings Settings
	client   *http.Client
	now      func() time.Time
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.IdleCloser       = (*Provider)(nil)
	_ providers.CredentialHolder = (*Provider)(nil)
	_ providers.EndpointServer   = (*Provider)(nil)
)

// New checks the options, settles the region and the credentials' source, and builds the
// client. No credential is fetched and no upstream is called.
func New(opts Options) (*Provider, error) {
	api := cmp.Or(opts.API, APIAuto)
	switch api {
	case APIAuto, APIInvoke, APIConverse:
	default:
		return nil, fmt.Errorf("bedrock.api: %q is not one of auto, invoke, converse", opts.API)
	}
	if opts.DefaultMaxTokens < 0 {
		return nil, errors.New("bedrock.default_max_tokens: must not be negative")
	}
	for _, f := range opts.PassFields {
		if f == "" || strings.ContainsAny(f, ".*?#|@\\:!") || reservedFields[f] {
			return nil, fmt.Errorf("bedrock.pass_fields: %q cannot be passed through (not a plain field name, or one the adapter writes)", f)
		}
	}
	auth, err := newAuthenticator(context.Background(), opts.APIKey, opts.Settings)
	if err != nil {
		return nil, err
	}
	base := cmp.Or(opts.BaseURL, "https://bedrock-runtime."+auth.region+".amazonaws.com")
	if _, err := openai.ParseBaseURL(base); err != nil {
		return nil, err
	}
	return &Provider{
		base:     strings.TrimRight(base, "/"),
		api:      api,
		auth:     auth,
		settings: opts.Settings,
		client: outbound.NewClient(outbound.Options{MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
			DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Policy: opts.Outbound}),
		now: time.Now,
	}, nil
}

// Region is the region requests are signed for.
func (p *Provider) Region() string { return p.auth.region }

// Serves implements providers.EndpointServer: the text endpoints (only chat is answered; the
// others get the adapter's 400).
func (p *Provider) Serves(ep providers.Endpoint) bool {
	switch ep {
	case providers.ChatCompletions, providers.Completions, providers.Embeddings:
		return true
	}
	return false
}

// Do implements providers.Provider: translate, sign, call, translate back. Requests the
// adapter cannot translate and endpoints it does not support are answered without an upstream
// call.
func (p *Provider) Do(ctx context.Context, req *providers.Request) (*http.Response, error) {
	if req.Endpoint != providers.ChatCompletions {
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
			"unsupported_endpoint", "",
			"The bedrock provider supports only /v1/chat/completions, not /v1/"+string(req.Endpoint)+"."), nil), nil
	}
	if p.useInvoke(req.Model) {
		return p.invoke(ctx, req)
	}
	return p.converse(ctx, req)
}

// useInvoke reports whether model goes to InvokeModel.
func (p *Provider) useInvoke(model string) bool {
	switch p.api {
	case APIInvoke:
		return true
	case APIConverse:
		return false
	}
	return strings.Contains(model, "anthropic.")
}

// Credentials implements providers.CredentialHolder: the API key, the static secrets, and the
// secrets the credential chain has handed out so far.
func (p *Provider) Credentials() []string { return p.auth.credentials() }

// CloseIdleConnections drops pooled upstream connections.
func (p *Provider) CloseIdleConnections() { p.client.CloseIdleConnections() }

// post sends a signed POST of body to {base}/model/{model}/{op}. The model id is escaped as
// AWS's SDKs escape it (':' as %3A, '/' of an ARN as %2F), and the signer escapes that path
// again for the canonical request, as SigV4 wants for every service but S3.
func (p *Provider) post(ctx context.Context, req *providers.Request, op string, body []byte, stream bool) (*http.Response, error) {
	escaped := "/model/" + url.QueryEscape(req.Model) + "/" + op
	hr, err := upstreamhttp.NewRequest(ctx, p.base+escaped, body, stream, req.Header,
		"Authorization", "X-Api-Key", "Api-Key", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256", "Host")
	if err != nil {
		return nil, err
	}
	if stream {
		hr.Header.Set("Accept", "application/vnd.amazon.eventstream")
	}
	// Only the headers Bedrock needs are signed and sent: forwarded ones (trace context) stay
	// unsigned, since a proxy on the way may rewrite them.
	fwd := hr.Header.Clone()
	for k := range hr.Header {
		if k != "Content-Type" && k != "Accept" {
			hr.Header.Del(k)
		}
	}
	if err := p.auth.authorize(ctx, hr, body); err != nil {
		return nil, err
	}
	for k, v := range fwd {
		if _, ok := hr.Header[k]; !ok {
			hr.Header[k] = v
		}
	}
	return p.client.Do(hr)
}
