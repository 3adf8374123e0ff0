package gateway

import (
	"net/http"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
)

// messagesTranslation is a Messages request as the deployments that speak only chat get it.
type messagesTranslation struct {
	chat []byte
}

// serves reports whether d is sent the translation rather than the Messages body.
func (t *messagesTranslation) serves(d *providers.Deployment) bool {
	return t != nil && !providers.NativeMessages(d.Provider)
}

// messagesTranslatedStream is a translated chat stream, read as Messages events.
type messagesTranslatedStream interface {
	AppendError(dst []byte, errType, msg string) []byte
	Usage() usage
}

func translateMessages(body []byte, counting bool) (*messagesTranslation, error) {
	return nil, newError(http.StatusBadRequest, api.TypeInvalidRequest, "unsupported", "", "not yet")
}

func (t *messagesTranslation) body(model string) ([]byte, error) { return t.chat, nil }

func (x *exchange) relayMessagesTranslated(resp *http.Response, t *messagesTranslation, secrets []string) outcome {
	return x.failed(errBadUpstreamAnswer)
}
