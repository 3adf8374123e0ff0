// Package upstreamhttp builds the HTTP side of a translating adapter's call: the POST that carries
// a translated body, and the reading of its answer. The client is outbound.NewClient, as for every
// adapter.
package upstreamhttp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// NewRequest is the POST of a translated JSON body to target, accepting an event stream when
// stream is set and JSON otherwise. The headers the gateway forwards (trace context, request
// id…) are copied, except Content-Length (the body's own) and the canonical names in withheld:
// credentials and protocol headers are the adapter's, which it sets afterwards.
func NewRequest(ctx context.Context, target string, body []byte, stream bool, forward http.Header, withheld ...string) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range forward {
		if ck := http.CanonicalHeaderKey(k); ck != "Content-Length" && !slices.Contains(withheld, ck) {
			hr.Header[k] = v
		}
	}
	hr.Header.Set("Content-Type", "application/json")
	if stream {
		hr.Header.Set("Accept", "text/event-stream")
	} else {
		hr.Header.Set("Accept", "application/json")
	}
	return hr, nil
}

// MaxAnswerBytes bounds a non-stream answer read into memory for translation (the gateway applies
// its own, usually smaller, limit afterwards).
const MaxAnswerBytes = 64 << 20

// ReadAnswer reads and closes a non-stream answer for translation. An answer larger than
// MaxAnswerBytes is not read further: tooLarge is then the 502, in OpenAI's shape, to answer
// with. A failure to read is returned as it is, like a connection failure: nothing of the answer
// has been relayed yet.
func ReadAnswer(resp *http.Response) (raw []byte, tooLarge *http.Response, err error) {
	defer resp.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > MaxAnswerBytes {
		return nil, oairender.ErrorResponse(http.StatusBadGateway, api.NewError(api.TypeUpstream,
			"upstream_response_too_large", "", "The upstream's answer exceeded the adapter's size limit."), nil), nil
	}
	return raw, nil, nil
}
