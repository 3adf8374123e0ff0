package mock

// This file simulates OpenAI's Responses API (PROVIDERS-2.md §1): POST /v1/responses (stream and
// non-stream), GET and DELETE /v1/responses/{id}, and POST /v1/responses/{id}/cancel, with the
// same words, token rules, overrides and faults as chat completions.
//
// Requests: "input" is required (a string, or an array of items); "max_output_tokens" limits the
// answer as max_tokens does for chat. The prompt counts as the chat rule does, the input string
// and "instructions" each being one message (3 + its words); an item of an input array counts 3 +
// the words of its content (a string, or the "text" of each part) when it is a message, and the
// words of its "output" (function_call_output) or nothing otherwise.
//
// Answers: one "message" output item with one "output_text" part; a cut answer has status
// "incomplete" and incomplete_details.reason "max_output_tokens". Usage is input_tokens,
// output_tokens (with zero cached and reasoning details) and total_tokens, null with no_usage. A
// stream sends, each with its "event:" line and a sequence_number from 0: response.created,
// response.in_progress, response.output_item.added, response.content_part.added, one
// response.output_text.delta per chunk, response.output_text.done, response.content_part.done,
// response.output_item.done and response.completed (response.incomplete when cut), whose
// response carries the usage. There is no [DONE]. fail_after drops the connection after that many
// deltas.
//
// GET /v1/responses/{id}?stream=true[&starting_after=N] replays a stored response as its event
// stream (providers/responses.Replay: each text in one delta), from the event after N.
//
// State: every completed response is kept (the last 10 000, by id) for GET, DELETE and as a
// previous_response_id; an unknown previous_response_id is answered 400
// previous_response_not_found, as OpenAI does, so a gateway that sends a follow-up to the wrong
// upstream is caught. Ids carry a per-handler random part, so two handlers never share one.

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers/responses"
)

// maxStoredResponses bounds the responses a handler keeps.
const maxStoredResponses = 10_000

// responseStore keeps the rendered responses of a handler by id.
type responseStore struct {
	mu    sync.Mutex
	byID  map[string][]byte
	order []string // ids oldest first, for dropping beyond maxStoredResponses
}

func (s *responseStore) put(id string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string][]byte{}
	}
	if _, ok := s.byID[id]; !ok {
		s.order = append(s.order, id)
	}
	s.byID[id] = append([]byte(nil), body...)
	for len(s.order) > maxStoredResponses {
		delete(s.byID, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *responseStore) get(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.byID[id]
	return b, ok
}

func (s *responseStore) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byID[id]
	delete(s.byID, id)
	return ok
}

// serveResponses routes /v1/responses and /v1/responses/{id}[/cancel].
func (h *Handler) serveResponses(w http.ResponseWriter, r *http.Request) {
	h.stats.requests.Add(1)
	h.stats.inFlight.Add(1)
	out := h.answerResponses(w, r)
	h.stats.inFlight.Add(-1)
	h.stats.count(out)
	if out == outcomeAborted {
		panic(http.ErrAbortHandler) // as serveAPI: the client sees the connection drop mid-stream
	}
}

func (h *Handler) answerResponses(w http.ResponseWriter, r *http.Request) outcome {
	buf := getBuffer()
	defer putBuffer(buf)
	body, err := readBody(*buf, r.Body, r.ContentLength)
	*buf = body
	h.log.record(r.URL.Path, r.Header, body)
	if err != nil {
		return outcomeCanceled
	}
	if h.wantAuth != "" && r.Header.Get("Authorization") != h.wantAuth {
		return writeError(w, http.StatusUnauthorized, errIncorrectKey)
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1/responses"), "/")
	if rest != "" {
		return h.responseByID(w, r, rest)
	}
	if r.Method != http.MethodPost {
		return writeMethodNotAllowed(w, http.MethodPost)
	}
	c, err := parseCall(epResponses, string(body), h.base)
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
	if c.previous != "" {
		if _, ok := h.responses.get(c.previous); !ok {
			return writeError(w, http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "previous_response_not_found",
				"previous_response_id", "Previous response with id '"+c.previous+"' not found."))
		}
	}
	rs := responseState{c: &c, id: "resp_mock" + h.nonce + "_" + strconv.FormatUint(seq, 10),
		msg: "msg_mock" + h.nonce + "_" + strconv.FormatUint(seq, 10), created: time.Now().Unix()}
	rs.tokens, rs.chunks, rs.finish = c.plan()
	if c.stream {
		return h.writeResponsesStream(w, &wt, &rs)
	}
	if !wt.wait(c.b.latency) {
		return outcomeCanceled
	}
	final := rs.appendResponse(nil, true)
	h.responses.put(rs.id, final)
	return writeJSON(w, final)
}

