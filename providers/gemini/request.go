package gemini

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// This file translates an OpenAI chat/completions body into a generateContent body. Everything
// is read with gjson from the body as sent (the adapter never modifies it: the gateway reuses it
// on failover) and written through the typed structs below, so the output is always well-formed.
// Fields that name an upstream or a credential (api_base, base_url, api_key…) are never read.

// genRequest is the body of models/{model}:generateContent and :streamGenerateContent.
type genRequest struct {
	Contents          []content         `json:"contents"`
	SystemInstruction *content          `json:"systemInstruction,omitempty"`
	Tools             []tool            `json:"tools,omitempty"`
	ToolConfig        *toolConfig       `json:"toolConfig,omitempty"`
	GenerationConfig  *generationConfig `json:"generationConfig,omitempty"`
}

type content struct {
	Role  string `json:"role,omitempty"`
	Parts []part `json:"parts"`
}

// part is a Gemini Part: exactly one of the data fields is set.
type part struct {
	Text             string            `json:"text,omitempty"`
	InlineData       *blob             `json:"inlineData,omitempty"`
	FileData         *fileData         `json:"fileData,omitempty"`
	FunctionCall     *functionCall     `json:"functionCall,omitempty"`
	FunctionResponse *functionResponse `json:"functionResponse,omitempty"`
	ThoughtSignature string            `json:"thoughtSignature,omitempty"`
}

type blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type fileData struct {
	MimeType string `json:"mimeType"`
	FileURI  string `json:"fileUri"`
}

type functionCall struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

