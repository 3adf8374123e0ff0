package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// This file translates an OpenAI chat completions request into a Messages request
// (https://docs.anthropic.com/en/api/messages; PROVIDERS.md §3.1–3.3, §7.3, §7.4).
//
// What maps and how:
//   - system and developer messages, wherever they stand, become the top-level system, in order;
//   - user, assistant and tool messages become alternating user/assistant turns: consecutive
//     messages of one Anthropic role are merged, tool results become tool_result blocks of a user
//     turn (placed before any text, as Anthropic requires);
//   - image_url parts become image blocks (an https URL → url source, a data: URL → base64 source
//     with its media type); file parts with a PDF data URL become document blocks;
//   - assistant tool_calls become tool_use blocks (arguments parsed as the input object);
//   - tools, tool_choice (auto/none/required/named → auto/none/any/tool) and
//     parallel_tool_calls=false (→ disable_parallel_tool_use) are translated;
//   - stop → stop_sequences; max_completion_tokens, else max_tokens, else
//     Settings.DefaultMaxTokens → max_tokens; temperature is clamped to Anthropic's 0–1 range
//     (OpenAI allows up to 2); top_p as is; user → metadata.user_id;
//   - a "cache_control" object on a content part, or on a message (it then applies to the
//     message's last block), is passed on, so callers can use prompt caching.
//
// Fields without an Anthropic equivalent are dropped (Anthropic rejects unknown fields):
// frequency_penalty, presence_penalty, logit_bias, logprobs, seed, response_format,
// reasoning_effort, stream_options, service_tier… and any field meant to redirect the request
// (api_base, base_url, api_key): upstream URLs and credentials come only from configuration.
// Settings.PassFields lists fields to copy verbatim instead. n > 1 is refused: Messages answers
// with one message.

