package messages

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// This file translates a Messages create (or count_tokens) request into a chat completions
// request (PROVIDERS.md §3.1–3.3, §7.3, §7.4; PROVIDERS-2.md §2.6). The chat body is written by
// appending: values the two APIs share (JSON Schemas, numbers) are copied as the client sent
// them.

// MaxTokensField names the chat field max_tokens becomes.
type MaxTokensField string

const (
	// MaxCompletionTokens is the current field, the only one OpenAI's reasoning models accept.
	MaxCompletionTokens MaxTokensField = "max_completion_tokens"
	// MaxTokens is the older field some OpenAI-compatible servers still want.
	MaxTokens MaxTokensField = "max_tokens"
)

// Options tune ToChat; the zero value is the usual choice.
type Options struct {
	// Model is the upstream model written into the chat body; empty keeps the request's model.
	Model string
	// MaxTokensField is where max_tokens goes; empty means MaxCompletionTokens.
	MaxTokensField MaxTokensField
	// Reasoning says the target accepts reasoning_effort: thinking (and output_config.effort)
	// become reasoning_effort. Without it they are dropped, not refused, since Claude Code sends
	// thinking with every request and must still work against a model that does not reason
	// (OpenAI answers 400 to reasoning_effort on such models).
	Reasoning bool
}

// RequestInfo is what the answer's translation, and the gateway, need to know of a request.
type RequestInfo struct {
	// ID is the id of the Message being made ("msg_" and 32 hex digits), known before the
	// upstream answers; the upstream's own id (chatcmpl-…) is not kept.
	ID string
	// Model is the model the client asked for, echoed in the Message.
	Model string
	// Stream is the request's stream flag.
	Stream bool
	// MaxTokens is max_tokens (0 for count_tokens): what a token reservation may assume.
	MaxTokens int64
	// StopSequences are the request's stop_sequences: an upstream that says which one stopped
	// it (vLLM's stop_reason) gets stop_reason "stop_sequence" with it.
	StopSequences []string
	// ReasoningEffort is the chat reasoning_effort the request's thinking or
	// output_config.effort stands for ("" for none), whether or not Options.Reasoning wrote it
	// into the body: the caller may add it for the targets that reason.
	ReasoningEffort string
}

// NewMessageID makes a fresh Message id.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "msg_" + hex.EncodeToString(b[:])
}

// maxUserID is the longest metadata.user_id passed on as chat's user.
const maxUserID = 64

// ToChat translates a Messages create request into a chat completions request. A request it
// cannot honour gets a *RequestError (400, invalid_request_error); no other error is returned.
func ToChat(body []byte, opts Options) ([]byte, RequestInfo, error) {
	return translate(body, opts, false)
}

// CountTokensToChat translates a count_tokens request (a create request without max_tokens,
// stream and the sampling fields) into the chat request whose prompt the gateway counts. It
// refuses what ToChat refuses, and the create-only fields, as Anthropic does.
func CountTokensToChat(body []byte, opts Options) ([]byte, RequestInfo, error) {
	return translate(body, opts, true)
}

// serverTools are Anthropic's hosted tool families and its Anthropic-defined client tools
// (whose schema only Anthropic's models know), by type prefix: none exists behind a chat
// completions deployment.
var serverTools = []string{"web_search", "web_fetch", "code_execution", "bash", "text_editor",
	"computer", "memory", "tool_search", "mcp"}

// createOnly are the fields count_tokens does not take.
var createOnly = map[string]bool{
	"max_tokens": true, "stream": true, "stop_sequences": true, "temperature": true, "top_p": true,
	"top_k": true, "metadata": true, "service_tier": true, "container": true, "inference_geo": true,
}

// request collects the fields of one request, rendered in a fixed order at the end.
type request struct {
	messages, system, maxTokens, stop, temperature, topP gjson.Result
	user, tools, toolChoice, thinking, effort, format    gjson.Result
	count                                                bool
}

