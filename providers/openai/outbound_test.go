package openai

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/outbound"
)

// TestRedirectNotFollowed: an upstream's 3xx comes back as it is. Nothing reaches the host it
// names: not the body, not the key (Authorization or Azure's api-key), not the configured
// headers, which net/http would copy to a redirect target on the same host name.
func TestRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	var leaked atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		leaked.Store(r.Header.Clone())
		io.WriteString(w, `{"stolen":true}`)
	}))
	defer other.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer up.Close()
	for _, o := range []Options{
		{BaseURL: up.URL + "/v1", APIKey: "sk-secret-openai", Headers: map[string]string{"X-Org-Secret": "org-secret"}},
		{BaseURL: up.URL, APIKey: "azure-secret", Azure: true, AzureAPIVersion: "2024-10-21", Headers: map[string]string{"X-Org-Secret": "org-secret"}},
	} {
		o.Outbound.AllowPrivate = true // the upstreams are on loopback
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: "m",
			Body: []byte(`{"model":"m"}`)})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p.CloseIdleConnections()
		if resp.StatusCode != http.StatusTemporaryRedirect || elsewhere.Load() != 0 {
			t.Errorf("azure=%v: HTTP %d %s; the redirect's target received %d requests (headers %v)",
				o.Azure, resp.StatusCode, body, elsewhere.Load(), leaked.Load())
		}
	}
}

// TestLoopbackDialPolicy: without an allowance an upstream on loopback is never connected to (the
// dial is refused before connect); allow_private_network or an allow list entry lets it through.
func TestLoopbackDialPolicy(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	do := func(o Options) (int, error) {
		o.BaseURL = srv.URL + "/v1"
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseIdleConnections()
		resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: "m", Body: []byte(`{}`)})
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if status, err := do(Options{}); err == nil || conns.Load() != 0 {
		t.Fatalf("default policy: HTTP %d, err %v, %d connections reached the loopback upstream; want a refused dial and none", status, err, conns.Load())
	}
	if status, err := do(Options{Outbound: outbound.Policy{AllowPrivate: true}}); err != nil || status != 200 {
		t.Errorf("allow_private_network: HTTP %d, %v", status, err)
	}
	before := conns.Load()
	if status, err := do(Options{Outbound: outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}); err != nil || status != 200 || conns.Load() != before+1 {
		t.Errorf("allow list: HTTP %d, %v", status, err)
	}
}
