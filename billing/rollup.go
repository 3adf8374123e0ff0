package billing

import (
	"math/big"

	"github.com/llmgate/llmgate/store"
)

// Rollup sums daily rollup rows (store.DailyUsage) for the reports that show them: the billing
// summary and /v1/usage. Usage without a price is counted in the totals and, apart, in Unpriced;
// CostUSD is the cost of the priced usage only, and null when there is none, so unpriced usage
// never shows as $0. The zero value is an empty sum.
type Rollup struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	CachedTokens     int64 `json:"cached_tokens"`
	ReasoningTokens  int64 `json:"reasoning_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens"`
	// CostUSD is the exact decimal cost of the priced usage; nil (null) when none is priced.
	CostUSD *string `json:"cost_usd"`
	// Unpriced is the share of the counts above whose cost is unknown: a model without a price,
	// or a cost that could not be computed.
	Unpriced UnpricedUsage `json:"unpriced"`

	cost big.Int
}

// UnpricedUsage counts usage that has no cost.
type UnpricedUsage struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	CachedTokens     int64 `json:"cached_tokens"`
	ReasoningTokens  int64 `json:"reasoning_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens"`
}

// Add counts one rollup row.
func (r *Rollup) Add(d store.DailyUsage) {
	r.Requests += d.Requests
	r.PromptTokens += d.PromptTokens
	r.CompletionTokens += d.CompletionTokens
	r.CachedTokens += d.CachedTokens
	r.ReasoningTokens += d.ReasoningTokens
	r.CacheWriteTokens += d.CacheWriteTokens
	if d.CostPicoUSD == nil {
		u := &r.Unpriced
		u.Requests += d.Requests
		u.PromptTokens += d.PromptTokens
		u.CompletionTokens += d.CompletionTokens
		u.CachedTokens += d.CachedTokens
		u.ReasoningTokens += d.ReasoningTokens
		u.CacheWriteTokens += d.CacheWriteTokens
		return
	}
	r.cost.Add(&r.cost, d.CostPicoUSD)
	usd := FormatPico(&r.cost)
	r.CostUSD = &usd
}
