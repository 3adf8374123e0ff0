package mock

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Chat completions call tools by a stricter form of the Messages API's rule (anthropic.go), so
// that a request that merely offers tools keeps its text answer: with tools and a tool_choice of
// "required" or a named function, or "auto" (or none) when the last message is a user turn whose
// text names one of the tools, the answer calls the named tool, else every tool whose name
// appears in the text of the last user message, else the first; with parallel_tool_calls false
// only the first of them.
// Each call's arguments hold every property of the tool's parameters (toolInput); its id is
// call_mock_<request>_<i>; the finish_reason is tool_calls and the completion counts
// ceil(len(arguments) / 4) tokens a call. A stream sends each call in two chunks: its id and name
// with empty arguments, then the arguments.

// chatTools is what a chat request says about tools.
type chatTools struct {
	tools      []anthropicTool
	choice     string // auto, none, required, function ("" = auto)
	named      string
	noParallel bool
	lastUser   string // text of the last message when it is a user turn
	lastIsUser bool
}

// readTools reads a chat request's "tools" (function tools only).
func (t *chatTools) readTools(v gjson.Result) {
	v.ForEach(func(_, tool gjson.Result) bool {
		if f := tool.Get("function"); f.Get("name").Type == gjson.String {
			t.tools = append(t.tools, anthropicTool{name: f.Get("name").Str, schema: f.Get("parameters")})
		}
		return true
	})
}

// readChoice reads tool_choice: a string, or {"type":"function","function":{"name"}}.
func (t *chatTools) readChoice(v gjson.Result) {
	if v.Type == gjson.String {
		t.choice = v.Str
		return
	}
	t.choice, t.named = "function", v.Get("function.name").Str
}

// readLast notes whether the last message is a user turn, and its text.
func (t *chatTools) readLast(messages gjson.Result) {
	arr := messages.Array()
	if len(arr) == 0 {
		return
	}
	last := arr[len(arr)-1]
	t.lastIsUser = last.Get("role").Str == "user"
	if !t.lastIsUser {
		return
	}
	if c := last.Get("content"); c.IsArray() {
		c.ForEach(func(_, p gjson.Result) bool { t.lastUser += p.Get("text").Str + " "; return true })
	} else {
		t.lastUser = c.Str
	}
}

// calls applies the rule: the tools called, none for a text answer.
func (t *chatTools) calls() []anthropicTool {
	if t.choice == "" || t.choice == "auto" {
		named := false
		for _, tool := range t.tools {
			named = named || (tool.name != "" && strings.Contains(t.lastUser, tool.name))
		}
		if !named {
			return nil
		}
	}
	choice := map[string]string{"required": "any", "function": "tool"}[t.choice]
	if choice == "" {
		choice = t.choice
	}
	mc := messagesCall{tools: t.tools, choice: choice, named: t.named, noParallel: t.noParallel, lastUser: t.lastUser, lastIsUser: t.lastIsUser}
	return mc.toolCalls()
}

// toolCall is one tool call of a chat answer.
type toolCall struct {
	id, name, args string
}

// plannedCalls is the calls of c's answer with their ids and arguments, and the completion
// tokens they count.
func (c *call) plannedCalls(seq uint64) ([]toolCall, int) {
	var out []toolCall
	tokens := 0
	for i, t := range c.tools.calls() {
		args := toolInput(t.schema)
		out = append(out, toolCall{id: "call_mock_" + strconv.FormatUint(seq, 10) + "_" + strconv.Itoa(i), name: t.name, args: args})
		tokens += (len(args) + 3) / 4
	}
	return out, tokens
}

// appendToolCalls renders tool_calls entries: whole (with index when stream is set, as a
// delta), or the stream's second chunk of call i (its arguments only) when argsOnly is set.
func appendToolCall(dst []byte, i int, cc toolCall, stream, argsOnly bool) []byte {
	dst = append(dst, '{')
	if stream {
		dst = append(dst, `"index":`...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, ',')
	}
	if argsOnly {
		dst = append(dst, `"function":{"arguments":`...)
		dst = appendJSONString(dst, cc.args)
		return append(dst, "}}"...)
	}
	dst = append(dst, `"id":`...)
	dst = appendJSONString(dst, cc.id)
	dst = append(dst, `,"type":"function","function":{"name":`...)
	dst = appendJSONString(dst, cc.name)
	dst = append(dst, `,"arguments":`...)
	if stream {
		dst = append(dst, `""`...)
	} else {
		dst = appendJSONString(dst, cc.args)
	}
	return append(dst, "}}"...)
}
