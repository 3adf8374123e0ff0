package gateway

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/internal/wav"
	"github.com/llmgate/llmgate/providers"
)

// This file holds what the audio endpoints add to the relay: the speech body's checks, the
// binary relay of speech audio, the transcription events of a stream, and the facts audio is
// metered by (docs/metering.md): token usage where the answer has it, else seconds of input
// audio (the answer's duration, or the WAV upload's own length) or characters of speech input.

// isUpload reports whether ep takes a multipart body (upload.go).
func isUpload(ep providers.Endpoint) bool {
	return ep == providers.ImageEdits || ep == providers.AudioTranscriptions || ep == providers.AudioTranslations
}

// isAudio reports whether ep is one of the audio endpoints.
func isAudio(ep providers.Endpoint) bool {
	return ep == providers.AudioTranscriptions || ep == providers.AudioTranslations || ep == providers.AudioSpeech
}

// speechRequest is what an audio/speech body says.
type speechRequest struct {
	sse        bool  // stream_format "sse": events instead of raw audio
	characters int64 // of input, what tts-1 is billed by
}

// speechFormats are OpenAI's speech response formats.
var speechFormats = map[string]bool{"mp3": true, "opus": true, "aac": true, "flac": true, "wav": true, "pcm": true}

// parseSpeechRequest checks the fields of a speech body the gateway meters and relays by.
func parseSpeechRequest(body []byte) (speechRequest, error) {
	bad := func(code, param, msg string) (speechRequest, error) {
		return speechRequest{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, code, param, msg)
	}
	f := gjson.GetManyBytes(body, "input", "voice", "response_format", "stream_format")
	if f[0].Type != gjson.String || f[0].Str == "" {
		return bad("missing_field", "input", "You must provide the input text to speak (a non-empty string).")
	}
	if f[1].Type != gjson.String && !f[1].IsObject() {
		return bad("missing_field", "voice", "You must provide a voice (a name such as alloy, or {\"id\": …} for a custom voice).")
	}
	if v := f[2]; v.Exists() && v.Type != gjson.Null && (v.Type != gjson.String || !speechFormats[v.Str]) {
		return bad("invalid_value", "response_format", "response_format must be mp3, opus, aac, flac, wav or pcm.")
	}
	r := speechRequest{characters: int64(utf8.RuneCountInString(f[0].Str))}
	switch v := f[3]; {
	case !v.Exists() || v.Type == gjson.Null || v.Str == "audio":
	case v.Str == "sse":
		r.sse = true
	default:
		return bad("invalid_value", "stream_format", "stream_format must be audio or sse.")
	}
	return r, nil
}

// audioFacts are what the gateway knows of an audio request's size before the answer: the
// uploaded audio's length when it is a WAV (0: unknown; by its header's data size, or by the
// file's own size when that is more, so a header cannot understate it), the speech input's
// characters.
type audioFacts struct {
	seconds    int64
	characters int64
}

func (r request) audioFacts() audioFacts {
	f := audioFacts{characters: r.speech.characters}
	if r.upload != nil && r.upload.head != nil {
		if info, err := wav.Parse(r.upload.head); err == nil {
			f.seconds = info.Seconds(r.upload.fileSize)
		}
	}
	return f
}

// transcriptionUsage reads a whole transcription or translation answer's usage: tokens
// ({"type":"tokens",…}), or a duration ({"type":"duration","seconds":…}, or verbose_json's
// duration), in whole seconds rounded up. Text, SubRip and WebVTT answers have neither.
func transcriptionUsage(b []byte) (u usage, seconds int64, reported bool) {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return usage{}, 0, false
	}
	f := gjson.GetManyBytes(b, "usage", "duration")
	u, seconds, reported = audioUsage(f[0])
	if !reported && f[1].Type == gjson.Number {
		seconds, reported = ceilSeconds(f[1].Num), true
	}
	return u, seconds, reported
}

