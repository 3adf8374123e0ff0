package providers

import (
	"context"
	"net/http"
	"testing"
)

type textOnly struct{}

func (textOnly) Do(context.Context, *Request) (*http.Response, error) { return nil, nil }

// A provider that does not say which endpoints it serves (a translating adapter) serves the text
// endpoints only.
func TestServesDefault(t *testing.T) {
	for ep, want := range map[Endpoint]bool{ChatCompletions: true, Completions: true, Embeddings: true, ImageGenerations: false, Moderations: false} {
		if got := Serves(textOnly{}, ep); got != want {
			t.Errorf("%s: %v, want %v", ep, got, want)
		}
	}
}
