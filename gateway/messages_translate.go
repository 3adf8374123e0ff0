package gateway

import (
	"errors"
	"net/http"

	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/messages"
)

// Deployments whose upstream speaks only chat completions (OpenAI and the compatible presets,
// Gemini…) serve the Messages API by translation (providers/messages): the request goes to
// their chat endpoint as ToChat's body, the answer comes back as a Message (FromChat) or its
// event stream (NewStream), relayed event by event like a passthrough one.
//
// The translation is made once per request, before admission, for every such deployment of
// the model (messagesCandidates), so failover may cross from a passthrough deployment to a
// translated one and back: each attempt is sent the body its deployment speaks. Deployments
// that speak the Messages API are tried first within a priority (nativeFirst). A request the
// translation refuses (a server tool, an unknown block…) goes only to the passthrough
// deployments; with none, it is answered with the translation's 400.
//
// thinking and output_config.effort become reasoning_effort only for deployments marked
// reasoning (DeploymentConfig.Reasoning), and are dropped for the others: an OpenAI model that
// does not reason answers reasoning_effort with a 400, while Claude Code sends thinking with
// every request.

// messagesTranslation is a Messages request as the deployments that speak only chat get it.
type messagesTranslation struct {
	chat []byte // ToChat's body, with the public model (set per deployment)
	info messages.RequestInfo
}

// serves reports whether d is sent the translation rather than the Messages body.
func (t *messagesTranslation) serves(d *providers.Deployment) bool {
	return t != nil && !providers.NativeMessages(d.Provider)
}

// body is the chat body for a deployment: its upstream model, and the request's reasoning
// effort when the deployment reasons.
func (t *messagesTranslation) body(d *providers.Deployment) ([]byte, error) {
	b, err := sjson.SetBytes(t.chat, "model", d.Model)
	if err == nil && d.Reasoning && t.info.ReasoningEffort != "" {
		b, err = sjson.SetBytes(b, "reasoning_effort", t.info.ReasoningEffort)
	}
	return b, err
}

// translateMessages runs ToChat (CountTokensToChat for count_tokens); a request it refuses is
// an Anthropic-shaped 400.
func translateMessages(body []byte, counting bool) (*messagesTranslation, error) {
	to := messages.ToChat
	if counting {
		to = messages.CountTokensToChat
	}
	chat, info, err := to(body, messages.Options{})
	if err != nil {
		var re *messages.RequestError
		if errors.As(err, &re) {
			return nil, newError(re.Status, re.Type, "invalid_value", "", re.Message)
		}
		return nil, err
	}
	return &messagesTranslation{chat: chat, info: info}, nil
}

// translatedMessages is the translated stream as the relay follows it.
type translatedMessages struct{ *messages.Stream }

// Usage is the upstream's usage, in the record's terms.
func (t translatedMessages) Usage() usage {
	u := t.Stream.Usage()
	return usage{prompt: u.PromptTokens(), completion: u.OutputTokens, cached: u.CacheReadInputTokens,
		reasoning: u.ReasoningTokens, cacheWrite: u.CacheCreationInputTokens, found: u.Present}
}

// messagesTranslatedStream is a translated chat stream, read as Messages events: the relay
// takes its usage from it and writes its own errors in its form.
type messagesTranslatedStream interface {
	AppendError(dst []byte, errType, msg string) []byte
	Usage() usage
}

var _ messagesTranslatedStream = translatedMessages{}

// relayMessagesTranslated relays a 2xx chat answer to a translated Messages request as the
// Messages API answers: a stream event by event through the Messages relay, a whole answer as
// one Message.
func (x *exchange) relayMessagesTranslated(resp *http.Response, t *messagesTranslation, secrets []string) (out outcome) {
	if x.streamedAnswer(resp) {
		resp.Body = translatedMessages{messages.NewStream(resp.Body, t.info)}
		x.relayStream(&out, resp, false, secrets)
		return out
	}
	defer carry(&out)
	buf := getBuffer()
	defer putBuffer(buf)
	if err := x.readAnswer(resp.Body, buf); err != nil {
		return x.failed(err)
	}
	doc, u, err := messages.FromChat(buf.Bytes(), t.info)
	if err != nil {
		return x.failed(errBadUpstreamAnswer)
	}
	out.usage = usage{prompt: u.PromptTokens(), completion: u.OutputTokens, cached: u.CacheReadInputTokens,
		reasoning: u.ReasoningTokens, cacheWrite: u.CacheCreationInputTokens, found: u.Present}
	if !out.usage.found {
		out.answer.addMessage(doc)
	}
	x.sendWhole(&out, resp.StatusCode, "application/json", doc)
	return out
}
