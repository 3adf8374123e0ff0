package mock

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// postForm sends a multipart form (fields, then one file part) and returns the answer.
func postForm(t *testing.T, srv *httptest.Server, path, fileField, fileName string, file []byte, fields ...string) (*http.Response, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if fileField != "" {
		fw, _ := w.CreateFormFile(fileField, fileName)
		_, _ = fw.Write(file)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		_ = w.WriteField(fields[i], fields[i+1])
	}
	_ = w.Close()
	resp, err := http.Post(srv.URL+path, w.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// wavOf is a WAV header declaring seconds of 16 kHz 16-bit mono audio, with a few samples.
func wavOf(seconds uint32) []byte {
	h := wavHeader(seconds * 32000)
	// wavHeader is 24 kHz: rewrite the rates for 16 kHz.
	copy(h[24:28], []byte{0x80, 0x3e, 0, 0})
	copy(h[28:32], []byte{0x00, 0x7d, 0, 0})
	return append(h, make([]byte, 64)...)
}

// TestTranscriptions: every response_format, usage by model (duration for whisper-1, tokens for
// gpt-*), none for translations; streams of gpt-* models; the file and model are required;
// faults as on chat.
func TestTranscriptions(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 4})
	wav := wavOf(3)
	for _, c := range []struct {
		path, model, format, want string
	}{
		{"/v1/audio/transcriptions", "whisper-1", "json", `{"text":"the mock upstream streams","usage":{"type":"duration","seconds":3}}`},
		{"/v1/audio/transcriptions", "whisper-1", "text", "the mock upstream streams\n"},
		{"/v1/audio/transcriptions", "whisper-1", "srt", "1\n00:00:00,000 --> 00:00:03,000\nthe mock upstream streams\n\n"},
		{"/v1/audio/transcriptions", "whisper-1", "vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:03.000\nthe mock upstream streams\n\n"},
		{"/v1/audio/translations", "whisper-1", "json", `{"text":"the mock upstream streams"}`},
		{"/v1/audio/transcriptions", "gpt-4o-transcribe", "json", `{"text":"the mock upstream streams","usage":{"type":"tokens","input_tokens":30,"input_token_details":{"audio_tokens":30,"text_tokens":0},"output_tokens":4,"total_tokens":34}}`},
	} {
		resp, body := postForm(t, srv, c.path, "file", "a.wav", wav, "model", c.model, "response_format", c.format)
		if resp.StatusCode != http.StatusOK || body != c.want {
			t.Errorf("%s %s %s: %d %q", c.path, c.model, c.format, resp.StatusCode, body)
		}
	}
	resp, body := postForm(t, srv, "/v1/audio/transcriptions", "file", "a.wav", wav, "model", "whisper-1", "response_format", "verbose_json")
	if resp.StatusCode != http.StatusOK || gjson.Get(body, "duration").Float() != 3 || gjson.Get(body, "task").String() != "transcribe" {
		t.Errorf("verbose_json: %s", body)
	}
	resp, body = postForm(t, srv, "/v1/audio/transcriptions", "file", "a.wav", wav, "model", "gpt-4o-transcribe-diarize", "response_format", "diarized_json")
	if resp.StatusCode != http.StatusOK || gjson.Get(body, "segments.0.speaker").String() != "A" {
		t.Errorf("diarized_json: %s", body)
	}
	resp, body = postForm(t, srv, "/v1/audio/transcriptions", "file", "a.wav", wav, "model", "gpt-4o-mini-transcribe", "stream", "true")
	if resp.Header.Get("Content-Type") != "text/event-stream" || strings.Count(body, "transcript.text.delta") != 4 ||
		!strings.HasSuffix(body, `"type":"transcript.text.done","text":"the mock upstream streams","usage":{"type":"tokens","input_tokens":30,"input_token_details":{"audio_tokens":30,"text_tokens":0},"output_tokens":4,"total_tokens":34}}`+"\n\n") {
		t.Errorf("stream: %s", body)
	}
	if resp, body := postForm(t, srv, "/v1/audio/transcriptions", "file", "a.mp3", make([]byte, 40000), "model", "whisper-1"); gjson.Get(body, "usage.seconds").Int() != 3 {
		t.Errorf("mp3 length: %d %s", resp.StatusCode, body)
	}
	if resp, _ := postForm(t, srv, "/v1/audio/transcriptions", "", "", nil, "model", "whisper-1"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no file: %d", resp.StatusCode)
	}
	if resp, _ := postForm(t, srv, "/v1/audio/transcriptions", "file", "a.wav", wav); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no model: %d", resp.StatusCode)
	}
	before := h.Stats().Errors
	if resp, _ := postForm(t, srv, "/v1/audio/transcriptions", "file", "a.wav", wav, "model", "whisper-1", "mock", `{"status":503}`); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("mock.status: %d", resp.StatusCode)
	}
	if n := h.Stats().Errors - before; n != 1 {
		t.Errorf("%d errors counted, want 1", n)
	}
}

