package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"testing"
)

// TestOpenStreamsHoldLittleMemory: what an open stream holds stays small. Through a real
// gateway, over loopback to a mock upstream in this process, 200 streams are held open after
// their first event while the heap is counted: the bytes per stream cover the client's and the
// upstream's side too, so the bound is loose (measured: 152 KiB when the gateway's upstream
// connection had two 32 KiB buffers and its event reader 16 KiB, 84 KiB with 4 KiB each, with
// and without -race). A count of bytes, not a time.
func TestOpenStreamsHoldLittleMemory(t *testing.T) {
	e := newEnv(t)
	const n = 200
	body := []byte(`{"model":"gpt-test","stream":true,"mock":{"chunks":3,"interval_ms":600000},"messages":[{"role":"user","content":"hi"}]}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func() *http.Response {
		resp := e.post(ctx, "/chat/completions", e.key, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var buf [512]byte
		var got []byte
		for !bytes.Contains(got, []byte("\n\n")) {
			k, err := resp.Body.Read(buf[:])
			if err != nil {
				t.Fatalf("before the first event: %v", err)
			}
			got = append(got, buf[:k]...)
		}
		return resp
	}
	// Connections, pools and caches made once, by a stream read to its end: one cut short would
	// be counted with the tokenizer, whose tables would then load inside the measurement.
	warm := e.post(ctx, "/chat/completions", e.key, []byte(`{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if _, err := io.Copy(io.Discard, warm.Body); err != nil || warm.StatusCode != http.StatusOK {
		t.Fatalf("warm-up stream: status %d, %v", warm.StatusCode, err)
	}
	warm.Body.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resps := make([]*http.Response, n)
	for i := range resps {
		resps[i] = open()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	stack := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("per open stream (client, gateway and upstream together): %.1f KiB of heap, %.1f KiB of stacks",
		float64(heap)/1024, float64(stack)/1024)
	if heap > 112<<10 {
		t.Errorf("an open stream holds %.1f KiB of heap (client, gateway and upstream), want at most 112 KiB", float64(heap)/1024)
	}
	cancel()
	for _, r := range resps {
		r.Body.Close()
	}
}
