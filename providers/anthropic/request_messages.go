package anthropic

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// This file translates the OpenAI messages into Messages turns and content blocks (see the
// mapping at the top of request.go).

// turnBuilder collects the Anthropic turns, merging consecutive turns of one role.
type turnBuilder struct {
	turns []message
}

func (b *turnBuilder) push(role string, blocks []block) {
	if len(blocks) == 0 {
		return
	}
	if n := len(b.turns); n > 0 && b.turns[n-1].Role == role {
		b.turns[n-1].Content = append(b.turns[n-1].Content, blocks...)
		return
	}
	b.turns = append(b.turns, message{Role: role, Content: blocks})
}

// finish returns the turns, with the tool_result blocks of each user turn moved before its other
// blocks (Anthropic wants the results first; their relative order is kept).
func (b *turnBuilder) finish() []message {
	for i := range b.turns {
		t := &b.turns[i]
		if t.Role != "user" {
			continue
		}
		results := 0
		for _, bl := range t.Content {
			if bl.Type == "tool_result" {
				results++
			}
		}
		if results == 0 || results == len(t.Content) {
			continue
		}
		sorted := make([]block, 0, len(t.Content))
		for _, bl := range t.Content {
			if bl.Type == "tool_result" {
				sorted = append(sorted, bl)
			}
		}
		for _, bl := range t.Content {
			if bl.Type != "tool_result" {
				sorted = append(sorted, bl)
			}
		}
		t.Content = sorted
	}
	return b.turns
}

// add translates OpenAI message i, appending system text to system.
func (b *turnBuilder) add(m gjson.Result, i int, system []block) ([]block, error) {
	path := "messages[" + strconv.Itoa(i) + "]"
	if !m.IsObject() {
		return system, badRequest(path, "%s must be an object.", path)
	}
	role := m.Get("role").String()
	content := m.Get("content")
	var blocks []block
	var err error
	switch role {
	case "system", "developer":
		if blocks, err = textBlocks(content, path, false); err != nil {
			return system, err
		}
		setCacheControl(blocks, m)
		return append(system, blocks...), nil
	case "user":
		if blocks, err = userBlocks(content, path); err != nil {
			return system, err
		}
		setCacheControl(blocks, m)
		b.push("user", blocks)
	case "assistant":
		if blocks, err = textBlocks(content, path, true); err != nil {
			return system, err
		}
		if m.Get("function_call").IsObject() {
			return system, badRequest(path+".function_call", "function_call is not supported by the anthropic provider; use tool_calls.")
		}
		calls := m.Get("tool_calls")
		if calls.Exists() && calls.Type != gjson.Null && !calls.IsArray() {
			return system, badRequest(path+".tool_calls", "tool_calls must be an array.")
		}
		j := 0
		calls.ForEach(func(_, c gjson.Result) bool {
			var bl block
			bl, err = toolUse(c, path+".tool_calls["+strconv.Itoa(j)+"]")
			blocks = append(blocks, bl)
			j++
			return err == nil
		})
		if err != nil {
			return system, err
		}
		setCacheControl(blocks, m)
		b.push("assistant", blocks)
	case "tool":
		id := m.Get("tool_call_id")
		if id.Type != gjson.String || id.Str == "" {
			return system, badRequest(path+".tool_call_id", "%s.tool_call_id must be a non-empty string.", path)
		}
		res := block{Type: "tool_result", ToolUseID: id.Str}
		switch {
		case content.Type == gjson.String:
			if content.Str != "" {
				res.Content = content.Str
			}
		case content.IsArray():
			parts, err := textBlocks(content, path, false)
			if err != nil {
				return system, err
			}
			if len(parts) > 0 {
				res.Content = parts
			}
		case content.Exists() && content.Type != gjson.Null:
			return system, badRequest(path+".content", "%s.content must be a string or an array of text parts.", path)
		}
		blocks = []block{res}
		setCacheControl(blocks, m)
		b.push("user", blocks)
	case "function":
		return system, badRequest(path+".role", "Messages with role 'function' are not supported by the anthropic provider; use tool messages.")
	default:
		return system, badRequest(path+".role", "%s.role %q is not one of system, developer, user, assistant, tool.", path, role)
	}
	return system, nil
}

// setCacheControl applies a message-level cache_control to the message's last block.
func setCacheControl(blocks []block, m gjson.Result) {
	if cc := m.Get("cache_control"); cc.IsObject() && len(blocks) > 0 {
		blocks[len(blocks)-1].CacheControl = json.RawMessage(cc.Raw)
	}
}

// textBlocks translates content made of text only (system, developer, assistant and tool
// messages). Assistant refusal parts count as text. Empty text is dropped: Anthropic rejects
// empty text blocks.
func textBlocks(content gjson.Result, path string, assistant bool) ([]block, error) {
	switch {
	case !content.Exists() || content.Type == gjson.Null:
		return nil, nil
	case content.Type == gjson.String:
		if content.Str == "" {
			return nil, nil
		}
		return []block{{Type: "text", Text: content.Str}}, nil
	case !content.IsArray():
		return nil, badRequest(path+".content", "%s.content must be a string or an array of parts.", path)
	}
	var out []block
	var err error
	j := 0
	content.ForEach(func(_, p gjson.Result) bool {
		pp := path + ".content[" + strconv.Itoa(j) + "]"
		j++
		typ := p.Get("type").String()
		field := "text"
		switch {
		case typ == "text":
		case typ == "refusal" && assistant:
			field = "refusal"
		default:
			err = badRequest(pp+".type", "%s.type %q is not supported here (text only).", pp, typ)
			return false
		}
		t := p.Get(field)
		if t.Type != gjson.String {
			err = badRequest(pp+"."+field, "%s.%s must be a string.", pp, field)
			return false
		}
		if t.Str != "" {
			out = append(out, block{Type: "text", Text: t.Str, CacheControl: cacheControl(p)})
		}
		return true
	})
	return out, err
}

