package billing

import (
	"strings"
	"sync/atomic"
)

// Pricer is the in-memory table of the price in force for each model, read on the request path.
//
// Lookup does no I/O and takes no lock: the table is an immutable map behind an atomic pointer,
// and Set swaps in a new one. The caller owns freshness: it loads the prices in force from the
// store (store.Prices) at start and whenever they change (PUT /admin/pricing/{model}, a pub/sub
// notice or a poll) and calls Set; a lookup never waits for that.
//
// A model with no price is reported as such (ok == false) and never costs $0 silently: the
// caller records the usage with an empty cost, a warning and a metric, so an unpriced model shows
// up instead of passing as free.
//
// The zero value is not usable; call NewPricer.
type Pricer struct {
	table atomic.Pointer[priceTable]
}

type priceTable struct {
	// byName is keyed by the lower-cased model name: provider model ids are lower case, and a
	// client or an operator writing "GPT-4o" means the same model.
	byName map[string]Price
}

// NewPricer returns an empty Pricer: every Lookup reports false until Set.
func NewPricer() *Pricer {
	p := &Pricer{}
	p.table.Store(&priceTable{byName: map[string]Price{}})
	return p
}

// Set replaces the whole table with prices. Names are matched case-insensitively; when two
// entries share a name the later one wins (store.Prices returns one version per model, and
// LoadPricingFile rejects duplicates, so this only matters for hand-built slices).
func (p *Pricer) Set(prices []Price) {
	t := &priceTable{byName: make(map[string]Price, len(prices))}
	for _, pr := range prices {
		t.byName[strings.ToLower(pr.Model)] = pr
	}
	p.table.Store(t)
}

// Len reports how many models have a price.
func (p *Pricer) Len() int { return len(p.table.Load().byName) }

// Lookup returns the price in force for model and whether there is one. The returned Price's
// Model is the configured name, which may differ from model when the fallback below matched, so
// the record shows which price was applied.
//
// Matching, in order:
//
//  1. the exact name (case-insensitive);
//  2. a dated snapshot of a priced model: the longest priced name N such that model is
//     N + "-" + suffix, where suffix is a snapshot suffix — a date "2024-08-06" (OpenAI),
//     "20250514" (Anthropic), a 4-digit "0613"/"0125" (older OpenAI, Qwen, GLM), a 3-digit
//     "001" (Google), or "latest". So "gpt-4o-2024-08-06" → "gpt-4o" and
//     "claude-sonnet-4-5-20250929" → "claude-sonnet-4-5". Vertex AI's "@" stands for the "-"
//     ("claude-sonnet-4-5@20250929").
//
// The suffix is restricted on purpose. A plain "longest prefix followed by '-'" rule would price
// "gpt-4o-mini" as "gpt-4o" (16× too much), "gemini-2.5-flash-lite" as "gemini-2.5-flash",
// "claude-opus-5-5" as "claude-opus-5" and "gpt-4o-audio-preview" as "gpt-4o" whenever the
// variant itself has no price: a silently wrong price is worse than none. Anything that is not a
// snapshot of a priced model is unpriced: give it its own entry.
func (p *Pricer) Lookup(model string) (Price, bool) {
	t := p.table.Load()
	key := strings.ToLower(model) // no allocation when model is already lower case
	if pr, ok := t.byName[key]; ok {
		return pr, true
	}
	// Try each '-' (or '@') from the right: the first hit is the longest priced prefix.
	for i := len(key) - 1; i > 0; i-- {
		if (key[i] != '-' && key[i] != '@') || !isSnapshotSuffix(key[i+1:]) {
			continue
		}
		if pr, ok := t.byName[key[:i]]; ok {
			return pr, true
		}
	}
	return Price{}, false
}

// isSnapshotSuffix reports whether s (lower case, after the '-') names a dated or pinned snapshot
// rather than a different model: YYYY-MM-DD, YYYYMMDD, MMDD, NNN or "latest".
func isSnapshotSuffix(s string) bool {
	switch {
	case s == "latest":
		return true
	case len(s) == 10 && s[4] == '-' && s[7] == '-':
		return allDigits(s[:4]) && allDigits(s[5:7]) && allDigits(s[8:])
	case len(s) == 8 || len(s) == 4 || len(s) == 3:
		return allDigits(s)
	}
	return false
}