// audioUsage reads an audio usage object: token counts, or the seconds of a duration.
func audioUsage(v gjson.Result) (u usage, seconds int64, reported bool) {
	switch v.Get("type").Str {
	case "duration":
		if s := v.Get("seconds"); s.Type == gjson.Number {
			return usage{}, ceilSeconds(s.Num), true
		}
	case "tokens", "":
		if v.Get("input_tokens").Exists() || v.Get("output_tokens").Exists() {
			return usage{prompt: v.Get("input_tokens").Int(), completion: v.Get("output_tokens").Int(), found: true}, 0, false
		}
	}
	return usage{}, 0, false
}

func ceilSeconds(s float64) int64 {
	if s <= 0 || math.IsNaN(s) || s > math.MaxInt32 {
		return 0
	}
	return int64(math.Ceil(s - 1e-9))
}

// audioEvent handles one event of a streamed transcription or speech answer: relayed as it is,
// the done event (transcript.text.done, speech.audio.done) ending the stream with its usage.
func (s *sseRelay) audioEvent(e sse.Event) error {
	if e.Data != nil {
		switch t := gjson.GetBytes(e.Data, "type").Str; {
		case t == "transcript.text.done" || t == "speech.audio.done":
			s.sawDone = true
			var seconds int64
			s.out.usage, seconds, s.out.unitsReported = audioUsage(gjson.GetBytes(e.Data, "usage"))
			s.out.units.AudioSeconds = seconds
		case t == "error" || gjson.GetBytes(e.Data, "error").IsObject():
			s.upErr = true
		case bytes.Equal(e.Data, doneMarker):
			s.sawDone = true
		}
	}
	return s.write(append(e.Raw, '\n'))
}

// relayAudio relays a speech answer's audio as it arrives: each read from the upstream is
// written and flushed at once, so playback can start before the upstream has finished. An
// upstream that breaks off mid-answer leaves the client a short body (and a broken chunked
// encoding or Content-Length) and the record a 502; there is no in-band way to say more.
func (x *exchange) relayAudio(resp *http.Response) (out outcome) {
	defer carry(&out)
	w := x.c.Writer
	rc := http.NewResponseController(w)
	deadline := x.g.writeDeadline(rc)
	h := w.Header()
	h.Set("Content-Type", resp.Header.Get("Content-Type"))
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the audio back either
	h.Del("Content-Length")
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	out.status = resp.StatusCode
	x.serverTiming()
	w.WriteHeader(resp.StatusCode)
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Grow(32 << 10)
	chunk := buf.Bytes()[:32<<10]
	for {
		n, err := resp.Body.Read(chunk)
		if n > 0 {
			now := time.Now()
			deadline.arm(now)
			if out.firstByte.IsZero() {
				out.firstByte = now
			}
			if _, werr := w.Write(chunk[:n]); werr != nil || rc.Flush() != nil {
				out.fail(context.Canceled) // the client went away
				return out
			}
		}
		switch {
		case err == io.EOF:
			return out
		case err != nil && x.cut():
			out.fail(errShuttingDown)
			return out
		case err != nil && x.ctx.Err() != nil:
			out.fail(context.Canceled)
			return out
		case err != nil && isAttemptTimeout(err):
			out.fail(err)
			return out
		case err != nil:
			out.status, out.errType = http.StatusBadGateway, errTypeStreamBroken
			return out
		}
	}
}

// meterAudio fills in what the gateway counts itself for an audio answer that reported no
// usage: the WAV upload's seconds, the speech input's characters. It reports whether it counted
// anything.
func (x *exchange) meterAudio(out *outcome) bool {
	switch {
	case x.ep == providers.AudioSpeech:
		out.units.Characters = x.audio.characters
	case out.units.AudioSeconds == 0:
		out.units.AudioSeconds = x.audio.seconds
	}
	return out.units.Characters > 0 || out.units.AudioSeconds > 0
}

// unitsOf names a record's billed units.
func unitsOf(u billing.Units) (int64, string) {
	switch {
	case u.Images > 0:
		return u.Images, billing.UnitImage
	case u.AudioSeconds > 0:
		return u.AudioSeconds, billing.UnitSecond
	case u.Characters > 0:
		return u.Characters, billing.UnitCharacter
	}
	return 0, ""
}
