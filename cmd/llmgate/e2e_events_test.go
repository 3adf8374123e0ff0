package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/sse"
)

// TestUsageEventStreamAcrossReplicas: a /v1/usage event stream open on one replica sends an
// event when a request of its key is served by another replica sharing PostgreSQL and Redis
// (the rollups and the Redis counters are shared; the stream's poll reads them).
func TestUsageEventStreamAcrossReplicas(t *testing.T) {
	e := newEnv(t, withPostgres(t), withRedisURL("redis://"+rdb.Addr(t)), func(c *Config) {
		c.Gateway.EventPoll = 300 * time.Millisecond
	})
	other := e.replica(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, other.publicURL+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("usage stream on the other replica: %d", resp.StatusCode)
	}
	r := sse.NewReader(resp.Body, 1<<20)
	next := func() gjson.Result {
		t.Helper()
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("reading the usage stream: %v", err)
		}
		if string(ev.Name) != "usage" {
			t.Fatalf("event %q", ev.Name)
		}
		return gjson.ParseBytes(append([]byte(nil), ev.Data...))
	}
	if first := next(); first.Get("today.requests").Int() != 0 {
		t.Fatalf("first event: %s", first.Raw)
	}
	chat := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
	io.Copy(io.Discard, chat.Body)
	chat.Body.Close()
	if chat.StatusCode != http.StatusOK {
		t.Fatalf("chat on the first replica: %d", chat.StatusCode)
	}
	for n := 0; ; n++ {
		ev := next() // the stream's context bounds the wait
		if ev.Get("today.requests").Int() == 1 {
			break
		}
		if n > 5 {
			t.Fatalf("no event with the other replica's request after %d events: %s", n, ev.Raw)
		}
	}
}
