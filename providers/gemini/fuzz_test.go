package gemini

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// FuzzGeminiStream feeds arbitrary bytes to the stream translator as Gemini's SSE body. Whatever
// arrives, the output must be a well-formed OpenAI stream (see checkStream), and reading the
// upstream one byte at a time must not change it.
func FuzzGeminiStream(f *testing.F) {
	fixture.Seed(f, "testdata/stream/*.sse")
	for _, s := range []string{
		"", "data: [DONE]\n\n", "data:\n\n", "data: {}\n\n", "data: []\r\n\r\n", ": ping\n\n",
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\"}]}",
		"data: {\"candidates\":[{\"index\":1,\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}]}\n\n",
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":[1]}}]},\"finishReason\":\"STOP\"}]}\n\n",
		"data: {\"error\":{\"code\":\"x\"}}\n\n",
		"data: {\"usageMetadata\":{\"promptTokenCount\":-5,\"candidatesTokenCount\":9e99},\"candidates\":[{\"finishReason\":\"OTHER\"}]}\n\n",
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\\u2028\\ud800\"}]},\"finishReason\":\"STOP\"}],\"responseId\":\"a b\"}\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, err := readStream(bytes.NewReader(data), 0)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if err := checkStream(whole); err != nil {
			t.Fatalf("%v\ninput: %q\noutput: %s", err, data, whole)
		}
		split, err := readStream(iotest.OneByteReader(bytes.NewReader(data)), 1)
		if err != nil {
			t.Fatalf("read one byte at a time: %v", err)
		}
		if !bytes.Equal(split, whole) {
			t.Fatalf("split reads changed the output\ninput: %q\nwhole: %s\nsplit: %s", data, whole, split)
		}
	})
}

