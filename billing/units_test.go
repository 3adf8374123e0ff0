package billing

import (
	"errors"
	"strings"
	"testing"
)

func TestCostWithUnits(t *testing.T) {
	dalle := Price{Model: "dall-e-3", Images: map[string]int64{"1024x1024": usd(t, "0.04"), "hd/1024x1024": usd(t, "0.08"), "default": usd(t, "0.12")}}
	for _, c := range []struct {
		name string
		p    Price
		u    Usage
		n    Units
		want string
	}{
		{"two standard images", dalle, Usage{}, Units{Images: 2, ImageSize: "1024x1024"}, "0.08"},
		{"quality and size key first", dalle, Usage{}, Units{Images: 2, ImageSize: "1024x1024", ImageQuality: "HD"}, "0.16"},
		{"unknown quality falls back to size", dalle, Usage{}, Units{Images: 1, ImageSize: "1024x1024", ImageQuality: "standard"}, "0.04"},
		{"other size takes default", dalle, Usage{}, Units{Images: 3, ImageSize: "1792x1024"}, "0.36"},
		{"seconds of audio", Price{AudioSecond: usd(t, "0.0001")}, Usage{}, Units{AudioSeconds: 61}, "0.0061"},
		{"characters per million", Price{CharactersPerM: usd(t, "15")}, Usage{}, Units{Characters: 1234}, "0.01851"},
		{"request price on top of tokens", Price{InputPerM: usd(t, "1"), OutputPerM: usd(t, "2"), Request: usd(t, "0.001")}, Usage{Prompt: 1000, Completion: 500}, Units{}, "0.003"},
		{"no units, no price", Price{}, Usage{}, Units{}, "0"},
	} {
		got, err := CostWithUnits(c.p, c.u, c.n)
		if err != nil || FormatPico64(got) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.name, FormatPico64(got), err, c.want)
		}
	}
	if _, err := CostWithUnits(Price{Model: "m", Images: map[string]int64{"hd/1024x1024": 1}}, Usage{}, Units{Images: 1, ImageSize: "512x512"}); !errors.Is(err, ErrNoUnitPrice) {
		t.Errorf("image without its price: %v, want ErrNoUnitPrice", err)
	}
	if _, err := CostWithUnits(Price{Model: "m", InputPerM: 1}, Usage{}, Units{AudioSeconds: 1}); !errors.Is(err, ErrNoUnitPrice) {
		t.Errorf("audio without its price: %v, want ErrNoUnitPrice", err)
	}
	if _, err := CostWithUnits(Price{Images: map[string]int64{"default": 1 << 62}}, Usage{}, Units{Images: 4}); !errors.Is(err, ErrCostOverflow) {
		t.Errorf("overflow: %v", err)
	}
}

func TestImageCost(t *testing.T) {
	gptImage := Price{Model: "gpt-image-1", InputPerM: usd(t, "5"), OutputPerM: usd(t, "40"), Images: map[string]int64{"default": usd(t, "0.2")}}
	u := Usage{Prompt: 50, Completion: 4160}
	n := Units{Images: 1, ImageSize: "1024x1024", ImageQuality: "high"}
	// Reported token usage is what such a model bills: 50 × $5/1M + 4160 × $40/1M.
	if got, err := ImageCost(gptImage, u, true, n); err != nil || FormatPico64(got) != "0.16665" {
		t.Errorf("by tokens: %s, %v", FormatPico64(got), err)
	}
	// Without usage the per-image price applies, and estimated tokens are not billed.
	if got, err := ImageCost(gptImage, u, false, n); err != nil || FormatPico64(got) != "0.2" {
		t.Errorf("per image: %s, %v", FormatPico64(got), err)
	}
	// A model priced per image only is billed per image even when the provider reports tokens.
	dalle := Price{Model: "dall-e-3", Images: map[string]int64{"1024x1024": usd(t, "0.04")}}
	if got, err := ImageCost(dalle, u, true, Units{Images: 2, ImageSize: "1024x1024"}); err != nil || FormatPico64(got) != "0.08" {
		t.Errorf("per image with usage: %s, %v", FormatPico64(got), err)
	}
}

