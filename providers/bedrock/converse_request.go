package bedrock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// This file builds a Converse request (PROVIDERS-2.md §4.4) from an OpenAI chat request. The
// chat request is first translated by the anthropic package (its rules hold here: system
// messages gathered, alternating turns, tool results first in their user turn, stop, max tokens,
// the temperature clamped to 0–1), and the Messages body is then mapped block for block, as the
// two APIs share their model of a conversation:
//
//	system (text blocks)            → system [{text}]
//	text                            → {text}
//	image (base64)                  → {image:{format, source:{bytes}}}; image URLs are refused
//	document (base64 PDF)           → {document:{format:"pdf", name, source:{bytes}}}
//	tool_use                        → {toolUse:{toolUseId, name, input}}
//	tool_result                     → {toolResult:{toolUseId, content:[{text}|{image}]}}
//	cache_control on a block        → a {cachePoint:{type:"default"}} block after it
//	tools, tool_choice auto/any/tool→ toolConfig {tools:[{toolSpec}], toolChoice}; none sends
//	                                  the tools without a choice (Converse has no "none")
//	max_tokens, temperature, top_p, stop_sequences → inferenceConfig (no maxTokens when neither
//	                                  the request nor Settings.DefaultMaxTokens names one)
//	Settings.PassFields             → additionalModelRequestFields (model-native parameters)
//
// metadata.user_id and disable_parallel_tool_use have no Converse equivalent and are dropped.

type converseRequest struct {
	Messages        []converseMessage          `json:"messages"`
	System          []map[string]any           `json:"system,omitempty"`
	InferenceConfig *inferenceConfig           `json:"inferenceConfig,omitempty"`
	ToolConfig      *toolConfig                `json:"toolConfig,omitempty"`
	Additional      map[string]json.RawMessage `json:"additionalModelRequestFields,omitempty"`
}

type converseMessage struct {
	Role    string           `json:"role"`
	Content []map[string]any `json:"content"`
}

