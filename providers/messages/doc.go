// Package messages translates Anthropic's Messages API (POST /v1/messages) to and from Chat
// Completions, so that a deployment whose upstream speaks only Chat Completions (OpenAI,
// DeepSeek, vLLM, Ollama, the mock…) can serve Messages requests from Anthropic's SDKs and
// Claude Code. It holds no state and makes no call: the gateway hands it bodies and streams and
// gets bodies and streams back. Deployments that speak Messages themselves get the request as
// it came; this package is not involved.
//
//   - ToChat turns a create request into a chat completions request, or refuses it with a
//     *RequestError (an Anthropic-shaped 400 invalid_request_error naming the field) before any
//     upstream call; CountTokensToChat does the same for a count_tokens request, whose prompt
//     the gateway counts itself.
//   - FromChat turns a chat.completion into a Message.
//   - NewStream turns a chat.completion.chunk stream into the Messages event stream
//     (message_start, content_block_start/delta/stop, message_delta, message_stop; error), one
//     upstream event at a time.
//   - ErrorBody, ErrorType and AppendErrorEvent give errors Anthropic's shape and types.
//
// # Ids
//
// Message ids are "msg_" and 32 hex digits from crypto/rand (NewMessageID), made by ToChat; the
// upstream's chatcmpl-… id is not kept. tool_use ids are the upstream's tool call ids (call_…),
// which come back unchanged as tool_result tool_use_ids and go upstream as tool_call_ids; a call
// without one gets "toolu_", the message id's hex digits, "_" and its position.
//
// # What is lost or changed
//
// Requests:
//   - Refused (400): server tools and Anthropic-defined client tools (web_search, web_fetch,
//     code_execution, bash, text_editor, computer, memory, tool_search, mcp…), mcp_servers and
//     container (the deployment has no hosted tools); server_tool_use and tool-result blocks of
//     server tools, search_result and container_upload blocks, and any other block type this
//     package does not know; images and documents given by file id, documents given by URL; a
//     tool_result whose tool_use_id answers no tool_use of the assistant turn before it; any
//     top-level field this package does not know ("Extra inputs are not permitted", as
//     Anthropic answers); max_tokens missing or below 1 (Anthropic's 0, a cache pre-warm, has no
//     chat equivalent).
//   - Dropped: top_k (no chat field), cache_control wherever it stands (chat targets cache on
//     their own), citations, thinking and redacted_thinking blocks of earlier assistant turns
//     (chat requests have no field for them), context_management, service_tier, inference_geo.
//   - thinking and output_config.effort become reasoning_effort only with Options.Reasoning (the
//     target takes it): output_config.effort as is ("max" is "high"), else a thinking budget
//     below 2048 tokens is "low", below 4096 "medium", else "high"; thinking disabled sends none.
//     Without Options.Reasoning they are dropped, so that Claude Code, which always sends
//     thinking, works against any model.
//   - output_config.format (and the older output_format) becomes response_format json_schema,
//     named "output", not strict.
//   - system becomes one system message, its text blocks joined by a blank line; a user turn of
//     text blocks only becomes one string, joined the same way (some chat servers take no
//     content parts).
//   - tool_result blocks become tool messages placed before the rest of their user turn (chat
//     wants them right after the calls); their text blocks are joined, images move to the user
//     message after them (tool messages carry text only), and is_error prefixes "Error: ".
//   - Consecutive assistant turns become one assistant message; a last assistant turn (a
//     prefill) is sent as an assistant message, which chat models answer rather than continue.
//   - stop_sequences become stop (OpenAI takes at most 4); metadata.user_id becomes user when it has
//     at most 64 characters (OpenAI's bound on end-user ids); a longer one is dropped.
//   - tool_choice and disable_parallel_tool_use are left out when there are no tools (OpenAI
//     refuses them without).
//
// Answers:
//   - Blocks come in Anthropic's order: thinking (from reasoning_content, or reasoning), text
//     (content, then refusal), tool_use (arguments parsed; arguments that are not a JSON object
//     become {}). An answer with none has one empty text block. Thinking blocks carry an empty
//     signature: no chat upstream signs its reasoning.
//   - stop_reason: length → max_tokens; tool_calls, or any finish with calls → tool_use;
//     content_filter or a refusal → refusal; stop → stop_sequence with stop_sequence set when the
//     upstream names the stop string and it is one of the request's (vLLM's stop_reason), else
//     end_turn, as for every other finish.
//   - usage: input_tokens are prompt_tokens minus cached_tokens (or DeepSeek's
//     prompt_cache_hit_tokens) minus cache_write_tokens, which become cache_read_input_tokens and
//     cache_creation_input_tokens (0 when the upstream does not say); output_tokens are
//     completion_tokens. Without usage every count is 0 (Usage.Present false: the gateway
//     estimates).
//   - Streams: message_start carries zero usage (chat usage comes last) and message_delta the
//     whole usage. Blocks are sequential: a block of another kind or another call stops the open
//     one; an upstream that goes back to the arguments of a stopped call ends the stream with an
//     api_error error event, as do malformed or oversized upstream events. A call's id and name
//     are those of its first fragment (content_block_start carries them), so an upstream that
//     names a call only in a later fragment gives a tool_use with an empty name. An upstream error
//     inside the stream becomes an error event whose type is the upstream's type or code when
//     that is one of Anthropic's, else api_error. No ping events are sent.
package messages
