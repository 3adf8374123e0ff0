package anthropic

import (
	"context"
	"net/http"
	"strings"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/internal/upstreamhttp"
)

var _ providers.EndpointServer = (*Provider)(nil)

// Serves implements providers.EndpointServer: the text endpoints, as before (only chat is
// answered; the others get the adapter's 400), and Anthropic's own Messages endpoints, which
// are relayed as they are.
func (p *Provider) Serves(ep providers.Endpoint) bool {
	switch ep {
	case providers.ChatCompletions, providers.Completions, providers.Embeddings,
		providers.Messages, providers.MessagesCountTokens:
		return true
	}
	return false
}

// doMessages relays a request of Anthropic's own Messages API: the body as the gateway hands it
// over (already in Anthropic's format, with the upstream model), the client's anthropic-version
// (the adapter's when the client sent none) and anthropic-beta (with the provider's configured
// betas added), the provider's key; the answer comes back untouched, errors included, for the
// gateway to relay byte for byte.
func (p *Provider) doMessages(ctx context.Context, req *providers.Request) (*http.Response, error) {
	target := p.endpoint
	if req.Endpoint == providers.MessagesCountTokens {
		target += "/count_tokens"
	}
	hr, err := upstreamhttp.NewRequest(ctx, target, req.Body, req.Stream, req.Header,
		"Authorization", "X-Api-Key", "Api-Key", "Anthropic-Version", "Anthropic-Beta", "Host")
	if err != nil {
		return nil, err
	}
	version := APIVersion
	if v := req.Header.Get("Anthropic-Version"); v != "" {
		version = v
	}
	hr.Header.Set("anthropic-version", version)
	if beta := joinBetas(req.Header.Values("Anthropic-Beta"), p.beta); beta != "" {
		hr.Header.Set("anthropic-beta", beta)
	}
	if p.key != "" {
		hr.Header.Set("x-api-key", p.key)
	}
	return p.client.Do(hr)
}

// joinBetas is the client's anthropic-beta values, then the configured ones it did not name, as
// one comma-separated header.
func joinBetas(client []string, configured string) string {
	var out []string
	seen := map[string]bool{}
	for _, v := range append(client, configured) {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" && !seen[b] {
				seen[b] = true
				out = append(out, b)
			}
		}
	}
	return strings.Join(out, ",")
}
