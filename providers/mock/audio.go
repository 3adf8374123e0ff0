package mock

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/wav"
)

// The multipart and audio endpoints in OpenAI's wire format (PROVIDERS-2.md §6.1–6.3), with the
// same overrides and fault injection as chat; the "mock" override object comes as a form field
// of that name in a multipart request.
//
// audio/transcriptions and audio/translations (multipart: file and model required): the
// transcript is the answer's words as for chat (chunks × tokens_per_chunk of them). The audio's
// length is read from the file when it is a WAV, else taken as one second per 16,000 bytes (a
// 128 kbit/s MP3), at least one. Every response_format is answered: json ({text}, plus usage for
// transcriptions), verbose_json (task, language, duration, one segment; usage for
// transcriptions), diarized_json (transcriptions: one segment of speaker "A"), text, srt and vtt
// (the transcript alone, no usage). Models named gpt-* report token usage ({type:"tokens"},
// input_tokens = 10 per second of audio + words of the prompt field, output_tokens = the
// transcript's words); others (whisper-1) report {type:"duration", seconds} rounded up.
// Translations report no usage, as OpenAI's do. mock.no_usage drops usage everywhere. stream=true
// on a transcription by a gpt-* model answers SSE: one transcript.text.delta per chunk, spaced as
// chat chunks are, then transcript.text.done with the text and usage (no [DONE]); whisper-1
// ignores stream, as OpenAI's does.
//
// images/edits (multipart: model, prompt and at least one image or image[] file required):
// answered as images/generations would answer the same fields.
//
// audio/speech (JSON: model and input required): chunks chunks of SpeechChunkBytes bytes, chunk
// i being the byte 'a'+i%26 repeated, each flushed on its own with the chat stream's spacing; a
// wav response_format puts a 44-byte WAV header (24 kHz, 16-bit mono) before them. The content
// type follows response_format (mp3 by default: audio/mpeg). stream_format "sse" sends each chunk
// as a speech.audio.delta event (base64) and ends with speech.audio.done whose usage has
// input_tokens = words(input) and output_tokens = chunks × tokens_per_chunk. fail_after drops the
// connection after that many chunks.

// SpeechChunkBytes is the size of each chunk of a speech answer's audio.
const SpeechChunkBytes = 256

// audioCall is what a transcription, translation or speech request asks for.
type audioCall struct {
	format      string  // response_format
	fileName    string  // the uploaded file's name
	duration    float64 // the uploaded audio's length in seconds
	sse         bool    // speech: stream_format "sse"
	input       string  // speech: the text to speak
	promptWords int
}

// multipartEndpoint reports whether ep takes a multipart/form-data body.
func (ep endpoint) multipart() bool {
	return ep == epTranscriptions || ep == epTranslations || ep == epImageEdits
}

// parseFormCall reads a multipart request's fields as parseCall reads a JSON body's.
func parseFormCall(ep endpoint, body []byte, contentType string, base behaviour) (call, error) {
	c := call{b: base}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return c, errors.New("the body must be multipart/form-data with a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	hasFile, hasPrompt := false, false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c, errors.New("malformed multipart body: " + err.Error())
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return c, errors.New("malformed multipart body: " + err.Error())
		}
		v := string(data)
		switch name := p.FormName(); name {
		case "file", "image", "image[]":
			hasFile = hasFile || (name == "file") == (ep != epImageEdits)
			if name == "file" {
				c.audio.fileName = p.FileName()
				c.audio.duration = audioSeconds(data)
			}
		case "model":
			c.model = strconv.Quote(v)
		case "prompt":
			hasPrompt = v != ""
			c.promptTokens = words(v)
			c.audio.promptWords = words(v)
		case "response_format":
			c.audio.format = v
			c.image.b64 = v == "b64_json"
		case "stream":
			c.stream = v == "true"
		case "n":
			n, _ := strconv.Atoi(v)
			c.image.n = min(max(n, 0), maxImages)
		case "size":
			c.image.size = v
		case "quality":
			c.image.quality = v
		case "partial_images":
			c.image.partials, _ = strconv.Atoi(v)
		case "mock":
			if !gjson.Valid(v) {
				return c, errors.New("mock must be a JSON object")
			}
			if err := c.b.override(gjson.Parse(v)); err != nil {
				return c, err
			}
		}
	}
	switch {
	case c.model == "":
		return c, errors.New("you must provide a model parameter")
	case !hasFile && ep == epImageEdits:
		return c, errors.New("missing required parameter \"image\"")
	case !hasFile:
		return c, errors.New("missing required parameter \"file\"")
	case !hasPrompt && ep == epImageEdits:
		return c, errors.New("missing required parameter \"prompt\"")
	}
	if c.audio.format == "" {
		c.audio.format = "json"
	}
	return c, nil
}

