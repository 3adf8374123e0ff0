package replay

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmgate/llmgate/internal/testsvc"
)

var (
	rds     *testsvc.RedisServer
	cluster *testsvc.RedisClusterServer
)

func TestMain(m *testing.M) {
	var stop, stopCluster func()
	rds, stop = testsvc.Redis()
	cluster, stopCluster = testsvc.RedisCluster()
	code := m.Run()
	stop()
	stopCluster()
	os.Exit(code)
}

// stores are the Store implementations, each against a real server (memory: this process).
func stores(t *testing.T) map[string]Store {
	c := redis.NewClient(&redis.Options{Addr: rds.Addr(t)})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(t)})
	t.Cleanup(func() { c.Close(); cc.Close() })
	return map[string]Store{"memory": NewMemory(1 << 20), "redis": NewRedis(c), "cluster": NewRedis(cc)}
}

func TestCanonicalIgnoresOrderAndSpacing(t *testing.T) {
	a, err := Fingerprint("chat/completions", "m", []byte(`{"model":"m","messages":[{"role":"user","content":"hi\u0021"}],"temperature":0}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fingerprint("chat/completions", "m", []byte("{ \"temperature\" : 0,\n\"messages\":[{\"content\":\"hi!\",\"role\":\"user\"}], \"model\":\"m\"}"))
	if a != b {
		t.Fatal("key order, spacing and escapes changed the fingerprint")
	}
	for name, other := range map[string][]any{
		"body":     {"chat/completions", "m", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}`},
		"number":   {"chat/completions", "m", `{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":1}`},
		"endpoint": {"completions", "m", `{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0}`},
		"model":    {"chat/completions", "n", `{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0}`},
	} {
		c, _ := Fingerprint(other[0].(string), other[1].(string), []byte(other[2].(string)))
		if c == a {
			t.Errorf("%s: a different request has the same fingerprint", name)
		}
	}
	if x, _ := Fingerprint("e", "m", []byte(`{}`), "ab", "c"); x == func() [32]byte { y, _ := Fingerprint("e", "m", []byte(`{}`), "a", "bc"); return y }() {
		t.Error("extra parts are not delimited")
	}
	if _, err := Fingerprint("e", "m", []byte(`{"a":1}{}`)); err == nil {
		t.Error("two values accepted")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := &Entry{Status: 200, ContentType: "text/event-stream", Stream: true, Parts: [][]byte{[]byte("data: 1\n\n"), []byte("data: [DONE]\n\n")},
		Prompt: 3, Completion: 5, Cached: 1, Reasoning: 2, RequestID: "r1", UpstreamModel: "u", Provider: "p", Deployment: "d"}
	got, err := decodeEntry(e.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != 200 || !got.Stream || len(got.Parts) != 2 || string(got.Parts[1]) != "data: [DONE]\n\n" || got.Completion != 5 ||
		got.Reasoning != 2 || got.RequestID != "r1" || got.Deployment != "d" || got.ContentType != "text/event-stream" {
		t.Fatalf("round trip: %+v", got)
	}
	enc := e.encode()
	for i := range len(enc) {
		if _, err := decodeEntry(enc[:i]); err == nil {
			t.Fatalf("a truncated entry (%d of %d bytes) decoded", i, len(enc))
		}
	}
}

func TestStores(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := "llmgate:test:" + name + ":" + time.Now().Format("150405.000000") + ":"
			if v, err := s.Get(ctx, p+"none"); err != nil || v != nil {
				t.Fatalf("get of nothing: %q %v", v, err)
			}
			if err := s.Put(ctx, p+"a", []byte("1"), 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if v, _ := s.Get(ctx, p+"a"); string(v) != "1" {
				t.Fatalf("get: %q", v)
			}
			if got, err := s.Claim(ctx, p+"c", []byte("mine"), time.Minute); err != nil || got != nil {
				t.Fatalf("claim of a free key: %q %v", got, err)
			}
			if got, _ := s.Claim(ctx, p+"c", []byte("theirs"), time.Minute); string(got) != "mine" {
				t.Fatalf("second claim: %q", got)
			}
			_ = s.Finish(ctx, p+"c", []byte("theirs"), []byte("wrong"), time.Minute)
			_ = s.Release(ctx, p+"c", []byte("theirs"))
			if v, _ := s.Get(ctx, p+"c"); string(v) != "mine" {
				t.Fatalf("another claimant changed the key: %q", v)
			}
			_ = s.Finish(ctx, p+"c", []byte("mine"), []byte("done"), time.Minute)
			if v, _ := s.Get(ctx, p+"c"); string(v) != "done" {
				t.Fatalf("finish: %q", v)
			}
			_, _ = s.Claim(ctx, p+"r", []byte("mine"), time.Minute)
			_ = s.Release(ctx, p+"r", []byte("mine"))
			if v, _ := s.Get(ctx, p+"r"); v != nil {
				t.Fatalf("release left %q", v)
			}
			time.Sleep(time.Second) // wide margin over the 300 ms TTL
			if v, _ := s.Get(ctx, p+"a"); v != nil {
				t.Fatalf("expired value still there: %q", v)
			}
		})
	}
}

