package gateway

import (
	"bytes"
	"testing"
)

func TestEventData(t *testing.T) {
	cases := []struct {
		name string
		ev   string
		data string
		none bool
	}{
		{name: "one data line", ev: "data: {\"a\":1}\n", data: `{"a":1}`},
		{name: "no space after colon", ev: "data:[DONE]\n", data: "[DONE]"},
		{name: "CRLF", ev: "data: x\r\n", data: "x"},
		{name: "with event and id lines", ev: "event: message\nid: 7\ndata: y\n", data: "y"},
		{name: "multi-line data joined", ev: "data: a\ndata: b\ndata: c\n", data: "a\nb\nc"},
		{name: "comment only", ev: ": keep-alive\n", none: true},
		{name: "no trailing newline", ev: "data: z", data: "z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := eventData([]byte(tc.ev))
			if tc.none {
				if d != nil {
					t.Fatalf("data = %q, want none", d)
				}
				return
			}
			if string(d) != tc.data {
				t.Errorf("eventData = %q, want %q", d, tc.data)
			}
		})
	}
}

// FuzzEventData checks the SSE event parser never panics, that the data of a one-line event is a
// part of it, and that rewriting an event and parsing it again gives the same data back.
func FuzzEventData(f *testing.F) {
	for _, s := range []string{"data: {}\n", "data: a\ndata: b\n", ": c\n", "data:\n", "event: x\r\ndata: y\r\n", "dat", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		d := eventData(ev)
		if d == nil {
			return
		}
		if !bytes.Contains(d, []byte("\n")) && !bytes.Contains(ev, d) {
			t.Fatalf("data %q is not a part of the event %q", d, ev)
		}
		if bytes.Contains(d, []byte("\r")) {
			return // a bare CR inside data is a line break to SSE; not produced by JSON encoders
		}
		if back := eventData(rewriteEvent(ev, d)); !bytes.Equal(back, d) {
			t.Fatalf("rewrite round trip: %q -> %q", d, back)
		}
	})
}

func TestRewriteEvent(t *testing.T) {
	cases := []struct{ ev, data, want string }{
		{"data: {\"usage\":null}\n", `{}`, "data: {}\n\n"},
		{"event: message\nid: 3\ndata: x\n", "y", "event: message\nid: 3\ndata: y\n\n"},
		{"data: {\ndata: \"a\":1}\n", "{\n\"b\":2}", "data: {\ndata: \"b\":2}\n\n"},
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
