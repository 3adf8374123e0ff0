package gateway

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/llmgate/llmgate/internal/sse"
)

// FuzzRewriteEvent checks that rewriting an event's data and reading the event again with the
// SSE reader the relay uses gives the same data back, its other lines untouched.
func FuzzRewriteEvent(f *testing.F) {
	for _, s := range []string{"data: {}\n", "data: a\ndata: b\n", ": c\n", "data:\n", "event: x\r\ndata: y\r\n", "dat", "", "data\ndata: z\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := sse.NewRawReader(bytes.NewReader(in), 1<<20, 4<<10).Next()
		if err != nil && err != sse.ErrUnterminated || ev.Data == nil {
			return
		}
		if bytes.Contains(ev.Data, []byte("\r")) {
			return // a bare CR inside data is a line break to SSE; not produced by JSON encoders
		}
		data, raw := bytes.Clone(ev.Data), bytes.Clone(ev.Raw)
		out := rewriteEvent(raw, data)
		back, err := sse.NewRawReader(bytes.NewReader(out), 1<<20, 4<<10).Next()
		if err != nil || !bytes.Equal(back.Data, data) || !bytes.Equal(back.Name, ev.Name) {
			t.Fatalf("rewrite round trip of %q: %q -> %q (%q), %v", raw, data, back.Data, out, err)
		}
	})
}

func TestRewriteEvent(t *testing.T) {
	cases := []struct{ ev, data, want string }{
		{"data: {\"usage\":null}\n", `{}`, "data: {}\n\n"},
		{"event: message\nid: 3\ndata: x\n", "y", "event: message\nid: 3\ndata: y\n\n"},
		{"data: {\ndata: \"a\":1}\n", "{\n\"b\":2}", "data: {\ndata: \"b\":2}\n\n"},
		{"data\r\ndata: x\r\n: note\r\n", "y", ": note\r\ndata: y\n\n"}, // "data" alone is a data line too
	}
	for _, tc := range cases {
		if got := string(rewriteEvent([]byte(tc.ev), []byte(tc.data))); got != tc.want {
			t.Errorf("rewriteEvent(%q, %q) = %q, want %q", tc.ev, tc.data, got, tc.want)
		}
	}
}

func TestDropUsageNull(t *testing.T) {
	cases := []struct{ in, want string }{
		{`data: {"id":"a","choices":[],"usage":null}` + "\n", `data: {"id":"a","choices":[]}` + "\n"},
		{`data: {"usage":null,"id":"a"}` + "\n", `data: {"id":"a"}` + "\n"},
	}
	for _, tc := range cases {
		got, ok := dropUsageNull([]byte(tc.in))
		if !ok || string(got) != tc.want {
			t.Errorf("dropUsageNull(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	if _, ok := dropUsageNull([]byte(`data: {"usage":null}`)); ok {
		t.Error("a lone usage field needs the JSON path, not a splice")
	}
}

func TestChildTraceparent(t *testing.T) {
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	id, tp := childTraceparent(in)
	if id != "4bf92f3577b34da6a3ce929d0e0e4736" || len(tp) != 55 || tp[:36] != in[:36] || tp[36:52] == in[36:52] || tp[52:] != "-01" {
		t.Errorf("child of %s = %s (trace %s)", in, tp, id)
	}
	for _, bad := range []string{"", "garbage", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		id, tp := childTraceparent(bad)
		if len(tp) != 55 || tp[:3] != "00-" || id != tp[3:35] || !isLowerHex(id) || id == "00000000000000000000000000000000" || tp[52:] != "-01" {
			t.Errorf("new trace for %q = %s (trace %s)", bad, tp, id)
		}
	}
}

// TestRelayReaderHoldsLittlePerStream: every open stream holds one of the relay's event readers
// for its whole life, so what a new reader allocates is memory per stream: its read buffer, 1 KiB.
func TestRelayReaderHoldsLittlePerStream(t *testing.T) {
	const n = 256
	readers := make([]any, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range readers {
		readers[i] = eventReaders.New()
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(readers)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1536 {
		t.Errorf("a relay event reader allocates %d bytes, want at most 1.5 KiB", per)
	}
}
