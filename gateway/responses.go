package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/redact"
	"github.com/llmgate/llmgate/internal/sse"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/responses"
	"github.com/llmgate/llmgate/store"
)

// The Responses API (POST /v1/responses, GET/DELETE /v1/responses/{id}, POST …/{id}/cancel) is
// relayed to the deployments whose upstream speaks it (providers.NativeResponses): the body byte for
// byte but the model, the answer as it comes, every event with its event line. A response lives on
// the upstream account that made it, so the gateway remembers, in the store that every replica
// shares, which deployment produced each response id and for which tenant: follow-ups
// (previous_response_id) and the operations by id go back there, and another tenant's ids are
// unknown to a caller.

// ResponseRoutes is where the gateway remembers which deployment produced each response id
// (store.Store implements it).
type ResponseRoutes interface {
	PutResponseRoute(ctx context.Context, r store.ResponseRoute) error
	PutResponseRoutes(ctx context.Context, rs []store.ResponseRoute) error
	ResponseRoute(ctx context.Context, responseID string, now time.Time) (store.ResponseRoute, error)
	DeleteResponseRoute(ctx context.Context, responseID string) error
	PurgeResponseRoutes(ctx context.Context, before time.Time) (int64, error)
}

// routeWriteTimeout bounds remembering a response's route: the answer waits for it, so that a
// follow-up made as soon as the answer is complete finds it.
const routeWriteTimeout = 2 * time.Second

// errResponseRoutesDown answers a request that needs a response's route while the store cannot
// be read.
var errResponseRoutesDown = newError(http.StatusServiceUnavailable, api.TypeUnavailable, "response_routes_unavailable", "",
	"The gateway cannot look up where this response is kept right now; retry shortly.")

func errPreviousNotFound(id string) *Error {
	return newError(http.StatusBadRequest, api.TypeInvalidRequest, "previous_response_not_found", "previous_response_id",
		"Previous response with id '"+id+"' not found.")
}

func errResponseNotFound(id string) *Error {
	return newError(http.StatusNotFound, api.TypeInvalidRequest, "response_not_found", "", "No response found with id '"+id+"'.")
}

// errResponseUnavailable answers a request for a response whose deployment cannot serve it now:
// disabled (503, it may come back), or no longer among the model's deployments (400). The
// response is never looked for on another upstream account, where its id means nothing.
func errResponseUnavailable(id, model string, disabled bool) *Error {
	if disabled {
		return newError(http.StatusServiceUnavailable, api.TypeUnavailable, "previous_response_unavailable", "",
			"The deployment that holds response '"+id+"' is disabled right now; retry later.")
	}
	return newError(http.StatusBadRequest, api.TypeInvalidRequest, "previous_response_unavailable", "",
		"The deployment that holds response '"+id+"' does not serve the model `"+model+"` (any more); the response cannot be continued elsewhere.")
}

// parseResponsesFields reads what the gateway needs of a Responses body: the answer's limit (for
// the token reservation), the previous response, and whether the upstream keeps the response.
func parseResponsesFields(r *request, body []byte) error {
	f := gjson.GetManyBytes(body, "max_output_tokens", "previous_response_id", "store")
	if m := f[0]; m.Exists() && m.Type != gjson.Null && (m.Type != gjson.Number || m.Int() < 1) {
		return newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "max_output_tokens", "max_output_tokens must be a positive integer.")
	}
	if p := f[1]; p.Exists() && p.Type != gjson.Null && (p.Type != gjson.String || p.Str == "") {
		return newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_type", "previous_response_id", "previous_response_id must be a response id (a string).")
	}
	r.maxTokens, r.previous, r.unstored = f[0].Int(), f[1].Str, f[2].Type == gjson.False
	return nil
}

