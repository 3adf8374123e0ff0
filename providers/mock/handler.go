package mock

import (
	"cmp"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
)

// Handler is the simulated upstream as an http.Handler: mount it on any server (cmd/mockllm,
// httptest) or run it in process through InProcess. It is safe for concurrent use.
type Handler struct {
	base     behaviour
	wantAuth string // "Bearer <RequireKey>", empty when no key is required
	// awsKeyID and awsSecret verify Bedrock's SigV4 signatures (bedrock.go); empty: not checked.
	awsKeyID, awsSecret string
	seed                uint64
	// seq numbers requests for their ids and for the reproducible error-rate draw; unlike the
	// stats it is never reset, so ids stay unique for the handler's life.
	seq    atomic.Uint64
	stats  counters
	log    requestLog
	models []byte // the GET /v1/models body, rendered once

	// cache holds the prompt prefixes /v1/messages has cached (anthropic.go).
	cache promptCache
	// responses holds the Responses API's stored responses (responses.go); nonce makes their ids
	// unique to this handler.
	responses responseStore
	nonce     string

	// google is the OAuth side of Vertex AI (vertex.go).
	google *googleAuth
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a simulated upstream configured by opts.
func NewHandler(opts Options) *Handler {
	h := &Handler{base: newBehaviour(opts), seed: uint64(opts.Seed), awsKeyID: opts.AWSAccessKeyID, awsSecret: opts.AWSSecretAccessKey}
	if h.seed == 0 {
		h.seed = rand.Uint64()
	}
	if opts.RequireKey != "" {
		h.wantAuth = "Bearer " + opts.RequireKey
	}
	h.google = newGoogleAuth(opts)
	h.models = renderModels(time.Now().Unix())
	h.nonce = strconv.FormatUint(rand.Uint64()>>16, 36)
	return h
}

// endpoint is the API operation a /v1/ path names.
type endpoint int

const (
	epChat endpoint = iota
	epText
	epEmbed
	epModels
	epResponses
	epImages      // images/generations (media.go)
	epModerations // moderations (media.go)
	epImageEdits  // images/edits, multipart (audio.go)
	epTranscriptions
	epTranslations
	epSpeech
)

func (ep endpoint) mainField() string {
	switch ep {
	case epChat:
		return "messages"
	case epText, epImages, epImageEdits:
		return "prompt"
	}
	return "input"
}

// outcome is how a /v1/ request ended, for the stats.
type outcome int

const (
	outcomeCompleted outcome = iota // answered in full
	outcomeError                    // answered with an error status
	outcomeCanceled                 // the client went away first
	outcomeAborted                  // fail_after dropped the connection
)

// apiPaths are the OpenAI endpoints served by serveAPI, by path.
var apiPaths = map[string]endpoint{
	"/v1/chat/completions": epChat, "/v1/completions": epText, "/v1/embeddings": epEmbed,
	"/v1/images/generations": epImages, "/v1/moderations": epModerations, "/v1/images/edits": epImageEdits,
	"/v1/audio/transcriptions": epTranscriptions, "/v1/audio/translations": epTranslations,
	"/v1/audio/speech": epSpeech, "/v1/models": epModels,
}

// ServeHTTP routes the OpenAI endpoints and the /_mock/ introspection endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ep, ok := apiPaths[r.URL.Path]; ok {
		h.serveAPI(w, r, ep)
		return
	}
	switch r.URL.Path {
	case "/v1/messages", "/v1/messages/count_tokens":
		h.serveMessages(w, r, nil) // Anthropic's Messages API (anthropic.go)
	case vertexTokenPath:
		h.serveToken(w, r) // Google's OAuth token endpoint (vertex.go)
	case "/v1/responses":
		h.serveResponses(w, r) // OpenAI's Responses API (responses.go)
	case "/_mock/stats":
		h.serveStats(w, r)
	case "/_mock/requests":
		h.serveRequests(w, r)
	case "/_mock/reset":
		h.serveReset(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, "/v1/responses/") {
			h.serveResponses(w, r)
			return
		}
		if isGeminiPath(r.URL.Path) { // /v1beta/models/{model}:{method}, see gemini.go
			h.serveGemini(w, r, nil)
			return
		}
		if v, ok := parseVertexPath(r.URL.Path); ok { // /v1/…/publishers/{publisher}/models/{model}:{method}, see vertex.go
			h.serveVertex(w, r, v)
			return
		}
		if model, op, ok := bedrockPath(r.URL); ok { // /model/{modelId}/{operation}, see bedrock.go
			h.serveBedrock(w, r, model, op)
			return
		}
		writeError(w, http.StatusNotFound, api.NewError(api.TypeInvalidRequest,
			"unknown_url", "", "Invalid URL ("+r.Method+" "+r.URL.Path+")"))
	}
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, ep endpoint) {
	h.stats.requests.Add(1)
	h.stats.inFlight.Add(1)
	out := h.answer(w, r, ep)
	h.stats.inFlight.Add(-1)
	h.stats.count(out)
	if out == outcomeAborted {
		// net/http drops the connection without ending the chunked body, so the client sees an
		// unexpected EOF, as when an upstream dies mid-stream; InProcess does the same on its pipe.
		panic(http.ErrAbortHandler)
	}
}

