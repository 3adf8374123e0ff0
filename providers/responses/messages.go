package responses

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
)

// This file turns input items into chat messages (PROVIDERS-2.md §1.3, §1.11):
//
//	message (user/system/developer)   → same role; input_text → text part, input_image →
//	                                    image_url part, input_file → file part
//	message (assistant) / output      → assistant, its text parts joined into content; refusal →
//	                                    refusal
//	function_call                     → a tool_calls entry of an assistant message, merged with
//	                                    the calls and the assistant message right before it
//	function_call_output              → a tool message
//	reasoning                         → dropped: chat has no field for it
//	anything else                     → refused

// chatMessage is one chat message; content and toolCalls are rendered JSON.
type chatMessage struct {
	role       string
	content    []byte // a JSON value, nil for null
	refusal    string
	toolCalls  []byte // the entries of tool_calls, comma-separated
	toolCallID string
}

// messageBuilder collects the chat messages of a request.
type messageBuilder struct {
	msgs []chatMessage
}

func (b *messageBuilder) add(m chatMessage) { b.msgs = append(b.msgs, m) }

// items translates an array of input items; where names them in errors ("input" or, for a
// stored history, "previous_response_id"). Each item is also added to info.Input.
func (b *messageBuilder) items(arr gjson.Result, where string, info *RequestInfo) error {
	var err error
	i := 0
	arr.ForEach(func(_, item gjson.Result) bool {
		path := where
		if where == "input" {
			path += "[" + strconv.Itoa(i) + "]"
		}
		i++
		if err = b.item(item, path); err == nil {
			info.Input = appendItem(info.Input, item.Raw)
		}
		return err == nil
	})
	return err
}

func (b *messageBuilder) item(item gjson.Result, path string) error {
	if !item.IsObject() {
		return reqErr(path, CodeInvalidType, "%s must be an input item object.", path)
	}
	typ := item.Get("type")
	if !typ.Exists() && item.Get("role").Exists() {
		typ.Str = "message"
	}
	switch typ.Str {
	case "message":
		return b.message(item, path)
	case "function_call":
		return b.functionCall(item, path)
	case "function_call_output":
		return b.functionOutput(item, path)
	case "reasoning":
		return nil
	case "item_reference":
		return reqErr(path, CodeUnsupportedValue, "item_reference items are not supported for this model's deployment: send the items themselves, or use previous_response_id.")
	default:
		return reqErr(path+".type", CodeUnsupportedValue, "Input items of type %s are not supported for this model's deployment.", typ.Raw)
	}
}

func (b *messageBuilder) message(item gjson.Result, path string) error {
	role := item.Get("role").Str
	switch role {
	case "user", "system", "developer", "assistant":
	default:
		return reqErr(path+".role", CodeInvalidValue, "%s.role must be one of user, assistant, system, developer.", path)
	}
	m := chatMessage{role: role}
	c := item.Get("content")
	switch {
	case c.Type == gjson.String:
		m.content = jsonappend.String(nil, c.Str)
	case c.IsArray():
		var err error
		if role == "assistant" {
			err = assistantContent(c, path+".content", &m)
		} else {
			m.content, err = partsContent(c, path+".content")
		}
		if err != nil {
			return err
		}
	default:
		return reqErr(path+".content", CodeInvalidType, "%s.content must be a string or an array of content parts.", path)
	}
	b.add(m)
	return nil
}

// assistantContent joins an assistant message's text parts into one string; chat adapters take
// an assistant's content as text.
func assistantContent(parts gjson.Result, path string, m *chatMessage) error {
	var text strings.Builder
	var err error
	j := 0
	parts.ForEach(func(_, p gjson.Result) bool {
		ppath := path + "[" + strconv.Itoa(j) + "]"
		j++
		switch p.Get("type").Str {
		case "output_text", "input_text", "text":
			t := p.Get("text")
			if t.Type != gjson.String {
				err = reqErr(ppath+".text", CodeInvalidType, "%s.text must be a string.", ppath)
				return false
			}
			text.WriteString(t.Str)
		case "refusal":
			m.refusal += p.Get("refusal").Str
		default:
			err = reqErr(ppath+".type", CodeUnsupportedValue, "%s: assistant content parts must be output_text or refusal.", ppath)
			return false
		}
		return true
	})
	if err == nil && (text.Len() > 0 || m.refusal == "") {
		m.content = jsonappend.String(nil, text.String())
	}
	return err
}

// partsContent renders a user, system or developer message's parts as chat content parts.
func partsContent(parts gjson.Result, path string) ([]byte, error) {
	out := []byte{'['}
	var err error
	j := 0
	parts.ForEach(func(_, p gjson.Result) bool {
		ppath := path + "[" + strconv.Itoa(j) + "]"
		if j > 0 {
			out = append(out, ',')
		}
		j++
		out, err = appendPart(out, p, ppath)
		return err == nil
	})
	return append(out, ']'), err
}