// responsesCandidates decides which of a model's deployments may serve a Responses request and
// how (see responses_translate.go): it sets req.translated for the deployments that get the
// translation, and narrows a follow-up of a passthrough response to the deployment holding it (or
// another on the same upstream account, where the id is as valid). Refusals come here, before
// admission: nothing is consumed and no upstream is called.
func (x *exchange) responsesCandidates(req *request, cands []*providers.Deployment) ([]*providers.Deployment, error) {
	native := make([]*providers.Deployment, 0, len(cands))
	for _, d := range cands {
		if providers.NativeResponses(d.Provider) {
			native = append(native, d)
		}
	}
	if req.previous == "" {
		if len(native) == len(cands) {
			return native, nil
		}
		tr, err := translate(req.body, nil)
		switch {
		case err == nil:
			req.translated = tr
			return cands, nil
		case len(native) > 0: // what the translation cannot honour, the Responses API may
			return native, nil
		}
		return nil, err
	}
	if x.g.responses == nil {
		if len(native) == 0 {
			return nil, errPreviousNotFound(req.previous)
		}
		return native, nil
	}
	rt, err := x.ownedRoute(req.previous)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPreviousNotFound(req.previous)
	}
	if err != nil {
		return nil, err
	}
	if rt.Translated() { // the gateway holds the conversation: any deployment may continue it
		tr, err := translate(req.body, rt.History)
		if err != nil {
			return nil, err
		}
		tr.all = true
		req.translated = tr
		return cands, nil
	}
	if d := holder(native, rt); d != nil {
		return []*providers.Deployment{d}, nil
	}
	return nil, errResponseUnavailable(req.previous, req.model, x.disabled(req.model, rt))
}

// holder picks, among cands, the deployment that produced a response, else one on the same
// provider; nil when there is none.
func holder(cands []*providers.Deployment, rt store.ResponseRoute) *providers.Deployment {
	var same *providers.Deployment
	for _, d := range cands {
		if d.ID == rt.DeploymentID {
			return d
		}
		if same == nil && d.ProviderName == rt.Provider {
			same = d
		}
	}
	return same
}

// disabled reports whether the deployment of rt is among model's but disabled.
func (x *exchange) disabled(model string, rt store.ResponseRoute) bool {
	for _, d := range x.g.router.Load().Deployments(model) {
		if d.ID == rt.DeploymentID {
			return !d.Enabled
		}
	}
	return false
}

// ownedRoute finds the route of a response id made for the caller's tenant: ErrNotFound for an
// unknown or expired id and for another tenant's, which a caller must not tell apart.
func (x *exchange) ownedRoute(id string) (store.ResponseRoute, error) {
	ctx, cancel := context.WithTimeout(x.ctx, routeWriteTimeout)
	defer cancel()
	rt, err := x.g.responses.ResponseRoute(ctx, id, time.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rt, store.ErrNotFound
	case err != nil:
		if x.ctx.Err() != nil {
			return rt, x.ctx.Err()
		}
		x.g.log.Warn("response route lookup failed", "request_id", x.rec.RequestID, "err", err)
		return rt, errResponseRoutesDown
	case rt.TenantID != x.id.Key.TenantID:
		return store.ResponseRoute{}, store.ErrNotFound
	}
	return rt, nil
}

// rememberResponse records that the deployment answering produced response id, for the caller's
// tenant, and waits until it is recorded. It runs before the answer's end reaches the client; the
// write does not depend on the request (the client may be gone; the response exists upstream all
// the same). A failure is logged: the answer goes on, and a follow-up on that id will be refused
// as unknown.
func (x *exchange) rememberResponse(id string) {
	x.awaitRemembered(id, x.startRemembering(id))
}

// startRemembering queues the route of response id with the gateway's route writer, which
// commits it with those of the other requests in flight; nil when there is nothing to remember.
func (x *exchange) startRemembering(id string) <-chan error {
	d := x.answering
	if x.g.routes == nil || id == "" || d == nil || x.unstored {
		return nil
	}
	now := time.Now()
	return x.g.routes.submit(store.ResponseRoute{ResponseID: id, TenantID: x.id.Key.TenantID, KeyID: x.id.Key.ID,
		Model: x.rec.Model, DeploymentID: d.ID, Provider: d.ProviderName, CreatedAt: now, ExpiresAt: now.Add(x.g.opts.ResponsesTTL)})
}

