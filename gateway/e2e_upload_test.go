package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/providers/mock"
)

// formPart is one part of a multipart test body: a field (filename empty) or a file.
type formPart struct {
	name, filename, contentType string
	data                        []byte
}

func field(name, value string) formPart { return formPart{name: name, data: []byte(value)} }

func file(name, filename, contentType string, data []byte) formPart {
	return formPart{name: name, filename: filename, contentType: contentType, data: data}
}

// multipartBody renders parts in order, as a client would send them, and returns the body and
// its Content-Type with the boundary.
func multipartBody(t *testing.T, parts ...formPart) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p.filename != "" {
			h.Set("Content-Disposition", `form-data; name="`+p.name+`"; filename="`+p.filename+`"`)
			h.Set("Content-Type", p.contentType)
		} else {
			h.Set("Content-Disposition", `form-data; name="`+p.name+`"`)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(p.data)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// testWAV is a PCM WAV of 16-bit mono samples at rate Hz lasting seconds, with a LIST chunk
// before the data so that a reader must walk the chunks.
func testWAV(seconds, rate int) []byte {
	data := make([]byte, seconds*rate*2)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	list := []byte("INFOISFT\x04\x00\x00\x00test")
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(4 + 8 + 16 + 8 + len(list) + 8 + len(data)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))        // PCM
	le(uint16(1))        // mono
	le(uint32(rate))     // sample rate
	le(uint32(rate * 2)) // byte rate
	le(uint16(2))        // block align
	le(uint16(16))       // bits per sample
	b.WriteString("LIST")
	le(uint32(len(list)))
	b.Write(list)
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// uploadPost sends a body with its Content-Type and returns the answer.
func (e *env) uploadPost(path, key string, body []byte, contentType string) (int, http.Header, string, string) {
	e.t.Helper()
	resp := e.post(context.Background(), path, key, body, "Content-Type", contentType)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b), resp.Header.Get("X-Request-Id")
}

// receivedForm parses the multipart body an upstream received: the parts' contents by name, in
// order, and the file names.
func receivedForm(t *testing.T, r mock.RecordedRequest) (map[string][]string, map[string]string) {
	t.Helper()
	_, params, err := mime.ParseMediaType(r.Headers["Content-Type"])
	if err != nil || params["boundary"] == "" {
		t.Fatalf("upstream Content-Type %q: %v", r.Headers["Content-Type"], err)
	}
	mr := multipart.NewReader(strings.NewReader(r.Body), params["boundary"])
	values, files := map[string][]string{}, map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("upstream body is not valid multipart: %v", err)
		}
		b, _ := io.ReadAll(p)
		values[p.FormName()] = append(values[p.FormName()], string(b))
		if p.FileName() != "" {
			files[p.FormName()] = p.FileName()
		}
	}
	return values, files
}

// sseEvents splits an SSE body into its events' data payloads, in order.
func sseEvents(body string) []gjson.Result {
	var out []gjson.Result
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, gjson.Parse(d))
		}
	}
	return out
}

