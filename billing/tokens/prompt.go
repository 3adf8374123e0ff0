package tokens

import (
	"strings"

	tiktoken "github.com/pkoukk/tiktoken-go"
	"github.com/tidwall/gjson"
)

// Framing constants from the OpenAI cookbook "How to count tokens with tiktoken"
// (openai/openai-cookbook examples/How_to_count_tokens_with_tiktoken.ipynb, §6 and §7), which
// checks them against the API's own prompt_tokens for gpt-3.5-turbo, gpt-4, gpt-4o and
// gpt-4o-mini: every message costs 3 tokens (<|start|>{role}…<|end|>) plus its values, a "name"
// one more, and every reply is primed with 3 (<|start|>assistant<|message|>).
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	replyPriming     = 3
)

// Image parts cannot be measured without fetching and decoding the image, which an estimator on
// the settlement path must not do. OpenAI's base/tile costing for gpt-4o-class models
// (platform.openai.com/docs/guides/images-vision#calculating-costs) is 85 tokens at detail "low",
// and otherwise 85 + 170 per 512-px tile after scaling the short side to 768 px; the estimates
// below are "low" exactly and, for "high"/"auto"/unspecified, a 1024×1024 image (768×768, 4 tiles:
// 85 + 4×170 = 765). Models such as gpt-4o-mini and gpt-5-mini count images with other constants
// or per 32-px patch (openai/openai-python issue 2851), and other providers differ again: treat
// image-heavy estimates as rough. Audio and file parts count 0.
const (
	imageTokensLow     = 85
	imageTokensDefault = 765
)

// toolCosts are the cookbook's §7 constants for the "tools" (and legacy "functions") list.
type toolCosts struct{ funcInit, propInit, propKey, enumInit, enumItem, funcEnd int64 }

var (
	toolCostsO200K  = toolCosts{7, 3, 3, -3, 3, 12}  // gpt-4o, gpt-4o-mini
	toolCostsCL100K = toolCosts{10, 3, 3, -3, 3, 12} // gpt-3.5-turbo, gpt-4
)

// Prompt estimates the prompt tokens of an OpenAI-format request body for endpoint (a path such
// as "/v1/chat/completions", or just "chat/completions", "completions", "embeddings",
// "responses"; any other value is decided from the body's fields). model picks the encoding; when
// empty, the body's "model" is used. An invalid JSON body counts 0.
//
//   - chat/completions — "messages": the cookbook recipe: 3 per message, the tokens of every string
//     value (role, content, name, tool_call_id…), +1 per "name", +3 for the reply priming; content
//     arrays count their text parts and a fixed estimate per image; assistant tool_calls count
//     their function name and arguments. "tools"/"functions" follow the cookbook's §7 recipe.
//   - completions — "prompt": a string, an array of strings, a token array (its length) or an
//     array of token arrays; plus "suffix".
//   - embeddings — "input": the same shapes as "prompt".
//   - responses — "instructions" plus "input" (a string or an array of items counted like
//     messages).
func (e *Estimator) Prompt(endpoint, model string, body []byte) int64 {
	if !gjson.ValidBytes(body) {
		return 0
	}
	root := gjson.ParseBytes(body)
	if model == "" {
		model = root.Get("model").String()
	}
	enc := e.encoder(model)
	costs := toolCostsCL100K
	if EncodingFor(model) == O200K {
		costs = toolCostsO200K
	}
	switch kind := endpointKind(endpoint); {
	case kind == "chat" || (kind == "" && root.Get("messages").Exists()):
		n := messagesTokens(enc, root.Get("messages"))
		n += toolsTokens(enc, costs, root.Get("tools"), true)
		n += toolsTokens(enc, costs, root.Get("functions"), false)
		return n
	case kind == "completions" || (kind == "" && root.Get("prompt").Exists()):
		return inputTokens(enc, root.Get("prompt")) + stringTokens(enc, root.Get("suffix"))
	case kind == "embeddings":
		return inputTokens(enc, root.Get("input"))
	default: // responses, or an unknown endpoint with an "input"
		n := stringTokens(enc, root.Get("instructions"))
		in := root.Get("input")
		if in.IsArray() && itemsAreObjects(in) {
			n += messagesTokens(enc, in)
		} else {
			n += inputTokens(enc, in)
		}
		return n + toolsTokens(enc, costs, root.Get("tools"), true)
	}
}

// endpointKind maps a request path to "chat", "completions", "embeddings", "responses" or "".
func endpointKind(endpoint string) string {
	e := strings.ToLower(endpoint)
	if i := strings.IndexByte(e, '?'); i >= 0 {
		e = e[:i]
	}
	e = strings.TrimRight(e, "/")
	switch {
	case strings.HasSuffix(e, "chat/completions") || e == "chat":
		return "chat"
	case strings.HasSuffix(e, "completions"):
		return "completions"
	case strings.HasSuffix(e, "embeddings"):
		return "embeddings"
	case strings.HasSuffix(e, "responses"):
		return "responses"
	}
	return ""
}

