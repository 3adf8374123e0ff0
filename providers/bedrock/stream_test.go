package bedrock

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/internal/fixture"
)

const (
	testModel   = "us.anthropic.claude-test-v1:0"
	testCreated = 1700000000
)

// encodeSpec builds an event-stream body with the SDK's encoder from a fixture's spec, one
// message per line:
//
//	chunk <json>             an InvokeModelWithResponseStream chunk: {"bytes": base64(json)}
//	event <type> <json>      an event message of that :event-type
//	exception <type> <json>  an exception message
//	error <code> <message>   an error message
//	crc                      the CRC of the message before is made wrong
//	cut <n>                  the last n bytes are dropped
func encodeSpec(t testing.TB, spec []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	enc := eventstream.NewEncoder()
	sc := bufio.NewScanner(bytes.NewReader(spec))
	sc.Buffer(nil, 1<<20)
	str := func(s string) eventstream.Value { return eventstream.StringValue(s) }
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verb, rest, _ := strings.Cut(line, " ")
		name, payload, _ := strings.Cut(rest, " ")
		var m eventstream.Message
		switch verb {
		case "chunk":
			p, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(rest)), "p": "abcd"})
			m = eventstream.Message{Headers: eventstream.Headers{{Name: ":event-type", Value: str("chunk")},
				{Name: ":content-type", Value: str("application/json")}, {Name: ":message-type", Value: str("event")}}, Payload: p}
		case "event":
			m = eventstream.Message{Headers: eventstream.Headers{{Name: ":event-type", Value: str(name)},
				{Name: ":content-type", Value: str("application/json")}, {Name: ":message-type", Value: str("event")}}, Payload: []byte(payload)}
		case "exception":
			m = eventstream.Message{Headers: eventstream.Headers{{Name: ":exception-type", Value: str(name)},
				{Name: ":content-type", Value: str("application/json")}, {Name: ":message-type", Value: str("exception")}}, Payload: []byte(payload)}
		case "error":
			m = eventstream.Message{Headers: eventstream.Headers{{Name: ":error-code", Value: str(name)},
				{Name: ":error-message", Value: str(payload)}, {Name: ":message-type", Value: str("error")}}}
		case "crc":
			b := out.Bytes()
			binary.BigEndian.PutUint32(b[len(b)-4:], binary.BigEndian.Uint32(b[len(b)-4:])^1)
			continue
		case "cut":
			n, _ := strconv.Atoi(rest)
			out.Truncate(out.Len() - n)
			continue
		default:
			t.Fatalf("unknown spec line %q", line)
		}
		if err := enc.Encode(&out, m); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// translateStream runs an event-stream body through the translation its fixture's name says
// (invoke_…: InvokeModelWithResponseStream, converse_…: ConverseStream), reading the upstream
// one byte per read when oneByte is set.
func translateStream(in []byte, invoke, oneByte bool) ([]byte, error) {
	var r io.Reader = bytes.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	body := io.NopCloser(r)
	var s io.ReadCloser
	if invoke {
		s = anthropic.NewChatStream(newInvokeEvents(body), testModel, testCreated, true)
	} else {
		s = newConverseStream(body, "chatcmpl-bdrk-test", testModel, testCreated, true)
	}
	defer s.Close()
	return fixture.ReadAll(s)
}

// TestStreamGolden: each testdata/stream/*.txt fixture, encoded into AWS's event-stream framing
// with the SDK's encoder, is decoded and translated into OpenAI chunks, read whole and one byte
// per read (which must not change anything), and compared with its .golden file (-update
// rewrites them). The fixtures include a CRC mismatch, a body cut inside a message, exception
// and error messages: each must end the stream with an error event or an unexpected EOF, never
// with [DONE].
func TestStreamGolden(t *testing.T) {
	for _, f := range fixture.Files(t, "testdata/stream/*.txt") {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			in := encodeSpec(t, fixture.Read(t, f))
			out := fixture.GoldenStream(t, in, strings.TrimSuffix(f, ".txt")+".golden", func(in []byte, oneByte bool) ([]byte, error) {
				return translateStream(in, strings.HasPrefix(name, "invoke_"), oneByte)
			}, wellFormed)
			complete := bytes.HasSuffix(out, []byte("data: [DONE]\n\n"))
			if wantComplete := strings.HasSuffix(name, "_text") || strings.HasSuffix(name, "_tools"); complete != wantComplete {
				t.Errorf("complete %v, want %v:\n%s", complete, wantComplete, out)
			}
		})
	}
}