// TestTranscriptionFormats: every response_format of a whisper transcription is relayed with
// its content type; the upstream gets the file bytes intact and the deployment's model in the
// model part although the file came first; the record is one audio/transcriptions record billed
// per second: from the answer's duration where it says one (json, verbose_json), else from the
// WAV upload itself (text, srt, vtt).
func TestTranscriptionFormats(t *testing.T) {
	e, up := mediaEnv(t)
	wav := testWAV(3, 8000)
	for _, tc := range []struct {
		format, contentType, source string
		check                       func(string) bool
	}{
		{"json", "application/json", "provider", func(b string) bool { return gjson.Get(b, "text").String() != "" }},
		{"verbose_json", "application/json", "provider", func(b string) bool {
			return gjson.Get(b, "duration").Float() == 3 && gjson.Get(b, "segments.#").Int() > 0
		}},
		{"text", "text/plain", "estimated", func(b string) bool { return b != "" && !strings.HasPrefix(b, "{") }},
		{"srt", "text/plain", "estimated", func(b string) bool { return strings.HasPrefix(b, "1\n00:00:00,000 --> ") }},
		{"vtt", "text/vtt", "estimated", func(b string) bool { return strings.HasPrefix(b, "WEBVTT") }},
	} {
		t.Run(tc.format, func(t *testing.T) {
			body, ct := multipartBody(t, file("file", "speech.wav", "audio/wav", wav), field("model", "whisper"),
				field("response_format", tc.format), field("language", "en"))
			status, hdr, answer, id := e.uploadPost("/audio/transcriptions", e.key, body, ct)
			if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), tc.contentType) || !tc.check(answer) {
				t.Fatalf("HTTP %d %s: %q", status, hdr.Get("Content-Type"), answer)
			}
			got := up.Requests(1)
			if len(got) != 1 || got[0].Path != "/v1/audio/transcriptions" {
				t.Fatalf("upstream saw %+v", got)
			}
			values, files := receivedForm(t, got[0])
			if len(values["file"]) != 1 || values["file"][0] != string(wav) || files["file"] != "speech.wav" {
				t.Errorf("upstream file part: %d bytes named %q, want the %d bytes of speech.wav", len(values["file"]), files["file"], len(wav))
			}
			if strings.Join(values["model"], ",") != "whisper-1" || strings.Join(values["language"], ",") != "en" ||
				strings.Join(values["response_format"], ",") != tc.format {
				t.Errorf("upstream fields: model %q, language %q, response_format %q", values["model"], values["language"], values["response_format"])
			}
			r := e.usageFor(id)
			if r.Endpoint != "audio/transcriptions" || r.Status != 200 || r.Units != 3 || r.Unit != "second" || r.UsageSource != tc.source {
				t.Errorf("record: %+v", r)
			}
			if r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != "0.0003" {
				t.Errorf("cost %v, want 3 s × $0.0001", r.CostPicoUSD)
			}
		})
	}
}

// TestTranscriptionTokensAndStream: a gpt-4o-transcribe answer reports token usage, which bills
// it; streamed, its transcript.text.delta events are relayed in order up to transcript.text.done,
// whose usage bills the record.
func TestTranscriptionTokensAndStream(t *testing.T) {
	e, _ := mediaEnv(t)
	wav := testWAV(2, 8000)
	body, ct := multipartBody(t, file("file", "a.wav", "audio/wav", wav), field("model", "transcribe"))
	status, _, answer, id := e.uploadPost("/audio/transcriptions", e.key, body, ct)
	if status != http.StatusOK || gjson.Get(answer, "usage.type").String() != "tokens" {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	in, out := gjson.Get(answer, "usage.input_tokens").Int(), gjson.Get(answer, "usage.output_tokens").Int()
	r := e.usageFor(id)
	if r.UsageSource != "provider" || r.PromptTokens != in || r.CompletionTokens != out || in == 0 || out == 0 {
		t.Errorf("record %+v; want %d/%d tokens", r, in, out)
	}
	if want := billing.FormatPico64(in*2_500_000 + out*10_000_000); r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != want {
		t.Errorf("cost %v, want %s", r.CostPicoUSD, want)
	}

	body, ct = multipartBody(t, file("file", "a.wav", "audio/wav", wav), field("model", "transcribe"), field("stream", "true"),
		field("mock", `{"interval_ms":5}`))
	status, hdr, answer, id := e.uploadPost("/audio/transcriptions", e.key, body, ct)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("HTTP %d %s: %s", status, hdr.Get("Content-Type"), answer)
	}
	events := sseEvents(answer)
	if len(events) < 3 {
		t.Fatalf("events: %s", answer)
	}
	var text strings.Builder
	for _, ev := range events[:len(events)-1] {
		if ev.Get("type").String() != "transcript.text.delta" {
			t.Fatalf("event before the end: %s", ev.Raw)
		}
		text.WriteString(ev.Get("delta").String())
	}
	done := events[len(events)-1]
	if done.Get("type").String() != "transcript.text.done" || done.Get("text").String() != text.String() {
		t.Errorf("done %s; deltas made %q", done.Raw, text.String())
	}
	r = e.usageFor(id)
	if !r.Stream || r.UsageSource != "provider" || r.PromptTokens != done.Get("usage.input_tokens").Int() || r.CompletionTokens == 0 {
		t.Errorf("stream record %+v; done %s", r, done.Raw)
	}
}