func stringTokens(enc *tiktoken.Tiktoken, v gjson.Result) int64 {
	if v.Type != gjson.String {
		return 0
	}
	return count(enc, v.Str)
}

// inputTokens counts a prompt/input value: string, []string, []int (token ids) or [][]int.
func inputTokens(enc *tiktoken.Tiktoken, v gjson.Result) int64 {
	if v.Type == gjson.String {
		return count(enc, v.Str)
	}
	var n int64
	v.ForEach(func(_, x gjson.Result) bool {
		switch {
		case x.Type == gjson.String:
			n += count(enc, x.Str)
		case x.Type == gjson.Number:
			n++ // one token id
		case x.IsArray():
			x.ForEach(func(_, id gjson.Result) bool { n++; return true })
		}
		return true
	})
	return n
}

func nonEmpty(v gjson.Result) bool {
	found := false
	v.ForEach(func(_, _ gjson.Result) bool { found = true; return false })
	return found
}

func itemsAreObjects(v gjson.Result) bool {
	all := true
	v.ForEach(func(_, x gjson.Result) bool { all = x.IsObject(); return all })
	return all
}

// messagesTokens applies the cookbook's num_tokens_from_messages to a messages (or Responses
// input items) array. No messages → 0, not just the reply priming.
func messagesTokens(enc *tiktoken.Tiktoken, msgs gjson.Result) int64 {
	if !msgs.IsArray() {
		return 0
	}
	var n int64
	seen := false
	msgs.ForEach(func(_, m gjson.Result) bool {
		seen = true
		n += tokensPerMessage
		m.ForEach(func(k, v gjson.Result) bool {
			switch {
			case v.Type == gjson.String:
				n += count(enc, v.Str)
				if k.Str == "name" {
					n += tokensPerName
				}
			case k.Str == "content" && v.IsArray():
				n += partsTokens(enc, v)
			case k.Str == "tool_calls" && v.IsArray():
				v.ForEach(func(_, c gjson.Result) bool {
					n += functionCallTokens(enc, c.Get("function"))
					return true
				})
			case k.Str == "function_call" && v.IsObject():
				n += functionCallTokens(enc, v)
			}
			return true
		})
		return true
	})
	if seen {
		n += replyPriming
	}
	return n
}

func functionCallTokens(enc *tiktoken.Tiktoken, f gjson.Result) int64 {
	return stringTokens(enc, f.Get("name")) + stringTokens(enc, f.Get("arguments"))
}

// partsTokens counts a content array: text parts by their text ("text", "input_text",
// "output_text", and "refusal"), image parts by the fixed estimate, anything else as 0.
func partsTokens(enc *tiktoken.Tiktoken, parts gjson.Result) int64 {
	var n int64
	parts.ForEach(func(_, p gjson.Result) bool {
		if p.Type == gjson.String { // some clients send bare strings
			n += count(enc, p.Str)
			return true
		}
		typ := p.Get("type").String()
		switch {
		case strings.Contains(typ, "image"):
			detail := p.Get("image_url.detail").String()
			if detail == "" {
				detail = p.Get("detail").String() // Responses API input_image
			}
			if detail == "low" {
				n += imageTokensLow
			} else {
				n += imageTokensDefault
			}
		case p.Get("text").Type == gjson.String:
			n += count(enc, p.Get("text").Str)
		case p.Get("refusal").Type == gjson.String:
			n += count(enc, p.Get("refusal").Str)
		}
		return true
	})
	return n
}

// toolsTokens applies the cookbook's num_tokens_for_tools to a "tools" list (wrapped: each item
// has a "function") or a legacy "functions" list (each item is the function).
func toolsTokens(enc *tiktoken.Tiktoken, c toolCosts, list gjson.Result, wrapped bool) int64 {
	if !list.IsArray() {
		return 0
	}
	var n int64
	counted := false
	list.ForEach(func(_, t gjson.Result) bool {
		f := t
		if wrapped {
			f = t.Get("function")
			if !f.Exists() {
				f = t // Responses API tools are flat: {type, name, description, parameters}
			}
		}
		if !f.Get("name").Exists() {
			return true // a built-in tool (web_search…): no schema to count
		}
		counted = true
		n += c.funcInit
		n += count(enc, f.Get("name").String()+":"+strings.TrimSuffix(f.Get("description").String(), "."))
		props := f.Get("parameters.properties")
		if props.IsObject() && nonEmpty(props) {
			n += c.propInit
			props.ForEach(func(name, p gjson.Result) bool {
				n += c.propKey
				if enum := p.Get("enum"); enum.IsArray() {
					n += c.enumInit
					enum.ForEach(func(_, item gjson.Result) bool {
						n += c.enumItem + count(enc, item.String())
						return true
					})
				}
				desc := strings.TrimSuffix(p.Get("description").String(), ".")
				n += count(enc, name.String()+":"+p.Get("type").String()+":"+desc)
				return true
			})
		}
		return true
	})
	if counted {
		n += c.funcEnd
	}
	return n
}
