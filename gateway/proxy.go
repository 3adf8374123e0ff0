package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unsafe"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/headers"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/outbound"
	"github.com/llmgate/llmgate/quota"
	"github.com/llmgate/llmgate/store"
)

// exchange is one authenticated request: what the steps of its path share and settle reads. The
// steps report how the request ended as an outcome value; the exchange holds only the request's
// facts, filled in as the path learns them (model, body, payer, lease), so that settle can free
// the lease and write the record whatever happened, a panic included. It is not safe for
// concurrent use.
type exchange struct {
	g     *Gateway
	c     *gin.Context
	ctx   context.Context
	ep    providers.Endpoint
	id    *Identity
	start time.Time
	label string // model label for metrics: the public model, or "unknown"

	traceparent string // sent upstream
	// span is the request's server span and attrs the attributes gathered for its end
	// (reqMeta.span, reqMeta.attrs); nil when tracing is off.
	span  trace.Span
	attrs *spanAttrs

	rec   store.UsageRecord
	body  []byte // the request body, for token estimation
	lease *quota.Lease
	// tokenWeight is the model's token multiplier, which the lease's tokens were counted at
	// (0 before admission: the tokens as they are).
	tokenWeight float64
	// payer is who pays for the request, as billing decided at admission.
	payer billing.Payer
	// answering is the deployment of the current upstream attempt.
	answering *providers.Deployment
	// lookup marks the requests relayed but never metered by tokens: the Responses API's
	// operations by id, and Messages count_tokens.
	lookup bool
	// unstored marks a Responses request with store:false: the upstream keeps no response, so
	// there is no route to remember.
	unstored bool
	// image is what an images/generations or edits request asks for, to count and price its answer.
	image imageRequest
	// audio is what an audio request brings to its metering: the upload's length, the speech
	// input's characters.
	audio audioFacts
	// translating is the translation the current attempt's deployment was sent (a chat-only
	// deployment serving the Responses API); nil when it was sent the request as it came.
	translating *translation
	// times is what the upstream attempts took, to tell the gateway's own time from theirs.
	times attemptTimes
	// msgsTranslating is the same for a Messages request (a deployment that speaks only chat).
	msgsTranslating *messagesTranslation
	// serving is the public model whose deployments the request is being sent to: the requested
	// one, or a fallback.
	serving string
	// replay is what the response cache and the Idempotency-Key hold for the request; nil when
	// neither applies.
	replay *replayState
	// variantModel is the public model an A/B experiment sent the request to ("" when none did),
	// whose price applies when its upstream model has none.
	variantModel string
	// aside: the request path runs on a goroutine of its own (relayAside), and the answer an
	// upstream gives is handed back (handed) for the handler's goroutine to relay.
	aside  bool
	handed handoff
	// streamBegun: the SSE answer's headers are out (streamHeaders, flushed aside).
	streamBegun bool
}

// outcome is how a request ended, as the step that ended it reports it: the status and error
// type the record carries, and what the answer delivered. settle turns it into the usage record,
// the quota settlement and the metrics.
type outcome struct {
	status    int
	errType   string
	errCode   string    // the code of the error answer, when the answer was one the gateway made
	firstByte time.Time // when the first byte of the answer was written; zero when none was
	usage     usage     // as the upstream reported it
	answer    delivered // the answer text that reached the client, for counting without usage
	// d is the deployment of the last upstream attempt; nil when none was made.
	d *providers.Deployment
	// units is what the answer holds beyond tokens (the images of an image answer, the seconds
	// of audio a transcription reports).
	units billing.Units
	// unitsReported: the upstream's answer gave the units (a transcription's duration), which
	// makes them the provider's usage.
	unitsReported bool
	// degraded: the answer is the model's degrade reply, never metered nor charged.
	degraded bool
}

// errTypeClientClosed is the record's error type of a client that went away (499).
const errTypeClientClosed = "client_closed"

// errTypeShutdown is the record's error type of a request cut because the process's drain time
// was up.
const errTypeShutdown = "gateway_shutdown"

// fail ends o with err. It is the one place that turns an error into the record's status and
// error type: classify's, client_closed for a client that went away, and gateway_shutdown for a
// request the drain deadline cut.
func (o *outcome) fail(err error) {
	status, body := classify(err)
	o.status, o.errType, o.errCode = status, body.Type, errorCode(body)
	switch {
	case status == StatusClientClosed:
		o.errType = errTypeClientClosed
	case errors.Is(err, errShuttingDown):
		o.errType = errTypeShutdown
	}
}

// cut reports whether the request was cut by the drain deadline (Gateway.CutRequests). Its
// cancelled context then looks like a client that went away, or an upstream read that failed.
func (x *exchange) cut() bool {
	return x.ctx.Err() != nil && errors.Is(context.Cause(x.ctx), errShuttingDown)
}

// failed is the outcome of a request that ends in err: the client gets err as its answer unless
// the answer has begun.
func (x *exchange) failed(err error) outcome {
	if x.cut() {
		err = errShuttingDown
	}
	var o outcome
	o.fail(err)
	if !x.c.Writer.Written() {
		x.serverTiming()
		writeError(x.c, err)
	}
	return o
}

