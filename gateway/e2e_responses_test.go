package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/billing/tokens"
	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/store"
)

// The Responses API relayed to deployments that speak it (OpenAI, Azure, the mock): the body goes
// upstream byte for byte but for the model, every event comes back with its event line, usage is
// read from the final Response, and a follow-up goes back to the deployment that holds its
// previous response.

// fixedPrices prices every model alike.
type fixedPrices struct{ p billing.Price }

func (f fixedPrices) Lookup(model string) (billing.Price, bool) {
	p := f.p
	p.Model = model
	return p, true
}

var respPrice = billing.Price{InputPerM: 2_000_000, OutputPerM: 8_000_000, CachedInputPerM: 500_000, Version: "test"}

// withPriceLookup sets the gateway's price lookup as it is.
func withPriceLookup(p gateway.PriceLookup) envOption {
	return func(c *envConfig) { c.priceLookup = p }
}

// fixtureUpstream answers POST /v1/responses with the recorded fixtures of testdata/responses,
// event by event, and keeps the requests it got.
type fixtureUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []fixtureRequest
}

type fixtureRequest struct {
	method, path string
	body         []byte
}

func newFixtureUpstream(t *testing.T) *fixtureUpstream {
	t.Helper()
	whole, err := os.ReadFile("testdata/responses/text.json")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := os.ReadFile("testdata/responses/text.sse")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixtureUpstream{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, fixtureRequest{r.Method, r.URL.Path, b})
		f.mu.Unlock()
		if r.URL.Path != "/v1/responses" {
			http.Error(w, `{"error":{"message":"no","type":"invalid_request_error","param":null,"code":null}}`, http.StatusNotFound)
			return
		}
		if !bytes.Contains(b, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(whole)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range bytes.SplitAfter(stream, []byte("\n\n")) {
			if len(ev) == 0 {
				continue
			}
			_, _ = w.Write(ev)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixtureUpstream) requests() []fixtureRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fixtureRequest(nil), f.reqs...)
}

// fixtureEnv is a gateway whose model "resp" is served by an openai-type provider in front of a
// fixture upstream, with every model priced at respPrice.
func fixtureEnv(t *testing.T) (*env, *fixtureUpstream) {
	fx := newFixtureUpstream(t)
	e := newEnv(t, withPriceLookup(fixedPrices{respPrice}), withRouting([]namedProvider{openaiProvider("fix", fx.srv.URL)},
		providers.ModelConfig{Name: "resp", Deployments: []providers.DeploymentConfig{{Provider: "fix", Model: "fixture-model"}}}))
	return e, fx
}

func wantCost(t *testing.T, r store.UsageRecord, u billing.Usage) {
	t.Helper()
	cost, err := billing.Cost(respPrice, u)
	if err != nil {
		t.Fatal(err)
	}
	if r.CostPicoUSD == nil || *r.CostPicoUSD != cost {
		t.Errorf("cost %v pUSD, want %d", r.CostPicoUSD, cost)
	}
}

func TestResponsesRelayWhole(t *testing.T) {
	e, fx := fixtureEnv(t)
	body := `{"model":"resp","input":[{"role":"user","content":[{"type":"input_text","text":"Say hello"}]}],"store":true,"x_unknown":{"a":[1,2]},"max_output_tokens":50}`
	resp := e.post(context.Background(), "/responses", e.key, []byte(body))
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	want, _ := os.ReadFile("testdata/responses/text.json")
	if !bytes.Equal(got, want) {
		t.Errorf("answer changed on the way:\n got %s\nwant %s", got, want)
	}
	reqs := fx.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/v1/responses" {
		t.Fatalf("upstream got %+v, want one POST /v1/responses", reqs)
	}
	if up, wantUp := string(reqs[0].body), strings.Replace(body, `"model":"resp"`, `"model":"fixture-model"`, 1); up != wantUp {
		t.Errorf("upstream body\n got %s\nwant %s", up, wantUp)
	}
	r := e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.Endpoint != "responses" || r.Status != 200 || r.UsageSource != "provider" || r.Deployment != "fix/fixture-model" {
		t.Errorf("record endpoint %q status %d source %q deployment %q", r.Endpoint, r.Status, r.UsageSource, r.Deployment)
	}
	if r.PromptTokens != 12 || r.CompletionTokens != 9 || r.CachedTokens != 3 || r.ReasoningTokens != 5 {
		t.Errorf("tokens %d/%d cached %d reasoning %d, want 12/9 cached 3 reasoning 5", r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens)
	}
	wantCost(t, r, billing.Usage{Prompt: 12, Completion: 9, Cached: 3, Reasoning: 5})
}

