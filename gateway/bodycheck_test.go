package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
)

var defaultChecker = &bodyChecker{maxDepth: 128, strip: Options{}.withDefaults().StripBodyFields}

func TestBodyCheck(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	wide := func(n int, dup bool) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		if dup {
			b.WriteString(`"k7":0,`)
		}
		b.WriteString(`"end":null}`)
		return b.String()
	}
	cases := []struct {
		name, in string
		kind     bodyErrorKind // 0: valid
		path     string
	}{
		{"object", `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1}`, 0, ""},
		{"scalars", ` [1, -0.5e+3, 0, 1E2, true, false, null, "", "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"] `, 0, ""},
		{"utf-8", `{"content":"数据 naïve 😀"}`, 0, ""},
		{"DEL and lone surrogate escape", "{\"a\":\"\x7f\\ud800\"}", 0, ""},
		{"depth 128", nest(128), 0, ""},
		{"depth 129", nest(129), bodyTooDeep, ""},
		{"objects 129 deep", strings.Repeat(`{"a":`, 129) + "1" + strings.Repeat("}", 129), bodyTooDeep, ""},
		{"same names in sibling objects", `[{"a":1,"b":2},{"a":1,"b":2}]`, 0, ""},
		{"same name at two levels", `{"a":{"a":{"a":1}},"b":{"a":2}}`, 0, ""},
		{"duplicate top level", `{"model":"a","x":1,"model":"b"}`, bodyDuplicate, "model"},
		{"duplicate through an escape", `{"model":"a","m\u006fdel":"b"}`, bodyDuplicate, "model"},
		{"duplicate through a surrogate pair", `{"😀":1,"\ud83d\ude00":2}`, bodyDuplicate, "😀"},
		{"duplicate nested", `{"stream_options":{"include_usage":true,"include_usage":false}}`, bodyDuplicate, "stream_options.include_usage"},
		{"duplicate in an array", `{"messages":[{"role":"a"},{"role":"user","role":"system"}]}`, bodyDuplicate, "messages[1].role"},
		{"wide object", wide(1000, false), 0, ""},
		{"wide object with a duplicate", wide(1000, true), bodyDuplicate, "k7"},
		{"bad UTF-8 in a value", "{\"a\":\"x\xffy\"}", bodyBadUTF8, ""},
		{"bad UTF-8 in a name", "{\"a\xc3\":1}", bodyBadUTF8, ""},
		{"overlong encoding", "{\"a\":\"\xc0\xaf\"}", bodyBadUTF8, ""},
		{"encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", bodyBadUTF8, ""},
		{"truncated sequence", "{\"a\":\"\xe6\x95\"}", bodyBadUTF8, ""},
		{"empty", ``, bodySyntax, ""},
		{"only space", ` `, bodySyntax, ""},
		{"trailing comma", `{"a":1,}`, bodySyntax, ""},
		{"trailing data", `{"a":1} x`, bodySyntax, ""},
		{"two values", `{} {}`, bodySyntax, ""},
		{"unclosed", `{"a":[1,2}`, bodySyntax, ""},
		{"unclosed deep", nest(100)[:150], bodySyntax, ""},
		{"missing colon", `{"a" 1}`, bodySyntax, ""},
		{"name not a string", `{a:1}`, bodySyntax, ""},
		{"control character", "{\"a\":\"x\ny\"}", bodySyntax, ""},
		{"bad escape", `{"a":"\x"}`, bodySyntax, ""},
		{"short unicode escape", `{"a":"\u12"}`, bodySyntax, ""},
		{"leading zero", `[01]`, bodySyntax, ""},
		{"bare minus", `[-]`, bodySyntax, ""},
		{"bare dot", `[1.]`, bodySyntax, ""},
		{"bare exponent", `[1e]`, bodySyntax, ""},
		{"bad literal", `[tru]`, bodySyntax, ""},
		{"NaN", `[NaN]`, bodySyntax, ""},
		{"single quotes", `{'a':1}`, bodySyntax, ""},
		{"comment", `{"a":1 /* no */}`, bodySyntax, ""},
		{"BOM", "\xef\xbb\xbf{}", bodySyntax, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := defaultChecker.check([]byte(tc.in))
			var be *bodyError
			switch {
			case tc.kind == 0 && err != nil:
				t.Fatalf("check = %v, want valid", err)
			case tc.kind == 0:
				return
			case !errors.As(err, &be):
				t.Fatalf("check = %v, want error kind %d", err, tc.kind)
			case be.Kind != tc.kind || be.Path != tc.path:
				t.Errorf("check = kind %d path %q (%v), want kind %d path %q", be.Kind, be.Path, err, tc.kind, tc.path)
			}
		})
	}
}

