package anthropic

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

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

const (
	testModel   = "claude-test"
	testCreated = 1700000000
)

// translateAll runs a stream through the translator, reading its output into a small buffer so
// that events are also split across the caller's reads. oneByte makes every upstream read return
// a single byte, so every event arrives split.
func translateAll(in []byte, includeUsage, oneByte bool) ([]byte, error) {
	s := newStreamReader(fixture.Upstream(in, oneByte), testModel, testCreated, includeUsage)
	defer s.Close()
	return fixture.ReadAll(s)
}

// TestStreamGolden translates each testdata/stream/*.sse fixture (written from Anthropic's
// documented event format) and compares the OpenAI chunks with its .golden file; -update rewrites
// them. Every fixture is also fed one byte per read, which must not change the output.
func TestAnthropicStreamGolden(t *testing.T) {
	for _, f := range fixture.Files(t, "testdata/stream/*.sse") {
		for _, includeUsage := range []bool{true, false} {
			name := strings.TrimSuffix(filepath.Base(f), ".sse")
			golden := strings.TrimSuffix(f, ".sse") + ".golden"
			if !includeUsage {
				if name != "text" && name != "cache_usage" {
					continue // one case is enough to show the usage chunk goes away
				}
				name += "_no_include_usage"
				golden = strings.TrimSuffix(f, ".sse") + ".no_include_usage.golden"
			}
			t.Run(name, func(t *testing.T) {
				fixture.GoldenStream(t, fixture.Read(t, f), golden, func(in []byte, oneByte bool) ([]byte, error) {
					return translateAll(in, includeUsage, oneByte)
				}, wellFormed)
			})
		}
	}
}

// wellFormed checks a translated stream: complete `data: …` events only, each a JSON object or
// [DONE]; nothing after [DONE]; a stream with [DONE] has exactly one chunk with a finish_reason
// and at most one usage chunk (choices: []), right before [DONE]; an error event is the last
// event, and such a stream has no [DONE].
func wellFormed(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		return errors.New("the output does not end with a complete event")
	}
	events := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
	finishes, usages, done, errEvents := 0, 0, false, 0
	for i, ev := range events {
		if done || errEvents > 0 {
			return fmt.Errorf("event %d comes after the end: %q", i, ev)
		}
		if strings.ContainsAny(ev, "\n\r") {
			return fmt.Errorf("event %d spans several lines: %q", i, ev)
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			return fmt.Errorf("event %d is not a data line: %q", i, ev)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c struct {
			Error   *json.RawMessage `json:"error"`
			Object  string           `json:"object"`
			Choices *[]struct {
				Delta        map[string]json.RawMessage `json:"delta"`
				FinishReason *string                    `json:"finish_reason"`
			} `json:"choices"`
			Usage *json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return fmt.Errorf("event %d is not JSON: %v: %q", i, err, data)
		}
		switch {
		case c.Error != nil:
			errEvents++
		case c.Object != "chat.completion.chunk" || c.Choices == nil:
			return fmt.Errorf("event %d is not a chunk: %q", i, data)
		case len(*c.Choices) == 0:
			if c.Usage == nil {
				return fmt.Errorf("event %d has no choices and no usage", i)
			}
			usages++
			if finishes == 0 {
				return fmt.Errorf("the usage chunk comes before the finish chunk")
			}
		default:
			if usages > 0 {
				return fmt.Errorf("event %d comes after the usage chunk", i)
			}
			if (*c.Choices)[0].FinishReason != nil {
				finishes++
			} else if finishes > 0 {
				return fmt.Errorf("event %d comes after the finish chunk", i)
			}
		}
	}
	if done && (finishes != 1 || usages > 1) {
		return fmt.Errorf("a complete stream has %d finish chunks and %d usage chunks", finishes, usages)
	}
	if !done && (finishes > 0 || usages > 0) && errEvents == 0 {
		return errors.New("a finish or usage chunk in a stream that did not complete")
	}
	return nil
}

// TestStreamIsIncremental: each upstream event is translated as soon as it arrives, without
// waiting for the next one or the end of the stream.
func TestAnthropicStreamIsIncremental(t *testing.T) {
	pr, pw := io.Pipe()
	s := newStreamReader(pr, testModel, testCreated, true)
	defer s.Close()
	events := []string{
		`event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3,"output_tokens":1}}}` + "\n\n",
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"one"}}` + "\n\n",
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"two"}}` + "\n\n",
	}
	want := []string{`"role":"assistant"`, `"content":"one"`, `"content":"two"`}
	buf := make([]byte, 4096)
	for i, ev := range events {
		go func() { _, _ = io.WriteString(pw, ev) }()
		got := make(chan string, 1)
		go func() {
			n, _ := s.Read(buf)
			got <- string(buf[:n])
		}()
		select {
		case g := <-got:
			if !strings.Contains(g, want[i]) {
				t.Fatalf("event %d: read %q, want a chunk with %s", i, g, want[i])
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d was not translated before the next one arrived", i)
		}
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if _, err := s.Read(buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after a cut: %v, want unexpected EOF", err)
	}
}

// TestStreamEventTooLarge: an event beyond the limit ends the stream with an error event rather
// than growing without bound.
func TestAnthropicStreamEventTooLarge(t *testing.T) {
	in := "data: {\"type\":\"ping\",\"x\":\"" + strings.Repeat("a", maxEventBytes) + "\"}\n\n"
	out, err := translateAll([]byte(in), true, false)
	if err != nil || !strings.Contains(string(out), `"code":"bad_upstream_event"`) {
		t.Fatalf("got %q, %v", out, err)
	}
	if err := wellFormed(out); err != nil {
		t.Error(err)
	}
}
