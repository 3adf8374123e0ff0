package responses

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// This file translates a Responses create request into a chat completions request
// (PROVIDERS-2.md §1.2–1.4, §1.11). The chat body is written by appending: values the two APIs
// share (JSON Schemas, metadata, numbers) are copied as the client sent them.

// MaxTokensField names the chat field max_output_tokens becomes.
type MaxTokensField string

const (
	// MaxCompletionTokens is the current field, the only one o-series models accept.
	MaxCompletionTokens MaxTokensField = "max_completion_tokens"
	// MaxTokens is the older field some OpenAI-compatible servers still want.
	MaxTokens MaxTokensField = "max_tokens"
)

// Options tune ToChat; the zero value is the usual choice.
type Options struct {
	// Model is the upstream model written into the chat body; empty keeps the request's model.
	Model string
	// MaxTokensField is where max_output_tokens goes; empty means MaxCompletionTokens.
	MaxTokensField MaxTokensField
	// History is the conversation a previous_response_id stands for, as NextHistory built it (a
	// JSON array of input items): it comes before the request's input.
	History []byte
	// Now is the clock for created_at; nil means time.Now.
	Now func() time.Time
}

// RequestInfo is what the answer's translation, and the gateway, need to know of a request.
type RequestInfo struct {
	// ResponseID is the id of the Response being made (see the package doc).
	ResponseID string
	// CreatedAt is the Response's created_at, in unix seconds.
	CreatedAt int64
	// Model is the model the client asked for, echoed in the Response.
	Model string
	// Stream is the request's stream flag.
	Stream bool
	// Store is whether the client wants the response kept for a follow-up (absent means true).
	Store bool
	// PreviousResponseID is the response the request continues, empty when none: the gateway
	// looks it up and passes its history in Options.History.
	PreviousResponseID string
	// MaxOutputTokens is max_output_tokens, 0 when absent: what a token reservation may assume.
	MaxOutputTokens int64
	// Input is the conversation so far as a JSON array of input items: Options.History followed
	// by this request's input (a string input becomes one user message). Instructions are not in
	// it: OpenAI does not carry them over to a follow-up.
	Input []byte

	echo  []byte           // the request fields a Response repeats, rendered as `,"k":v…`
	clock func() time.Time // Options.Now
}

// NewResponseID makes a fresh Response id.
func NewResponseID() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "resp_" + hex.EncodeToString(b[:])
}

// PreviousResponseID is the request's previous_response_id, read without translating the
// request, so the gateway can fetch the history before calling ToChat.
func PreviousResponseID(body []byte) string {
	return gjson.GetBytes(body, "previous_response_id").Str
}

// builtinTools are OpenAI's hosted tools: none exists behind a chat completions deployment.
var builtinTools = map[string]bool{
	"file_search": true, "computer": true, "computer_use": true, "computer_use_preview": true,
	"web_search": true, "web_search_preview": true, "web_search_preview_2025_03_11": true,
	"web_search_2025_08_26": true, "mcp": true, "code_interpreter": true, "image_generation": true,
	"local_shell": true, "shell": true, "custom": true, "namespace": true, "tool_search": true,
	"apply_patch": true, "programmatic_tool_calling": true,
}

// includeNoops are include values that ask for data about built-in tool calls (refused anyway)
// or for data this translation never has; accepting them changes nothing.
var includeNoops = map[string]bool{
	"file_search_call.results": true, "web_search_call.results": true,
	"web_search_call.action.sources": true, "message.input_image.image_url": true,
	"computer_call_output.output.image_url": true, "code_interpreter_call.outputs": true,
	"reasoning.encrypted_content": true,
}

// passFields are request fields Chat Completions has under the same name and meaning.
var passFields = map[string]bool{
	"temperature": true, "top_p": true, "parallel_tool_calls": true, "metadata": true, "user": true,
	"safety_identifier": true, "prompt_cache_key": true, "prompt_cache_retention": true,
	"service_tier": true,
}

