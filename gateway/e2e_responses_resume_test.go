package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
)

// Resuming a Responses stream: GET /v1/responses/{id}?stream=true&starting_after=N goes to the
// deployment holding the response with its query (the Responses API's own parameters), and the
// events come back one by one, with their event lines, as the upstream sends them. A response the
// gateway keeps itself (translated) is replayed from the store as the same event stream. Neither
// is metered by tokens: the record is the retrieval's, as for a GET without stream.

// resumeUpstream answers POST /v1/responses with the recorded whole answer (id resp_fixture1),
// and GET /v1/responses/resp_fixture1 with two events, then, once release is closed, the
// terminal event; it keeps the query of each GET.
type resumeUpstream struct {
	srv     *httptest.Server
	release chan struct{}
	mu      sync.Mutex
	queries []string
}

func newResumeUpstream(t *testing.T) *resumeUpstream {
	t.Helper()
	whole, err := os.ReadFile("testdata/responses/text.json")
	if err != nil {
		t.Fatal(err)
	}
	u := &resumeUpstream{release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(whole)
			return
		}
		u.mu.Lock()
		u.queries = append(u.queries, r.URL.RawQuery)
		u.mu.Unlock()
		if r.URL.Query().Get("stream") != "true" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(whole)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Query().Get("starting_after") == "8" { // after the last event: nothing to replay
			return
		}
		for _, ev := range []string{
			`event: response.output_text.delta` + "\n" + `data: {"type":"response.output_text.delta","sequence_number":6,"item_id":"msg_1","output_index":1,"content_index":0,"delta":" friend."}` + "\n\n",
			`event: response.output_text.done` + "\n" + `data: {"type":"response.output_text.done","sequence_number":7,"item_id":"msg_1","output_index":1,"content_index":0,"text":"Hello there, friend."}` + "\n\n",
		} {
			_, _ = io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		}
		done := gjson.GetBytes(whole, "@ugly").Raw
		_, _ = io.WriteString(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":8,\"response\":"+done+"}\n\n")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func TestResponsesResumeStream(t *testing.T) {
	up := newResumeUpstream(t)
	e := newEnv(t, withPriceLookup(fixedPrices{respPrice}), withRouting([]namedProvider{openaiProvider("resume", up.srv.URL)},
		providers.ModelConfig{Name: "resp", Deployments: []providers.DeploymentConfig{{Provider: "resume", Model: "fixture-model"}}}))
	status, created, _ := e.respond(e.key, `{"model":"resp","input":"hello"}`)
	if status != 200 || created["id"] != "resp_fixture1" {
		t.Fatalf("create: %d %v", status, created)
	}
	query := "stream=true&starting_after=5&include[]=reasoning.encrypted_content&api-version=evil"
	req, _ := http.NewRequest(http.MethodGet, e.baseURL+"/responses/resp_fixture1?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET ?stream=true: %d %q %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	// The first events arrive while the upstream still holds back its last: relayed as they come.
	br := bufio.NewReader(res.Body)
	first := readOneEvent(t, br)
	if first.name != "response.output_text.delta" || first.data["sequence_number"] != float64(6) {
		t.Fatalf("first event %q %v, want the delta numbered 6", first.name, first.data)
	}
	close(up.release)
	rest := readRespEvents(t, br)
	if len(rest) != 2 || rest[0].name != "response.output_text.done" || rest[1].name != "response.completed" {
		t.Fatalf("then %d events %v, want output_text.done and response.completed", len(rest), rest)
	}
	up.mu.Lock()
	got := up.queries[len(up.queries)-1]
	up.mu.Unlock()
	q, _ := url.ParseQuery(got)
	if q.Get("stream") != "true" || q.Get("starting_after") != "5" || q.Get("include[]") != "reasoning.encrypted_content" || q.Has("api-version") {
		t.Errorf("upstream query %q: want stream, starting_after and include[] forwarded, nothing else", got)
	}
	r := e.usageFor(res.Header.Get("X-Request-Id"))
	if r.Endpoint != "responses" || r.Status != 200 || !r.Stream || r.PromptTokens != 0 || r.CompletionTokens != 0 || r.UsageSource != "" || r.CostPicoUSD != nil {
		t.Errorf("resume record: endpoint %q status %d stream %v tokens %d/%d source %q cost %v; want a streamed retrieval, no tokens, no cost",
			r.Endpoint, r.Status, r.Stream, r.PromptTokens, r.CompletionTokens, r.UsageSource, r.CostPicoUSD)
	}
	// Resumed after the last event: an empty stream, which is a clean end, not a cut.
	req, _ = http.NewRequest(http.MethodGet, e.baseURL+"/responses/resp_fixture1?stream=true&starting_after=8", nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	res2, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	if r := e.usageFor(res2.Header.Get("X-Request-Id")); res2.StatusCode != 200 || len(tail) != 0 || r.Status != 200 {
		t.Errorf("resumed after the end: HTTP %d %q, record %d; want an empty stream, 200", res2.StatusCode, tail, r.Status)
	}
	// Bad resume parameters: a 400 before any upstream call.
	for _, bad := range []string{"stream=maybe", "stream=true&starting_after=x"} {
		if status, out, _ := e.call(http.MethodGet, "/responses/resp_fixture1?"+bad, e.key); status != 400 || errCode(out) != "invalid_value" {
			t.Errorf("GET ?%s: %d %v, want 400 invalid_value", bad, status, out)
		}
	}
}

// A translated response, kept by the gateway, is replayed as the event stream of a POST with
// stream:true would have been, from starting_after on, without an upstream call.
func TestResponsesTranslatedResumeReplays(t *testing.T) {
	te := newTranslatedEnv(t)
	status, created, _ := te.respond(te.key, `{"model":"seek","input":"hello"}`)
	if status != 200 {
		t.Fatalf("create: %d %v", status, created)
	}
	id := created["id"].(string)
	before := te.seekA.Stats().Requests
	get := func(query string) (*http.Response, []respEvent) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, te.baseURL+"/responses/"+id+"?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+te.key)
		res, err := te.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		return res, readRespEvents(t, res.Body)
	}
	res, all := get("stream=true")
	if res.StatusCode != 200 || len(all) < 6 {
		t.Fatalf("replay: %d, %d events", res.StatusCode, len(all))
	}
	text := ""
	for i, ev := range all {
		if ev.name != ev.data["type"] || ev.data["sequence_number"] != float64(i) {
			t.Errorf("event %d: %q type %v sequence_number %v", i, ev.name, ev.data["type"], ev.data["sequence_number"])
		}
		if ev.name == "response.output_text.delta" {
			text += ev.data["delta"].(string)
		}
	}
	last := all[len(all)-1]
	if all[0].name != "response.created" || last.name != "response.completed" || !jsonEqual(last.data["response"], created) {
		t.Errorf("replay from %q to %q; want response.created … response.completed with the kept response", all[0].name, last.name)
	}
	if text != outputText(created) {
		t.Errorf("replayed text %q, want %q", text, outputText(created))
	}
	_, tail := get("stream=true&starting_after=3")
	if len(tail) != len(all)-4 || tail[0].data["sequence_number"] != float64(4) {
		t.Errorf("starting_after=3: %d events from %v, want %d from 4", len(tail), tail[0].data["sequence_number"], len(all)-4)
	}
	if n := te.seekA.Stats().Requests - before; n != 0 {
		t.Errorf("the upstream got %d requests for a kept response", n)
	}
	r := te.usageFor(res.Header.Get("X-Request-Id"))
	if r.Status != 200 || !r.Stream || r.PromptTokens != 0 || r.UsageSource != "" || r.CostPicoUSD != nil {
		t.Errorf("replay record: status %d stream %v tokens %d source %q cost %v", r.Status, r.Stream, r.PromptTokens, r.UsageSource, r.CostPicoUSD)
	}
}

// readOneEvent reads the next event of a Responses stream.
func readOneEvent(t *testing.T, br *bufio.Reader) respEvent {
	t.Helper()
	var ev respEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before an event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
		case line == "" && ev.data != nil:
			return ev
		}
	}
}