type inferenceConfig struct {
	MaxTokens     int64    `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type toolConfig struct {
	Tools      []map[string]any `json:"tools"`
	ToolChoice map[string]any   `json:"toolChoice,omitempty"`
}

// converseImageFormats maps the media types of base64 images to Converse's formats.
var converseImageFormats = map[string]string{"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}

// refusal is a request Converse cannot take: the caller gets a 400 naming param.
type refusal struct{ param, msg string }

func (r *refusal) Error() string { return r.msg }

func (r *refusal) response() *http.Response {
	return oairender.ErrorResponse(http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "invalid_value", r.param, r.msg), nil)
}

// converseBody translates an OpenAI chat body into a Converse body, and tells whether the client
// asked for the usage chunk. A request it cannot translate gives an error for which
// refusalResponse returns the 400 to answer.
func converseBody(chat []byte, model string, s Settings) (body []byte, includeUsage bool, err error) {
	tr, err := anthropic.TranslateChat(chat, model, false, anthropic.Settings{DefaultMaxTokens: s.DefaultMaxTokens})
	if err != nil {
		return nil, false, err
	}
	msg := gjson.ParseBytes(tr.Body)
	var out converseRequest
	out.System = systemBlocks(msg.Get("system"))
	msg.Get("messages").ForEach(func(_, m gjson.Result) bool {
		var blocks []map[string]any
		blocks, err = converseBlocks(m.Get("content"))
		out.Messages = append(out.Messages, converseMessage{Role: m.Get("role").Str, Content: blocks})
		return err == nil
	})
	if err != nil {
		return nil, false, err
	}
	if out.Messages == nil {
		out.Messages = []converseMessage{}
	}
	ic := inferenceConfig{MaxTokens: msg.Get("max_tokens").Int()}
	if s.DefaultMaxTokens == 0 && !named(chat, "max_completion_tokens") && !named(chat, "max_tokens") {
		ic.MaxTokens = 0 // the translation's default is Anthropic's need; Converse has the model's own
	}
	if v := msg.Get("temperature"); v.Type == gjson.Number {
		ic.Temperature = &v.Num
	}
	if v := msg.Get("top_p"); v.Type == gjson.Number {
		ic.TopP = &v.Num
	}
	msg.Get("stop_sequences").ForEach(func(_, v gjson.Result) bool {
		ic.StopSequences = append(ic.StopSequences, v.Str)
		return true
	})
	if len(ic.StopSequences) > 4 {
		return nil, false, &refusal{"stop", "Bedrock's Converse API takes at most 4 stop sequences."}
	}
	out.InferenceConfig = &ic
	out.ToolConfig = converseTools(msg.Get("tools"), msg.Get("tool_choice"))
	root := gjson.ParseBytes(chat)
	for _, f := range s.PassFields {
		if v := root.Get(f); v.Exists() {
			if out.Additional == nil {
				out.Additional = map[string]json.RawMessage{}
			}
			out.Additional[f] = json.RawMessage(v.Raw)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, false, fmt.Errorf("bedrock: encoding the request: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), tr.IncludeUsage, nil
}

// named reports whether the chat body sets field to something other than null.
func named(chat []byte, field string) bool {
	v := gjson.GetBytes(chat, field)
	return v.Exists() && v.Type != gjson.Null
}

// refusalResponse is the OpenAI-shaped 400 for an error of converseBody that names a fault of
// the request, or nil for any other error.
func refusalResponse(err error) *http.Response {
	if r := anthropic.Refusal(err); r != nil {
		return r
	}
	var rf *refusal
	if errors.As(err, &rf) {
		return rf.response()
	}
	return nil
}

// systemBlocks maps the Messages system (a string or text blocks) to Converse's.
func systemBlocks(v gjson.Result) []map[string]any {
	if v.Type == gjson.String {
		if v.Str == "" {
			return nil
		}
		return []map[string]any{{"text": v.Str}}
	}
	var out []map[string]any
	v.ForEach(func(_, b gjson.Result) bool {
		if t := b.Get("text").Str; t != "" {
			out = append(out, map[string]any{"text": t})
		}
		if b.Get("cache_control").Exists() {
			out = append(out, cachePoint())
		}
		return true
	})
	return out
}

func cachePoint() map[string]any {
	return map[string]any{"cachePoint": map[string]string{"type": "default"}}
}

// converseBlocks maps the content blocks of one Messages turn.
func converseBlocks(content gjson.Result) ([]map[string]any, error) {
	var out []map[string]any
	var err error
	i := 0
	content.ForEach(func(_, b gjson.Result) bool {
		var blk map[string]any
		blk, err = converseBlock(b, i)
		i++
		if err != nil {
			return false
		}
		if blk != nil {
			out = append(out, blk)
		}
		if b.Get("cache_control").Exists() {
			out = append(out, cachePoint())
		}
		return true
	})
	return out, err
}

func converseBlock(b gjson.Result, i int) (map[string]any, error) {
	switch b.Get("type").Str {
	case "text":
		if b.Get("text").Str == "" {
			return nil, nil // Converse refuses blank text blocks
		}
		return map[string]any{"text": b.Get("text").Str}, nil
	case "image":
		img, err := imageBlock(b.Get("source"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"image": img}, nil
	case "document":
		src := b.Get("source")
		data, err := base64.StdEncoding.DecodeString(src.Get("data").Str)
		if src.Get("type").Str != "base64" || src.Get("media_type").Str != "application/pdf" || err != nil {
			return nil, &refusal{"messages", "Bedrock's Converse API takes documents as base64 PDF data URLs only."}
		}
		return map[string]any{"document": map[string]any{"format": "pdf", "name": "document-" + strconv.Itoa(i+1),
			"source": map[string]any{"bytes": data}}}, nil
	case "tool_use":
		in := json.RawMessage(b.Get("input").Raw)
		if !b.Get("input").IsObject() {
			in = json.RawMessage(`{}`)
		}
		return map[string]any{"toolUse": map[string]any{"toolUseId": b.Get("id").Str, "name": b.Get("name").Str, "input": in}}, nil
	case "tool_result":
		res := map[string]any{"toolUseId": b.Get("tool_use_id").Str}
		var parts []map[string]any
		c := b.Get("content")
		switch {
		case c.Type == gjson.String:
			parts = append(parts, map[string]any{"text": c.Str})
		case c.IsArray():
			var err error
			c.ForEach(func(_, p gjson.Result) bool {
				switch p.Get("type").Str {
				case "text":
					parts = append(parts, map[string]any{"text": p.Get("text").Str})
				case "image":
					var img map[string]any
					if img, err = imageBlock(p.Get("source")); err == nil {
						parts = append(parts, map[string]any{"image": img})
					}
				}
				return err == nil
			})
			if err != nil {
				return nil, err
			}
		}
		if len(parts) == 0 {
			parts = append(parts, map[string]any{"text": ""})
		}
		res["content"] = parts
		if b.Get("is_error").Bool() {
			res["status"] = "error"
		}
		return map[string]any{"toolResult": res}, nil
	}
	return nil, nil
}

// imageBlock maps an image source: Converse takes the bytes themselves (JSON: base64).
func imageBlock(src gjson.Result) (map[string]any, error) {
	format, ok := converseImageFormats[src.Get("media_type").Str]
	if src.Get("type").Str != "base64" || !ok {
		return nil, &refusal{"messages", "Bedrock's Converse API takes images as base64 data URLs (png, jpeg, gif, webp) only, not by URL."}
	}
	data, err := base64.StdEncoding.DecodeString(src.Get("data").Str)
	if err != nil {
		return nil, &refusal{"messages", "An image data URL is not valid base64."}
	}
	return map[string]any{"format": format, "source": map[string]any{"bytes": data}}, nil
}

// converseTools maps the Messages tools and tool_choice; nil when there are no tools.
func converseTools(tools, choice gjson.Result) *toolConfig {
	if !tools.IsArray() || len(tools.Array()) == 0 {
		return nil
	}
	tc := &toolConfig{}
	tools.ForEach(func(_, t gjson.Result) bool {
		spec := map[string]any{"name": t.Get("name").Str, "inputSchema": map[string]any{"json": json.RawMessage(t.Get("input_schema").Raw)}}
		if d := t.Get("description").Str; d != "" {
			spec["description"] = d
		}
		tc.Tools = append(tc.Tools, map[string]any{"toolSpec": spec})
		return true
	})
	switch choice.Get("type").Str {
	case "auto":
		tc.ToolChoice = map[string]any{"auto": struct{}{}}
	case "any":
		tc.ToolChoice = map[string]any{"any": struct{}{}}
	case "tool":
		tc.ToolChoice = map[string]any{"tool": map[string]string{"name": choice.Get("name").Str}}
	}
	return tc
}

// converseStopReason maps a Converse stopReason to OpenAI's finish_reason (PROVIDERS-2.md §4.6).
func converseStopReason(r string) string {
	switch r {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "content_filtered", "guardrail_intervened":
		return "content_filter"
	}
	return "stop"
}