type functionResponse struct {
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type generationConfig struct {
	MaxOutputTokens  json.RawMessage `json:"maxOutputTokens,omitempty"`
	Temperature      json.RawMessage `json:"temperature,omitempty"`
	TopP             json.RawMessage `json:"topP,omitempty"`
	TopK             json.RawMessage `json:"topK,omitempty"`
	StopSequences    []string        `json:"stopSequences,omitempty"`
	PresencePenalty  json.RawMessage `json:"presencePenalty,omitempty"`
	FrequencyPenalty json.RawMessage `json:"frequencyPenalty,omitempty"`
	Seed             json.RawMessage `json:"seed,omitempty"`
	ResponseMimeType string          `json:"responseMimeType,omitempty"`
	ResponseSchema   json.RawMessage `json:"responseSchema,omitempty"`
	ThinkingConfig   *thinkingConfig `json:"thinkingConfig,omitempty"`
}

type thinkingConfig struct {
	IncludeThoughts bool `json:"includeThoughts,omitempty"`
	ThinkingBudget  *int `json:"thinkingBudget,omitempty"`
}

// translatedRequest is a request ready for Gemini.
type translatedRequest struct {
	body []byte
	// model is the body's model, used when the gateway did not name the upstream model.
	model string
	// includeUsage is stream_options.include_usage: the stream ends with a usage chunk.
	includeUsage bool
}

// thinkingBudgets maps reasoning_effort to a thinking budget in tokens, as Gemini's own
// OpenAI-compatible endpoint does (https://ai.google.dev/gemini-api/docs/openai); "none" turns
// thinking off where the model allows it.
var thinkingBudgets = map[string]int{"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

// translateRequest turns an OpenAI chat/completions body into a generateContent body. Its
// errors are *requestError: the caller's request cannot be expressed for Gemini.
func translateRequest(body []byte) (translatedRequest, error) {
	return translateRequestBudget(body, schemaBudget{})
}

// translateRequestBudget is translateRequest with the bounds of $ref expansion given.
func translateRequestBudget(body []byte, schemas schemaBudget) (translatedRequest, error) {
	if !jsoncheck.Valid(body) {
		return translatedRequest{}, badRequest("", "We could not parse the JSON body of your request.")
	}
	// The body outlives the translation and is never written, so gjson may point into it.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return translatedRequest{}, badRequest("", "The request body must be a JSON object.")
	}
	t := reqTranslator{ids: make(map[string]string), schemas: schemas}
	if err := t.messages(root.Get("messages")); err != nil {
		return translatedRequest{}, err
	}
	if err := t.tools(root.Get("tools"), root.Get("tool_choice")); err != nil {
		return translatedRequest{}, err
	}
	if err := t.generationConfig(root); err != nil {
		return translatedRequest{}, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&t.out); err != nil {
		return translatedRequest{}, badRequest("", "The request could not be translated for Gemini: "+err.Error())
	}
	return translatedRequest{
		body:         bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
		model:        root.Get("model").String(),
		includeUsage: root.Get("stream_options.include_usage").Bool(),
	}, nil
}

// reqTranslator builds one genRequest. Not safe for concurrent use.
type reqTranslator struct {
	out genRequest
	// ids maps the tool call ids of the assistant messages read so far to their function names:
	// Gemini matches a functionResponse to its call by name, OpenAI by id. A later assistant
	// message reusing an id wins, so a tool message is matched to the nearest preceding call.
	ids map[string]string
	// schemas is what $ref expansion has produced so far, in all the request's schemas.
	schemas schemaBudget
}

func (t *reqTranslator) messages(msgs gjson.Result) error {
	if !msgs.IsArray() {
		return badRequest("messages", "'messages' must be an array of messages.")
	}
	var err error
	i := 0
	msgs.ForEach(func(_, m gjson.Result) bool {
		err = t.message("messages["+strconv.Itoa(i)+"]", m)
		i++
		return err == nil
	})
	if err != nil {
		return err
	}
	if len(t.out.Contents) == 0 {
		return badRequest("messages", "Gemini needs at least one user or assistant message with content.")
	}
	return nil
}

// message appends one OpenAI message. system and developer messages go to systemInstruction
// (Gemini has one, so all of them are gathered there, wherever they stand); user, tool and
// function messages become "user" contents and assistant messages "model" ones; consecutive
// contents of the same role are merged, as Gemini wants turns to alternate.
func (t *reqTranslator) message(param string, m gjson.Result) error {
	if !m.IsObject() {
		return badRequest(param, "Each message must be an object.")
	}
	role := m.Get("role")
	c := m.Get("content")
	switch role.Str {
	case "system", "developer":
		texts, err := textParts(param+".content", c, "text")
		if err != nil {
			return err
		}
		if len(texts) > 0 {
			if t.out.SystemInstruction == nil {
				t.out.SystemInstruction = &content{}
			}
			t.out.SystemInstruction.Parts = append(t.out.SystemInstruction.Parts, texts...)
		}
		return nil
	case "user":
		parts, err := userParts(param+".content", c)
		if err != nil {
			return err
		}
		t.add("user", parts)
		return nil
	case "assistant":
		parts, err := textParts(param+".content", c, "text", "refusal")
		if err != nil {
			return err
		}
		calls, err := t.toolCalls(param, m)
		if err != nil {
			return err
		}
		t.add("model", append(parts, calls...))
		return nil
	case "tool", "function":
		name := m.Get("name").Str
		if role.Str == "tool" {
			id := m.Get("tool_call_id")
			if id.Type != gjson.String {
				return badRequest(param+".tool_call_id", "A tool message needs the tool_call_id of the call it answers.")
			}
			n, ok := t.ids[id.Str]
			if !ok {
				return badRequest(param+".tool_call_id", "tool_call_id "+strconv.Quote(id.Str)+" does not match a tool call of a preceding assistant message.")
			}
			name = n
		} else if name == "" {
			return badRequest(param+".name", "A function message needs the name of the function.")
		}
		text, err := joinedText(param+".content", c)
		if err != nil {
			return err
		}
		t.add("user", []part{{FunctionResponse: &functionResponse{Name: name, Response: toolResponse(text)}}})
		return nil
	case "":
		return badRequest(param+".role", "Each message needs a role.")
	}
	return badRequest(param+".role", "Unsupported role "+strconv.Quote(role.String())+": use system, developer, user, assistant or tool.")
}

// add appends parts as a content of role, merged into the previous content when it has the same
// role. A message without parts (empty content) adds nothing: Gemini rejects empty contents.
func (t *reqTranslator) add(role string, parts []part) {
	if len(parts) == 0 {
		return
	}
	if n := len(t.out.Contents); n > 0 && t.out.Contents[n-1].Role == role {
		t.out.Contents[n-1].Parts = append(t.out.Contents[n-1].Parts, parts...)
		return
	}
	t.out.Contents = append(t.out.Contents, content{Role: role, Parts: parts})
}

// toolCalls translates an assistant message's tool_calls (and the legacy function_call) into
// functionCall parts, remembering which function each id named. A thought signature that an
// earlier answer carried in the id (see thoughtSeparator) goes back on the part.
func (t *reqTranslator) toolCalls(param string, m gjson.Result) ([]part, error) {
	var parts []part
	var err error
	i := 0
	m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		p := param + ".tool_calls[" + strconv.Itoa(i) + "]"
		i++
		if typ := tc.Get("type").Str; typ != "" && typ != "function" {
			err = badRequest(p+".type", "Only function tool calls can be sent to Gemini.")
			return false
		}
		var fc *functionCall
		if fc, err = callOf(p+".function", tc.Get("function")); err != nil {
			return false
		}
		id := tc.Get("id").Str
		t.ids[id] = fc.Name
		var sig string
		if _, s, ok := strings.Cut(id, thoughtSeparator); ok {
			sig = s
		}
		parts = append(parts, part{FunctionCall: fc, ThoughtSignature: sig})
		return true
	})
	if err != nil {
		return nil, err
	}
	if f := m.Get("function_call"); f.IsObject() {
		fc, err := callOf(param+".function_call", f)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part{FunctionCall: fc})
	}
	return parts, nil
}