// answer runs one /v1/ request. It records the request before anything can fail, so that tests
// see every request that reached the upstream, even rejected ones.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, ep endpoint) outcome {
	buf := getBuffer()
	defer putBuffer(buf)
	body, err := readBody(*buf, r.Body, r.ContentLength)
	*buf = body
	h.log.record(r.URL.Path, r.Header, body)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return writeError(w, http.StatusRequestEntityTooLarge, api.NewError(api.TypeInvalidRequest,
				"", "", "request body larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes"))
		}
		return outcomeCanceled
	}
	if h.wantAuth != "" && r.Header.Get("Authorization") != h.wantAuth {
		return writeError(w, http.StatusUnauthorized, errIncorrectKey)
	}
	if ep == epModels {
		if r.Method != http.MethodGet {
			return writeMethodNotAllowed(w, http.MethodGet)
		}
		return writeJSON(w, h.models)
	}
	if r.Method != http.MethodPost {
		return writeMethodNotAllowed(w, http.MethodPost)
	}
	// The body buffer lives until answer returns and is not written meanwhile, so viewing it as a
	// string lets gjson hand out substrings instead of copies.
	var c call
	if ep.multipart() {
		c, err = parseFormCall(ep, body, r.Header.Get("Content-Type"), h.base)
	} else {
		c, err = parseCall(ep, unsafe.String(unsafe.SliceData(body), len(body)), h.base)
		if err == nil && ep == epSpeech {
			err = parseSpeech(&c, unsafe.String(unsafe.SliceData(body), len(body)))
		}
	}
	if err != nil {
		return writeError(w, http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "", "", err.Error()))
	}
	if c.b.requireKey != "" && r.Header.Get("Authorization") != "Bearer "+c.b.requireKey {
		return writeError(w, http.StatusUnauthorized, errIncorrectKey)
	}
	seq := h.seq.Add(1)
	wt := waiter{ctx: r.Context()}
	defer wt.stop()
	if !wt.wait(c.b.hang) {
		return outcomeCanceled
	}
	if o, ok := h.fault(w, &c.b, seq, func(status int) outcome { return writeError(w, status, statusError(status)) }); ok {
		return o
	}
	switch {
	case c.stream && (ep == epChat || ep == epText): // moderations answer whole
		return writeStream(w, &wt, ep, &c, seq)
	case c.stream && ep == epTranscriptions && tokenModel(&c): // whisper-1 ignores stream
		return writeTranscriptStream(w, &wt, &c)
	case ep == epSpeech:
		return writeSpeech(w, &wt, &c)
	case c.stream && (ep == epImages || ep == epImageEdits) && gptImageModel(&c):
		return writeImageStream(w, &wt, &c, map[bool]string{true: "image_generation.", false: "image_edit."}[ep == epImages])
	}
	if !wt.wait(c.b.latency) {
		return outcomeCanceled
	}
	out := getBuffer()
	defer putBuffer(out)
	switch ep {
	case epEmbed:
		*out = appendEmbeddings(*out, &c)
	case epImages, epImageEdits:
		*out = appendImages(*out, &c, seq, time.Now().Unix())
	case epTranscriptions, epTranslations:
		var ct string
		*out, ct = renderTranscription(*out, ep, &c)
		return writeBody(w, ct, *out)
	case epModerations:
		*out = appendModerations(*out, &c, seq)
	default:
		*out = appendCompletion(*out, ep, &c, seq, time.Now().Unix())
	}
	return writeJSON(w, *out)
}