// responseByID answers GET, DELETE and POST …/cancel on one stored response.
func (h *Handler) responseByID(w http.ResponseWriter, r *http.Request, rest string) outcome {
	id, op, _ := strings.Cut(rest, "/")
	stored, ok := h.responses.get(id)
	notFound := func() outcome {
		return writeError(w, http.StatusNotFound, api.NewError(api.TypeInvalidRequest, "", "", "No response found with id '"+id+"'."))
	}
	switch {
	case op == "" && r.Method == http.MethodGet:
		if !ok {
			return notFound()
		}
		if q := r.URL.Query(); q.Get("stream") == "true" {
			return writeReplay(w, stored, q.Get("starting_after"))
		}
		return writeJSON(w, stored)
	case op == "" && r.Method == http.MethodDelete:
		if !h.responses.remove(id) {
			return notFound()
		}
		return writeJSON(w, []byte(`{"id":"`+id+`","object":"response","deleted":true}`))
	case op == "cancel" && r.Method == http.MethodPost:
		if !ok {
			return notFound()
		}
		return writeError(w, http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "", "",
			"Only responses created with background=true can be cancelled."))
	case op == "":
		return writeMethodNotAllowed(w, "GET, DELETE")
	case op == "cancel":
		return writeMethodNotAllowed(w, http.MethodPost)
	}
	return writeError(w, http.StatusNotFound, api.NewError(api.TypeInvalidRequest, "unknown_url", "", "Invalid URL ("+r.Method+" "+r.URL.Path+")"))
}