func TestResponsesRelayStream(t *testing.T) {
	e, fx := fixtureEnv(t)
	body := `{"model":"resp","input":"Say hello","stream":true}`
	resp := e.post(context.Background(), "/responses", e.key, []byte(body))
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	want, _ := os.ReadFile("testdata/responses/text.sse")
	if !bytes.Equal(got, want) {
		t.Errorf("events changed on the way:\n got %s\nwant %s", got, want)
	}
	if reqs := fx.requests(); len(reqs) != 1 || string(reqs[0].body) != strings.Replace(body, `"resp"`, `"fixture-model"`, 1) {
		t.Errorf("upstream got %+v: want the body with only the model changed (no stream_options added)", reqs)
	}
	r := e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.Endpoint != "responses" || !r.Stream || r.Status != 200 || r.UsageSource != "provider" {
		t.Errorf("record endpoint %q stream %v status %d source %q", r.Endpoint, r.Stream, r.Status, r.UsageSource)
	}
	if r.PromptTokens != 12 || r.CompletionTokens != 9 || r.CachedTokens != 3 || r.ReasoningTokens != 5 {
		t.Errorf("tokens %d/%d cached %d reasoning %d, want 12/9 cached 3 reasoning 5", r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens)
	}
	wantCost(t, r, billing.Usage{Prompt: 12, Completion: 9, Cached: 3, Reasoning: 5})
}

// respEvent is one event as a client reads it.
type respEvent struct {
	name string
	data map[string]any
	at   time.Time
}

// readRespEvents reads the events of a Responses stream as they arrive.
func readRespEvents(t *testing.T, r io.Reader) []respEvent {
	t.Helper()
	var out []respEvent
	var cur respEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
		case line == "":
			cur.at = time.Now()
			out = append(out, cur)
			cur = respEvent{}
		}
	}
	return out
}

// The mock's events come through one by one as the mock sends them, each with its event line
// equal to the data's type and sequence numbers in order.
func TestResponsesStreamEventByEvent(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	resp := e.post(context.Background(), "/responses", e.key, []byte(`{"model":"slow","input":"hi","stream":true}`))
	defer resp.Body.Close()
	evs := readRespEvents(t, resp.Body)
	if resp.StatusCode != 200 || len(evs) < 3 {
		t.Fatalf("status %d, %d events", resp.StatusCode, len(evs))
	}
	var first, deltas int
	for i, ev := range evs {
		if ev.name != ev.data["type"] || ev.data["sequence_number"] != float64(i) {
			t.Errorf("event %d: event line %q, type %v, sequence_number %v", i, ev.name, ev.data["type"], ev.data["sequence_number"])
		}
		if ev.name == "response.output_text.delta" {
			if deltas == 0 {
				first = i
			}
			deltas++
		}
	}
	if evs[0].name != "response.created" || evs[len(evs)-1].name != "response.completed" || deltas != 10 {
		t.Errorf("first %q, last %q, %d deltas; want response.created … 10 deltas … response.completed", evs[0].name, evs[len(evs)-1].name, deltas)
	}
	// 10 deltas 200 ms apart: the first must arrive long before the last.
	if gap := evs[len(evs)-1].at.Sub(evs[first].at); gap < time.Second {
		t.Errorf("first delta %v before the end (after %v): the stream was buffered", gap, evs[first].at.Sub(start))
	}
}

// A stream the upstream drops is recorded as partial: the prompt and the delta text the client
// got; a complete answer without usage is estimated. Both count with the tokenizer.
func TestResponsesUsageWithoutProviderCounts(t *testing.T) {
	e := newEnv(t)
	est, err := tokens.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		source     string
		answer     string
	}{
		{"cut stream", `{"model":"gpt-test","input":"hello there","stream":true,"mock":{"fail_after":3}}`, 502, "partial", mockAnswer(3)},
		{"stream without usage", `{"model":"gpt-test","input":"hello there","stream":true,"mock":{"no_usage":true}}`, 200, "estimated", mockAnswer(20)},
		{"whole without usage", `{"model":"gpt-test","input":"hello there","mock":{"no_usage":true}}`, 200, "estimated", mockAnswer(20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.post(context.Background(), "/responses", e.key, []byte(tc.body))
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
			if tc.status == 502 && !strings.Contains(string(raw), "event: error\n") {
				t.Errorf("a cut stream must end with an error event: %s", raw)
			}
			r := e.usageFor(resp.Header.Get("X-Request-Id"))
			wantPrompt := est.Prompt("responses", "up-model", []byte(tc.body))
			wantCompletion := est.Text("up-model", tc.answer)
			if r.Status != tc.status || r.UsageSource != tc.source || r.PromptTokens != wantPrompt || r.CompletionTokens != wantCompletion {
				t.Errorf("record status %d source %q tokens %d/%d, want %d %q %d/%d", r.Status, r.UsageSource, r.PromptTokens,
					r.CompletionTokens, tc.status, tc.source, wantPrompt, wantCompletion)
			}
		})
	}
}