// usage is the token counts found in an upstream answer.
type usage struct {
	prompt, completion, cached, reasoning int64
	// cacheWrite is the share of prompt written to the provider's prompt cache, priced apart.
	cacheWrite int64
	found      bool
	// estimateOutput: the answer's own count of output tokens never came (an Anthropic stream
	// cut before its message_delta, whose message_start counted the input): the output is the
	// larger of the count so far and the gateway's count of the answer delivered.
	estimateOutput bool
}

// parseUsage reads an OpenAI usage object, and the spellings of compatible providers: DeepSeek
// reports cached prompt tokens as prompt_cache_hit_tokens. Prompt tokens written to the cache are
// prompt_tokens_details.cache_write_tokens, as the anthropic adapter renders Anthropic's
// cache_creation_input_tokens.
func parseUsage(u gjson.Result) usage {
	if !u.IsObject() {
		return usage{}
	}
	if !u.Get("prompt_tokens").Exists() && u.Get("input_tokens").Exists() {
		// The image (and Responses) spelling: input_tokens and output_tokens.
		return usage{prompt: u.Get("input_tokens").Int(), completion: u.Get("output_tokens").Int(),
			cached:     u.Get("input_tokens_details.cached_tokens").Int(),
			cacheWrite: u.Get("input_tokens_details.cache_write_tokens").Int(), found: true}
	}
	out := usage{
		prompt:     u.Get("prompt_tokens").Int(),
		completion: u.Get("completion_tokens").Int(),
		cached:     u.Get("prompt_tokens_details.cached_tokens").Int(),
		reasoning:  u.Get("completion_tokens_details.reasoning_tokens").Int(),
		cacheWrite: u.Get("prompt_tokens_details.cache_write_tokens").Int(),
		found:      true,
	}
	if out.cached == 0 {
		out.cached = u.Get("prompt_cache_hit_tokens").Int()
	}
	return out
}

// relayHandler serves a relayed endpoint. An authenticated request is settled exactly once, in a
// defer, with the outcome relay returns (or a 500 if it panics).
func (g *Gateway) relayHandler(ep providers.Endpoint) gin.HandlerFunc {
	return func(c *gin.Context) {
		x, ok := g.authenticate(c, ep)
		if !ok {
			return
		}
		var out outcome
		defer x.settle(&out)
		x.relay(&out)
		if x.handed.resp != nil {
			x.answerHanded(&out)
		}
	}
}

// authenticate resolves the caller's key. Unauthenticated requests are answered here and leave
// no usage record; every authenticated one gets an exchange whose settle writes exactly one.
func (g *Gateway) authenticate(c *gin.Context, ep providers.Endpoint) (*exchange, bool) {
	sp := g.startSpan(c.Request.Context(), "auth")
	id, err := g.keys.resolve(c.Request.Context(), keyFromRequest(c.Request), c.Request.RemoteAddr)
	endSpan(sp, err)
	if err != nil {
		status, body := classify(err)
		writeError(c, err)
		g.metrics.requests.WithLabelValues(string(ep), "", statusLabel(status)).Inc()
		g.refused(c, ep, status, body.Type, errorCode(body))
		return nil, false
	}
	m := metaOf(c)
	x := &exchange{g: g, c: c, ctx: c.Request.Context(), ep: ep, id: id, start: m.start, label: "unknown", traceparent: m.traceparent, span: m.span, attrs: m.attrs}
	g.unsettled.Add(1) // until settle, which every caller defers at once
	x.rec = store.UsageRecord{
		RequestID:       m.requestID,
		ClientRequestID: m.clientRequestID,
		TraceID:         m.traceID,
		KeyID:           id.Key.ID,
		UserID:          id.Key.UserID,
		TenantID:        id.Key.TenantID,
		SessionID:       sessionID(c.GetHeader("X-Session-Id")),
		Endpoint:        string(ep),
		StartedAt:       x.start,
	}
	return x, true
}

// sessionID keeps a client's session header only when it is a sane identifier.
func sessionID(s string) string {
	if validClientRequestID(s) {
		return s
	}
	return ""
}

// relay is the request path of the relayed endpoints: read and check the body, route the model,
// decide who pays, admit, forward. Each step either hands the next what it needs or ends the
// request with an error, which becomes its outcome (written through out).
func (x *exchange) relay(out *outcome) {
	if isUpload(x.ep) {
		*out = x.relayUpload()
		return
	}
	body, err := x.readBody()
	if err != nil {
		*out = x.failed(err)
		return
	}
	if m := metaOf(x.c).pathModel; m != "" {
		body = withModel(body, m)
	}
	if mayStream(body) {
		*out = x.relayAside(func() outcome { return x.relayBody(body) })
		return
	}
	*out = x.relayBody(body)
}

// relayBody parses a JSON request body and goes on with it.
func (x *exchange) relayBody(body []byte) outcome {
	req, err := parseRequest(body, x.ep, x.g.bodies)
	if err != nil {
		return x.failed(err)
	}
	if req.stream && !x.aside { // a stream mayStream did not see
		return x.relayParsedAside(req)
	}
	return x.relayParsed(&req)
}