// draw maps (seed, seq) to [0, 1) with SplitMix64, so that a seeded run fails the same requests
// without any shared random state on the hot path. A request's own seed replaces both, so that
// its fate does not depend on what came before it.
// fault injects the call's scripted fault, if any, once its hang is waited out: a raw error body, a
// status, or a drawn error at the error rate. writeStatus writes a status in the wire format's
// own error shape. It reports whether it answered.
func (h *Handler) fault(w http.ResponseWriter, b *behaviour, seq uint64, writeStatus func(status int) outcome) (outcome, bool) {
	switch {
	case b.hasErrorBody:
		return writeRawError(w, cmp.Or(b.status, http.StatusInternalServerError), b.errorBody), true
	case b.status != 0:
		return writeStatus(b.status), true
	case b.errorRate > 0 && h.draw(b, seq) < b.errorRate:
		return writeStatus(http.StatusInternalServerError), true
	}
	return 0, false
}

func (h *Handler) draw(b *behaviour, seq uint64) float64 {
	x := h.seed + seq*0x9e3779b97f4a7c15
	if b.hasSeed {
		x = b.seed
	}
	return float64(splitmix64(x)>>11) / (1 << 53)
}

// splitmix64 is the finaliser of SplitMix64 (https://prng.di.unimi.it/splitmix64.c): a cheap,
// well-mixed hash of a 64-bit value.
func splitmix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// errIncorrectKey is OpenAI's answer to a wrong key (a 401 whose type is invalid_request_error).
var errIncorrectKey = api.NewError(api.TypeInvalidRequest, "invalid_api_key", "", "Incorrect API key provided.")

// statusError is the OpenAI error a simulated failure with this status carries.
func statusError(status int) api.ErrorObject {
	msg := "mock: simulated " + strconv.Itoa(status) + " " + http.StatusText(status)
	switch {
	case status == http.StatusUnauthorized:
		return api.NewError(api.TypeInvalidRequest, "invalid_api_key", "", msg)
	case status == http.StatusForbidden:
		return api.NewError(api.TypePermission, "", "", msg)
	case status == http.StatusNotFound:
		return api.NewError(api.TypeInvalidRequest, "model_not_found", "", msg)
	case status == http.StatusTooManyRequests:
		return api.NewError(api.TypeRateLimit, "rate_limit_exceeded", "", msg)
	case status >= 500:
		return api.NewError(api.TypeServer, "", "", msg)
	}
	return api.NewError(api.TypeInvalidRequest, "", "", msg)
}

func writeError(w http.ResponseWriter, status int, e api.ErrorObject) outcome {
	e.Write(w, status)
	return outcomeError
}

func writeMethodNotAllowed(w http.ResponseWriter, allow string) outcome {
	w.Header().Set("Allow", allow)
	return writeError(w, http.StatusMethodNotAllowed, api.NewError(api.TypeInvalidRequest,
		"", "", "method not allowed; use "+allow))
}

// writeRawError sends a caller-chosen error body, labelled JSON only when it is JSON, since the
// point is to feed the gateway bodies that are not OpenAI's.
func writeRawError(w http.ResponseWriter, status int, body string) outcome {
	ct := "text/plain; charset=utf-8"
	if gjson.Valid(body) {
		ct = "application/json"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return outcomeError
}

func writeJSON(w http.ResponseWriter, body []byte) outcome {
	return writeBody(w, "application/json", body)
}

// writeBody sends a whole 200 answer of the given content type.
func writeBody(w http.ResponseWriter, contentType string, body []byte) outcome {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// waiter sleeps on one timer reused across a request's waits, giving up as soon as the request
// context is canceled. Not safe for concurrent use.
type waiter struct {
	ctx context.Context
	t   *time.Timer
}

// wait reports whether d elapsed before the request was canceled. A zero wait returns at once
// without consulting the context: the next write notices a client that is gone.
func (wt *waiter) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	if wt.t == nil {
		wt.t = time.NewTimer(d)
	} else {
		wt.t.Reset(d)
	}
	select {
	case <-wt.t.C:
		return true
	case <-wt.ctx.Done():
		return false
	}
}

func (wt *waiter) stop() {
	if wt.t != nil {
		wt.t.Stop()
	}
}

// Buffers hold request bodies and rendered answers. Buffers that grew past maxPooled (a huge
// prompt) are dropped rather than pinned in the pool.
const maxPooled = 1 << 20

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooled {
		*b = (*b)[:0]
		bufferPool.Put(b)
	}
}

// readBody appends r to dst, growing it once when the length is announced.
func readBody(dst []byte, r io.Reader, contentLength int64) ([]byte, error) {
	if contentLength > 0 && contentLength < 1<<31 {
		// One spare byte lets the read that returns io.EOF land without another growth.
		dst = slices.Grow(dst, int(contentLength)+1)
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
