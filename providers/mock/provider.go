package mock

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/llmgate/llmgate/providers"
)

// New returns the provider of type "mock": a simulated upstream answering in process, which is
// how `llmgate demo` runs without any network or account.
func New(opts Options) providers.Provider {
	return InProcess(NewHandler(opts))
}

// InProcess returns a provider that answers through h without a network: each Do runs h.ServeHTTP
// in a goroutine that writes into a pipe, so the caller receives the body as it is produced, with
// the same flush-by-flush timing as over HTTP. Tests keep h to read its Stats and Requests.
func InProcess(h *Handler) providers.Provider {
	return &inProcess{h: h}
}

type inProcess struct {
	h http.Handler
}

var (
	_ providers.Provider       = (*inProcess)(nil)
	_ providers.EndpointServer = (*inProcess)(nil)
)

// InProcess reports that the provider answers without a network connection, so the gateway
// applies no connect timeout to it.
func (p *inProcess) InProcess() bool { return true }

// Serves implements providers.EndpointServer: the mock speaks every endpoint the gateway relays.
func (p *inProcess) Serves(providers.Endpoint) bool { return true }

// Simulated reports that the answers are made up and no upstream is called, so that the gateway
// can say so in /v1/status.
func (p *inProcess) Simulated() bool { return true }

// Do returns as soon as the handler has written its headers. Canceling ctx cancels the handler's
// request context and breaks the pipe, so the body's reader sees ctx's error; a stream the handler
// drops (fail_after) ends with io.ErrUnexpectedEOF, as a dropped connection would. The handler's
// goroutine has ended when Do returns an error or when Close of the body returns.
func (p *inProcess) Do(ctx context.Context, req *providers.Request) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // as http.Client does: no request on a dead context
	}
	hctx, cancel := context.WithCancel(ctx)
	var body io.Reader = bytes.NewReader(req.Body)
	if req.Upload != nil {
		body = req.Upload.Open()
	}
	target := "http://mock.invalid/v1/" + string(req.Endpoint) + req.Path
	if req.Query != "" {
		target += "?" + req.Query
	}
	hreq, err := http.NewRequestWithContext(hctx, cmp.Or(req.Method, http.MethodPost), target, body)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mock: %w", err)
	}
	if req.Header != nil {
		// The handler records the header map; the gateway's own may be reused after Do.
		hreq.Header = req.Header.Clone()
	}
	if req.Upload != nil {
		hreq.ContentLength = req.Upload.Size
		hreq.Header.Set("Content-Type", req.Upload.ContentType)
	}
	pr, pw := io.Pipe()
	rw := &pipeWriter{header: make(http.Header), pw: pw, ready: make(chan struct{})}
	done := make(chan struct{})
	var failure error // written before done is closed
	stopBreak := context.AfterFunc(hctx, func() { pw.CloseWithError(context.Cause(hctx)) })
	go func() {
		defer close(done)
		failure = serve(p.h, rw, hreq)
		stopBreak()
		pw.CloseWithError(failure) // nil: the reader sees io.EOF after the last byte
	}()

	select {
	case <-rw.ready:
	case <-done:
	}
	select {
	case <-rw.ready: // headers come before done, so they win when both happened
	default:
		cancel()
		return nil, failure
	}
	contentLength := int64(-1)
	if n, err := strconv.ParseInt(rw.header.Get("Content-Length"), 10, 64); err == nil {
		contentLength = n
	}
	return &http.Response{
		Status:        strconv.Itoa(rw.status) + " " + http.StatusText(rw.status),
		StatusCode:    rw.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.header,
		Body:          &pipeBody{r: pr, cancel: cancel, done: done},
		ContentLength: contentLength,
		Request:       hreq,
	}, nil
}

// serve runs the handler as net/http would, turning its panics into the error the body's reader
// sees. It reports the request context's error when the handler stopped because of it, so a
// canceled stream never looks complete.
func serve(h http.Handler, rw *pipeWriter, r *http.Request) (err error) {
	defer func() {
		switch v := recover(); {
		case v == http.ErrAbortHandler:
			err = io.ErrUnexpectedEOF
		case v != nil:
			err = fmt.Errorf("mock: handler panic: %v", v)
		}
	}()
	h.ServeHTTP(rw, r)
	if err := context.Cause(r.Context()); err != nil {
		return err
	}
	rw.WriteHeader(http.StatusOK) // like net/http, a handler that wrote nothing answers 200
	return nil
}

// pipeWriter is the handler's ResponseWriter: the headers are handed over at the first
// WriteHeader or Write, the body goes through the pipe.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
	status int
	ready  chan struct{} // closed once status and header are final
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	close(w.ready)
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(b)
}

// Flush does nothing: a pipe write returns only once the reader has taken the bytes.
func (w *pipeWriter) Flush() {}

var _ http.Flusher = (*pipeWriter)(nil)

// pipeBody is the response body. Close stops the handler and waits for its goroutine, so nothing
// outlives the response.
type pipeBody struct {
	r      *io.PipeReader
	cancel context.CancelFunc
	done   <-chan struct{}
}

func (b *pipeBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *pipeBody) Close() error {
	b.cancel()
	_ = b.r.Close()
	<-b.done
	return nil
}