// TestSpeech: chunks of bytes in order with the format's content type (a WAV header for wav),
// SSE deltas and a done event with usage, fail_after dropping the connection.
func TestSpeech(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 3})
	resp, body := post(t, srv, "/v1/audio/speech", `{"model":"tts-1","input":"hi there","voice":"alloy"}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/mpeg" ||
		body != strings.Repeat("a", SpeechChunkBytes)+strings.Repeat("b", SpeechChunkBytes)+strings.Repeat("c", SpeechChunkBytes) {
		t.Errorf("mp3: %d %s %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, body = post(t, srv, "/v1/audio/speech", `{"model":"tts-1","input":"hi","voice":"alloy","response_format":"wav"}`)
	if resp.Header.Get("Content-Type") != "audio/wav" || !strings.HasPrefix(body, "RIFF") || len(body) != 44+3*SpeechChunkBytes {
		t.Errorf("wav: %s %d bytes", resp.Header.Get("Content-Type"), len(body))
	}
	resp, body = post(t, srv, "/v1/audio/speech", `{"model":"gpt-4o-mini-tts","input":"one two three","voice":"coral","stream_format":"sse"}`)
	events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	if resp.Header.Get("Content-Type") != "text/event-stream" || len(events) != 4 ||
		events[3] != `data: {"type":"speech.audio.done","usage":{"input_tokens":3,"output_tokens":3,"total_tokens":6}}` {
		t.Fatalf("sse: %q", body)
	}
	if a, _ := base64.StdEncoding.DecodeString(gjson.Get(strings.TrimPrefix(events[1], "data: "), "audio").String()); string(a) != strings.Repeat("b", SpeechChunkBytes) {
		t.Errorf("second delta: %q", events[1])
	}
	for _, bad := range []string{`{"model":"tts-1","voice":"alloy"}`, `{"model":"tts-1","input":"x","voice":"alloy","response_format":"ogg"}`} {
		if resp, _ := post(t, srv, "/v1/audio/speech", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/audio/speech", strings.NewReader(`{"model":"tts-1","input":"x","voice":"alloy","mock":{"fail_after":2}}`))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err == nil || len(b) != 2*SpeechChunkBytes {
		t.Errorf("fail_after 2: %d bytes, err %v", len(b), err)
	}
}

// TestImageEdits: a multipart edit answers as a generation; image and prompt are required.
func TestImageEdits(t *testing.T) {
	srv, _ := startServer(t, Options{})
	resp, body := postForm(t, srv, "/v1/images/edits", "image[]", "a.png", []byte("png"), "model", "gpt-image-1", "prompt", "a hat", "n", "2")
	if resp.StatusCode != http.StatusOK || len(gjson.Get(body, "data").Array()) != 2 || gjson.Get(body, "usage.output_tokens").Int() != 2*1056 {
		t.Errorf("edit: %d %s", resp.StatusCode, body)
	}
	if resp, _ := postForm(t, srv, "/v1/images/edits", "image", "a.png", []byte("png"), "model", "dall-e-2"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no prompt: %d", resp.StatusCode)
	}
	if resp, _ := postForm(t, srv, "/v1/images/edits", "", "", nil, "model", "dall-e-2", "prompt", "x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no image: %d", resp.StatusCode)
	}
}
