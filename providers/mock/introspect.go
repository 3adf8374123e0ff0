package mock

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/llmgate/llmgate/api"
)

// Stats counts the /v1/ requests the handler received, so that gateway tests can tell whether a
// request reached the upstream and whether the gateway gave up on it. Between resets and with
// nothing in flight, Requests = Completed + Errors + Canceled + Aborted.
type Stats struct {
	// Requests is every /v1/ request received, whatever became of it.
	Requests int64 `json:"requests"`
	// InFlight is the requests being answered now; Reset leaves it alone since they are live.
	InFlight int64 `json:"in_flight"`
	// Completed is the requests answered in full with a 200.
	Completed int64 `json:"completed"`
	// Errors is the requests answered with an error status: simulated or real (bad body, key).
	Errors int64 `json:"errors"`
	// Canceled is the requests whose context was canceled (the client went away) before the
	// answer was complete.
	Canceled int64 `json:"canceled"`
	// Aborted is the streams the mock itself dropped because of fail_after.
	Aborted int64 `json:"aborted"`
}

// RecordedRequest is one request as the upstream received it.
type RecordedRequest struct {
	Path string `json:"path"`
	// Headers keeps every header, Authorization included, since tests check which credential
	// reached the upstream; repeated headers are joined with ", ".
	Headers map[string]string `json:"headers"`
	// Body is the raw request body, as text.
	Body string `json:"body"`
}

// maxRecorded is the size of the ring of recorded requests.
const maxRecorded = 100

// Stats returns the current counters.
func (h *Handler) Stats() Stats {
	c := &h.stats
	return Stats{
		Requests:  c.requests.Load(),
		InFlight:  c.inFlight.Load(),
		Completed: c.completed.Load(),
		Errors:    c.errors.Load(),
		Canceled:  c.canceled.Load(),
		Aborted:   c.aborted.Load(),
	}
}

// Requests returns the last n recorded /v1/ requests (at most 100), oldest first, so the most
// recent is the last element.
func (h *Handler) Requests(n int) []RecordedRequest {
	return h.log.last(n)
}

// Reset forgets the recorded requests and zeroes the counters but InFlight, so that one handler
// can serve a sequence of tests.
func (h *Handler) Reset() {
	c := &h.stats
	c.requests.Store(0)
	c.completed.Store(0)
	c.errors.Store(0)
	c.canceled.Store(0)
	c.aborted.Store(0)
	h.log.reset()
	h.cache.reset()
}

func (h *Handler) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeMethodNotAllowed(w, http.MethodGet)
		return
	}
	writeJSONValue(w, h.Stats())
}

func (h *Handler) serveRequests(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeMethodNotAllowed(w, http.MethodGet)
		return
	}
	n := maxRecorded
	if s := r.URL.Query().Get("n"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, api.NewError(api.TypeInvalidRequest,
				"", "n", "n must be a non-negative integer"))
			return
		}
	}
	writeJSONValue(w, h.Requests(n))
}

func (h *Handler) serveReset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeMethodNotAllowed(w, http.MethodPost)
		return
	}
	h.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func writeJSONValue(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.NewError(api.TypeServer, "", "", err.Error()))
		return
	}
	writeJSON(w, b)
}

// counters are the Stats as atomics: the hot path only adds.
type counters struct {
	requests, inFlight, completed, errors, canceled, aborted atomic.Int64
}

func (c *counters) count(o outcome) {
	switch o {
	case outcomeCompleted:
		c.completed.Add(1)
	case outcomeError:
		c.errors.Add(1)
	case outcomeCanceled:
		c.canceled.Add(1)
	case outcomeAborted:
		c.aborted.Add(1)
	}
}

// requestLog is a ring of the last maxRecorded requests. Recording copies the body into a slot
// that keeps its capacity, so a steady load records without allocating.
type requestLog struct {
	mu    sync.Mutex
	slots [maxRecorded]recorded
	next  int // the slot the next request goes to
	n     int // the number of slots in use
}

type recorded struct {
	path string
	// header is the request's own map, not a copy: net/http never modifies it after reading the
	// request, and InProcess hands the handler a clone.
	header http.Header
	body   []byte
}

func (l *requestLog) record(path string, header http.Header, body []byte) {
	l.mu.Lock()
	s := &l.slots[l.next]
	if cap(s.body) > maxPooled && len(body) <= maxPooled {
		s.body = nil // do not pin a huge earlier body
	}
	s.path, s.header, s.body = path, header, append(s.body[:0], body...)
	l.next = (l.next + 1) % maxRecorded
	l.n = min(l.n+1, maxRecorded)
	l.mu.Unlock()
}

func (l *requestLog) last(k int) []RecordedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	k = min(max(k, 0), l.n)
	out := make([]RecordedRequest, k)
	for i := range out {
		s := &l.slots[(l.next-k+i+maxRecorded)%maxRecorded]
		headers := make(map[string]string, len(s.header))
		for name, values := range s.header {
			headers[name] = strings.Join(values, ", ")
		}
		out[i] = RecordedRequest{Path: s.path, Headers: headers, Body: string(s.body)}
	}
	return out
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.slots {
		l.slots[i] = recorded{}
	}
	l.next, l.n = 0, 0
}
