package mock

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// This file reads and checks a Messages request the way Anthropic does, and counts its input
// tokens (see anthropic.go for the rules).

// anthropicFields are the top-level fields the simulated Messages API accepts.
var anthropicFields = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "system": true, "stop_sequences": true,
	"stream": true, "temperature": true, "top_p": true, "top_k": true, "tools": true,
	"tool_choice": true, "metadata": true, "thinking": true, "service_tier": true, "mock": true,
}

var anthropicImageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// parseMessagesCall reads and checks a Messages request; its errors are meant for the client. A
// count_tokens request (counting) needs no max_tokens. A urlModel is Vertex AI's rawPredict: the
// model comes from the URL, and the body carries anthropic_version instead.
func parseMessagesCall(body string, base behaviour, counting bool, urlModel string) (messagesCall, error) {
	c := messagesCall{b: base}
	if !gjson.Valid(body) {
		return c, errors.New("the body is not valid JSON")
	}
	root := gjson.Parse(body)
	if !root.IsObject() {
		return c, errors.New("the body must be a JSON object")
	}
	var err error
	var system, messages gjson.Result
	version := false
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if urlModel != "" {
				err = errors.New("model: Extra inputs are not permitted (the model is named by the URL)")
			}
			if v.Type == gjson.String && v.Str != "" {
				c.model = v.Raw
			}
		case "anthropic_version":
			if urlModel == "" {
				err = errors.New("anthropic_version: Extra inputs are not permitted")
			} else if v.Str != vertexAnthropicVersion {
				err = fmt.Errorf("anthropic_version: must be %q", vertexAnthropicVersion)
			}
			version = true
		case "stream":
			c.stream = v.Type == gjson.True
		case "max_tokens":
			if v.Type != gjson.Number || v.Num < 1 || v.Num != math.Trunc(v.Num) {
				err = errors.New("max_tokens: must be a positive integer")
			}
			c.maxTokens = int(min(v.Num, math.MaxInt32))
		case "system":
			system = v
		case "messages":
			messages = v
		case "stop_sequences":
			if !v.IsArray() {
				err = errors.New("stop_sequences: must be an array of strings")
			}
			v.ForEach(func(_, s gjson.Result) bool {
				if s.Type != gjson.String {
					err = errors.New("stop_sequences: must be an array of strings")
				}
				c.stops = append(c.stops, s.Str)
				return err == nil
			})
		case "temperature", "top_p":
			if v.Type != gjson.Number || v.Num < 0 || v.Num > 1 {
				err = fmt.Errorf("%s: must be a number between 0 and 1", k.Str)
			}
		case "tools":
			err = c.parseTools(v)
		case "tool_choice":
			c.choice, c.named = v.Get("type").Str, v.Get("name").Str
			c.noParallel = v.Get("disable_parallel_tool_use").Bool()
			switch c.choice {
			case "auto", "any", "none", "tool":
			default:
				err = errors.New("tool_choice.type: must be one of auto, any, tool, none")
			}
		case "mock":
			err = c.b.override(v)
		default:
			if !anthropicFields[k.Str] {
				err = fmt.Errorf("%s: Extra inputs are not permitted", k.Str)
			}
		}
		return err == nil
	})
	if err == nil && urlModel != "" {
		if !version {
			err = errors.New("anthropic_version: Field required")
		}
		quoted, _ := json.Marshal(urlModel)
		c.model = string(quoted)
	}
	switch {
	case err != nil:
		return c, err
	case c.model == "":
		return c, errors.New("model: Field required")
	case c.maxTokens == 0 && !counting:
		return c, errors.New("max_tokens: Field required")
	case !messages.IsArray():
		return c, errors.New("messages: Field required")
	}
	if c.choice == "tool" && !c.hasTool(c.named) {
		return c, fmt.Errorf("tool_choice.name: no tool named %q", c.named)
	}
	if c.choice != "" && len(c.tools) == 0 {
		return c, errors.New("tool_choice: may only be specified while providing tools")
	}
	if err := c.countSystem(system); err != nil {
		return c, err
	}
	if err := c.countMessages(messages); err != nil {
		return c, err
	}
	if c.cached {
		c.cacheKey = prefixKey(c.model, system, messages)
	}
	return c, nil
}

func (c *messagesCall) parseTools(v gjson.Result) error {
	if !v.IsArray() {
		return errors.New("tools: must be an array")
	}
	var err error
	v.ForEach(func(_, t gjson.Result) bool {
		name := t.Get("name")
		switch {
		case name.Type != gjson.String || name.Str == "":
			err = errors.New("tools: every tool needs a name")
		case !t.Get("input_schema").IsObject():
			err = fmt.Errorf("tools.%s.input_schema: Field required", name.Str)
		case c.hasTool(name.Str):
			err = fmt.Errorf("tools: tool names must be unique (%s)", name.Str)
		}
		c.tools = append(c.tools, anthropicTool{name: name.Str, schema: t.Get("input_schema")})
		return err == nil
	})
	return err
}

func (c *messagesCall) hasTool(name string) bool {
	for _, t := range c.tools {
		if t.name == name {
			return true
		}
	}
	return false
}

// countSystem counts the system prompt as one message and notes its cache markers.
func (c *messagesCall) countSystem(system gjson.Result) error {
	switch {
	case !system.Exists():
		return nil
	case system.Type == gjson.String:
		c.prompt += 3 + words(system.Str)
		return nil
	case !system.IsArray():
		return errors.New("system: must be a string or an array of text blocks")
	}
	c.prompt += 3
	var err error
	system.ForEach(func(_, b gjson.Result) bool {
		t := b.Get("text")
		if b.Get("type").Str != "text" || t.Type != gjson.String || t.Str == "" {
			err = errors.New("system: blocks must be non-empty text blocks")
			return false
		}
		c.prompt += words(t.Str)
		c.mark(b)
		return true
	})
	return err
}