// requestError is a request the adapter cannot translate: the caller gets a 400 naming param.
type requestError struct {
	param, msg string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(param, format string, args ...any) error {
	return &requestError{param: param, msg: fmt.Sprintf(format, args...)}
}

// translated is a Messages request body and what the answer's translation needs to know.
type translated struct {
	body []byte
	// includeUsage is stream_options.include_usage of the OpenAI request: only then does a
	// translated stream end with a usage chunk.
	includeUsage bool
}

type messagesRequest struct {
	Model         string           `json:"model"`
	MaxTokens     int64            `json:"max_tokens"`
	System        any              `json:"system,omitempty"` // a string, or []block with cache_control
	Messages      []message        `json:"messages"`
	StopSequences []string         `json:"stop_sequences,omitempty"`
	Temperature   *float64         `json:"temperature,omitempty"`
	TopP          *float64         `json:"top_p,omitempty"`
	Stream        bool             `json:"stream,omitempty"`
	Tools         []tool           `json:"tools,omitempty"`
	ToolChoice    *toolChoice      `json:"tool_choice,omitempty"`
	Metadata      *requestMetadata `json:"metadata,omitempty"`
}

type requestMetadata struct {
	UserID string `json:"user_id"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is an input content block; only the fields of its type are set.
type block struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	Source       *source         `json:"source,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      any             `json:"content,omitempty"` // tool_result: a string or []block
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type tool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// emptySchema is the input_schema of a function declared without parameters.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// imageTypes are the media types Anthropic accepts for base64 images.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// translateRequest builds the Messages request for an OpenAI chat completions body. model is the
// upstream model (already in body; taken from there when empty).
func translateRequest(body []byte, model string, stream bool, s *Settings) (translated, error) {
	if !jsoncheck.Valid(body) {
		return translated{}, badRequest("", "The request body is not valid JSON.")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return translated{}, badRequest("", "The request body must be a JSON object.")
	}
	if model == "" {
		model = root.Get("model").String()
	}
	out := messagesRequest{Model: model, Stream: stream}
	tr := translated{includeUsage: root.Get("stream_options.include_usage").Bool()}

	if n := root.Get("n"); n.Exists() && n.Type != gjson.Null && n.Int() != 1 {
		return tr, badRequest("n", "The anthropic provider answers with one choice: n must be 1.")
	}
	var err error
	if out.MaxTokens, err = maxTokens(root, s.DefaultMaxTokens); err != nil {
		return tr, err
	}
	msgs := root.Get("messages")
	if !msgs.IsArray() {
		return tr, badRequest("messages", "messages must be an array.")
	}
	var system []block
	var b turnBuilder
	i := 0
	msgs.ForEach(func(_, m gjson.Result) bool {
		system, err = b.add(m, i, system)
		i++
		return err == nil
	})
	if err != nil {
		return tr, err
	}
	out.Messages = b.finish()
	if out.Messages == nil {
		out.Messages = []message{}
	}
	switch {
	case len(system) == 1 && system[0].CacheControl == nil:
		out.System = system[0].Text
	case len(system) > 0:
		out.System = system
	}
	if out.StopSequences, err = stopSequences(root.Get("stop")); err != nil {
		return tr, err
	}
	if t := root.Get("temperature"); t.Type == gjson.Number {
		v := min(max(t.Num, 0), 1) // OpenAI's range is 0–2, Anthropic's 0–1
		out.Temperature = &v
	} else if t.Exists() && t.Type != gjson.Null {
		return tr, badRequest("temperature", "temperature must be a number.")
	}
	if p := root.Get("top_p"); p.Type == gjson.Number {
		v := p.Num
		out.TopP = &v
	} else if p.Exists() && p.Type != gjson.Null {
		return tr, badRequest("top_p", "top_p must be a number.")
	}
	if u := root.Get("user"); u.Type == gjson.String && u.Str != "" {
		out.Metadata = &requestMetadata{UserID: u.Str}
	}
	if out.Tools, err = tools(root.Get("tools")); err != nil {
		return tr, err
	}
	if out.ToolChoice, err = translateToolChoice(root.Get("tool_choice"), root.Get("parallel_tool_calls"), len(out.Tools) > 0); err != nil {
		return tr, err
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return tr, fmt.Errorf("anthropic: encoding the request: %w", err)
	}
	tr.body = bytes.TrimRight(buf.Bytes(), "\n")
	for _, f := range s.PassFields {
		if v := root.Get(gjsonEscape(f)); v.Exists() {
			if tr.body, err = sjson.SetRawBytes(tr.body, gjsonEscape(f), []byte(v.Raw)); err != nil {
				return tr, fmt.Errorf("anthropic: passing %s through: %w", f, err)
			}
		}
	}
	return tr, nil
}

// maxTokens is max_completion_tokens, else max_tokens, else the default.
func maxTokens(root gjson.Result, def int) (int64, error) {
	for _, name := range [...]string{"max_completion_tokens", "max_tokens"} {
		v := root.Get(name)
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if v.Type != gjson.Number || v.Num < 1 || v.Num != float64(int64(v.Num)) {
			return 0, badRequest(name, "%s must be a positive integer.", name)
		}
		return v.Int(), nil
	}
	if def <= 0 {
		def = DefaultMaxTokens
	}
	return int64(def), nil
}

// tools translates the function tools.
func tools(v gjson.Result) ([]tool, error) {
	if !v.Exists() || v.Type == gjson.Null {
		return nil, nil
	}
	if !v.IsArray() {
		return nil, badRequest("tools", "tools must be an array.")
	}
	var out []tool
	var err error
	i := 0
	v.ForEach(func(_, t gjson.Result) bool {
		path := "tools[" + strconv.Itoa(i) + "]"
		i++
		if typ := t.Get("type"); typ.Exists() && typ.Str != "function" {
			err = badRequest(path+".type", "%s.type %q is not supported by the anthropic provider (function only).", path, typ.Str)
			return false
		}
		f := t.Get("function")
		name := f.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			err = badRequest(path+".function.name", "%s.function.name must be a non-empty string.", path)
			return false
		}
		tl := tool{Name: name.Str, Description: f.Get("description").String(), InputSchema: emptySchema, CacheControl: cacheControl(t)}
		if p := f.Get("parameters"); p.IsObject() {
			tl.InputSchema = json.RawMessage(p.Raw)
		} else if p.Exists() && p.Type != gjson.Null {
			err = badRequest(path+".function.parameters", "%s.function.parameters must be a JSON Schema object.", path)
			return false
		}
		out = append(out, tl)
		return true
	})
	return out, err
}

// translateToolChoice maps tool_choice and parallel_tool_calls (PROVIDERS.md §7.3). Without tools
// there is nothing to choose and tool_choice is dropped.
func translateToolChoice(tc, parallel gjson.Result, haveTools bool) (*toolChoice, error) {
	var out *toolChoice
	switch {
	case !tc.Exists() || tc.Type == gjson.Null:
	case tc.Type == gjson.String:
		switch tc.Str {
		case "auto":
			out = &toolChoice{Type: "auto"}
		case "none":
			out = &toolChoice{Type: "none"}
		case "required":
			out = &toolChoice{Type: "any"}
		default:
			return nil, badRequest("tool_choice", "tool_choice %q is not one of auto, none, required.", tc.Str)
		}
	case tc.IsObject():
		name := tc.Get("function.name")
		if tc.Get("type").Str != "function" || name.Type != gjson.String || name.Str == "" {
			return nil, badRequest("tool_choice", "tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":…}}.")
		}
		out = &toolChoice{Type: "tool", Name: name.Str}
	default:
		return nil, badRequest("tool_choice", "tool_choice must be a string or an object.")
	}
	if !haveTools {
		return nil, nil
	}
	if parallel.Type == gjson.False {
		if out == nil {
			out = &toolChoice{Type: "auto"}
		}
		if out.Type != "none" {
			out.DisableParallelToolUse = true
		}
	}
	return out, nil
}

// stopSequences maps stop (a string or an array of strings); empty strings are dropped.
func stopSequences(v gjson.Result) ([]string, error) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return nil, nil
	case v.Type == gjson.String:
		if v.Str == "" {
			return nil, nil
		}
		return []string{v.Str}, nil
	case !v.IsArray():
		return nil, badRequest("stop", "stop must be a string or an array of strings.")
	}
	var out []string
	var err error
	v.ForEach(func(_, s gjson.Result) bool {
		if s.Type != gjson.String {
			err = badRequest("stop", "stop must be a string or an array of strings.")
			return false
		}
		if s.Str != "" {
			out = append(out, s.Str)
		}
		return true
	})
	return out, err
}

// gjsonEscape escapes the path characters of a top-level field name for gjson and sjson.
func gjsonEscape(name string) string {
	if !strings.ContainsAny(name, `.*?|#@!\:`) {
		return name
	}
	var sb strings.Builder
	for i := 0; i < len(name); i++ {
		if strings.IndexByte(`.*?|#@!\:`, name[i]) >= 0 {
			sb.WriteByte('\\')
		}
		sb.WriteByte(name[i])
	}
	return sb.String()
}
