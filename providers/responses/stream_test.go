package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/internal/chatanswer"
	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// testClock is the fixed time of the tests' Responses.
func testClock() time.Time { return time.Unix(1700000100, 0) }

// testInfo is the RequestInfo of a streamed request with a fixed id and clock.
func testInfo(t testing.TB) RequestInfo {
	t.Helper()
	_, info, err := ToChat([]byte(`{"model":"pub-model","input":"hi","stream":true,"instructions":"Be brief.","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`),
		Options{Now: testClock})
	if err != nil {
		t.Fatal(err)
	}
	info.ResponseID = "resp_test"
	return info
}

// translateStream runs a chat stream through the translator (fixture.Upstream, fixture.ReadAll).
func translateStream(info RequestInfo, in []byte, oneByte bool) (*Stream, []byte, error) {
	s := NewStream(fixture.Upstream(in, oneByte), info)
	defer s.Close()
	out, err := fixture.ReadAll(s)
	return s, out, err
}

// TestResponsesStreamGolden translates each testdata/stream/*.sse chat stream and compares the
// Responses events with its .golden file (-update rewrites them). Every fixture is also fed one
// byte per read, which must not change the output, and every output must be well-formed.
func TestResponsesStreamGolden(t *testing.T) {
	info := testInfo(t)
	for _, f := range fixture.Files(t, "testdata/stream/*.sse") {
		name := strings.TrimSuffix(filepath.Base(f), ".sse")
		t.Run(name, func(t *testing.T) {
			var whole *Stream // the stream read whole, the first translation
			out := fixture.GoldenStream(t, fixture.Read(t, f), strings.TrimSuffix(f, ".sse")+".golden", func(in []byte, oneByte bool) ([]byte, error) {
				s, out, err := translateStream(info, in, oneByte)
				if !oneByte {
					whole = s
				}
				return out, err
			}, wellFormedStream)
			if whole.Response() != nil && !bytes.Contains(out, whole.Response()) {
				t.Errorf("Response() is not the terminal event's response: %s", whole.Response())
			}
		})
	}
}

// wellFormedStream checks a translated stream: complete events of one event line and one data
// line each, the data a JSON object whose type is the event's name and whose sequence_number
// counts from 0 by one; response.created then response.in_progress first; every
// output_item.added closed by one output_item.done with the same output_index, indexes in
// order; deltas only inside their open item; nothing after a terminal event or an error event;
// a terminal Response whose output lists the done items in order.
func wellFormedStream(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		return errors.New("the output does not end with a complete event")
	}
	var done []string
	open := map[int64]string{}     // output_index → item id
	parts := map[string][]string{} // item id → its content parts, as content_part.done gave them
	ended := false
	for i, ev := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		if ended {
			return fmt.Errorf("event %d comes after the end: %q", i, ev)
		}
		lines := strings.Split(ev, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: ") {
			return fmt.Errorf("event %d is not one event line and one data line: %q", i, ev)
		}
		name, data := strings.TrimPrefix(lines[0], "event: "), strings.TrimPrefix(lines[1], "data: ")
		if !json.Valid([]byte(data)) {
			return fmt.Errorf("event %d is not JSON: %q", i, data)
		}
		d := gjson.Parse(data)
		if d.Get("type").Str != name || !d.Get("sequence_number").Exists() || d.Get("sequence_number").Int() != int64(i) {
			return fmt.Errorf("event %d: type %q, sequence_number %s", i, d.Get("type").Str, d.Get("sequence_number").Raw)
		}
		switch {
		case i == 0 && name != "response.created" && name != "error", i == 1 && name != "response.in_progress" && name != "error":
			return fmt.Errorf("event %d is %s", i, name)
		case name == "response.output_item.added":
			idx := d.Get("output_index").Int()
			if idx != int64(len(done)+len(open)) || d.Get("item.id").Str == "" {
				return fmt.Errorf("event %d adds item %d with %d done and %d open", i, idx, len(done), len(open))
			}
			open[idx] = d.Get("item.id").Str
		case name == "response.output_item.done":
			idx := d.Get("output_index").Int()
			if open[idx] != d.Get("item.id").Str || idx != int64(len(done)) {
				return fmt.Errorf("event %d closes item %d, which is not the next open one", i, idx)
			}
			delete(open, idx)
			done = append(done, d.Get("item").Raw)
			if c := d.Get("item.content"); c.IsArray() {
				var got []string
				c.ForEach(func(_, p gjson.Result) bool { got = append(got, p.Raw); return true })
				if strings.Join(got, ",") != strings.Join(parts[d.Get("item.id").Str], ",") {
					return fmt.Errorf("event %d: the item's content is not its done parts", i)
				}
			}
		case name == "response.content_part.done":
			id := d.Get("item_id").Str
			if open[d.Get("output_index").Int()] != id || d.Get("content_index").Int() != int64(len(parts[id])) {
				return fmt.Errorf("event %d ends a part out of order: %s", i, data)
			}
			parts[id] = append(parts[id], d.Get("part").Raw)
		case d.Get("item_id").Exists():
			if open[d.Get("output_index").Int()] != d.Get("item_id").Str {
				return fmt.Errorf("event %d is about an item that is not open: %s", i, data)
			}
		case name == "response.completed" || name == "response.incomplete":
			ended = true
			if len(open) > 0 {
				return fmt.Errorf("the stream ended with %d items open", len(open))
			}
			var items []string
			d.Get("response.output").ForEach(func(_, it gjson.Result) bool { items = append(items, it.Raw); return true })
			if strings.Join(items, ",") != strings.Join(done, ",") {
				return fmt.Errorf("the response's output is not the done items")
			}
			if st := d.Get("response.status").Str; "response."+st != name {
				return fmt.Errorf("%s carries status %s", name, st)
			}
		case name == "error":
			ended = true
		}
	}
	return nil
}

