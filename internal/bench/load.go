package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// benchTarget is one measured path: where to send the chat completions and with which headers.
// Each has its own connection pool so that paths never share connections.
type benchTarget struct {
	name      string
	client    *http.Client
	plain     *http.Request // template of the non-stream request
	streaming *http.Request // template of the streaming request
	// responses is the template of the streamed Responses API request; nil where that path is
	// not measured (only direct and gateway take part, to keep the run short).
	responses *http.Request
	// messages is the same for the streamed Messages API request.
	messages      *http.Request
	sent          atomic.Int64 // requests sent: for the gateway's usage records and CPU per request
	sentResponses atomic.Int64 // of them, Responses API streams
	sentMessages  atomic.Int64 // and Messages API streams
	proc          *benchChild  // the proxy process whose CPU time the requests cost; nil for direct
	// requireHeader, when set, must be on every answer (gateway+redis: proof the limiter ran).
	requireHeader string
}

// Bodies of the measured requests, identical on every path; the gateway adds the usage option to
// the stream one on its way up, as it must.
var (
	benchPlainBody  = []byte(`{"model":"` + benchModel + `","messages":[{"role":"user","content":"Say hello to the benchmark."}]}`)
	benchStreamBody = []byte(`{"model":"` + benchModel + `","stream":true,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}`)
	// benchResponsesBody is what an OpenAI SDK's responses.stream sends for the same prompt: store
	// is left to its default (true), so the gateway remembers where each response lives, as it
	// does for SDK callers.
	benchResponsesBody = []byte(`{"model":"` + benchModel + `","stream":true,"input":"Say hello to the benchmark."}`)
	// benchMessagesBody is what Anthropic's SDK sends for the same prompt (max_tokens above the
	// answer's length), to the model the gateway serves from its anthropic-type deployment.
	benchMessagesBody = []byte(`{"model":"` + benchMessagesModel + `","max_tokens":100000,"stream":true,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}`)
)

// benchShape is the kind of request a measurement sends.
type benchShape int

const (
	shapePlain           benchShape = iota // a chat completion
	shapeStream                            // a streamed chat completion
	shapeResponsesStream                   // a streamed Responses API call (POST /v1/responses)
	shapeMessagesStream                    // a streamed Messages API call (POST /v1/messages)
)

// streamShape is the chat shape of a phase: streamed or not.
func streamShape(stream bool) benchShape {
	if stream {
		return shapeStream
	}
	return shapePlain
}

func newBenchTarget(name, baseURL, key string, proc *benchChild, concurrency int) (*benchTarget, error) {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2 * concurrency,
		IdleConnTimeout:     90 * time.Second, // below every server's idle timeout, so the client closes first
		DisableCompression:  true,
	}
	t := &benchTarget{name: name, client: &http.Client{Transport: tr}, proc: proc}
	hdr := http.Header{"Content-Type": {"application/json"}}
	if key != "" {
		hdr.Set("Authorization", "Bearer "+key)
	}
	var err error
	if t.plain, err = benchRequestTemplate(baseURL+"/v1/chat/completions", hdr, benchPlainBody); err != nil {
		return nil, err
	}
	t.streaming, err = benchRequestTemplate(baseURL+"/v1/chat/completions", hdr, benchStreamBody)
	return t, err
}

// enableResponses makes t a path of the Responses stream measurement, at baseURL/v1/responses
// with t's headers.
func (t *benchTarget) enableResponses(baseURL string) error {
	r, err := benchRequestTemplate(baseURL+"/v1/responses", t.streaming.Header, benchResponsesBody)
	t.responses = r
	return err
}

// enableMessages makes t a path of the Messages stream measurement, at baseURL/v1/messages with
// t's headers and the anthropic-version every Anthropic client sends.
func (t *benchTarget) enableMessages(baseURL string) error {
	hdr := t.streaming.Header.Clone()
	hdr.Set("Anthropic-Version", "2023-06-01")
	r, err := benchRequestTemplate(baseURL+"/v1/messages", hdr, benchMessagesBody)
	t.messages = r
	return err
}

// benchRequestTemplate parses the URL once; each request is a shallow copy with a fresh body
// reader. The header map is shared: the transport only reads it.
func benchRequestTemplate(url string, hdr http.Header, body []byte) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	r.Header = hdr
	r.ContentLength = int64(len(body))
	// GetBody lets the transport resend when a pooled connection turns out closed before anything
	// was written.
	r.GetBody = func() (io.ReadCloser, error) { return newBenchBody(body), nil }
	return r, nil
}

// benchBody is a request body in one allocation.
type benchBody struct{ bytes.Reader }

func newBenchBody(b []byte) *benchBody {
	r := &benchBody{}
	r.Reset(b)
	return r
}

// Close implements io.Closer.
func (*benchBody) Close() error { return nil }

// benchWorker sends requests one after another, reusing its read buffers.
type benchWorker struct {
	t      *benchTarget
	chunks int // content events each stream must carry
	body   bytes.Buffer
	br     *bufio.Reader
}