// awaitRemembered waits for a route started by startRemembering (at most routeWriteTimeout) and
// logs its failure.
func (x *exchange) awaitRemembered(id string, done <-chan error) {
	if done == nil {
		return
	}
	if err := awaitRoute(done, routeWriteTimeout); err != nil {
		x.g.log.Error("response route not recorded: follow-ups on this response will be refused", "request_id", x.rec.RequestID,
			"response_id", id, "err", err)
	}
}

// purgeResponseRoutes drops expired routes every hour until ctx ends.
func (g *Gateway) purgeResponseRoutes(ctx context.Context) {
	if g.responses == nil {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := g.responses.PurgeResponseRoutes(pctx, now); err != nil && ctx.Err() == nil {
				g.log.Warn("purging expired response routes failed", "err", err)
			}
			cancel()
		}
	}
}

// parseResponsesUsage reads a Responses API usage object.
func parseResponsesUsage(u gjson.Result) usage {
	if !u.IsObject() {
		return usage{}
	}
	return usage{
		prompt:     u.Get("input_tokens").Int(),
		completion: u.Get("output_tokens").Int(),
		cached:     u.Get("input_tokens_details.cached_tokens").Int(),
		reasoning:  u.Get("output_tokens_details.reasoning_tokens").Int(),
		cacheWrite: u.Get("input_tokens_details.cache_write_tokens").Int(),
		found:      true,
	}
}

// addResponse appends the answer text of a whole Response: the text and refusals of its
// messages, the arguments of its function calls, the summaries of its reasoning.
func (d *delivered) addResponse(body []byte) {
	gjson.GetBytes(body, "output").ForEach(func(_, item gjson.Result) bool {
		d.buf.WriteString(item.Get("arguments").Str)
		for _, list := range [...]string{"content", "summary"} {
			item.Get(list).ForEach(func(_, part gjson.Result) bool {
				d.buf.WriteString(part.Get("text").Str)
				d.buf.WriteString(part.Get("refusal").Str)
				return true
			})
		}
		return true
	})
}

// relayResponseWhole notes what a whole Responses answer tells: its usage, else its text, and its
// id, remembered before the client has it.
func (x *exchange) relayResponseWhole(b []byte, out *outcome) {
	if x.lookup {
		return // the operations by id are not metered by tokens
	}
	if out.usage = parseResponsesUsage(gjson.GetBytes(b, "usage")); !out.usage.found {
		out.answer.addResponse(b)
	}
	x.rememberResponse(gjson.GetBytes(b, "id").Str)
}

// responsesStream is what the relay follows of a Responses stream.
type responsesStream struct {
	// seq is the last sequence_number seen (-1: none yet), so that an error event the gateway
	// adds follows on.
	seq int64
	// routeID and remembered follow the recording of the response's route, which starts at
	// response.created and must be done before the terminal event reaches the client; remembered
	// is nil until it starts.
	routeID    string
	remembered <-chan error
	// translated is the translation of a chat stream, when the deployment speaks only Chat
	// Completions; nil for a stream relayed as it came.
	translated *responses.Stream
}

// waitRemembered waits for the route's recording, if it started, once.
func (s *sseRelay) waitRemembered() {
	if r := s.resp; r.remembered != nil {
		s.x.awaitRemembered(r.routeID, r.remembered)
		r.remembered = nil
	}
}

// errorEvent renders an error the gateway ends a Responses stream with: an "error" event, with
// the error's fields both at the top (as OpenAI documents it) and nested (as OpenAI sends it).
func (r *responsesStream) errorEvent(e api.ErrorObject) []byte {
	if r.translated != nil { // its own form, numbered after the translation's last event
		return r.translated.AppendError(nil, e)
	}
	data := []byte(`{"type":"error"}`)
	data, _ = sjson.SetBytes(data, "code", e.Code)
	data, _ = sjson.SetBytes(data, "message", e.Message)
	data, _ = sjson.SetBytes(data, "param", e.Param)
	data, _ = sjson.SetBytes(data, "error", e)
	data, _ = sjson.SetBytes(data, "sequence_number", r.seq+1)
	return append(append([]byte("event: error\ndata: "), data...), '\n', '\n')
}

