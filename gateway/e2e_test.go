package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	openai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

func TestChatNonStream(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model:    "gpt-test",
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "say hello to the gateway"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// mock accounting: prompt = 3 + words per message; completion = 20 chunks × 1 token
	if resp.Usage.PromptTokens != 8 || resp.Usage.CompletionTokens != 20 {
		t.Errorf("usage = %+v, want prompt 8, completion 20", resp.Usage)
	}
	if len(resp.Choices) != 1 || len(strings.Fields(resp.Choices[0].Message.Content)) != 20 {
		t.Errorf("choices = %+v", resp.Choices)
	}
	reqs := e.up.Requests(1)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	if got := gjson.Get(reqs[0].Body, "model").String(); got != "up-model" {
		t.Errorf("upstream model = %q, want up-model", got)
	}
	if got := reqs[0].Headers["Authorization"]; got != "Bearer "+upstreamKey {
		t.Errorf("upstream Authorization = %v: the caller's key must not be forwarded", got)
	}
	recs := e.allUsage(1)
	if len(recs) != 1 {
		t.Fatalf("usage records = %d, want 1", len(recs))
	}
	r := recs[0]
	if r.Status != 200 || r.PromptTokens != 8 || r.CompletionTokens != 20 || r.UsageSource != "provider" ||
		r.Model != "gpt-test" || r.UpstreamModel != "up-model" || r.Provider != "up" || r.Stream || r.Endpoint != "chat/completions" {
		t.Errorf("usage record = %+v", r)
	}
}

func TestChatStreamHidesInjectedUsage(t *testing.T) {
	e := newEnv(t)
	for _, include := range []bool{false, true} {
		t.Run(map[bool]string{false: "client did not ask for usage", true: "client asked for usage"}[include], func(t *testing.T) {
			req := openai.ChatCompletionRequest{Model: "gpt-test", Stream: true,
				Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "stream please"}}}
			if include {
				req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
			}
			s, err := e.client(e.key).CreateChatCompletionStream(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var text strings.Builder
			var usage *openai.Usage
			for {
				c, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.Usage != nil {
					usage = c.Usage
					if len(c.Choices) != 0 {
						t.Errorf("usage chunk has choices")
					}
					continue
				}
				if len(c.Choices) == 0 {
					t.Fatalf("chunk without choices and without usage: %+v", c)
				}
				text.WriteString(c.Choices[0].Delta.Content)
			}
			if got := len(strings.Fields(text.String())); got != 20 {
				t.Errorf("streamed %d words, want 20", got)
			}
			if include != (usage != nil) {
				t.Fatalf("include_usage=%v but usage chunk seen=%v", include, usage != nil)
			}
			if include && (usage.PromptTokens != 5 || usage.CompletionTokens != 20) {
				t.Errorf("usage = %+v", usage)
			}
			up := e.up.Requests(1)[0].Body
			if !gjson.Get(up, "stream_options.include_usage").Bool() {
				t.Errorf("gateway did not ask the upstream for usage: %s", up)
			}
		})
	}
	for _, r := range e.allUsage(2) {
		if !r.Stream || r.PromptTokens != 5 || r.CompletionTokens != 20 || r.UsageSource != "provider" || r.Status != 200 || r.TTFTMS < 0 {
			t.Errorf("stream usage record = %+v", r)
		}
	}
}

// rawStream reads a raw SSE stream, noting when each event arrived.
type sseEvent struct {
	data string
	at   time.Time
}

func readEvents(t *testing.T, body io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, sseEvent{data: d, at: time.Now()})
		}
	}
	return out
}