// ToChat translates a Responses create request into a chat completions request. A request it
// cannot honour gets a *RequestError; no other error is returned.
func ToChat(body []byte, opts Options) ([]byte, RequestInfo, error) {
	info := RequestInfo{Store: true}
	if !jsoncheck.Valid(body) {
		return nil, info, reqErr("", CodeInvalidValue, "The request body is not valid JSON.")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, info, reqErr("", CodeInvalidType, "The request body must be a JSON object.")
	}
	info.clock = opts.Now
	info.ResponseID, info.CreatedAt = NewResponseID(), info.now().Unix()

	t := translator{out: make([]byte, 0, len(body)+len(opts.History)+128)}
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		err = t.field(k.Str, v, &info)
		return err == nil
	})
	if err != nil {
		return nil, info, err
	}
	if info.Model == "" {
		return nil, info, reqErr("model", CodeMissingParameter, "Missing required parameter: 'model'.")
	}
	model := opts.Model
	if model == "" {
		model = info.Model
	}

	// Messages: instructions, the history, then the input.
	var b messageBuilder
	system := 0
	if t.instructions.Type == gjson.String && t.instructions.Str != "" {
		b.add(chatMessage{role: "system", content: jsonappend.String(nil, t.instructions.Str)})
		system = 1
	}
	info.Input = append(make([]byte, 0, len(opts.History)+len(t.input.Raw)+64), '[')
	if len(opts.History) > 0 {
		h := gjson.ParseBytes(opts.History)
		if !h.IsArray() {
			return nil, info, reqErr("previous_response_id", CodeInvalidValue, "The stored conversation of the previous response cannot be read.")
		}
		if err := b.items(h, "previous_response_id", &info); err != nil {
			return nil, info, err
		}
	}
	switch in := t.input; {
	case in.Type == gjson.String:
		item := `{"type":"message","role":"user","content":` + in.Raw + `}`
		b.add(chatMessage{role: "user", content: []byte(in.Raw)})
		info.Input = appendItem(info.Input, item)
	case in.IsArray():
		if err := b.items(in, "input", &info); err != nil {
			return nil, info, err
		}
	case in.Exists() && in.Type != gjson.Null:
		return nil, info, reqErr("input", CodeInvalidType, "input must be a string or an array of input items.")
	}
	info.Input = append(info.Input, ']')
	if len(b.msgs) == system {
		return nil, info, reqErr("input", CodeMissingParameter, "Missing required parameter: 'input'.")
	}

	out := append(make([]byte, 0, len(t.out)+len(b.msgs)*64+len(model)+32), `{"model":`...)
	out = jsonappend.String(out, model)
	out = append(out, `,"messages":`...)
	out = b.appendJSON(out)
	if info.Stream {
		out = append(out, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	if t.maxTokens.Exists() {
		field := opts.MaxTokensField
		if field == "" {
			field = MaxCompletionTokens
		}
		out = append(out, `,"`...)
		out = append(out, field...)
		out = append(out, `":`...)
		out = append(out, t.maxTokens.Raw...)
	}
	out = append(out, t.out...)
	out = append(out, '}')
	info.echo = t.appendEcho(nil, &info)
	return out, info, nil
}

// translator collects the fields of one request.
type translator struct {
	out []byte // chat fields rendered as `,"k":v…`, in request order

	input, instructions, maxTokens                        gjson.Result
	tools, toolChoice, text, reasoning, temperature, topP gjson.Result
	parallel, metadata, user, truncation                  gjson.Result
}

func (t *translator) raw(k string, v gjson.Result) {
	t.out = append(t.out, ',')
	t.out = jsonappend.String(t.out, k)
	t.out = append(t.out, ':')
	t.out = append(t.out, v.Raw...)
}

// null reports whether a field is absent in effect.
func null(v gjson.Result) bool { return v.Type == gjson.Null }

// field handles one top-level request field.
func (t *translator) field(k string, v gjson.Result, info *RequestInfo) error {
	switch k {
	case "model":
		if v.Type != gjson.String {
			return reqErr("model", CodeInvalidType, "model must be a string.")
		}
		info.Model = v.Str
	case "input":
		t.input = v
	case "instructions":
		if !null(v) && v.Type != gjson.String {
			return reqErr("instructions", CodeInvalidType, "instructions must be a string.")
		}
		t.instructions = v
	case "stream":
		if !null(v) && !isBool(v) {
			return reqErr("stream", CodeInvalidType, "stream must be a boolean.")
		}
		info.Stream = v.Type == gjson.True
	case "stream_options":
		// include_obfuscation only pads OpenAI's own deltas; nothing else is defined here.
		if !null(v) && !v.IsObject() {
			return reqErr("stream_options", CodeInvalidType, "stream_options must be an object.")
		}
	case "store":
		if !null(v) && !isBool(v) {
			return reqErr("store", CodeInvalidType, "store must be a boolean.")
		}
		info.Store = v.Type != gjson.False
	case "background":
		if v.Type == gjson.True {
			return reqErr("background", CodeUnsupportedValue, "background mode is not supported for this model's deployment; send the request without background.")
		}
		if !null(v) && !isBool(v) {
			return reqErr("background", CodeInvalidType, "background must be a boolean.")
		}
	case "previous_response_id":
		if !null(v) && (v.Type != gjson.String || v.Str == "") {
			return reqErr("previous_response_id", CodeInvalidType, "previous_response_id must be a non-empty string.")
		}
		info.PreviousResponseID = v.Str
	case "max_output_tokens":
		if null(v) {
			return nil
		}
		if v.Type != gjson.Number || v.Num < 1 || v.Num != float64(int64(v.Num)) {
			return reqErr("max_output_tokens", CodeInvalidValue, "max_output_tokens must be a positive integer.")
		}
		t.maxTokens, info.MaxOutputTokens = v, v.Int()
	case "temperature", "top_p":
		if !null(v) && v.Type != gjson.Number {
			return reqErr(k, CodeInvalidType, "%s must be a number.", k)
		}
		if k == "temperature" {
			t.temperature = v
		} else {
			t.topP = v
		}
		if !null(v) {
			t.raw(k, v)
		}
	case "parallel_tool_calls", "metadata", "user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier":
		switch k {
		case "parallel_tool_calls":
			if !null(v) && !isBool(v) {
				return reqErr(k, CodeInvalidType, "%s must be a boolean.", k)
			}
			t.parallel = v
		case "metadata":
			if !null(v) && !v.IsObject() {
				return reqErr(k, CodeInvalidType, "metadata must be an object of strings.")
			}
			t.metadata = v
		default:
			if !null(v) && v.Type != gjson.String {
				return reqErr(k, CodeInvalidType, "%s must be a string.", k)
			}
			if k == "user" {
				t.user = v
			}
		}
		if !null(v) {
			t.raw(k, v)
		}
	case "tools":
		t.tools = v
		return t.translateTools(v)
	case "tool_choice":
		t.toolChoice = v
		return t.translateToolChoice(v)
	case "text":
		t.text = v
		return t.translateText(v)
	case "reasoning":
		t.reasoning = v
		if null(v) {
			return nil
		}
		if !v.IsObject() {
			return reqErr("reasoning", CodeInvalidType, "reasoning must be an object.")
		}
		// summary has no chat equivalent; the effort does.
		if e := v.Get("effort"); e.Type == gjson.String {
			t.raw("reasoning_effort", e)
		} else if !null(e) && e.Exists() {
			return reqErr("reasoning.effort", CodeInvalidType, "reasoning.effort must be a string.")
		}
	case "include":
		if null(v) {
			return nil
		}
		if !v.IsArray() {
			return reqErr("include", CodeInvalidType, "include must be an array of strings.")
		}
		var err error
		v.ForEach(func(_, s gjson.Result) bool {
			if s.Type != gjson.String || !includeNoops[s.Str] {
				err = reqErr("include", CodeUnsupportedValue, "include value %s is not supported for this model's deployment.", s.Raw)
			}
			return err == nil
		})
		return err
	case "truncation":
		if !null(v) && v.Str != "disabled" {
			return reqErr("truncation", CodeUnsupportedValue, "truncation %s is not supported for this model's deployment; only \"disabled\" is.", v.Raw)
		}
		t.truncation = v
	case "top_logprobs":
		if !null(v) && !(v.Type == gjson.Number && v.Num == 0) {
			return reqErr(k, CodeUnsupportedParameter, "top_logprobs is not supported for this model's deployment.")
		}
	case "conversation", "prompt", "context_management", "max_tool_calls", "moderation":
		if !null(v) {
			return reqErr(k, CodeUnsupportedParameter, "%s is not supported for this model's deployment.", k)
		}
	default:
		return reqErr(k, CodeUnknownParameter, "Unknown parameter: '%s'.", k)
	}
	return nil
}

func isBool(v gjson.Result) bool { return v.Type == gjson.True || v.Type == gjson.False }

// translateTools renders the function tools in chat's nested form and refuses every other kind.
func (t *translator) translateTools(v gjson.Result) error {
	if null(v) {
		return nil
	}
	if !v.IsArray() {
		return reqErr("tools", CodeInvalidType, "tools must be an array.")
	}
	out := append(t.out, `,"tools":[`...)
	var err error
	i := 0
	v.ForEach(func(_, tool gjson.Result) bool {
		path := "tools[" + strconv.Itoa(i) + "]"
		typ := tool.Get("type")
		switch {
		case typ.Str == "function":
		case builtinTools[typ.Str]:
			err = reqErr(path+".type", CodeUnsupportedValue, "The %s tool is not available for this model's deployment: only function tools are.", typ.Str)
			return false
		default:
			err = reqErr(path+".type", CodeInvalidValue, "Invalid tool type %s: only function tools are supported for this model's deployment.", typ.Raw)
			return false
		}
		name := tool.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			err = reqErr(path+".name", CodeMissingParameter, "%s.name must be a non-empty string.", path)
			return false
		}
		if i > 0 {
			out = append(out, ',')
		}
		i++
		out = append(out, `{"type":"function","function":{"name":`...)
		out = jsonappend.String(out, name.Str)
		if d := tool.Get("description"); d.Type == gjson.String {
			out = append(out, `,"description":`...)
			out = jsonappend.String(out, d.Str)
		}
		if p := tool.Get("parameters"); p.IsObject() {
			out = append(out, `,"parameters":`...)
			out = append(out, p.Raw...)
		} else if p.Exists() && !null(p) {
			err = reqErr(path+".parameters", CodeInvalidType, "%s.parameters must be a JSON Schema object.", path)
			return false
		}
		if s := tool.Get("strict"); isBool(s) {
			out = append(out, `,"strict":`...)
			out = append(out, s.Raw...)
		}
		out = append(out, "}}"...)
		return true
	})
	if err != nil {
		return err
	}
	if i == 0 {
		return nil // an empty list: chat wants none rather than []
	}
	t.out = append(out, ']')
	return nil
}