func TestAudioCost(t *testing.T) {
	transcribe := Price{Model: "gpt-4o-transcribe", InputPerM: usd(t, "2.5"), OutputPerM: usd(t, "10"), AudioSecond: usd(t, "0.0001")}
	whisper := Price{Model: "whisper-1", AudioSecond: usd(t, "0.0001")}
	tts := Price{Model: "tts-1", CharactersPerM: usd(t, "15")}
	u := Usage{Prompt: 300, Completion: 40}
	for _, c := range []struct {
		name     string
		p        Price
		reported bool
		n        Units
		want     string
		err      error
	}{
		// Reported tokens bill a model with token prices; the seconds are not billed again.
		{"tokens", transcribe, true, Units{AudioSeconds: 30}, "0.00115", nil},
		// Without usage, the seconds do.
		{"seconds", transcribe, false, Units{AudioSeconds: 30}, "0.003", nil},
		// A model priced per second only is billed per second even when tokens are reported.
		{"whisper with tokens", whisper, true, Units{AudioSeconds: 7}, "0.0007", nil},
		{"characters", tts, false, Units{Characters: 1000}, "0.015", nil},
		// Nothing counted and no priced tokens: unpriced, never $0.
		{"nothing", whisper, false, Units{}, "", ErrNoUnitPrice},
		{"tokens without token prices", whisper, true, Units{}, "", ErrNoUnitPrice},
		{"characters without a price", whisper, false, Units{Characters: 5}, "", ErrNoUnitPrice},
	} {
		got, err := AudioCost(c.p, u, c.reported, c.n)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || FormatPico64(got) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.name, FormatPico64(got), err, c.want)
		}
	}
}

func TestParsePricingUnits(t *testing.T) {
	const head = "version: v1\ncurrency: USD\nproviders:\n  - provider: p\n    source: s\n    as_of: \"2026\"\n    models:\n"
	doc := head +
		"      - model: dall-e-3\n        image: { \"1024x1024\": 0.04, \"hd/1024x1024\": \"0.08\" }\n" +
		"      - { model: whisper-1, audio_second: 0.0001 }\n" +
		"      - { model: tts-1, characters_million: 15 }\n" +
		"      - { model: omni-moderation-latest, request: 0 }\n" +
		"      - { model: gpt-image-1, input: 5, output: 40, image: { default: 0.167 } }\n"
	prices, err := ParsePricing([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p := prices[0]; p.Images["1024x1024"] != 40_000 || p.Images["hd/1024x1024"] != 80_000 || p.HasTokenPrices() {
		t.Errorf("dall-e-3: %+v", p)
	}
	if prices[1].AudioSecond != 100 || prices[2].CharactersPerM != 15_000_000 || prices[3].Request != 0 || !prices[3].HasUnitPrices() == (prices[3].Request != 0) {
		t.Errorf("units: %+v", prices[1:4])
	}
	if p := prices[4]; p.InputPerM != 5_000_000 || p.Images["default"] != 167_000 {
		t.Errorf("gpt-image-1: %+v", p)
	}
	for _, c := range []struct {
		name, doc string
		wantAll   []string
	}{
		{"no price at all", head + "      - { model: x }\n", []string{`"input"`}},
		{"input without output", head + "      - { model: x, input: 1, request: 0.1 }\n", []string{`"output"`}},
		{"bad image key", head + "      - { model: x, image: { \"HD 1024\": 1 } }\n", []string{`"x"`, `"image"`, "HD 1024"}},
		{"empty image table", head + "      - { model: x, image: {} }\n", []string{`"x"`, `"image"`}},
		{"image amount", head + "      - { model: x, image: { \"1024x1024\": 0.0000001 } }\n", []string{`"x"`, `"image.1024x1024"`, "decimal places"}},
		{"negative audio", head + "      - { model: x, audio_second: -1 }\n", []string{`"x"`, `"audio_second"`, "negative"}},
		{"characters typo", head + "      - { model: x, characters: 1 }\n", []string{`"characters"`}},
	} {
		_, err := ParsePricing([]byte(c.doc))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, s := range c.wantAll {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %s", c.name, err, s)
			}
		}
	}
}
