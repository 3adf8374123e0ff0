// Package gemini is the adapter for Google's Gemini API (generativelanguage.googleapis.com): it
// translates OpenAI chat/completions requests into native generateContent and
// streamGenerateContent?alt=sse calls, and their answers back into OpenAI's chat.completion
// bodies and chat.completion.chunk streams, errors included. The fact sheet it follows is
// PROVIDERS.md §4 and §7.
//
// The translation, in short (details beside the code: request.go, tools.go, response.go,
// stream.go, errors.go):
//
//   - system and developer messages become systemInstruction; user and tool messages "user"
//     contents, assistant messages "model" ones, consecutive same-role contents merged;
//   - images and files: base64 data: URLs become inlineData, https URLs fileData (MIME type from
//     the extension, image/jpeg for images and application/pdf for files otherwise); Gemini
//     fetches URLs itself, the gateway never does;
//   - tools become functionDeclarations with their JSON Schema cleaned to what Gemini accepts;
//     tool_choice becomes functionCallingConfig; tool results become functionResponse parts named
//     after the call that tool_call_id points to (non-object results wrapped as {"content": …});
//   - Gemini's function calls have no ids (before Gemini 3): ids are synthesised as
//     call_<responseId>_<n>, stable for an answer; a thought signature is carried in the id after
//     "__thought__" and sent back with the call, as Gemini 3 requires;
//   - max_completion_tokens/max_tokens, temperature, top_p, stop, seed, penalties and
//     response_format map to generationConfig; reasoning_effort to a thinking budget, with
//     thought summaries (returned as reasoning_content) asked for unless it is "none"; n must be 1;
//   - usage: prompt_tokens = promptTokenCount + toolUsePromptTokenCount, completion_tokens =
//     candidatesTokenCount + thoughtsTokenCount, reasoning_tokens = thoughtsTokenCount,
//     cached_tokens = cachedContentTokenCount; in streams the last cumulative snapshot, once.
//
// Only chat/completions is translated: completions and embeddings are answered 400 without an
// upstream call. Nothing in a request body (api_base, base_url, api_key…) reaches the choice of
// upstream or credentials, and the API key travels in the x-goog-api-key header, never in a URL.
package gemini

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
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

// DefaultBaseURL is the Gemini API root with its version path.
const DefaultBaseURL = "https://generativelanguage.googleapis.com/v1beta"

// Options configure the adapter and its HTTP client.
type Options struct {
	// BaseURL is the API root including the version path (default DefaultBaseURL). It must not
	// carry a query string: the key goes in a header.
	BaseURL string
	// APIKey is sent as x-goog-api-key. Empty sends none.
	APIKey string
	// MaxIdleConnsPerHost, DialTimeout and ResponseHeaderTimeout tune the client as for the
	// openai adapter (defaults 512, 5s, 60s).
	MaxIdleConnsPerHost   int
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	// Outbound is the address policy of every dial (the zero value allows public addresses only).
	Outbound outbound.Policy
	// Authorize, when set, adds credentials of its own to each upstream request after APIKey's
	// header (an OAuth access token, as Vertex AI wants); an error fails the attempt as a
	// connection failure would, before anything is sent.
	Authorize func(*http.Request) error
}

// Provider is a Gemini API upstream. It is safe for concurrent use.
type Provider struct {
	base    string
	key     string
	secrets []string // {key}, made once for Credentials
	client  *http.Client
	auth    func(*http.Request) error
	now     func() time.Time
	newID   func() string
}

var (
	_ providers.Provider   = (*Provider)(nil)
	_ providers.IdleCloser = (*Provider)(nil)

	_ providers.CredentialHolder = (*Provider)(nil)
)

// New checks the options and builds the provider's client.
func New(opts Options) (*Provider, error) {
	base := cmp.Or(opts.BaseURL, DefaultBaseURL)
	u, err := openai.ParseBaseURL(base)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, errors.New("base_url: want an http(s) URL without credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("base_url: must not carry a query string (the key is sent as a header; set api_key)")
	}
	client := outbound.NewClient(outbound.Options{MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
		DialTimeout: opts.DialTimeout, ResponseHeaderTimeout: opts.ResponseHeaderTimeout, Policy: opts.Outbound})
	return &Provider{base: strings.TrimRight(base, "/"), key: opts.APIKey, secrets: []string{opts.APIKey}, client: client,
		auth: opts.Authorize, now: time.Now, newID: randomID}, nil
}

// Do implements providers.Provider.
func (p *Provider) Do(ctx context.Context, req *providers.Request) (*http.Response, error) {
	if req.Endpoint != providers.ChatCompletions {
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
			"unsupported_endpoint", "",
			"This model is served by a Gemini deployment, which supports only /v1/chat/completions."), nil), nil
	}
	tr, err := translateRequest(req.Body)
	if err != nil {
		re := &requestError{msg: "The request could not be translated for Gemini."}
		errors.As(err, &re)
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "invalid_request", re.param, re.msg), nil), nil
	}
	model := req.Model
	if model == "" {
		model = tr.model
	}
	model = strings.TrimPrefix(model, "models/")
	if model == "" {
		return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
			"missing_model", "model", "You must provide a model parameter."), nil), nil
	}
	target := p.base + "/models/" + url.PathEscape(model) + ":generateContent"
	if req.Stream {
		target = p.base + "/models/" + url.PathEscape(model) + ":streamGenerateContent?alt=sse"
	}
	// Credentials are the gateway's own, never the caller's.
	hr, err := upstreamhttp.NewRequest(ctx, target, tr.body, req.Stream, req.Header,
		"Authorization", "X-Goog-Api-Key", "X-Api-Key", "Api-Key", "Cookie")
	if err != nil {
		return nil, fmt.Errorf("gemini: %w", err)
	}
	if p.key != "" {
		hr.Header.Set("X-Goog-Api-Key", p.key)
	}
	if p.auth != nil {
		if err := p.auth(hr); err != nil {
			return nil, fmt.Errorf("gemini: %w", err)
		}
	}
	resp, err := p.client.Do(hr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return translateErrorResponse(resp), nil
	}
	meta := answerMeta{now: p.now, newID: p.newID, model: model}
	if req.Stream {
		return oairender.StreamResponse(resp, newStreamReader(resp.Body, meta, tr.includeUsage)), nil
	}
	return p.whole(resp, meta)
}

// whole reads a non-stream answer and translates it. A failure to read it is an error like a
// connection failure: nothing of the answer has been relayed yet.
func (p *Provider) whole(resp *http.Response, meta answerMeta) (*http.Response, error) {
	raw, tooLarge, err := upstreamhttp.ReadAnswer(resp)
	if err != nil {
		return nil, fmt.Errorf("gemini: reading the answer: %w", err)
	}
	if tooLarge != nil {
		return tooLarge, nil
	}
	out, err := translateResponse(raw, meta)
	if err != nil {
		re := errMalformed
		errors.As(err, &re)
		return oairender.ErrorResponse(re.status, re.err, nil), nil
	}
	return oairender.JSONResponse(http.StatusOK, out, nil), nil
}

// Credentials implements providers.CredentialHolder.
func (p *Provider) Credentials() []string { return p.secrets }

// CloseIdleConnections drops pooled upstream connections.
func (p *Provider) CloseIdleConnections() { p.client.CloseIdleConnections() }

// randomID makes an answer id when Gemini sent no responseId.
func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