// callOf reads {name, arguments}; arguments must hold a JSON object (Gemini's args are one).
func callOf(param string, f gjson.Result) (*functionCall, error) {
	name := f.Get("name").Str
	if name == "" {
		return nil, badRequest(param+".name", "A tool call needs a function name.")
	}
	args := f.Get("arguments")
	raw := "{}"
	switch {
	case args.Type == gjson.String && strings.TrimSpace(args.Str) != "":
		raw = strings.TrimSpace(args.Str)
	case args.IsObject():
		raw = args.Raw
	case args.Exists() && args.Type != gjson.Null && args.Type != gjson.String:
		return nil, badRequest(param+".arguments", "Tool call arguments must be a JSON object encoded as a string.")
	}
	if !jsoncheck.ValidString(raw) || !gjson.Parse(raw).IsObject() {
		return nil, badRequest(param+".arguments", "Tool call arguments must be a JSON object encoded as a string.")
	}
	return &functionCall{Name: name, Args: json.RawMessage(raw)}, nil
}

// toolResponse is a functionResponse's response, which Gemini wants as an object: a tool result
// that is a JSON object is sent as it is, anything else wrapped as {"content": <the text>}.
func toolResponse(text string) json.RawMessage {
	trimmed := strings.TrimSpace(text)
	if strings.HasPrefix(trimmed, "{") && jsoncheck.ValidString(trimmed) {
		return json.RawMessage(trimmed)
	}
	return json.RawMessage(append(jsonappend.String([]byte(`{"content":`), text), '}'))
}

// textParts reads a content that may only hold text: a string, or an array of parts whose type
// is one of kinds (refusal parts of assistant messages are text to Gemini).
func textParts(param string, c gjson.Result, kinds ...string) ([]part, error) {
	switch {
	case !c.Exists() || c.Type == gjson.Null:
		return nil, nil
	case c.Type == gjson.String:
		if c.Str == "" {
			return nil, nil
		}
		return []part{{Text: c.Str}}, nil
	case !c.IsArray():
		return nil, badRequest(param, "Message content must be a string or an array of content parts.")
	}
	var parts []part
	var err error
	i := 0
	c.ForEach(func(_, p gjson.Result) bool {
		pp := param + "[" + strconv.Itoa(i) + "]"
		i++
		typ := p.Get("type").Str
		ok := false
		for _, k := range kinds {
			ok = ok || typ == k
		}
		if !ok {
			err = badRequest(pp+".type", "Content parts of type "+strconv.Quote(typ)+" are not supported in this message.")
			return false
		}
		v := p.Get(typ)
		if v.Type != gjson.String {
			err = badRequest(pp+"."+typ, "A "+typ+" part needs a string "+typ+".")
			return false
		}
		if v.Str != "" {
			parts = append(parts, part{Text: v.Str})
		}
		return true
	})
	return parts, err
}

