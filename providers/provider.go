// Package providers is the seam between the gateway and upstream LLM APIs. A Provider takes an
// OpenAI-format request and returns an OpenAI-format answer as an *http.Response, whatever the
// upstream speaks: passthrough adapters hand back the upstream response itself, translating
// adapters (and the in-process mock) hand back a synthesised one. The gateway relays that one shape.
package providers

import (
	"context"
	"io"
	"net/http"
)

// Endpoint names the OpenAI API operation of a request.
type Endpoint string

// The endpoints the gateway relays.
const (
	ChatCompletions  Endpoint = "chat/completions"
	Completions      Endpoint = "completions"
	Embeddings       Endpoint = "embeddings"
	ImageGenerations Endpoint = "images/generations"
	Moderations      Endpoint = "moderations"
	// Responses is OpenAI's Responses API: POST creates a response; GET, DELETE and POST …/cancel
	// with Request.Path "/{id}" (…"/cancel") act on one. It is relayed as it is only to
	// deployments whose provider serves it (NativeResponses).
	Responses Endpoint = "responses"
	// The multipart endpoints: their requests carry Request.Upload instead of Body.
	ImageEdits          Endpoint = "images/edits"
	AudioTranscriptions Endpoint = "audio/transcriptions"
	AudioTranslations   Endpoint = "audio/translations"
	// AudioSpeech takes a JSON body and answers audio bytes (or SSE with stream_format "sse").
	AudioSpeech Endpoint = "audio/speech"
	// Messages is Anthropic's Messages API (POST /v1/messages), and MessagesCountTokens its
	// POST /v1/messages/count_tokens: Body is Anthropic's JSON, relayed as it is (but the model)
	// and answered in Anthropic's format, stream or not, errors too, only by the deployments
	// whose provider serves it (NativeMessages). Request.Header carries the client's
	// anthropic-version and anthropic-beta.
	Messages            Endpoint = "messages"
	MessagesCountTokens Endpoint = "messages/count_tokens"
)

// Endpoints lists every endpoint the gateway relays, for configuration that names them.
var Endpoints = []Endpoint{ChatCompletions, Completions, Embeddings, Responses, ImageGenerations, ImageEdits,
	AudioTranscriptions, AudioTranslations, AudioSpeech, Moderations, Messages, MessagesCountTokens}

// EndpointServer is implemented by providers that serve more than the text endpoints (chat
// completions, completions, embeddings): the gateway routes a request only among the deployments
// whose provider serves its endpoint.
type EndpointServer interface {
	Serves(ep Endpoint) bool
}

// Serves reports whether p can serve ep: what an EndpointServer says, else the text endpoints
// only (a translating adapter such as Anthropic's or Gemini's, or an OpenAI-compatible upstream
// that offers chat alone).
func Serves(p Provider, ep Endpoint) bool {
	if es, ok := p.(EndpointServer); ok {
		return es.Serves(ep)
	}
	switch ep {
	case ChatCompletions, Completions, Embeddings:
		return true
	}
	return false
}

// Request is one upstream call, prepared by the gateway.
type Request struct {
	Endpoint Endpoint
	// Body is the OpenAI-format JSON body, already rewritten for this deployment (upstream model,
	// stream_options). Adapters must not modify it: on failover the gateway reuses it.
	Body   []byte
	Stream bool
	// Method is the HTTP method, POST when empty. A request without a body (GET, DELETE) has a
	// nil Body.
	Method string
	// Path follows the endpoint in the upstream URL ("/resp_123", "/resp_123/cancel"), for the
	// operations on one stored object; empty for the endpoint itself.
	Path string
	// Query is the URL query the upstream gets, encoded ("stream=true&starting_after=5"), for the
	// operations that take one (retrieving a response); empty for none. The gateway puts only the
	// operation's documented parameters there, never a client's query as it came.
	Query string
	// Model is the upstream model name (already written into Body).
	Model string
	// Upload, when set, is the body of a multipart/form-data request (images/edits, audio
	// transcriptions and translations) in place of Body.
	Upload *Upload
	// Header carries the request headers the gateway forwards (traceparent, user agent…). Adapters
	// add their own credentials; they never copy the client's Authorization.
	Header http.Header
}

// Upload is a multipart/form-data body kept outside memory (the gateway spools it to disk), with
// the deployment's model already written into its model part.
type Upload struct {
	// ContentType is the body's media type with its boundary, sent as the Content-Type header.
	ContentType string
	// Size is the body's length in bytes, sent as the Content-Length.
	Size int64
	// Open returns a reader of the whole body from its first byte. Each attempt opens its own:
	// on failover the body is sent again from the start.
	Open func() io.Reader
}

// Provider sends requests to one upstream. Implementations are safe for concurrent use.
//
// Do returns a response whose status and body are in OpenAI's format (a JSON body, or an SSE
// stream of chat.completion.chunk events ending in "data: [DONE]" when Request.Stream is set). A
// non-nil error means no response was obtained (connection refused, timeout before headers…); the
// caller closes the body of a non-nil response.
type Provider interface {
	Do(ctx context.Context, req *Request) (*http.Response, error)
}

// Config is one entry of the config file's `providers` list.
type Config struct {
	Name    string `yaml:"name"`
	Type    string `yaml:"type"`
	BaseURL string `yaml:"base_url"`
	APIKey  string `yaml:"api_key"`
}

// CredentialHolder is implemented by providers that send credentials upstream: the gateway
// removes each of them from any upstream error text it relays to a client.
type CredentialHolder interface {
	// Credentials is called on every attempt: it returns a slice made once, which callers must
	// not modify.
	Credentials() []string
}

// NativeResponses reports whether p relays Responses requests to an upstream that speaks them
// (an OpenAI or Azure OpenAI deployment, the mock): Serves(p, Responses). Other providers
// (chat-only upstreams and the translating adapters) are not sent Responses requests as they are.
func NativeResponses(p Provider) bool { return Serves(p, Responses) }

// NativeMessages reports whether p relays Anthropic Messages requests to an upstream that speaks
// them (an Anthropic deployment, the mock): Serves(p, Messages). The others are sent the
// gateway's translation of such a request to chat completions.
func NativeMessages(p Provider) bool { return Serves(p, Messages) }

// IdleCloser is implemented by providers that pool connections; the gateway calls it when the
// provider is retired.
type IdleCloser interface {
	CloseIdleConnections()
}