// TestBodyCheckConstantStack runs the bodies that overflowed the stack of the recursive
// validator with the goroutine stack capped at 256 KiB: a scan whose stack grew with the nesting
// would die here with "stack overflow".
func TestBodyCheckConstantStack(t *testing.T) {
	defer debug.SetMaxStack(debug.SetMaxStack(256 << 10))
	for _, n := range []int{8_300_000, 4_000_000} {
		body := []byte(`{"model":"m","x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
		done := make(chan error, 1)
		go func() { // a fresh goroutine starts with a small stack
			_, err := parseRequest(body, providers.ChatCompletions, defaultChecker)
			done <- err
		}()
		err := <-done
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != 400 || ge.API.Code == nil || *ge.API.Code != "json_too_deep" {
			t.Errorf("depth %d: %v, want 400 json_too_deep", n, err)
		}
	}
}

func TestParseRequestRejects(t *testing.T) {
	cases := []struct {
		name, body, code, param string
	}{
		{"not an object", `["m"]`, "invalid_json", ""},
		{"syntax", `{"model":"m",}`, "invalid_json", ""},
		{"too deep", `{"model":"m","x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, "json_too_deep", ""},
		{"bad UTF-8", "{\"model\":\"a\xffb\"}", "invalid_utf8", ""},
		{"duplicate model", `{"model":"cheap","messages":[],"model":"o1-pro"}`, "duplicate_key", "model"},
		{"duplicate stream", `{"model":"m","stream":false,"stream":true}`, "duplicate_key", "stream"},
		{"duplicate max_tokens", `{"model":"m","max_tokens":1,"max_tokens":99999}`, "duplicate_key", "max_tokens"},
		{"duplicate max_completion_tokens", `{"model":"m","max_completion_tokens":1,"max_completion_tokens":99999}`, "duplicate_key", "max_completion_tokens"},
		{"duplicate include_usage", `{"model":"m","stream_options":{"include_usage":false,"include_usage":true}}`, "duplicate_key", "stream_options.include_usage"},
		{"duplicate stream_options", `{"model":"m","stream_options":{},"stream_options":{"include_usage":true}}`, "duplicate_key", "stream_options"},
		{"NUL in model", `{"model":"a\u0000b"}`, "invalid_value", "model"},
		{"newline in model", `{"model":"a\nb"}`, "invalid_value", "model"},
		{"C1 control in model", `{"model":"a\u0085b"}`, "invalid_value", "model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRequest([]byte(tc.body), providers.ChatCompletions, defaultChecker)
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("parseRequest = %v, want a 400", err)
			}
			code, param := "", ""
			if ge.API.Code != nil {
				code = *ge.API.Code
			}
			if ge.API.Param != nil {
				param = *ge.API.Param
			}
			if ge.Status != 400 || code != tc.code || param != tc.param || ge.API.Type != "invalid_request_error" {
				t.Errorf("HTTP %d %s code %q param %q (%s), want 400 code %q param %q", ge.Status, ge.API.Type, code, param, ge.API.Message, tc.code, tc.param)
			}
		})
	}
}

