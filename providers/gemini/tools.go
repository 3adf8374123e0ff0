package gemini

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
)

type tool struct {
	FunctionDeclarations []functionDeclaration `json:"functionDeclarations"`
}

type functionDeclaration struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type toolConfig struct {
	FunctionCallingConfig functionCallingConfig `json:"functionCallingConfig"`
}

type functionCallingConfig struct {
	Mode                 string   `json:"mode"`
	AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
}

// tools translates tools[].function into one Gemini tool with a functionDeclaration each, and
// tool_choice into toolConfig.functionCallingConfig (PROVIDERS.md §7.3): auto → AUTO, none → NONE,
// required → ANY, a named function → ANY restricted to it. OpenAI's allowed_tools choice keeps
// only the allowed declarations. parallel_tool_calls has no Gemini equivalent and is ignored.
func (t *reqTranslator) tools(tools, choice gjson.Result) error {
	if tools.Exists() && tools.Type != gjson.Null && !tools.IsArray() {
		return badRequest("tools", "'tools' must be an array.")
	}
	var decls []functionDeclaration
	var err error
	i := 0
	tools.ForEach(func(_, tl gjson.Result) bool {
		p := "tools[" + strconv.Itoa(i) + "]"
		i++
		if typ := tl.Get("type").Str; typ != "function" {
			err = badRequest(p+".type", "Only function tools can be sent to Gemini, not "+strconv.Quote(typ)+".")
			return false
		}
		f := tl.Get("function")
		d := functionDeclaration{Name: f.Get("name").Str, Description: f.Get("description").Str}
		if d.Name == "" {
			err = badRequest(p+".function.name", "A function tool needs a name.")
			return false
		}
		if params := f.Get("parameters"); params.Exists() && params.Type != gjson.Null {
			if !params.IsObject() {
				err = badRequest(p+".function.parameters", "Function parameters must be a JSON Schema object.")
				return false
			}
			if d.Parameters, err = cleanSchema(p+".function.parameters", "The JSON Schema of tool "+strconv.Quote(d.Name), params, &t.schemas); err != nil {
				return false
			}
			// Gemini rejects an OBJECT schema without properties: a function without
			// parameters is declared without the field.
			if pr := gjson.GetBytes(d.Parameters, "properties"); !pr.Exists() && strings.EqualFold(gjson.GetBytes(d.Parameters, "type").Str, "object") {
				d.Parameters = nil
			}
		}
		decls = append(decls, d)
		return true
	})
	if err != nil {
		return err
	}
	mode, allowed, err := toolChoice(choice, decls)
	if err != nil {
		return err
	}
	if len(decls) == 0 {
		return nil // a tool_choice without tools has nothing to steer
	}
	if allowed != nil && mode != "ANY" {
		// allowed_tools in auto mode: declare only the allowed functions.
		keep := decls[:0]
		for _, d := range decls {
			if contains(allowed, d.Name) {
				keep = append(keep, d)
			}
		}
		decls, allowed = keep, nil
	}
	t.out.Tools = []tool{{FunctionDeclarations: decls}}
	if mode != "" {
		t.out.ToolConfig = &toolConfig{FunctionCallingConfig: functionCallingConfig{Mode: mode, AllowedFunctionNames: allowed}}
	}
	return nil
}