// relayParsedAside is relayParsed run aside. req comes by value, so that relayBody's own does not
// move to the heap for the closure, on every request.
func (x *exchange) relayParsedAside(req request) outcome {
	return x.relayAside(func() outcome { return x.relayParsed(&req) })
}

// mayStream reports whether a JSON body may ask for a stream, cheaply, before it is parsed: it
// names a member "stream" (or has the word in a string). A stream whose member name is spelled
// with escapes is missed here, and relayBody sets the rest of its path aside.
func mayStream(body []byte) bool {
	return bytes.Contains(body, streamMember)
}

var streamMember = []byte(`"stream"`)

// relayUpload is relay for a multipart upload, read into a spool that is removed when the
// request ends, once every attempt has sent it. An upload's path stays on the handler's
// goroutine, a streamed one too.
func (x *exchange) relayUpload() outcome {
	s, err := x.readUpload()
	if err != nil {
		return x.failed(err)
	}
	defer s.close()
	if m := metaOf(x.c).pathModel; m != "" {
		s.fields["model"] = m
	}
	req, err := uploadRequest(x.ep, s)
	if err != nil {
		return x.failed(err)
	}
	return x.relayParsed(&req)
}

// relayParsed goes on with a request relay has read and parsed.
func (x *exchange) relayParsed(r *request) outcome {
	req := *r
	x.rec.Model, x.rec.Stream = req.model, req.stream
	x.body, x.unstored = req.body, req.unstored
	x.traceRequest(req)
	if req.upload != nil && x.ep == providers.ImageEdits {
		// An edit's text is its prompt field: what the tokenizer counts when a streamed edit
		// ends without the upstream's usage.
		x.body, _ = sjson.SetBytes([]byte(`{}`), "prompt", req.upload.fields["prompt"])
	}
	cands, strategy, err := x.route(req.model)
	if err != nil {
		return x.failed(err)
	}
	switch {
	case x.ep == providers.Responses:
		if cands, err = x.responsesCandidates(&req, cands); err != nil {
			return x.failed(err)
		}
	case req.messages:
		if cands, err = x.messagesCandidates(&req, cands); err != nil {
			return x.failed(err)
		}
		x.lookup = req.counting
	case isMedia(x.ep):
		if cands, err = capable(cands, x.ep, req.model); err != nil {
			return x.failed(err)
		}
		x.image, x.audio = req.image, req.audioFacts()
	}
	sp := x.g.startSpan(x.ctx, "admission")
	payer, err := x.whoPays()
	if err != nil {
		endSpan(sp, err)
		return x.failed(err)
	}
	x.payer = payer
	if out, done := x.beginReplay(req); done {
		endSpan(sp, nil)
		return out
	}
	lease, err := x.admit(req, cands, payer)
	endSpan(sp, err)
	if err != nil {
		return x.failed(err)
	}
	x.lease = lease
	if x.replaying() {
		return x.replayAnswer()
	}
	x.startCapture()
	if req.countLocally {
		return x.countTokens(req, cands)
	}
	return x.forward(req, strategy, cands)
}

// route finds the deployments that may serve model, with the model's strategy, or the error that
// answers instead: the key may not use the model (403), no such model (404), or every deployment
// of it is disabled (503).
func (x *exchange) route(model string) ([]*providers.Deployment, string, error) {
	router := x.g.router.Load()
	if router.Has(model) {
		x.label = model
	}
	if !x.id.Allows(model) {
		return nil, "", newError(http.StatusForbidden, api.TypePermission, "model_not_allowed", "model", "This API key is not allowed to use the model `"+model+"`.")
	}
	// An experiment running on the model routes the caller to its variant: another public model
	// (the key's allowance is the requested model's), or one deployment. A variant whose model
	// the table no longer has is not assigned.
	target, only := model, ""
	if a, ok := x.g.experiments.Load().Assign(model, x.rec.TenantID, x.rec.KeyID, x.rec.UserID); ok && router.Has(a.Model) {
		x.rec.Experiment, x.rec.Variant, x.variantModel = a.Experiment, a.Variant, a.Model
		target, only = a.Model, a.Deployment
	}
	cands := router.Candidates(target)
	if only != "" { // a new slice: the router may hand out its own
		i := slices.IndexFunc(cands, func(d *providers.Deployment) bool { return d.ID == only })
		if i < 0 {
			cands = nil
		} else {
			cands = []*providers.Deployment{cands[i]}
		}
	}
	if len(cands) == 0 {
		if router.Has(model) { // the model exists, but every deployment of it is disabled
			return nil, "", errAllDisabled
		}
		return nil, "", newError(http.StatusNotFound, api.TypeInvalidRequest, "model_not_found", "model", "The model `"+model+"` does not exist or you do not have access to it.")
	}
	return cands, router.Strategy(target), nil
}

