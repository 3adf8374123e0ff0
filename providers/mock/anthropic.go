package mock

// This file and anthropic_render.go simulate Anthropic's Messages API on POST /v1/messages, so
// the anthropic adapter can be tested end to end against the same deterministic upstream as the
// OpenAI side (same Options, the same "mock" overrides, the same /_mock/ stats and request log).
//
// Requests are checked as Anthropic checks them, so that a bug in a translator shows up as a 400
// rather than as a silently wrong answer: the anthropic-version header is required; with
// RequireKey (or the require_key override) x-api-key must carry the key; unknown top-level
// fields, roles other than user/assistant, empty text blocks, images without a proper source,
// temperatures outside 0–1, and tool_use ids without their tool_result blocks in the next turn
// (or tool results answering no call) are rejected.
//
// Answers follow the OpenAI side's rules (see the package doc): a text answer is the same
// deterministic words, cut by max_tokens (stop_reason max_tokens) or by the first word equal to
// one of stop_sequences (stop_reason stop_sequence, the word excluded). The usage counts:
//
//   - input: the system prompt counts as one message; every message 3 + the words of its text,
//     including the text of tool results; images, documents, tool calls and tools are free.
//   - prompt caching: the tokens up to the end of the last block carrying cache_control (system
//     first, then the messages) are the cached prefix, whatever their length. The first request
//     with a given prefix (same model, same system and messages up to the marked one) reports them
//     as cache_creation_input_tokens, the next ones as cache_read_input_tokens; input_tokens is
//     the rest. Reset forgets the cache.
//   - output: the answer's words; a tool_use block counts ceil(len(input JSON) / 4).
//
// Tools: the answer calls tools when the request has tools and tool_choice is any or tool, or is
// auto (or absent) and the last message is a user turn without tool results, so a tool round
// trip ends with a text answer. The tools called are the named one (tool_choice tool), else every
// tool whose name appears in the text of the last user message, else the first tool; with
// disable_parallel_tool_use only the first of them. Each input has every property of the tool's
// input_schema: strings "mock", numbers and integers 1, booleans true, arrays [], objects {},
// anything else null.
//
// Faults: status answers an Anthropic error body ({"type":"error","error":{"type","message"}})
// with the error type of that status (529 overloaded_error, 429 rate_limit_error…); error_body
// sends the body given; fail_after ends the stream after that many content deltas with an
// `error` event (overloaded_error) instead of dropping the connection, as Anthropic reports a
// failure mid-stream; no_usage leaves usage out of the answer and of the stream events.

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/tidwall/gjson"
)

// messagesCall is what one Messages request asks for. Its strings point into the request body.
type messagesCall struct {
	model      string // raw JSON string
	stream     bool
	maxTokens  int
	prompt     int // every input token
	prefix     int // tokens of the cached prefix
	cacheKey   uint64
	cached     bool // some block carries cache_control
	stops      []string
	tools      []anthropicTool
	choice     string // auto, any, tool, none ("" = auto)
	named      string
	noParallel bool
	lastUser   string // text of the last message when it is a user turn
	lastIsUser bool
	lastHasRes bool // the last user turn carries tool results
	b          behaviour
	// expired, when set (Vertex AI), ends a stream with an authentication error once it reports
	// true: the access token has lapsed.
	expired func() bool
}

type anthropicTool struct {
	name   string
	schema gjson.Result
}

// promptCache remembers the cached prefixes a handler has seen.
type promptCache struct {
	mu   sync.Mutex
	seen map[uint64]struct{}
}

// maxCachedPrefixes bounds the cache; when full it starts over.
const maxCachedPrefixes = 100_000

// hit records key and reports whether it was there already.
func (c *promptCache) hit(key uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[key]; ok {
		return true
	}
	if c.seen == nil || len(c.seen) >= maxCachedPrefixes {
		c.seen = make(map[uint64]struct{})
	}
	c.seen[key] = struct{}{}
	return false
}