func newBenchWorker(t *benchTarget, chunks int) *benchWorker {
	return &benchWorker{t: t, chunks: chunks, br: bufio.NewReaderSize(nil, 16<<10)}
}

// benchSample is one successful request's timing: ttft is the time to the first content event of
// a stream (zero otherwise), total the time to the complete answer.
type benchSample struct {
	ttft, total time.Duration
}

var (
	benchDataPrefix    = []byte("data: ")
	benchDonePayload   = []byte("[DONE]")
	benchContentMarker = []byte(`"content":"`)
	benchChoicesMarker = []byte(`"choices"`)
)

// do sends one request and checks its answer: status 200, and a complete body (a JSON completion,
// an event stream with the expected number of content events ending in `data: [DONE]`, or a
// Responses stream with as many text deltas ending in response.completed).
func (w *benchWorker) do(ctx context.Context, shape benchShape) (benchSample, error) {
	tmpl, body := w.t.plain, benchPlainBody
	switch shape {
	case shapeStream:
		tmpl, body = w.t.streaming, benchStreamBody
	case shapeResponsesStream:
		tmpl, body = w.t.responses, benchResponsesBody
		w.t.sentResponses.Add(1)
	case shapeMessagesStream:
		tmpl, body = w.t.messages, benchMessagesBody
		w.t.sentMessages.Add(1)
	}
	req := tmpl.WithContext(ctx)
	req.Body = newBenchBody(body)
	w.t.sent.Add(1)
	start := time.Now()
	resp, err := w.t.client.Do(req)
	if err != nil {
		return benchSample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return benchSample{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	if h := w.t.requireHeader; h != "" && resp.Header.Get(h) == "" {
		return benchSample{}, fmt.Errorf("answer without %s", h)
	}
	if shape == shapePlain {
		w.body.Reset()
		if _, err := w.body.ReadFrom(resp.Body); err != nil {
			return benchSample{}, fmt.Errorf("reading the answer: %w", err)
		}
		if !bytes.Contains(w.body.Bytes(), benchChoicesMarker) {
			return benchSample{}, fmt.Errorf("answer without choices: %.200q", w.body.Bytes())
		}
		return benchSample{total: time.Since(start)}, nil
	}
	w.br.Reset(resp.Body)
	var s benchSample
	end := "[DONE]"
	switch shape {
	case shapeResponsesStream:
		s, err = w.readEventStream(start, &responsesEvents)
		end = responsesEvents.done
	case shapeMessagesStream:
		s, err = w.readEventStream(start, &messagesEvents)
		end = messagesEvents.done
	default:
		s, err = w.readStream(start)
	}
	if err != nil {
		return s, err
	}
	// Read to the end of the body, so the connection goes back to the pool.
	if _, err := io.Copy(io.Discard, w.br); err != nil {
		return s, fmt.Errorf("after %s: %w", end, err)
	}
	return s, nil
}

// readStream reads events until `data: [DONE]`, timing the first event that carries content.
func (w *benchWorker) readStream(start time.Time) (benchSample, error) {
	var s benchSample
	contents := 0
	atLineStart := true
	for {
		line, err := w.br.ReadSlice('\n')
		if atLineStart {
			if payload, ok := bytes.CutPrefix(line, benchDataPrefix); ok {
				if bytes.HasPrefix(payload, benchDonePayload) {
					s.total = time.Since(start)
					if contents != w.chunks {
						return s, fmt.Errorf("stream carried %d content events, want %d", contents, w.chunks)
					}
					return s, nil
				}
				if hasContentDelta(payload) {
					if contents == 0 {
						s.ttft = time.Since(start)
					}
					contents++
				}
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			atLineStart = false // a longer line goes on in the next slice
		case err != nil:
			return s, fmt.Errorf("stream ended without data: [DONE] after %d content events: %w", contents, err)
		default:
			atLineStart = true
		}
	}
}

// Events of a Responses stream the bench tells apart, by their event lines (which a passthrough
// relay keeps): the text deltas it counts, the terminal event of a complete answer, and the
// others that end a stream.
const (
	evResponseCompleted  = "response.completed"
	evResponseTextDelta  = "response.output_text.delta"
	evResponseIncomplete = "response.incomplete"
	evResponseFailed     = "response.failed"
	evResponseError      = "error"
)

var benchEventPrefix = []byte("event: ")

// Events of a Messages stream the bench tells apart, by their event lines.
const (
	evMessageStop  = "message_stop"
	evMessageDelta = "content_block_delta"
	evMessageError = "error"
)

// eventStream names the events of a stream with event lines (Responses, Messages) that the
// bench tells apart.
type eventStream struct {
	delta  string   // the event that carries a piece of the answer: counted, the first timed
	done   string   // the terminal event of a complete answer
	ends   []string // the other events that end a stream
	deltas string   // what errors call the deltas
}

var (
	responsesEvents = eventStream{delta: evResponseTextDelta, done: evResponseCompleted,
		ends: []string{evResponseIncomplete, evResponseFailed, evResponseError}, deltas: "text deltas"}
	messagesEvents = eventStream{delta: evMessageDelta, done: evMessageStop,
		ends: []string{evMessageError}, deltas: "content deltas"}
)

// readEventStream reads a stream of the events ev names until its terminal event, timing the
// first delta. Only the terminal event after the expected number of deltas is a success.
func (w *benchWorker) readEventStream(start time.Time, ev *eventStream) (benchSample, error) {
	var s benchSample
	deltas := 0
	atLineStart := true
	for {
		line, err := w.br.ReadSlice('\n')
		if atLineStart {
			if name, ok := bytes.CutPrefix(line, benchEventPrefix); ok {
				name = bytes.TrimRight(name, "\r\n")
				switch string(name) {
				case ev.delta:
					if deltas == 0 {
						s.ttft = time.Since(start)
					}
					deltas++
				case ev.done:
					s.total = time.Since(start)
					if deltas != w.chunks {
						return s, fmt.Errorf("stream carried %d %s, want %d", deltas, ev.deltas, w.chunks)
					}
					return s, nil
				}
				for _, end := range ev.ends {
					if string(name) == end {
						return s, fmt.Errorf("stream ended with %s event after %d %s", end, deltas, ev.deltas)
					}
				}
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			atLineStart = false // a longer line goes on in the next slice
		case err != nil:
			return s, fmt.Errorf("stream ended without %s after %d %s: %w", ev.done, deltas, ev.deltas, err)
		default:
			atLineStart = true
		}
	}
}

// hasContentDelta reports whether an event's JSON carries a non-empty "content" string (the role
// event that opens an OpenAI chat stream carries an empty one).
func hasContentDelta(payload []byte) bool {
	i := bytes.Index(payload, benchContentMarker)
	return i >= 0 && i+len(benchContentMarker) < len(payload) && payload[i+len(benchContentMarker)] != '"'
}

// errorTally counts failed requests and keeps the first error's text.
type errorTally struct {
	N     int    `json:"count"`
	First string `json:"first,omitempty"`
}

func (t *errorTally) add(err error) {
	if t.N == 0 {
		t.First = err.Error()
	}
	t.N++
}

func (t *errorTally) merge(o errorTally) {
	if t.N == 0 {
		t.First = o.First
	}
	t.N += o.N
}

// loadRateResult is the outcome of a closed-loop throughput run.
type loadRateResult struct {
	rps  float64
	errs errorTally
}

// loadRate keeps concurrency requests in flight for d and reports completed requests per second.
// A request that starts before the end runs to completion, and the rate divides by the time the
// last one took to finish, so the tail is counted in full.
func loadRate(ctx context.Context, t *benchTarget, concurrency, chunks int, d time.Duration, shape benchShape) (loadRateResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+time.Minute) // a hung request fails the run, not the bench
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		errs  errorTally
	)
	start := time.Now()
	end := start.Add(d)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newBenchWorker(t, chunks)
			n, local := 0, errorTally{}
			for time.Now().Before(end) && ctx.Err() == nil {
				if _, err := w.do(ctx, shape); err != nil {
					local.add(err)
				} else {
					n++
				}
			}
			mu.Lock()
			total += n
			errs.merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return loadRateResult{}, err // interrupted: the numbers mean nothing
	}
	return loadRateResult{rps: float64(total) / elapsed.Seconds(), errs: errs}, nil
}

// loadCount sends n requests with up to concurrency of them in flight: the warm-up before a
// measurement, in the measurement's shape.
func loadCount(ctx context.Context, t *benchTarget, concurrency, n, chunks int, shape benchShape) (errorTally, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		left atomic.Int64
		errs errorTally
	)
	left.Store(int64(n))
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newBenchWorker(t, chunks)
			var local errorTally
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				if _, err := w.do(ctx, shape); err != nil {
					local.add(err)
				}
			}
			mu.Lock()
			errs.merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return errs, err
	}
	return errs, nil
}

// loadLatencyResult is the outcome of a run at concurrency 1: the sorted timings of the
// successful requests.
type loadLatencyResult struct {
	total, ttft []time.Duration
	errs        errorTally
}

// loadLatency sends n requests one after another.
func loadLatency(ctx context.Context, t *benchTarget, n, chunks int, stream bool) (loadLatencyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(n)*50*time.Millisecond)
	defer cancel()
	w := newBenchWorker(t, chunks)
	res := loadLatencyResult{total: make([]time.Duration, 0, n)}
	if stream {
		res.ttft = make([]time.Duration, 0, n)
	}
	for range n {
		s, err := w.do(ctx, streamShape(stream))
		if err != nil && ctx.Err() != nil {
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return res, context.Cause(ctx) // interrupted
			}
			res.errs.add(fmt.Errorf("the run outlasted its time limit: %w", err))
			break
		}
		if err != nil {
			res.errs.add(err)
			continue
		}
		res.total = append(res.total, s.total)
		if stream {
			res.ttft = append(res.ttft, s.ttft)
		}
	}
	slices.Sort(res.total)
	slices.Sort(res.ttft)
	return res, nil
}

// nearestRank returns the nearest-rank q-quantile of sorted samples (0 when there are none).
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
