package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/llmgate/llmgate/billing"
)

// cacheWritePrice prices prompt-cache writes at 1.25× input, as Anthropic's 5-minute writes.
var cacheWritePrice = billing.Price{InputPerM: 3_000_000, CachedInputPerM: 300_000, CacheWritePerM: 3_750_000,
	OutputPerM: 15_000_000, Version: "cw"}

// TestAnthropicCacheWritesPriced: the prompt tokens an Anthropic upstream writes to its cache
// (cache_creation_input_tokens) reach the usage record as cache_write_tokens, a share of the
// prompt, and are costed at the cache-write price, on the chat endpoint (translated) and on
// /v1/messages (relayed), whole and streamed; the request that reads the cache writes none.
func TestAnthropicCacheWritesPriced(t *testing.T) {
	e, _, _ := messagesEnv(t, withPriceLookup(fixedPrices{cacheWritePrice}))
	for _, ep := range []string{"/chat/completions", "/messages"} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", ep, stream), func(t *testing.T) {
				// A system prompt of its own per case, so its first request writes the cache:
				// 3 + 6 words.
				system := fmt.Sprintf(`[{"type":"text","text":"shared context for %s stream %v","cache_control":{"type":"ephemeral"}}]`, ep, stream)
				var body string
				if ep == "/messages" {
					body = `{"model":"claude-sonnet-4-5","max_tokens":64,"system":` + system +
						`,"messages":[{"role":"user","content":"question one"}],"stream":` + fmt.Sprint(stream) + `}`
				} else {
					body = `{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":` + system +
						`},{"role":"user","content":"question one"}],"stream":` + fmt.Sprint(stream) + `}`
				}
				for i, wantWrite := range []int64{9, 0} {
					var resp *http.Response
					if ep == "/messages" {
						resp = e.postMessages(context.Background(), ep, e.key, body)
					} else {
						resp = e.post(context.Background(), ep, e.key, []byte(body))
					}
					readAll(t, resp)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("request %d: HTTP %d", i, resp.StatusCode)
					}
					r := e.usageFor(resp.Header.Get("X-Request-Id"))
					if r.CacheWriteTokens != wantWrite || r.CachedTokens != 9-wantWrite || r.PromptTokens != 14 {
						t.Fatalf("request %d: tokens prompt %d cached %d cache writes %d; want 14, %d, %d",
							i, r.PromptTokens, r.CachedTokens, r.CacheWriteTokens, 9-wantWrite, wantWrite)
					}
					want, err := billing.Cost(cacheWritePrice, billing.Usage{Prompt: r.PromptTokens, Cached: r.CachedTokens,
						CacheWrite: wantWrite, Completion: r.CompletionTokens, Reasoning: r.ReasoningTokens})
					if err != nil {
						t.Fatal(err)
					}
					if r.CostPicoUSD == nil || *r.CostPicoUSD != want {
						t.Errorf("request %d: cost %v pico-USD, want %d (cache writes at 3.75 per 1M)", i, r.CostPicoUSD, want)
					}
				}
			})
		}
	}
}
