package jsonappend

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", `""`},
		{"plain", "plain", `"plain"`},
		{"quotes and backslashes", `q"b\s`, `"q\"b\\s"`},
		{"short escapes", "\n\r\t", `"\n\r\t"`},
		{"other control characters", "\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"invalid UTF-8", "bad \xff utf8 \xe2\x82", `"bad \ufffd utf8 \ufffd\ufffd"`},
		{"line and paragraph separators", "sep \u2028\u2029", `"sep \u2028\u2029"`},
		{"HTML is left alone", "</script>&", `"</script>&"`},
		{"multi-byte", "é ü 日本 \U0001F600", "\"é ü 日本 \U0001F600\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(String(nil, tc.in)); got != tc.want {
				t.Errorf("String(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
	if got := string(String([]byte(`{"a":`), "x")); got != `{"a":"x"` {
		t.Errorf("String appends after what dst holds: %s", got)
	}
}

// FuzzString: the output is always one valid JSON string that decodes to what encoding/json
// makes of s (each invalid UTF-8 byte a U+FFFD), and never holds a raw control character, U+2028
// or U+2029.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\\n\r\t\x00\x1f", "bad \xff", "\u2028\u2029", "日本\U0001F600", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("String(%q) = %s is not a JSON string: %v", s, out, err)
		}
		if want := decodeLikeJSON(s); back != want {
			t.Fatalf("String(%q) decodes to %q, want %q", s, back, want)
		}
		if !utf8.Valid(out) {
			t.Fatalf("String(%q) = %q is not valid UTF-8", s, out)
		}
		for _, r := range string(out) {
			if r < 0x20 || r == '\u2028' || r == '\u2029' {
				t.Fatalf("String(%q) = %q holds %U unescaped", s, out, r)
			}
		}
	})
}

// decodeLikeJSON is s after a round trip through encoding/json.
func decodeLikeJSON(s string) string {
	b, _ := json.Marshal(s)
	var back string
	_ = json.Unmarshal(b, &back)
	return back
}