func TestStripBodyFields(t *testing.T) {
	cases := []struct {
		name  string
		strip []string
		in    string
		want  string // "" means unchanged, byte for byte
	}{
		{"none present", nil, `{"model":"m", "messages":[{"role":"user","content":"api_key"}],"extra_body":{"keep":1}}`, ""},
		{"nested deeper is not a routing field", nil, `{"model":"m","metadata":{"api_key":"x"},"extra_body":{"x":{"api_key":1}}}`, ""},
		{"top level", nil, `{"model":"m","api_base":"http://x","base_url":"http://y","api_key":"k","extra_headers":{"a":"b"},"n":1}`, `{"model":"m","n":1}`},
		{"escaped name", nil, `{"model":"m","api_k\u0065y":"k"}`, `{"model":"m"}`},
		{"inside extra_body", nil, `{"model":"m","extra_body":{"api_key":"k","keep":true,"api_base":"u"}}`, `{"model":"m","extra_body":{"keep":true}}`},
		{"extra_body not an object", nil, `{"model":"m","extra_body":"api_key"}`, ""},
		{"custom list", []string{"user", "a.b"}, `{"model":"m","user":"u","a.b":1,"api_key":"k"}`, `{"model":"m","api_key":"k"}`},
		{"empty list", []string{}, `{"model":"m","api_key":"k"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bc := &bodyChecker{maxDepth: 128, strip: Options{StripBodyFields: tc.strip}.withDefaults().StripBodyFields}
			in := []byte(tc.in)
			r, err := parseRequest(in, providers.ChatCompletions, bc)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == "" {
				want = tc.in
				if &r.body[0] != &in[0] {
					t.Errorf("body copied although nothing was stripped")
				}
			}
			if string(r.body) != want {
				t.Errorf("body = %s, want %s", r.body, want)
			}
		})
	}
}

// FuzzBodyCheck checks the scan against encoding/json's on syntax, and that it never panics: a
// body it accepts is valid JSON and UTF-8; one it calls a syntax error is invalid JSON; "too
// deep" only past the cap and "bad UTF-8" only for invalid UTF-8. The scan stops at the first
// fault, so a duplicate may be reported before a later syntax error: valid JSON within the cap
// must pass or be a duplicate.
func FuzzBodyCheck(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`,
		`[1,-2.5e3,true,false,null,"\u00e9\ud83d\ude00\n"]`,
		`{"a":{"a":1},"b":[{},[]]}`, `{"a":1,"a":2}`, `{"m\u006fdel":1,"model":2}`,
		"{\"a\":\"\xff\"}", `{"a":1,}`, `[01]`, `"x`, ``, ` `,
		strings.Repeat("[", 128) + strings.Repeat("]", 128),
		strings.Repeat("[", 129) + strings.Repeat("]", 129),
		strings.Repeat(`{"a":`, 100) + "0" + strings.Repeat("}", 100),
		strings.Repeat("[", 5000),
		"[" + strings.Repeat(`{"k":1},`, 300) + "0]",
		"{" + strings.Repeat(`"k":1,`, 40) + `"z":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := defaultChecker.check(b)
		valid := json.Valid(b)
		if valid && utf8.Valid(b) && depth(b) <= defaultChecker.maxDepth && err != nil {
			if be, ok := err.(*bodyError); !ok || be.Kind != bodyDuplicate {
				t.Fatalf("check rejected valid JSON (%v): %q", err, b)
			}
		}
		var be *bodyError
		if err != nil && !errors.As(err, &be) {
			t.Fatalf("check returned %T %v", err, err)
		}
		switch {
		case err == nil:
			if !valid {
				t.Fatalf("check accepted what encoding/json rejects: %q", b)
			}
			if !utf8.Valid(b) {
				t.Fatalf("check accepted invalid UTF-8: %q", b)
			}
		case be.Kind == bodySyntax:
			if valid {
				t.Fatalf("check rejected valid JSON (%v): %q", err, b)
			}
		case be.Kind == bodyTooDeep:
			if depth(b) <= defaultChecker.maxDepth {
				t.Fatalf("too deep at depth %d: %q", depth(b), b)
			}
		case be.Kind == bodyDuplicate:
			if !utf8.Valid(b[:be.Offset]) {
				t.Fatalf("duplicate reported past invalid UTF-8: %q", b)
			}
		case be.Kind == bodyBadUTF8:
			if utf8.Valid(b) {
				t.Fatalf("bad UTF-8 reported for valid UTF-8: %q", b)
			}
		}
	})
}

// depth is the deepest nesting of brackets outside strings in b (for FuzzBodyCheck).
func depth(b []byte) int {
	d, deepest, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			d++
			deepest = max(deepest, d)
		case !inStr && (c == ']' || c == '}'):
			d--
		}
	}
	return deepest
}

// chatBody is a realistic chat completions request of about size bytes: a system prompt, a tool,
// and alternating turns of mixed ASCII, accented and CJK text with escapes.
func chatBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":512,"temperature":0.7,` +
		`"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object",` +
		`"properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}],` +
		`"messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly."}`)
	words := []string{"the", "gateway", "relays", "tokens", "über", "naïve", "数据", "request", `\n`, `\"quoted\"`, "streams", "12.5"}
	for n := 0; b.Len() < size-200; n++ {
		role := "user"
		if n%2 == 1 {
			role = "assistant"
		}
		fmt.Fprintf(&b, `,{"role":%q,"content":"`, role)
		for k := 0; k < 40 && b.Len() < size-100; k++ {
			b.WriteString(words[(n+k)%len(words)])
			b.WriteByte(' ')
		}
		b.WriteString(`"}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// oldParseRequest is parseRequest before the single-pass check (gjson.ValidBytes, then the
// fields), kept verbatim as the benchmark's baseline.
func oldParseRequest(body []byte, ep providers.Endpoint) (request, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !gjson.ValidBytes(body) {
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_json", "", "We could not parse the JSON body of your request: it must be a JSON object.")
	}
	f := gjson.GetManyBytes(body, "model", "stream", "stream_options.include_usage", "max_completion_tokens", "max_tokens")
	if f[0].Type != gjson.String || f[0].Str == "" {
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "missing_model", "model", "You must provide a model parameter (a string).")
	}
	if f[1].Exists() && f[1].Type != gjson.True && f[1].Type != gjson.False && f[1].Type != gjson.Null {
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_type", "stream", "'stream' must be a boolean.")
	}
	r := request{body: body, model: f[0].Str, stream: f[1].Bool() && ep != providers.Embeddings, includeUsage: f[2].Bool(),
		embeddings: ep == providers.Embeddings}
	for _, m := range f[3:] {
		if m.Exists() && m.Type != gjson.Null && (m.Type != gjson.Number || m.Int() < 1) {
			return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "max_tokens", "max_tokens and max_completion_tokens must be positive integers.")
		}
	}
	if r.maxTokens = f[3].Int(); r.maxTokens == 0 {
		r.maxTokens = f[4].Int()
	}
	return r, nil
}

// BenchmarkParseRequest compares parseRequest with the single-pass check (parse) against the
// gjson.ValidBytes version it replaced (gjson), on realistic chat bodies of 1 KB, 100 KB and 10 MB;
// check is the new scan alone, and parse+strip a body with a routing field to remove. Compare the
// siblings' ns/op within one run.
func BenchmarkParseRequest(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KB", 1 << 10}, {"100KB", 100 << 10}, {"10MB", 10 << 20}} {
		body := chatBody(size.n)
		stripped, _ := sjson.SetBytes(body, "api_key", "k")
		b.Run(size.name+"/gjson", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := oldParseRequest(body, providers.ChatCompletions); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/parse", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseRequest(body, providers.ChatCompletions, defaultChecker); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := defaultChecker.check(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/parse+strip", func(b *testing.B) {
			b.SetBytes(int64(len(stripped)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseRequest(stripped, providers.ChatCompletions, defaultChecker); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUpstreamBodyAsSjsonSets: the model and include_usage rewrites splice the value in where
// the field is (sjson's optimistic path); the bytes must be the ones a full sjson set makes,
// whatever the body holds around the field.
func TestUpstreamBodyAsSjsonSets(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","messages":[]}`,
		`{"messages":[{"model":"inner"}],"model":"m"}`,
		`{"model":"m","model":"again","stream":true}`,
		`{ "model" : "m" , "stream":true,"stream_options":{"include_usage":false}}`,
		`{"model":"m","stream":true,"stream_options":{}}`,
		`{"model":"m","stream":true}`,
		`{"stream":true,"messages":[]}`,
		`{"model":null,"stream":true}`,
		`{"mod\u0065l":"m","model":"m"}`,
	} {
		req := request{body: []byte(body), model: "m", stream: gjson.Get(body, "stream").Bool(), streamOptions: gjson.Get(body, "stream_options").Exists()}
		req.defaulted = !gjson.Get(body, "model").Exists()
		for _, model := range []string{"up-m", `we"ird\model`, "m"} {
			got, inject, err := req.upstreamBody(model)
			if err != nil {
				t.Fatal(err)
			}
			want := []byte(body)
			if model != req.model || req.defaulted {
				want, _ = sjson.SetBytes(want, "model", model)
			}
			if inject {
				want, _ = sjson.SetBytes(want, "stream_options.include_usage", true)
			}
			if string(got) != string(want) {
				t.Errorf("%s as %q:\n got %s\nwant %s", body, model, got, want)
			}
		}
	}
}

// FuzzRequestFields: the one pass over a body's members finds what a gjson lookup per path finds,
// on every body the check lets through.
func FuzzRequestFields(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi","model":"x"}],"stream":true}`,
		`{"stream_options":{"include_usage":true},"model":"m","max_tokens":5,"max_completion_tokens":"7"}`,
		`{"stream_options":[{"include_usage":true}],"stream":null,"model":null}`,
		`{"stream_options":5,"model":"a\u0000b","max_tokens":-1}`,
		`{"mod\u0065l":"m","stream_options":{"include_usage":false}}`,
		`{"extra_body":{"model":"x"},"model":{"a":1}}`,
		` {} `, `{"model":"m"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := defaultChecker.check(b); err != nil || len(bytes.TrimLeft(b, " \t\r\n")) == 0 || bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
			return
		}
		got, streamOptions := requestFields(b)
		if streamOptions != gjson.GetBytes(b, "stream_options").Exists() {
			t.Fatalf("%s: stream_options %v", b, streamOptions)
		}
		want := gjson.GetManyBytes(b, "model", "stream", "stream_options.include_usage", "max_completion_tokens", "max_tokens")
		for i := range got {
			g, w := got[i], want[i]
			if g.Exists() != w.Exists() || g.Type != w.Type || g.Str != w.Str || g.Num != w.Num || g.Int() != w.Int() || g.Bool() != w.Bool() {
				t.Fatalf("%s: field %d is %#v, by path %#v", b, i, g, w)
			}
		}
	})
}

// FuzzUsageOption: adding include_usage to a body without stream_options gives the bytes sjson
// gives, on every body the check lets through.
func FuzzUsageOption(f *testing.F) {
	for _, s := range []string{`{"model":"m","stream":true}`, `{}`, ` { } `, " {\"a\":1\n}\n", `{"a":{"b":1}} `, `{"stream_options":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := defaultChecker.check(b); err != nil || gjson.GetBytes(b, "stream_options").Exists() {
			return
		}
		got, err := withUsageOption(b)
		want, werr := sjson.SetBytes(b, "stream_options.include_usage", true)
		if (err != nil) != (werr != nil) || string(got) != string(want) {
			t.Fatalf("%q: %q (%v), sjson %q (%v)", b, got, err, want, werr)
		}
	})
}
