package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/gateway"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers"
)

// eventClient is one open event stream of the public API, read block by block.
type eventClient struct {
	t      *testing.T
	resp   *http.Response
	r      *sse.Reader
	cancel context.CancelFunc
	beats  int // heartbeat comments seen
}

// openEvents GETs path with Accept: text/event-stream; it returns the answer when it is not a
// stream (a refusal).
func (e *env) openEvents(path, key string) (*eventClient, *http.Response) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.baseURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := e.http.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, resp
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		e.t.Fatalf("GET %s as a stream: Content-Type %q", path, ct)
	}
	c := &eventClient{t: e.t, resp: resp, r: sse.NewRawReader(resp.Body, 1<<20, 4096), cancel: cancel}
	e.t.Cleanup(c.close)
	return c, nil
}

func (c *eventClient) close() { c.cancel(); c.resp.Body.Close() }

// next returns the next event, which must be named name unless name is "" (counting the
// heartbeats before it), failing the test after timeout; io.EOF when the stream ended.
func (c *eventClient) next(name string, timeout time.Duration) (gjson.Result, error) {
	c.t.Helper()
	timer := time.AfterFunc(timeout, c.cancel)
	defer timer.Stop()
	for {
		ev, err := c.r.Next()
		if errors.Is(err, io.EOF) {
			return gjson.Result{}, io.EOF
		}
		if err != nil {
			c.t.Fatalf("reading the event stream (%v timeout): %v", timeout, err)
		}
		if ev.Data == nil && bytes.HasPrefix(ev.Raw, []byte(":")) {
			c.beats++
			continue
		}
		if name != "" && string(ev.Name) != name {
			c.t.Fatalf("event %q, want %q: %s", ev.Name, name, ev.Raw)
		}
		return gjson.ParseBytes(bytes.Clone(ev.Data)), nil
	}
}

func eventsEnv(t *testing.T, streams int) *env {
	return newEnv(t, withOptions(func(o *gateway.Options) {
		o.EventHeartbeat, o.EventPoll, o.EventStreamsPerKey = 200*time.Millisecond, 300*time.Millisecond, streams
	}))
}

// /v1/usage as an event stream: the usage at once, then an event when a request of the key has
// been recorded, heartbeats in between; other keys' requests change nothing of it.
func TestUsageEventStream(t *testing.T) {
	e := eventsEnv(t, 4)
	k := e.newKey(keySpec{Name: "watched", UserID: "watcher", Tier: "open"})
	s, refused := e.openEvents("/usage", k.Key)
	if refused != nil {
		t.Fatalf("usage stream refused: %d", refused.StatusCode)
	}
	first, _ := s.next("usage", 10*time.Second)
	if first.Get("object").String() != "usage" || first.Get("key_id").String() != k.ID || first.Get("today.requests").Int() != 0 {
		t.Fatalf("first usage event: %s", first.Raw)
	}
	// Another key's request: nothing of this key changes.
	resp := e.post(context.Background(), "/chat/completions", e.key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp = e.post(context.Background(), "/chat/completions", k.Key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d", resp.StatusCode)
	}
	// The limiter's counters change as the request settles, the rollups once the usage writer
	// has written it: events until the rollups show it, each a change.
	var ev gjson.Result
	for n := 0; ev.Get("today.requests").Int() != 1; n++ {
		var err error
		if ev, err = s.next("usage", 10*time.Second); err != nil {
			t.Fatalf("stream ended after %d events: %v", n, err)
		}
		if ev.Get("today.requests").Int() > 1 || n > 3 {
			t.Fatalf("usage event %d: %s", n, ev.Raw)
		}
	}
	if ev.Get("today.prompt_tokens").Int() == 0 {
		t.Errorf("usage event without the request's tokens: %s", ev.Raw)
	}
	// No further change: only heartbeats come (an event here would be a change that is none).
	for range 3 {
		s.heartbeat(10 * time.Second)
	}
}

// heartbeat reads the next block, which must be a heartbeat comment.
func (c *eventClient) heartbeat(timeout time.Duration) {
	c.t.Helper()
	timer := time.AfterFunc(timeout, c.cancel)
	defer timer.Stop()
	ev, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("waiting for a heartbeat (%v timeout): %v", timeout, err)
	}
	if ev.Data != nil || !bytes.HasPrefix(ev.Raw, []byte(": heartbeat")) {
		c.t.Fatalf("%q where a heartbeat was due (nothing changed)", ev.Raw)
	}
}