// TestResponsesStreamAccounting: the stream reports the usage and the text it delivered, for
// metering, and a final Response the gateway can store.
func TestResponsesStreamAccounting(t *testing.T) {
	info := testInfo(t)
	for _, tc := range []struct {
		fixture, text string
		usage         Usage
		final         bool
	}{
		{"text", "Hello, \"world\"\n", Usage{Found: true, InputTokens: 12, OutputTokens: 4, CachedTokens: 8}, true},
		{"reasoning", "The user greets. Answer briefly.Hi!", Usage{Found: true, InputTokens: 5, OutputTokens: 9, ReasoningTokens: 6}, true},
		{"tool_calls", `{"city":"Paris"}{"tz":"CET"}`, Usage{Found: true, InputTokens: 30, OutputTokens: 20}, true},
		{"no_usage", "ok", Usage{}, true},
		{"cut", "par", Usage{}, false}, // its last chunk lacks the blank line that completes it,
		{"upstream_error", "par", Usage{}, false},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			s, _, _ := translateStream(info, fixture.Read(t, "testdata/stream/"+tc.fixture+".sse"), true)
			if s.Text() != tc.text || s.Usage() != tc.usage || (s.Response() != nil) != tc.final {
				t.Errorf("text %q usage %+v final %v, want %q %+v %v", s.Text(), s.Usage(), s.Response() != nil, tc.text, tc.usage, tc.final)
			}
		})
	}
}

// TestResponsesStreamCutThenError: after a cut the gateway appends an error event that continues
// the sequence numbers, and the whole is still well-formed.
func TestResponsesStreamCutThenError(t *testing.T) {
	s, out, err := translateStream(testInfo(t), fixture.Read(t, "testdata/stream/cut.sse"), false)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut stream ended with %v, want unexpected EOF", err)
	}
	out = s.AppendError(out, api.NewError(api.TypeUpstream, "stream_interrupted", "", "cut"))
	if err := wellFormedStream(out); err != nil || !bytes.HasSuffix(out, []byte(`"code":"stream_interrupted","message":"cut","param":null}`+"\n\n")) {
		t.Errorf("%v\n%s", err, out)
	}
}

// TestResponsesStreamIsIncremental: each upstream chunk is translated as soon as it arrives,
// without waiting for the next one or the end of the stream.
func TestResponsesStreamIsIncremental(t *testing.T) {
	pr, pw := io.Pipe()
	s := NewStream(pr, testInfo(t))
	defer s.Close()
	head := `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":`
	chunks := []string{
		head + `{"role":"assistant","content":"one"},"finish_reason":null}]}` + "\n\n",
		head + `{"content":"two"},"finish_reason":null}]}` + "\n\n",
		head + `{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}` + "\n\n",
	}
	want := []string{`"delta":"one"`, `"delta":"two"`, `"type":"response.function_call_arguments.delta"`}
	fixture.Incremental(t, pw, s, chunks, want)
}

// TestResponsesStreamEventTooLarge: an event beyond the limit ends the stream with an error
// event rather than growing without bound.
func TestResponsesStreamEventTooLarge(t *testing.T) {
	in := "data: {\"x\":\"" + strings.Repeat("a", chatanswer.MaxEventBytes) + "\"}\n\n"
	s, out, err := translateStream(testInfo(t), []byte(in), false)
	if err != nil || !strings.Contains(string(out), `"code":"bad_upstream_event"`) || !s.Failed() {
		t.Fatalf("got %q, %v", out, err)
	}
	if err := wellFormedStream(out); err != nil {
		t.Error(err)
	}
}

// TestResponsesStreamCallArgumentsAfterAnotherCall: arguments of a call that arrive after a
// second call began still land in the first one (each call's arguments are kept by value in a
// slice that grows as calls begin; a strings.Builder there panicked when copied by the growth).
func TestResponsesStreamCallArgumentsAfterAnotherCall(t *testing.T) {
	chunk := func(delta string) string {
		return `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}` + "\n\n"
	}
	in := chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}`) +
		chunk(`{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]}`) +
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Rome\"}"}}]}`) +
		`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"
	_, out, err := translateStream(testInfo(t), []byte(in), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"arguments":"{\"city\":\"Rome\"}","call_id":"call_a"`, `"arguments":"{\"city\":\"Oslo\"}","call_id":"call_b"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the translated stream lacks %s:\n%s", want, out)
		}
	}
}
