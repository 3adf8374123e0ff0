// Package messages translates Anthropic's Messages API (POST /v1/messages) to and from Chat
// Completions, so that a deployment whose upstream speaks only Chat Completions (OpenAI,
// DeepSeek, vLLM, Ollama, the mock…) can serve Messages requests from Anthropic's SDKs and
// Claude Code. It holds no state and makes no call: the gateway hands it bodies and streams and
// gets bodies and streams back. Deployments that speak Messages themselves get the request as
// it came; this package is not involved.
//
//   - ToChat turns a create request into a chat completions request, or refuses it with a
//     *RequestError (an Anthropic-shaped 400) before any upstream call; CountTokensToChat does
//     the same for a count_tokens request, whose prompt the gateway counts itself.
//   - FromChat turns a chat.completion into a Message.
//   - NewStream turns a chat.completion.chunk stream into the Messages event stream, one
//     upstream event at a time.
//   - ErrorBody and ErrorType give errors Anthropic's shape and types.
package messages