// translateToolChoice maps tool_choice: the strings as they are, a named function and
// allowed_tools into chat's nested forms; choices of built-in tools are refused.
func (t *translator) translateToolChoice(v gjson.Result) error {
	switch {
	case null(v):
		return nil
	case v.Type == gjson.String:
		if v.Str != "none" && v.Str != "auto" && v.Str != "required" {
			return reqErr("tool_choice", CodeInvalidValue, "tool_choice must be \"none\", \"auto\", \"required\" or an object.")
		}
		t.raw("tool_choice", v)
		return nil
	case !v.IsObject():
		return reqErr("tool_choice", CodeInvalidType, "tool_choice must be a string or an object.")
	}
	switch typ := v.Get("type").Str; typ {
	case "function":
		name := v.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			return reqErr("tool_choice.name", CodeMissingParameter, "tool_choice.name must be a non-empty string.")
		}
		t.out = append(t.out, `,"tool_choice":{"type":"function","function":{"name":`...)
		t.out = jsonappend.String(t.out, name.Str)
		t.out = append(t.out, "}}"...)
	case "allowed_tools":
		mode := v.Get("mode")
		if mode.Str != "auto" && mode.Str != "required" {
			return reqErr("tool_choice.mode", CodeInvalidValue, "tool_choice.mode must be \"auto\" or \"required\".")
		}
		tools := v.Get("tools")
		if !tools.IsArray() {
			return reqErr("tool_choice.tools", CodeInvalidType, "tool_choice.tools must be an array.")
		}
		t.out = append(t.out, `,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":`...)
		t.out = append(t.out, mode.Raw...)
		t.out = append(t.out, `,"tools":[`...)
		var err error
		i := 0
		tools.ForEach(func(_, tool gjson.Result) bool {
			name := tool.Get("name")
			if tool.Get("type").Str != "function" || name.Type != gjson.String {
				err = reqErr("tool_choice.tools["+strconv.Itoa(i)+"]", CodeUnsupportedValue, "Only function tools can be allowed for this model's deployment.")
				return false
			}
			if i > 0 {
				t.out = append(t.out, ',')
			}
			i++
			t.out = append(t.out, `{"type":"function","function":{"name":`...)
			t.out = jsonappend.String(t.out, name.Str)
			t.out = append(t.out, "}}"...)
			return true
		})
		if err != nil {
			return err
		}
		t.out = append(t.out, "]}}"...)
	default:
		return reqErr("tool_choice.type", CodeUnsupportedValue, "tool_choice type %q is not available for this model's deployment: only function tools are.", typ)
	}
	return nil
}

