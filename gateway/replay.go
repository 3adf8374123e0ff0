package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/billing"
	"github.com/llmgate/llmgate/internal/replay"
	"github.com/llmgate/llmgate/providers"
)

// sourceCache is the usage source of an answer the gateway sent again without an upstream
// call: a response cache hit, or an idempotent replay.
const sourceCache = "cache"

// replayState is what the response cache and the client's Idempotency-Key hold for one request.
// It exists only for requests either applies to: the rest pay nothing for them.
type replayState struct {
	// cacheKey is the request's key in the response cache ("": the cache does not apply); lookup
	// and keep are what the client's Cache-Control allows (no-cache: no lookup; no-store:
	// neither).
	cacheKey     string
	lookup, keep bool
	// claim is the request's hold on its idempotency key, which settle finishes with the answer
	// or releases.
	claim *replay.Claim
	// hit is the answer sent instead of an upstream call; idem tells an idempotent replay from a
	// cache hit.
	hit  *replay.Entry
	idem bool
	// capture gathers the answer as it is written, for the cache or the idempotency record.
	capture *captureWriter
}

// replayMetrics are the response cache's and idempotency's series.
type replayMetrics struct {
	cache *prometheus.CounterVec
	idem  *prometheus.CounterVec
}

func newReplayMetrics(reg prometheus.Registerer) *replayMetrics {
	m := &replayMetrics{
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_response_cache_lookups_total",
			Help: "Response cache lookups by public model and result: hit, miss, bypass (Cache-Control no-cache or no-store), error (the cache store failed; the request went upstream)."},
			[]string{"model", "result"}),
		idem: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "llmgate_idempotency_requests_total",
			Help: "Requests with an Idempotency-Key by result: new, replayed, conflict (still running: 409), mismatch (another request: 422), error (the store failed; the request ran without the key)."},
			[]string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.cache, m.idem)
	}
	return m
}

// Errors of the Idempotency-Key header.
var (
	// errIdemInvalid: the key must be something a client can have made on purpose.
	errIdemInvalid = newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_idempotency_key", "",
		"The Idempotency-Key header must be 1 to 255 visible ASCII characters.")
	// errIdemBusy is 409, as the IETF draft on the Idempotency-Key header has it for a request
	// still being processed.
	errIdemBusy = newError(http.StatusConflict, api.TypeInvalidRequest, "idempotency_key_in_use", "",
		"A request with this Idempotency-Key is still being processed; retry once it has completed.")
	// errIdemReused is 422, as the same draft has it for a key reused with another payload: the
	// request is well formed (not 400), but it cannot be the request the key names.
	errIdemReused = newError(http.StatusUnprocessableEntity, api.TypeInvalidRequest, "idempotency_key_reused", "",
		"This Idempotency-Key was already used with a different request (another body, endpoint or model); send a new key with a new request.")
)

// validIdempotencyKey: 1 to 255 visible ASCII characters, as Stripe takes them.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// cacheable endpoints answer the same body with an answer worth keeping, and keep no state of
// their own upstream (a Responses API answer is a stored response with its own id; media answers
// are large and their bodies multipart).
func cacheable(ep providers.Endpoint, req request) bool {
	switch ep {
	case providers.ChatCompletions, providers.Completions, providers.Embeddings, providers.Moderations:
		return true
	case providers.Messages:
		return !req.counting
	}
	return false
}

// cacheControl is what a client's Cache-Control asks of the response cache.
func cacheControl(h string) (noCache, noStore bool) {
	for d := range strings.SplitSeq(h, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if i := strings.IndexByte(d, '='); i >= 0 {
			d = d[:i]
		}
		switch d {
		case "no-cache":
			noCache = true
		case "no-store":
			noStore = true
		}
	}
	return noCache, noStore
}

// cacheControl is what the client asks of the response cache: X-Llmgate-Cache-Control when
// sent, else Cache-Control, whose no-cache a stream request does not mean for the gateway: SSE
// clients send it with every stream (EventSource, go-openai), asking proxies not to buffer.
func (x *exchange) cacheControl(req request) (noCache, noStore bool) {
	h := x.c.Request.Header
	if own := h.Get("X-Llmgate-Cache-Control"); own != "" {
		return cacheControl(own)
	}
	noCache, noStore = cacheControl(h.Get("Cache-Control"))
	return noCache && !req.stream, noStore
}

// answerHeaders are the request headers that change an upstream's answer beside the body, part
// of the fingerprint: Anthropic's version and beta headers on the Messages API.
func (x *exchange) answerHeaders() []string {
	if x.ep != providers.Messages {
		return nil
	}
	h := x.c.Request.Header
	return []string{strings.Join(h.Values("Anthropic-Version"), ","), strings.Join(h.Values("Anthropic-Beta"), ",")}
}

