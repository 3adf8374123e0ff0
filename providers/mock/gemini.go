package mock

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// The mock speaks Gemini's native API too (PROVIDERS.md §4), so that the gemini adapter is tested
// against a real HTTP upstream:
//
//	POST /v1beta/models/{model}:generateContent
//	POST /v1beta/models/{model}:streamGenerateContent?alt=sse
//
// Answers follow the OpenAI side's rules where they carry over: the answer's words, chunk count,
// pacing and limits (maxOutputTokens plays max_tokens, and the cut answer ends with MAX_TOKENS),
// the "mock" overrides (a top-level "mock" object in the Gemini body) and the stats. Specific to
// Gemini:
//
//   - promptTokenCount = Σ over contents, systemInstruction included, of (3 + words of its text
//     parts); functionCall, functionResponse and media parts are free.
//   - Thinking: when generationConfig.thinkingConfig.includeThoughts is set (and thinkingBudget is
//     not 0), the answer starts with 2 × tokens_per_chunk thought tokens (capped by a positive
//     thinkingBudget), sent as "thought": true parts and counted in thoughtsTokenCount.
//   - Function calls: when the request declares functions and the mode is not NONE, the model
//     calls them if the mode is ANY, or (AUTO) if the last content holds no functionResponse — so a
//     tool round trip ends with a text answer. It calls every allowed function once, in declaration
//     order, in one turn (parallel calls), with arguments made from the top-level properties of
//     its parameters (strings "mock" or their first enum value, numbers 1, booleans true, arrays
//     [], objects {}); the first call carries a thoughtSignature. Each call counts 3 candidate
//     tokens; the turn ends with STOP, as Gemini's tool turns do.
//   - Streams: "data: {GenerateContentResponse}" events separated by CRLF CRLF, usageMetadata on
//     every event, cumulative; finishReason on the last event; no terminal marker. fail_after k
//     drops the connection after k events (a k at or past the last event sends it without its
//     finishReason, then drops).
//   - Errors have Google's shape, {"error":{"code","message","status","details"}}. With
//     RequireKey, x-goog-api-key is required (403 PERMISSION_DENIED without it, 400
//     INVALID_ARGUMENT with reason API_KEY_INVALID when wrong, as Gemini answers). Stricter than
//     Gemini, to catch a leaking gateway: a key in the URL (?key=) and any Authorization header are
//     rejected, and so are unknown body fields and the schema keywords Gemini refuses
//     (additionalProperties, $schema, $ref…).

const geminiPrefix = "/v1beta/models/"

// isGeminiPath reports whether a path is one of the Gemini model endpoints.
func isGeminiPath(p string) bool { return strings.HasPrefix(p, geminiPrefix) }

// geminiThoughtChunks is the thought events of a thinking answer.
const geminiThoughtChunks = 2

// geminiCallTokens is what one function call counts in candidatesTokenCount.
const geminiCallTokens = 3

// geminiSignature is the thoughtSignature of the first function call (base64 of "mock-signature").
const geminiSignature = "bW9jay1zaWduYXR1cmU="

// serveGemini answers a Gemini model endpoint, counted in the stats like the OpenAI endpoints.
func (h *Handler) serveGemini(w http.ResponseWriter, r *http.Request, v *vertexCall) {
	h.stats.requests.Add(1)
	h.stats.inFlight.Add(1)
	out := h.answerGemini(w, r, v)
	h.stats.inFlight.Add(-1)
	h.stats.count(out)
	if out == outcomeAborted {
		panic(http.ErrAbortHandler)
	}
}

// geminiCall is what one Gemini request asks for.
type geminiCall struct {
	call           // model (a JSON string), maxTokens, promptTokens, behaviour
	stream         bool
	thoughtTokens  int
	calls          []geminiFunc // functions the answer calls; nil for a text answer
	lastIsResponse bool
	seq            uint64 // numbers the answer's responseId
	// vertex answers as Vertex AI does: usage counts only in the last event of a stream, and
	// the stream ends with an UNAUTHENTICATED error once expired reports true.
	vertex  bool
	expired func() bool
}

type geminiFunc struct {
	name   string
	params gjson.Result
}

