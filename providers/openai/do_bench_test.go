package openai

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// answerer is a transport that answers every request with one response, without a network.
type answerer struct{ resp *http.Response }

func (a answerer) RoundTrip(*http.Request) (*http.Response, error) { return a.resp, nil }

// BenchmarkDo builds and sends one chat request through the provider to a transport that answers
// at once: what Do itself costs per attempt (the URL, the request, its headers), beside the
// client's own work.
func BenchmarkDo(b *testing.B) {
	p, _ := New(Options{BaseURL: "http://127.0.0.1:1/v1", APIKey: "sk-x"})
	resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}
	p.client = &http.Client{Transport: answerer{resp}}
	req := &providers.Request{Endpoint: providers.ChatCompletions, Body: []byte(`{"model":"m"}`), Model: "m",
		Header: http.Header{"Traceparent": {"00-abc"}, "X-Request-Id": {"id"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Do(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