// settle runs once per authenticated request, deferred by its handler with the outcome the
// handler will have: it survives panics (the request ends 500, with what its steps knew of the
// answer, see carry), frees the quota lease with a context that outlives the request, and emits
// the one usage record.
func (x *exchange) settle(out *outcome) {
	p := recover()
	defer x.g.unsettled.Add(-1)
	if p != nil {
		stack := []byte(nil)
		if sp, ok := p.(*stepPanic); ok {
			p, stack, *out = sp.value, sp.stack, sp.out
		} else {
			stack = debug.Stack()
		}
		x.g.log.Error("panic serving request", "request_id", x.rec.RequestID, "panic", p, "stack", string(stack))
		answer := x.failed(errInternal)
		out.status, out.errType, out.errCode = answer.status, answer.errType, answer.errCode
	}
	if x.c.Writer.Written() {
		x.c.Writer.Flush() // the answer leaves before usage and quota settlement run
	}
	sp := x.g.startSpan(x.ctx, "settlement")
	end := time.Now()
	r := &x.rec
	r.Status, r.ErrorType = out.status, out.errType
	r.EndedAt = end
	r.LatencyMS = end.Sub(x.start).Milliseconds()
	if d := out.d; d != nil {
		r.Provider, r.Deployment, r.UpstreamModel = d.ProviderName, d.ID, d.Model
		r.ServedModel = x.serving
	}
	if !out.firstByte.IsZero() {
		r.TTFTMS = out.firstByte.Sub(x.start).Milliseconds()
		x.g.metrics.ttftBy.with([2]string{string(x.ep), x.label}).Observe(out.firstByte.Sub(x.start).Seconds())
	}
	x.finishUsage(out)
	x.endReplay(out)
	x.finishTimes(end, out)
	x.settleQuota()
	x.g.metrics.requestsBy.with([3]string{string(x.ep), x.label, statusLabel(out.status)}).Inc()
	x.g.metrics.durationBy.with([2]string{string(x.ep), x.label}).Observe(end.Sub(x.start).Seconds())
	if r.Experiment != "" {
		x.g.metrics.experiment(r.Experiment, r.Variant, out.status, end.Sub(x.start))
	}
	x.g.usage.Record(*r)        // a record it cannot keep is counted (and logged) by the sink
	x.g.events.settled(r.KeyID) // the key's /v1/usage streams look again
	x.traceSettled()
	endSpan(sp, nil)
	if p != nil && p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
		panic(p)
	}
}

// errInternal answers a request whose handling panicked.
var errInternal = newError(http.StatusInternalServerError, api.TypeServer, "internal_error", "", "The gateway failed to process the request.")

// stepPanic carries a panic from a step that was building an outcome to settle, with the outcome
// as far as it got (which deployment answered, what the client already has) and the stack where
// it began.
type stepPanic struct {
	value any
	stack []byte
	out   outcome
}

// carry is deferred by the steps that build an outcome step by step (forward and the relays): on
// a panic it re-panics with what out holds so far, so the record still names the deployment and
// counts what was delivered. A panic already carried keeps its outcome, completed with the
// deployment when the inner step did not know it.
func carry(out *outcome) {
	p := recover()
	if p == nil {
		return
	}
	sp, ok := p.(*stepPanic)
	if !ok {
		sp = &stepPanic{value: p, stack: debug.Stack(), out: *out}
	} else if sp.out.d == nil {
		sp.out.d = out.d
	}
	panic(sp)
}

// readBody reads the whole body once, within the size limit and the body deadline.
func (x *exchange) readBody() ([]byte, error) {
	r := x.c.Request
	max := x.g.opts.MaxBodyBytes
	if r.ContentLength > max {
		return nil, errTooLarge
	}
	n := r.ContentLength
	if n < 0 || n > max {
		n = 512
	}
	// A body of known length is limited to it by net/http, within max as checked above: only one
	// of unknown length needs the reader that stops at max.
	body := r.Body
	if r.ContentLength < 0 {
		body = http.MaxBytesReader(x.c.Writer, r.Body, max)
	}
	b, err := readAll(body, make([]byte, 0, n+1))
	switch {
	case err == nil:
	case errors.As(err, new(*http.MaxBytesError)):
		return nil, errTooLarge
	case err != nil && isTimeout(err): // bodyDeadline's; it also cancels x.ctx, so before that test
		// The rest of the body is still on the wire: the answer keeps bodyDeadline's "close", so
		// net/http does not read it (with no deadline) before sending the answer.
		return nil, errBodyTimeout
	case err != nil && x.ctx.Err() != nil:
		return nil, x.ctx.Err()
	case err != nil:
		return nil, newError(http.StatusBadRequest, api.TypeInvalidRequest, "body_read_failed", "", "The request body could not be read.")
	}
	// Read in full: no deadline from here on (a stream may last long), and the connection may be
	// kept. After a failed read both stay, so net/http never waits on the rest of the body.
	_ = http.NewResponseController(x.c.Writer).SetReadDeadline(time.Time{})
	x.c.Writer.Header().Del("Connection")
	return b, nil
}

