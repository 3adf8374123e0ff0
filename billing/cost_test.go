package billing

import (
	"errors"
	"math"
	"testing"
)

func usd(t *testing.T, s string) int64 {
	t.Helper()
	v, err := ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCost(t *testing.T) {
	// gpt-5.4: 2.50 / 0.25 cached / 15.00 (configs/pricing.yaml).
	gpt54 := Price{Model: "gpt-5.4", InputPerM: usd(t, "2.50"), CachedInputPerM: usd(t, "0.25"), OutputPerM: usd(t, "15.00")}
	// A price with a distinct reasoning rate, to exercise that term.
	split := Price{Model: "split", InputPerM: usd(t, "1"), CachedInputPerM: usd(t, "0.1"), OutputPerM: usd(t, "4"), ReasoningPerM: usd(t, "8")}
	// gpt-5.5-pro: no cached price, so cached tokens cost the input price.
	pro := Price{Model: "gpt-5.5-pro", InputPerM: usd(t, "30"), OutputPerM: usd(t, "180")}

	cases := []struct {
		name string
		p    Price
		u    Usage
		want string // USD
	}{
		{"nothing", gpt54, Usage{}, "0"},
		// Published example: deploybase.ai "OpenAI API Pricing 2026" — GPT-5.4, 100K prompt + 2K
		// output: (100K × $2.50 + 2K × $15) / 1M = $0.28.
		{"published gpt-5.4 example", gpt54, Usage{Prompt: 100_000, Completion: 2_000}, "0.28"},
		// Published example: docs.rs openai-cost tests — 1M input + 500K output at gpt-5
		// (1.25 / 10.00) = $6.25, and 1M cached at 0.125 = $0.125.
		{"published gpt-5 example", Price{InputPerM: usd(t, "1.25"), CachedInputPerM: usd(t, "0.125"), OutputPerM: usd(t, "10")},
			Usage{Prompt: 1_000_000, Completion: 500_000}, "6.25"},
		{"published gpt-5 cached example", Price{InputPerM: usd(t, "1.25"), CachedInputPerM: usd(t, "0.125"), OutputPerM: usd(t, "10")},
			Usage{Prompt: 1_000_000, Cached: 1_000_000}, "0.125"},
		// Cached tokens are part of Prompt: 1000 prompt of which 600 cached =
		// 400 × 2.50/1M + 600 × 0.25/1M = 0.001 + 0.00015.
		{"cached subset", gpt54, Usage{Prompt: 1000, Cached: 600}, "0.00115"},
		// Reasoning tokens are part of Completion and, at reasoning price 0, cost the output price.
		{"reasoning at output price", gpt54, Usage{Completion: 1000, Reasoning: 900}, "0.015"},
		// All four terms, USD: (800×1 + 200×0.1 + 200×4 + 300×8) / 1M = 4020 / 1M = 0.00402.
		{"all four terms", split, Usage{Prompt: 1000, Cached: 200, Completion: 500, Reasoning: 300}, "0.00402"},
		{"no cached price", pro, Usage{Prompt: 1000, Cached: 1000, Completion: 10}, "0.0318"},
		{"one token at a sub-cent price", Price{InputPerM: usd(t, "0.0028")}, Usage{Prompt: 1}, "0.0000000028"},
	}
	for _, c := range cases {
		got, err := Cost(c.p, c.u)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if FormatPico64(got) != c.want {
			t.Errorf("%s: Cost = %d pico (%s USD), want %s USD", c.name, got, FormatPico64(got), c.want)
		}
	}
}

// TestCostCacheWrites: prompt tokens written to the provider's cache (a subset of Prompt, beside
// the cached reads) cost the cache-write price, or the input price when the price has none.
func TestCostCacheWrites(t *testing.T) {
	// claude-sonnet-4-6 (configs/pricing.yaml): 3.00 input, 0.30 cache read, 3.75 cache write
	// (5-minute, 1.25× input), 15.00 output.
	sonnet := Price{Model: "claude-sonnet-4-6", InputPerM: usd(t, "3"), CachedInputPerM: usd(t, "0.30"),
		CacheWritePerM: usd(t, "3.75"), OutputPerM: usd(t, "15")}
	noWritePrice := sonnet
	noWritePrice.CacheWritePerM = 0
	// Anthropic's usage {input_tokens: 1000, cache_read_input_tokens: 500,
	// cache_creation_input_tokens: 2000, output_tokens: 100} is Prompt 3500 of which 500 cached
	// and 2000 written: (1000×3 + 500×0.30 + 2000×3.75 + 100×15) / 1M = 12150 / 1M USD.
	u := Usage{Prompt: 3500, Cached: 500, CacheWrite: 2000, Completion: 100}
	for _, c := range []struct {
		name string
		p    Price
		want string
	}{
		{"cache-write price", sonnet, "0.01215"},
		{"no cache-write price: input price", noWritePrice, "0.01065"},
	} {
		got, err := Cost(c.p, u)
		if err != nil || FormatPico64(got) != c.want {
			t.Errorf("%s: Cost = %s USD, %v; want %s", c.name, FormatPico64(got), err, c.want)
		}
	}
	for _, bad := range []Usage{
		{Prompt: 10, CacheWrite: 11},
		{Prompt: 10, Cached: 6, CacheWrite: 5}, // reads and writes are disjoint shares of the prompt
		{Prompt: 10, CacheWrite: -1},
	} {
		if _, err := Cost(sonnet, bad); !errors.Is(err, ErrInvalidUsage) {
			t.Errorf("Cost(%+v) = %v, want ErrInvalidUsage", bad, err)
		}
	}
	if _, err := Cost(Price{CacheWritePerM: -1}, Usage{}); !errors.Is(err, ErrInvalidPrice) {
		t.Errorf("negative cache-write price: %v, want ErrInvalidPrice", err)
	}
}

// Costs add exactly: the sum of per-record costs equals the cost of the summed usage, which is
// what lets the zero-loss test compare ledger totals with the mock's own token counts.
func TestCostIsAdditive(t *testing.T) {
	p := Price{InputPerM: 2_500_000, CachedInputPerM: 250_000, OutputPerM: 15_000_000, ReasoningPerM: 0}
	var sum int64
	var total Usage
	for i := int64(1); i <= 1000; i++ {
		u := Usage{Prompt: 37 * i, Cached: 11 * i, Completion: 13 * i, Reasoning: 5 * i}
		c, err := Cost(p, u)
		if err != nil {
			t.Fatal(err)
		}
		sum += c
		total.Prompt += u.Prompt
		total.Cached += u.Cached
		total.Completion += u.Completion
		total.Reasoning += u.Reasoning
	}
	all, err := Cost(p, total)
	if err != nil || all != sum {
		t.Fatalf("Cost(total) = %d, %v; Σ Cost = %d", all, err, sum)
	}
}

func TestCostErrors(t *testing.T) {
	p := Price{Model: "m", InputPerM: 1_000_000, OutputPerM: 2_000_000}
	for _, c := range []struct {
		name string
		p    Price
		u    Usage
		want error
	}{
		{"negative prompt", p, Usage{Prompt: -1}, ErrInvalidUsage},
		{"negative reasoning", p, Usage{Completion: 1, Reasoning: -1}, ErrInvalidUsage},
		{"cached > prompt", p, Usage{Prompt: 5, Cached: 6}, ErrInvalidUsage},
		{"reasoning > completion", p, Usage{Completion: 5, Reasoning: 6}, ErrInvalidUsage},
		{"negative price", Price{InputPerM: -1}, Usage{Prompt: 1}, ErrInvalidPrice},
		{"product overflow", Price{InputPerM: math.MaxInt64}, Usage{Prompt: 2}, ErrCostOverflow},
		{"sum overflow", Price{InputPerM: math.MaxInt64 / 2, OutputPerM: math.MaxInt64 / 2}, Usage{Prompt: 1, Completion: 2}, ErrCostOverflow},
		{"just over int64", Price{InputPerM: 1 << 62}, Usage{Prompt: 2}, ErrCostOverflow},
		{"huge tokens", Price{InputPerM: 1, OutputPerM: 1}, Usage{Prompt: math.MaxInt64, Completion: 1}, ErrCostOverflow},
	} {
		got, err := Cost(c.p, c.u)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Cost = %d, %v; want %v", c.name, got, err, c.want)
		}
	}
	// The largest exact value is still accepted.
	if got, err := Cost(Price{InputPerM: math.MaxInt64}, Usage{Prompt: 1}); err != nil || got != math.MaxInt64 {
		t.Errorf("Cost at MaxInt64 = %d, %v", got, err)
	}
}
