package messages

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
)

// This file turns system and messages into chat messages (PROVIDERS.md §3.2, §7.4):
//
//	system (string or text blocks)   → one system message, the blocks' texts joined by a blank line
//	user: text                       → text part; a user turn of text only is one string, the
//	                                   texts joined by a blank line (some chat servers take no
//	                                   parts)
//	user: image (base64, url)        → image_url part (a data: URL for base64)
//	user: document (PDF base64)      → file part; a plain-text or content document → text
//	user: tool_result                → a tool message, placed before the turn's other content as
//	                                   chat wants tool messages right after the calls; its images
//	                                   go to the user message after them (tool messages carry
//	                                   text only); is_error prefixes the text with "Error: "
//	assistant: text                  → content, the texts joined
//	assistant: tool_use              → a tool_calls entry, the input as the arguments string
//	assistant: thinking, redacted    → dropped: chat requests have no field for them
//	consecutive assistant turns      → one assistant message, as Anthropic merges them
//	anything else                    → refused
//
// cache_control and citations on blocks are dropped.

// chatMessage is one chat message; content and toolCalls are rendered JSON.
type chatMessage struct {
	role       string
	content    []byte // a JSON value, nil for null
	toolCalls  []byte // the entries of tool_calls, comma-separated
	toolCallID string
	text       strings.Builder // an assistant message's text, rendered into content at the end
}

// builder collects the chat messages of a request.
type builder struct {
	msgs []*chatMessage
	// calls are the tool_use ids of the latest assistant turn: a tool_result must answer one.
	calls map[string]bool
}

func (b *builder) add(m *chatMessage) { b.msgs = append(b.msgs, m) }

// system adds the system prompt.
func (b *builder) system(v gjson.Result) error {
	switch {
	case v.Type == gjson.String:
		if v.Str != "" {
			b.add(&chatMessage{role: "system", content: jsonappend.String(nil, v.Str)})
		}
		return nil
	case !v.IsArray():
		return nil
	}
	var texts []string
	var err error
	i := 0
	v.ForEach(func(_, blk gjson.Result) bool {
		t := blk.Get("text")
		if blk.Get("type").Str != "text" || t.Type != gjson.String {
			err = invalid("system.%d: system blocks must be text blocks", i)
			return false
		}
		texts = append(texts, t.Str)
		i++
		return true
	})
	if err == nil && len(texts) > 0 {
		b.add(&chatMessage{role: "system", content: jsonappend.String(nil, strings.Join(texts, "\n\n"))})
	}
	return err
}

// conversation adds the messages.
func (b *builder) conversation(msgs gjson.Result) error {
	var err error
	i := 0
	prev := ""
	msgs.ForEach(func(_, m gjson.Result) bool {
		path := "messages." + strconv.Itoa(i)
		i++
		if !m.IsObject() {
			err = invalid("%s: Input should be an object", path)
			return false
		}
		role, c := m.Get("role").Str, m.Get("content")
		if c.Type != gjson.String && !c.IsArray() {
			err = invalid("%s.content: Input should be a string or a list of content blocks", path)
			return false
		}
		switch role {
		case "user":
			err = b.user(c, path)
		case "assistant":
			err = b.assistant(c, path, prev == "assistant")
		default:
			err = invalid("%s.role: Input should be 'user' or 'assistant'", path)
		}
		prev = role
		return err == nil
	})
	if err == nil && i == 0 {
		return invalid("messages: at least one message is required")
	}
	return err
}

