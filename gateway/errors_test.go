package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// TestUpstreamErrorScrubsAndRefusesRedirects: the upstream's message survives, less credentials
// (the provider's own, whatever their shape, and anything shaped like one); a redirect is a 502
// naming neither its target nor the upstream, and counts against the deployment.
func TestUpstreamErrorScrubsAndRefusesRedirects(t *testing.T) {
	body := []byte(`{"error":{"message":"No access for cfg-key-0123 with Bearer sk-abcdefghijklmnop1234","type":"invalid_request_error","code":"no_access"}}`)
	e := upstreamError(http.StatusBadRequest, body, "cfg-key-0123")
	if e.Status != 400 || e.API.Message != "No access for [REDACTED] with Bearer [REDACTED]" {
		t.Errorf("400: %d %q", e.Status, e.API.Message)
	}
	for _, status := range []int{301, 302, 307, 308} {
		e := upstreamError(status, []byte(`{"error":{"message":"moved to http://10.0.0.9/steal"}}`))
		if e.Status != http.StatusBadGateway || *e.API.Code != "upstream_redirect" || strings.Contains(e.API.Message, "10.0.0.9") {
			t.Errorf("%d: %d %s %q", status, e.Status, *e.API.Code, e.API.Message)
		}
		if !providers.UpstreamFault(status) {
			t.Errorf("%d is not counted against the deployment", status)
		}
	}
}

// keyedFixture is a fixture upstream holding a configured key.
type keyedFixture struct {
	*fixtureProvider
	key string
}

func (k keyedFixture) Credentials() []string { return []string{k.key} }

// TestStreamErrorEventScrubbed: an error event inside a stream reaches the client with its
// message, less the provider's key and anything shaped like a credential.
func TestStreamErrorEventScrubbed(t *testing.T) {
	sse := "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"event: error\ndata: {\"error\":{\"message\":\"quota of my-configured-key-42 exhausted; key=AIzaSyA1234567890abcdefghijklmnopqrstu\",\"type\":\"server_error\"}}\n\n"
	g, key, _ := newTestGateway(t, keyedFixture{&fixtureProvider{sse: []byte(sse)}, "my-configured-key-42"})
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	_, got := postChat(t, srv, key, `{"model":"m","stream":true,"messages":[]}`)
	want := "event: error\ndata: {\"error\":{\"message\":\"quota of [REDACTED] exhausted; key=[REDACTED]\",\"type\":\"server_error\"}}\n\n"
	if !strings.HasSuffix(string(got), want) {
		t.Errorf("stream ends with\n%q\nwant\n%q", got, want)
	}
}