func translate(body []byte, opts Options, count bool) ([]byte, RequestInfo, error) {
	var info RequestInfo
	if !jsoncheck.Valid(body) { // the gateway checked the depth before; a direct caller may not have
		return nil, info, invalid("The request body is not valid JSON.")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, info, invalid("The request body must be a JSON object.")
	}
	r := request{count: count}
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		err = r.field(k.Str, v, &info)
		return err == nil
	})
	if err != nil {
		return nil, info, err
	}
	switch {
	case info.Model == "":
		return nil, info, invalid("model: Field required")
	case !r.maxTokens.Exists() && !count:
		return nil, info, invalid("max_tokens: Field required")
	case !r.messages.Exists():
		return nil, info, invalid("messages: Field required")
	}
	info.ID = NewMessageID()

	var b builder
	if err := b.system(r.system); err != nil {
		return nil, info, err
	}
	if err := b.conversation(r.messages); err != nil {
		return nil, info, err
	}
	model := opts.Model
	if model == "" {
		model = info.Model
	}
	out := append(make([]byte, 0, len(body)+len(b.msgs)*64+len(model)+64), `{"model":`...)
	out = jsonappend.String(out, model)
	out = append(out, `,"messages":`...)
	out = b.appendJSON(out)
	if info.Stream {
		out = append(out, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	if r.maxTokens.Exists() {
		field := opts.MaxTokensField
		if field == "" {
			field = MaxCompletionTokens
		}
		out = append(out, `,"`...)
		out = append(out, field...)
		out = append(out, `":`...)
		out = append(out, r.maxTokens.Raw...)
	}
	if len(info.StopSequences) > 0 {
		out = append(out, `,"stop":`...)
		out = append(out, r.stop.Raw...)
	}
	out = appendRaw(out, "temperature", r.temperature)
	out = appendRaw(out, "top_p", r.topP)
	// OpenAI takes end-user identifiers of at most 64 characters; a longer one (Claude Code's
	// user_…_account_…_session_… is about 160) would get every request refused upstream, so it is
	// dropped: the gateway records its own user for each key anyway.
	if r.user.Type == gjson.String && len(r.user.Str) <= maxUserID {
		out = append(out, `,"user":`...)
		out = jsonappend.String(out, r.user.Str)
	}
	if out, err = r.appendTools(out); err != nil {
		return nil, info, err
	}
	info.ReasoningEffort = r.reasoningEffort()
	if opts.Reasoning && info.ReasoningEffort != "" {
		out = append(out, `,"reasoning_effort":"`...)
		out = append(out, info.ReasoningEffort...)
		out = append(out, '"')
	}
	if r.format.Exists() {
		out = append(out, `,"response_format":{"type":"json_schema","json_schema":{"name":"output","schema":`...)
		out = append(out, r.format.Get("schema").Raw...)
		out = append(out, "}}"...)
	}
	return append(out, '}'), info, nil
}

// appendRaw adds `,"k":v` for a value the client gave.
func appendRaw(dst []byte, k string, v gjson.Result) []byte {
	if !v.Exists() || v.Type == gjson.Null {
		return dst
	}
	dst = append(dst, `,"`...)
	dst = append(dst, k...)
	dst = append(dst, `":`...)
	return append(dst, v.Raw...)
}

// null reports whether a field is absent in effect.
func null(v gjson.Result) bool { return !v.Exists() || v.Type == gjson.Null }

func isBool(v gjson.Result) bool { return v.Type == gjson.True || v.Type == gjson.False }

// isInt reports whether v is a whole number at least min.
func isInt(v gjson.Result, min float64) bool {
	return v.Type == gjson.Number && v.Num >= min && v.Num == float64(int64(v.Num)) && v.Num < 1<<53
}

// field checks one top-level request field and keeps it for the rendering.
func (r *request) field(k string, v gjson.Result, info *RequestInfo) error {
	if r.count && createOnly[k] {
		return invalid("%s: Extra inputs are not permitted", k)
	}
	switch k {
	case "model":
		if v.Type != gjson.String || v.Str == "" {
			return invalid("model: Input should be a non-empty string")
		}
		info.Model = v.Str
	case "max_tokens":
		// Anthropic takes 0 to pre-warm its cache without generating; a chat target cannot.
		if !isInt(v, 1) {
			return invalid("max_tokens: Input should be a positive integer")
		}
		r.maxTokens, info.MaxTokens = v, v.Int()
	case "messages":
		if !v.IsArray() {
			return invalid("messages: Input should be a valid list")
		}
		r.messages = v
	case "system":
		if !null(v) && v.Type != gjson.String && !v.IsArray() {
			return invalid("system: Input should be a string or a list of text blocks")
		}
		r.system = v
	case "stream":
		if !null(v) && !isBool(v) {
			return invalid("stream: Input should be a valid boolean")
		}
		info.Stream = v.Type == gjson.True
	case "stop_sequences":
		if null(v) {
			return nil
		}
		if !v.IsArray() {
			return invalid("stop_sequences: Input should be a valid list")
		}
		var err error
		v.ForEach(func(_, s gjson.Result) bool {
			if s.Type != gjson.String {
				err = invalid("stop_sequences: Input should be a list of strings")
				return false
			}
			info.StopSequences = append(info.StopSequences, s.Str)
			return true
		})
		r.stop = v
		return err
	case "temperature", "top_p", "top_k":
		if !null(v) && v.Type != gjson.Number {
			return invalid("%s: Input should be a valid number", k)
		}
		// top_k has no chat field: it is dropped.
		if k == "temperature" {
			r.temperature = v
		} else if k == "top_p" {
			r.topP = v
		}
	case "metadata":
		if null(v) {
			return nil
		}
		if !v.IsObject() {
			return invalid("metadata: Input should be a valid dictionary")
		}
		if u := v.Get("user_id"); !null(u) && u.Type != gjson.String {
			return invalid("metadata.user_id: Input should be a valid string")
		}
		r.user = v.Get("user_id")
	case "tools":
		if !null(v) && !v.IsArray() {
			return invalid("tools: Input should be a valid list")
		}
		r.tools = v
	case "tool_choice":
		if !null(v) && !v.IsObject() {
			return invalid("tool_choice: Input should be an object")
		}
		r.toolChoice = v
	case "thinking":
		if null(v) {
			return nil
		}
		switch v.Get("type").Str {
		case "enabled":
			if !isInt(v.Get("budget_tokens"), 1) {
				return invalid("thinking.enabled.budget_tokens: Field required (a positive integer)")
			}
		case "disabled", "adaptive":
		default:
			return invalid("thinking: Input tag %s found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'", v.Get("type").Raw)
		}
		r.thinking = v
	case "output_config":
		if null(v) {
			return nil
		}
		if !v.IsObject() {
			return invalid("output_config: Input should be an object")
		}
		if e := v.Get("effort"); !null(e) {
			if e.Type != gjson.String {
				return invalid("output_config.effort: Input should be a string")
			}
			r.effort = e
		}
		return r.outputFormat("output_config.format", v.Get("format"))
	case "output_format":
		return r.outputFormat("output_format", v)
	case "service_tier", "context_management", "cache_control", "inference_geo":
		// Accepted and dropped: Anthropic's own capacity, context editing and caching
		// settings, which a chat target has no use for (Claude Code sends context_management).
	case "container", "mcp_servers":
		if !null(v) && !(v.IsArray() && len(v.Array()) == 0) {
			return invalid("%s: not supported for this model's deployment, which has no Anthropic-hosted tools", k)
		}
	default:
		return invalid("%s: Extra inputs are not permitted", k)
	}
	return nil
}

// outputFormat keeps a structured-output format: a JSON Schema, which chat takes as
// response_format.
func (r *request) outputFormat(path string, f gjson.Result) error {
	if null(f) {
		return nil
	}
	if f.Get("type").Str != "json_schema" || !f.Get("schema").IsObject() {
		return invalid("%s: Input should be {\"type\":\"json_schema\",\"schema\":{…}}", path)
	}
	r.format = f
	return nil
}

// reasoningEffort is the chat reasoning_effort the request's thinking stands for, "" for none:
// output_config.effort when given ("max" is "high", chat's highest common value), else a
// thinking budget by size (the reverse of the usual low 1024, medium 2048, high 4096 tokens).
func (r *request) reasoningEffort() string {
	if r.thinking.Get("type").Str == "disabled" {
		return ""
	}
	switch e := r.effort.Str; e {
	case "low", "medium", "high":
		return e
	case "max", "xhigh":
		return "high"
	}
	if r.thinking.Get("type").Str != "enabled" {
		return ""
	}
	switch b := r.thinking.Get("budget_tokens").Int(); {
	case b < 2048:
		return "low"
	case b < 4096:
		return "medium"
	default:
		return "high"
	}
}