// TestTranslationFailoverAndUnpriced: a translation whose first deployment answers 500 is sent
// again, whole, to the next; its answer has no usage, so the WAV upload's length bills it. A
// file the gateway cannot measure is recorded as estimated, without a cost.
func TestTranslationFailoverAndUnpriced(t *testing.T) {
	e, up := mediaEnv(t)
	wav := testWAV(4, 16000)
	body, ct := multipartBody(t, file("file", "fr.wav", "audio/wav", wav), field("model", "whisper-failover"))
	status, _, answer, id := e.uploadPost("/audio/translations", e.key, body, ct)
	if status != http.StatusOK || gjson.Get(answer, "text").String() == "" {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	values, _ := receivedForm(t, up.Requests(1)[0])
	if values["file"][0] != string(wav) || values["model"][0] != "whisper-1" {
		t.Errorf("second deployment got %d file bytes, model %v", len(values["file"][0]), values["model"])
	}
	r := e.usageFor(id)
	if r.Endpoint != "audio/translations" || r.Deployment != "media/whisper-1" || r.Units != 4 || r.Unit != "second" || r.UsageSource != "estimated" ||
		r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != "0.0004" {
		t.Errorf("record %+v", r)
	}

	mp3 := bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x64}, 1000)
	body, ct = multipartBody(t, file("file", "fr.mp3", "audio/mpeg", mp3), field("model", "whisper"), field("response_format", "text"))
	status, _, answer, id = e.uploadPost("/audio/translations", e.key, body, ct)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	if r := e.usageFor(id); r.UsageSource != "estimated" || r.Units != 0 || r.CostPicoUSD != nil || r.Status != 200 {
		t.Errorf("unmeasurable record %+v", r)
	}
}

