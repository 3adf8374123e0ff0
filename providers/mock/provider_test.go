package mock

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmgate/llmgate/providers"
)

func chatCall(stream bool, override string) *providers.Request {
	body := `{"model":"gpt-test","stream":` + strconv.FormatBool(stream) +
		`,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi there"}]`
	if override != "" {
		body += `,"mock":` + override
	}
	return &providers.Request{
		Endpoint: providers.ChatCompletions,
		Body:     []byte(body + "}"),
		Stream:   stream,
		Model:    "gpt-test",
		Header:   http.Header{"Traceparent": {"00-trace-01"}},
	}
}

func TestInProcess(t *testing.T) {
	h := NewHandler(Options{Chunks: 3})
	p := InProcess(h)

	t.Run("non-stream", func(t *testing.T) {
		resp, err := p.Do(testCtx(t), chatCall(false, ""))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
			resp.ContentLength != int64(len(body)) {
			t.Errorf("status %d, headers %v, length %d of %d", resp.StatusCode, resp.Header, resp.ContentLength, len(body))
		}
		got := decode[struct {
			Choices []struct{ Message struct{ Content string } }
			Usage   struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			}
		}](t, string(body))
		if got.Choices[0].Message.Content != answerText(3) || got.Usage.PromptTokens != 5 || got.Usage.CompletionTokens != 3 {
			t.Errorf("answer %s", body)
		}
		rec := h.Requests(1)[0]
		if rec.Path != "/v1/chat/completions" || rec.Headers["Traceparent"] != "00-trace-01" {
			t.Errorf("recorded %+v", rec)
		}
	})

	t.Run("stream", func(t *testing.T) {
		resp, err := p.Do(testCtx(t), chatCall(true, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		events := sseEvents(t, string(body))
		// role, 3 content, finish, usage, [DONE]
		if len(events) != 7 || events[6] != "[DONE]" || !strings.Contains(events[5], `"choices":[],"usage":{"prompt_tokens":5,`) {
			t.Errorf("events %q", events)
		}
		if resp.Header.Get("Content-Type") != "text/event-stream" || resp.ContentLength != -1 {
			t.Errorf("headers %v, length %d", resp.Header, resp.ContentLength)
		}
	})

	t.Run("error status", func(t *testing.T) {
		resp, err := p.Do(testCtx(t), chatCall(true, `{"status":429}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || !strings.Contains(string(body), `"type":"rate_limit_error"`) {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("New", func(t *testing.T) {
		resp, err := New(Options{}).Do(testCtx(t), &providers.Request{Endpoint: providers.Embeddings,
			Body: []byte(`{"model":"e","input":"a b"}`)})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"usage":{"prompt_tokens":2,"total_tokens":2}`) {
			t.Errorf("embeddings %s", body)
		}
	})

	if s := h.Stats(); s.Completed != 2 || s.Errors != 1 || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestInProcessCancelMidStream(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHandler(Options{Chunks: 50})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := InProcess(h).Do(ctx, chatCall(true, `{"interval_ms":20000}`))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for range 2 { // the role chunk and the first content chunk come without a gap
		if _, err := readEvent(r); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	cancel()
	if _, err := readEvent(r); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancellation took %v", d)
	}
	if s := h.Stats(); s.Canceled != 1 || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestInProcessCloseMidStream closes the body while the handler is blocked writing to the pipe.
func TestInProcessCloseMidStream(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHandler(Options{Chunks: 1000})
	resp, err := InProcess(h).Do(testCtx(t), chatCall(true, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readEvent(bufio.NewReader(resp.Body)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := h.Stats(); s.Canceled != 1 || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestInProcessBeforeHeaders(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHandler(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := InProcess(h).Do(ctx, chatCall(false, `{"hang_ms":20000}`))
	if !errors.Is(err, context.DeadlineExceeded) || resp != nil {
		t.Errorf("Do = %v, %v; want the deadline", resp, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Do returned after %v", d)
	}
	if _, err := InProcess(h).Do(ctx, chatCall(false, "")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do on a dead context: %v", err)
	}

	boom := &inProcess{h: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })}
	if _, err := boom.Do(testCtx(t), chatCall(false, "")); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a panicking handler gave %v", err)
	}
}

func TestInProcessFailAfter(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHandler(Options{Chunks: 5})
	resp, err := InProcess(h).Do(testCtx(t), chatCall(true, `{"fail_after":2}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read: %v, want io.ErrUnexpectedEOF", err)
	}
	// The role chunk and two content chunks got through, then nothing: no finish, no [DONE].
	if events := sseEvents(t, string(body)); len(events) != 3 {
		t.Errorf("events %q", events)
	}
	if s := h.Stats(); s.Aborted != 1 {
		t.Errorf("stats %+v", s)
	}
}
