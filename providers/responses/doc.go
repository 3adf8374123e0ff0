// Package responses translates OpenAI's Responses API (POST /v1/responses) to and from Chat
// Completions, so that a deployment whose adapter speaks only Chat Completions (Anthropic,
// Gemini, DeepSeek, vLLM, Ollama, the mock…) can serve Responses requests. It holds no state and
// makes no call: the gateway hands it bodies and streams and gets bodies and streams back.
//
//   - ToChat turns a create request into a chat completions request, or refuses it with a
//     *RequestError (an OpenAI-style 400 naming the param) before any upstream call.
//   - FromChat turns a chat.completion into a Response object.
//   - NewStream turns a chat.completion.chunk stream into the Responses event stream
//     (event: lines, sequence_number from 0 up by one), one upstream event at a time.
//   - NextHistory builds what a follow-up (previous_response_id) replays: the gateway keeps it,
//     and hands it back to ToChat in Options.History.
//
// # Ids
//
// Response ids are "resp_" and 48 hex digits from crypto/rand (NewResponseID), made by ToChat so
// the gateway knows the id before the upstream answers. Output item ids are derived from it:
// "msg_", "fc_" or "rs_", the same hex digits, "_" and the item's output_index. The upstream's
// own id (chatcmpl-…) is not kept: a client must be able to use the id as previous_response_id,
// and only the gateway can resolve it.
//
// # What is lost or changed
//
// Requests:
//   - Built-in tools (web_search, file_search, computer, code_interpreter, image_generation, mcp,
//     shell, custom…), and tool_choice values naming them, are refused: these deployments have
//     none. So are background:true, conversation, prompt templates, truncation:"auto",
//     context_management, max_tool_calls, top_logprobs and include:["message.output_text.logprobs"]
//     (the answer would not carry what they ask for), item_reference items, images given by
//     file_id and files given by file_url (Chat Completions has no way to carry them), and any
//     field this package does not know.
//   - store is accepted either way and reported in RequestInfo.Store: the gateway keeps the
//     conversation itself (store absent means true, as in OpenAI's API).
//   - include values that only add data about built-in tool calls are accepted and have nothing
//     to add; "reasoning.encrypted_content" is accepted, but no reasoning item carries encrypted
//     content (the upstreams give reasoning as plain text, returned as reasoning_text).
//   - stream_options.include_obfuscation is accepted; delta events carry no obfuscation field
//     (it pads against length side channels of OpenAI's own service).
//   - reasoning items in the input are dropped (Chat Completions has no field for them), and so
//     is reasoning.summary: the effort goes through as reasoning_effort.
//   - Consecutive function_call items (and one right after an assistant message) become one
//     assistant message with tool_calls, as Anthropic and Bedrock require.
//
// Answers:
//   - reasoning_content (or reasoning) becomes a reasoning item with an empty summary and the
//     text as one reasoning_text content part, streamed as response.reasoning_text.* events; it
//     is never a summary, since no upstream summarised it.
//   - logprobs are always [], annotations always [] (no upstream gives url citations in Chat
//     Completions form that maps onto them).
//   - finish_reason length → status incomplete with reason max_output_tokens, content_filter →
//     incomplete with reason content_filter; anything else completed.
//   - An upstream error inside a stream becomes an "error" event in the documented flat shape
//     (code, message, param), which OpenAI's SDKs raise; no response.failed follows.
//   - A stream's usage is taken from the last usage object seen (its own chunk, the finish chunk
//     or inside the choice): without one the terminal event has "usage":null and the gateway
//     estimates.
package responses