// readAll reads r to its end into buf, growing it only when it is full. The body is kept for the
// whole request, a stream's life: read into the length it announced (and the byte that sees the
// end) it takes that much, where bytes.Buffer.ReadFrom, which makes room for 512 more bytes
// before every read, would keep it in a buffer of twice its size.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// request is what the gateway needs from a body; the rest stays opaque bytes.
type request struct {
	body         []byte
	model        string
	stream       bool
	includeUsage bool
	embeddings   bool
	maxTokens    int64 // max_completion_tokens, else max_tokens (Responses: max_output_tokens); 0 when unset
	// responses marks a Responses API request; previous is its previous_response_id, unstored its
	// store:false.
	responses bool
	previous  string
	unstored  bool
	// translated is what the deployments that do not speak the Responses API get (see
	// translation.serves); nil when none may be sent it.
	translated *translation
	// lookup marks an operation on a stored response (GET, DELETE, cancel): no body goes
	// upstream, method and path say what to call, and no tokens are reserved.
	lookup       bool
	method, path string
	// query is the upstream URL's query of a retrieval (parseRetrieveQuery), encoded.
	query string
	// media: an images or moderations request, whose reservation is its prompt alone.
	media bool
	// defaulted: the body named no model and model is the endpoint's default (defaultModels),
	// which the upstream body gets written in.
	defaulted bool
	image     imageRequest
	// upload is the spooled body of a multipart request, which goes upstream in place of body.
	upload *spool
	// speech is what an audio/speech body says.
	speech speechRequest
	// messages marks an Anthropic Messages request (counting: its count_tokens); msgs is what
	// the deployments that speak only chat get (nil when none may be sent it), and countLocally
	// says that no deployment of the model can count: the gateway does.
	messages, counting, countLocally bool
	msgs                             *messagesTranslation

	// streamOptions: the body has a stream_options field (in whatever form).
	streamOptions bool
}

// parseRequest checks the body (see bodyChecker) and picks out the few fields routing needs,
// without decoding the body. Fields named in the checker's strip list are removed from the body
// the upstreams get; a body without them is kept byte for byte.
func parseRequest(body []byte, ep providers.Endpoint, bc *bodyChecker) (request, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return request{}, errNotObject
	}
	facts, err := bc.check(body)
	if err != nil {
		return request{}, bc.apiError(err)
	}
	f, streamOptions := requestFields(body)
	def, hasDefault := defaultModels[ep]
	defaulted := hasDefault && (!f[0].Exists() || f[0].Type == gjson.Null)
	if defaulted {
		f[0] = gjson.Result{Type: gjson.String, Str: def}
	}
	if f[0].Type != gjson.String || f[0].Str == "" {
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "missing_model", "model", "You must provide a model parameter (a string).")
	}
	if strings.ContainsFunc(f[0].Str, unicode.IsControl) { // e.g. an escaped NUL, which no PostgreSQL text column holds
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "model", "The model name must not contain control characters.")
	}
	if f[1].Exists() && f[1].Type != gjson.True && f[1].Type != gjson.False && f[1].Type != gjson.Null {
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_type", "stream", "'stream' must be a boolean.")
	}
	r := request{body: body, model: f[0].Str, stream: f[1].Bool() && ep != providers.Embeddings, includeUsage: f[2].Bool(), streamOptions: streamOptions,
		embeddings: ep == providers.Embeddings, media: isMedia(ep), defaulted: defaulted}
	if ep == providers.ImageGenerations {
		if r.image, err = parseImageRequest(body); err != nil {
			return request{}, err
		}
	}
	if ep == providers.Moderations {
		r.stream = false // moderations have none
	}
	if ep == providers.AudioSpeech {
		if r.speech, err = parseSpeechRequest(body); err != nil {
			return request{}, err
		}
		r.stream = r.speech.sse
	}
	for _, m := range f[3:] {
		if m.Exists() && m.Type != gjson.Null && (m.Type != gjson.Number || m.Int() < 1) {
			return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "max_tokens", "max_tokens and max_completion_tokens must be positive integers.")
		}
	}
	if r.maxTokens = f[3].Int(); r.maxTokens == 0 {
		r.maxTokens = f[4].Int()
	}
	if ep == providers.Responses {
		r.responses = true
		if err := parseResponsesFields(&r, body); err != nil {
			return request{}, err
		}
	}
	if ep == providers.Messages || ep == providers.MessagesCountTokens {
		r.messages, r.counting = true, ep == providers.MessagesCountTokens
		r.stream = r.stream && !r.counting
		if err := checkMessagesBody(body, r.counting); err != nil {
			return request{}, err
		}
	}
	if facts.strip {
		r.body = bc.stripFields(body)
	}
	return r, nil
}

// spliced has sjson replace a field that is there by splicing the new value in, found with one
// gjson lookup, instead of rebuilding the path: the same bytes, with one allocation instead of
// four. A field that is not there is added as without it.
var spliced = &sjson.Options{Optimistic: true}

// requestFields reads the body's model, stream, stream_options.include_usage,
// max_completion_tokens and max_tokens in one pass over its top-level members, where a lookup per
// path walks the whole body for each field that is absent (most of them, most of the time). It
// finds what the paths find: a field's first occurrence (check has refused duplicate names), and
// include_usage in the first stream_options that has it; streamOptions tells whether there is
// one. The model is copied out, so that the record does not keep the body alive.
func requestFields(body []byte) (f [5]gjson.Result, streamOptions bool) {
	first := func(i int, v gjson.Result) {
		if !f[i].Exists() {
			f[i] = v
		}
	}
	gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			first(0, v)
		case "stream":
			first(1, v)
		case "stream_options":
			streamOptions = true
			if !f[2].Exists() { // v.Get only for the first that has it
				f[2] = v.Get("include_usage")
			}
		case "max_completion_tokens":
			first(3, v)
		case "max_tokens":
			first(4, v)
		}
		return true
	})
	f[0].Str = strings.Clone(f[0].Str)
	return f, streamOptions
}