// respond posts a Responses request and decodes the answer.
func (e *env) respond(key, body string) (int, map[string]any, store.UsageRecord) {
	e.t.Helper()
	resp := e.post(context.Background(), "/responses", key, []byte(body))
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, e.usageFor(resp.Header.Get("X-Request-Id"))
}

// call sends a request without a body to a public path.
func (e *env) call(method, path, key string) (int, map[string]any, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.baseURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header.Get("X-Request-Id")
}

func errCode(body map[string]any) string {
	m, _ := body["error"].(map[string]any)
	s, _ := m["code"].(string)
	return s
}

// Follow-ups go to the deployment that produced the previous response (the mock knows only its
// own ids and answers 400 for another's); when that deployment is gone, the follow-up fails
// clearly instead of going to one where the id is unknown.
func TestResponsesFollowUpPinned(t *testing.T) {
	a, b := mock.NewHandler(mock.Options{}), mock.NewHandler(mock.Options{})
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	t.Cleanup(sa.Close)
	t.Cleanup(sb.Close)
	pa, pb := openaiProvider("pa", sa.URL), openaiProvider("pb", sb.URL)
	pair := providers.ModelConfig{Name: "pair", Deployments: []providers.DeploymentConfig{{ID: "dep-a", Provider: "pa", Model: "m"}, {ID: "dep-b", Provider: "pb", Model: "m"}}}
	e := newEnv(t, withRouting([]namedProvider{pa, pb}, pair))

	status, first, rec := e.respond(e.key, `{"model":"pair","input":"hello"}`)
	if status != 200 {
		t.Fatalf("create: %d %v", status, first)
	}
	owner := rec.Deployment
	prev := first["id"].(string)
	for i := range 8 {
		stream := i%2 == 1
		body := `{"model":"pair","input":"and then?","previous_response_id":"` + prev + `"`
		if stream {
			resp := e.post(context.Background(), "/responses", e.key, []byte(body+`,"stream":true}`))
			evs := readRespEvents(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(evs) == 0 || evs[len(evs)-1].name != "response.completed" {
				t.Fatalf("follow-up %d: status %d, %d events", i, resp.StatusCode, len(evs))
			}
			if r := e.usageFor(resp.Header.Get("X-Request-Id")); r.Deployment != owner {
				t.Fatalf("follow-up %d went to %s, want %s", i, r.Deployment, owner)
			}
			prev = evs[len(evs)-1].data["response"].(map[string]any)["id"].(string)
			continue
		}
		status, out, r := e.respond(e.key, body+"}")
		if status != 200 || r.Deployment != owner {
			t.Fatalf("follow-up %d: status %d on %s (want 200 on %s): %v", i, status, r.Deployment, owner, out)
		}
		prev = out["id"].(string)
	}

	// The owning deployment is disabled (503: it may come back), then leaves the routing table
	// (400): the follow-up fails, and the other deployment never sees it.
	other := map[string]string{"dep-a": "dep-b", "dep-b": "dep-a"}[owner]
	otherHandler := map[string]*mock.Handler{"dep-a": a, "dep-b": b}[other]
	before := otherHandler.Stats().Requests
	provs := map[string]providers.Provider{"pa": pa.p, "pb": pb.p}
	off := false
	disabled, err := providers.NewRouter([]providers.ModelConfig{pair}, providers.RoutingConfig{}, provs,
		map[string]providers.Override{owner: {Enabled: &off}})
	if err != nil {
		t.Fatal(err)
	}
	left := pair
	left.Deployments = []providers.DeploymentConfig{pair.Deployments[0]}
	if other == "dep-b" {
		left.Deployments = []providers.DeploymentConfig{pair.Deployments[1]}
	}
	removed, err := providers.NewRouter([]providers.ModelConfig{left}, providers.RoutingConfig{}, provs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		router *providers.Router
		status int
	}{{"disabled", disabled, http.StatusServiceUnavailable}, {"removed", removed, http.StatusBadRequest}} {
		e.gw.SetRouter(tc.router)
		status, out, r := e.respond(e.key, `{"model":"pair","input":"still there?","previous_response_id":"`+prev+`"}`)
		if status != tc.status || errCode(out) != "previous_response_unavailable" || r.Deployment != "" {
			t.Errorf("follow-up with its deployment %s: %d %v (deployment %q), want %d previous_response_unavailable",
				tc.name, status, out, r.Deployment, tc.status)
		}
	}
	if n := otherHandler.Stats().Requests; n != before {
		t.Errorf("the other deployment got %d requests for an id it does not hold", n-before)
	}
}

// GET and DELETE by id reach the deployment that holds the response; another tenant's key, or an
// id the gateway never produced, gets a 404 without any upstream call.
func TestResponsesByIDOwnerOnly(t *testing.T) {
	e := newEnv(t)
	status, created, _ := e.respond(e.key, `{"model":"gpt-test","input":"hello"}`)
	if status != 200 {
		t.Fatalf("create: %d %v", status, created)
	}
	id := created["id"].(string)
	stranger := e.newKey(keySpec{Name: "stranger", Tenant: "tenant-b"})
	before := e.up.Stats().Requests
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if status, out, _ := e.call(m, "/responses/"+id, stranger.Key); status != 404 || errCode(out) != "response_not_found" {
			t.Errorf("%s another tenant's response: %d %v, want 404 response_not_found", m, status, out)
		}
	}
	if status, out, _ := e.call(http.MethodGet, "/responses/resp_never_made", e.key); status != 404 || errCode(out) != "response_not_found" {
		t.Errorf("GET an unknown id: %d %v, want 404", status, out)
	}
	status, out, _ := e.respond(stranger.Key, `{"model":"gpt-test","input":"hi","previous_response_id":"`+id+`"}`)
	if status != 400 || errCode(out) != "previous_response_not_found" {
		t.Errorf("follow-up on another tenant's response: %d %v, want 400 previous_response_not_found", status, out)
	}
	if n := e.up.Stats().Requests - before; n != 0 {
		t.Errorf("the upstream got %d requests for ids the caller does not own", n)
	}

	status, got, reqID := e.call(http.MethodGet, "/responses/"+id, e.key)
	if status != 200 || got["id"] != id || got["status"] != "completed" {
		t.Errorf("GET own response: %d %v", status, got)
	}
	r := e.usageFor(reqID)
	if r.Endpoint != "responses" || r.Status != 200 || r.Deployment != "up/up-model" || r.PromptTokens != 0 || r.CompletionTokens != 0 || r.UsageSource != "" || r.CostPicoUSD != nil {
		t.Errorf("GET record: endpoint %q status %d deployment %q tokens %d/%d source %q cost %v; want no tokens, no cost",
			r.Endpoint, r.Status, r.Deployment, r.PromptTokens, r.CompletionTokens, r.UsageSource, r.CostPicoUSD)
	}
	if status, got, _ := e.call(http.MethodDelete, "/responses/"+id, e.key); status != 200 || got["id"] != id || got["deleted"] != true {
		t.Errorf("DELETE own response: %d %v", status, got)
	}
	if status, out, _ := e.call(http.MethodGet, "/responses/"+id, e.key); status != 404 || errCode(out) != "response_not_found" {
		t.Errorf("GET after DELETE: %d %v, want 404", status, out)
	}
}