// TestSpeechRelayedAsItArrives: the audio of a speech answer reaches the client chunk by chunk
// while the upstream is still producing it, bytes in order; the record is billed per character
// of input. With stream_format sse the events are relayed and the done event's usage bills.
func TestSpeechRelayedAsItArrives(t *testing.T) {
	e, up := mediaEnv(t)
	input := "Hello there, gateway é" // 22 characters, 23 bytes
	resp := e.post(context.Background(), "/audio/speech", e.key,
		[]byte(`{"model":"tts","input":"`+input+`","voice":"alloy","mock":{"chunks":10,"interval_ms":200}}`))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/mpeg" {
		t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if n := up.Stats().InFlight; n != 1 {
		t.Errorf("first byte arrived with %d requests in flight upstream: the answer was buffered", n)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	audio := append(first, rest...)
	if len(audio) != 10*speechChunk {
		t.Fatalf("%d bytes of audio, want %d", len(audio), 10*speechChunk)
	}
	for i, c := range audio {
		if c != byte('a'+i/speechChunk) {
			t.Fatalf("byte %d is %q: chunks out of order", i, c)
		}
	}
	r := e.usageFor(resp.Header.Get("X-Request-Id"))
	if r.Endpoint != "audio/speech" || r.Units != 22 || r.Unit != "character" || r.UsageSource != "estimated" ||
		r.CostPicoUSD == nil || *r.CostPicoUSD != 22*15_000_000 {
		t.Errorf("record %+v cost %v", r, r.CostPicoUSD)
	}

	status, answer, id := e.mediaPost("/audio/speech", e.key, `{"model":"tts-tokens","input":"one two three","voice":"coral","stream_format":"sse","mock":{"chunks":3}}`)
	events := sseEvents(answer)
	if status != http.StatusOK || len(events) != 4 || events[3].Get("type").String() != "speech.audio.done" {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	for i, ev := range events[:3] {
		b, _ := base64.StdEncoding.DecodeString(ev.Get("audio").String())
		if ev.Get("type").String() != "speech.audio.delta" || len(b) != speechChunk || b[0] != byte('a'+i) {
			t.Errorf("event %d: %s", i, ev.Raw)
		}
	}
	in, out := events[3].Get("usage.input_tokens").Int(), events[3].Get("usage.output_tokens").Int()
	if r := e.usageFor(id); !r.Stream || r.UsageSource != "provider" || r.PromptTokens != in || r.CompletionTokens != out || out == 0 ||
		r.CostPicoUSD == nil || *r.CostPicoUSD != in*600_000+out*12_000_000 {
		t.Errorf("sse record %+v", r)
	}
}

// TestImageEdits: several images and a mask reach the upstream intact with the deployment's
// model; the answer is priced per image like a generation, or by the tokens it reports.
func TestImageEdits(t *testing.T) {
	e, up := mediaEnv(t)
	png1, png2, mask := bytes.Repeat([]byte{1, 2, 3}, 700), bytes.Repeat([]byte{4, 5}, 900), bytes.Repeat([]byte{9}, 300)
	body, ct := multipartBody(t, file("image[]", "a.png", "image/png", png1), file("image[]", "b.png", "image/png", png2),
		file("mask", "m.png", "image/png", mask), field("prompt", "add a hat"), field("model", "image-model"), field("n", "2"),
		field("size", "1024x1024"), field("quality", "hd"))
	status, _, answer, id := e.uploadPost("/images/edits", e.key, body, ct)
	if status != http.StatusOK || gjson.Get(answer, "data.#").Int() != 2 {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	got := up.Requests(1)
	values, _ := receivedForm(t, got[0])
	if got[0].Path != "/v1/images/edits" || len(values["image[]"]) != 2 || values["image[]"][0] != string(png1) || values["image[]"][1] != string(png2) ||
		values["mask"][0] != string(mask) || values["model"][0] != "dall-e-3" || values["prompt"][0] != "add a hat" {
		t.Errorf("upstream got %s with %v", got[0].Path, values["model"])
	}
	r := e.usageFor(id)
	if r.Endpoint != "images/edits" || r.Units != 2 || r.Unit != "image" || r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != "0.16" {
		t.Errorf("record %+v cost %v", r, r.CostPicoUSD)
	}

	body, ct = multipartBody(t, field("model", "token-image"), field("prompt", "one two"), file("image", "a.png", "image/png", png1))
	status, _, answer, id = e.uploadPost("/images/edits", e.key, body, ct)
	in, out := gjson.Get(answer, "usage.input_tokens").Int(), gjson.Get(answer, "usage.output_tokens").Int()
	if r := e.usageFor(id); status != http.StatusOK || r.UsageSource != "provider" || out == 0 || r.CostPicoUSD == nil ||
		*r.CostPicoUSD != in*5_000_000+out*40_000_000 {
		t.Errorf("HTTP %d, record %+v for %s", status, r, answer)
	}
}

// TestUploadBadInput: malformed or incomplete requests, a file over the limit, an unsupported
// response_format and a model whose deployments cannot serve the endpoint are 4xx in OpenAI's
// shape, with no upstream call and no quota consumed.
func TestUploadBadInput(t *testing.T) {
	e, media := mediaEnv(t)
	k := e.newKey(keySpec{Name: "tiny", UserID: "tiny-user", Tier: "tiny"}) // 2 requests a minute
	wav := testWAV(1, 8000)
	form := func(parts ...formPart) ([]byte, string) { return multipartBody(t, parts...) }
	type tc struct {
		name, path  string
		body        []byte
		ct          string
		status      int
		param, code string
	}
	var cases []tc
	add := func(name, path string, status int, param string, parts ...formPart) {
		b, ct := form(parts...)
		cases = append(cases, tc{name: name, path: path, body: b, ct: ct, status: status, param: param})
	}
	add("no file", "/audio/transcriptions", 400, "file", field("model", "whisper"))
	add("no model", "/audio/transcriptions", 400, "model", file("file", "a.wav", "audio/wav", wav))
	add("bad format", "/audio/transcriptions", 400, "response_format", file("file", "a.wav", "audio/wav", wav), field("model", "whisper"), field("response_format", "mp3"))
	add("diarized translation", "/audio/translations", 400, "response_format", file("file", "a.wav", "audio/wav", wav), field("model", "whisper"), field("response_format", "diarized_json"))
	add("bad stream", "/audio/transcriptions", 400, "stream", file("file", "a.wav", "audio/wav", wav), field("model", "transcribe"), field("stream", "maybe"))
	add("no prompt", "/images/edits", 400, "prompt", file("image", "a.png", "image/png", wav), field("model", "image-model"))
	add("no image", "/images/edits", 400, "image", field("prompt", "x"), field("model", "image-model"))
	add("bad n", "/images/edits", 400, "n", file("image", "a.png", "image/png", wav), field("prompt", "x"), field("model", "image-model"), field("n", "99"))
	add("chat-only transcription", "/audio/transcriptions", 400, "model", file("file", "a.wav", "audio/wav", wav), field("model", "chat-only"))
	add("chat-only edit", "/images/edits", 400, "model", file("image", "a.png", "image/png", wav), field("prompt", "x"), field("model", "chat-only"))
	good, goodCT := form(file("file", "a.wav", "audio/wav", wav), field("model", "whisper"))
	cases = append(cases,
		tc{name: "not multipart", path: "/audio/transcriptions", body: []byte(`{"model":"whisper"}`), ct: "application/json", status: 400},
		tc{name: "truncated", path: "/audio/transcriptions", body: good[:len(good)-20], ct: goodCT, status: 400},
		tc{name: "no boundary", path: "/audio/transcriptions", body: good, ct: "multipart/form-data", status: 400},
	)
	for _, c := range cases {
		status, _, body, _ := e.uploadPost(c.path, k.Key, c.body, c.ct)
		var eb struct {
			Error struct{ Type, Param, Code, Message string }
		}
		if err := json.Unmarshal([]byte(body), &eb); err != nil || status != c.status || eb.Error.Message == "" || eb.Error.Param != c.param {
			t.Errorf("%s: HTTP %d %s; want %d naming %q", c.name, status, body, c.status, c.param)
		}
	}
	for i, c := range []struct{ body, param string }{
		{`{"model":"tts","voice":"alloy"}`, "input"},
		{`{"model":"tts","input":"hi","voice":"alloy","response_format":"ogg"}`, "response_format"},
		{`{"model":"tts","input":"hi","voice":"alloy","stream_format":"chunks"}`, "stream_format"},
		{`{"model":"chat-only","input":"hi","voice":"alloy"}`, "model"},
	} {
		status, body, _ := e.mediaPost("/audio/speech", k.Key, c.body)
		if status != http.StatusBadRequest || gjson.Get(body, "error.param").String() != c.param {
			t.Errorf("speech case %d: HTTP %d %s", i, status, body)
		}
	}
	// Over the upload limit (32 MiB by default), sent without a length: 413.
	big := io.MultiReader(bytes.NewReader([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n")),
		io.LimitReader(zeros{}, 33<<20))
	req, _ := http.NewRequest(http.MethodPost, e.baseURL+"/audio/transcriptions", big)
	req.Header.Set("Authorization", "Bearer "+k.Key)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	if resp, err := e.http.Do(req); err != nil {
		t.Logf("oversized upload: %v (the gateway may close before reading it all)", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || gjson.GetBytes(b, "error.type").String() != "invalid_request_error" {
			t.Errorf("oversized upload: HTTP %d %s", resp.StatusCode, b)
		}
	}
	// The key's model allowlist applies to the form's model.
	narrow := e.newKey(keySpec{Name: "chat only", Models: []string{"gpt-test"}})
	if status, _, body, _ := e.uploadPost("/audio/transcriptions", narrow.Key, good, goodCT); status != http.StatusForbidden ||
		gjson.Get(body, "error.code").String() != "model_not_allowed" {
		t.Errorf("key without the model: HTTP %d %s", status, body)
	}
	if status, body, _ := e.mediaPost("/audio/speech", narrow.Key, `{"model":"tts","input":"hi","voice":"alloy"}`); status != http.StatusForbidden {
		t.Errorf("speech, key without the model: HTTP %d %s", status, body)
	}
	if n := media.Stats().Requests + e.up.Stats().Requests; n != 0 {
		t.Errorf("%d upstream calls for refused requests", n)
	}
	for i := 0; i < 2; i++ { // the key's 2 requests a minute are all still there
		if status, _, body, _ := e.uploadPost("/audio/transcriptions", k.Key, good, goodCT); status != http.StatusOK {
			t.Fatalf("request %d after the refusals: HTTP %d %s", i, status, body)
		}
	}
}

// speechChunk is the size of each chunk of the mock's speech audio (providers/mock): chunk i is
// speechChunk bytes of 'a'+i.
const speechChunk = 256

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAudioEndings: one record per audio request whatever its ending. Speech the upstream
// breaks off is a 502 partial record with the input's characters; speech the client leaves is a
// 499 partial record (whether credits are charged is the chat path's policy); a transcription stream
// the upstream breaks off ends with an error event for the client and a partial record counted
// from the WAV; a stream without usage is estimated from the WAV.
func TestAudioEndings(t *testing.T) {
	e, _ := mediaEnv(t)
	wav := testWAV(2, 8000)

	status, _, id := e.mediaPost("/audio/speech", e.key, `{"model":"tts","input":"four","voice":"alloy","mock":{"chunks":5,"fail_after":2}}`)
	if r := e.usageFor(id); status != http.StatusOK || r.Status != http.StatusBadGateway || r.UsageSource != "partial" || r.Units != 4 ||
		r.Unit != "character" || r.CostPicoUSD == nil {
		t.Errorf("speech cut upstream: HTTP %d, record %+v", status, r)
	}

	ctx, cancel := context.WithCancel(context.Background())
	resp := e.post(ctx, "/audio/speech", e.key, []byte(`{"model":"tts","input":"five","voice":"alloy","mock":{"chunks":10,"interval_ms":200}}`))
	if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	if r := e.usageFor(resp.Header.Get("X-Request-Id")); r.Status != 499 || r.UsageSource != "partial" || r.Units != 4 || r.CostPicoUSD == nil {
		t.Errorf("speech left by the client: record %+v", r)
	}

	body, ct := multipartBody(t, file("file", "a.wav", "audio/wav", wav), field("model", "transcribe"), field("stream", "true"),
		field("mock", `{"chunks":5,"fail_after":3}`))
	status, _, answer, id := e.uploadPost("/audio/transcriptions", e.key, body, ct)
	events := sseEvents(answer)
	if status != http.StatusOK || len(events) != 4 || events[3].Get("error.code").String() != "stream_interrupted" {
		t.Errorf("cut stream: HTTP %d %s", status, answer)
	}
	if r := e.usageFor(id); r.Status != http.StatusBadGateway || r.UsageSource != "partial" || r.Units != 2 || r.Unit != "second" {
		t.Errorf("cut stream record %+v", r)
	}

	body, ct = multipartBody(t, file("file", "a.wav", "audio/wav", wav), field("model", "transcribe"), field("stream", "true"),
		field("mock", `{"no_usage":true}`))
	status, _, answer, id = e.uploadPost("/audio/transcriptions", e.key, body, ct)
	if r := e.usageFor(id); status != http.StatusOK || r.Status != 200 || r.UsageSource != "estimated" || r.Units != 2 || r.PromptTokens != 0 ||
		r.CostPicoUSD == nil || billing.FormatPico64(*r.CostPicoUSD) != "0.0002" {
		t.Errorf("stream without usage: %s; record %+v", answer, r)
	}
}

// TestImageEditsStream: a streamed edit (stream=true, partial_images) is relayed event by event
// with its event lines, metered from the completed event's usage at the token prices; cut by the
// upstream after its partial images, the record is partial and the client gets an error event.
func TestImageEditsStream(t *testing.T) {
	e, _ := mediaEnv(t)
	png := bytes.Repeat([]byte{1, 2, 3}, 700)
	edit := func(extra ...formPart) (int, string, string) {
		parts := append([]formPart{field("model", "token-image"), field("prompt", "one two"), file("image", "a.png", "image/png", png),
			field("stream", "true"), field("partial_images", "2")}, extra...)
		body, ct := multipartBody(t, parts...)
		status, hdr, answer, id := e.uploadPost("/images/edits", e.key, body, ct)
		if ct := hdr.Get("Content-Type"); status == http.StatusOK && !strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("content type %q", ct)
		}
		return status, answer, id
	}
	status, answer, id := edit()
	evs := sseEvents(answer)
	if status != http.StatusOK || len(evs) != 3 || evs[0].Get("type").Str != "image_edit.partial_image" || evs[2].Get("type").Str != "image_edit.completed" ||
		!strings.Contains(answer, "event: image_edit.completed\n") {
		t.Fatalf("HTTP %d %s", status, answer)
	}
	in, out := evs[2].Get("usage.input_tokens").Int(), evs[2].Get("usage.output_tokens").Int()
	if r := e.usageFor(id); r.Status != 200 || !r.Stream || r.UsageSource != "provider" || r.PromptTokens != in || r.CompletionTokens != out || r.Units != 1 ||
		r.CostPicoUSD == nil || *r.CostPicoUSD != in*5_000_000+out*40_000_000 {
		t.Errorf("record %+v cost %v, want the completed event's usage %d/%d at token prices", r, r.CostPicoUSD, in, out)
	}
	status, answer, id = edit(field("mock", `{"fail_after":2}`))
	if evs := sseEvents(answer); status != http.StatusOK || len(evs) != 3 || evs[2].Get("error.code").Str != "stream_interrupted" {
		t.Errorf("cut: HTTP %d %s, want two partial images and an error event", status, answer)
	}
	if r := e.usageFor(id); r.Status != 502 || r.UsageSource != "partial" || r.CompletionTokens != 0 || r.PromptTokens == 0 {
		t.Errorf("cut record %+v", r)
	}
}

// TestUploadSpoolCap: the spools of the uploads in flight on a replica are bounded by
// gateway.max_upload_spool_bytes. An upload that would pass it is refused before its body is
// read, with 503 and Retry-After, no upstream call, nothing consumed and a metric; once the
// uploads holding the room are done, the same upload goes through.
func TestUploadSpoolCap(t *testing.T) {
	body, ct := multipartBody(t, field("model", "whisper"), field("response_format", "text"), file("file", "a.wav", "audio/wav", testWAV(1, 16000)))
	size := int64(len(body))
	e, up := mediaEnv(t, func(c *envConfig) { c.MaxUploadSpoolBytes = size * 3 / 2 })
	// A: an upload whose body arrives slowly holds its Content-Length of the room.
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	req, _ := http.NewRequest(http.MethodPost, e.baseURL+"/audio/transcriptions", pr)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", ct)
	done := make(chan int, 1)
	go func() {
		res, err := e.http.Do(req)
		if err != nil {
			done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		done <- res.StatusCode
	}()
	if _, err := pw.Write(body[:1000]); err != nil {
		t.Fatal(err)
	}
	gauge := func() string {
		for _, line := range strings.Split(e.metrics(), "\n") {
			if v, ok := strings.CutPrefix(line, "llmgate_upload_spool_bytes "); ok {
				return v
			}
		}
		return ""
	}
	waitFor(t, 10*time.Second, "the slow upload to reserve its spool", func() bool { return gauge() == strconv.FormatInt(size, 10) })
	before := up.Stats().Requests
	// B: the same size again would pass the cap.
	resp := e.post(context.Background(), "/audio/transcriptions", e.key, body, "Content-Type", ct)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || gjson.GetBytes(answer, "error.code").Str != "upload_spool_full" {
		t.Errorf("upload over the spool cap: HTTP %d Retry-After %q %s, want 503 upload_spool_full with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), answer)
	}
	if r := e.usageFor(resp.Header.Get("X-Request-Id")); r.Status != 503 || r.CostPicoUSD != nil || r.UsageSource != "" || r.Deployment != "" {
		t.Errorf("refused upload's record %+v, want 503, no deployment, no cost", r)
	}
	if !strings.Contains(e.metrics(), "llmgate_upload_spool_refused_total 1") {
		t.Error("the refusal is not counted in llmgate_upload_spool_refused_total")
	}
	// A finishes; its room is given back, and B's upload now goes through.
	if _, err := pw.Write(body[1000:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if status := <-done; status != http.StatusOK {
		t.Fatalf("the slow upload: HTTP %d", status)
	}
	if n := up.Stats().Requests - before; n != 1 {
		t.Errorf("the upstream got %d requests, want the slow upload's alone", n)
	}
	waitFor(t, 10*time.Second, "the spool room to be given back", func() bool { return gauge() == "0" })
	if status, _, answer, _ := e.uploadPost("/audio/transcriptions", e.key, body, ct); status != http.StatusOK {
		t.Errorf("after the room is back: HTTP %d %s", status, answer)
	}
}
