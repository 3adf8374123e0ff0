package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/chatanswer"
	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// translateStream runs a chat stream through the translator (fixture.Upstream, fixture.ReadAll).
func translateStream(info RequestInfo, in []byte, oneByte bool) (*Stream, []byte, error) {
	s := NewStream(fixture.Upstream(in, oneByte), info)
	defer s.Close()
	out, err := fixture.ReadAll(s)
	return s, out, err
}

// TestMessagesStreamGolden translates each testdata/stream/*.sse chat stream and compares the
// Messages events with its .golden file (-update rewrites them). Every fixture is also fed one
// byte per read, which must not change the output, and every output must be well-formed.
func TestMessagesStreamGolden(t *testing.T) {
	info := testInfo(t)
	for _, f := range fixture.Files(t, "testdata/stream/*.sse") {
		name := strings.TrimSuffix(filepath.Base(f), ".sse")
		t.Run(name, func(t *testing.T) {
			fixture.GoldenStream(t, fixture.Read(t, f), strings.TrimSuffix(f, ".sse")+".golden", func(in []byte, oneByte bool) ([]byte, error) {
				_, out, err := translateStream(info, in, oneByte)
				return out, err
			}, wellFormedStream)
		})
	}
}

// wellFormedStream checks a translated stream against Anthropic's event grammar (PROVIDERS-2.md
// §2.2): complete events of one event line and one data line each, the data a JSON object whose
// type is the event's name; message_start first (or an error); blocks started at the next index,
// one open at a time, deltas of the open block's kind only, each block stopped; then one
// message_delta with a stop_reason and usage, then message_stop; nothing after message_stop or
// an error event.
func wellFormedStream(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		return errors.New("the output does not end with a complete event")
	}
	deltaOf := map[string]string{"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}
	open, blocks := "", 0 // the open block's type, blocks started
	ended, delta := false, false
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
		if d.Get("type").Str != name {
			return fmt.Errorf("event %d: %s carries type %q", i, name, d.Get("type").Str)
		}
		if (i == 0) != (name == "message_start") && name != "error" {
			return fmt.Errorf("event %d is %s", i, name)
		}
		switch name {
		case "message_start":
			m := d.Get("message")
			if m.Get("type").Str != "message" || m.Get("role").Str != "assistant" || !m.Get("content").IsArray() ||
				m.Get("stop_reason").Type != gjson.Null || !m.Get("usage.output_tokens").Exists() {
				return fmt.Errorf("message_start carries %s", m.Raw)
			}
		case "content_block_start":
			if open != "" || delta || d.Get("index").Int() != int64(blocks) || deltaOf[d.Get("content_block.type").Str] == "" {
				return fmt.Errorf("event %d starts a block out of order: %s", i, data)
			}
			open = d.Get("content_block.type").Str
			blocks++
		case "content_block_delta":
			if open == "" || d.Get("index").Int() != int64(blocks-1) || d.Get("delta.type").Str != deltaOf[open] {
				return fmt.Errorf("event %d is a delta outside its block: %s", i, data)
			}
		case "content_block_stop":
			if open == "" || d.Get("index").Int() != int64(blocks-1) {
				return fmt.Errorf("event %d stops a block that is not open: %s", i, data)
			}
			open = ""
		case "message_delta":
			if open != "" || delta || d.Get("delta.stop_reason").Str == "" || !d.Get("usage.output_tokens").Exists() {
				return fmt.Errorf("event %d: message_delta out of order or incomplete: %s", i, data)
			}
			delta = true
		case "message_stop":
			if !delta {
				return fmt.Errorf("event %d: message_stop without message_delta", i)
			}
			ended = true
		case "error":
			if d.Get("error.type").Str == "" || d.Get("error.message").Str == "" {
				return fmt.Errorf("event %d: error without type or message: %s", i, data)
			}
			ended = true
		default:
			return fmt.Errorf("event %d: unknown event %s", i, name)
		}
	}
	return nil
}

// TestMessagesStreamAccounting: the stream reports the usage and the text it delivered, for
// metering.
func TestMessagesStreamAccounting(t *testing.T) {
	info := testInfo(t)
	for _, tc := range []struct {
		fixture, text string
		usage         Usage
		failed        bool
	}{
		{"text", "Hello, \"world\"\n", Usage{Present: true, InputTokens: 4, OutputTokens: 4, CacheReadInputTokens: 8}, false},
		{"reasoning", "The user greets. Answer briefly.Hi!", Usage{Present: true, InputTokens: 5, OutputTokens: 9, ReasoningTokens: 6}, false},
		{"tool_calls", `{"city":"Paris"}{"tz":"CET"}`, Usage{Present: true, InputTokens: 30, OutputTokens: 20}, false},
		{"thinking_then_call", `Need the weather.Let me look.{"city":"Paris"}`, Usage{Present: true, InputTokens: 2, OutputTokens: 12, CacheReadInputTokens: 16, CacheCreationInputTokens: 2}, false},
		{"no_usage", "ok", Usage{}, false},
		{"cut", "par", Usage{}, false}, // its last chunk lacks the blank line that completes it
		{"upstream_error", "par", Usage{}, true},
		{"interleaved_calls", `{"city":{"city":"Oslo"}`, Usage{}, true},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			s, _, _ := translateStream(info, fixture.Read(t, "testdata/stream/"+tc.fixture+".sse"), true)
			if s.Text() != tc.text || s.Usage() != tc.usage || s.Failed() != tc.failed {
				t.Errorf("text %q usage %+v failed %v, want %q %+v %v", s.Text(), s.Usage(), s.Failed(), tc.text, tc.usage, tc.failed)
			}
		})
	}
}

// TestMessagesStreamCutThenError: after a cut the gateway appends an error event, and the whole
// is still well-formed.
func TestMessagesStreamCutThenError(t *testing.T) {
	s, out, err := translateStream(testInfo(t), fixture.Read(t, "testdata/stream/cut.sse"), false)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut stream ended with %v, want unexpected EOF", err)
	}
	out = s.AppendError(out, TypeAPI, "cut")
	if err := wellFormedStream(out); err != nil || !bytes.HasSuffix(out, []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"cut\"}}\n\n")) {
		t.Errorf("%v\n%s", err, out)
	}
}

// TestMessagesStreamIsIncremental: each upstream chunk is translated as soon as it arrives,
// without waiting for the next one or the end of the stream.
func TestMessagesStreamIsIncremental(t *testing.T) {
	pr, pw := io.Pipe()
	s := NewStream(pr, testInfo(t))
	defer s.Close()
	head := `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":`
	chunks := []string{
		head + `{"role":"assistant","content":"one"},"finish_reason":null}]}` + "\n\n",
		head + `{"content":"two"},"finish_reason":null}]}` + "\n\n",
		head + `{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}` + "\n\n",
	}
	want := []string{`"text":"one"`, `"text":"two"`, `"partial_json":"{}"`}
	fixture.Incremental(t, pw, s, chunks, want)
}

// TestMessagesStreamEventTooLarge: an event beyond the limit ends the stream with an error
// event rather than growing without bound.
func TestMessagesStreamEventTooLarge(t *testing.T) {
	in := "data: {\"x\":\"" + strings.Repeat("a", chatanswer.MaxEventBytes) + "\"}\n\n"
	s, out, err := translateStream(testInfo(t), []byte(in), false)
	if err != nil || !strings.Contains(string(out), `"type":"api_error"`) || !s.Failed() {
		t.Fatalf("got %q, %v", out, err)
	}
	if err := wellFormedStream(out); err != nil {
		t.Error(err)
	}
}