// Bad Responses bodies get a 400 in OpenAI's shape without an upstream call, and take nothing
// of the key's request rate.
func TestResponsesBadInput(t *testing.T) {
	e := newEnv(t)
	tiny := e.newKey(keySpec{Name: "tiny", UserID: "tiny-bad", Tier: "tiny"}) // 2 requests a minute
	before := e.up.Stats().Requests
	for _, tc := range []struct{ body, code, param string }{
		{`{"model":"gpt-test","input":"hi"`, "invalid_json", ""},
		{`{"input":"hi"}`, "missing_model", "model"},
		{`{"model":"gpt-test","input":"hi","stream":"yes"}`, "invalid_type", "stream"},
		{`{"model":"gpt-test","input":"hi","max_output_tokens":0}`, "invalid_value", "max_output_tokens"},
		{`{"model":"gpt-test","input":"hi","max_output_tokens":"many"}`, "invalid_value", "max_output_tokens"},
		{`{"model":"gpt-test","input":"hi","previous_response_id":7}`, "invalid_type", "previous_response_id"},
		{`{"model":"gpt-test","input":"hi","previous_response_id":"resp_unknown"}`, "previous_response_not_found", "previous_response_id"},
	} {
		resp := e.post(context.Background(), "/responses", tiny.Key, []byte(tc.body))
		b := readBodyError(t, resp)
		if resp.StatusCode != 400 || b.Code != tc.code || b.Param != tc.param {
			t.Errorf("%s: %d %+v, want 400 %s (param %q)", tc.body, resp.StatusCode, b, tc.code, tc.param)
		}
	}
	if n := e.up.Stats().Requests - before; n != 0 {
		t.Errorf("the upstream got %d bad requests", n)
	}
	for i := range 2 {
		if status, _, _ := e.respond(tiny.Key, `{"model":"gpt-test","input":"hi"}`); status != 200 {
			t.Fatalf("good request %d after the bad ones: %d", i, status)
		}
	}
}