// assistant adds an assistant turn, to the previous one when that was an assistant turn too.
func (b *builder) assistant(c gjson.Result, path string, merge bool) error {
	var m *chatMessage
	if merge {
		m = b.msgs[len(b.msgs)-1]
	} else {
		m = &chatMessage{role: "assistant"}
		b.add(m)
		b.calls = map[string]bool{}
	}
	if c.Type == gjson.String {
		m.text.WriteString(c.Str)
		return nil
	}
	var err error
	j := 0
	c.ForEach(func(_, blk gjson.Result) bool {
		bpath := path + ".content." + strconv.Itoa(j)
		j++
		switch typ := blk.Get("type").Str; typ {
		case "text":
			t := blk.Get("text")
			if t.Type != gjson.String {
				err = invalid("%s.text: Input should be a valid string", bpath)
				return false
			}
			m.text.WriteString(t.Str)
		case "tool_use":
			id, name, input := blk.Get("id"), blk.Get("name"), blk.Get("input")
			if id.Type != gjson.String || id.Str == "" || name.Type != gjson.String || name.Str == "" {
				err = invalid("%s: tool_use blocks need an id and a name", bpath)
				return false
			}
			if !input.IsObject() {
				err = invalid("%s.input: Input should be an object", bpath)
				return false
			}
			if len(m.toolCalls) > 0 {
				m.toolCalls = append(m.toolCalls, ',')
			}
			m.toolCalls = append(m.toolCalls, `{"id":`...)
			m.toolCalls = jsonappend.String(m.toolCalls, id.Str)
			m.toolCalls = append(m.toolCalls, `,"type":"function","function":{"name":`...)
			m.toolCalls = jsonappend.String(m.toolCalls, name.Str)
			m.toolCalls = append(m.toolCalls, `,"arguments":`...)
			m.toolCalls = jsonappend.String(m.toolCalls, input.Raw)
			m.toolCalls = append(m.toolCalls, "}}"...)
			b.calls[id.Str] = true
		case "thinking", "redacted_thinking":
		default:
			err = invalid("%s: content blocks of type %s cannot be sent to this model's deployment", bpath, blk.Get("type").Raw)
			return false
		}
		return true
	})
	return err
}

// user adds a user turn: its tool results as tool messages, then the rest as one user message.
func (b *builder) user(c gjson.Result, path string) error {
	if c.Type == gjson.String {
		b.add(&chatMessage{role: "user", content: jsonappend.String(nil, c.Str)})
		return nil
	}
	var parts []byte // the user message's parts, comma-separated
	var texts []string
	onlyText, nParts := true, 0
	addPart := func(p []byte, text string, isText bool) {
		if nParts > 0 {
			parts = append(parts, ',')
		}
		nParts++
		parts = append(parts, p...)
		texts = append(texts, text)
		onlyText = onlyText && isText
	}
	var err error
	j := 0
	c.ForEach(func(_, blk gjson.Result) bool {
		bpath := path + ".content." + strconv.Itoa(j)
		j++
		if blk.Get("type").Str == "tool_result" {
			err = b.toolResult(blk, bpath, addPart)
			return err == nil
		}
		var p []byte
		var text string
		var isText bool
		p, text, isText, err = contentPart(blk, bpath)
		if err == nil {
			addPart(p, text, isText)
		}
		return err == nil
	})
	switch {
	case err != nil:
		return err
	case nParts == 0 && j > 0:
		return nil // tool results only
	case onlyText:
		b.add(&chatMessage{role: "user", content: jsonappend.String(nil, strings.Join(texts, "\n\n"))})
	default:
		b.add(&chatMessage{role: "user", content: append(append(append(make([]byte, 0, len(parts)+2), '['), parts...), ']')})
	}
	return nil
}

// toolResult adds a tool message; images in it become parts of the user message after it.
func (b *builder) toolResult(blk gjson.Result, path string, addPart func([]byte, string, bool)) error {
	id := blk.Get("tool_use_id")
	if id.Type != gjson.String || id.Str == "" {
		return invalid("%s.tool_use_id: Field required", path)
	}
	if !b.calls[id.Str] {
		return invalid("%s: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", path, id.Str)
	}
	var text strings.Builder
	if blk.Get("is_error").Type == gjson.True {
		text.WriteString("Error: ")
	}
	switch c := blk.Get("content"); {
	case null(c):
	case c.Type == gjson.String:
		text.WriteString(c.Str)
	case c.IsArray():
		var err error
		k := 0
		c.ForEach(func(_, inner gjson.Result) bool {
			ipath := path + ".content." + strconv.Itoa(k)
			k++
			var p []byte
			var t string
			var isText bool
			if p, t, isText, err = contentPart(inner, ipath); err != nil {
				return false
			}
			if isText {
				if k > 1 && text.Len() > 0 {
					text.WriteString("\n\n")
				}
				text.WriteString(t)
			} else {
				addPart(p, "", false)
			}
			return true
		})
		if err != nil {
			return err
		}
	default:
		return invalid("%s.content: Input should be a string or a list of content blocks", path)
	}
	b.add(&chatMessage{role: "tool", toolCallID: id.Str, content: jsonappend.String(nil, text.String())})
	return nil
}