// audioSeconds is the length of an uploaded audio file: a WAV's own, else 16,000 bytes a second.
func audioSeconds(data []byte) float64 {
	if d, err := wav.Duration(data); err == nil {
		return d
	}
	return max(1, math.Ceil(float64(len(data))/16000))
}

// tokenModel reports whether a model reports token usage (gpt-4o-transcribe, gpt-4o-mini-tts…)
// rather than a duration.
func tokenModel(c *call) bool { return strings.HasPrefix(strings.Trim(c.model, `"`), "gpt-") }

// transcript is the text of a transcription: the answer's words, as chat's.
func transcript(c *call) string {
	tokens, _, _ := c.plan()
	var b strings.Builder
	for j := range tokens {
		if j > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[j%len(vocabulary)])
	}
	return b.String()
}

// appendAudioUsage renders a transcription's usage object.
func appendAudioUsage(dst []byte, c *call, text string) []byte {
	seconds := int64(math.Ceil(c.audio.duration))
	if !tokenModel(c) {
		dst = append(dst, `{"type":"duration","seconds":`...)
		dst = strconv.AppendInt(dst, seconds, 10)
		return append(dst, '}')
	}
	in, out := seconds*10+int64(c.audio.promptWords), int64(words(text))
	dst = append(dst, `{"type":"tokens","input_tokens":`...)
	dst = strconv.AppendInt(dst, in, 10)
	dst = append(dst, `,"input_token_details":{"audio_tokens":`...)
	dst = strconv.AppendInt(dst, seconds*10, 10)
	dst = append(dst, `,"text_tokens":`...)
	dst = strconv.AppendInt(dst, int64(c.audio.promptWords), 10)
	dst = append(dst, `},"output_tokens":`...)
	dst = strconv.AppendInt(dst, out, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, in+out, 10)
	return append(dst, '}')
}

// timestamp renders seconds as HH:MM:SS with the millisecond separator sep ("," for SubRip, "."
// for WebVTT).
func timestamp(seconds float64, sep string) string {
	ms := int64(math.Round(seconds * 1000))
	two := func(v int64) string { return string([]byte{byte('0' + v/10), byte('0' + v%10)}) }
	return two(ms/3_600_000) + ":" + two(ms/60_000%60) + ":" + two(ms/1000%60) + sep + strconv.FormatInt(1000+ms%1000, 10)[1:]
}

// renderTranscription renders a whole transcription or translation answer and its content type.
func renderTranscription(dst []byte, ep endpoint, c *call) ([]byte, string) {
	text := transcript(c)
	usage := ep == epTranscriptions && !c.b.noUsage
	end := c.audio.duration
	switch c.audio.format {
	case "text":
		return append(append(dst, text...), '\n'), "text/plain; charset=utf-8"
	case "srt":
		dst = append(dst, "1\n00:00:00,000 --> "+timestamp(end, ",")+"\n"...)
		return append(append(dst, text...), "\n\n"...), "text/plain; charset=utf-8"
	case "vtt":
		dst = append(dst, "WEBVTT\n\n00:00:00.000 --> "+timestamp(end, ".")+"\n"...)
		return append(append(dst, text...), "\n\n"...), "text/vtt; charset=utf-8"
	case "verbose_json":
		task := "transcribe"
		if ep == epTranslations {
			task = "translate"
		}
		dst = append(dst, `{"task":"`+task+`","language":"english","duration":`...)
		dst = strconv.AppendFloat(dst, end, 'f', -1, 64)
		dst = append(dst, `,"text":`...)
		dst = strconv.AppendQuote(dst, text)
		dst = append(dst, `,"segments":[{"id":0,"seek":0,"start":0,"end":`...)
		dst = strconv.AppendFloat(dst, end, 'f', -1, 64)
		dst = append(dst, `,"text":`...)
		dst = strconv.AppendQuote(dst, text)
		dst = append(dst, `,"tokens":[],"temperature":0,"avg_logprob":-0.1,"compression_ratio":1,"no_speech_prob":0.01}]`...)
	case "diarized_json":
		dst = append(dst, `{"text":`...)
		dst = strconv.AppendQuote(dst, text)
		dst = append(dst, `,"segments":[{"type":"transcript.text.segment","id":"seg_0","start":0,"end":`...)
		dst = strconv.AppendFloat(dst, end, 'f', -1, 64)
		dst = append(dst, `,"speaker":"A","text":`...)
		dst = strconv.AppendQuote(dst, text)
		dst = append(dst, `}]`...)
	default: // json
		dst = append(dst, `{"text":`...)
		dst = strconv.AppendQuote(dst, text)
	}
	if usage {
		dst = append(dst, `,"usage":`...)
		dst = appendAudioUsage(dst, c, text)
	}
	return append(dst, '}'), "application/json"
}

