package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/redact"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/messages"
	"github.com/llmgate/llmgate/quota"
)

// Anthropic's Messages API (POST /v1/messages and /v1/messages/count_tokens) is a dialect of the
// request path, not a second one: its front reads what the path needs from the Messages body
// (model, stream, max_tokens), checks what would make Anthropic answer 400 before anything is
// spent, and then the request takes the path every endpoint takes (auth, admission, routing,
// failover, settle, the one usage record). What differs is at the edges:
//
//   - deployments whose provider speaks the Messages API (providers.NativeMessages: Anthropic's,
//     the mock) get the body as it came but the model, with the client's anthropic-version and
//     anthropic-beta, and their answer is relayed as it comes, every SSE event with its event
//     line; the usage is read from message_start and message_delta (or the whole answer);
//   - the others get the request translated to chat completions and answer through the
//     translation back (messages_translate.go);
//   - every error the gateway makes is rendered in Anthropic's shape with Anthropic's statuses
//     (writeError's dialect switch, anthropicError), inside a stream as an `error` event, and
//     admission adds Anthropic's rate-limit headers to OpenAI's.

// dialect is the wire format a route answers in: its error bodies, its stream error events, its
// rate-limit headers.
type dialect uint8

const (
	dialectOpenAI dialect = iota
	dialectAnthropic
)

// ctxDialect is the gin context key of a route's dialect; absent means OpenAI.
const ctxDialect = "llmgate.dialect"

// anthropicFront marks the Messages routes: their errors, from the first (a missing key) on, are
// Anthropic's, and each answer carries the gateway's request id as Anthropic's request-id header
// too.
func anthropicFront(c *gin.Context) {
	c.Set(ctxDialect, dialectAnthropic)
	c.Writer.Header().Set("Request-Id", metaOf(c).requestID)
	c.Next()
}

// dialectOf is the dialect of c's route.
func dialectOf(c *gin.Context) dialect {
	if v, ok := c.Get(ctxDialect); ok {
		return v.(dialect)
	}
	return dialectOpenAI
}

// anthropicVersionDefault is the anthropic-version sent upstream when the client sent none (curl
// users forget it; every SDK sends it). Anthropic itself would refuse such a request; the
// gateway serves it as the version its translation speaks.
const anthropicVersionDefault = "2023-06-01"

// knownBetas are the anthropic-beta values the gateway lets through (with gateway.anthropic_betas
// added): the betas Claude Code and the SDKs send, as PROVIDERS-2.md lists them, and Anthropic's
// documented ones. Anthropic-compatible clouds refuse a value they do not know, and so does the
// gateway, before any upstream call: a typo is caught at once and costs nothing.
var knownBetas = map[string]bool{
	// Claude Code's (captured).
	"claude-code-20250219": true, "interleaved-thinking-2025-05-14": true, "fine-grained-tool-streaming-2025-05-14": true,
	"context-management-2025-06-27": true, "effort-2025-11-24": true, "oauth-2025-04-20": true,
	// Documented by Anthropic.
	"message-batches-2024-09-24": true, "prompt-caching-2024-07-31": true, "computer-use-2024-10-22": true,
	"computer-use-2025-01-24": true, "pdfs-2024-09-25": true, "token-counting-2024-11-01": true,
	"token-efficient-tools-2025-02-19": true, "output-128k-2025-02-19": true, "files-api-2025-04-14": true,
	"mcp-client-2025-04-04": true, "dev-full-thinking-2025-05-14": true, "code-execution-2025-05-22": true,
	"extended-cache-ttl-2025-04-11": true, "context-1m-2025-08-07": true, "model-context-window-exceeded-2025-08-26": true,
	"skills-2025-10-02": true, "structured-outputs-2025-11-13": true,
}

// checkBetas refuses an anthropic-beta header naming a beta the gateway does not know.
func (x *exchange) checkBetas() error {
	for _, v := range x.c.Request.Header.Values("Anthropic-Beta") {
		for _, b := range strings.Split(v, ",") {
			b = strings.TrimSpace(b)
			if b == "" || knownBetas[b] || x.g.betas[b] {
				continue
			}
			return newError(http.StatusBadRequest, api.TypeInvalidRequest, "unknown_beta", "anthropic-beta",
				"Unexpected value(s) `"+b+"` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header.")
		}
	}
	return nil
}