// answerGemini answers the Gemini API, or Vertex AI's Google publisher when v is set.
func (h *Handler) answerGemini(w http.ResponseWriter, r *http.Request, v *vertexCall) outcome {
	buf := getBuffer()
	defer putBuffer(buf)
	body, err := readBody(*buf, r.Body, r.ContentLength)
	*buf = body
	uri := r.URL.Path
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	h.log.record(uri, r.Header, body)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return writeGoogleError(w, http.StatusRequestEntityTooLarge, "Request payload size exceeds the limit: "+strconv.FormatInt(mbe.Limit, 10)+" bytes.", "")
		}
		return outcomeCanceled
	}
	q := r.URL.Query()
	var expired func() bool
	switch {
	case q.Has("key"):
		return writeGoogleError(w, http.StatusBadRequest, "mock: the API key must travel in the x-goog-api-key header, never in the URL.", "")
	case v != nil:
		var o outcome
		var answered bool
		if expired, o, answered = h.vertexAuth(w, r, true); answered {
			return o
		}
	case r.Header.Get("Authorization") != "":
		return writeGoogleError(w, http.StatusUnauthorized, errUnauthenticated, "")
	}
	if want := strings.TrimPrefix(h.wantAuth, "Bearer "); want != "" && v == nil {
		if o, answered := checkGoogleKey(w, r, want); answered {
			return o
		}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeGoogleError(w, http.StatusMethodNotAllowed, "method not allowed; use POST", "")
	}
	var model, method string
	if v != nil {
		model, method = v.model, v.method
	} else {
		rest := strings.TrimPrefix(r.URL.Path, geminiPrefix)
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return writeGoogleError(w, http.StatusNotFound, "mock: unknown Gemini method "+strconv.Quote(rest)+".", "")
		}
		model, method = rest[:i], rest[i+1:]
	}
	stream := false
	switch method {
	case "generateContent":
	case "streamGenerateContent":
		if q.Get("alt") != "sse" {
			return writeGoogleError(w, http.StatusBadRequest, "mock: only alt=sse streams are simulated.", "")
		}
		stream = true
	default:
		return writeGoogleError(w, http.StatusNotFound, "mock: method "+strconv.Quote(method)+" is not simulated.", "")
	}
	c, err := parseGeminiCall(unsafe.String(unsafe.SliceData(body), len(body)), h.base)
	if err != nil {
		return writeGoogleError(w, http.StatusBadRequest, err.Error(), "")
	}
	c.stream = stream
	c.vertex, c.expired = v != nil, expired
	quoted, _ := json.Marshal(model)
	c.model = string(quoted)
	if c.b.requireKey != "" && v == nil {
		if o, answered := checkGoogleKey(w, r, c.b.requireKey); answered {
			return o
		}
	}
	c.seq = h.seq.Add(1)
	wt := waiter{ctx: r.Context()}
	defer wt.stop()
	if !wt.wait(c.b.hang) {
		return outcomeCanceled
	}
	if o, ok := h.fault(w, &c.b, c.seq, func(status int) outcome {
		return writeGoogleError(w, status, "mock: simulated "+strconv.Itoa(status)+" "+http.StatusText(status), "")
	}); ok {
		return o
	}
	events := c.plan()
	if stream {
		return writeGeminiStream(w, &wt, &c, events)
	}
	if !wt.wait(c.b.latency) {
		return outcomeCanceled
	}
	out := getBuffer()
	defer putBuffer(out)
	*out = appendGeminiResponse(*out, &c, events, 0, len(events)-1, true)
	return writeJSON(w, *out)
}