// translateText maps text.format to response_format (json_schema flattened in Responses, nested
// in chat) and text.verbosity to verbosity.
func (t *translator) translateText(v gjson.Result) error {
	if null(v) {
		return nil
	}
	if !v.IsObject() {
		return reqErr("text", CodeInvalidType, "text must be an object.")
	}
	if verb := v.Get("verbosity"); verb.Type == gjson.String {
		t.raw("verbosity", verb)
	}
	f := v.Get("format")
	if !f.Exists() || null(f) {
		return nil
	}
	switch typ := f.Get("type").Str; typ {
	case "text":
	case "json_object":
		t.out = append(t.out, `,"response_format":{"type":"json_object"}`...)
	case "json_schema":
		name, schema := f.Get("name"), f.Get("schema")
		if name.Type != gjson.String || name.Str == "" {
			return reqErr("text.format.name", CodeMissingParameter, "Missing required parameter: 'text.format.name'.")
		}
		if !schema.IsObject() {
			return reqErr("text.format.schema", CodeMissingParameter, "Missing required parameter: 'text.format.schema'.")
		}
		t.out = append(t.out, `,"response_format":{"type":"json_schema","json_schema":{"name":`...)
		t.out = jsonappend.String(t.out, name.Str)
		if d := f.Get("description"); d.Type == gjson.String {
			t.out = append(t.out, `,"description":`...)
			t.out = jsonappend.String(t.out, d.Str)
		}
		t.out = append(t.out, `,"schema":`...)
		t.out = append(t.out, schema.Raw...)
		if s := f.Get("strict"); isBool(s) {
			t.out = append(t.out, `,"strict":`...)
			t.out = append(t.out, s.Raw...)
		}
		t.out = append(t.out, "}}"...)
	default:
		return reqErr("text.format.type", CodeInvalidValue, "text.format.type must be \"text\", \"json_object\" or \"json_schema\".")
	}
	return nil
}

