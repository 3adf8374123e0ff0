package messages

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
)

// This file translates tools and tool_choice (PROVIDERS.md §3.3, §7.3):
//
//	{name, description, input_schema}  → {type:"function", function:{name, description, parameters}}
//	{type:"auto"} / any / none         → "auto" / "required" / "none"
//	{type:"tool", name}                → {type:"function", function:{name}}
//	disable_parallel_tool_use:true     → parallel_tool_calls:false
//
// Server tools (web_search, code_execution…) and Anthropic-defined client tools (bash,
// text_editor, computer…) are refused: a chat deployment has none, and does not know their
// schemas. tool_choice and parallel_tool_calls are left out without tools, since OpenAI refuses
// them there.

// appendTools renders tools, tool_choice and parallel_tool_calls.
func (r *request) appendTools(out []byte) ([]byte, error) {
	n := 0
	var err error
	if r.tools.IsArray() {
		r.tools.ForEach(func(_, tool gjson.Result) bool {
			out, err = appendTool(out, tool, n)
			n++
			return err == nil
		})
	}
	if err != nil {
		return out, err
	}
	if n > 0 {
		out = append(out, ']')
	}
	tc := r.toolChoice
	if null(tc) {
		return out, nil
	}
	typ := tc.Get("type").Str
	switch typ {
	case "auto", "any", "none":
	case "tool":
		if name := tc.Get("name"); name.Type != gjson.String || name.Str == "" {
			return out, invalid("tool_choice.tool.name: Field required")
		}
	default:
		return out, invalid("tool_choice: Input tag %s found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", tc.Get("type").Raw)
	}
	p := tc.Get("disable_parallel_tool_use")
	if !null(p) && !isBool(p) {
		return out, invalid("tool_choice.%s.disable_parallel_tool_use: Input should be a valid boolean", typ)
	}
	if n == 0 {
		return out, nil
	}
	switch typ {
	case "auto":
		out = append(out, `,"tool_choice":"auto"`...)
	case "any":
		out = append(out, `,"tool_choice":"required"`...)
	case "none":
		out = append(out, `,"tool_choice":"none"`...)
	case "tool":
		out = append(out, `,"tool_choice":{"type":"function","function":{"name":`...)
		out = jsonappend.String(out, tc.Get("name").Str)
		out = append(out, "}}"...)
	}
	if p.Type == gjson.True && typ != "none" {
		out = append(out, `,"parallel_tool_calls":false`...)
	}
	return out, nil
}

// appendTool renders the i-th tool, opening the tools array before the first.
func appendTool(out []byte, tool gjson.Result, i int) ([]byte, error) {
	path := "tools." + strconv.Itoa(i)
	if !tool.IsObject() {
		return out, invalid("%s: Input should be an object", path)
	}
	if typ := tool.Get("type"); !null(typ) && typ.Str != "custom" {
		for _, p := range serverTools {
			if strings.HasPrefix(typ.Str, p) {
				return out, invalid("%s: the %s tool is not available for this model's deployment: only custom tools (name, description, input_schema) are", path, typ.Str)
			}
		}
		return out, invalid("%s: tool type %s is not supported for this model's deployment: only custom tools are", path, typ.Raw)
	}
	name, schema := tool.Get("name"), tool.Get("input_schema")
	if name.Type != gjson.String || name.Str == "" {
		return out, invalid("%s.name: Field required", path)
	}
	if !schema.IsObject() {
		return out, invalid("%s.input_schema: Field required (a JSON Schema object)", path)
	}
	if i == 0 {
		out = append(out, `,"tools":[`...)
	} else {
		out = append(out, ',')
	}
	out = append(out, `{"type":"function","function":{"name":`...)
	out = jsonappend.String(out, name.Str)
	if d := tool.Get("description"); d.Type == gjson.String {
		out = append(out, `,"description":`...)
		out = jsonappend.String(out, d.Str)
	}
	out = append(out, `,"parameters":`...)
	out = append(out, schema.Raw...)
	if s := tool.Get("strict"); isBool(s) {
		out = append(out, `,"strict":`...)
		out = append(out, s.Raw...)
	}
	return append(out, "}}"...), nil
}