func TestStreamIsNotBuffered(t *testing.T) {
	e := newEnv(t)
	// the "slow" upstream sends 10 content chunks 200 ms apart
	resp := e.post(context.Background(), "/chat/completions", e.key,
		[]byte(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs := readEvents(t, resp.Body)
	var content []sseEvent
	for _, ev := range evs {
		if gjson.Get(ev.data, "choices.0.delta.content").String() != "" {
			content = append(content, ev)
		}
	}
	if len(content) != 10 || evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("got %d content events (want 10), last %q", len(content), evs[len(evs)-1].data)
	}
	// Buffering would deliver everything at once at the end. The upstream spreads the 10 chunks
	// over 1.8 s: the first must arrive well before the last (the floor is 80 ms).
	if spread := content[9].at.Sub(content[0].at); spread < time.Second {
		t.Errorf("first content chunk arrived only %v before the last: the stream was buffered", spread)
	}
	// Coalesced chunks arrive microseconds apart; 10 ms leaves room for a late scheduler.
	for i := 1; i < len(content); i++ {
		if gap := content[i].at.Sub(content[i-1].at); gap < 10*time.Millisecond {
			t.Errorf("chunks %d and %d arrived %v apart: coalesced", i-1, i, gap)
		}
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	resp := e.post(ctx, "/chat/completions", e.key,
		[]byte(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	reqID := resp.Header.Get("X-Request-Id")
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // the first event arrived
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	gone := time.Now()
	waitFor(t, 2*time.Second, "the upstream request to be canceled", func() bool {
		s := e.slow.Stats()
		return s.Canceled == 1 && s.InFlight == 0
	})
	if d := time.Since(gone); d > time.Second {
		t.Errorf("upstream canceled %v after the client left, want within 1s", d)
	}
	r := e.usageFor(reqID)
	if r.Status != 499 || r.ErrorType != "client_closed" || r.UsageSource != "partial" {
		t.Errorf("usage record of a disconnected stream = %+v", r)
	}
}

func TestUpstreamFailureMidStreamEndsWithErrorEvent(t *testing.T) {
	e := newEnv(t)
	resp := e.post(context.Background(), "/chat/completions", e.key,
		[]byte(`{"model":"gpt-test","stream":true,"mock":{"fail_after":3},"messages":[{"role":"user","content":"hi"}]}`))
	defer resp.Body.Close()
	evs := readEvents(t, resp.Body)
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	last := evs[len(evs)-1].data
	if !gjson.Get(last, "error.message").Exists() || gjson.Get(last, "error.code").String() != "stream_interrupted" {
		t.Fatalf("last event = %q, want an SSE error event", last)
	}
	for _, ev := range evs {
		if ev.data == "[DONE]" {
			t.Error("an interrupted stream must not end with [DONE]")
		}
	}
	r := e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.Status != 502 || r.ErrorType != "upstream_stream_error" {
		t.Errorf("usage record = %+v", r)
	}
}

func TestBodyForwardedByteForByte(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"model":"gpt-test",  "messages":[{"role":"user","content":"hi","x_custom":{"nested":[1,2.50,"three"]}}],` +
		`"vendor_field":{"keep":true,"n":1e3},"temperature":0.7,"logit_bias":{"50256":-100}}`)
	resp := e.post(context.Background(), "/chat/completions", e.key, body)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want, _ := sjson.SetBytes(body, "model", "up-model")
	if got := e.up.Requests(1)[0].Body; got != string(want) {
		t.Errorf("upstream body changed beyond the model:\n got %s\nwant %s", got, want)
	}
}

func TestCompletionsEmbeddingsModels(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(e.key)
	comp, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "gpt-test", Prompt: "one two three", MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Usage.PromptTokens != 3 || comp.Usage.CompletionTokens != 5 || comp.Choices[0].FinishReason != "length" {
		t.Errorf("completion = %+v", comp)
	}
	emb, err := c.CreateEmbeddings(ctx, openai.EmbeddingRequest{Model: "gpt-test", Input: []string{"a b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 || emb.Usage.PromptTokens != 3 {
		t.Errorf("embeddings = %d vectors, usage %+v", len(emb.Data), emb.Usage)
	}
	models, err := c.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Models) != 4 {
		t.Errorf("models = %+v", models.Models)
	}
	limited := e.newKey(keySpec{Name: "limited", Models: []string{"other"}})
	lc := e.client(limited.Key)
	models, err = lc.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Models) != 1 || models.Models[0].ID != "other" {
		t.Errorf("allowlisted key lists %+v, want only other", models.Models)
	}
	if m, err := lc.GetModel(ctx, "other"); err != nil || m.ID != "other" {
		t.Errorf("GetModel(other) = %+v, %v", m, err)
	}
	var apiErr *openai.APIError
	if _, err := lc.GetModel(ctx, "gpt-test"); !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 404 {
		t.Errorf("GetModel of a model outside the allowlist: %v, want 404", err)
	}
	recs := e.allUsage(6)
	endpoints := map[string]int{}
	for _, r := range recs {
		endpoints[r.Endpoint]++
	}
	if endpoints["completions"] != 1 || endpoints["embeddings"] != 1 || endpoints["models"] != 4 {
		t.Errorf("usage records by endpoint = %v", endpoints)
	}
}

func TestRequestIDAndTraceparent(t *testing.T) {
	e := newEnv(t)
	const clientTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp := e.post(context.Background(), "/chat/completions", e.key,
		[]byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`),
		"X-Request-Id", "client-id-1", "Traceparent", clientTrace)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
		t.Fatalf("X-Request-Id = %q, want the gateway's own UUIDv7", id)
	}
	tp := resp.Header.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || tp == clientTrace {
		t.Errorf("response traceparent = %q: want the caller's trace with the gateway's span", tp)
	}
	up := e.up.Requests(1)[0].Headers
	if got := up["Traceparent"]; got != tp {
		t.Errorf("upstream traceparent = %v, want %q", got, tp)
	}
	r := e.usageFor(id)
	if r.ClientRequestID != "client-id-1" || r.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("record ids = client %q trace %q", r.ClientRequestID, r.TraceID)
	}
	// A client reusing its id must not lose records.
	resp = e.post(context.Background(), "/chat/completions", e.key,
		[]byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`), "X-Request-Id", "client-id-1")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	e.usageFor(resp.Header.Get("X-Request-Id"))
}

func TestFailoverToNextDeployment(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client(e.key).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "failover", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil {
		t.Fatalf("the second deployment should have answered: %v", err)
	}
	if resp.Model != "fallback-model" {
		t.Errorf("answered by %q", resp.Model)
	}
}

func TestUsageRecordPerRequest(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.key)
	const n = 50
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: "gpt-test", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "x"}}})
			errc <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	recs := e.allUsage(n)
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.RequestID] = true
	}
	if len(recs) != n || len(ids) != n {
		t.Errorf("%d records with %d distinct ids for %d requests", len(recs), len(ids), n)
	}
	raw, _ := json.Marshal(e.rec.Stats())
	if s := e.rec.Stats(); s.Dropped != 0 || s.Written != n {
		t.Errorf("recorder stats %s", raw)
	}
}
