package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/internal/headers"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/responses"
)

// What a model does when its deployments fail: retry them (tryModel, with providers.RetryWait),
// try its fallback models, answer with its degrade reply. The decisions are providers'; this file
// carries them out on the request path.

// headerServedModel names, on an answer, the public model that served it: the requested one, or
// the fallback that took over.
const headerServedModel = "X-Llmgate-Served-Model"

// headerDegraded marks a degrade reply.
const headerDegraded = "X-Llmgate-Degraded"

// errTypeDegraded is the record's error type of a request answered with its model's degrade
// reply; the record's status is the failure's it replaced.
const errTypeDegraded = "degraded"

// finishDegraded is the finish_reason of a degrade reply's choices.
const finishDegraded = "degraded"

// modelFailure is how the deployments of one model failed, when nothing reached the client: the
// error that answers unless a fallback or the degrade reply does, and why, for the fallback lists.
type modelFailure struct {
	last  error
	cause providers.Cause
	d     *providers.Deployment // the last attempt's; nil when none was made
	model string                // the public model d serves
	// held is a whole answer its provider's content filter ended, kept to be relayed when no
	// fallback serves the request; nil for other failures.
	held *heldAnswer
}

// heldAnswer is a 2xx upstream answer read but not yet relayed, with what relaying it needs.
type heldAnswer struct {
	resp        *http.Response // its body replays what was read
	d           *providers.Deployment
	model       string // the public model d serves
	inject      bool
	secrets     []string
	translating *translation
	msgs        *messagesTranslation
}

// screens reports whether the current attempt's whole answer is read before it is relayed, to
// hand it to a content-filter fallback when the provider's filter ended it: only for a request
// that does not stream (a stream's end comes after its first bytes reached the client), on its
// own model (a fallback's answer is the answer), when that model has such a fallback.
func (x *exchange) screens(req request) bool {
	return !req.stream && x.serving == x.rec.Model && x.fallsBack(req) &&
		len(x.g.router.Load().Fallbacks(x.rec.Model, providers.CauseContentFiltered)) > 0
}

// screen reads a 2xx answer of upstream endpoint ep; when the provider's content filter ended
// it, it returns the answer held, else nil with resp's body replaying what was read. The
// filtered attempt's tokens, spent upstream, are logged, since the record keeps the served
// attempt's.
func (x *exchange) screen(resp *http.Response, ep providers.Endpoint, d *providers.Deployment, inject bool, secrets []string) *heldAnswer {
	var buf bytes.Buffer
	err := x.readAnswer(resp.Body, &buf)
	b := buf.Bytes()
	if err != nil || !contentFiltered(ep, b) {
		var rest io.Reader = bytes.NewReader(b)
		if err != nil {
			rest = io.MultiReader(rest, errReader{err})
		}
		resp.Body = readCloser{rest, resp.Body}
		return nil
	}
	u := parseUsage(gjson.GetBytes(b, "usage"))
	x.g.log.LogAttrs(x.ctx, slog.LevelInfo, "answer ended by the content filter, handed to a fallback",
		slog.String("request_id", x.rec.RequestID), slog.String("deployment", d.ID),
		slog.Int64("prompt_tokens", u.prompt), slog.Int64("completion_tokens", u.completion))
	resp.Body = readCloser{bytes.NewReader(b), resp.Body}
	return &heldAnswer{resp: resp, d: d, model: x.serving, inject: inject, secrets: secrets,
		translating: x.translating, msgs: x.msgsTranslating}
}

// contentFiltered reports whether a whole answer of upstream endpoint ep is one the provider's
// content filter ended: a choice whose finish_reason is content_filter (OpenAI and Azure; the
// Anthropic and Gemini adapters map a refusal and a safety stop to it), a Message whose
// stop_reason is refusal, a Response left incomplete by the content filter.
func contentFiltered(ep providers.Endpoint, b []byte) bool {
	switch ep {
	case providers.Messages:
		return gjson.GetBytes(b, "stop_reason").Str == "refusal"
	case providers.Responses:
		return gjson.GetBytes(b, "incomplete_details.reason").Str == "content_filter"
	}
	filtered := false
	gjson.GetBytes(b, "choices.#.finish_reason").ForEach(func(_, r gjson.Result) bool {
		filtered = r.Str == "content_filter"
		return !filtered
	})
	return filtered
}

// relayHeld relays a held answer as the request's answer, served by the model that made it.
func (x *exchange) relayHeld(h *heldAnswer) outcome {
	x.serving, x.translating, x.msgsTranslating, x.answering = h.model, h.translating, h.msgs, h.d
	x.c.Writer.Header()[headerServedModel] = []string{h.model}
	out := x.respond(h.resp, h.inject, h.secrets)
	out.d = h.d
	return out
}

// errReader replays a read error after the bytes read before it.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// readCloser reads from one reader and closes another (the upstream body it stands in for).
type readCloser struct {
	io.Reader
	io.Closer
}

