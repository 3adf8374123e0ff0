package openai

import "github.com/llmgate/llmgate/providers"

// Preset is an OpenAI-compatible provider type with its known base URL and quirks. The adapter
// stays a byte passthrough; what differs between these upstreams in their answers (where stream
// usage comes, cumulative usage, cache and reasoning field names) is read by the gateway's relay,
// which accepts every spelling.
type Preset struct {
	// BaseURL is used when the config names none.
	BaseURL string
	// KeyOptional marks local servers that run without a key.
	KeyOptional bool
	// MaxTokensOnly: see Options.
	MaxTokensOnly bool
	// Azure: see Options.
	Azure bool
	// PrivateNetwork lets the address policy allow loopback and private addresses by default
	// (local servers live there); a provider's allow_private_network overrides it.
	PrivateNetwork bool
}

// MediaEndpoints lists the endpoints beyond the text ones that a provider type's upstream serves:
// OpenAI's Responses API, images and moderations; Azure OpenAI's Responses API and images (its
// deployment paths know images/generations but no moderations). The other presets are chat-only
// upstreams: DeepSeek, Qwen, vLLM… have no /responses.
func MediaEndpoints(providerType string) []providers.Endpoint {
	switch providerType {
	case "openai":
		return []providers.Endpoint{providers.Responses, providers.ImageGenerations, providers.Moderations,
			providers.ImageEdits, providers.AudioTranscriptions, providers.AudioTranslations, providers.AudioSpeech}
	case "azure":
		// Azure serves these at its deployment paths (/openai/deployments/{dep}/…, PROVIDERS-2.md
		// §3.1); it has no moderations endpoint.
		return []providers.Endpoint{providers.Responses, providers.ImageGenerations,
			providers.ImageEdits, providers.AudioTranscriptions, providers.AudioTranslations, providers.AudioSpeech}
	}
	return nil
}

// Presets are the provider types besides "openai" that this adapter serves (PROVIDERS.md §5–6).
var Presets = map[string]Preset{
	// DeepSeek: reasoning_content deltas; cached prompt tokens as prompt_cache_hit_tokens.
	"deepseek": {BaseURL: "https://api.deepseek.com/v1"},
	// Qwen through DashScope's compatible mode (international endpoint; set base_url for Beijing
	// or US-Virginia).
	"qwen": {BaseURL: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"},
	// Zhipu GLM (Z.ai): usage rides on the finish_reason chunk; only max_tokens is known.
	"glm": {BaseURL: "https://api.z.ai/api/paas/v4", MaxTokensOnly: true},
	// Moonshot / Kimi: stream usage inside choices[0].usage.
	"moonshot": {BaseURL: "https://api.moonshot.ai/v1"},
	// Baidu Qianfan v2 (an appid header, if wanted, goes in the provider's headers).
	"qianfan": {BaseURL: "https://qianfan.baidubce.com/v2"},
	// vLLM: cumulative usage on every chunk with continuous_usage_stats; reasoning deltas.
	"vllm": {BaseURL: "http://localhost:8000/v1", KeyOptional: true, PrivateNetwork: true},
	// Ollama: reasoning deltas; usage without details.
	"ollama": {BaseURL: "http://localhost:11434/v1", KeyOptional: true, PrivateNetwork: true},
	// Azure OpenAI: base_url is the resource endpoint (https://{resource}.openai.azure.com), or
	// its v1 API (…/openai/v1); the key goes in api-key.
	"azure": {Azure: true},
}