// cacheWanted reports whether the response cache applies to the request's model for its key:
// the config opts the model in, or an admin opted the key or its tenant in.
func (x *exchange) cacheWanted(model string) bool {
	return x.g.cache.ForModel(model) || x.id.Key.ResponseCache || x.id.Key.TenantResponseCache
}

// beginReplay looks up the request's idempotency key and the response cache, before admission.
// It ends the request (true) with a 400, 409 or 422 for an idempotency key that cannot run now;
// otherwise x.replay says what was found, when either applies. A store that fails costs the
// request nothing but the feature: it runs as if neither applied.
func (x *exchange) beginReplay(req request) (outcome, bool) {
	g := x.g
	idemKey := x.c.Request.Header.Get("Idempotency-Key")
	useIdem := idemKey != "" && *g.idem.Options().Enabled && req.upload == nil && !req.lookup && !req.counting
	useCache := g.cache != nil && cacheable(x.ep, req) && x.cacheWanted(req.model)
	if !useIdem && !useCache {
		return outcome{}, false
	}
	if useIdem && !validIdempotencyKey(idemKey) {
		return x.failed(errIdemInvalid), true
	}
	fp, err := replay.Fingerprint(string(x.ep), req.model, req.body, x.answerHeaders()...)
	if err != nil { // the body checker took it, so this is not expected: serve it as usual
		g.log.Warn("request body not canonicalised; no cache or idempotency for it", "request_id", x.rec.RequestID, "err", err)
		return outcome{}, false
	}
	rs := &replayState{}
	x.replay = rs
	k := x.id.Key
	if useIdem {
		b, err := g.idem.Begin(x.ctx, k.TenantID, k.ID, idemKey, fp)
		switch {
		case err != nil:
			g.replays.idem.WithLabelValues("error").Inc()
			g.log.Warn("idempotency store failed; the request runs without its key", "request_id", x.rec.RequestID, "err", err)
		case b.Mismatch:
			g.replays.idem.WithLabelValues("mismatch").Inc()
			return x.failed(errIdemReused), true
		case b.Busy:
			g.replays.idem.WithLabelValues("conflict").Inc()
			return x.failed(errIdemBusy), true
		case b.Entry != nil:
			g.replays.idem.WithLabelValues("replayed").Inc()
			rs.hit, rs.idem = b.Entry, true
			return outcome{}, false
		default:
			g.replays.idem.WithLabelValues("new").Inc()
			rs.claim = b.Claim
		}
	}
	if !useCache {
		return outcome{}, false
	}
	noCache, noStore := x.cacheControl(req)
	rs.cacheKey, rs.lookup, rs.keep = replay.Key(k.TenantID, fp), !noCache && !noStore, !noStore
	result := "bypass"
	if rs.lookup {
		e, err := g.cache.Get(x.ctx, rs.cacheKey)
		switch {
		case err != nil:
			result = "error"
			g.log.Warn("response cache lookup failed; asking the upstream", "request_id", x.rec.RequestID, "err", err)
		case e != nil:
			result, rs.hit = "hit", e
		default:
			result = "miss"
		}
	}
	g.replays.cache.WithLabelValues(x.label, result).Inc()
	if result == "hit" {
		x.c.Writer.Header().Set("X-Llmgate-Cache", "hit")
	} else {
		x.c.Writer.Header().Set("X-Llmgate-Cache", "miss")
	}
	return outcome{}, false
}

// replaying reports whether the request is answered from a stored answer.
func (x *exchange) replaying() bool { return x.replay != nil && x.replay.hit != nil }

// startCapture makes the answer's writes kept as they go, when there is somewhere to keep it.
func (x *exchange) startCapture() {
	rs := x.replay
	if rs == nil {
		return
	}
	limit := -1
	if rs.cacheKey != "" && rs.keep {
		limit = x.g.cache.Options().MaxEntryBytes
	}
	if rs.claim != nil {
		limit = max(limit, x.g.idem.Options().MaxEntryBytes)
	}
	if limit < 0 {
		return
	}
	rs.capture = &captureWriter{ResponseWriter: x.c.Writer, max: limit}
	x.c.Writer = rs.capture
}

// replayAnswer sends the stored answer: a whole answer in one write, a stream event by event, each
// flushed, as the first client got them.
func (x *exchange) replayAnswer() outcome {
	e := x.replay.hit
	h := x.c.Writer.Header()
	if x.replay.idem {
		h.Set("Idempotent-Replayed", "true")
	}
	h.Set("Content-Type", e.ContentType)
	if e.Stream {
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
	} else {
		h.Set("Content-Length", strconv.Itoa(e.Size()))
	}
	x.serverTiming()
	rc := http.NewResponseController(x.c.Writer)
	deadline := x.g.writeDeadline(rc)
	out := outcome{status: e.Status, firstByte: time.Now()}
	x.c.Writer.WriteHeader(e.Status)
	for _, p := range e.Parts {
		deadline.arm(time.Now())
		if _, err := x.c.Writer.Write(p); err != nil {
			out.fail(context.Canceled) // the client went away
			return out
		}
		if e.Stream {
			if err := rc.Flush(); err != nil {
				out.fail(context.Canceled)
				return out
			}
		}
	}
	return out
}