func TestMemoryIsBounded(t *testing.T) {
	m := NewMemory(1000)
	ctx := context.Background()
	for i := range 100 {
		_ = m.Put(ctx, string(rune('a'+i%26))+string(rune('A'+i/26)), bytes.Repeat([]byte("x"), 98), time.Hour)
		if _, err := m.Get(ctx, "aA"); err != nil { // keeps "aA" recently used
			t.Fatal(err)
		}
	}
	if m.Bytes() > 1000 {
		t.Fatalf("memory holds %d bytes over its bound of 1000", m.Bytes())
	}
	if v, _ := m.Get(ctx, "aA"); v == nil {
		t.Fatal("the most recently used entry was evicted")
	}
	if v, _ := m.Get(ctx, "bA"); v != nil {
		t.Fatal("a cold entry survived")
	}
	_ = m.Put(ctx, "big", make([]byte, 2000), time.Hour)
	if v, _ := m.Get(ctx, "big"); v != nil {
		t.Fatal("an entry larger than the bound was kept")
	}
}

func TestIdempotencyStates(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			i := NewIdempotency(s, IdempotencyOptions{})
			tenant, key := "t-"+name+time.Now().Format("150405.000000"), "k1"
			fp, _ := Fingerprint("e", "m", []byte(`{"a":1}`))
			other, _ := Fingerprint("e", "m", []byte(`{"a":2}`))
			b, err := i.Begin(ctx, tenant, key, "idem-1", fp)
			if err != nil || b.Claim == nil {
				t.Fatalf("first: %+v %v", b, err)
			}
			if b2, _ := i.Begin(ctx, tenant, key, "idem-1", fp); !b2.Busy {
				t.Fatalf("while running: %+v", b2)
			}
			if b2, _ := i.Begin(ctx, tenant, key, "idem-1", other); !b2.Mismatch {
				t.Fatalf("another body: %+v", b2)
			}
			if b2, _ := i.Begin(ctx, tenant, "k2", "idem-1", fp); b2.Claim == nil {
				t.Fatalf("another API key shares the idempotency key: %+v", b2)
			}
			if err := i.Finish(ctx, b.Claim, &Entry{Status: 200, Parts: [][]byte{[]byte("{}")}, RequestID: "first"}); err != nil {
				t.Fatal(err)
			}
			b3, _ := i.Begin(ctx, tenant, key, "idem-1", fp)
			if b3.Entry == nil || b3.Entry.RequestID != "first" {
				t.Fatalf("after completion: %+v", b3)
			}
			f, _ := i.Begin(ctx, tenant, key, "idem-2", fp)
			_ = i.Release(ctx, f.Claim)
			if again, _ := i.Begin(ctx, tenant, key, "idem-2", fp); again.Claim == nil {
				t.Fatalf("a released key is not free: %+v", again)
			}
		})
	}
}

// FuzzDecodeEntry: a stored value, however damaged, decodes to an entry or an error, never a
// panic, and an entry that decodes survives a round trip (varints re-encode in their shortest
// form, so the bytes may change once, then no more).
func FuzzDecodeEntry(f *testing.F) {
	f.Add((&Entry{Status: 200, ContentType: "application/json", Parts: [][]byte{[]byte(`{}`)}, RequestID: "r"}).encode())
	f.Add((&Entry{Stream: true, Parts: [][]byte{[]byte("data: 1\n\n"), nil}, Prompt: -1}).encode())
	f.Add([]byte{entryVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		once := e.encode()
		e2, err := decodeEntry(once)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if twice := e2.encode(); !bytes.Equal(twice, once) {
			t.Fatal("an entry changes with each round trip")
		}
	})
}