// upstreamBody rewrites only what the deployment needs changed: the model name, and usage
// reporting for streams whose client did not ask for it. Everything else is forwarded byte for
// byte.
func (r request) upstreamBody(model string) ([]byte, bool, error) {
	if r.lookup {
		return nil, false, nil
	}
	out := r.body
	var err error
	if model != r.model || r.defaulted {
		if out, err = sjson.SetBytesOptions(out, "model", model, spliced); err != nil {
			return nil, false, err
		}
	}
	// Responses and Messages streams always end with their usage; the media streams carry theirs
	// in their own way.
	inject := r.stream && !r.includeUsage && !r.responses && !r.media && !r.messages
	if inject {
		if r.streamOptions {
			out, err = sjson.SetBytesOptions(out, "stream_options.include_usage", true, spliced)
		} else {
			out, err = withUsageOption(out)
		}
		if err != nil {
			return nil, false, err
		}
	}
	return out, inject, nil
}

// usageOption is the member withUsageOption adds.
const usageOption = `"stream_options":{"include_usage":true}`

// withUsageOption adds stream_options.include_usage to a body object that has no stream_options,
// as the body's last member: the bytes sjson makes (the object's own whitespace kept, what is
// around it dropped), without its walk over every member of the body.
func withUsageOption(body []byte) ([]byte, error) {
	b := bytes.Trim(body, " \t\r\n")
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return sjson.SetBytes(body, "stream_options.include_usage", true)
	}
	out := make([]byte, 0, len(b)+len(usageOption)+1)
	out = append(out, b[:len(b)-1]...)
	if len(bytes.Trim(b[1:len(b)-1], " \t\r\n")) > 0 {
		out = append(out, ',')
	}
	return append(append(out, usageOption...), '}'), nil
}

