package gateway

import (
	"testing"

	"github.com/llmgate/llmgate/providers"
)

// TestContentFiltered: the ends a provider's content filter gives a whole answer, as each wire
// format says them; other ends are not.
func TestContentFiltered(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   providers.Endpoint
		body string
		want bool
	}{
		{"chat, content_filter", providers.ChatCompletions, `{"choices":[{"index":0,"finish_reason":"content_filter"}]}`, true},
		{"chat, the second choice filtered", providers.ChatCompletions, `{"choices":[{"finish_reason":"stop"},{"finish_reason":"content_filter"}]}`, true},
		{"chat, stop", providers.ChatCompletions, `{"choices":[{"finish_reason":"stop"}]}`, false},
		{"completions, content_filter", providers.Completions, `{"choices":[{"text":"","finish_reason":"content_filter"}]}`, true},
		{"embeddings", providers.Embeddings, `{"data":[{"embedding":[0.1]}]}`, false},
		{"a Message refused", providers.Messages, `{"type":"message","stop_reason":"refusal"}`, true},
		{"a Message ended", providers.Messages, `{"type":"message","stop_reason":"end_turn"}`, false},
		{"a Response incomplete for the filter", providers.Responses, `{"status":"incomplete","incomplete_details":{"reason":"content_filter"}}`, true},
		{"a Response cut by max_output_tokens", providers.Responses, `{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}`, false},
		{"not JSON", providers.ChatCompletions, `oops`, false},
	} {
		if got := contentFiltered(tc.ep, []byte(tc.body)); got != tc.want {
			t.Errorf("%s: contentFiltered = %v, want %v", tc.name, got, tc.want)
		}
	}
}