// finishReplayUsage records a replayed answer: usage source cache, pointing at the record whose
// answer it is. An idempotent replay is the same request again: no tokens, no cost, no
// deployment (so the rollups do not count it twice). A cache hit is a request of its own: the
// answer's tokens and deployment, free unless response_cache.price_percent prices it, and its
// tokens never count against token quotas (settleQuota).
func (x *exchange) finishReplayUsage() {
	r, e := &x.rec, x.replay.hit
	r.UsageSource, r.ReplayOf = sourceCache, e.RequestID
	zero := int64(0)
	r.CostPicoUSD = &zero
	if x.replay.idem {
		return
	}
	r.UpstreamModel, r.Provider, r.Deployment = e.UpstreamModel, e.Provider, e.Deployment
	r.PromptTokens, r.CompletionTokens, r.CachedTokens, r.ReasoningTokens = e.Prompt, e.Completion, e.Cached, e.Reasoning
	pct := x.g.cache.Options().PricePercent
	if pct <= 0 {
		return
	}
	price, ok := x.g.prices.Lookup(r.UpstreamModel)
	if !ok {
		price, ok = x.g.prices.Lookup(r.Model)
	}
	if !ok {
		return
	}
	full, err := billing.Cost(price, billing.Usage{Prompt: r.PromptTokens, Completion: r.CompletionTokens, Cached: r.CachedTokens, Reasoning: r.ReasoningTokens})
	if err != nil {
		return
	}
	p := int64(pct)
	cost := full/100*p + full%100*p/100 // full × p / 100, rounded down, without overflow
	r.CostPicoUSD, r.PriceVersion, r.Charge = &cost, price.Version, cost > 0
	x.payer.Mark(r)
	x.g.metrics.cost(x.label, r.UserID, r.TenantID, r.PromptTokens, r.CompletionTokens, cost)
}

// endReplay keeps a successful answer in the response cache and under the request's idempotency
// key, or frees the key of a request that failed (a retry runs again). It runs in settle, after
// the answer has left, with a context of its own.
func (x *exchange) endReplay(out *outcome) {
	rs := x.replay
	if rs == nil || (rs.claim == nil && (rs.cacheKey == "" || !rs.keep || rs.hit != nil)) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var e *replay.Entry
	ok := out.status == http.StatusOK && out.errType == ""
	switch {
	case !ok:
	case rs.hit != nil: // a cache hit under a new idempotency key: its answer is this request's now
		c := *rs.hit
		c.RequestID = x.rec.RequestID
		e = &c
	case rs.capture != nil && !rs.capture.over:
		r := &x.rec
		ct := rs.capture.Header().Get("Content-Type")
		e = &replay.Entry{Status: out.status, ContentType: ct, Stream: r.Stream && isEventStream(ct), Parts: rs.capture.parts,
			Prompt: r.PromptTokens, Completion: r.CompletionTokens, Cached: r.CachedTokens, Reasoning: r.ReasoningTokens,
			RequestID: r.RequestID, UpstreamModel: r.UpstreamModel, Provider: r.Provider, Deployment: r.Deployment}
	}
	if e != nil && rs.cacheKey != "" && rs.keep && rs.hit == nil {
		if err := x.g.cache.Put(ctx, rs.cacheKey, e); err != nil {
			x.g.log.Warn("response cache store failed", "request_id", x.rec.RequestID, "err", err)
		}
	}
	if rs.claim == nil {
		return
	}
	var err error
	if e != nil {
		err = x.g.idem.Finish(ctx, rs.claim, e)
	} else {
		err = x.g.idem.Release(ctx, rs.claim)
	}
	if err != nil {
		x.g.log.Warn("idempotency store failed at the end of the request", "request_id", x.rec.RequestID, "err", err)
	}
}

// captureWriter keeps what is written to the client, one part per write (one SSE event each on
// a stream), up to max bytes: past that it keeps nothing (over) and the answer is not stored.
type captureWriter struct {
	gin.ResponseWriter
	parts [][]byte
	size  int
	max   int
	over  bool
}

func (w *captureWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	if !w.over {
		if w.size+n > w.max {
			w.over, w.parts = true, nil
		} else {
			w.parts = append(w.parts, bytes.Clone(b[:n]))
			w.size += n
		}
	}
	return n, err
}

func (w *captureWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }
