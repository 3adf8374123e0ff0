package mock

// Converse and ConverseStream (PROVIDERS-2.md §4.4–4.6). A Converse request is checked as
// Bedrock checks it (unknown top-level fields, roles, blank text, image formats and bytes, at
// most 4 stop sequences) and read as the equivalent Messages request, so the words, token rules,
// tools and prompt caching are the Messages API's: a cachePoint block marks the end of the
// cached prefix as cache_control does. The "mock" overrides come in
// additionalModelRequestFields.mock. Usage reports inputTokens without the cache reads and
// writes, which come as cacheReadInputTokens and cacheWriteInputTokens.
//
// ConverseStream sends messageStart, per text answer one block of contentBlockDelta text
// events and its contentBlockStop (per tool call a contentBlockStart toolUse, input fragments,
// contentBlockStop), messageStop with the stopReason, then metadata with the usage, each an
// event-stream message whose :event-type is the event's name.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"
)

// converseFields are the top-level fields of a Converse request.
var converseFields = map[string]bool{
	"messages": true, "system": true, "inferenceConfig": true, "toolConfig": true,
	"additionalModelRequestFields": true, "additionalModelResponseFieldPaths": true,
	"guardrailConfig": true, "promptVariables": true, "requestMetadata": true,
	"performanceConfig": true, "serviceTier": true,
}

var converseImageFormats = map[string]string{"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}

// parseConverseCall checks a Converse body and reads it as a Messages request for model.
func parseConverseCall(body []byte, model string, base behaviour) (messagesCall, error) {
	c := messagesCall{b: base}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return c, errors.New("Malformed input request: the body is not a JSON object")
	}
	root := gjson.ParseBytes(body)
	var err error
	root.ForEach(func(k, _ gjson.Result) bool {
		if !converseFields[k.Str] {
			err = fmt.Errorf("Malformed input request: extraneous key [%s] is not permitted", k.Str)
		}
		return err == nil
	})
	if err != nil {
		return c, err
	}
	msg := map[string]any{"model": model, "max_tokens": 4096}
	ic := root.Get("inferenceConfig")
	if v := ic.Get("maxTokens"); v.Exists() {
		if v.Type != gjson.Number || v.Int() < 1 {
			return c, errors.New("inferenceConfig.maxTokens: must be a positive integer")
		}
		msg["max_tokens"] = v.Int()
	}
	for from, to := range map[string]string{"temperature": "temperature", "topP": "top_p"} {
		if v := ic.Get(from); v.Exists() {
			msg[to] = json.RawMessage(v.Raw)
		}
	}
	if v := ic.Get("stopSequences"); v.Exists() {
		if len(v.Array()) > 4 {
			return c, errors.New("inferenceConfig.stopSequences: at most 4 stop sequences are allowed")
		}
		msg["stop_sequences"] = json.RawMessage(v.Raw)
	}
	if sys := root.Get("system"); sys.Exists() {
		blocks, err := converseToBlocks(sys, "system", "user")
		if err != nil {
			return c, err
		}
		if len(blocks) > 0 {
			msg["system"] = blocks
		}
	}
	var turns []map[string]any
	i := 0
	root.Get("messages").ForEach(func(_, m gjson.Result) bool {
		path := "messages." + strconv.Itoa(i)
		i++
		role := m.Get("role").Str
		if role != "user" && role != "assistant" {
			err = fmt.Errorf("%s.role: must be user or assistant", path)
			return false
		}
		var blocks []map[string]any
		if blocks, err = converseToBlocks(m.Get("content"), path+".content", role); err != nil {
			return false
		}
		turns = append(turns, map[string]any{"role": role, "content": blocks})
		return true
	})
	if err != nil {
		return c, err
	}
	if turns == nil {
		return c, errors.New("messages: at least one message is required")
	}
	msg["messages"] = turns
	if tc := root.Get("toolConfig"); tc.Exists() {
		var tools []map[string]any
		tc.Get("tools").ForEach(func(_, t gjson.Result) bool {
			spec := t.Get("toolSpec")
			if spec.Get("name").Str == "" || !spec.Get("inputSchema.json").IsObject() {
				err = errors.New("toolConfig.tools: each toolSpec needs a name and inputSchema.json")
				return false
			}
			tools = append(tools, map[string]any{"name": spec.Get("name").Str, "input_schema": json.RawMessage(spec.Get("inputSchema.json").Raw)})
			return true
		})
		if err != nil {
			return c, err
		}
		msg["tools"] = tools
		switch ch := tc.Get("toolChoice"); {
		case ch.Get("auto").Exists():
			msg["tool_choice"] = map[string]string{"type": "auto"}
		case ch.Get("any").Exists():
			msg["tool_choice"] = map[string]string{"type": "any"}
		case ch.Get("tool").Exists():
			msg["tool_choice"] = map[string]string{"type": "tool", "name": ch.Get("tool.name").Str}
		}
	}
	if m := root.Get("additionalModelRequestFields.mock"); m.Exists() {
		msg["mock"] = json.RawMessage(m.Raw)
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return c, err
	}
	return parseMessagesCall(unsafe.String(unsafe.SliceData(b), len(b)), base, false, "")
}

// converseToBlocks maps Converse content (or system) blocks to Messages blocks; a cachePoint
// marks the block before it.
func converseToBlocks(content gjson.Result, path, role string) ([]map[string]any, error) {
	if !content.IsArray() {
		return nil, fmt.Errorf("%s: must be an array of content blocks", path)
	}
	var out []map[string]any
	var err error
	j := 0
	content.ForEach(func(_, b gjson.Result) bool {
		bp := path + "." + strconv.Itoa(j)
		j++
		switch {
		case b.Get("text").Exists():
			if b.Get("text").Str == "" {
				err = fmt.Errorf("%s: The text field in the ContentBlock object is blank", bp)
				return false
			}
			out = append(out, map[string]any{"type": "text", "text": b.Get("text").Str})
		case b.Get("cachePoint").Exists():
			if len(out) == 0 {
				err = fmt.Errorf("%s: a cachePoint must follow a content block", bp)
				return false
			}
			out[len(out)-1]["cache_control"] = map[string]string{"type": "ephemeral"}
		case b.Get("image").Exists():
			mt, ok := converseImageFormats[b.Get("image.format").Str]
			data := b.Get("image.source.bytes").Str
			if _, derr := base64.StdEncoding.DecodeString(data); !ok || derr != nil || data == "" || role != "user" {
				err = fmt.Errorf("%s.image: needs a format (png, jpeg, gif, webp), base64 source.bytes, and a user turn", bp)
				return false
			}
			out = append(out, map[string]any{"type": "image", "source": map[string]string{"type": "base64", "media_type": mt, "data": data}})
		case b.Get("document").Exists():
			data := b.Get("document.source.bytes").Str
			if _, derr := base64.StdEncoding.DecodeString(data); derr != nil || data == "" || b.Get("document.name").Str == "" || role != "user" {
				err = fmt.Errorf("%s.document: needs a name, base64 source.bytes and a user turn", bp)
				return false
			}
			out = append(out, map[string]any{"type": "document", "source": map[string]string{"type": "base64", "media_type": "application/pdf", "data": data}})
		case b.Get("toolUse").Exists():
			tu := b.Get("toolUse")
			out = append(out, map[string]any{"type": "tool_use", "id": tu.Get("toolUseId").Str, "name": tu.Get("name").Str, "input": json.RawMessage(tu.Get("input").Raw)})
			if !tu.Get("input").IsObject() {
				err = fmt.Errorf("%s.toolUse.input: must be an object", bp)
				return false
			}
		case b.Get("toolResult").Exists():
			tr := b.Get("toolResult")
			var parts []map[string]any
			tr.Get("content").ForEach(func(_, p gjson.Result) bool {
				switch {
				case p.Get("text").Exists():
					if p.Get("text").Str != "" {
						parts = append(parts, map[string]any{"type": "text", "text": p.Get("text").Str})
					}
				case p.Get("json").Exists():
					parts = append(parts, map[string]any{"type": "text", "text": p.Get("json").Raw})
				}
				return true
			})
			blk := map[string]any{"type": "tool_result", "tool_use_id": tr.Get("toolUseId").Str}
			if len(parts) > 0 {
				blk["content"] = parts
			}
			out = append(out, blk)
		case b.Get("reasoningContent").Exists():
		default:
			err = fmt.Errorf("%s: unknown content block", bp)
			return false
		}
		return true
	})
	return out, err
}

// appendConverseUsage renders a TokenUsage object.
func appendConverseUsage(dst []byte, u anthropicUsage, output int) []byte {
	dst = append(dst, `{"inputTokens":`...)
	dst = strconv.AppendInt(dst, int64(u.input), 10)
	dst = append(dst, `,"outputTokens":`...)
	dst = strconv.AppendInt(dst, int64(output), 10)
	dst = append(dst, `,"totalTokens":`...)
	dst = strconv.AppendInt(dst, int64(u.input+u.read+u.write+output), 10)
	dst = append(dst, `,"cacheReadInputTokens":`...)
	dst = strconv.AppendInt(dst, int64(u.read), 10)
	dst = append(dst, `,"cacheWriteInputTokens":`...)
	dst = strconv.AppendInt(dst, int64(u.write), 10)
	return append(dst, '}')
}