func (c *promptCache) reset() {
	c.mu.Lock()
	c.seen = nil
	c.mu.Unlock()
}

// serveMessages is POST /v1/messages (and /v1/messages/count_tokens), counted in the same stats as the OpenAI endpoints. A
// fail_after stream ends with an error event, not a dropped connection.
func (h *Handler) serveMessages(w http.ResponseWriter, r *http.Request, v *vertexCall) {
	h.stats.requests.Add(1)
	h.stats.inFlight.Add(1)
	out := h.answerMessages(w, r, v)
	h.stats.inFlight.Add(-1)
	h.stats.count(out)
}

// answerMessages answers the Messages API, or Vertex AI's rawPredict and streamRawPredict of
// Anthropic's models when v is set.
func (h *Handler) answerMessages(w http.ResponseWriter, r *http.Request, v *vertexCall) outcome {
	counting := r.URL.Path == "/v1/messages/count_tokens"
	buf := getBuffer()
	defer putBuffer(buf)
	body, err := readBody(*buf, r.Body, r.ContentLength)
	*buf = body
	h.log.record(r.URL.Path, r.Header, body)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return writeAnthropicError(w, http.StatusRequestEntityTooLarge, 0, "request body larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
		}
		return outcomeCanceled
	}
	var expired func() bool
	urlModel := ""
	if v != nil {
		var o outcome
		var answered bool
		if expired, o, answered = h.vertexAuth(w, r, false); answered {
			return o
		}
		urlModel = v.model
	} else if key := strings.TrimPrefix(h.wantAuth, "Bearer "); key != "" && r.Header.Get("X-Api-Key") != key {
		return writeAnthropicError(w, http.StatusUnauthorized, 0, "invalid x-api-key")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeAnthropicError(w, http.StatusMethodNotAllowed, 0, "method not allowed; use POST")
	}
	if r.Header.Get("Anthropic-Version") == "" && v == nil {
		return writeAnthropicError(w, http.StatusBadRequest, 0, "anthropic-version: header is required")
	}
	c, err := parseMessagesCall(unsafe.String(unsafe.SliceData(body), len(body)), h.base, counting, urlModel)
	if err == nil && v != nil && c.stream != (v.method == "streamRawPredict") {
		err = errors.New("stream: must be true for streamRawPredict and absent for rawPredict")
	}
	if err != nil {
		return writeAnthropicError(w, http.StatusBadRequest, 0, err.Error())
	}
	c.expired = expired
	if counting { // the input as a request would count it, without the cache's split
		return writeJSON(w, append(strconv.AppendInt([]byte(`{"input_tokens":`), int64(c.prompt), 10), '}'))
	}
	if c.b.requireKey != "" && v == nil && r.Header.Get("X-Api-Key") != c.b.requireKey {
		return writeAnthropicError(w, http.StatusUnauthorized, 0, "invalid x-api-key")
	}
	seq := h.seq.Add(1)
	wt := waiter{ctx: r.Context()}
	defer wt.stop()
	if !wt.wait(c.b.hang) {
		return outcomeCanceled
	}
	if o, ok := h.fault(w, &c.b, seq, func(status int) outcome { return writeAnthropicError(w, status, seq, "") }); ok {
		return o
	}
	u := anthropicUsage{input: c.prompt}
	if c.cached {
		u.input -= c.prefix
		if h.cache.hit(c.cacheKey) {
			u.read = c.prefix
		} else {
			u.write = c.prefix
		}
	}
	a := c.plan()
	u.output = a.tokens
	if c.stream {
		return writeMessagesStream(w, &wt, &c, &a, u, seq, nil)
	}
	if !wt.wait(c.b.latency) {
		return outcomeCanceled
	}
	out := getBuffer()
	defer putBuffer(out)
	*out = appendMessage(*out, &c, &a, u, seq)
	return writeJSON(w, *out)
}