func cacheControl(p gjson.Result) json.RawMessage {
	if cc := p.Get("cache_control"); cc.IsObject() {
		return json.RawMessage(cc.Raw)
	}
	return nil
}

// userBlocks translates a user message's content: text, images and PDF files.
func userBlocks(content gjson.Result, path string) ([]block, error) {
	if !content.IsArray() {
		return textBlocks(content, path, false)
	}
	var out []block
	var err error
	j := 0
	content.ForEach(func(_, p gjson.Result) bool {
		pp := path + ".content[" + strconv.Itoa(j) + "]"
		j++
		switch typ := p.Get("type").String(); typ {
		case "text":
			t := p.Get("text")
			if t.Type != gjson.String {
				err = badRequest(pp+".text", "%s.text must be a string.", pp)
				return false
			}
			if t.Str != "" {
				out = append(out, block{Type: "text", Text: t.Str, CacheControl: cacheControl(p)})
			}
		case "image_url":
			u := p.Get("image_url.url")
			if !u.Exists() {
				u = p.Get("image_url") // some clients send the URL itself
			}
			if u.Type != gjson.String {
				err = badRequest(pp+".image_url.url", "%s.image_url.url must be a string.", pp)
				return false
			}
			var src *source
			if src, err = imageSource(u.Str, pp+".image_url.url"); err != nil {
				return false
			}
			out = append(out, block{Type: "image", Source: src, CacheControl: cacheControl(p)})
		case "file":
			data := p.Get("file.file_data")
			if data.Type != gjson.String {
				err = badRequest(pp+".file", "%s: only files sent inline as file_data (a base64 data: URL of a PDF) are supported by the anthropic provider.", pp)
				return false
			}
			mt, b64, ok := parseDataURL(data.Str)
			if !ok || mt != "application/pdf" {
				err = badRequest(pp+".file.file_data", "%s.file.file_data must be a base64 data: URL of a PDF (application/pdf).", pp)
				return false
			}
			out = append(out, block{Type: "document", Source: &source{Type: "base64", MediaType: mt, Data: b64}, CacheControl: cacheControl(p)})
		default:
			err = badRequest(pp+".type", "%s.type %q is not supported by the anthropic provider (text, image_url, file).", pp, typ)
			return false
		}
		return true
	})
	return out, err
}

// imageSource maps an image URL: http(s) → url source, data: → base64 source.
func imageSource(u, param string) (*source, error) {
	if len(u) >= 5 && strings.EqualFold(u[:5], "data:") {
		mt, data, ok := parseDataURL(u)
		if !ok {
			return nil, badRequest(param, "%s: a data: URL must be base64-encoded (data:image/png;base64,…).", param)
		}
		if mt == "image/jpg" {
			mt = "image/jpeg"
		}
		if !imageTypes[mt] {
			return nil, badRequest(param, "%s: image type %q is not supported (image/jpeg, image/png, image/gif, image/webp).", param, mt)
		}
		return &source{Type: "base64", MediaType: mt, Data: data}, nil
	}
	if lu := strings.ToLower(u); strings.HasPrefix(lu, "https://") || strings.HasPrefix(lu, "http://") {
		return &source{Type: "url", URL: u}, nil
	}
	return nil, badRequest(param, "%s must be an http(s) URL or a base64 data: URL.", param)
}

// parseDataURL splits "data:<media type>[;params];base64,<data>"; only base64 data URLs are
// accepted. The media type comes back lower-cased.
func parseDataURL(u string) (mediaType, data string, ok bool) {
	if len(u) < 5 || !strings.EqualFold(u[:5], "data:") {
		return "", "", false
	}
	meta, data, found := strings.Cut(u[5:], ",")
	if !found || data == "" {
		return "", "", false
	}
	params := strings.Split(meta, ";")
	isB64 := false
	for _, p := range params[1:] {
		isB64 = isB64 || strings.EqualFold(strings.TrimSpace(p), "base64")
	}
	if !isB64 {
		return "", "", false
	}
	return strings.ToLower(strings.TrimSpace(params[0])), data, true
}

// toolUse translates one assistant tool call.
func toolUse(c gjson.Result, path string) (block, error) {
	if t := c.Get("type"); t.Exists() && t.Str != "function" {
		return block{}, badRequest(path+".type", "%s.type %q is not supported (function only).", path, t.Str)
	}
	id, name := c.Get("id"), c.Get("function.name")
	if id.Type != gjson.String || id.Str == "" {
		return block{}, badRequest(path+".id", "%s.id must be a non-empty string.", path)
	}
	if name.Type != gjson.String || name.Str == "" {
		return block{}, badRequest(path+".function.name", "%s.function.name must be a non-empty string.", path)
	}
	input := json.RawMessage(`{}`)
	args := c.Get("function.arguments")
	switch {
	case args.Type == gjson.String && strings.TrimSpace(args.Str) != "":
		a := gjson.Parse(args.Str)
		if !jsoncheck.ValidString(args.Str) || !a.IsObject() {
			return block{}, badRequest(path+".function.arguments", "%s.function.arguments must be a JSON object encoded as a string.", path)
		}
		input = json.RawMessage(args.Str)
	case args.IsObject(): // lenient: an object instead of its encoding
		input = json.RawMessage(args.Raw)
	case args.Exists() && args.Type != gjson.Null && args.Type != gjson.String:
		return block{}, badRequest(path+".function.arguments", "%s.function.arguments must be a string.", path)
	}
	return block{Type: "tool_use", ID: id.Str, Name: name.Str, Input: input}, nil
}