// appendConverseAnswer renders a whole Converse answer.
func appendConverseAnswer(dst []byte, c *messagesCall, a *answerPlan, u anthropicUsage, seq uint64) []byte {
	dst = append(dst, `{"output":{"message":{"role":"assistant","content":[`...)
	if len(a.calls) == 0 {
		dst = append(dst, `{"text":"`...)
		dst = appendWords(dst, 0, a.tokens)
		dst = append(dst, `"}`...)
	}
	for i, t := range a.calls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"toolUse":{"toolUseId":"`...)
		dst = append(dst, toolUseID(seq, i)...)
		dst = append(dst, `","name":`...)
		dst = appendJSONString(dst, t.name)
		dst = append(dst, `,"input":`...)
		dst = append(dst, a.inputs[i]...)
		dst = append(dst, "}}"...)
	}
	dst = append(dst, `]}},"stopReason":"`...)
	dst = append(dst, a.stopReason...)
	dst = append(dst, '"')
	if !c.b.noUsage {
		dst = append(dst, `,"usage":`...)
		dst = appendConverseUsage(dst, u, a.tokens)
	}
	return append(dst, `,"metrics":{"latencyMs":1}}`...)
}

// writeConverseStream answers as ConverseStream.
func writeConverseStream(w http.ResponseWriter, wt *waiter, c *messagesCall, a *answerPlan, u anthropicUsage, seq uint64) outcome {
	hd := w.Header()
	hd.Set("Content-Type", eventStreamType)
	w.WriteHeader(http.StatusOK)
	f := newFrameWriter(w, &c.b)
	if f.rc.Flush() != nil || !wt.wait(c.b.ttft) {
		return outcomeCanceled
	}
	db := getBuffer()
	defer putBuffer(db)
	d := (*db)[:0]
	defer func() { *db = d }()
	failed := func() outcome {
		if !f.fail() {
			return outcomeCanceled
		}
		return outcomeAborted
	}
	if !f.event("messageStart", []byte(`{"role":"assistant"}`)) {
		return outcomeCanceled
	}
	gap := c.b.gap()
	if len(a.calls) == 0 {
		tpc := c.b.tokensPerChunk
		for i := range a.chunks {
			if i == c.b.failAfter {
				return failed()
			}
			if i > 0 && !wt.wait(gap) {
				return outcomeCanceled
			}
			d = append(d[:0], `{"contentBlockIndex":0,"delta":{"text":"`...)
			d = appendWords(d, i*tpc, min((i+1)*tpc, a.tokens))
			d = append(d, `"}}`...)
			if !f.event("contentBlockDelta", d) {
				return outcomeCanceled
			}
		}
		if c.b.failAfter >= a.chunks {
			return failed()
		}
		if !f.event("contentBlockStop", []byte(`{"contentBlockIndex":0}`)) {
			return outcomeCanceled
		}
	}
	for i, t := range a.calls {
		if i == c.b.failAfter {
			return failed()
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		idx := strconv.Itoa(i)
		d = append(d[:0], `{"contentBlockIndex":`...)
		d = append(d, idx...)
		d = append(d, `,"start":{"toolUse":{"toolUseId":"`...)
		d = append(d, toolUseID(seq, i)...)
		d = append(d, `","name":`...)
		d = appendJSONString(d, t.name)
		d = append(d, `}}}`...)
		if !f.event("contentBlockStart", d) {
			return outcomeCanceled
		}
		for _, frag := range fragments(a.inputs[i], 8) {
			d = append(d[:0], `{"contentBlockIndex":`...)
			d = append(d, idx...)
			d = append(d, `,"delta":{"toolUse":{"input":`...)
			d = appendJSONString(d, frag)
			d = append(d, "}}}"...)
			if !f.event("contentBlockDelta", d) {
				return outcomeCanceled
			}
		}
		if !f.event("contentBlockStop", append(append([]byte(`{"contentBlockIndex":`), idx...), '}')) {
			return outcomeCanceled
		}
	}
	if len(a.calls) > 0 && c.b.failAfter >= len(a.calls) {
		return failed()
	}
	if !f.event("messageStop", append(append([]byte(`{"stopReason":"`), a.stopReason...), `"}`...)) {
		return outcomeCanceled
	}
	d = append(d[:0], `{"metrics":{"latencyMs":1}`...)
	if !c.b.noUsage {
		d = append(d, `,"usage":`...)
		d = appendConverseUsage(d, u, a.tokens)
	}
	d = append(d, '}')
	if !f.event("metadata", d) {
		return outcomeCanceled
	}
	return outcomeCompleted
}
