package mock

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// The JSON media endpoints in OpenAI's wire format (PROVIDERS-2.md §6.1, §6.4), answered whole
// and deterministically: the same request gets the same answer but for ids and times.
//
// images/generations: n images (1 by default) of the requested size ("1024x1024" by default).
// Models named gpt-image* answer as GPT image models do: always b64_json, the size and quality
// chosen (auto → 1024x1024, medium), and a usage object whose output tokens are OpenAI's per-image
// figures at 1024² (low 272, medium 1056, high 4160, ×1.5 for the other sizes, rounded down), the
// input tokens being the prompt's words. Other models (dall-e-*) answer a url per image unless
// response_format is b64_json, with no usage. mock.no_usage drops the usage object of GPT image
// models too.
//
// With stream:true, GPT image models stream (writeImageStream): partial_images (0-3) partial
// images and then the completed image, per image, the last completed event carrying the usage;
// other models answer whole, as dall-e does.
//
// moderations: one result per input string (one for a single string or a list of content
// parts). A category is flagged when the text contains its first word ("violence",
// "harassment", "hate", "illicit", "self-harm", "sexual"), scored 0.9, every other 0.0001.

// maxImages bounds n, as OpenAI's API does.
const maxImages = 10

// imageCall is what an images/generations body asks for.
type imageCall struct {
	n             int
	size, quality string
	b64           bool
	partials      int // partial_images of a stream
}

// tinyPNG is a 1×1 transparent PNG, the content of every b64_json image.
const tinyPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

// gptImageModel reports whether the call's model answers as GPT image models do.
func gptImageModel(c *call) bool {
	model := strings.Trim(c.model, `"`)
	return strings.HasPrefix(model, "gpt-image") || strings.HasPrefix(model, "chatgpt-image")
}

// appendImages renders an images/generations answer.
func appendImages(dst []byte, c *call, seq uint64, created int64) []byte {
	gptImage := gptImageModel(c)
	n := max(c.image.n, 1)
	size := c.image.size
	if size == "" || size == "auto" {
		size = "1024x1024"
	}
	dst = append(dst, `{"created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"data":[`...)
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if gptImage || c.image.b64 {
			dst = append(dst, `{"b64_json":"`+tinyPNG+`"}`...)
			continue
		}
		dst = append(dst, `{"url":"https://mock.invalid/images/`...)
		dst = strconv.AppendUint(dst, seq, 10)
		dst = append(dst, '-')
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, `.png"}`...)
	}
	dst = append(dst, `],"size":`...)
	dst = strconv.AppendQuote(dst, size)
	if !gptImage || c.b.noUsage {
		return append(dst, '}')
	}
	quality, perImage := imageQuality(c, size)
	dst = append(dst, `,"quality":`...)
	dst = strconv.AppendQuote(dst, quality)
	dst = append(dst, `,"output_format":"png","usage":`...)
	return append(appendImageUsage(dst, c, perImage*n), '}')
}

// imageQuality is the quality a GPT image model answers with (auto: medium) and its output
// tokens per image at size.
func imageQuality(c *call, size string) (string, int) {
	quality := c.image.quality
	if quality == "" || quality == "auto" {
		quality = "medium"
	}
	perImage := map[string]int{"low": 272, "medium": 1056, "high": 4160}[quality]
	if size != "1024x1024" {
		perImage = perImage * 3 / 2
	}
	return quality, perImage
}

// appendImageUsage renders an image answer's usage object for out output tokens.
func appendImageUsage(dst []byte, c *call, out int) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, int64(c.promptTokens), 10)
	dst = append(dst, `,"input_tokens_details":{"text_tokens":`...)
	dst = strconv.AppendInt(dst, int64(c.promptTokens), 10)
	dst = append(dst, `,"image_tokens":0},"output_tokens":`...)
	dst = strconv.AppendInt(dst, int64(out), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(c.promptTokens+out), 10)
	return append(dst, '}')
}

// maxPartialImages bounds partial_images, as OpenAI's API does (0 to 3).
const maxPartialImages = 3

