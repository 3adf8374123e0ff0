package gemini

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/internal/fixture"
)

// testMeta fixes the clock and the fallback id so that outputs are reproducible.
func testMeta() answerMeta {
	return answerMeta{
		now:   func() time.Time { return time.Unix(1700000000, 0) },
		newID: func() string { return "generated" },
		model: "gemini-test",
	}
}

// readStream translates src, reading the output in pieces of size n (0: as large as it comes).
func readStream(src io.Reader, n int) ([]byte, error) {
	r := newStreamReader(io.NopCloser(src), testMeta(), true)
	defer r.Close()
	if n == 0 {
		return io.ReadAll(r)
	}
	var out []byte
	p := make([]byte, n)
	for {
		k, err := r.Read(p)
		out = append(out, p[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestGeminiStreamGolden translates each raw Gemini SSE fixture and compares the OpenAI chunks
// with its golden file, reading the upstream whole, one byte per read, and in odd pieces, so
// events and lines split across reads are covered.
func TestGeminiStreamGolden(t *testing.T) {
	for _, f := range fixture.Files(t, "testdata/stream/*.sse") {
		name := strings.TrimSuffix(filepath.Base(f), ".sse")
		t.Run(name, func(t *testing.T) {
			raw := fixture.Read(t, f)
			whole, err := readStream(bytes.NewReader(raw), 0)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := checkStream(whole); err != nil {
				t.Errorf("invalid OpenAI stream: %v\n%s", err, whole)
			}
			fixture.Golden(t, strings.TrimSuffix(f, ".sse")+".golden", whole)
			for _, v := range []struct {
				name string
				src  io.Reader
				n    int
			}{
				{"one byte per read", iotest.OneByteReader(bytes.NewReader(raw)), 1},
				{"half reads", iotest.HalfReader(bytes.NewReader(raw)), 7},
				{"data with EOF", iotest.DataErrReader(bytes.NewReader(raw)), 3},
			} {
				got, err := readStream(v.src, v.n)
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				if !bytes.Equal(got, whole) {
					t.Errorf("%s: output differs from a whole read:\n%s", v.name, got)
				}
			}
		})
	}
}

// checkStream checks the shape of a translated stream: every event is one data line of JSON (or
// [DONE]); a complete stream has exactly one finish_reason chunk, at most one usage chunk after
// it and [DONE] last; a failed one ends with an error event and has no [DONE].
func checkStream(out []byte) error {
	if len(out) == 0 {
		return errors.New("empty output")
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		return errors.New("output does not end with a blank line")
	}
	events := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
	finishes, usages, done := 0, 0, false
	callIndex := 0
	ids := map[string]bool{}
	for i, ev := range events {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			return fmt.Errorf("event %d is not a single data line: %q", i, ev)
		}
		if done {
			return fmt.Errorf("event %d after [DONE]", i)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		if !gjson.Valid(data) {
			return fmt.Errorf("event %d is not JSON: %s", i, data)
		}
		j := gjson.Parse(data)
		if j.Get("error").Exists() {
			if i != len(events)-1 {
				return fmt.Errorf("error event %d is not the last", i)
			}
			if j.Get("error.message").Str == "" || j.Get("error.type").Str == "" {
				return fmt.Errorf("error event without message or type: %s", data)
			}
			continue
		}
		if j.Get("object").Str != "chat.completion.chunk" || j.Get("id").Str == "" {
			return fmt.Errorf("event %d is not a chunk: %s", i, data)
		}
		if u := j.Get("usage"); u.Exists() {
			usages++
			if n := j.Get("choices.#").Int(); n != 0 {
				return fmt.Errorf("usage chunk with %d choices", n)
			}
			if u.Get("total_tokens").Int() != u.Get("prompt_tokens").Int()+u.Get("completion_tokens").Int() {
				return fmt.Errorf("usage does not add up: %s", u.Raw)
			}
			continue
		}
		if usages > 0 {
			return fmt.Errorf("chunk %d after the usage chunk", i)
		}
		if finishes > 0 {
			return fmt.Errorf("chunk %d after the finish chunk", i)
		}
		if j.Get("choices.0.finish_reason").Type != gjson.Null {
			finishes++
		}
		var err error
		j.Get("choices.0.delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
			if tc.Get("index").Int() != int64(callIndex) {
				err = fmt.Errorf("tool call index %d, want %d", tc.Get("index").Int(), callIndex)
			}
			id := tc.Get("id").Str
			if id == "" || ids[id] {
				err = fmt.Errorf("tool call id %q empty or repeated", id)
			}
			if args := tc.Get("function.arguments").Str; !gjson.Valid(args) {
				err = fmt.Errorf("tool call arguments are not JSON: %q", args)
			}
			ids[id] = true
			callIndex++
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	last := events[len(events)-1]
	switch {
	case done && (finishes != 1 || usages > 1):
		return fmt.Errorf("complete stream with %d finish chunks and %d usage chunks", finishes, usages)
	case !done && (!strings.Contains(last, `"error"`) || finishes != 0):
		return fmt.Errorf("failed stream must end with an error event and no finish chunk; last event %q", last)
	}
	return nil
}

// TestGeminiStreamIsIncremental proves that a chunk is handed out as soon as its upstream event
// is complete, while the upstream stream is still open.
func TestGeminiStreamIsIncremental(t *testing.T) {
	pr, pw := io.Pipe()
	r := newStreamReader(pr, testMeta(), true)
	defer r.Close()
	go func() {
		_, _ = io.WriteString(pw, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"first\"}]}}]}\r\n\r\n")
		// The stream stays open: the reader must not wait for more.
	}()
	got := make(chan string, 1)
	go func() {
		p := make([]byte, 4096)
		n, _ := r.Read(p)
		got <- string(p[:n])
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, `"content":"first"`) {
			t.Errorf("first read = %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first chunk was not delivered while the upstream stream stayed open")
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
}

// TestGeminiStreamReadErrorPassesThrough: a dropped upstream connection is a read error, as with
// a passthrough adapter, after the chunks already translated.
func TestGeminiStreamReadErrorPassesThrough(t *testing.T) {
	src := io.MultiReader(strings.NewReader("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}\r\n\r\ndata: {\"cand"),
		iotest.ErrReader(io.ErrUnexpectedEOF))
	out, err := readStream(src, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if !strings.Contains(string(out), `"content":"x"`) || strings.Contains(string(out), "[DONE]") {
		t.Errorf("output = %q", out)
	}
}

// TestGeminiStreamWithoutIncludeUsage: no usage chunk unless stream_options.include_usage.
func TestGeminiStreamWithoutIncludeUsage(t *testing.T) {
	raw, err := os.ReadFile("testdata/stream/text.sse")
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(newStreamReader(io.NopCloser(bytes.NewReader(raw)), testMeta(), false))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), `"usage"`) || !strings.HasSuffix(string(out), "data: [DONE]\n\n") {
		t.Errorf("output = %s", out)
	}
}

// TestGeminiStreamHugeEvent: an event beyond the size bound fails the stream cleanly.
func TestGeminiStreamHugeEvent(t *testing.T) {
	src := io.MultiReader(strings.NewReader("data: \""), repeatReader('a', maxEventBytes+10))
	out, err := readStream(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "larger than the gateway accepts") {
		t.Errorf("output = %.200s", out)
	}
}

func repeatReader(b byte, n int) io.Reader {
	return io.LimitReader(byteRepeater(b), int64(n))
}

type byteRepeater byte

func (r byteRepeater) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