// answerPlan is the content of an answer.
type answerPlan struct {
	tokens     int // output tokens
	chunks     int // text deltas
	stopReason string
	stopSeq    string          // the stop sequence met, if any
	calls      []anthropicTool // tool_use blocks, instead of text
	inputs     []string        // their input JSON
}

// plan decides the answer: tool calls, or text cut by max_tokens or a stop sequence.
func (c *messagesCall) plan() answerPlan {
	if calls := c.toolCalls(); len(calls) > 0 {
		a := answerPlan{stopReason: "tool_use", calls: calls, chunks: len(calls)}
		for _, t := range calls {
			in := toolInput(t.schema)
			a.inputs = append(a.inputs, in)
			a.tokens += (len(in) + 3) / 4
		}
		return a
	}
	oc := call{maxTokens: c.maxTokens, b: c.b}
	tokens, _, finish := oc.plan()
	a := answerPlan{tokens: tokens, stopReason: "end_turn"}
	if finish == "length" {
		a.stopReason = "max_tokens"
	}
	for j := 0; j < tokens; j++ {
		if w := vocabulary[j%len(vocabulary)]; contains(c.stops, w) {
			a.tokens, a.stopReason, a.stopSeq = j, "stop_sequence", w
			break
		}
	}
	tpc := c.b.tokensPerChunk
	a.chunks = (a.tokens + tpc - 1) / tpc
	return a
}

// toolCalls applies the package's deterministic tool rule.
func (c *messagesCall) toolCalls() []anthropicTool {
	if len(c.tools) == 0 {
		return nil
	}
	switch c.choice {
	case "none":
		return nil
	case "tool":
		for _, t := range c.tools {
			if t.name == c.named {
				return []anthropicTool{t}
			}
		}
		return nil
	case "", "auto":
		if !c.lastIsUser || c.lastHasRes {
			return nil
		}
	}
	var out []anthropicTool
	for _, t := range c.tools {
		if strings.Contains(c.lastUser, t.name) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		out = c.tools[:1]
	}
	if c.noParallel {
		out = out[:1]
	}
	return out
}

// toolInput is the deterministic input of a tool: one value per input_schema property.
func toolInput(schema gjson.Result) string {
	var sb strings.Builder
	sb.WriteByte('{')
	n := 0
	schema.Get("properties").ForEach(func(k, p gjson.Result) bool {
		if n > 0 {
			sb.WriteByte(',')
		}
		n++
		sb.WriteString(k.Raw)
		sb.WriteByte(':')
		switch p.Get("type").Str {
		case "string":
			sb.WriteString(`"mock"`)
		case "number", "integer":
			sb.WriteString("1")
		case "boolean":
			sb.WriteString("true")
		case "array":
			sb.WriteString("[]")
		case "object":
			sb.WriteString("{}")
		default:
			sb.WriteString("null")
		}
		return true
	})
	sb.WriteByte('}')
	return sb.String()
}

// anthropicUsage is the usage of one answer.
type anthropicUsage struct {
	input, write, read, output int
}

// anthropicErrorType is the error type Anthropic uses for a status (PROVIDERS.md §3.7).
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// writeAnthropicError answers with Anthropic's error body. An empty msg is the simulated
// failure's text; seq, when set, names the request.
func writeAnthropicError(w http.ResponseWriter, status int, seq uint64, msg string) outcome {
	if msg == "" {
		text := http.StatusText(status)
		if status == 529 {
			text = "Overloaded"
		}
		msg = "mock: simulated " + strconv.Itoa(status) + " " + text
	}
	b := make([]byte, 0, 160)
	b = append(b, `{"type":"error","error":{"type":"`...)
	b = append(b, anthropicErrorType(status)...)
	b = append(b, `","message":`...)
	q, _ := json.Marshal(msg) // messages may quote request fields
	b = append(b, q...)
	b = append(b, `},"request_id":"req_mock_`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `"}`...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Request-Id", "req_mock_"+strconv.FormatUint(seq, 10))
	if status == http.StatusTooManyRequests || status == 529 {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return outcomeError
}
