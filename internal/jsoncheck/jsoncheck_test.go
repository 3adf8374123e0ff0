package jsoncheck

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Valid accepts what gjson.Valid accepts (duplicate names and bytes that are not UTF-8 included:
// it checks answers, not the bodies the gateway routes by) but for documents nested deeper than
// MaxAnswerDepth.
func TestValid(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"a":1,"a":2}`, true},
		{"{\"a\":\"\xff\"}", true},
		{`{"a":[1,2,{"b":null}]}`, true},
		{nest(MaxAnswerDepth), true},
		{nest(MaxAnswerDepth + 1), false},
		{`{"a":1,}`, false},
		{`[01]`, false},
		{``, false},
		{`{"a":1} x`, false},
	} {
		if got := Valid([]byte(tc.in)); got != tc.want {
			t.Errorf("Valid(%.40q) = %v, want %v", tc.in, got, tc.want)
		}
		if got := ValidString(tc.in); got != tc.want {
			t.Errorf("ValidString(%.40q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestValidConstantStack checks documents of millions of levels with the goroutine stack capped
// at 256 KiB: a check whose stack grew with the nesting (gjson.Valid's) dies here.
func TestValidConstantStack(t *testing.T) {
	defer debug.SetMaxStack(debug.SetMaxStack(256 << 10))
	for _, doc := range []string{strings.Repeat("[", 5_000_000), `{"a":` + strings.Repeat(`{"a":`, 2_000_000)} {
		done := make(chan bool, 1)
		go func() { done <- Valid([]byte(doc)) }() // a fresh goroutine starts with a small stack
		if <-done {
			t.Errorf("a document %d bytes deep was accepted", len(doc))
		}
	}
}

// FuzzValid: within the depth cap, Valid agrees with gjson.Valid.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `[1,-2.5e3,true,false,null,"\u00e9"]`, `{"a":1,}`, `[01]`, `"x`, ``,
		"[\"\\ud800\"]", strings.Repeat("[", 20) + strings.Repeat("]", 20)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if strings.Count(string(b), "[")+strings.Count(string(b), "{") > MaxAnswerDepth {
			return // gjson.Valid has no cap
		}
		if got, want := Valid(b), gjson.ValidBytes(b); got != want {
			t.Fatalf("Valid(%q) = %v, gjson.Valid %v", b, got, want)
		}
	})
}