// writeImageStream answers an image request with stream:true as GPT image models do
// (PROVIDERS-2.md §6.1): for each image, partial_images partial_image events, then its completed
// event, each with its event line (image_generation.* or, for edits, image_edit.*). The last
// completed event carries the usage of the whole request, unless no_usage. Paced as a chat
// stream (ttft, then the chunk gap); fail_after drops the connection after that many events.
func writeImageStream(w http.ResponseWriter, wt *waiter, c *call, prefix string) outcome {
	s, ok := openEventStream(w, wt, c)
	if !ok {
		return outcomeCanceled
	}
	size := c.image.size
	if size == "" || size == "auto" {
		size = "1024x1024"
	}
	quality, perImage := imageQuality(c, size)
	n, created := max(c.image.n, 1), time.Now().Unix()
	sent := 0
	var ev []byte
	emit := func(typ string, fields func([]byte) []byte) (outcome, bool) {
		if sent == c.b.failAfter {
			return outcomeAborted, false
		}
		if sent > 0 && !wt.wait(c.b.gap()) {
			return outcomeCanceled, false
		}
		sent++
		ev = append(ev[:0], "event: "+prefix+typ+"\ndata: {\"type\":\""+prefix+typ+"\",\"b64_json\":\""+tinyPNG+"\",\"created_at\":"...)
		ev = strconv.AppendInt(ev, created, 10)
		ev = append(ev, `,"size":`...)
		ev = strconv.AppendQuote(ev, size)
		ev = append(ev, `,"quality":`...)
		ev = strconv.AppendQuote(ev, quality)
		ev = append(fields(append(ev, `,"background":"opaque","output_format":"png"`...)), "}\n\n"...)
		if !s.sendRaw(ev) {
			return outcomeCanceled, false
		}
		return outcomeCompleted, true
	}
	for i := range n {
		for p := range min(max(c.image.partials, 0), maxPartialImages) {
			if o, ok := emit("partial_image", func(dst []byte) []byte {
				return strconv.AppendInt(append(dst, `,"partial_image_index":`...), int64(p), 10)
			}); !ok {
				return o
			}
		}
		if o, ok := emit("completed", func(dst []byte) []byte {
			if i < n-1 || c.b.noUsage {
				return dst
			}
			return appendImageUsage(append(dst, `,"usage":`...), c, perImage*n)
		}); !ok {
			return o
		}
	}
	return outcomeCompleted
}

// moderationCategories are OpenAI's categories, in its order.
var moderationCategories = []string{"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
	"illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors",
	"violence", "violence/graphic"}

// appendModerations renders a moderations answer.
func appendModerations(dst []byte, c *call, seq uint64) []byte {
	var texts []string
	switch in := c.input; {
	case in.Type == gjson.String:
		texts = []string{in.Str}
	case in.IsArray() && in.Get("0").Type == gjson.String:
		in.ForEach(func(_, v gjson.Result) bool {
			texts = append(texts, v.Str)
			return true
		})
	default: // content parts: one result for the whole input
		var b strings.Builder
		in.ForEach(func(_, v gjson.Result) bool {
			b.WriteString(v.Get("text").Str)
			b.WriteByte(' ')
			return true
		})
		texts = []string{b.String()}
	}
	dst = append(dst, `{"id":"modr-mock-`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","model":`...)
	dst = append(dst, c.model...)
	dst = append(dst, `,"results":[`...)
	for i, text := range texts {
		if i > 0 {
			dst = append(dst, ',')
		}
		lower := strings.ToLower(text)
		hit := make([]bool, len(moderationCategories))
		flagged := false
		for j, cat := range moderationCategories {
			word, _, _ := strings.Cut(cat, "/")
			hit[j] = strings.Contains(lower, word)
			flagged = flagged || hit[j]
		}
		dst = append(dst, `{"flagged":`...)
		dst = strconv.AppendBool(dst, flagged)
		dst = append(dst, `,"categories":{`...)
		for j, cat := range moderationCategories {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendQuote(dst, cat)
			dst = append(dst, ':')
			dst = strconv.AppendBool(dst, hit[j])
		}
		dst = append(dst, `},"category_scores":{`...)
		for j, cat := range moderationCategories {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendQuote(dst, cat)
			if hit[j] {
				dst = append(dst, `:0.9`...)
			} else {
				dst = append(dst, `:0.0001`...)
			}
		}
		dst = append(dst, `},"category_applied_input_types":{`...)
		for j, cat := range moderationCategories {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendQuote(dst, cat)
			dst = append(dst, `:["text"]`...)
		}
		dst = append(dst, "}}"...)
	}
	return append(dst, "]}"...)
}
