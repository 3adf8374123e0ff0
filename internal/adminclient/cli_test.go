package adminclient

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestCLIFlagValues checks how flag text becomes JSON values.
func TestCLIFlagValues(t *testing.T) {
	cases := []struct {
		kind paramKind
		in   string
		want any
		err  bool
	}{
		{text, "", "", false},
		{list, "a, b,,c", []string{"a", "b", "c"}, false},
		{list, "", nil, false},
		{integer, "42", int64(42), false},
		{integer, "4.2", nil, true},
		{money, "0.000001", "0.000001", false},
		{money, "1.0000001", nil, true},
		{money, "-1", nil, true},
		{signed, "-1.5", "-1.5", false},
		{signed, "2", "2", false},
		{signed, "--1", nil, true},
		{past, "2026-11-01", "2026-11-01", false},
		{past, "2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z", false},
		{past, "yesterday", nil, true},
		{past, "-1h", nil, true},
		{instant, "2030-01-02T03:04:05Z", time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), false},
		{seconds, "1h30m", int64(5400), false},
		{seconds, "90", int64(90), false},
		{seconds, "-1s", nil, true},
		{flagTrue, "true", true, false},
	}
	for _, tc := range cases {
		got, err := param{kind: tc.kind}.parse(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("kind %d %q: err = %v", tc.kind, tc.in, err)
			continue
		}
		if g, _ := json.Marshal(got); !tc.err && string(g) != mustJSON(tc.want) {
			t.Errorf("kind %d %q = %s, want %s", tc.kind, tc.in, g, mustJSON(tc.want))
		}
	}
	ago, err := param{kind: past}.parse("24h")
	if at, perr := time.Parse(time.RFC3339, fmt.Sprint(ago)); err != nil || perr != nil || time.Since(at) < 23*time.Hour || time.Since(at) > 25*time.Hour {
		t.Errorf("past 24h = %v, %v", ago, err)
	}
	got, err := param{kind: instant}.parse("720h")
	if d := time.Until(got.(time.Time)); err != nil || d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("instant 720h = %v, %v", got, err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
