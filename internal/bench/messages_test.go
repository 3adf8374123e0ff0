package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers/mock"
)

// TestMessagesStreamAgainstMock sends the bench's Messages stream to the simulated upstream's
// Anthropic format: it counts as complete, each text delta counted, the first one timed.
func TestMessagesStreamAgainstMock(t *testing.T) {
	up := httptest.NewServer(mock.NewHandler(mock.Options{Chunks: 3}))
	t.Cleanup(up.Close)
	tg := newTestTarget(t, up.URL)
	if err := tg.enableMessages(up.URL); err != nil {
		t.Fatal(err)
	}
	s, err := newBenchWorker(tg, 3).do(context.Background(), shapeMessagesStream)
	if err != nil {
		t.Fatalf("Messages stream: %v", err)
	}
	if s.ttft <= 0 || s.total < s.ttft {
		t.Errorf("first delta after %v, whole stream %v", s.ttft, s.total)
	}
	if tg.sentMessages.Load() != 1 || tg.sent.Load() != 1 {
		t.Errorf("sent %d, of them Messages %d; want 1 and 1", tg.sent.Load(), tg.sentMessages.Load())
	}
}

// TestMessagesStreamRejectsIncompleteStreams: only message_stop after every delta is a success.
func TestMessagesStreamRejectsIncompleteStreams(t *testing.T) {
	ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
	start := ev("message_start", `{"type":"message_start","message":{"id":"msg_1"}}`)
	delta := ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`)
	stop := ev("message_stop", `{"type":"message_stop"}`)
	for _, tc := range []struct{ name, body, want string }{
		{"complete", start + delta + delta + stop, ""},
		{"a delta short", start + delta + stop, "1 content deltas, want 2"},
		{"error event", start + delta + ev("error", `{"type":"error","error":{"type":"overloaded_error","message":"x"}}`), "error event"},
		{"cut", start + delta + delta, "without message_stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			tg := newTestTarget(t, srv.URL)
			if err := tg.enableMessages(srv.URL); err != nil {
				t.Fatal(err)
			}
			_, err := newBenchWorker(tg, 2).do(context.Background(), shapeMessagesStream)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}