// FuzzGeminiRequest feeds arbitrary bodies to the request translator: it either refuses them with
// a requestError or produces a generateContent body that is valid JSON with non-empty contents
// of valid roles, each with parts.
func FuzzGeminiRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"max_tokens":5,"stop":["x"]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c__thought__s","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c__thought__s","content":"ok"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":["integer","null"]}},"required":["a"],"additionalProperties":false}}}],"tool_choice":"required"}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"$defs":{"A":{"type":"string"}},"type":"object","properties":{"a":{"$ref":"#/$defs/A"},"b":{"oneOf":[{"const":"x"},{"enum":[1,"y"]}]}}}}}],"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"array","items":[{"type":"string"}]}}}}`,
		`{"model":"m","messages":[{"role":"developer","content":"d"},{"role":"user","content":"x"}],"reasoning_effort":"medium","n":1,"temperature":1e-3}`,
		`{"messages":[]}`, `[]`, `{"messages":[{"role":"tool"}]}`, `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:;base64,x"}}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := translateRequest(body)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || re.msg == "" {
				t.Fatalf("error %T %v is not a requestError with a message", err, err)
			}
			return
		}
		if !gjson.ValidBytes(tr.body) {
			t.Fatalf("output is not JSON: %s", tr.body)
		}
		out := gjson.ParseBytes(tr.body)
		contents := out.Get("contents").Array()
		if len(contents) == 0 {
			t.Fatalf("no contents: %s", tr.body)
		}
		for i, c := range contents {
			if r := c.Get("role").Str; r != "user" && r != "model" {
				t.Fatalf("contents[%d] has role %q", i, r)
			}
			if i > 0 && c.Get("role").Str == contents[i-1].Get("role").Str {
				t.Fatalf("contents[%d] repeats its predecessor's role", i)
			}
			if c.Get("parts.#").Int() == 0 {
				t.Fatalf("contents[%d] has no parts", i)
			}
		}
		if bytes.Contains(tr.body, []byte(`"additionalProperties"`)) && !bytes.Contains(body, []byte(`"additionalProperties"`)) {
			t.Fatalf("a keyword appeared from nowhere: %s", tr.body)
		}
		out.Get("tools.0.functionDeclarations").ForEach(func(_, d gjson.Result) bool {
			checkCleanSchema(t, d.Get("parameters"))
			return true
		})
		checkCleanSchema(t, out.Get("generationConfig.responseSchema"))
	})
}

// checkCleanSchema fails when a cleaned schema still holds a keyword Gemini refuses.
func checkCleanSchema(t *testing.T, s gjson.Result) {
	t.Helper()
	if !s.IsObject() {
		return
	}
	s.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "additionalProperties", "$schema", "$ref", "$defs", "definitions", "oneOf", "allOf", "const", "strict":
			t.Fatalf("keyword %q left in %s", k.Str, s.Raw)
		case "properties":
			v.ForEach(func(_, p gjson.Result) bool { checkCleanSchema(t, p); return true })
		case "items":
			checkCleanSchema(t, v)
		case "anyOf":
			v.ForEach(func(_, p gjson.Result) bool { checkCleanSchema(t, p); return true })
		}
		return true
	})
}

// FuzzGeminiSchema feeds schema-heavy tool definitions to the request translator: the fuzzed
// schema is the parameters of three tools and the response schema of one request. Whatever it
// holds, translation must not panic, must answer a requestError or valid JSON, and must stay
// within the $ref expansion budget: what $refs produce is bounded per request, and the rest of
// the output is linear in the body.
func FuzzGeminiSchema(f *testing.F) {
	for _, s := range []string{
		fanOutSchema(3, 4), fanOutSchema(5, 3), fanOutSchema(10, 2), fanOutSchema(2, 12),
		`{"type":"object","$defs":{"A":{"type":"object","properties":{"s":{"type":["string","null"]}}}},"properties":{"a":{"$ref":"#/$defs/A"},"b":{"items":{"$ref":"#/$defs/A"}},"c":{"anyOf":[{"$ref":"#/$defs/A"},{"$ref":"#/$defs/A"}]}}}`,
		`{"definitions":{"N":{"properties":{"n":{"$ref":"#/definitions/N"}}}},"$ref":"#/definitions/N"}`,
		`{"$defs":{"E":{"enum":["a","b","c"],"description":"` + strings.Repeat("d", 200) + `"},"F":{"properties":{"a":{"$ref":"#/$defs/E"},"b":{"$ref":"#/$defs/E"},"c":{"$ref":"#/$defs/E"}}}},"properties":{"x":{"$ref":"#/$defs/F"},"y":{"$ref":"#/$defs/F"}}}`,
		`{"type":["integer","number","string","boolean","null"],"oneOf":[{"const":"x"}],"items":[{"$ref":"#/$defs/X"}],"$defs":{"X":true}}`,
		`{}`, `[]`, `"x"`, `{"$ref":"#/$defs/"}`,
	} {
		f.Add([]byte(s))
	}
	// A small budget, so that the fuzzer spends its executions on inputs rather than on producing
	// 10,000 nodes each time; the bound being checked is the same whatever its size.
	const nodes, bytes = 300, 16 << 10
	f.Fuzz(func(t *testing.T, schema []byte) {
		b := schemaBudget{maxNodes: nodes, maxBytes: bytes}
		if out, err := cleanSchema("p", "The schema", gjson.ParseBytes(schema), &b); err == nil && !gjson.ValidBytes(out) {
			t.Fatalf("cleaned schema is not JSON: %s", out)
		}
		// Past the budget by at most one node's own keywords, which come from the input.
		if b.refNodes > nodes+1 || b.refBytes > bytes+16*len(schema)+64 {
			t.Fatalf("expansion produced %d nodes, %d bytes; budget %d, %d", b.refNodes, b.refBytes, nodes, bytes)
		}

		tool := func(name string) string {
			return `{"type":"function","function":{"name":"` + name + `","parameters":` + string(schema) + `}}`
		}
		body := []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[` + tool("a") + `,` + tool("b") + `,` + tool("c") +
			`],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + string(schema) + `}}}`)
		tr, err := translateRequestBudget(body, schemaBudget{maxNodes: nodes, maxBytes: bytes})
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || re.msg == "" {
				t.Fatalf("error %T %v is not a requestError with a message", err, err)
			}
			return
		}
		if !gjson.ValidBytes(tr.body) {
			t.Fatalf("output is not JSON: %s", tr.body)
		}
		// Without $refs a schema translates to at most a few times its size (escapes, a type list
		// spelled as anyOf); with them, at most the budget more, for all four schemas together.
		if limit := 16*len(body) + bytes + 1024; len(tr.body) > limit {
			t.Fatalf("output of %d bytes from a body of %d; limit %d", len(tr.body), len(body), limit)
		}
		out := gjson.ParseBytes(tr.body)
		out.Get("tools.0.functionDeclarations").ForEach(func(_, d gjson.Result) bool {
			checkCleanSchema(t, d.Get("parameters"))
			return true
		})
		checkCleanSchema(t, out.Get("generationConfig.responseSchema"))
	})
}
