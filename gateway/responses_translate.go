package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/responses"
	"github.com/llmgate/llmgate/store"
)

// Deployments whose upstream speaks only Chat Completions (Anthropic, Gemini, the chat-only
// OpenAI-compatible presets) serve the Responses API by translation (providers/responses): the
// request goes to their chat endpoint as ToChat's body, the answer comes back as a Response
// (FromChat) or its event stream (NewStream), relayed event by event like a native one. Such a
// response exists only in the gateway, so the gateway keeps it: the conversation a follow-up
// replays and the Response object, in the route's row (tenant-scoped, with the routes' TTL).
//
// Which deployments get which body is decided once per request, before admission:
//   - no previous_response_id: passthrough deployments get the body as it came, chat-only ones
//     the translation. A request the translation refuses (a built-in tool, background…) goes
//     only to the passthrough deployments; with none, it is answered with the translation's 400.
//   - a follow-up of a translated response: every deployment of the model gets the translation
//     with the stored conversation before the new input (any of them can continue it, an
//     OpenAI one through its chat endpoint).
//   - a follow-up of a passthrough response stays pinned to the deployment holding it.

// translation is a Responses request as the chat-only deployments get it.
type translation struct {
	chat []byte // ToChat's body, with the public model (set per deployment)
	info responses.RequestInfo
	// all: every deployment gets it, passthrough ones too (the gateway holds the conversation).
	all bool
}

// serves reports whether d is sent the translation rather than the Responses body.
func (t *translation) serves(d *providers.Deployment) bool {
	return t != nil && (t.all || !providers.NativeResponses(d.Provider))
}

// body is the chat body for a deployment's upstream model.
func (t *translation) body(model string) ([]byte, error) {
	if model == t.info.Model {
		return t.chat, nil
	}
	return sjson.SetBytes(t.chat, "model", model)
}

// translate runs ToChat; a request it refuses is an OpenAI-style 400.
func translate(body, history []byte) (*translation, error) {
	chat, info, err := responses.ToChat(body, responses.Options{History: history})
	if err != nil {
		var re *responses.RequestError
		if errors.As(err, &re) {
			return nil, &Error{Status: http.StatusBadRequest, API: re.Object()}
		}
		return nil, err
	}
	return &translation{chat: chat, info: info}, nil
}

// errNotBackground answers a cancel of a response the gateway made by translation: only
// background responses can be cancelled, and these never are.
var errNotBackground = newError(http.StatusBadRequest, api.TypeInvalidRequest, "response_not_cancellable", "",
	"Only responses created with background mode can be cancelled; this one was not.")

// errBadUpstreamAnswer answers a translated request whose upstream sent something that is not a
// chat completion.
var errBadUpstreamAnswer = newError(http.StatusBadGateway, api.TypeUpstream, "upstream_bad_answer", "",
	"The upstream's answer could not be read as a chat completion.")

// fromTranslator converts the translation's usage.
func fromTranslator(u responses.Usage) usage {
	return usage{prompt: u.InputTokens, completion: u.OutputTokens, cached: u.CachedTokens, reasoning: u.ReasoningTokens,
		cacheWrite: u.CacheWriteTokens, found: u.Found}
}

// relayTranslated relays a 2xx chat answer to a translated request as the Responses API answers:
// a stream event by event through the Responses relay, a whole answer as one Response.
func (x *exchange) relayTranslated(resp *http.Response, t *translation, secrets []string) (out outcome) {
	if x.streamedAnswer(resp) {
		resp.Body = responses.NewStream(resp.Body, t.info)
		x.relayStream(&out, resp, false, secrets)
		return out
	}
	defer carry(&out)
	buf := getBuffer()
	defer putBuffer(buf)
	if err := x.readAnswer(resp.Body, buf); err != nil {
		return x.failed(err)
	}
	doc, u, err := responses.FromChat(buf.Bytes(), t.info)
	if err != nil {
		return x.failed(errBadUpstreamAnswer)
	}
	if out.usage = fromTranslator(u); !out.usage.found {
		out.answer.addResponse(doc)
	}
	doc = x.keepTranslated(doc)
	x.sendWhole(&out, resp.StatusCode, "application/json", doc)
	return out
}