// joinedText reads a tool result: a string or an array of text parts, concatenated.
func joinedText(param string, c gjson.Result) (string, error) {
	parts, err := textParts(param, c, "text")
	if err != nil || len(parts) <= 1 {
		if len(parts) == 1 {
			return parts[0].Text, err
		}
		return "", err
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// userParts reads a user message's content: text, image_url, input_audio and file parts.
func userParts(param string, c gjson.Result) ([]part, error) {
	if !c.IsArray() {
		return textParts(param, c, "text")
	}
	var parts []part
	var err error
	i := 0
	c.ForEach(func(_, p gjson.Result) bool {
		pp := param + "[" + strconv.Itoa(i) + "]"
		i++
		var out part
		switch typ := p.Get("type").Str; typ {
		case "text":
			v := p.Get("text")
			if v.Type != gjson.String {
				err = badRequest(pp+".text", "A text part needs a string text.")
				return false
			}
			if v.Str == "" {
				return true
			}
			out = part{Text: v.Str}
		case "image_url":
			u := p.Get("image_url")
			if u.IsObject() {
				u = u.Get("url")
			}
			if u.Type != gjson.String || u.Str == "" {
				err = badRequest(pp+".image_url.url", "An image_url part needs a url.")
				return false
			}
			out, err = mediaPart(pp+".image_url.url", u.Str, "image/jpeg")
		case "input_audio":
			data, format := p.Get("input_audio.data").Str, p.Get("input_audio.format").Str
			if data == "" || format == "" {
				err = badRequest(pp+".input_audio", "An input_audio part needs data and format.")
				return false
			}
			out = part{InlineData: &blob{MimeType: "audio/" + format, Data: data}}
		case "file":
			fd := p.Get("file.file_data").Str
			if fd == "" {
				err = badRequest(pp+".file", "Only file parts with file_data (a base64 data: URL) can be sent to Gemini; file ids are OpenAI's.")
				return false
			}
			def := mimeByExt(p.Get("file.filename").Str, "application/pdf")
			out, err = mediaPart(pp+".file.file_data", fd, def)
		default:
			err = badRequest(pp+".type", "Content parts of type "+strconv.Quote(typ)+" are not supported by Gemini.")
		}
		if err != nil {
			return false
		}
		parts = append(parts, out)
		return true
	})
	return parts, err
}

// mediaPart turns an image or file reference into a part: a base64 data: URL becomes inlineData,
// an https URL becomes fileData, its MIME type guessed from the path's extension (def when the
// extension says nothing). Gemini fetches the URL itself; the gateway never does.
func mediaPart(param, ref, def string) (part, error) {
	if len(ref) >= 5 && strings.EqualFold(ref[:5], "data:") {
		meta, data, ok := strings.Cut(ref[5:], ",")
		if !ok || !strings.HasSuffix(strings.ToLower(meta), ";base64") || data == "" {
			return part{}, badRequest(param, "A data: URL must be base64-encoded (data:<mime type>;base64,<data>).")
		}
		mt, _, _ := strings.Cut(meta, ";")
		if mt == "" {
			mt = def
		}
		return part{InlineData: &blob{MimeType: strings.ToLower(mt), Data: data}}, nil
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return part{}, badRequest(param, "Media must be a base64 data: URL or an https URL.")
	}
	return part{FileData: &fileData{MimeType: mimeByExt(u.Path, def), FileURI: ref}}, nil
}

// mediaTypes are the extensions of the media Gemini accepts, for URLs without a usable type.
var mediaTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
	".gif": "image/gif", ".heic": "image/heic", ".heif": "image/heif", ".pdf": "application/pdf",
	".mp3": "audio/mp3", ".wav": "audio/wav", ".ogg": "audio/ogg", ".flac": "audio/flac",
	".mp4": "video/mp4", ".mov": "video/mov", ".webm": "video/webm", ".txt": "text/plain",
}

func mimeByExt(p, def string) string {
	ext := strings.ToLower(path.Ext(p))
	if t, ok := mediaTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		t, _, _ = strings.Cut(t, ";")
		return t
	}
	return def
}