// pendingRetry is a deployment to try again on itself, as its n-th retry, not before at.
type pendingRetry struct {
	d  *providers.Deployment
	n  int
	at time.Time
}

// retryLater adds d's next retry to pending when its policy allows one for the outcome o of its
// retry n (0: its first attempt).
func (x *exchange) retryLater(pending []pendingRetry, d *providers.Deployment, o providers.Outcome, n int) []pendingRetry {
	if d.Retry.Count() == 0 {
		return pending
	}
	if w, ok := providers.RetryWait(d, o, n+1); ok {
		pending = append(pending, pendingRetry{d: d, n: n + 1, at: time.Now().Add(w)})
	}
	return pending
}

// forward serves the request with the model's deployments (tryModel); when they all failed
// before any byte reached the client, with the model's fallback models for the failure's cause,
// in order, then with its degrade reply; else the failure is the answer.
func (x *exchange) forward(req request, strategy string, cands []*providers.Deployment) (out outcome) {
	g := x.g
	hdr := make(http.Header, 2)
	headers.Set(hdr, "Traceparent", x.traceparent, "X-Request-Id", x.rec.RequestID)
	// The header is built here, never copied from the client's request: a client's own user id
	// header cannot reach the upstream.
	if g.userHeader != "" && x.id.Key.UserID != "" {
		hdr[g.userHeader] = []string{x.id.Key.UserID}
	}
	g.retries.deposit()
	x.serving = x.rec.Model
	if x.variantModel != "" { // an experiment sent the request to its variant's model
		x.serving = x.variantModel
	}
	out, f := x.tryModel(req, strategy, cands, hdr)
	if f == nil {
		return out
	}
	router := g.router.Load()
	if x.fallsBack(req) {
		for _, fb := range router.Fallbacks(x.rec.Model, f.cause) {
			fc, freq := router.Candidates(fb), req
			if !x.id.Allows(fb) || len(fc) == 0 {
				continue
			}
			if fc = x.dialectCandidates(&freq, fc); len(fc) == 0 {
				continue
			}
			if !g.retries.withdraw() { // a fallback is one more upstream call a failure caused
				break
			}
			g.metrics.fallbacks.WithLabelValues(x.label, fb, f.cause.String()).Inc()
			x.serving = fb
			o, ff := x.tryModel(freq, router.Strategy(fb), fc, hdr)
			if ff == nil {
				return o
			}
			f.last = ff.last
			if ff.d != nil { // else nothing was tried: the last attempt is still the earlier one's
				f.d, f.model = ff.d, ff.model
			}
		}
		x.serving = f.model // the record names the model of the deployment it names
	}
	if f.held != nil { // no fallback served: the filtered answer is the answer
		return x.relayHeld(f.held)
	}
	if d := router.Degrade(x.rec.Model); d != nil && x.degrades(req) && degradable(f.last) {
		return x.degrade(d, f, req.includeUsage)
	}
	return x.failedAfter(f.d, f.last)
}

// fallbackEndpoint reports whether an endpoint's requests may be served by a fallback model: the
// ones whose body any deployment takes as it is but for its model name, or in the translation
// the dialect's front makes for it (Responses, Messages).
func fallbackEndpoint(ep providers.Endpoint) bool {
	switch ep {
	case providers.ChatCompletions, providers.Completions, providers.Embeddings, providers.Responses, providers.Messages:
		return true
	}
	return false
}

// fallsBack reports whether req may be served by a fallback model: not an operation on a stored
// response nor a token count, which are about the model asked for.
func (x *exchange) fallsBack(req request) bool {
	return fallbackEndpoint(x.ep) && !req.lookup && !req.counting
}

// degrades reports whether req may be answered with a degrade reply: a chat completion, a
// Response or a Message (in the dialect's shape).
func (x *exchange) degrades(req request) bool {
	switch x.ep {
	case providers.ChatCompletions, providers.Responses, providers.Messages:
		return !req.lookup && !req.counting
	}
	return false
}

// dialectCandidates is the Responses or Messages front's choice among a fallback model's
// deployments, as for the model asked for (responsesCandidates, messagesCandidates), with the
// translation it makes set in req; nil when none of them can serve the request (a follow-up held
// by another provider).
func (x *exchange) dialectCandidates(req *request, cands []*providers.Deployment) []*providers.Deployment {
	var err error
	switch {
	case x.ep == providers.Responses:
		cands, err = x.responsesCandidates(req, cands)
	case req.messages:
		cands, err = x.messagesCandidates(req, cands)
	}
	if err != nil {
		return nil
	}
	return cands
}

// degradable reports whether a failure is the upstreams' (unavailable, rate limited, timed out),
// which the degrade reply stands in for, rather than the request's or the gateway's.
func degradable(err error) bool {
	if errors.Is(err, errShuttingDown) {
		return false
	}
	status, _ := classify(err)
	return status == http.StatusTooManyRequests || (status >= 500 && status != StatusClientClosed)
}