// mark notes a cache_control marker: the prefix ends at the tokens counted so far.
func (c *messagesCall) mark(b gjson.Result) {
	if b.Get("cache_control").IsObject() {
		c.cached, c.prefix = true, c.prompt
	}
}

// prefixKey identifies a cached prefix: the model, the system prompt and the messages up to the
// last one with a cache marker (none when only the system prompt has one).
func prefixKey(model string, system, messages gjson.Result) uint64 {
	last := -1
	i := 0
	messages.ForEach(func(_, m gjson.Result) bool {
		if strings.Contains(m.Raw, `"cache_control"`) {
			last = i
		}
		i++
		return true
	})
	h := fnv.New64a()
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(system.Raw))
	i = 0
	messages.ForEach(func(_, m gjson.Result) bool {
		if i > last {
			return false
		}
		h.Write([]byte{0})
		h.Write([]byte(m.Raw))
		i++
		return true
	})
	return h.Sum64()
}

// countMessages checks the turns as Anthropic does and counts their tokens.
func (c *messagesCall) countMessages(messages gjson.Result) error {
	var err error
	var pending []string // tool_use ids of the previous assistant turn
	i := -1
	messages.ForEach(func(_, m gjson.Result) bool {
		i++
		path := "messages." + strconv.Itoa(i)
		role := m.Get("role").Str
		if role != "user" && role != "assistant" {
			err = fmt.Errorf("%s.role: Input should be 'user' or 'assistant'", path)
			return false
		}
		c.prompt += 3
		var calls []string
		var results []string
		var text strings.Builder
		content := m.Get("content")
		switch {
		case content.Type == gjson.String:
			c.prompt += words(content.Str)
			text.WriteString(content.Str)
		case content.IsArray():
			j := -1
			content.ForEach(func(_, b gjson.Result) bool {
				j++
				bp := path + ".content." + strconv.Itoa(j)
				switch typ := b.Get("type").Str; typ {
				case "text":
					t := b.Get("text")
					if t.Type != gjson.String || t.Str == "" {
						err = fmt.Errorf("%s.text: text content blocks must be non-empty", bp)
						return false
					}
					c.prompt += words(t.Str)
					text.WriteString(t.Str)
					text.WriteByte(' ')
				case "image", "document":
					err = checkSource(b.Get("source"), typ, bp)
				case "tool_use":
					id := b.Get("id").Str
					switch {
					case role != "assistant":
						err = fmt.Errorf("%s: tool_use blocks are only allowed in assistant turns", bp)
					case id == "" || b.Get("name").Str == "" || !b.Get("input").IsObject():
						err = fmt.Errorf("%s: tool_use needs an id, a name and an input object", bp)
					}
					calls = append(calls, id)
				case "tool_result":
					id := b.Get("tool_use_id").Str
					if role != "user" || id == "" {
						err = fmt.Errorf("%s: tool_result blocks need a tool_use_id and a user turn", bp)
						return false
					}
					results = append(results, id)
					rc := b.Get("content")
					if rc.Type == gjson.String {
						c.prompt += words(rc.Str)
					}
					rc.ForEach(func(_, p gjson.Result) bool {
						c.prompt += words(p.Get("text").Str)
						return true
					})
				case "thinking", "redacted_thinking":
					if role != "assistant" {
						err = fmt.Errorf("%s: thinking blocks are only allowed in assistant turns", bp)
					}
				default:
					err = fmt.Errorf("%s.type: unknown content block type %q", bp, typ)
				}
				c.mark(b)
				return err == nil
			})
		default:
			err = fmt.Errorf("%s.content: must be a string or an array of content blocks", path)
		}
		if err != nil {
			return false
		}
		if m.Get("cache_control").IsObject() {
			c.cached, c.prefix = true, c.prompt
		}
		// Every call of an assistant turn must be answered in the next turn, and only those.
		for _, id := range results {
			if !contains(pending, id) {
				err = fmt.Errorf("%s: unexpected tool_use_id found in tool_result blocks: %s", path, id)
				return false
			}
		}
		for _, id := range pending {
			if !contains(results, id) {
				err = fmt.Errorf("messages.%d: tool_use ids were found without tool_result blocks immediately after: %s", i-1, id)
				return false
			}
		}
		pending = calls
		c.lastIsUser, c.lastHasRes = role == "user", len(results) > 0
		c.lastUser = ""
		if role == "user" {
			c.lastUser = text.String()
		}
		return true
	})
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkSource checks an image or document source.
func checkSource(src gjson.Result, typ, path string) error {
	switch src.Get("type").Str {
	case "base64":
		mt := src.Get("media_type").Str
		ok := anthropicImageTypes[mt]
		if typ == "document" {
			ok = mt == "application/pdf"
		}
		if !ok {
			return fmt.Errorf("%s.source.media_type: %q is not supported for %s", path, mt, typ)
		}
		if src.Get("data").Str == "" {
			return fmt.Errorf("%s.source.data: Field required", path)
		}
	case "url":
		u := src.Get("url").Str
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return fmt.Errorf("%s.source.url: must be an http(s) URL", path)
		}
	default:
		return fmt.Errorf("%s.source.type: must be base64 or url", path)
	}
	return nil
}