// TestFrameReaderErrors: the decoder's verdicts on bodies that are not well-formed.
func TestFrameReaderErrors(t *testing.T) {
	good := encodeSpec(t, []byte(`event messageStart {"role":"assistant"}`))
	for _, tc := range []struct {
		name string
		in   []byte
		bad  bool
	}{
		{"empty body", nil, false},
		{"one whole message", good, false},
		{"cut in the prelude", good[:5], true},
		{"cut in the payload", good[:len(good)-6], true},
		{"prelude CRC wrong", append(append(append([]byte{}, good[:8]...), good[8]^0xff), good[9:]...), true},
		{"length beyond the limit", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}, true},
		{"no message type", encodeSpecMessage(t, eventstream.Message{Payload: []byte("{}")}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFrameReader(iotest.OneByteReader(bytes.NewReader(tc.in)))
			var err error
			for err == nil {
				_, err = fr.next()
			}
			if got := isBadFrame(err); got != tc.bad || (!tc.bad && err != io.EOF) {
				t.Errorf("error %v, want malformed %v", err, tc.bad)
			}
		})
	}
	// A failure of the body itself is not a malformed message: it is passed on as it is.
	boom := errors.New("connection reset")
	fr := newFrameReader(io.MultiReader(bytes.NewReader(good[:10]), iotest.ErrReader(boom)))
	if _, err := fr.next(); !errors.Is(err, boom) || isBadFrame(err) {
		t.Errorf("a reset mid-message: %v", err)
	}
}

func encodeSpecMessage(t testing.TB, m eventstream.Message) []byte {
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wellFormed checks a translated stream: complete `data: …` events only, each a JSON object or
// [DONE]; nothing after [DONE] or after an error event; a complete stream has exactly one
// finish chunk, and the usage chunk (if any) after it.
func wellFormed(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		return errors.New("the output does not end with a complete event")
	}
	finishes, usages, done, failed := 0, 0, false, false
	for i, ev := range strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n") {
		if done || failed {
			return fmt.Errorf("event %d comes after the end: %q", i, ev)
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.ContainsAny(data, "\r\n") {
			return fmt.Errorf("event %d is not one data line: %q", i, ev)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c struct {
			Error   *json.RawMessage `json:"error"`
			Object  string           `json:"object"`
			Choices *[]struct {
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return fmt.Errorf("event %d is not JSON: %v: %q", i, err, data)
		}
		switch {
		case c.Error != nil:
			failed = true
		case c.Object != "chat.completion.chunk" || c.Choices == nil:
			return fmt.Errorf("event %d is not a chunk: %q", i, data)
		case len(*c.Choices) == 0:
			if c.Usage == nil || finishes == 0 {
				return fmt.Errorf("event %d: a usage chunk without usage or before the finish", i)
			}
			usages++
		case (*c.Choices)[0].FinishReason != nil:
			finishes++
		case finishes > 0:
			return fmt.Errorf("event %d comes after the finish chunk", i)
		}
	}
	if done && (finishes != 1 || usages > 1) {
		return fmt.Errorf("a complete stream has %d finish chunks and %d usage chunks", finishes, usages)
	}
	return nil
}

// FuzzEventStream: whatever bytes the upstream sends, neither translation panics, both outputs
// are well-formed, and reading one byte at a time changes nothing.
func FuzzEventStream(f *testing.F) {
	for _, path := range fixture.Files(f, "testdata/stream/*.txt") {
		f.Add(encodeSpec(f, fixture.Read(f, path)), strings.HasPrefix(filepath.Base(path), "invoke_"))
	}
	f.Fuzz(func(t *testing.T, in []byte, invoke bool) {
		out, err := translateStream(in, invoke, false)
		if werr := wellFormed(out); werr != nil {
			t.Fatalf("%v\ninput %q\noutput %s", werr, in, out)
		}
		if len(in) < 4096 {
			split, serr := translateStream(in, invoke, true)
			if !bytes.Equal(split, out) || (err == nil) != (serr == nil) {
				t.Fatalf("one byte per read: %q (%v), whole: %q (%v)", split, serr, out, err)
			}
		}
	})
}