// degrade answers with the model's degrade reply, as a stream when the client streams. It is
// recorded with the status of the failure it replaces and error type degraded, and never
// charged (outcome.degraded).
func (x *exchange) degrade(d *providers.DegradeReply, f *modelFailure, includeUsage bool) (out outcome) {
	x.g.metrics.degraded.WithLabelValues(x.label).Inc()
	status, _ := classify(f.last)
	out = outcome{status: status, errType: errTypeDegraded, d: f.d, degraded: true}
	body := x.degradeBody(d)
	var events []byte // the stream of a dialect other than chat's, whole
	switch x.ep {
	case providers.Responses:
		body = x.degradeResponse(body)
		events = responses.Replay(body, -1)
	case providers.Messages:
		body = x.degradeMessage(body)
		events = messageEvents(body)
	}
	h := x.c.Writer.Header()
	h.Set(headerDegraded, "true")
	x.serverTiming()
	out.firstByte = time.Now()
	if !x.rec.Stream {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		x.c.Writer.WriteHeader(http.StatusOK)
		_, _ = x.c.Writer.Write(body)
		return out
	}
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	x.c.Writer.WriteHeader(http.StatusOK)
	if events != nil {
		_, _ = x.c.Writer.Write(events)
		x.c.Writer.Flush()
		return out
	}
	for _, ev := range degradeChunks(body, includeUsage) {
		_, _ = x.c.Writer.Write([]byte("data: "))
		_, _ = x.c.Writer.Write(ev)
		_, _ = x.c.Writer.Write([]byte("\n\n"))
		x.c.Writer.Flush()
	}
	_, _ = x.c.Writer.Write([]byte("data: [DONE]\n\n"))
	x.c.Writer.Flush()
	return out
}

// degradeBody is the degrade reply as a whole chat completion: the configured one, or one built
// around the configured text; its id, created and model filled in when missing and every choice's
// finish_reason set to "degraded".
func (x *exchange) degradeBody(d *providers.DegradeReply) []byte {
	var b []byte
	if d.Response != nil {
		b, _ = json.Marshal(d.Response)
	}
	if len(b) == 0 || !gjson.ValidBytes(b) {
		b, _ = sjson.SetBytes([]byte(`{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant"}}]}`),
			"choices.0.message.content", d.Text)
	}
	set := func(path string, v any) {
		if !gjson.GetBytes(b, path).Exists() {
			b, _ = sjson.SetBytes(b, path, v)
		}
	}
	set("id", "chatcmpl-"+x.rec.RequestID)
	set("object", "chat.completion")
	set("created", x.start.Unix())
	set("model", x.rec.Model)
	set("usage", map[string]int{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
	n := int(gjson.GetBytes(b, "choices.#").Int())
	for i := range n {
		b, _ = sjson.SetBytes(b, "choices."+strconv.Itoa(i)+".finish_reason", finishDegraded)
	}
	return b
}

// degradeChunks turns a whole chat completion into the chunks of its stream: per choice, the
// role, the content, then the finish_reason; and a zero usage chunk when the client asked for
// the usage.
func degradeChunks(body []byte, includeUsage bool) [][]byte {
	base := []byte(`{"object":"chat.completion.chunk"}`)
	for _, f := range []string{"id", "created", "model", "system_fingerprint"} {
		if v := gjson.GetBytes(body, f); v.Exists() {
			base, _ = sjson.SetRawBytes(base, f, []byte(v.Raw))
		}
	}
	var out [][]byte
	chunk := func(index int64, field string, v any) {
		c, _ := sjson.SetBytes(append([]byte(nil), base...), "choices.0.index", index)
		c, _ = sjson.SetBytes(c, "choices.0.delta", map[string]any{})
		c, _ = sjson.SetBytes(c, "choices.0.finish_reason", nil)
		c, _ = sjson.SetBytes(c, field, v)
		out = append(out, c)
	}
	gjson.GetBytes(body, "choices").ForEach(func(_, ch gjson.Result) bool {
		i := ch.Get("index").Int()
		role := ch.Get("message.role").String()
		if role == "" {
			role = "assistant"
		}
		chunk(i, "choices.0.delta.role", role)
		if c := ch.Get("message.content"); c.Type == gjson.String && c.Str != "" {
			chunk(i, "choices.0.delta.content", c.Str)
		}
		chunk(i, "choices.0.finish_reason", finishDegraded)
		return true
	})
	if includeUsage {
		u, _ := sjson.SetRawBytes(append([]byte(nil), base...), "choices", []byte("[]"))
		u, _ = sjson.SetRawBytes(u, "usage", []byte(`{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}`))
		out = append(out, u)
	}
	return out
}