// appendEcho renders the request fields a Response repeats, with OpenAI's defaults for absent ones.
func (t *translator) appendEcho(dst []byte, info *RequestInfo) []byte {
	field := func(k string, v gjson.Result, def string) {
		dst = append(dst, `,"`...)
		dst = append(dst, k...)
		dst = append(dst, `":`...)
		if v.Exists() && !null(v) {
			dst = append(dst, v.Raw...)
		} else {
			dst = append(dst, def...)
		}
	}
	field("instructions", t.instructions, "null")
	field("max_output_tokens", t.maxTokens, "null")
	field("metadata", t.metadata, "{}")
	field("parallel_tool_calls", t.parallel, "true")
	dst = append(dst, `,"previous_response_id":`...)
	if info.PreviousResponseID != "" {
		dst = jsonappend.String(dst, info.PreviousResponseID)
	} else {
		dst = append(dst, "null"...)
	}
	field("reasoning", t.reasoning, `{"effort":null,"summary":null}`)
	dst = append(dst, `,"store":`...)
	dst = strconv.AppendBool(dst, info.Store)
	field("temperature", t.temperature, "1")
	field("text", t.text, `{"format":{"type":"text"}}`)
	field("tool_choice", t.toolChoice, `"auto"`)
	if t.tools.IsArray() {
		field("tools", t.tools, "[]")
	} else {
		dst = append(dst, `,"tools":[]`...)
	}
	field("top_p", t.topP, "1")
	field("truncation", t.truncation, `"disabled"`)
	field("user", t.user, "null")
	return dst
}

// appendItem adds one raw item to a JSON array being built (opened with '[', not yet closed).
func appendItem(dst []byte, raw string) []byte {
	if len(dst) > 0 && dst[len(dst)-1] != '[' {
		dst = append(dst, ',')
	}
	return append(dst, raw...)
}