// messagesHeader is the header sent with a Messages request to a deployment that speaks the
// Messages API: the path's own (trace context, request id), the client's anthropic-version (one
// value, never appended to: Anthropic refuses a repeated one) and anthropic-beta.
func (x *exchange) messagesHeader(hdr http.Header) http.Header {
	out := hdr.Clone()
	v := x.c.Request.Header.Get("Anthropic-Version")
	if v == "" {
		v = anthropicVersionDefault
	}
	out.Set("Anthropic-Version", v)
	if b := x.c.Request.Header.Values("Anthropic-Beta"); len(b) > 0 {
		out["Anthropic-Beta"] = b
	}
	return out
}

// checkMessagesBody refuses, in the gateway, what Anthropic would refuse with a 400 and what the
// translation could not carry: a body that is not a Messages request (messages not an array of
// user and assistant turns, a missing or non-positive max_tokens outside count_tokens), and a
// tool_result answering no tool_use of the assistant turn before it. Nothing is spent on it and
// no upstream is called. Everything else is left to the upstream, so that a passthrough
// deployment gets the features the gateway does not know.
func checkMessagesBody(body []byte, counting bool) error {
	bad := func(param, msg string) error {
		return newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", param, msg)
	}
	f := gjson.GetManyBytes(body, "messages", "max_tokens", "system")
	if !f[0].IsArray() {
		return bad("messages", "messages: Field required (an array of messages).")
	}
	if m := f[1]; !counting && (m.Type != gjson.Number || m.Int() < 1 || float64(m.Int()) != m.Num) {
		return bad("max_tokens", "max_tokens: Field required (a positive integer).")
	}
	if s := f[2]; s.Exists() && s.Type != gjson.String && !s.IsArray() {
		return bad("system", "system: must be a string or an array of text blocks.")
	}
	var err error
	var calls map[string]bool // the tool_use ids of the assistant turn just before
	f[0].ForEach(func(i, m gjson.Result) bool {
		at := "messages." + i.String()
		role := m.Get("role").Str
		if !m.IsObject() || (role != "user" && role != "assistant") {
			err = bad(at+".role", at+".role: must be \"user\" or \"assistant\".")
			return false
		}
		content := m.Get("content")
		if content.Type != gjson.String && !content.IsArray() {
			err = bad(at+".content", at+".content: must be a string or an array of content blocks.")
			return false
		}
		next := map[string]bool{}
		if !content.IsArray() {
			calls = nil
			return true
		}
		content.ForEach(func(j, b gjson.Result) bool {
			switch b.Get("type").Str {
			case "tool_use", "server_tool_use":
				next[b.Get("id").Str] = true
			case "tool_result":
				if id := b.Get("tool_use_id").Str; role != "user" || !calls[id] {
					err = bad(at+".content."+j.String(), at+".content."+j.String()+": unexpected `tool_use_id` found in `tool_result` blocks: "+id+
						". Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
				}
			case "":
				if !b.IsObject() {
					err = bad(at+".content."+j.String(), at+".content."+j.String()+": must be a content block (an object with a type).")
				}
			}
			return err == nil
		})
		if role == "assistant" {
			calls = next
		} else {
			calls = nil
		}
		return err == nil
	})
	return err
}

// statusOverloaded is Anthropic's 529: the API is temporarily overloaded, retry later.
const statusOverloaded = messages.StatusOverloaded

// anthropicError is how an error the gateway answers with reads in Anthropic's dialect: its
// status and Anthropic's error type. The status is the OpenAI dialect's, but two cases:
//   - every 503 the gateway makes (every deployment's breaker open, every deployment disabled,
//     the key store down, the process shutting down) is 529 overloaded_error, Anthropic's "retry
//     later" that its clients (Claude Code among them) back off and retry on;
//   - an upstream that said overloaded_error (Anthropic's 529, relayed by the gateway as a 502
//     once no other deployment could serve) is 529 overloaded_error as well.
//
// The type follows the status, except that an upstream's own Anthropic type is kept (its
// clients match on it) and a spent budget or credit balance (429 insufficient_quota) is
// billing_error.
func anthropicError(status int, e api.ErrorObject) (int, string) {
	switch {
	case status == http.StatusServiceUnavailable || e.Type == "overloaded_error":
		return statusOverloaded, "overloaded_error"
	case e.Type == api.TypeInsufficientQuota:
		return status, "billing_error"
	case anthropicTypes[e.Type] && e.Type != api.TypeInvalidRequest:
		return status, e.Type
	}
	return status, messages.ErrorType(status)
}

// anthropicTypes are Anthropic's error types.
var anthropicTypes = map[string]bool{
	"invalid_request_error": true, "authentication_error": true, "billing_error": true, "permission_error": true,
	"not_found_error": true, "request_too_large": true, "rate_limit_error": true, "timeout_error": true,
	"api_error": true, "overloaded_error": true,
}

// writeAnthropicError answers with e in Anthropic's shape (see anthropicError), with a
// retry-after on a 429 or 529 that knows when to retry.
func writeAnthropicError(c *gin.Context, status int, e api.ErrorObject, retryAfter time.Duration) {
	status, typ := anthropicError(status, e)
	b := messages.ErrorBody(typ, e.Message)
	h := c.Writer.Header()
	if retryAfter > 0 && (status == http.StatusTooManyRequests || status == statusOverloaded) {
		h.Set("Retry-After", retryAfterSeconds(retryAfter))
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	c.Writer.WriteHeader(status)
	_, _ = c.Writer.Write(b)
}

// anthropicErrorEvent is an `error` event of a Messages stream.
func anthropicErrorEvent(status int, e api.ErrorObject) []byte {
	_, typ := anthropicError(status, e)
	return messages.AppendErrorEvent(nil, typ, e.Message)
}

// setAnthropicRateLimits adds Anthropic's rate-limit headers beside OpenAI's: the request and
// token windows of the subject closest to its limit, the reset as an RFC 3339 time.
func setAnthropicRateLimits(h http.Header, res quota.Result, now time.Time) {
	for _, w := range [...]struct {
		name string
		win  quota.Window
	}{{"requests", res.Requests}, {"tokens", res.Tokens}} {
		if w.win.Limit <= 0 {
			continue
		}
		h.Set("Anthropic-Ratelimit-"+w.name+"-Limit", strconv.FormatInt(w.win.Limit, 10))
		h.Set("Anthropic-Ratelimit-"+w.name+"-Remaining", strconv.FormatInt(max(w.win.Remaining, 0), 10))
		h.Set("Anthropic-Ratelimit-"+w.name+"-Reset", now.Add(w.win.Reset).UTC().Format(time.RFC3339))
	}
}

// messagesUsage is Anthropic's token counts of one answer, read as the anthropic adapter reads
// them (message_delta's cumulative totals replace message_start's).
type messagesUsage struct{ anthropic.Usage }

// usage is the record's view, as the anthropic adapter reports it in OpenAI's terms: the prompt
// is every input token, cache reads and writes included (Anthropic's input_tokens excludes
// both); the cached tokens are the cache reads, the cache writes are priced apart.
func (c *messagesUsage) usage() usage {
	return usage{prompt: c.Input + c.CacheRead + c.CacheWrite, completion: c.Output, cached: c.CacheRead,
		cacheWrite: c.CacheWrite, found: c.Found}
}

// addMessage appends the answer text of a whole Message: its text, thinking and tool inputs.
func (d *delivered) addMessage(body []byte) {
	gjson.GetBytes(body, "content").ForEach(func(_, b gjson.Result) bool {
		d.buf.WriteString(b.Get("text").Str)
		d.buf.WriteString(b.Get("thinking").Str)
		if in := b.Get("input"); in.Exists() {
			d.buf.WriteString(in.Raw)
		}
		return true
	})
}

// relayMessageWhole notes what a whole Message tells: its usage, else its text.
func (x *exchange) relayMessageWhole(b []byte, out *outcome) {
	var u messagesUsage
	u.Update(gjson.GetBytes(b, "usage"))
	if out.usage = u.usage(); !out.usage.found {
		out.answer.addMessage(b)
	}
}

// messagesStream is what the relay follows of a Messages stream.
type messagesStream struct {
	usage messagesUsage
	// final: a message_delta brought the answer's usage; until then the output count is
	// message_start's, which the answer delivered may already exceed.
	final bool
	// translated is the translation of a chat stream, for a deployment that speaks only chat;
	// nil for a stream relayed as it came.
	translated messagesTranslatedStream
}

// errorEvent renders an error the gateway ends a Messages stream with.
func (m *messagesStream) errorEvent(status int, e api.ErrorObject) []byte {
	if m.translated != nil {
		_, typ := anthropicError(status, e)
		return m.translated.AppendError(nil, typ, e.Message)
	}
	return anthropicErrorEvent(status, e)
}

// messagesEvent handles one event of a Messages stream: passed on as it came (with its event
// line), after noting the usage (message_start, message_delta) and the answer text of deltas.
// message_stop is the stream's clean end; an error event ends it as an upstream failure.
func (s *sseRelay) messagesEvent(e sse.Event) error {
	ev, payload := e.Raw, e.Data
	if payload == nil {
		return s.write(append(ev, '\n'))
	}
	typ := string(e.Name)
	if typ == "" {
		typ = gjson.GetBytes(payload, "type").Str
	}
	m := s.msgs
	switch typ {
	case "message_start":
		m.usage.Update(gjson.GetBytes(payload, "message.usage"))
	case "message_delta":
		u := gjson.GetBytes(payload, "usage")
		m.usage.Update(u)
		m.final = m.final || u.IsObject()
	case "content_block_delta":
		d := gjson.GetBytes(payload, "delta")
		for _, k := range [...]string{"text", "partial_json", "thinking"} {
			s.out.answer.buf.WriteString(d.Get(k).Str)
		}
	case "message_stop":
		s.sawDone = true
	case "error":
		s.upErr = true // error text is never counted as answer
		if msg := gjson.GetBytes(payload, "error.message"); msg.Type == gjson.String {
			if clean := redact.Credentials(msg.Str, s.secrets...); clean != msg.Str {
				if out, err := sjson.SetBytes(payload, "error.message", clean); err == nil {
					return s.write(rewriteEvent(ev, out))
				}
			}
		}
	}
	switch {
	case m.translated != nil: // its events carry zeros until the end: the upstream's usage it is
		s.out.usage = m.translated.Usage()
	case m.usage.Found:
		s.out.usage = m.usage.usage()
		s.out.usage.estimateOutput = !m.final
	}
	return s.write(append(ev, '\n'))
}

// messagesCandidates decides which of a model's deployments may serve a Messages request and how:
// those that speak the Messages API get it as it came; the others get its translation to chat
// completions, made here once for all of them (so failover may cross from one kind to the
// other). A request the translation refuses goes only to the deployments that speak the
// Messages API, and with none is answered with the translation's 400. count_tokens goes to the
// deployments that speak the Messages API, else is counted by the gateway (req.countLocally).
// Refusals come here, before admission: nothing is consumed and no upstream is called.
func (x *exchange) messagesCandidates(req *request, cands []*providers.Deployment) ([]*providers.Deployment, error) {
	if err := x.checkBetas(); err != nil {
		return nil, err
	}
	native := make([]*providers.Deployment, 0, len(cands))
	for _, d := range cands {
		if providers.NativeMessages(d.Provider) {
			native = append(native, d)
		}
	}
	if req.counting {
		if len(native) > 0 {
			return native, nil
		}
		tr, err := translateMessages(req.body, true)
		if err != nil {
			return nil, err
		}
		req.msgs, req.countLocally = tr, true
		return cands, nil
	}
	if len(native) == len(cands) {
		return native, nil
	}
	tr, err := translateMessages(req.body, false)
	switch {
	case err == nil:
		req.msgs = tr
		return cands, nil
	case len(native) > 0:
		return native, nil
	}
	return nil, err
}

// countTokens answers count_tokens for a model none of whose deployments speaks the Messages
// API: the gateway's tokenizer counts the translated chat request, for the model's first
// deployment's upstream model. No upstream is called.
func (x *exchange) countTokens(req request, cands []*providers.Deployment) outcome {
	model := req.model
	if len(cands) > 0 {
		model = cands[0].Model
	}
	n := x.g.tokens.Prompt(string(providers.ChatCompletions), model, req.msgs.chat)
	var out outcome
	x.sendWhole(&out, http.StatusOK, "application/json", append(strconv.AppendInt([]byte(`{"input_tokens":`), n, 10), '}'))
	return out
}

// nativeFirst orders the deployments that speak the Messages API before the others of the same
// priority, keeping the balancer's order within each kind: a Messages request goes through
// translation only when no deployment of its priority can take it as it is.
func nativeFirst(cands []*providers.Deployment) []*providers.Deployment {
	out := make([]*providers.Deployment, 0, len(cands))
	for i := 0; i < len(cands); {
		j := i
		for j < len(cands) && cands[j].Priority == cands[i].Priority {
			j++
		}
		for _, native := range [...]bool{true, false} {
			for _, d := range cands[i:j] {
				if providers.NativeMessages(d.Provider) == native {
					out = append(out, d)
				}
			}
		}
		i = j
	}
	return out
}