// writeReplay answers GET …?stream=true: the stored response as its event stream
// (responses.Replay, each text in one delta), from the event after starting_after.
func writeReplay(w http.ResponseWriter, stored []byte, startingAfter string) outcome {
	after := int64(-1)
	if startingAfter != "" {
		n, err := strconv.ParseInt(startingAfter, 10, 64)
		if err != nil {
			return writeError(w, http.StatusBadRequest, api.NewError(api.TypeInvalidRequest, "", "starting_after", "starting_after must be an integer."))
		}
		after = n
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(responses.Replay(stored, after)); err != nil {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// responseState is one response being answered.
type responseState struct {
	c              *call
	id, msg        string
	created        int64
	tokens, chunks int
	finish         string
	seqNo          int // the next event's sequence_number
	buf            []byte
	w              http.ResponseWriter
	rc             *http.ResponseController
}

// appendResponse renders the Response object: final, with the output and usage, or the
// in-progress snapshot of response.created.
func (rs *responseState) appendResponse(dst []byte, final bool) []byte {
	c := rs.c
	status := "in_progress"
	if final {
		status = "completed"
		if rs.finish == "length" {
			status = "incomplete"
		}
	}
	dst = append(dst, `{"id":"`...)
	dst = append(dst, rs.id...)
	dst = append(dst, `","object":"response","created_at":`...)
	dst = strconv.AppendInt(dst, rs.created, 10)
	dst = append(dst, `,"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","completed_at":`...)
	if final {
		dst = strconv.AppendInt(dst, time.Now().Unix(), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"error":null,"incomplete_details":`...)
	if final && rs.finish == "length" {
		dst = append(dst, `{"reason":"max_output_tokens"}`...)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"instructions":null,"max_output_tokens":`...)
	if c.maxTokens > 0 {
		dst = strconv.AppendInt(dst, int64(c.maxTokens), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"model":`...)
	dst = append(dst, c.model...)
	dst = append(dst, `,"output":[`...)
	if final {
		dst = rs.appendMessage(dst, "completed")
	}
	dst = append(dst, `],"parallel_tool_calls":true,"previous_response_id":`...)
	if c.previous != "" {
		dst = append(dst, '"')
		dst = append(dst, c.previous...)
		dst = append(dst, '"')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"store":true,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"truncation":"disabled","usage":`...)
	if final && !c.b.noUsage {
		dst = append(dst, `{"input_tokens":`...)
		dst = strconv.AppendInt(dst, int64(c.promptTokens), 10)
		dst = append(dst, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
		dst = strconv.AppendInt(dst, int64(rs.tokens), 10)
		dst = append(dst, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		dst = strconv.AppendInt(dst, int64(c.promptTokens+rs.tokens), 10)
		dst = append(dst, '}')
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, `,"metadata":{}}`...)
}

// appendMessage renders the output message item, with its text unless it is in progress.
func (rs *responseState) appendMessage(dst []byte, status string) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, rs.msg...)
	dst = append(dst, `","type":"message","status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","role":"assistant","content":[`...)
	if status != "in_progress" {
		dst = rs.appendPart(dst, true)
	}
	return append(dst, "]}"...)
}

// appendPart renders the output_text part, empty or with the whole answer.
func (rs *responseState) appendPart(dst []byte, full bool) []byte {
	dst = append(dst, `{"type":"output_text","text":"`...)
	if full {
		dst = appendWords(dst, 0, rs.tokens)
	}
	return append(dst, `","annotations":[],"logprobs":[]}`...)
}

// event starts an event of type name: its event line, and the data object up to its first
// fields (type, sequence_number), left open.
func (rs *responseState) event(name string) []byte {
	dst := append(rs.buf[:0], "event: "...)
	dst = append(dst, name...)
	dst = append(dst, "\ndata: {\"type\":\""...)
	dst = append(dst, name...)
	dst = append(dst, `","sequence_number":`...)
	dst = strconv.AppendInt(dst, int64(rs.seqNo), 10)
	rs.seqNo++
	return dst
}

// itemFields renders the fields locating the text part.
func (rs *responseState) itemFields(dst []byte) []byte {
	dst = append(dst, `,"item_id":"`...)
	dst = append(dst, rs.msg...)
	return append(dst, `","output_index":0,"content_index":0`...)
}

// send closes the data object ev, writes the event and flushes it.
func (rs *responseState) send(ev []byte) bool {
	ev = append(ev, "}\n\n"...)
	rs.buf = ev
	if _, err := rs.w.Write(ev); err != nil {
		return false
	}
	return rs.rc.Flush() == nil
}

// writeResponsesStream answers as the Responses API's event stream.
func (h *Handler) writeResponsesStream(w http.ResponseWriter, wt *waiter, rs *responseState) outcome {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rs.w, rs.rc = w, http.NewResponseController(w)
	if rs.rc.Flush() != nil {
		return outcomeCanceled
	}
	buf := getBuffer()
	defer putBuffer(buf)
	rs.buf = *buf
	defer func() { *buf = rs.buf }()
	if !wt.wait(rs.c.b.ttft) {
		return outcomeCanceled
	}
	for _, name := range [...]string{"response.created", "response.in_progress"} {
		ev := append(rs.event(name), `,"response":`...)
		if !rs.send(rs.appendResponse(ev, false)) {
			return outcomeCanceled
		}
	}
	ev := append(rs.event("response.output_item.added"), `,"output_index":0,"item":`...)
	if !rs.send(rs.appendMessage(ev, "in_progress")) {
		return outcomeCanceled
	}
	ev = append(rs.itemFields(rs.event("response.content_part.added")), `,"part":`...)
	if !rs.send(rs.appendPart(ev, false)) {
		return outcomeCanceled
	}
	tpc, gap := rs.c.b.tokensPerChunk, rs.c.b.gap()
	for i := range rs.chunks {
		if i == rs.c.b.failAfter {
			return outcomeAborted
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		ev := append(rs.itemFields(rs.event("response.output_text.delta")), `,"delta":"`...)
		ev = appendWords(ev, i*tpc, min((i+1)*tpc, rs.tokens)) // a space before every word but the first
		if !rs.send(append(ev, `","logprobs":[]`...)) {
			return outcomeCanceled
		}
	}
	if rs.c.b.failAfter >= rs.chunks {
		return outcomeAborted
	}
	ev = append(rs.itemFields(rs.event("response.output_text.done")), `,"text":"`...)
	ev = appendWords(ev, 0, rs.tokens)
	if !rs.send(append(ev, `","logprobs":[]`...)) {
		return outcomeCanceled
	}
	ev = append(rs.itemFields(rs.event("response.content_part.done")), `,"part":`...)
	if !rs.send(rs.appendPart(ev, true)) {
		return outcomeCanceled
	}
	ev = append(rs.event("response.output_item.done"), `,"output_index":0,"item":`...)
	if !rs.send(rs.appendMessage(ev, "completed")) {
		return outcomeCanceled
	}
	final := rs.appendResponse(nil, true)
	h.responses.put(rs.id, final)
	name := "response.completed"
	if rs.finish == "length" {
		name = "response.incomplete"
	}
	ev = append(append(rs.event(name), `,"response":`...), final...)
	if !rs.send(ev) {
		return outcomeCanceled
	}
	return outcomeCompleted
}

// responsesInputTokens counts the prompt of a Responses "input" (see the file comment).
func responsesInputTokens(v gjson.Result) int {
	if !v.IsArray() {
		return 3 + words(v.Str)
	}
	n := 0
	v.ForEach(func(_, item gjson.Result) bool {
		switch t := item.Get("type").Str; {
		case t == "" || t == "message":
			n += 3
			if content := item.Get("content"); content.IsArray() {
				content.ForEach(func(_, part gjson.Result) bool {
					n += words(part.Get("text").Str)
					return true
				})
			} else {
				n += words(content.Str)
			}
		case t == "function_call_output":
			n += words(item.Get("output").Str)
		}
		return true
	})
	return n
}
