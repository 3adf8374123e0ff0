package headers

import (
	"net/http"
	"testing"
)

// TestSet: every header gets its value, as Header.Set would set it; an Add to one afterwards
// leaves the others alone; setting them costs one allocation.
func TestSet(t *testing.T) {
	h := http.Header{}
	Set(h, "X-Request-Id", "r1", "Traceparent", "00-t", "Content-Type", "application/json")
	want := http.Header{}
	want.Set("X-Request-Id", "r1")
	want.Set("Traceparent", "00-t")
	want.Set("Content-Type", "application/json")
	if len(h) != len(want) {
		t.Fatalf("%v, want %v", h, want)
	}
	for k, v := range want {
		if len(h[k]) != 1 || h[k][0] != v[0] || h.Get(k) != v[0] {
			t.Errorf("%s: %q, want %q", k, h[k], v)
		}
	}
	h.Add("X-Request-Id", "r2")
	if h.Get("Traceparent") != "00-t" || len(h["X-Request-Id"]) != 2 {
		t.Errorf("after an Add: %v", h)
	}
	if n := testing.AllocsPerRun(100, func() { Set(h, "A", "1", "B", "2", "C", "3") }); n != 1 {
		t.Errorf("%.0f allocations for three headers, want 1", n)
	}
}
