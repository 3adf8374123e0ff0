package bedrock

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/anthropic"
	"github.com/llmgate/llmgate/providers/internal/oairender"
	"github.com/llmgate/llmgate/providers/internal/upstreamhttp"
)

// This file serves Anthropic's models through InvokeModel and InvokeModelWithResponseStream
// (PROVIDERS-2.md §4.2, §4.3): the anthropic package's Messages body without model and stream
// (the model is in the path, the operation says whether it streams), with anthropic_version
// bedrock-2023-05-31 and the configured betas as anthropic_beta.

// invoke calls InvokeModel or InvokeModelWithResponseStream.
func (p *Provider) invoke(ctx context.Context, req *providers.Request) (*http.Response, error) {
	tr, err := anthropic.TranslateChat(req.Body, req.Model, req.Stream, anthropic.Settings{
		DefaultMaxTokens: p.settings.DefaultMaxTokens, PassFields: p.settings.PassFields})
	if err != nil {
		if r := anthropic.Refusal(err); r != nil {
			return r, nil
		}
		return nil, err
	}
	body, err := invokeBody(tr.Body, p.settings.Beta)
	if err != nil {
		return nil, err
	}
	op := "invoke"
	if req.Stream {
		op = "invoke-with-response-stream"
	}
	resp, err := p.post(ctx, req, op, body, req.Stream)
	if err != nil {
		return nil, err
	}
	created := p.now().Unix()
	switch {
	case resp.StatusCode >= 300:
		return translateErrorResponse(resp), nil
	case req.Stream:
		return oairender.StreamResponse(resp, anthropic.NewChatStream(newInvokeEvents(resp.Body), req.Model, created, tr.IncludeUsage)), nil
	}
	raw, tooLarge, err := upstreamhttp.ReadAnswer(resp)
	if err != nil {
		return nil, fmt.Errorf("bedrock: reading the answer: %w", err)
	}
	if tooLarge != nil {
		return tooLarge, nil
	}
	out, err := anthropic.ChatCompletion(raw, req.Model, created)
	if err != nil {
		return oairender.ErrorResponse(http.StatusBadGateway, api.NewError(api.TypeUpstream,
			"bad_upstream_response", "", "The upstream's answer could not be translated."), nil), nil
	}
	return oairender.JSONResponse(http.StatusOK, out, nil), nil
}

// invokeBody rewrites a Messages body for InvokeModel: model and stream out (Bedrock refuses
// them as extraneous keys), anthropic_version and anthropic_beta in.
func invokeBody(body []byte, beta []string) ([]byte, error) {
	var err error
	for _, k := range [...]string{"model", "stream"} {
		if body, err = sjson.DeleteBytes(body, k); err != nil {
			return nil, fmt.Errorf("bedrock: rewriting the body: %w", err)
		}
	}
	if body, err = sjson.SetBytes(body, "anthropic_version", AnthropicVersion); err != nil {
		return nil, fmt.Errorf("bedrock: rewriting the body: %w", err)
	}
	if len(beta) > 0 {
		if body, err = sjson.SetBytes(body, "anthropic_beta", beta); err != nil {
			return nil, fmt.Errorf("bedrock: rewriting the body: %w", err)
		}
	}
	return body, nil
}

// invokeEvents turns InvokeModelWithResponseStream's event-stream body back into the Anthropic
// SSE stream it carries, one message per Read: a chunk event's payload {"bytes": base64 event}
// becomes "event: <type>\ndata: <event>\n\n". An exception or error message, a malformed message
// or a CRC mismatch becomes an Anthropic error event, after which the stream ends: the
// translation downstream then ends the client's stream with an error event, never cleanly.
type invokeEvents struct {
	body   io.ReadCloser
	frames *frameReader
	out    []byte
	off    int
	done   bool
}

func newInvokeEvents(body io.ReadCloser) *invokeEvents {
	return &invokeEvents{body: body, frames: newFrameReader(body)}
}

// Close closes the upstream body.
func (e *invokeEvents) Close() error { return e.body.Close() }

// Read hands out the SSE text, decoding one more message whenever it is drained.
func (e *invokeEvents) Read(p []byte) (int, error) {
	for e.off >= len(e.out) {
		if e.done {
			return 0, io.EOF
		}
		e.out, e.off = e.out[:0], 0
		if err := e.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, e.out[e.off:])
	e.off += n
	return n, nil
}

// step decodes one message into e.out. Only a failure of the body itself (a reset connection)
// is returned, as an error of the stream: the translation downstream reports it.
func (e *invokeEvents) step() error {
	fr, err := e.frames.next()
	switch {
	case err == io.EOF:
		e.done = true // the translation tells a complete stream (message_stop) from a cut one
		return nil
	case err != nil && !isBadFrame(err):
		return err
	case err != nil:
		e.fail("api_error", "The upstream sent a malformed event-stream message.")
		return nil
	}
	switch fr.kind {
	case frameEvent:
		if fr.name != "chunk" {
			return nil // an event this adapter does not know: skipped, as unknown SSE events are
		}
		enc := gjson.GetBytes(fr.payload, "bytes")
		data, derr := base64.StdEncoding.DecodeString(enc.Str)
		if enc.Type != gjson.String || derr != nil {
			e.fail("api_error", "The upstream sent a chunk whose bytes are not base64.")
			return nil
		}
		e.out = append(e.out, "event: "...)
		e.out = append(e.out, sseSafe(gjson.GetBytes(data, "type").Str)...)
		e.out = append(e.out, "\ndata: "...)
		e.out = append(e.out, bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r"), nil), []byte("\n"), nil)...)
		e.out = append(e.out, "\n\n"...)
	case frameException:
		e.fail(anthropicErrorType(fr.name), exceptionMessage(fr.name, gjson.GetBytes(fr.payload, "message").Str))
	case frameError:
		e.fail("api_error", exceptionMessage(fr.name, fr.message))
	}
	return nil
}

// fail renders an Anthropic error event and ends the stream.
func (e *invokeEvents) fail(typ, msg string) {
	e.out = append(e.out, `event: error`+"\n"+`data: {"type":"error","error":{"type":`...)
	e.out = jsonappend.String(e.out, typ)
	e.out = append(e.out, `,"message":`...)
	e.out = jsonappend.String(e.out, msg)
	e.out = append(e.out, "}}\n\n"...)
	e.done = true
}

// anthropicErrorType is the Anthropic error type of a stream exception, so that the
// translation gives it the OpenAI type of the status the exception stands for.
func anthropicErrorType(exception string) string {
	status, _ := translateException(http.StatusInternalServerError, exception, "")
	switch status {
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusServiceUnavailable:
		return "overloaded_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	}
	return "api_error"
}

// exceptionMessage is the text of an exception: its name, then its message.
func exceptionMessage(name, msg string) string {
	switch {
	case name == "":
		return "The upstream failed while streaming its answer: " + msg
	case msg == "":
		return name
	}
	return name + ": " + msg
}

// sseSafe keeps an event name on its line.
func sseSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}