// tryModel tries the deployments of one public model in order (priority groups, ordered within a
// group by the model's strategy) until one answers, then relays its answer. A deployment whose
// circuit breaker is open is skipped. Whether a failed attempt may move on to the next deployment
// is providers.Failover's call (a connect failure always, an error status that is the
// deployment's fault, a timeout after sending only with retry_on_timeout, never once the answer
// has begun), and whether the deployment is tried again itself (after the others) is
// providers.RetryWait's; tryModel adds the waits and the retry budget. The outcome is the
// answer's; when none answered and nothing reached the client, it returns the failure instead
// (and a zero outcome), for forward to answer, fall back or degrade.
func (x *exchange) tryModel(req request, strategy string, cands []*providers.Deployment, hdr http.Header) (out outcome, f *modelFailure) {
	defer carry(&out)
	g := x.g
	var last error = errNoUpstrm
	cause := providers.CauseNone
	cands = g.balancer.Order(cands, strategy, g.priceOf)
	var msgHdr http.Header // what a deployment speaking the Messages API is sent
	if req.messages {
		cands, msgHdr = nativeFirst(cands), x.messagesHeader(hdr)
	}
	attempts, firsts, open := 0, 0, 0
	var failed failedAttempt // the last failed attempt, logged once it is known whether another follows
	// pending are the retries of deployments on themselves, made once every deployment has been
	// tried: nil unless a deployment's retry policy asks for one.
	var pending []pendingRetry
	for i := 0; i < len(cands)+len(pending); i++ {
		d, retry := (*providers.Deployment)(nil), pendingRetry{}
		if i < len(cands) {
			if d = cands[i]; firsts >= g.opts.MaxAttempts {
				continue
			}
		} else {
			retry = pending[i-len(cands)]
			d = retry.d
		}
		if retry.n > 0 { // a retry waits before it takes a breaker's slot
			if !g.retries.withdraw() || !x.pause(time.Until(retry.at)) {
				break
			}
		}
		a, ok := g.balancer.Acquire(d)
		if !ok { // open, or half-open with its probes out
			open++
			g.metrics.upstream.WithLabelValues(d.ID, "breaker_open").Inc()
			continue
		}
		if retry.n > 0 {
			g.metrics.retries.WithLabelValues(x.serving, d.ID).Inc()
		} else if attempts > 0 {
			if !g.retries.withdraw() || !x.backoff(attempts) {
				a.Excused() // not attempted
				break
			}
			g.metrics.failovers.WithLabelValues(x.label).Inc()
			if out.d != nil {
				g.metrics.failedOver.WithLabelValues(out.d.ID).Inc()
			}
		}
		if retry.n == 0 {
			firsts++
		}
		attempts++
		ep, body, inject, err, h := x.ep, []byte(nil), false, error(nil), hdr
		x.translating, x.msgsTranslating = nil, nil
		switch {
		case req.translated.serves(d):
			ep, x.translating = providers.ChatCompletions, req.translated
			body, err = req.translated.body(d.Model)
		case req.msgs.serves(d):
			ep, x.msgsTranslating = providers.ChatCompletions, req.msgs
			body, err = req.msgs.body(d)
		case req.upload == nil:
			body, inject, err = req.upstreamBody(d.Model)
		}
		if msgHdr != nil && x.msgsTranslating == nil {
			h = msgHdr
		}
		if err != nil {
			a.Excused()
			x.logAttempt(&failed, false)
			return x.failedAfter(out.d, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_json", "", "The request body could not be rewritten for the upstream.")), nil
		}
		out.d, x.answering = d, d
		// The credentials of the deployment answering, never relayed in its error text.
		var secrets []string
		if ch, ok := d.Provider.(providers.CredentialHolder); ok {
			secrets = ch.Credentials()
		}
		x.logAttempt(&failed, true)
		began := time.Now()
		var upload *providers.Upload
		if req.upload != nil {
			upload = req.upload.forModel(d.Model)
		}
		span, ahdr := x.startAttempt(d, ep, attempts, h)
		resp, wrote, err := x.call(d, &providers.Request{Endpoint: ep, Body: body, Stream: req.stream, Model: d.Model, Header: ahdr,
			Method: req.method, Path: req.path, Query: req.query, Upload: upload})
		if err != nil {
			last = err
			if x.ctx.Err() != nil { // the client went away: no one to answer, no one to blame
				endAttempt(span, 0, errTypeClientClosed)
				a.Excused()
				break
			}
			endAttempt(span, 0, failureReason(err))
			g.metrics.upstream.WithLabelValues(d.ID, "error").Inc()
			failed = failedAttempt{d: d, n: attempts, outcome: "error", reason: failureReason(err), took: time.Since(began)}
			a.Failed(failureReason(err))
			o := failedOutcome(err, wrote)
			if !providers.Failover(d, o) {
				cause = providers.CauseNone
				break
			}
			cause = providers.CauseUnavailable
			pending = x.retryLater(pending, d, o, retry.n)
			continue
		}
		if resp.StatusCode >= 300 {
			g.metrics.upstream.WithLabelValues(d.ID, "http_"+statusLabel(resp.StatusCode)).Inc()
			eb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			ue := upstreamError(resp.StatusCode, eb, secrets...)
			o := providers.Outcome{Kind: providers.Answered, Status: resp.StatusCode, RetryAfter: providers.RetryAfter(resp.Header, time.Now())}
			if o.RetryAfter > 0 {
				ue.retryAfter = o.RetryAfter
			}
			last, cause = ue, providers.CauseOf(resp.StatusCode, errorCode(ue.API), ue.API.Message)
			endAttempt(span, resp.StatusCode, statusLabel(resp.StatusCode)) // the status: the body's code is the upstream's text
			if providers.UpstreamFault(resp.StatusCode) {
				failed = failedAttempt{d: d, n: attempts, outcome: statusFailed(resp.StatusCode), took: time.Since(began)}
				a.Failed("http " + statusLabel(resp.StatusCode))
			} else { // the request's fault, which the access log tells: not the upstream failing
				a.Excused()
			}
			if !providers.Failover(d, o) {
				break
			}
			pending = x.retryLater(pending, d, o, retry.n)
			continue
		}
		g.metrics.upstreamBy.with([2]string{d.ID, "ok"}).Inc()
		if x.screens(req) {
			if held := x.screen(resp, ep, d, inject, secrets); held != nil {
				a.Succeeded() // the upstream is well: its filter answered
				endAttempt(span, resp.StatusCode, "content_filtered")
				return outcome{}, &modelFailure{last: errNoUpstrm, cause: providers.CauseContentFiltered, d: d, model: x.serving, held: held}
			}
		}
		x.c.Writer.Header()[headerServedModel] = []string{x.serving}
		// The answer has begun (providers.Begun): never another deployment.
		ho := handoff{resp: resp, injected: inject, secrets: secrets, d: d, span: span, attempt: a, began: began, n: attempts}
		if x.aside {
			if x.plainStream(resp) {
				x.beginStream()
			}
			x.handed = ho
			return outcome{d: d}, nil
		}
		answer := x.respond(resp, inject, secrets)
		x.answered(&ho, &answer)
		return answer, nil
	}
	x.logAttempt(&failed, false)
	if attempts == 0 && open > 0 {
		last, cause = errAllOpen, providers.CauseUnavailable
	}
	if x.c.Writer.Written() || x.ctx.Err() != nil {
		return x.failedAfter(out.d, last), nil
	}
	return outcome{}, &modelFailure{last: last, cause: cause, d: out.d, model: x.serving}
}

// failedAfter is failed(err) for a request whose last upstream attempt (nil: none) went to d.
func (x *exchange) failedAfter(d *providers.Deployment, err error) outcome {
	o := x.failed(err)
	o.d = d
	return o
}

// errAllOpen answers a request whose every deployment has its circuit breaker open: a 503, as the
// external contract promises for an open breaker.
var errAllOpen = newError(http.StatusServiceUnavailable, api.TypeUnavailable, "upstream_unavailable", "",
	"Every deployment of this model is failing right now (circuit breaker open); retry shortly.")

// errAllDisabled answers a request for a model whose every deployment an admin has disabled: the
// same 503 as errAllOpen, answered before admission since no upstream can be called.
var errAllDisabled = newError(http.StatusServiceUnavailable, api.TypeUnavailable, "deployments_disabled", "",
	"Every deployment of this model is disabled by the gateway's operators; retry later.")

// failureReason names a failed attempt for /v1/providers, without hosts or credentials.
func failureReason(err error) string {
	switch {
	case errors.Is(err, errConnectTimeout):
		return "connect timeout"
	case errors.Is(err, errFirstByteTimeout):
		return "first byte timeout"
	case errors.Is(err, errTotalTimeout):
		return "total timeout"
	case isTimeout(err):
		return "timeout"
	case errors.As(err, new(*outbound.RefusedError)):
		return "address refused by the outbound policy"
	}
	return "connection error"
}

// backoff waits before the attempt-th retry: exponential from 25 ms, capped at 1 s, with full
// jitter. False when the client went away meanwhile.
func (x *exchange) backoff(attempt int) bool {
	d := min(25*time.Millisecond<<(attempt-1), time.Second)
	return x.pause(rand.N(d) + d/4)
}

// pause waits d (nothing when d ≤ 0), counted as backoff. False when the client went away
// meanwhile.
func (x *exchange) pause(d time.Duration) bool {
	if d <= 0 {
		return x.ctx.Err() == nil
	}
	began := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	defer func() { x.times.backoff += time.Since(began) }()
	select {
	case <-t.C:
		return true
	case <-x.ctx.Done():
		return false
	}
}

// priceOf is a model's price per 1M tokens (input + output), for the cost strategy (a
// providers.PriceFunc).
func (g *Gateway) priceOf(model string) (int64, bool) {
	p, ok := g.prices.Lookup(model)
	return p.InputPerM + p.OutputPerM, ok
}

// respond relays a 2xx upstream answer and reports how the relaying ended; secrets are the
// deployment's credentials, kept out of error events it sends.
func (x *exchange) respond(resp *http.Response, injected bool, secrets []string) (out outcome) {
	defer resp.Body.Close()
	if t := x.translating; t != nil {
		return x.relayTranslated(resp, t, secrets)
	}
	if t := x.msgsTranslating; t != nil {
		return x.relayMessagesTranslated(resp, t, secrets)
	}
	if x.streamedAnswer(resp) {
		x.relayStream(&out, resp, injected, secrets)
		return out
	}
	if x.ep == providers.AudioSpeech {
		return x.relayAudio(resp)
	}
	return x.relayWhole(resp)
}

func isEventStream(ct string) bool {
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// relayWhole relays a non-stream answer: read it (bounded), note its usage, send it with a
// Content-Length.
func (x *exchange) relayWhole(resp *http.Response) (out outcome) {
	defer carry(&out)
	buf := getBuffer()
	defer putBuffer(buf)
	if err := x.readAnswer(resp.Body, buf); err != nil {
		return x.failed(err)
	}
	b := buf.Bytes()
	switch {
	case x.ep == providers.Responses:
		x.relayResponseWhole(b, &out)
	case x.ep == providers.Messages:
		x.relayMessageWhole(b, &out)
	case isAudio(x.ep):
		out.usage, out.units.AudioSeconds, out.unitsReported = transcriptionUsage(b)
	default:
		// Read in place (GetBytes would copy the object out): parseUsage keeps only numbers.
		if out.usage = parseUsage(gjson.Get(unsafe.String(unsafe.SliceData(b), len(b)), "usage")); !out.usage.found {
			out.answer.addBody(b)
		}
	}
	if x.ep == providers.ImageGenerations || x.ep == providers.ImageEdits {
		out.units = imageUnits(b, x.image)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	x.sendWhole(&out, resp.StatusCode, ct, b)
	return out
}

// readAnswer reads a whole upstream answer into buf, up to gateway.max_response_bytes: a larger
// one is errResponseTooLarge.
func (x *exchange) readAnswer(body io.Reader, buf *bytes.Buffer) error {
	lim := x.g.opts.MaxResponseBytes
	if _, err := buf.ReadFrom(io.LimitReader(body, lim+1)); err != nil {
		return err
	}
	if int64(buf.Len()) > lim {
		return errResponseTooLarge
	}
	return nil
}

// errResponseTooLarge answers an upstream answer over the gateway's size limit.
var errResponseTooLarge = newError(http.StatusBadGateway, api.TypeUpstream, "upstream_response_too_large", "", "The upstream's answer exceeded the gateway's size limit.")

// sendWhole writes a whole answer with its Content-Length and notes it in out.
func (x *exchange) sendWhole(out *outcome, status int, ct string, b []byte) {
	h := x.c.Writer.Header()
	headers.Set(h, "Content-Type", ct, "Content-Length", strconv.Itoa(len(b)))
	_ = http.NewResponseController(x.c.Writer).SetWriteDeadline(time.Now().Add(x.g.opts.WriteTimeout))
	x.serverTiming()
	out.firstByte = time.Now()
	out.status = status
	x.c.Writer.WriteHeader(status)
	if _, err := x.c.Writer.Write(b); err != nil {
		out.fail(context.Canceled) // the client went away
	}
}
