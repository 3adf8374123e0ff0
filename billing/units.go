package billing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
)

// Units is what one request used that is priced per unit rather than per token: images made,
// seconds of input audio, characters of speech input. Token counts stay in Usage.
type Units struct {
	// Images is the number of images the answer holds; ImageSize and ImageQuality pick their
	// price (see Price.ImagePrice).
	Images       int64
	ImageSize    string
	ImageQuality string
	// AudioSeconds is the input audio's length, in whole seconds (rounded up).
	AudioSeconds int64
	// Characters counts the characters of a speech request's input.
	Characters int64
}

// Unit names of a usage record's billed units (store.UsageRecord.Unit): what Units counted, so
// that a record says what it was billed for.
const (
	UnitImage     = "image"
	UnitSecond    = "second"
	UnitCharacter = "character"
)

// ErrNoUnitPrice: the request used units (images, seconds, characters) its model has no price
// for. Like an unpriced model, the record keeps its usage without a cost: never $0 silently.
var ErrNoUnitPrice = errors.New("no price for the units used")

// DefaultImageKey is the image price key that applies to any size and quality without a key of
// its own.
const DefaultImageKey = "default"

// ImagePrice returns the price of one image of that size and quality, micro-USD, trying the keys
// "quality/size", "size" and "default" in that order. Keys are matched case-insensitively
// (they are stored lower case).
func (p Price) ImagePrice(size, quality string) (int64, bool) {
	size, quality = strings.ToLower(size), strings.ToLower(quality)
	if quality != "" && size != "" {
		if v, ok := p.Images[quality+"/"+size]; ok {
			return v, true
		}
	}
	if size != "" {
		if v, ok := p.Images[size]; ok {
			return v, true
		}
	}
	v, ok := p.Images[DefaultImageKey]
	return v, ok
}

// HasTokenPrices reports whether the price sets a token price (input or output per 1M tokens).
func (p Price) HasTokenPrices() bool { return p.InputPerM > 0 || p.OutputPerM > 0 }

// HasUnitPrices reports whether the price sets any price beyond tokens.
func (p Price) HasUnitPrices() bool {
	return len(p.Images) > 0 || p.AudioSecond > 0 || p.CharactersPerM > 0 || p.Request > 0
}

// ImageCost prices an image generation: by the token usage the provider reported when it
// reported one (reported) and the price has token prices, since that is how such models are
// billed (gpt-image-1); otherwise per image by size and quality. Either way the request price is
// added. ErrNoUnitPrice when neither applies.
func ImageCost(p Price, u Usage, reported bool, n Units) (int64, error) {
	if reported && p.HasTokenPrices() {
		n.Images = 0
		return CostWithUnits(p, u, n)
	}
	return CostWithUnits(p, Usage{}, n)
}

// AudioCost prices an audio request (transcription, translation, speech): by the token usage the
// provider reported when it reported one (reported) and the price has token prices
// (gpt-4o-transcribe, gpt-4o-mini-tts); otherwise by the seconds of input audio or the
// characters of speech input at the model's unit prices (whisper-1, tts-1). Either way the
// request price is added. ErrNoUnitPrice when nothing applies: no priced tokens and no units
// counted (a transcription whose length neither the answer nor the upload told).
func AudioCost(p Price, u Usage, reported bool, n Units) (int64, error) {
	if reported && p.HasTokenPrices() {
		n.AudioSeconds, n.Characters = 0, 0
		return CostWithUnits(p, u, n)
	}
	if n.AudioSeconds == 0 && n.Characters == 0 && p.Request == 0 {
		return 0, fmt.Errorf("%w: model %q, no audio seconds or characters to price", ErrNoUnitPrice, p.Model)
	}
	return CostWithUnits(p, Usage{}, n)
}

// CostWithUnits is Cost plus the unit prices, exact in pico-USD:
//
//	Cost(p, u)
//	+ Images       × image price (micro-USD per image)        × 10^6
//	+ AudioSeconds × AudioSecond (micro-USD per second)       × 10^6
//	+ Characters   × CharactersPerM (micro-USD per 1M chars)
//	+ Request (micro-USD)                                      × 10^6
//
// A unit used without a price for it is ErrNoUnitPrice; overflow is ErrCostOverflow.
func CostWithUnits(p Price, u Usage, n Units) (int64, error) {
	tokens, err := Cost(p, u)
	if err != nil {
		return 0, err
	}
	if n.Images < 0 || n.AudioSeconds < 0 || n.Characters < 0 {
		return 0, fmt.Errorf("%w: negative units %+v", ErrInvalidUsage, n)
	}
	if p.AudioSecond < 0 || p.CharactersPerM < 0 || p.Request < 0 {
		return 0, fmt.Errorf("%w: negative price for %q", ErrInvalidPrice, p.Model)
	}
	var image int64
	if n.Images > 0 {
		var ok bool
		if image, ok = p.ImagePrice(n.ImageSize, n.ImageQuality); !ok {
			return 0, fmt.Errorf("%w: model %q has no image price for size %q, quality %q", ErrNoUnitPrice, p.Model, n.ImageSize, n.ImageQuality)
		}
		if image < 0 {
			return 0, fmt.Errorf("%w: negative price for %q", ErrInvalidPrice, p.Model)
		}
	}
	if n.AudioSeconds > 0 && p.AudioSecond == 0 {
		return 0, fmt.Errorf("%w: model %q has no audio_second price", ErrNoUnitPrice, p.Model)
	}
	if n.Characters > 0 && p.CharactersPerM == 0 {
		return 0, fmt.Errorf("%w: model %q has no characters_million price", ErrNoUnitPrice, p.Model)
	}
	// Per-unit prices are micro-USD, so count × price × 10^6 is pico-USD; the characters' price
	// is per 1M characters, so count × price is pico-USD already, as for tokens.
	acc, ok := uint64(tokens), true
	for _, term := range [4][3]int64{
		{n.Images, image, 1_000_000},
		{n.AudioSeconds, p.AudioSecond, 1_000_000},
		{n.Characters, p.CharactersPerM, 1},
		{1, p.Request, 1_000_000},
	} {
		hi, lo := bits.Mul64(uint64(term[0]), uint64(term[1]))
		hi2, lo2 := bits.Mul64(lo, uint64(term[2]))
		var carry uint64
		acc, carry = bits.Add64(acc, lo2, 0)
		ok = ok && hi == 0 && hi2 == 0 && carry == 0
	}
	if !ok || acc > math.MaxInt64 {
		return 0, fmt.Errorf("%w: model %q, units %+v", ErrCostOverflow, p.Model, n)
	}
	return int64(acc), nil
}

// ValidImageKey checks an image price key: "default", a size such as "1024x1024" or "auto", or
// "quality/size" such as "hd/1024x1024" (lower case, no whitespace).
func ValidImageKey(k string) error {
	if k == "" || strings.ContainsAny(k, " \t\r\n") || k != strings.ToLower(k) {
		return fmt.Errorf("image price key %q: want \"default\", a size such as \"1024x1024\" or \"quality/size\" such as \"hd/1024x1024\", lower case", k)
	}
	q, s, found := strings.Cut(k, "/")
	if found && (q == "" || s == "" || strings.Contains(s, "/")) {
		return fmt.Errorf("image price key %q: want \"quality/size\" such as \"hd/1024x1024\"", k)
	}
	return nil
}

// ImageKeys returns the keys of an image price table in order, for stable output.
func ImageKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
