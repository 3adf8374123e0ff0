package adminclient

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
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

// TestEffectiveLimitsSection: a key's effective limits print as their own table (dimension,
// limit, source, in the API's order) after the key's fields, not as one crammed cell.
func TestEffectiveLimitsSection(t *testing.T) {
	const src = "tier:free (default tier: key has no user)"
	raw := `{"id":"key_1","name":"billing-service","limits":null,"effective_limits":{` +
		`"rpm":{"value":20,"source":"` + src + `"},"tpm":{"value":0,"source":"` + src + `"},` +
		`"concurrent":{"value":2,"source":"` + src + `"},"budget_usd_per_day":{"value":null,"source":"none"},` +
		`"budget_usd_per_month":{"value":"12.5","source":"policy:key/key_1"}},"key":"lgk-secret"}`
	var b strings.Builder
	if err := printObject(&b, []byte(raw), "key", nil, keysResource.columns); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, re := range []string{
		`(?m)^name +billing-service$`,
		`(?m)^effective limits`,
		`(?m)^DIMENSION +LIMIT +SOURCE$`,
		`(?m)^rpm +20 +tier:free \(default tier: key has no user\)$`,
		`(?m)^tpm +unlimited +tier:free`,
		`(?m)^concurrent +2 +tier:free`,
		`(?m)^budget_usd_per_day +none +none$`,
		`(?m)^budget_usd_per_month +12\.5 +policy:key/key_1$`,
		`(?m)^key \(shown once\): lgk-secret$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "effective_limits") || strings.Index(out, "rpm") > strings.Index(out, "shown once") {
		t.Errorf("effective limits printed as a field, or after the secret:\n%s", out)
	}
}