// appendPart renders one input content part as a chat content part.
func appendPart(out []byte, p gjson.Result, path string) ([]byte, error) {
	switch typ := p.Get("type"); typ.Str {
	case "input_text", "output_text", "text":
		t := p.Get("text")
		if t.Type != gjson.String {
			return out, reqErr(path+".text", CodeInvalidType, "%s.text must be a string.", path)
		}
		out = append(out, `{"type":"text","text":`...)
		out = jsonappend.String(out, t.Str)
		return append(out, '}'), nil
	case "input_image":
		u := p.Get("image_url")
		if u.Type != gjson.String || u.Str == "" {
			if p.Get("file_id").Exists() {
				return out, reqErr(path+".file_id", CodeUnsupportedParameter, "Images given by file_id are not supported for this model's deployment: send image_url (a URL or a data URL).")
			}
			return out, reqErr(path+".image_url", CodeMissingParameter, "%s.image_url must be a URL or a data URL.", path)
		}
		out = append(out, `{"type":"image_url","image_url":{"url":`...)
		out = jsonappend.String(out, u.Str)
		if d := p.Get("detail"); d.Type == gjson.String {
			out = append(out, `,"detail":`...)
			out = jsonappend.String(out, d.Str)
		}
		return append(out, "}}"...), nil
	case "input_file":
		if p.Get("file_url").Exists() {
			return out, reqErr(path+".file_url", CodeUnsupportedParameter, "Files given by file_url are not supported for this model's deployment: send file_data.")
		}
		out = append(out, `{"type":"file","file":{`...)
		n := 0
		for _, k := range [...]string{"file_data", "file_id", "filename"} {
			if v := p.Get(k); v.Type == gjson.String {
				if n > 0 {
					out = append(out, ',')
				}
				n++
				out = jsonappend.String(out, k)
				out = append(out, ':')
				out = jsonappend.String(out, v.Str)
			}
		}
		if n == 0 {
			return out, reqErr(path+".file_data", CodeMissingParameter, "%s needs file_data or file_id.", path)
		}
		return append(out, "}}"...), nil
	default:
		return out, reqErr(path+".type", CodeUnsupportedValue, "Content parts of type %s are not supported here.", typ.Raw)
	}
}

func (b *messageBuilder) functionCall(item gjson.Result, path string) error {
	callID, name, args := item.Get("call_id"), item.Get("name"), item.Get("arguments")
	if callID.Type != gjson.String || callID.Str == "" {
		return reqErr(path+".call_id", CodeMissingParameter, "%s.call_id must be a non-empty string.", path)
	}
	if name.Type != gjson.String || name.Str == "" {
		return reqErr(path+".name", CodeMissingParameter, "%s.name must be a non-empty string.", path)
	}
	if args.Exists() && args.Type != gjson.String {
		return reqErr(path+".arguments", CodeInvalidType, "%s.arguments must be a JSON string.", path)
	}
	// Calls join the assistant message right before them: one assistant turn with its text and
	// all its calls.
	var m *chatMessage
	if n := len(b.msgs); n > 0 && b.msgs[n-1].role == "assistant" {
		m = &b.msgs[n-1]
	} else {
		b.add(chatMessage{role: "assistant"})
		m = &b.msgs[len(b.msgs)-1]
	}
	if len(m.toolCalls) > 0 {
		m.toolCalls = append(m.toolCalls, ',')
	}
	m.toolCalls = append(m.toolCalls, `{"id":`...)
	m.toolCalls = jsonappend.String(m.toolCalls, callID.Str)
	m.toolCalls = append(m.toolCalls, `,"type":"function","function":{"name":`...)
	m.toolCalls = jsonappend.String(m.toolCalls, name.Str)
	m.toolCalls = append(m.toolCalls, `,"arguments":`...)
	a := args.Str
	if !args.Exists() {
		a = "{}"
	}
	m.toolCalls = jsonappend.String(m.toolCalls, a)
	m.toolCalls = append(m.toolCalls, "}}"...)
	return nil
}

func (b *messageBuilder) functionOutput(item gjson.Result, path string) error {
	callID, output := item.Get("call_id"), item.Get("output")
	if callID.Type != gjson.String || callID.Str == "" {
		return reqErr(path+".call_id", CodeMissingParameter, "%s.call_id must be a non-empty string.", path)
	}
	m := chatMessage{role: "tool", toolCallID: callID.Str}
	switch {
	case output.Type == gjson.String:
		m.content = jsonappend.String(nil, output.Str)
	case output.IsArray():
		var err error
		if m.content, err = partsContent(output, path+".output"); err != nil {
			return err
		}
	default:
		return reqErr(path+".output", CodeInvalidType, "%s.output must be a string or an array of content parts.", path)
	}
	b.add(m)
	return nil
}

// appendJSON renders the messages array.
func (b *messageBuilder) appendJSON(out []byte) []byte {
	out = append(out, '[')
	for i, m := range b.msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"role":`...)
		out = jsonappend.String(out, m.role)
		out = append(out, `,"content":`...)
		if m.content == nil {
			out = append(out, "null"...)
		} else {
			out = append(out, m.content...)
		}
		if m.refusal != "" {
			out = append(out, `,"refusal":`...)
			out = jsonappend.String(out, m.refusal)
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
