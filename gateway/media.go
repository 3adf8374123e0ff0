package gateway

import (
	"bytes"
	"cmp"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers"
)

// This file holds what the media endpoints (images, moderations; audio.go and upload.go have the
// rest of audio and multipart) add to the relay: their default models, the few fields they are checked and priced by, routing among the
// deployments that serve them, and their units.

// defaultModels are OpenAI's defaults for a body without "model" (an SDK's
// client.moderations.create({input}) sends none): the gateway routes the public model of that
// name, so an operator who configures it serves the SDK's default call. Chat, completions and
// embeddings have no default: a body without a model is a 400 there.
var defaultModels = map[providers.Endpoint]string{
	providers.Moderations:      "omni-moderation-latest",
	providers.ImageGenerations: "dall-e-2",
}

// maxImages is the most images one request may ask for (OpenAI's limit for n).
const maxImages = 10

// imageRequest is what an images/generations body says about the images it asks for.
type imageRequest struct {
	n             int64 // 1 when the body does not say
	size, quality string
}

// parseImageRequest checks the fields an image request is routed, reserved and priced by: n is
// 1 to 10, size and quality are strings. (stream is parseRequest's.)
func parseImageRequest(body []byte) (imageRequest, error) {
	f := gjson.GetManyBytes(body, "n", "size", "quality", "stream", "prompt")
	if f[4].Type != gjson.String || f[4].Str == "" {
		return imageRequest{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "missing_field", "prompt", "You must provide a prompt (a string).")
	}
	r := imageRequest{n: 1}
	if n := f[0]; n.Exists() && n.Type != gjson.Null {
		if n.Type != gjson.Number || n.Raw != strconv.FormatInt(n.Int(), 10) || n.Int() < 1 || n.Int() > maxImages {
			return imageRequest{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "n",
				"n must be an integer from 1 to "+strconv.Itoa(maxImages)+".")
		}
		r.n = n.Int()
	}
	for i, name := range []string{"size", "quality"} {
		if v := f[1+i]; v.Exists() && v.Type != gjson.Null && v.Type != gjson.String {
			return imageRequest{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_type", name, name+" must be a string.")
		}
	}
	r.size, r.quality = f[1].Str, f[2].Str
	return r, nil
}

// capable keeps the deployments whose provider serves ep, in order, or answers why none does:
// a 400 before admission, so a request no deployment can serve costs nothing and reaches no
// upstream.
func capable(cands []*providers.Deployment, ep providers.Endpoint, model string) ([]*providers.Deployment, error) {
	out := cands[:0:0]
	for _, d := range cands {
		if providers.Serves(d.Provider, ep) {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, newError(http.StatusBadRequest, api.TypeInvalidRequest, "unsupported_endpoint", "model",
			"The model `"+model+"` cannot serve /v1/"+string(ep)+": none of its deployments' providers offers that endpoint (only OpenAI, Azure OpenAI for images and audio, and the mock do).")
	}
	return out, nil
}

// imageUnits counts the images of a whole image answer, with the size and quality that price
// them: the answer's own (GPT image models say which they chose for "auto"), else the request's.
func imageUnits(body []byte, req imageRequest) billing.Units {
	f := gjson.GetManyBytes(body, "data.#", "size", "quality")
	u := billing.Units{Images: f[0].Int(), ImageSize: req.size, ImageQuality: req.quality}
	if f[1].Type == gjson.String && f[1].Str != "" {
		u.ImageSize = f[1].Str
	}
	if f[2].Type == gjson.String && f[2].Str != "" {
		u.ImageQuality = f[2].Str
	}
	return u
}

// mediaCost is the cost of a media record at price p, by the endpoint's rule (docs/metering.md):
// images by reported tokens where the model has token prices, else per image; moderations by
// whatever the model is priced (a request price, usually nothing).
func (x *exchange) mediaCost(p billing.Price, out *outcome) (int64, error) {
	u := billing.Usage{Prompt: x.rec.PromptTokens, Completion: x.rec.CompletionTokens,
		Cached: x.rec.CachedTokens, Reasoning: x.rec.ReasoningTokens, CacheWrite: x.rec.CacheWriteTokens}
	switch {
	case isImages(x.ep):
		// A stream cut before its completed event is priced as a cut chat stream is: the
		// estimated tokens (the prompt; partial images are no text) at the token prices.
		return billing.ImageCost(p, u, out.usage.found || x.rec.UsageSource == sourcePartial, out.units)
	case isAudio(x.ep):
		return billing.AudioCost(p, u, out.usage.found, out.units)
	}
	return billing.CostWithUnits(p, u, billing.Units{})
}

// isImages reports whether ep makes images (generations or edits).
func isImages(ep providers.Endpoint) bool {
	return ep == providers.ImageGenerations || ep == providers.ImageEdits
}

// imageEvent handles one event of a streamed image answer (stream: true): relayed as it is. A
// partial image is passed on; each completed event (image_generation.completed,
// image_edit.completed) is one image delivered, priced by its size and quality, and its usage, the
// last one reported, is the answer's (as for every stream, it is billed once). The stream is
// complete when every image asked for has come (or at [DONE]).
func (s *sseRelay) imageEvent(e sse.Event) error {
	if e.Data != nil {
		switch t := gjson.GetBytes(e.Data, "type").Str; {
		case strings.HasSuffix(t, ".completed"):
			f := gjson.GetManyBytes(e.Data, "usage", "size", "quality")
			if u := parseUsage(f[0]); u.found {
				s.out.usage = u
			}
			n := &s.out.units
			n.Images++
			n.ImageSize, n.ImageQuality = cmp.Or(f[1].Str, s.x.image.size), cmp.Or(f[2].Str, s.x.image.quality)
			s.sawDone = s.sawDone || n.Images >= s.x.image.n
		case t == "error" || gjson.GetBytes(e.Data, "error").IsObject():
			s.upErr = true
		case bytes.Equal(e.Data, doneMarker):
			s.sawDone = true
		}
	}
	return s.write(append(e.Raw, '\n'))
}

// isMedia reports whether ep is one of the media endpoints, priced by this file's rules.
func isMedia(ep providers.Endpoint) bool {
	return ep == providers.ImageGenerations || ep == providers.Moderations || isUpload(ep) || ep == providers.AudioSpeech
}