// writeTranscriptStream answers a streamed transcription: one transcript.text.delta per chunk,
// then transcript.text.done.
func writeTranscriptStream(w http.ResponseWriter, wt *waiter, c *call) outcome {
	s, ok := openEventStream(w, wt, c)
	if !ok {
		return outcomeCanceled
	}
	tokens, chunks, _ := c.plan()
	tpc, gap := c.b.tokensPerChunk, c.b.gap()
	var ev []byte
	for i := range chunks {
		if i == c.b.failAfter {
			return outcomeAborted
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		var delta strings.Builder
		for j := i * tpc; j < min((i+1)*tpc, tokens); j++ {
			if j > 0 {
				delta.WriteByte(' ')
			}
			delta.WriteString(vocabulary[j%len(vocabulary)])
		}
		ev = append(ev[:0], `data: {"type":"transcript.text.delta","delta":`...)
		ev = strconv.AppendQuote(ev, delta.String())
		if !s.sendRaw(append(ev, "}\n\n"...)) {
			return outcomeCanceled
		}
	}
	if c.b.failAfter >= chunks {
		return outcomeAborted
	}
	text := transcript(c)
	ev = append(ev[:0], `data: {"type":"transcript.text.done","text":`...)
	ev = strconv.AppendQuote(ev, text)
	if !c.b.noUsage {
		ev = append(ev, `,"usage":`...)
		ev = appendAudioUsage(ev, c, text)
	}
	if !s.sendRaw(append(ev, "}\n\n"...)) {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// speechTypes are the content types of speech's response formats.
var speechTypes = map[string]string{"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
	"wav": "audio/wav", "pcm": "audio/pcm"}

// parseSpeech reads a speech body's own fields, beside what parseCall read.
func parseSpeech(c *call, body string) error {
	f := gjson.GetMany(body, "input", "response_format", "stream_format")
	if f[0].Type != gjson.String {
		return errors.New("missing required parameter \"input\"")
	}
	c.audio.input, c.audio.format, c.audio.sse = f[0].Str, f[1].Str, f[2].Str == "sse"
	if c.audio.format == "" {
		c.audio.format = "mp3"
	}
	if speechTypes[c.audio.format] == "" {
		return errors.New("unsupported response_format " + strconv.Quote(c.audio.format))
	}
	return nil
}

// writeSpeech answers a speech request: audio bytes chunk by chunk, or SSE events.
func writeSpeech(w http.ResponseWriter, wt *waiter, c *call) outcome {
	hd := w.Header()
	if c.audio.sse {
		hd.Set("Content-Type", "text/event-stream")
		hd.Set("Cache-Control", "no-cache")
	} else {
		hd.Set("Content-Type", speechTypes[c.audio.format])
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil || !wt.wait(c.b.ttft) {
		return outcomeCanceled
	}
	chunks, gap := c.b.chunks, c.b.gap()
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := make([]byte, SpeechChunkBytes)
	var ev []byte
	for i := range chunks {
		if i == c.b.failAfter {
			return outcomeAborted
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		for k := range chunk {
			chunk[k] = byte('a' + i%26)
		}
		out := chunk
		switch {
		case c.audio.sse:
			ev = append(ev[:0], `data: {"type":"speech.audio.delta","audio":"`...)
			ev = base64.StdEncoding.AppendEncode(ev, chunk)
			out = append(ev, "\"}\n\n"...)
		case i == 0 && c.audio.format == "wav":
			out = append(wavHeader(uint32(chunks*SpeechChunkBytes)), chunk...)
		}
		if !send(out) {
			return outcomeCanceled
		}
	}
	if c.b.failAfter >= chunks {
		return outcomeAborted
	}
	if !c.audio.sse {
		return outcomeCompleted
	}
	ev = append(ev[:0], `data: {"type":"speech.audio.done"`...)
	if !c.b.noUsage {
		in, out := int64(words(c.audio.input)), int64(chunks*c.b.tokensPerChunk)
		ev = append(ev, `,"usage":{"input_tokens":`...)
		ev = strconv.AppendInt(ev, in, 10)
		ev = append(ev, `,"output_tokens":`...)
		ev = strconv.AppendInt(ev, out, 10)
		ev = append(ev, `,"total_tokens":`...)
		ev = strconv.AppendInt(ev, in+out, 10)
		ev = append(ev, '}')
	}
	if !send(append(ev, "}\n\n"...)) {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// wavHeader is the 44-byte header of a 24 kHz 16-bit mono PCM WAV with size bytes of samples.
func wavHeader(size uint32) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(36 + size)
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
	le(uint32(24000))
	le(uint32(48000))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(size)
	return b.Bytes()
}
