package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/openai"
	"github.com/llmgate/llmgate/providers/outbound"
)

// preparingProvider does prep before its HTTP call, as a translating adapter translates the
// request first, then POSTs with client.
type preparingProvider struct {
	prep   func(ctx context.Context)
	client *http.Client
	url    string
}

func (p *preparingProvider) Do(ctx context.Context, _ *providers.Request) (*http.Response, error) {
	p.prep(ctx)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, nil)
	if err != nil {
		return nil, err
	}
	return p.client.Do(hr)
}

// TestConnectClockStartsAtTheDial: the connect timeout bounds getting a connection, from the
// moment the transport starts getting one; the work an adapter does before (translating the
// request) is bounded only by the total timeout.
func TestConnectClockStartsAtTheDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	sleep := func(d time.Duration) func(context.Context) {
		return func(ctx context.Context) {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
	}
	x := &exchange{ctx: context.Background()}
	attempt := func(p providers.Provider, to providers.Timeouts) error {
		to.FirstByte, to.Idle = 10*time.Second, 10*time.Second
		resp, _, err := x.call(&providers.Deployment{Provider: p, Timeouts: to}, &providers.Request{})
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}

	t.Run("slow preparation is not a connect timeout", func(t *testing.T) {
		p := &preparingProvider{prep: sleep(500 * time.Millisecond), client: &http.Client{Transport: tr}, url: srv.URL}
		if err := attempt(p, providers.Timeouts{Connect: 100 * time.Millisecond, Total: 20 * time.Second}); err != nil {
			t.Fatalf("a call whose preparation outlasted the connect timeout failed: %v", err)
		}
	})
	t.Run("a dial that hangs is a connect timeout", func(t *testing.T) {
		// The transport may go on dialing for its pool after the attempt gives up: the dial also
		// ends with the subtest, so no goroutine outlives it.
		testOver := make(chan struct{})
		defer close(testOver)
		hang := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-testOver:
				return nil, errors.New("test over")
			}
		}}
		p := &preparingProvider{prep: func(context.Context) {}, client: &http.Client{Transport: hang}, url: srv.URL}
		if err := attempt(p, providers.Timeouts{Connect: 100 * time.Millisecond, Total: 20 * time.Second}); !errors.Is(err, errConnectTimeout) {
			t.Fatalf("err = %v, want the connect timeout", err)
		}
	})
	t.Run("preparation stays under the total timeout", func(t *testing.T) {
		p := &preparingProvider{prep: sleep(time.Minute), client: &http.Client{Transport: tr}, url: srv.URL}
		if err := attempt(p, providers.Timeouts{Connect: 20 * time.Second, Total: 200 * time.Millisecond}); !errors.Is(err, errTotalTimeout) {
			t.Fatalf("err = %v, want the total timeout", err)
		}
	})
}

// countedUpstream is a loopback upstream serving h that counts the connections it accepts; it
// closes when the test ends.
func countedUpstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(h)
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	return up, &conns
}

// TestRefusedDialIsAConnectError: a deployment whose address the outbound policy refuses is
// never connected to; the attempt is a connection failure charged to the deployment, with a
// reason that names the policy and not the address, and the client gets the gateway's 502.
func TestRefusedDialIsAConnectError(t *testing.T) {
	up, conns := countedUpstream(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") })
	p, err := openai.New(openai.Options{BaseURL: up.URL + "/v1"}) // the default policy: public addresses only
	if err != nil {
		t.Fatal(err)
	}
	g, key, _ := newTestGateway(t, p)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	status, body := postChat(t, srv, key, `{"model":"m","messages":[]}`)
	if status != http.StatusBadGateway || strings.Contains(string(body), "127.0.0.1") || conns.Load() != 0 {
		t.Errorf("HTTP %d %s; %d connections reached the upstream", status, body, conns.Load())
	}
	ds := g.Deployments()
	if len(ds) != 1 || ds[0].Status.Failed != 1 || ds[0].Status.LastFailure == nil ||
		ds[0].Status.LastFailure.Reason != "address refused by the outbound policy" {
		t.Errorf("deployment state %+v", ds)
	}
}

// TestUpstreamConnectionKept: whole answers and streams, one after the other, go over one kept
// connection to a plain-HTTP upstream: the relay reads each answer to its end, which is what
// gives the connection back to the pool.
func TestUpstreamConnectionKept(t *testing.T) {
	up, conns := countedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range []string{
			`{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}`,
			`{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{"id":"c","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`,
			`[DONE]`,
		} {
			io.WriteString(w, "data: "+ev+"\n\n")
			w.(http.Flusher).Flush()
		}
	})
	p, err := openai.New(openai.Options{BaseURL: up.URL + "/v1", Outbound: outbound.Policy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseIdleConnections()
	g, key, _ := newTestGateway(t, p)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	for i := range 6 {
		stream := i%2 == 1
		status, body := postChat(t, srv, key, fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":%v}`, stream))
		if status != 200 || !strings.Contains(string(body), "hi") {
			t.Fatalf("request %d (stream %v): HTTP %d %s", i, stream, status, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 6 requests in a row, want 1", n)
	}
}