// generationConfig reads the sampling and output settings.
func (t *reqTranslator) generationConfig(root gjson.Result) error {
	var gc generationConfig
	set := false
	number := func(field string, dst *json.RawMessage, integer bool) error {
		v := root.Get(field)
		if !v.Exists() || v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.Number || (integer && (v.Num != float64(int64(v.Num)) || v.Num < 1)) {
			kind := "a number"
			if integer {
				kind = "a positive integer"
			}
			return badRequest(field, "'"+field+"' must be "+kind+".")
		}
		*dst, set = json.RawMessage(v.Raw), true
		return nil
	}
	limit := "max_completion_tokens"
	if v := root.Get(limit); !v.Exists() || v.Type == gjson.Null {
		limit = "max_tokens"
	}
	for _, f := range []struct {
		name    string
		dst     *json.RawMessage
		integer bool
	}{
		{limit, &gc.MaxOutputTokens, true},
		{"temperature", &gc.Temperature, false},
		{"top_p", &gc.TopP, false},
		{"top_k", &gc.TopK, true},
		{"presence_penalty", &gc.PresencePenalty, false},
		{"frequency_penalty", &gc.FrequencyPenalty, false},
	} {
		if err := number(f.name, f.dst, f.integer); err != nil {
			return err
		}
	}
	if v := root.Get("seed"); v.Exists() && v.Type != gjson.Null {
		if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) {
			return badRequest("seed", "'seed' must be an integer.")
		}
		gc.Seed, set = json.RawMessage(v.Raw), true
	}
	switch stop := root.Get("stop"); {
	case stop.Type == gjson.String:
		gc.StopSequences, set = []string{stop.Str}, true
	case stop.IsArray():
		var err error
		stop.ForEach(func(_, s gjson.Result) bool {
			if s.Type != gjson.String {
				err = badRequest("stop", "'stop' must be a string or an array of strings.")
				return false
			}
			gc.StopSequences = append(gc.StopSequences, s.Str)
			return true
		})
		if err != nil {
			return err
		}
		set = set || len(gc.StopSequences) > 0
	case stop.Exists() && stop.Type != gjson.Null:
		return badRequest("stop", "'stop' must be a string or an array of strings.")
	}
	// One choice per answer: the stream translator follows candidate 0 only, and Gemini's
	// candidateCount is not offered by every model.
	if n := root.Get("n"); n.Exists() && n.Type != gjson.Null && (n.Type != gjson.Number || n.Num != 1) {
		return badRequest("n", "Gemini deployments answer one choice per request: 'n' must be 1.")
	}
	if err := t.responseFormat(root.Get("response_format"), &gc, &set); err != nil {
		return err
	}
	if re := root.Get("reasoning_effort"); re.Exists() && re.Type != gjson.Null {
		budget, ok := thinkingBudgets[re.Str]
		if !ok {
			return badRequest("reasoning_effort", "'reasoning_effort' must be one of none, minimal, low, medium, high.")
		}
		gc.ThinkingConfig, set = &thinkingConfig{IncludeThoughts: budget > 0, ThinkingBudget: &budget}, true
	}
	if set {
		t.out.GenerationConfig = &gc
	}
	return nil
}

// responseFormat maps json_object to a JSON MIME type and json_schema to a JSON MIME type plus the
// schema, cleaned the way tool parameters are.
func (t *reqTranslator) responseFormat(rf gjson.Result, gc *generationConfig, set *bool) error {
	if !rf.Exists() || rf.Type == gjson.Null {
		return nil
	}
	switch rf.Get("type").Str {
	case "text":
		return nil
	case "json_object":
		gc.ResponseMimeType, *set = "application/json", true
		return nil
	case "json_schema":
		gc.ResponseMimeType, *set = "application/json", true
		if s := rf.Get("json_schema.schema"); s.Exists() {
			schema, err := cleanSchema("response_format.json_schema.schema", "The response_format JSON Schema", s, &t.schemas)
			if err != nil {
				return err
			}
			gc.ResponseSchema = schema
		}
		return nil
	}
	return badRequest("response_format.type", "'response_format.type' must be text, json_object or json_schema.")
}