// keepTranslated stores a translated response for follow-ups and GET by id, with the caller's
// tenant, unless the request said store:false, and returns the Response as the client gets it:
// with "store":false when the gateway could not keep it (too large, or the store failed), so
// that the client is not promised a follow-up that would be refused. It runs before the end of
// the answer leaves (a follow-up sent as soon as the answer is complete must find it), with a
// context of its own: a client that left does not undo a response it was charged for.
func (x *exchange) keepTranslated(doc []byte) []byte {
	t, d := x.translating, x.answering
	if x.g.responses == nil || t == nil || d == nil || !t.info.Store {
		return doc
	}
	id := gjson.GetBytes(doc, "id").Str
	history, err := responses.NextHistory(t.info.Input, doc)
	switch {
	case err != nil:
		x.g.log.Error("translated response not kept: its conversation cannot be built", "request_id", x.rec.RequestID, "response_id", id, "err", err)
		return unstored(doc)
	case len(history)+len(doc) > x.g.opts.ResponsesMaxKeptBytes:
		// Answered all the same; the client learns from "store":false that a follow-up must
		// carry the conversation itself.
		x.g.log.Warn("translated response not kept: conversation over the size limit", "request_id", x.rec.RequestID, "response_id", id,
			"bytes", len(history)+len(doc), "limit", x.g.opts.ResponsesMaxKeptBytes)
		return unstored(doc)
	}
	now := time.Now()
	err = x.g.routes.put(store.ResponseRoute{ResponseID: id, TenantID: x.id.Key.TenantID, KeyID: x.id.Key.ID,
		Model: x.rec.Model, DeploymentID: d.ID, Provider: d.ProviderName, CreatedAt: now, ExpiresAt: now.Add(x.g.opts.ResponsesTTL),
		History: history, Response: doc}, routeWriteTimeout)
	if err != nil {
		x.g.log.Error("translated response not kept: follow-ups on it will be refused", "request_id", x.rec.RequestID, "response_id", id, "err", err)
		return unstored(doc)
	}
	return doc
}

// unstored marks a Response as not kept.
func unstored(doc []byte) []byte {
	if out, err := sjson.SetBytes(doc, "store", false); err == nil {
		return out
	}
	return doc
}

// keptByID serves GET, DELETE and cancel of a response the gateway keeps itself: answered from
// the store, no upstream call.
func (x *exchange) keptByID(method, op string, rt store.ResponseRoute, rq retrieveQuery) outcome {
	cands, _, err := x.route(rt.Model)
	if err != nil {
		return x.failed(err)
	}
	payer, err := x.whoPays()
	if err != nil {
		return x.failed(err)
	}
	x.payer = payer
	lease, err := x.admit(request{model: rt.Model, lookup: true}, cands, payer)
	if err != nil {
		return x.failed(err)
	}
	x.lease = lease
	var out outcome
	switch {
	case op != "":
		return x.failed(errNotBackground)
	case method == http.MethodDelete:
		ctx, cancel := context.WithTimeout(x.ctx, routeWriteTimeout)
		defer cancel()
		if err := x.g.responses.DeleteResponseRoute(ctx, rt.ResponseID); errors.Is(err, store.ErrNotFound) {
			return x.failed(errResponseNotFound(rt.ResponseID))
		} else if err != nil {
			x.g.log.Warn("translated response not deleted", "request_id", x.rec.RequestID, "response_id", rt.ResponseID, "err", err)
			return x.failed(errResponseRoutesDown)
		}
		body, _ := sjson.SetBytes([]byte(`{"id":"","object":"response","deleted":true}`), "id", rt.ResponseID)
		x.sendWhole(&out, http.StatusOK, "application/json", body)
	case rq.stream:
		// The events it was made with are gone, but the response is whole: they are rendered
		// again from it, so a client resuming (or asking for a stream) gets what a stream from
		// the start would have brought from starting_after on.
		x.c.Writer.Header().Set("Cache-Control", "no-cache")
		x.sendWhole(&out, http.StatusOK, "text/event-stream", responses.Replay(rt.Response, rq.startingAfter))
	default:
		x.sendWhole(&out, http.StatusOK, "application/json", rt.Response)
	}
	return out
}
