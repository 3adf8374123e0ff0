package billing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Usage is one request's token counts, normalised to OpenAI's Chat Completions convention
// (openai-node CompletionUsage; PROVIDERS.md §2.3 [O1], §7.1):
//
//   - Prompt is every input token, INCLUDING cached ones: OpenAI's prompt_tokens contains
//     prompt_tokens_details.cached_tokens ("cached tokens present in the prompt" [O1][O14]).
//   - Cached is the subset of Prompt read from the provider's prompt cache, billed at the cached
//     price.
//   - CacheWrite is the subset of Prompt written to the provider's prompt cache (Anthropic's
//     cache_creation_input_tokens, OpenAI's prompt_tokens_details.cache_write_tokens), billed at
//     the cache-write price. Reads and writes are disjoint: Cached + CacheWrite ≤ Prompt.
//   - Completion is every generated token, INCLUDING reasoning ones: OpenAI's completion_tokens
//     contains completion_tokens_details.reasoning_tokens ("billed as output" [O1]).
//   - Reasoning is the subset of Completion spent thinking.
//
// Adapters map other wire formats onto this before costing (PROVIDERS.md §7.1): Anthropic's
// input_tokens EXCLUDES cache reads and writes, so Prompt = input_tokens +
// cache_creation_input_tokens + cache_read_input_tokens, Cached = cache_read_input_tokens and
// CacheWrite = cache_creation_input_tokens [A1]; Gemini's candidatesTokenCount excludes thoughts, so Completion = candidatesTokenCount +
// thoughtsTokenCount and Reasoning = thoughtsTokenCount [G1]; DeepSeek's prompt_cache_hit_tokens
// is Cached [D5]. Getting this wrong double-bills (adding cached to a prompt that already holds
// it) or under-bills (treating Anthropic's input_tokens as the whole prompt).
type Usage struct {
	Prompt, Completion, Cached, Reasoning int64
	CacheWrite                            int64
}

// Errors returned by Cost. A caller that gets one records the usage with no cost and raises the
// same warning and metric as for an unpriced model: a cost that cannot be computed exactly is
// never replaced by a guess or by $0.
var (
	// ErrInvalidUsage: a negative count, or a subset larger than its total (Cached + CacheWrite >
	// Prompt, Reasoning > Completion). That is an adapter bug; billing it either way would be a guess.
	ErrInvalidUsage = errors.New("invalid usage")
	// ErrInvalidPrice: a negative price.
	ErrInvalidPrice = errors.New("invalid price")
	// ErrCostOverflow: the cost does not fit in int64 pico-USD (about 9.2 million USD).
	ErrCostOverflow = errors.New("cost overflows int64 pico-USD")
)

// Cost returns what usage u costs at price p, in pico-USD, exactly:
//
//	(Prompt − Cached − CacheWrite) × InputPerM
//	+ Cached                  × (CachedInputPerM, or InputPerM when 0)
//	+ CacheWrite              × (CacheWritePerM, or InputPerM when 0)
//	+ (Completion − Reasoning) × OutputPerM
//	+ Reasoning               × (ReasoningPerM, or OutputPerM when 0)
//
// Prices are micro-USD per 1M tokens, so tokens × price is pico-USD with no division: the result
// is exact, and summing per-record costs gives exactly the cost of the summed tokens.
//
// Overflow is an error, not saturation: a saturated int64 would be a wrong amount that looks
// valid, and no real request comes near the limit of about 9.2 million USD (10M tokens at $1,000
// per 1M tokens is $10,000), so reaching it means corrupt input. Every product and sum is checked.
//
// Not modelled (documented in configs/pricing.yaml): the dearer 1-hour cache writes (Anthropic
// bills them at 2× input; every write costs the one cache-write price, set to the 5-minute rate),
// long-context price bands, batch/flex/priority tiers and time-of-day prices.
func Cost(p Price, u Usage) (int64, error) {
	if u.Prompt < 0 || u.Completion < 0 || u.Cached < 0 || u.Reasoning < 0 || u.CacheWrite < 0 {
		return 0, fmt.Errorf("%w: negative token count %+v", ErrInvalidUsage, u)
	}
	if u.Cached > u.Prompt || u.CacheWrite > u.Prompt-u.Cached {
		return 0, fmt.Errorf("%w: cached %d + cache writes %d > prompt %d (both are parts of the prompt)",
			ErrInvalidUsage, u.Cached, u.CacheWrite, u.Prompt)
	}
	if u.Reasoning > u.Completion {
		return 0, fmt.Errorf("%w: reasoning %d > completion %d (reasoning tokens are part of the completion)",
			ErrInvalidUsage, u.Reasoning, u.Completion)
	}
	if p.InputPerM < 0 || p.OutputPerM < 0 || p.CachedInputPerM < 0 || p.ReasoningPerM < 0 || p.CacheWritePerM < 0 {
		return 0, fmt.Errorf("%w: negative price for %q", ErrInvalidPrice, p.Model)
	}
	cachedPrice := p.CachedInputPerM
	if cachedPrice == 0 {
		cachedPrice = p.InputPerM
	}
	writePrice := p.CacheWritePerM
	if writePrice == 0 {
		writePrice = p.InputPerM
	}
	reasoningPrice := p.ReasoningPerM
	if reasoningPrice == 0 {
		reasoningPrice = p.OutputPerM
	}
	var acc uint64
	ok := true
	for _, term := range [5][2]int64{
		{u.Prompt - u.Cached - u.CacheWrite, p.InputPerM},
		{u.Cached, cachedPrice},
		{u.CacheWrite, writePrice},
		{u.Completion - u.Reasoning, p.OutputPerM},
		{u.Reasoning, reasoningPrice},
	} {
		hi, lo := bits.Mul64(uint64(term[0]), uint64(term[1]))
		var carry uint64
		acc, carry = bits.Add64(acc, lo, 0)
		ok = ok && hi == 0 && carry == 0
	}
	if !ok || acc > math.MaxInt64 {
		return 0, fmt.Errorf("%w: model %q, usage %+v", ErrCostOverflow, p.Model, u)
	}
	return int64(acc), nil
}
