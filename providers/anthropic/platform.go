package anthropic

import (
	"net/http"

	"github.com/tidwall/sjson"
)

// Platform serves Anthropic's models under a cloud's own URL and credentials instead of the
// Messages API's (Vertex AI's rawPredict and streamRawPredict): the body is the Messages body
// the adapter translates, without its model (the URL names it) and with the platform's
// anthropic_version; the answers, streams and errors are Anthropic's.
type Platform struct {
	// URL is the endpoint of one call of model, streamed or not.
	URL func(model string, stream bool) string
	// Version is the body's anthropic_version ("vertex-2023-10-16").
	Version string
	// Authorize adds the platform's credentials to a request (x-api-key is never sent); an
	// error fails the attempt as a connection failure would, before anything is sent.
	Authorize func(*http.Request) error
}

// platformBody turns a translated Messages body into the platform's: the model out, the
// version in. stream stays, as Vertex AI wants it for streamRawPredict.
func platformBody(body []byte, version string) ([]byte, error) {
	body, err := sjson.DeleteBytes(body, "model")
	if err != nil {
		return nil, err
	}
	return sjson.SetBytes(body, "anthropic_version", version)
}