// slowRoutes is the store with every batch of route writes taking a while, as under load.
type slowRoutes struct{ gateway.ResponseRoutes }

func (s slowRoutes) PutResponseRoutes(ctx context.Context, rs []store.ResponseRoute) error {
	time.Sleep(200 * time.Millisecond)
	return s.ResponseRoutes.PutResponseRoutes(ctx, rs)
}

// Many streams end at once and each client sends its follow-up the moment it reads the terminal
// event, while the store takes its time: every follow-up finds its route (the routes of
// concurrent answers are committed together, but each before its answer's end leaves) and goes
// to the deployment that holds it.
func TestResponsesFollowUpsRightAfterConcurrentStreams(t *testing.T) {
	a, b := mock.NewHandler(mock.Options{}), mock.NewHandler(mock.Options{})
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	t.Cleanup(sa.Close)
	t.Cleanup(sb.Close)
	pa, pb := openaiProvider("pa", sa.URL), openaiProvider("pb", sb.URL)
	pair := providers.ModelConfig{Name: "pair", Deployments: []providers.DeploymentConfig{{ID: "dep-a", Provider: "pa", Model: "m"}, {ID: "dep-b", Provider: "pb", Model: "m"}}}
	e := newEnv(t, withRouting([]namedProvider{pa, pb}, pair), func(c *envConfig) {
		c.routes = func(r gateway.ResponseRoutes) gateway.ResponseRoutes { return slowRoutes{r} }
	})

	post := func(body string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, e.baseURL+"/responses", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+e.key)
		req.Header.Set("Content-Type", "application/json")
		return e.http.Do(req)
	}
	// chain streams a response and, as soon as its response.completed arrives, follows it up;
	// it returns the request ids of both.
	chain := func() (first, second string, err error) {
		resp, err := post(`{"model":"pair","input":"hello","stream":true}`)
		if err != nil {
			return "", "", err
		}
		defer resp.Body.Close()
		first = resp.Header.Get("X-Request-Id")
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		id, name := "", ""
		for id == "" && sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && name == "response.completed":
				var ev struct {
					Response struct{ ID string } `json:"response"`
				}
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
					return first, "", err
				}
				id = ev.Response.ID
			}
		}
		if id == "" {
			return first, "", fmt.Errorf("stream %s (status %d) ended without response.completed", first, resp.StatusCode)
		}
		next, err := post(`{"model":"pair","input":"and then?","previous_response_id":"` + id + `"}`)
		if err != nil {
			return first, "", err
		}
		defer next.Body.Close()
		out, _ := io.ReadAll(next.Body)
		if next.StatusCode != http.StatusOK {
			return first, "", fmt.Errorf("follow-up of %s right after its stream: %d %s", id, next.StatusCode, out)
		}
		return first, next.Header.Get("X-Request-Id"), nil
	}

	const n = 24
	type pairIDs struct{ first, second string }
	ids := make(chan pairIDs, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, second, err := chain()
			if err != nil {
				errs <- err
				return
			}
			ids <- pairIDs{first, second}
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Error(err)
	}
	for p := range ids {
		if owner, r := e.usageFor(p.first).Deployment, e.usageFor(p.second); r.Deployment != owner {
			t.Errorf("follow-up %s went to %s, its response was made on %s", p.second, r.Deployment, owner)
		}
	}
}