// checkGoogleKey answers as Gemini does when x-goog-api-key is not want, reporting whether it did.
func checkGoogleKey(w http.ResponseWriter, r *http.Request, want string) (outcome, bool) {
	switch got := r.Header.Get("X-Goog-Api-Key"); {
	case got == "":
		return writeGoogleError(w, http.StatusForbidden, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", ""), true
	case got != want:
		return writeGoogleError(w, http.StatusBadRequest, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"), true
	}
	return outcomeCompleted, false
}

// googleStatus is the RPC status Google pairs with an HTTP status.
func googleStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

type googleDetail struct {
	Type       string `json:"@type"`
	Reason     string `json:"reason,omitempty"`
	Domain     string `json:"domain,omitempty"`
	RetryDelay string `json:"retryDelay,omitempty"`
}

// googleErrorBody renders Google's error envelope. A 429 carries a RetryInfo of one second.
func googleErrorBody(status int, msg, reason string) []byte {
	var e struct {
		Error struct {
			Code    int            `json:"code"`
			Message string         `json:"message"`
			Status  string         `json:"status"`
			Details []googleDetail `json:"details,omitempty"`
		} `json:"error"`
	}
	e.Error.Code, e.Error.Message, e.Error.Status = status, msg, googleStatus(status)
	if reason != "" {
		e.Error.Details = append(e.Error.Details, googleDetail{Type: "type.googleapis.com/google.rpc.ErrorInfo", Reason: reason, Domain: "googleapis.com"})
	}
	if status == http.StatusTooManyRequests {
		e.Error.Details = append(e.Error.Details, googleDetail{Type: "type.googleapis.com/google.rpc.RetryInfo", RetryDelay: "1s"})
	}
	b, _ := json.Marshal(e)
	return b
}

func writeGoogleError(w http.ResponseWriter, status int, msg, reason string) outcome {
	b := googleErrorBody(status, msg, reason)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return outcomeError
}

// Fields the mock accepts, as Gemini does; any other is answered 400, as Gemini answers it.
var (
	geminiBodyFields = map[string]bool{"contents": true, "systemInstruction": true, "system_instruction": true,
		"tools": true, "toolConfig": true, "generationConfig": true, "safetySettings": true, "cachedContent": true,
		"labels": true, "mock": true}
	geminiGenerationFields = map[string]bool{"stopSequences": true, "responseMimeType": true, "responseSchema": true,
		"responseJsonSchema": true, "candidateCount": true, "maxOutputTokens": true, "temperature": true, "topP": true,
		"topK": true, "seed": true, "presencePenalty": true, "frequencyPenalty": true, "responseLogprobs": true,
		"logprobs": true, "thinkingConfig": true, "responseModalities": true, "mediaResolution": true, "speechConfig": true}
	geminiPartFields = map[string]bool{"text": true, "inlineData": true, "fileData": true, "functionCall": true,
		"functionResponse": true, "executableCode": true, "codeExecutionResult": true}
	// geminiSchemaRejects are JSON Schema keywords Gemini's Schema does not have.
	geminiSchemaRejects = map[string]bool{"additionalProperties": true, "$schema": true, "$ref": true, "$defs": true,
		"definitions": true, "$id": true, "const": true, "oneOf": true, "allOf": true, "not": true,
		"exclusiveMinimum": true, "exclusiveMaximum": true, "examples": true, "patternProperties": true, "strict": true}
)

func unknownName(name, at string) error {
	return fmt.Errorf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", name, at)
}

// parseGeminiCall reads and checks a generateContent body; its errors are meant for the client.
func parseGeminiCall(body string, base behaviour) (geminiCall, error) {
	c := geminiCall{call: call{b: base}}
	if !gjson.Valid(body) {
		return c, errors.New("Invalid JSON payload received.")
	}
	root := gjson.Parse(body)
	if !root.IsObject() {
		return c, errors.New("Invalid JSON payload received. Expected an object.")
	}
	var err error
	hasContents := false
	var funcs []geminiFunc
	mode := "AUTO"
	var allowed []string
	budget := -1
	includeThoughts := false
	root.ForEach(func(k, v gjson.Result) bool {
		if !geminiBodyFields[k.Str] {
			err = unknownName(k.Str, "")
			return false
		}
		switch k.Str {
		case "contents":
			hasContents = v.IsArray() && len(v.Array()) > 0
			err = c.readContents(v)
		case "systemInstruction", "system_instruction":
			var n int
			n, _, err = contentTokens("system_instruction", v)
			c.promptTokens += n
		case "tools":
			funcs, err = readFunctions(v)
		case "toolConfig":
			if m := v.Get("functionCallingConfig.mode").Str; m != "" {
				mode = m
			}
			v.Get("functionCallingConfig.allowedFunctionNames").ForEach(func(_, n gjson.Result) bool {
				allowed = append(allowed, n.Str)
				return true
			})
		case "generationConfig":
			v.ForEach(func(gk, gv gjson.Result) bool {
				switch {
				case !geminiGenerationFields[gk.Str]:
					err = unknownName(gk.Str, "generation_config")
				case gk.Str == "maxOutputTokens":
					c.maxTokens = int(min(max(gv.Int(), 0), 1<<31-1))
				case gk.Str == "candidateCount" && gv.Int() > 1:
					err = errors.New("mock: candidateCount above 1 is not simulated")
				case gk.Str == "thinkingConfig":
					includeThoughts = gv.Get("includeThoughts").Bool()
					if tb := gv.Get("thinkingBudget"); tb.Exists() {
						budget = int(tb.Int())
					}
				}
				return err == nil
			})
		case "mock":
			err = c.b.override(v)
		}
		return err == nil
	})
	switch {
	case err != nil:
		return c, err
	case !hasContents:
		return c, errors.New("* GenerateContentRequest.contents: contents is not specified")
	}
	if includeThoughts && budget != 0 {
		c.thoughtTokens = geminiThoughtChunks * c.b.tokensPerChunk
		if budget > 0 {
			c.thoughtTokens = min(c.thoughtTokens, budget)
		}
	}
	if len(funcs) > 0 && mode != "NONE" && (mode == "ANY" || !c.lastIsResponse) {
		for _, f := range funcs {
			if len(allowed) == 0 || slicesContains(allowed, f.name) {
				c.calls = append(c.calls, f)
			}
		}
	}
	return c, nil
}

func slicesContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// readContents checks the contents and counts their prompt tokens.
func (c *geminiCall) readContents(contents gjson.Result) error {
	if !contents.IsArray() {
		return errors.New("Invalid value at 'contents': expected a list.")
	}
	var err error
	i := 0
	contents.ForEach(func(_, ct gjson.Result) bool {
		at := "contents[" + strconv.Itoa(i) + "]"
		i++
		switch role := ct.Get("role").Str; role {
		case "", "user", "model":
		default:
			err = fmt.Errorf("Please use a valid role: user, model. (%s.role is %q)", at, role)
			return false
		}
		var n int
		n, c.lastIsResponse, err = contentTokens(at, ct)
		c.promptTokens += n
		return err == nil
	})
	return err
}

// contentTokens checks one Content and counts it: 3 + the words of its text parts. It also tells
// whether the content answers a function call.
func contentTokens(at string, ct gjson.Result) (int, bool, error) {
	parts := ct.Get("parts")
	if !parts.IsArray() || len(parts.Array()) == 0 {
		return 0, false, fmt.Errorf("* GenerateContentRequest.%s.parts: contents.parts must not be empty.", at)
	}
	n, isResponse := 3, false
	var err error
	j := 0
	parts.ForEach(func(_, p gjson.Result) bool {
		pat := at + ".parts[" + strconv.Itoa(j) + "]"
		j++
		data := 0
		p.ForEach(func(k, v gjson.Result) bool {
			switch {
			case geminiPartFields[k.Str]:
				data++
			case k.Str == "thought" || k.Str == "thoughtSignature" || k.Str == "videoMetadata":
			default:
				err = unknownName(k.Str, pat)
			}
			return err == nil
		})
		switch {
		case err != nil:
		case data != 1:
			err = fmt.Errorf("* GenerateContentRequest.%s.data: required oneof field 'data' must have one initialized field", pat)
		case p.Get("inlineData").Exists() && (p.Get("inlineData.mimeType").Str == "" || p.Get("inlineData.data").Str == ""):
			err = fmt.Errorf("* GenerateContentRequest.%s.inline_data: mimeType and data are required", pat)
		case p.Get("fileData").Exists() && p.Get("fileData.fileUri").Str == "":
			err = fmt.Errorf("* GenerateContentRequest.%s.file_data.file_uri: a file uri is required", pat)
		case p.Get("functionCall").Exists() && (p.Get("functionCall.name").Str == "" || p.Get("functionCall.args").Exists() && !p.Get("functionCall.args").IsObject()):
			err = fmt.Errorf("* GenerateContentRequest.%s.function_call: name is required and args must be an object", pat)
		case p.Get("functionResponse").Exists():
			if p.Get("functionResponse.name").Str == "" || !p.Get("functionResponse.response").IsObject() {
				err = fmt.Errorf("* GenerateContentRequest.%s.function_response: name is required and response must be an object", pat)
			}
			isResponse = true
		default:
			n += words(p.Get("text").Str)
		}
		return err == nil
	})
	return n, isResponse, err
}

// readFunctions collects the function declarations and checks their schemas.
func readFunctions(tools gjson.Result) ([]geminiFunc, error) {
	var funcs []geminiFunc
	var err error
	ti := 0
	tools.ForEach(func(_, t gjson.Result) bool {
		fi := 0
		t.Get("functionDeclarations").ForEach(func(_, d gjson.Result) bool {
			at := "tools[" + strconv.Itoa(ti) + "].function_declarations[" + strconv.Itoa(fi) + "]"
			fi++
			if d.Get("name").Str == "" {
				return setErr(&err, fmt.Errorf("* GenerateContentRequest.%s.name: A name is required.", at))
			}
			params := d.Get("parameters")
			if params.Exists() {
				if err = checkSchema(params, at+".parameters"); err != nil {
					return false
				}
			}
			funcs = append(funcs, geminiFunc{name: d.Get("name").Str, params: params})
			return true
		})
		ti++
		return err == nil
	})
	return funcs, err
}

func setErr(dst *error, err error) bool {
	*dst = err
	return false
}

// checkSchema rejects the JSON Schema keywords Gemini's Schema does not know.
func checkSchema(s gjson.Result, at string) error {
	if !s.IsObject() {
		return nil
	}
	var err error
	s.ForEach(func(k, v gjson.Result) bool {
		switch {
		case geminiSchemaRejects[k.Str]:
			err = unknownName(k.Str, at)
		case k.Str == "properties":
			v.ForEach(func(name, ps gjson.Result) bool {
				err = checkSchema(ps, at+".properties["+name.Str+"]")
				return err == nil
			})
		case k.Str == "items":
			err = checkSchema(v, at+".items")
		case k.Str == "anyOf":
			v.ForEach(func(_, alt gjson.Result) bool {
				err = checkSchema(alt, at+".any_of")
				return err == nil
			})
		}
		return err == nil
	})
	return err
}
