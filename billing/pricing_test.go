package billing

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const shippedPricing = "../configs/pricing.yaml"

// The shipped file loads and every entry is sane.
func TestShippedPricingFile(t *testing.T) {
	prices, err := LoadPricingFile(shippedPricing)
	if err != nil {
		t.Fatal(err)
	}
	if len(prices) < 40 {
		t.Fatalf("only %d prices", len(prices))
	}
	names := map[string]bool{}
	for _, p := range prices {
		lower := strings.ToLower(p.Model)
		if names[lower] {
			t.Errorf("%s: duplicate", p.Model)
		}
		names[lower] = true
		if p.Version == "" {
			t.Errorf("%s: no version", p.Model)
		}
		if !p.HasTokenPrices() {
			// Priced per unit only (images, audio, speech, moderation): checked below.
			if p.InputPerM != 0 || p.OutputPerM != 0 || p.CachedInputPerM != 0 {
				t.Errorf("%s: token prices without input/output %+v", p.Model, p)
			}
			continue
		}
		if p.InputPerM <= 0 {
			t.Errorf("%s: input %d: every shipped model is paid", p.Model, p.InputPerM)
		}
		if p.OutputPerM < 0 || p.CachedInputPerM < 0 || p.ReasoningPerM < 0 {
			t.Errorf("%s: negative price %+v", p.Model, p)
		}
		embedding := strings.Contains(p.Model, "embedding")
		if embedding != (p.OutputPerM == 0) {
			t.Errorf("%s: output %d: only embedding models have no output price", p.Model, p.OutputPerM)
		}
		if !embedding && p.OutputPerM < p.InputPerM {
			t.Errorf("%s: output %s < input %s (a transcription slip?)", p.Model, FormatMicro(p.OutputPerM), FormatMicro(p.InputPerM))
		}
		if p.CachedInputPerM > p.InputPerM {
			t.Errorf("%s: cached %s > input %s", p.Model, FormatMicro(p.CachedInputPerM), FormatMicro(p.InputPerM))
		}
		if p.InputPerM > 100_000_000 || p.OutputPerM > 500_000_000 {
			t.Errorf("%s: implausible price %+v (a unit slip: per 1K instead of per 1M?)", p.Model, p)
		}
		if c, err := Cost(p, Usage{Prompt: 1_000_000, Cached: 100_000, Completion: 1_000_000, Reasoning: 10}); err != nil || c <= 0 {
			t.Errorf("%s: Cost = %d, %v", p.Model, c, err)
		}
	}
	// The media models carry their unit prices.
	media := NewPricer()
	media.Set(prices)
	if p, _ := media.Lookup("dall-e-3"); p.Images["hd/1024x1024"] != 80_000 {
		t.Errorf("dall-e-3: %+v", p)
	}
	if p, _ := media.Lookup("whisper-1"); p.AudioSecond != 100 {
		t.Errorf("whisper-1: %+v", p)
	}
	if p, _ := media.Lookup("tts-1"); p.CharactersPerM != 15_000_000 {
		t.Errorf("tts-1: %+v", p)
	}
	// Every provider llmgate supports that bills per token is covered.
	for _, m := range []string{
		"gpt-4o", "gpt-4o-mini", "gpt-5.4", "o3", "text-embedding-3-small", // OpenAI (and Azure)
		"claude-sonnet-4-6", "claude-haiku-4-5", // Anthropic
		"us.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0", // Bedrock
		"gemini-2.5-pro", "gemini-2.5-flash", // Gemini (and Vertex AI, under the same ids)
		"claude-3-7-sonnet@20250219", "claude-haiku-4-5@20251001", "claude-sonnet-4-5@20250929", // Vertex AI's Claude ids
		"deepseek-v4-flash", "qwen3-max", "glm-5.3", "kimi-k3", "ernie-4.5-turbo-128k",
	} {
		if !names[m] {
			t.Errorf("%s: no price", m)
		}
	}
	// Spot-check a few transcriptions against PROVIDERS.md §10.
	p := NewPricer()
	p.Set(prices)
	for model, want := range map[string][3]string{
		"gpt-5.4":           {"2.5", "0.25", "15"},
		"claude-sonnet-5-5": {"2", "0.1", "10"},
		"deepseek-v4-flash": {"0.14", "0.0028", "0.28"},
		"glm-5.3":           {"1.4", "0.26", "4.4"},
	} {
		pr, ok := p.Lookup(model)
		got := [3]string{FormatMicro(pr.InputPerM), FormatMicro(pr.CachedInputPerM), FormatMicro(pr.OutputPerM)}
		if !ok || got != want {
			t.Errorf("%s: %v, %v; want %v", model, got, ok, want)
		}
	}
	// Every Claude model prices its cache writes (5-minute writes, PROVIDERS.md §10), and no
	// other provider's entry does.
	for _, pr := range prices {
		claude := strings.HasPrefix(pr.Model, "claude-")
		if claude != (pr.CacheWritePerM != 0) {
			t.Errorf("%s: cache-write price %s", pr.Model, FormatMicro(pr.CacheWritePerM))
		}
	}
	if pr, _ := p.Lookup("claude-sonnet-4-6-20260101"); FormatMicro(pr.CacheWritePerM) != "3.75" {
		t.Errorf("claude-sonnet-4-6: cache write %s, want 3.75 (PROVIDERS.md §10 row 18)", FormatMicro(pr.CacheWritePerM))
	}
}