// Event types of a Responses stream the relay acts on.
const (
	evCreated    = "response.created"
	evCompleted  = "response.completed"
	evIncomplete = "response.incomplete"
	evFailed     = "response.failed"
	evError      = "error"
)

// responsesEvent handles one event of a Responses stream: passed on as it came (with its event
// line), after noting its sequence number, the answer text of deltas, and, from the terminal
// event, the usage. The terminal event is the stream's clean end (there is no [DONE]); failed and
// error events end it as an upstream failure.
func (s *sseRelay) responsesEvent(e sse.Event) error {
	ev, payload := e.Raw, e.Data
	if payload == nil {
		return s.write(append(ev, '\n'))
	}
	typ := string(e.Name)
	if typ == "" {
		typ = gjson.GetBytes(payload, "type").Str
	}
	delta := isResponsesDelta(typ)
	f, fast := responsesFields(payload, delta)
	if !fast {
		f = gjsonResponsesFields(payload)
	}
	if f.hasSeq {
		s.resp.seq = f.seq
	}
	switch typ {
	case evCreated:
		if s.resp.translated != nil {
			break // kept whole at the end (keepTranslated)
		}
		if id := gjson.GetBytes(payload, "response.id").Str; id != "" && s.resp.routeID == "" && !s.x.lookup {
			s.resp.routeID, s.resp.remembered = id, s.x.startRemembering(id)
		}
	case evCompleted, evIncomplete, evFailed:
		s.sawDone = true
		s.upErr = typ == evFailed
		if u := parseResponsesUsage(gjson.GetBytes(payload, "response.usage")); u.found {
			s.out.usage = u
		}
		if t := s.resp.translated; t != nil {
			if u := fromTranslator(t.Usage()); u.found {
				s.out.usage = u
			}
			if doc := t.Response(); doc != nil && typ != evFailed {
				if kept := s.x.keepTranslated(doc); len(kept) != len(doc) {
					if out, err := sjson.SetRawBytes(payload, "response", kept); err == nil {
						return s.write(rewriteEvent(ev, out))
					}
				}
			}
			break
		}
		if s.resp.routeID == "" && !s.x.lookup { // a retrieval's response is remembered already
			s.x.rememberResponse(gjson.GetBytes(payload, "response.id").Str)
		}
		s.waitRemembered()
	case evError:
		s.upErr = true // error text is never counted as answer
		// Its message is relayed, as an error answer's is, without credentials.
		changed := false
		for _, path := range [...]string{"message", "error.message"} {
			m := gjson.GetBytes(payload, path)
			if m.Type != gjson.String {
				continue
			}
			if clean := redact.Credentials(m.Str, s.secrets...); clean != m.Str {
				if out, err := sjson.SetBytes(payload, path, clean); err == nil {
					payload, changed = out, true
				}
			}
		}
		if changed {
			return s.write(rewriteEvent(ev, payload))
		}
	}
	if delta {
		f.delta.appendTo(&s.out.answer.buf)
	}
	return s.write(append(ev, '\n'))
}

// isResponsesDelta reports whether a Responses stream event of this type carries answer text in
// its delta.
func isResponsesDelta(typ string) bool {
	switch typ {
	case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
		"response.reasoning_summary_text.delta", "response.reasoning_text.delta", "response.custom_tool_call_input.delta":
		return true
	}
	return false
}

// gjsonResponsesFields is responsesFields with gjson, for the events it does not read.
func gjsonResponsesFields(payload []byte) (f eventFields) {
	if n := gjson.GetBytes(payload, "sequence_number"); n.Type == gjson.Number {
		f.seq, f.hasSeq = n.Int(), true
	}
	if d := gjson.GetBytes(payload, "delta"); d.Type == gjson.String {
		f.delta.str = []byte(d.Str)
	}
	return f
}

// responseByID serves GET and DELETE /v1/responses/{id} and POST /v1/responses/{id}/cancel (op
// "/cancel"): to the deployment holding the response, for its tenant only. They are settled like
// every request, with a record of no tokens, and count against the request rate and concurrency
// limits (with nothing reserved for tokens).
func (g *Gateway) responseByID(method, op string) gin.HandlerFunc {
	return func(c *gin.Context) {
		x, ok := g.authenticate(c, providers.Responses)
		if !ok {
			return
		}
		var out outcome
		defer x.settle(&out)
		out = x.byID(method, c.Param("id"), op)
	}
}

