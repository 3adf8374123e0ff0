// Package mock simulates an OpenAI-compatible upstream. It is the upstream of the gateway's tests,
// of `llmgate demo` (in process, through New) and of the benchmark (over HTTP, through
// cmd/mockllm). Because the benchmark measures the gateway as a ratio against calling the mock
// directly, the mock is built to cost as little as possible per request: one pass of gjson over
// the body, answers appended into pooled buffers, no per-chunk allocation.
//
// # Endpoints
//
// POST /v1/chat/completions and POST /v1/completions (stream and non-stream), POST /v1/embeddings
// and GET /v1/models answer in OpenAI's wire format; any model name is accepted and echoed. A
// generation always has exactly one choice. Streams follow OpenAI's order: a role chunk (chat
// only), the content chunks, a chunk carrying finish_reason, then — only when the request sets
// stream_options.include_usage — a chunk with "choices":[] and the usage (every other chunk then
// carries "usage":null), then "data: [DONE]". Each event is flushed on its own.
//
// POST /v1/responses (stream and non-stream), GET and DELETE /v1/responses/{id} and POST
// /v1/responses/{id}/cancel speak OpenAI's Responses API, with the same words, token rules and
// overrides, keeping each response for follow-ups (previous_response_id) and for GET
// …?stream=true&starting_after=N, which replays it as its event stream; its particulars are
// documented in responses.go.
//
// POST /v1/images/generations and POST /v1/moderations answer whole, in OpenAI's format
// (media.go has the rules: urls or b64_json images, a usage object for gpt-image* models, one
// moderation result per input), with the same fault injection as chat. gpt-image* models stream
// with stream:true (and edits with stream=true): partial_images partial images, then the
// completed image with the usage, fail_after dropping the connection after that many events.
//
// POST /v1/images/edits, /v1/audio/transcriptions and /v1/audio/translations (multipart; the
// "mock" overrides come as a form field of that name) and POST /v1/audio/speech (JSON) speak
// OpenAI's media formats: every transcription response_format, transcript.text.* streams,
// speech audio in flushed chunks or speech.audio.* events, with the same fault injection as chat
// (audio.go has the rules).
//
// POST /v1/messages answers in Anthropic's Messages format (stream and non-stream, tools, prompt
// caching, Anthropic error bodies), with the same words, token rules and overrides; its
// particulars are documented in anthropic.go. POST /v1/messages/count_tokens answers
// {"input_tokens":N}, N being the input such a request counts (max_tokens not needed).
//
// Chat completions with function tools call them when the tool choice asks for it or the last
// user message names a tool (tool_calls, finish_reason "tool_calls"); chat_tools.go has the rule.
//
// POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse answer in
// Gemini's native format (thought parts, parallel function calls, cumulative usageMetadata, Google
// error bodies, x-goog-api-key), with the same words, limits and overrides (the "mock" object at
// the top of the Gemini body); its particulars are documented in gemini.go.
//
// Vertex AI's paths (/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
// and :streamGenerateContent, …/publishers/anthropic/models/{m}:rawPredict and :streamRawPredict)
// answer as the Gemini and Messages endpoints do, behind Google's OAuth: POST /token mints access
// tokens for assertions signed by a trusted service account (Options.ServiceAccounts), and every
// Vertex AI call needs a live one; vertex.go has the rules.
//
// POST /model/{modelId}/invoke, /invoke-with-response-stream, /converse and /converse-stream
// speak Amazon Bedrock Runtime: InvokeModel with an Anthropic body (bedrock-2023-05-31) and
// Converse, streams in AWS's binary event-stream framing, Bedrock's exceptions as errors, the
// "mock" overrides in the InvokeModel body or Converse's additionalModelRequestFields; with
// Options.AWSAccessKeyID and AWSSecretAccessKey every SigV4 signature is verified by recomputing
// it with the AWS SDK's signer. bedrock.go has the particulars.
//
// # Token accounting
//
// The numbers are deterministic so that tests can compute them:
//
//   - words(s) is the number of maximal runs of non-whitespace in s, whitespace being the ASCII
//     space, \t, \n, \v, \f and \r (strings.Fields agrees on ASCII text).
//   - Chat: prompt_tokens = Σ over messages of (3 + words(content)); content is a string, or an
//     array of parts of which only the "text" of each part counts; anything else (names, tool
//     calls, images) is free.
//   - Completions: prompt_tokens = words(prompt), summed over the strings of an array prompt, one
//     token per integer of a token-array prompt.
//   - Embeddings: prompt_tokens = total_tokens = the same rule applied to input.
//   - completion_tokens = Chunks × TokensPerChunk. When max_tokens or max_completion_tokens (the
//     smaller positive one) is below that, completion_tokens is that limit, the answer has
//     ceil(limit / TokensPerChunk) chunks and finish_reason is "length" instead of "stop".
//
// Token j of an answer (j from 0) is word j mod 16 of a fixed list of plain ASCII words ("the mock
// upstream streams deterministic words so tests …"), preceded by a space when j > 0, so the text
// of an answer has exactly completion_tokens words and needs no JSON escaping.
//
// # Per-request overrides
//
// A top-level body field "mock" (the gateway forwards unknown fields unchanged) overrides the
// handler's Options for one request. It takes the Options field names latency_ms, ttft_ms,
// tokens_per_second, chunks, tokens_per_chunk, error_rate, seed (this request's error draw then
// depends on the seed alone) and require_key (this request needs that key), plus:
//
//   - interval_ms: fixed gap between content chunks, replacing the tokens_per_second pacing.
//   - hang_ms: sleep before anything is written, to trigger time-to-first-byte timeouts.
//   - status: answer with this HTTP status (400–599) and an OpenAI error body.
//   - error_body: the raw error body to send instead (status 500 unless status is set), to test
//     the normalisation of non-OpenAI errors.
//   - fail_after: in a stream, drop the connection after this many content chunks, without the
//     finish chunk or [DONE] (a value ≥ the chunk count drops it just before the finish chunk;
//     non-stream requests ignore it).
//   - no_usage: never send usage, not even in a non-stream answer or when include_usage asks.
//   - exception, corrupt_frame: the Bedrock endpoints' fail_after ends the stream with an
//     exception message of that name (default modelStreamErrorException), or with a message whose
//     CRC is wrong.
//
// Unknown override fields are answered with 400 so that a typo cannot silently pass a test. Every
// wait stops as soon as the request context is canceled.
//
// # Introspection
//
// GET /_mock/stats, GET /_mock/requests?n=K and POST /_mock/reset expose what the upstream saw, so
// tests of the gateway can check what reached it (the Authorization header included) and whether
// the gateway gave up on a request. Handler.Stats, Handler.Requests and Handler.Reset offer the
// same in process.
package mock