// toolChoice reads tool_choice: the Gemini mode ("" leaves Gemini's default, AUTO) and the
// functions the model may call (nil: all).
func toolChoice(choice gjson.Result, decls []functionDeclaration) (string, []string, error) {
	declared := func(param, name string) error {
		for _, d := range decls {
			if d.Name == name {
				return nil
			}
		}
		if len(decls) == 0 {
			return nil
		}
		return badRequest(param, "tool_choice names "+strconv.Quote(name)+", which is not among the tools.")
	}
	switch {
	case !choice.Exists() || choice.Type == gjson.Null:
		return "", nil, nil
	case choice.Type == gjson.String:
		switch choice.Str {
		case "auto":
			return "AUTO", nil, nil
		case "none":
			return "NONE", nil, nil
		case "required":
			return "ANY", nil, nil
		}
		return "", nil, badRequest("tool_choice", "'tool_choice' must be none, auto, required or a function.")
	case !choice.IsObject():
		return "", nil, badRequest("tool_choice", "'tool_choice' must be none, auto, required or a function.")
	}
	switch choice.Get("type").Str {
	case "function":
		name := choice.Get("function.name").Str
		if name == "" {
			return "", nil, badRequest("tool_choice.function.name", "A function tool_choice needs a name.")
		}
		if err := declared("tool_choice.function.name", name); err != nil {
			return "", nil, err
		}
		return "ANY", []string{name}, nil
	case "allowed_tools":
		at := choice.Get("allowed_tools")
		mode := "AUTO"
		switch at.Get("mode").Str {
		case "", "auto":
		case "required":
			mode = "ANY"
		default:
			return "", nil, badRequest("tool_choice.allowed_tools.mode", "'mode' must be auto or required.")
		}
		allowed := []string{}
		var err error
		at.Get("tools").ForEach(func(_, tl gjson.Result) bool {
			name := tl.Get("function.name").Str
			if name == "" {
				name = tl.Get("name").Str
			}
			if err = declared("tool_choice.allowed_tools.tools", name); err != nil {
				return false
			}
			allowed = append(allowed, name)
			return true
		})
		return mode, allowed, err
	}
	return "", nil, badRequest("tool_choice.type", "Unsupported tool_choice type "+strconv.Quote(choice.Get("type").Str)+".")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// maxSchemaDepth bounds schema nesting, $ref expansion included (a recursive $ref hits it).
const maxSchemaDepth = 32

// Bounds of $ref expansion in one request. Gemini has no $ref, so each reference is copied in
// place, and a definition referenced n times from a definition referenced n times grows as
// n^depth: a 2 KB schema of 10 levels with 4 references each expands to a million nodes. The
// depth cap alone does not stop that; these do. Output not produced by $refs is linear in the
// request body (bounded by the gateway's body limit), so only the expansion is counted.
const (
	// maxRefNodes is how many schema nodes $ref expansion may produce per request, all schemas
	// of the request (every tool's parameters and the response schema) together.
	maxRefNodes = 10_000
	// maxRefBytes is how many bytes of translated schema $ref expansion may produce per request.
	maxRefBytes = 1 << 20
)

// schemaBudget is what $ref expansion has produced so far in one request, and its bounds.
type schemaBudget struct {
	maxNodes, maxBytes int // 0: maxRefNodes, maxRefBytes (tests set smaller bounds)
	refNodes           int // schema nodes produced inside expanded $refs
	refBytes           int // bytes produced inside expanded $refs
}

func (b *schemaBudget) limits() (nodes, bytes int) {
	nodes, bytes = b.maxNodes, b.maxBytes
	if nodes <= 0 {
		nodes = maxRefNodes
	}
	if bytes <= 0 {
		bytes = maxRefBytes
	}
	return nodes, bytes
}

// cleanSchema rewrites a JSON Schema into the OpenAPI subset Gemini's Schema accepts
// (https://ai.google.dev/api/caching#Schema). Gemini answers 400 to any keyword it does not
// know, so this keeps only known ones, in their original order: type, format, title,
// description, nullable, enum, items, minItems, maxItems, properties, required, minProperties,
// maxProperties, minLength, maxLength, pattern, example, anyOf, propertyOrdering, default,
// minimum, maximum. Everything else is dropped ($schema, $id, additionalProperties, strict,
// allOf, not, examples, exclusiveMinimum…), and the common JSON Schema idioms are rewritten:
//   - "type": ["string", "null"] becomes "type": "string", "nullable": true (several non-null
//     types become an anyOf of each);
//   - "oneOf" becomes "anyOf"; "const" becomes a one-value enum;
//   - local "$ref"s ("#/$defs/X", "#/definitions/X") are expanded in place;
//   - enum is kept only when every value is a string, format only when Gemini knows it for the
//     type (enum and date-time for strings, float and double, int32 and int64), and required
//     only for properties that exist.
//
// budget is shared by every schema of a request; what is named in an error is the schema's
// param (and the tool, in the message, when the schema is a tool's parameters).
func cleanSchema(param, what string, s gjson.Result, budget *schemaBudget) (json.RawMessage, error) {
	c := schemaCleaner{root: s, param: param, what: what, budget: budget}
	out, err := c.clean(nil, s, 0)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(out), nil
}

type schemaCleaner struct {
	root   gjson.Result
	param  string
	what   string // "The JSON Schema of tool \"f\"", for messages
	budget *schemaBudget
	// inRef is how many $refs deep the cleaner is; refStart is where in the output the
	// outermost expansion began.
	inRef    int
	refStart int
}

// overBudget reports whether $ref expansion has gone past its budget, counting the node about to
// be written. It is called at every node inside an expansion, so the output stops growing within
// one node's own keywords of the bound.
func (c *schemaCleaner) overBudget(dst []byte) error {
	b := c.budget
	b.refNodes++
	if maxNodes, maxBytes := b.limits(); b.refNodes > maxNodes || b.refBytes+len(dst)-c.refStart > maxBytes {
		b.refBytes += len(dst) - c.refStart
		return c.budgetError()
	}
	return nil
}

func (c *schemaCleaner) budgetError() error {
	nodes, bytes := c.budget.limits()
	return badRequest(c.param, fmt.Sprintf("%s expands to more than %d nodes or %d KiB through its $refs "+
		"(Gemini needs each $ref copied in place); reference fewer definitions, or fewer times.",
		c.what, nodes, bytes>>10))
}

var knownFormats = map[string]string{
	"enum": "string", "date-time": "string", "float": "number", "double": "number",
	"int32": "integer", "int64": "integer",
}

func (c *schemaCleaner) clean(dst []byte, s gjson.Result, depth int) ([]byte, error) {
	if depth > maxSchemaDepth {
		return nil, badRequest(c.param, "The JSON Schema is nested too deeply (or its $refs are recursive).")
	}
	if c.inRef > 0 {
		if err := c.overBudget(dst); err != nil {
			return nil, err
		}
	}
	if !s.IsObject() {
		return append(dst, "{}"...), nil // true, false or junk: no constraint Gemini can express
	}
	if ref := s.Get(gjson.Escape("$ref")); ref.Exists() {
		target, ok := c.resolve(ref.Str)
		if !ok {
			return nil, badRequest(c.param, "Unsupported $ref "+strconv.Quote(ref.Str)+": only local #/$defs/ and #/definitions/ references can be sent to Gemini.")
		}
		if c.inRef == 0 {
			c.refStart = len(dst)
		}
		c.inRef++
		dst, err := c.clean(dst, target, depth+1)
		c.inRef--
		if err != nil {
			return nil, err
		}
		if c.inRef == 0 { // the last node's own keywords were not counted yet
			c.budget.refBytes += len(dst) - c.refStart
			if _, maxBytes := c.budget.limits(); c.budget.refBytes > maxBytes {
				return nil, c.budgetError()
			}
		}
		return dst, nil
	}

	var types []string
	nullable := s.Get("nullable").Bool()
	switch t := s.Get("type"); {
	case t.IsArray():
		t.ForEach(func(_, v gjson.Result) bool {
			if v.Str == "null" {
				nullable = true
			} else if v.Str != "" {
				types = append(types, v.Str)
			}
			return true
		})
	case t.Str == "null":
		nullable = true
	case t.Str != "":
		types = []string{t.Str}
	}
	props := s.Get("properties")

	dst = append(dst, '{')
	n := 0
	key := func(k string) {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = jsonappend.String(dst, k)
		dst = append(dst, ':')
	}
	if len(types) == 1 {
		key("type")
		dst = jsonappend.String(dst, types[0])
	}
	if nullable {
		key("nullable")
		dst = append(dst, "true"...)
	}
	var err error
	wroteAnyOf, wroteEnum := false, false
	if len(types) > 1 && !s.Get("anyOf").Exists() && !s.Get("oneOf").Exists() {
		key("anyOf")
		dst = append(dst, '[')
		for i, typ := range types {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(append(dst, `{"type":`...), jsonappend.String(nil, typ)...)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
		wroteAnyOf = true
	}
	s.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "title", "description", "pattern":
			if v.Type == gjson.String {
				key(k.Str)
				dst = jsonappend.String(dst, v.Str)
			}
		case "example", "default":
			key(k.Str)
			dst = append(dst, v.Raw...)
		case "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "minimum", "maximum":
			if v.Type == gjson.Number {
				key(k.Str)
				dst = append(dst, v.Raw...)
			}
		case "format":
			if want, ok := knownFormats[v.Str]; ok && len(types) == 1 && types[0] == want {
				key(k.Str)
				dst = jsonappend.String(dst, v.Str)
			}
		case "enum", "const":
			if wroteEnum {
				return true
			}
			vals := v
			if k.Str == "const" {
				if v.Type != gjson.String {
					return true
				}
				key("enum")
				dst = append(append(append(dst, '['), jsonappend.String(nil, v.Str)...), ']')
				wroteEnum = true
				return true
			}
			allStrings := vals.IsArray()
			vals.ForEach(func(_, e gjson.Result) bool {
				allStrings = allStrings && e.Type == gjson.String
				return allStrings
			})
			if allStrings {
				key("enum")
				dst = append(dst, '[')
				i := 0
				vals.ForEach(func(_, e gjson.Result) bool {
					if i > 0 {
						dst = append(dst, ',')
					}
					i++
					dst = jsonappend.String(dst, e.Str)
					return true
				})
				dst = append(dst, ']')
				wroteEnum = true
			}
		case "items":
			item := v
			if v.IsArray() { // tuple form: Gemini has one item schema
				item = v.Get("0")
			}
			key("items")
			dst, err = c.clean(dst, item, depth+1)
		case "properties":
			if !v.IsObject() || len(v.Map()) == 0 {
				return true
			}
			key("properties")
			dst = append(dst, '{')
			i := 0
			v.ForEach(func(name, ps gjson.Result) bool {
				if i > 0 {
					dst = append(dst, ',')
				}
				i++
				dst = append(jsonappend.String(dst, name.Str), ':')
				dst, err = c.clean(dst, ps, depth+1)
				return err == nil
			})
			dst = append(dst, '}')
		case "required":
			var names []string
			v.ForEach(func(_, r gjson.Result) bool {
				if r.Type == gjson.String && props.Get(gjson.Escape(r.Str)).Exists() {
					names = append(names, r.Str)
				}
				return true
			})
			if len(names) > 0 {
				key("required")
				dst = append(dst, '[')
				for i, name := range names {
					if i > 0 {
						dst = append(dst, ',')
					}
					dst = jsonappend.String(dst, name)
				}
				dst = append(dst, ']')
			}
		case "propertyOrdering":
			if v.IsArray() {
				key(k.Str)
				dst = append(dst, v.Raw...)
			}
		case "anyOf", "oneOf":
			if wroteAnyOf || !v.IsArray() {
				return true
			}
			key("anyOf")
			dst = append(dst, '[')
			i := 0
			v.ForEach(func(_, alt gjson.Result) bool {
				if i > 0 {
					dst = append(dst, ',')
				}
				i++
				dst, err = c.clean(dst, alt, depth+1)
				return err == nil
			})
			dst = append(dst, ']')
			wroteAnyOf = true
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// resolve finds the target of a local $ref.
func (c *schemaCleaner) resolve(ref string) (gjson.Result, bool) {
	for _, prefix := range []string{"#/$defs/", "#/definitions/"} {
		if name, ok := strings.CutPrefix(ref, prefix); ok && name != "" && !strings.Contains(name, "/") {
			group := strings.TrimSuffix(prefix[2:], "/")
			t := c.root.Get(gjson.Escape(group) + "." + gjson.Escape(name))
			return t, t.IsObject()
		}
	}
	return gjson.Result{}, false
}
