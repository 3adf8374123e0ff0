package providers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
)

// TestProbe: a probe sends one minimal chat request through the adapter and reads the reply; an
// upstream error comes back with the provider's credential removed.
func TestProbe(t *testing.T) {
	const key = "sk-probe-credential-0123456789"
	var gotBody string
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"bad key `+key+`","type":"invalid_request_error"}}`)
			return
		}
		io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}]}`)
	}))
	defer srv.Close()
	p, err := openai.New(openai.Options{BaseURL: srv.URL + "/v1", APIKey: key, Outbound: outbound.Policy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	d := &providers.Deployment{ID: "t/m", ProviderName: "t", Model: "m", Provider: p}
	r := providers.Probe(context.Background(), d, "", 5*time.Second)
	if !r.OK() || r.Status != 200 || r.Answer != "pong" || r.Latency <= 0 {
		t.Errorf("healthy probe = %+v", r)
	}
	if !strings.Contains(gotBody, `"model":"m"`) || !strings.Contains(gotBody, `"max_tokens":1`) {
		t.Errorf("probe body = %s", gotBody)
	}
	fail = true
	r = providers.Probe(context.Background(), d, "", 5*time.Second)
	if r.OK() || r.Status != 401 || r.Err == nil || strings.Contains(r.Err.Error(), key) || !strings.Contains(r.Err.Error(), "bad key") {
		t.Errorf("failing probe = %+v", r)
	}
}