func (x *exchange) byID(method, id, op string) outcome {
	x.lookup = true
	if _, err := x.readBody(); err != nil { // only a cancel has one, ignored as OpenAI ignores it
		return x.failed(err)
	}
	var rq retrieveQuery
	if method == http.MethodGet && op == "" {
		var err error
		if rq, err = parseRetrieveQuery(x.c.Request.URL.Query()); err != nil {
			return x.failed(err)
		}
		x.rec.Stream = rq.stream
	}
	if x.g.responses == nil {
		return x.failed(errResponseNotFound(id))
	}
	rt, err := x.ownedRoute(id)
	if errors.Is(err, store.ErrNotFound) {
		return x.failed(errResponseNotFound(id))
	}
	if err != nil {
		return x.failed(err)
	}
	x.rec.Model = rt.Model
	if rt.Translated() {
		return x.keptByID(method, op, rt, rq)
	}
	cands, strategy, err := x.route(rt.Model)
	if err != nil {
		return x.failed(err)
	}
	d := holder(cands, rt)
	if d == nil {
		return x.failed(errResponseUnavailable(id, rt.Model, x.disabled(rt.Model, rt)))
	}
	payer, err := x.whoPays()
	if err != nil {
		return x.failed(err)
	}
	x.payer = payer
	req := request{model: rt.Model, lookup: true, method: method, path: "/" + id + op, query: rq.encoded, stream: rq.stream}
	lease, err := x.admit(req, []*providers.Deployment{d}, payer)
	if err != nil {
		return x.failed(err)
	}
	x.lease = lease
	out := x.forward(req, strategy, []*providers.Deployment{d})
	if method == http.MethodDelete && out.status == http.StatusOK {
		ctx, cancel := context.WithTimeout(context.Background(), routeWriteTimeout)
		defer cancel()
		if err := x.g.responses.DeleteResponseRoute(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			x.g.log.Warn("response route not deleted", "request_id", x.rec.RequestID, "response_id", id, "err", err)
		}
	}
	return out
}

// retrieveQuery is what the gateway takes of the query of GET /v1/responses/{id}: the Responses
// API's own parameters, checked where the gateway acts on them.
type retrieveQuery struct {
	// stream asks for the response as an event stream (a background response's events, resumed
	// after startingAfter); startingAfter is -1 when not given.
	stream        bool
	startingAfter int64
	// encoded is the query the upstream gets: the parameters below, as the client gave them.
	encoded string
}

// retrieveParams are the query parameters of GET /v1/responses/{id} (PROVIDERS-2.md §1.1) that
// go upstream; others (an Azure api-version, anything unknown) do not: the upstream URL is the
// gateway's to make.
var retrieveParams = [...]string{"stream", "starting_after", "include", "include[]", "include_obfuscation"}

// parseRetrieveQuery checks the parameters of a retrieval: stream a boolean, starting_after a
// sequence number. Refused here, before admission, nothing is consumed.
func parseRetrieveQuery(q url.Values) (retrieveQuery, error) {
	rq := retrieveQuery{startingAfter: -1}
	switch v := q.Get("stream"); v {
	case "", "false":
	case "true":
		rq.stream = true
	default:
		return rq, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "stream", "stream must be true or false.")
	}
	if v := q.Get("starting_after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < -1 {
			return rq, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_value", "starting_after",
				"starting_after must be an event's sequence_number (an integer).")
		}
		rq.startingAfter = n
	}
	kept := url.Values{}
	for _, k := range retrieveParams {
		if vs, ok := q[k]; ok {
			kept[k] = vs
		}
	}
	rq.encoded = kept.Encode()
	return rq, nil
}

// responsesTTLDefault is how long a response's route is kept by default: OpenAI keeps stored
// responses 30 days.
const responsesTTLDefault = 30 * 24 * time.Hour