func TestParsePricing(t *testing.T) {
	const head = "version: v1\ncurrency: USD\nproviders:\n  - provider: p\n    source: s\n    as_of: \"2026\"\n    models:\n"
	good := head +
		"      - { model: a, input: 2.50, output: \"10\" }\n" +
		"      - model: b\n        input: \"0.1\"\n        cached_input: 0.01\n        output: 0.4\n        reasoning: \"0.8\"\n        note: n\n" +
		"      - { model: free, input: 0, output: 0, cached_input: 0 }\n" +
		"      - { model: c, input: 3, cached_input: 0.30, cache_write: 3.75, output: 15 }\n"
	prices, err := ParsePricing([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Price{
		{Model: "a", InputPerM: 2_500_000, OutputPerM: 10_000_000, Version: "v1"},
		{Model: "b", InputPerM: 100_000, CachedInputPerM: 10_000, OutputPerM: 400_000, ReasoningPerM: 800_000, Version: "v1"},
		{Model: "free", Version: "v1"},
		{Model: "c", InputPerM: 3_000_000, CachedInputPerM: 300_000, CacheWritePerM: 3_750_000, OutputPerM: 15_000_000, Version: "v1"},
	}
	if len(prices) != len(want) {
		t.Fatalf("got %+v", prices)
	}
	for i := range want {
		if !reflect.DeepEqual(prices[i], want[i]) {
			t.Errorf("price %d = %+v, want %+v", i, prices[i], want[i])
		}
	}

	for _, c := range []struct {
		name, doc string
		wantAll   []string // substrings the error must contain: the model and the field
	}{
		{"empty", "", []string{"pricing"}},
		{"two documents", good + "---\nversion: x\n", []string{"one YAML document"}},
		{"no version", "currency: USD\nproviders: []\n", []string{`"version"`}},
		{"bad currency", "version: v\ncurrency: EUR\nproviders: []\n", []string{"EUR", "only USD"}},
		{"unknown top field", "version: v\ncurrency: USD\nproviders: []\nextra: 1\n", []string{`"extra"`}},
		{"no providers", "version: v\ncurrency: USD\nproviders: []\n", []string{"providers"}},
		{"provider without source", "version: v\ncurrency: USD\nproviders:\n  - provider: p\n    as_of: x\n    models: []\n", []string{`"source"`}},
		{"empty models", "version: v\ncurrency: USD\nproviders:\n  - {provider: p, source: s, as_of: x, models: []}\n", []string{`provider "p"`, "models"}},
		{"unknown model field", head + "      - { model: a, input: 1, output: 2, inptu: 3 }\n", []string{`"inptu"`, "models[0]"}},
		{"missing output", head + "      - { model: gpt-x, input: 1 }\n", []string{`"output"`, "models[0]"}},
		{"missing model", head + "      - { input: 1, output: 2 }\n", []string{`"model"`}},
		{"repeated field", head + "      - { model: a, input: 1, input: 2, output: 2 }\n", []string{`"input"`}},
		{"too many decimals", head + "      - { model: gpt-x, input: 0.0000001, output: 2 }\n", []string{`"gpt-x"`, `"input"`, "decimal places"}},
		{"exponent", head + "      - { model: gpt-x, input: 1, output: 2e-1 }\n", []string{`"gpt-x"`, `"output"`}},
		{"negative", head + "      - { model: gpt-x, input: 1, output: -2 }\n", []string{`"gpt-x"`, `"output"`, "negative"}},
		{"not a number", head + "      - { model: gpt-x, input: cheap, output: 2 }\n", []string{`"gpt-x"`, `"input"`}},
		{"null", head + "      - { model: gpt-x, input: ~, output: 2 }\n", []string{`"gpt-x"`, `"input"`}},
		{"list amount", head + "      - { model: gpt-x, input: [1], output: 2 }\n", []string{`"gpt-x"`, `"input"`}},
		{"zero cached", head + "      - { model: gpt-x, input: 1, output: 2, cached_input: 0 }\n", []string{`"gpt-x"`, `"cached_input"`, "same as input"}},
		{"zero cache write", head + "      - { model: gpt-x, input: 1, output: 2, cache_write: 0 }\n", []string{`"gpt-x"`, `"cache_write"`, "same as input"}},
		{"negative cache write", head + "      - { model: gpt-x, input: 1, output: 2, cache_write: -1 }\n", []string{`"gpt-x"`, `"cache_write"`}},
		{"zero reasoning", head + "      - { model: gpt-x, input: 1, output: 2, reasoning: \"0.0\" }\n", []string{`"gpt-x"`, `"reasoning"`}},
		{"whitespace name", head + "      - { model: \"gpt x\", input: 1, output: 2 }\n", []string{`"gpt x"`, "whitespace"}},
		{"duplicate model", head + "      - { model: GPT-X, input: 1, output: 2 }\n      - { model: gpt-x, input: 1, output: 2 }\n", []string{`"gpt-x"`, "already priced"}},
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

func TestLoadPricingFileErrors(t *testing.T) {
	if _, err := LoadPricingFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: no error")
	}
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte("version: v\ncurrency: USD\nproviders: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPricingFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name the file", err)
	}
}