// A key holds at most gateway.event_streams_per_key streams at once (the next gets 429
// too_many_event_streams, another key is not affected), a closed one frees its place, and every
// stream ends when the gateway starts draining.
func TestEventStreamsBoundedAndDrained(t *testing.T) {
	e := eventsEnv(t, 2)
	k := e.newKey(keySpec{Name: "many"})
	a, _ := e.openEvents("/usage", k.Key)
	b, _ := e.openEvents("/status", k.Key)
	a.next("usage", 10*time.Second)
	b.next("status", 10*time.Second)
	if _, refused := e.openEvents("/status", k.Key); refused == nil || refused.StatusCode != http.StatusTooManyRequests ||
		readBodyError(t, refused).Code != "too_many_event_streams" {
		t.Fatalf("third stream of the key: %+v, want 429 too_many_event_streams", refused)
	}
	other, refused := e.openEvents("/status", e.key)
	if refused != nil {
		t.Fatalf("another key's stream: %d", refused.StatusCode)
	}
	a.close()
	var c *eventClient
	waitFor(t, 10*time.Second, "the closed stream's place", func() bool {
		s, refused := e.openEvents("/usage", k.Key)
		if refused != nil {
			refused.Body.Close()
			return false
		}
		c = s
		return true
	})
	c.next("usage", 10*time.Second)
	// Plain polling still answers JSON, and is not counted as a stream.
	var u struct{ Object string }
	e.getJSON("/usage", &u)
	if u.Object != "usage" {
		t.Fatalf("/v1/usage without Accept: %+v", u)
	}

	e.gw.SetReady(false)
	for _, s := range []*eventClient{b, c, other} {
		for {
			// An event of a change (the status is now draining) may come before the end.
			if _, err := s.next("", 10*time.Second); errors.Is(err, io.EOF) {
				break
			}
		}
	}
}

// /v1/status as an event stream sends an event when a model's deployments change (the routing
// table swapped, as a reload does).
func TestStatusEventStream(t *testing.T) {
	e := eventsEnv(t, 4)
	s, _ := e.openEvents("/status", e.key)
	first, _ := s.next("status", 10*time.Second)
	if !first.Get(`models.#(id=="other")`).Exists() {
		t.Fatalf("first status event without model other: %s", first.Raw)
	}
	router, err := providers.NewRouter([]providers.ModelConfig{
		{Name: "gpt-test", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "up-model"}}},
	}, providers.RoutingConfig{}, e.provs, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.gw.SetRouter(router)
	ev, err := s.next("status", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Get(`models.#(id=="other")`).Exists() || !ev.Get(`models.#(id=="gpt-test")`).Exists() {
		t.Fatalf("status event after the change: %s", ev.Raw)
	}
}

// eventSourceScript is a Node client of the event streams using the eventsource package (the
// WHATWG EventSource, as browsers have it): it prints the first usage and status events, then
// "ready", then the usage event that shows the key's request, and exits.
const eventSourceScript = `
import { EventSource } from "eventsource";
const base = process.env.LLMGATE_BASE, key = process.env.LLMGATE_KEY;
const withKey = (input, init) => fetch(input, { ...init, headers: { ...init.headers, Authorization: "Bearer " + key } });
const usage = new EventSource(base + "/usage", { fetch: withKey });
const status = new EventSource(base + "/status", { fetch: withKey });
let first = 0;
const ready = () => { if (++first === 2) console.log("ready"); };
const fail = (what) => (e) => { console.log(JSON.stringify({ error: what, message: String(e && e.message) })); process.exit(1); };
usage.onerror = fail("usage");
status.onerror = fail("status");
status.addEventListener("status", (e) => {
  const s = JSON.parse(e.data);
  console.log(JSON.stringify({ status: s.status, models: s.models.length > 0 }));
  status.close();
  ready();
});
let seen = false;
usage.addEventListener("usage", (e) => {
  const u = JSON.parse(e.data);
  if (!seen) {
    seen = true;
    console.log(JSON.stringify({ usage: u.object, requests: u.today.requests }));
    ready();
    return;
  }
  if (u.today.requests === 1) {
    console.log(JSON.stringify({ requests: u.today.requests }));
    usage.close();
    process.exit(0);
  }
});
setTimeout(() => { console.log("timeout"); process.exit(1); }, 30000);
`

// The event streams work with a real EventSource client (Node's eventsource package): it gets
// the first events, and the usage event once a request of its key has been recorded.
func TestEventStreamsNodeEventSource(t *testing.T) {
	dir := os.Getenv("LLMGATE_NODE_SDK_DIR") // scripts/test.sh installs the eventsource package there
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("LLMGATE_NODE_SDK_DIR is not set: run the suite through scripts/test.sh")
		}
		t.Skip("LLMGATE_NODE_SDK_DIR not set (scripts/test.sh sets it)")
	}
	e := eventsEnv(t, 4)
	k := e.newKey(keySpec{Name: "es", UserID: "es-user", Tier: "open"})
	f := filepath.Join(dir, "events-"+t.Name()+".mjs")
	if err := os.WriteFile(f, []byte(eventSourceScript), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", f)
	cmd.Env = append(os.Environ(), "LLMGATE_KEY="+k.Key, "LLMGATE_BASE="+e.baseURL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			resp := e.post(context.Background(), "/chat/completions", k.Key, []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`))
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	err = cmd.Wait()
	got := strings.Join(lines, "\n")
	if err != nil {
		t.Fatalf("node script: %v\n%s\n%s", err, got, stderr.String())
	}
	// The two first events come in either order.
	want := map[string]bool{`{"usage":"usage","requests":0}`: true, `{"status":"ok","models":true}`: true}
	if len(lines) != 4 || !want[lines[0]] || !want[lines[1]] || lines[0] == lines[1] || lines[2] != "ready" || lines[3] != `{"requests":1}` {
		t.Fatalf("node script printed:\n%s", got)
	}
}