// contentPart renders a user content block as a chat content part; text blocks also return
// their text, so that a turn of text only can be one string.
func contentPart(blk gjson.Result, path string) (part []byte, text string, isText bool, err error) {
	switch typ := blk.Get("type"); typ.Str {
	case "text":
		t := blk.Get("text")
		if t.Type != gjson.String {
			return nil, "", false, invalid("%s.text: Input should be a valid string", path)
		}
		return textPart(t.Str), t.Str, true, nil
	case "image":
		src := blk.Get("source")
		var url string
		switch src.Get("type").Str {
		case "base64":
			mt, data := src.Get("media_type"), src.Get("data")
			if mt.Type != gjson.String || data.Type != gjson.String {
				return nil, "", false, invalid("%s.source: base64 sources need media_type and data", path)
			}
			url = "data:" + mt.Str + ";base64," + data.Str
		case "url":
			u := src.Get("url")
			if u.Type != gjson.String || u.Str == "" {
				return nil, "", false, invalid("%s.source.url: Field required", path)
			}
			url = u.Str
		default:
			return nil, "", false, invalid("%s.source: images given by %s are not supported for this model's deployment: send base64 data or a URL", path, sourceName(src))
		}
		p := append([]byte(`{"type":"image_url","image_url":{"url":`), jsonappend.String(nil, url)...)
		return append(p, "}}"...), "", false, nil
	case "document":
		src := blk.Get("source")
		switch src.Get("type").Str {
		case "base64":
			mt, data := src.Get("media_type"), src.Get("data")
			if mt.Str != "application/pdf" || data.Type != gjson.String {
				return nil, "", false, invalid("%s.source: base64 documents must be application/pdf with data", path)
			}
			name := "document.pdf"
			if t := blk.Get("title"); t.Type == gjson.String && t.Str != "" {
				name = t.Str
			}
			p := append([]byte(`{"type":"file","file":{"filename":`), jsonappend.String(nil, name)...)
			p = append(p, `,"file_data":`...)
			p = jsonappend.String(p, "data:application/pdf;base64,"+data.Str)
			return append(p, "}}"...), "", false, nil
		case "text":
			d := src.Get("data")
			if d.Type != gjson.String {
				return nil, "", false, invalid("%s.source.data: Input should be a valid string", path)
			}
			return textPart(d.Str), d.Str, true, nil
		case "content":
			var texts []string
			var err error
			if c := src.Get("content"); c.Type == gjson.String {
				texts = append(texts, c.Str)
			} else if c.IsArray() {
				c.ForEach(func(_, inner gjson.Result) bool {
					if inner.Get("type").Str != "text" || inner.Get("text").Type != gjson.String {
						err = invalid("%s.source.content: only text blocks are supported for this model's deployment", path)
						return false
					}
					texts = append(texts, inner.Get("text").Str)
					return true
				})
			} else {
				err = invalid("%s.source.content: Field required", path)
			}
			if err != nil {
				return nil, "", false, err
			}
			t := strings.Join(texts, "\n\n")
			return textPart(t), t, true, nil
		default:
			return nil, "", false, invalid("%s.source: documents given by %s are not supported for this model's deployment: send a base64 PDF or text", path, sourceName(src))
		}
	default:
		return nil, "", false, invalid("%s: content blocks of type %s cannot be sent to this model's deployment", path, typ.Raw)
	}
}

func textPart(s string) []byte {
	p := append([]byte(`{"type":"text","text":`), jsonappend.String(nil, s)...)
	return append(p, '}')
}

// sourceName names a source type in an error.
func sourceName(src gjson.Result) string {
	if t := src.Get("type"); t.Type == gjson.String {
		return strconv.Quote(t.Str)
	}
	return "this source"
}

// appendJSON renders the messages array.
func (b *builder) appendJSON(out []byte) []byte {
	out = append(out, '[')
	for i, m := range b.msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"role":`...)
		out = jsonappend.String(out, m.role)
		out = append(out, `,"content":`...)
		switch {
		case m.role == "assistant" && (m.text.Len() > 0 || len(m.toolCalls) == 0):
			out = jsonappend.String(out, m.text.String())
		case m.content == nil:
			out = append(out, "null"...)
		default:
			out = append(out, m.content...)
		}
		if len(m.toolCalls) > 0 {
			out = append(out, `,"tool_calls":[`...)
			out = append(out, m.toolCalls...)
			out = append(out, ']')
		}
		if m.toolCallID != "" {
			out = append(out, `,"tool_call_id":`...)
			out = jsonappend.String(out, m.toolCallID)
		}
		out = append(out, '}')
	}
	return append(out, ']')
}
