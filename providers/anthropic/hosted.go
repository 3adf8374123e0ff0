package anthropic

import (
	"errors"
	"io"
	"net/http"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file lends the chat translation to the adapters of clouds that host Anthropic's models
// behind their own URLs and authentication (Bedrock's InvokeModel): they take the Messages body,
// adjust the fields their host wants, and hand the answer back here.

// ChatRequest is a chat completions request translated into a Messages body.
type ChatRequest struct {
	// Body is the Messages request, with model and stream set as for Anthropic's own API.
	Body []byte
	// IncludeUsage is stream_options.include_usage: only then does a translated stream end with
	// a usage chunk.
	IncludeUsage bool
}

// TranslateChat translates an OpenAI chat completions body as the anthropic provider does. A
// request it cannot translate gives an error for which Refusal returns the 400 to answer.
func TranslateChat(body []byte, model string, stream bool, s Settings) (ChatRequest, error) {
	if s.DefaultMaxTokens <= 0 {
		s.DefaultMaxTokens = DefaultMaxTokens
	}
	tr, err := translateRequest(body, model, stream, &s)
	return ChatRequest{Body: tr.body, IncludeUsage: tr.includeUsage}, err
}

// Refusal is the OpenAI-shaped 400 for an error of TranslateChat that names a fault of the
// request, or nil for any other error.
func Refusal(err error) *http.Response {
	var re *requestError
	if !errors.As(err, &re) {
		return nil
	}
	return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "invalid_value", re.param, re.msg), nil)
}

// ChatCompletion renders the chat.completion of a whole Messages answer; model is used when the
// answer names none.
func ChatCompletion(raw []byte, model string, created int64) ([]byte, error) {
	return translateResponse(raw, model, created)
}

// NewChatStream translates a Messages event stream (text/event-stream) into the
// chat.completion.chunk stream, event by event, as the anthropic provider does. A host that
// frames the events otherwise turns them into SSE first.
func NewChatStream(events io.ReadCloser, model string, created int64, includeUsage bool) io.ReadCloser {
	return newStreamReader(events, model, created, includeUsage)
}
