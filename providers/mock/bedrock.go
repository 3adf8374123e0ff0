package mock

// This file and bedrock_converse.go simulate Amazon Bedrock Runtime on
// POST /model/{modelId}/invoke, /invoke-with-response-stream, /converse and /converse-stream,
// with the same words, token rules, tools, prompt caching and "mock" overrides as the Messages
// API (anthropic.go), so the bedrock adapter can be tested end to end.
//
// Authentication is checked as AWS checks it. With Options.AWSAccessKeyID and AWSSecretAccessKey
// set, a request signed with AWS Signature Version 4 has its signature recomputed with the SDK's
// own signer over the headers it names, for the service "bedrock", the region and time of its
// credential scope and the SHA-256 of its body; a wrong secret, an unknown key id, another
// service or a signing time more than 15 minutes away is answered 403 with the exception AWS
// names (InvalidSignatureException, UnrecognizedClientException…). A Bedrock API key
// (Authorization: Bearer) must be Options.RequireKey. With neither configured, anything passes.
//
// InvokeModel takes an Anthropic Messages body with anthropic_version "bedrock-2023-05-31" and
// without model or stream (ValidationException otherwise; the model is the path's) and answers
// as /v1/messages does. The stream is AWS's binary event-stream framing (correct CRCs, made with
// the SDK's encoder): one message per Anthropic event, :event-type chunk, its payload
// {"bytes": base64 event, "p": padding}; Bedrock sends no ping.
//
// Faults: status answers {"message"} with the X-Amzn-ErrorType of that status (429
// ThrottlingException, 400 ValidationException, 403 AccessDeniedException, 503
// ServiceUnavailableException, 500 InternalServerException…); error_body sends the body given;
// fail_after ends a stream with an exception message (the override "exception" names it, default
// modelStreamErrorException), or, with corrupt_frame, with a message whose CRC is wrong.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

const (
	eventStreamType          = "application/vnd.amazon.eventstream"
	bedrockAnthropicVersion  = "bedrock-2023-05-31"
	defaultStreamException   = "modelStreamErrorException"
	maxSigningSkew           = 15 * time.Minute
	bedrockSigningName       = "bedrock"
	amzDateFormat            = "20060102T150405Z"
	bedrockInvokeOp          = "invoke"
	bedrockInvokeStreamOp    = "invoke-with-response-stream"
	bedrockConverseOp        = "converse"
	bedrockConverseStreamOp  = "converse-stream"
	bedrockMaxModelIDLength  = 2048
	bedrockExceptionNotFound = "ResourceNotFoundException"
)

// bedrockPath splits /model/{modelId}/{operation}; the model id is unescaped.
func bedrockPath(u *url.URL) (model, op string, ok bool) {
	rest, found := strings.CutPrefix(u.EscapedPath(), "/model/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	op = rest[i+1:]
	switch op {
	case bedrockInvokeOp, bedrockInvokeStreamOp, bedrockConverseOp, bedrockConverseStreamOp:
	default:
		return "", "", false
	}
	model, err := url.PathUnescape(rest[:i])
	if err != nil || model == "" || len(model) > bedrockMaxModelIDLength {
		return "", "", false
	}
	return model, op, true
}

// serveBedrock is one Bedrock Runtime request, counted in the same stats as the other formats.
func (h *Handler) serveBedrock(w http.ResponseWriter, r *http.Request, model, op string) {
	h.stats.requests.Add(1)
	h.stats.inFlight.Add(1)
	out := h.answerBedrock(w, r, model, op)
	h.stats.inFlight.Add(-1)
	h.stats.count(out)
}

func (h *Handler) answerBedrock(w http.ResponseWriter, r *http.Request, model, op string) outcome {
	buf := getBuffer()
	defer putBuffer(buf)
	body, err := readBody(*buf, r.Body, r.ContentLength)
	*buf = body
	h.log.record(r.URL.Path, r.Header, body)
	if err != nil {
		return outcomeCanceled
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeBedrockError(w, http.StatusMethodNotAllowed, "UnknownOperationException", "method not allowed; use POST")
	}
	if exc, msg := h.checkAWSAuth(r, body); exc != "" {
		return writeBedrockError(w, http.StatusForbidden, exc, msg)
	}
	streaming := op == bedrockInvokeStreamOp || op == bedrockConverseStreamOp
	var c messagesCall
	if op == bedrockInvokeOp || op == bedrockInvokeStreamOp {
		c, err = parseInvokeCall(body, model, h.base)
	} else {
		c, err = parseConverseCall(body, model, h.base)
	}
	if err != nil {
		return writeBedrockError(w, http.StatusBadRequest, "ValidationException", err.Error())
	}
	c.stream = streaming
	seq := h.seq.Add(1)
	wt := waiter{ctx: r.Context()}
	defer wt.stop()
	if !wt.wait(c.b.hang) {
		return outcomeCanceled
	}
	if o, ok := h.fault(w, &c.b, seq, func(status int) outcome {
		return writeBedrockError(w, status, bedrockException(status), "mock: simulated "+strconv.Itoa(status)+" "+http.StatusText(status))
	}); ok {
		return o
	}
	u := anthropicUsage{input: c.prompt}
	if c.cached {
		u.input -= c.prefix
		if h.cache.hit(c.cacheKey) {
			u.read = c.prefix
		} else {
			u.write = c.prefix
		}
	}
	a := c.plan()
	u.output = a.tokens
	w.Header().Set("X-Amzn-Requestid", "mock-"+strconv.FormatUint(seq, 10))
	switch op {
	case bedrockInvokeStreamOp:
		return writeMessagesStream(w, &wt, &c, &a, u, seq, newFrameWriter(w, &c.b))
	case bedrockConverseStreamOp:
		return writeConverseStream(w, &wt, &c, &a, u, seq)
	}
	if !wt.wait(c.b.latency) {
		return outcomeCanceled
	}
	out := getBuffer()
	defer putBuffer(out)
	if op == bedrockInvokeOp {
		*out = appendMessage(*out, &c, &a, u, seq)
		// Bedrock's message ids: msg_bdrk_…
		*out = bytes.Replace(*out, []byte(`"id":"msg_mock_`), []byte(`"id":"msg_bdrk_mock_`), 1)
	} else {
		*out = appendConverseAnswer(*out, &c, &a, u, seq)
	}
	return writeJSON(w, *out)
}

// parseInvokeCall checks an InvokeModel body as Bedrock does, then reads it as a Messages
// request for model.
func parseInvokeCall(body []byte, model string, base behaviour) (messagesCall, error) {
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return messagesCall{b: base}, errors.New("Malformed input request: the body is not a JSON object")
	}
	root := gjson.ParseBytes(body)
	for _, k := range [...]string{"model", "stream"} {
		if root.Get(k).Exists() {
			return messagesCall{b: base}, errors.New("Malformed input request: extraneous key [" + k + "] is not permitted")
		}
	}
	if v := root.Get("anthropic_version").Str; v != bedrockAnthropicVersion {
		return messagesCall{b: base}, errors.New("Malformed input request: anthropic_version must be " + bedrockAnthropicVersion)
	}
	if b := root.Get("anthropic_beta"); b.Exists() && !b.IsArray() {
		return messagesCall{b: base}, errors.New("Malformed input request: anthropic_beta must be an array of strings")
	}
	msg, _ := sjson.DeleteBytes(body, "anthropic_version")
	msg, _ = sjson.DeleteBytes(msg, "anthropic_beta")
	msg, err := sjson.SetBytes(msg, "model", model)
	if err != nil {
		return messagesCall{b: base}, err
	}
	// The call's strings point into msg, which lives as long as the call.
	return parseMessagesCall(unsafe.String(unsafe.SliceData(msg), len(msg)), base, false, "")
}

// bedrockException is the exception Bedrock names for a status (PROVIDERS-2.md §4.10).
func bedrockException(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "ThrottlingException"
	case http.StatusForbidden:
		return "AccessDeniedException"
	case http.StatusNotFound:
		return bedrockExceptionNotFound
	case http.StatusRequestTimeout:
		return "ModelTimeoutException"
	case http.StatusFailedDependency:
		return "ModelErrorException"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableException"
	}
	if status >= 500 {
		return "InternalServerException"
	}
	return "ValidationException"
}

// writeBedrockError answers as AWS's JSON protocols do: {"message"} and X-Amzn-ErrorType.
func writeBedrockError(w http.ResponseWriter, status int, exception, msg string) outcome {
	b, _ := json.Marshal(map[string]string{"message": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Amzn-ErrorType", exception+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return outcomeError
}

// checkAWSAuth verifies the request's credentials; it returns the exception to answer with (and
// its message), or "" when the request may go on.
func (h *Handler) checkAWSAuth(r *http.Request, body []byte) (exception, msg string) {
	auth := r.Header.Get("Authorization")
	key := strings.TrimPrefix(h.wantAuth, "Bearer ")
	sigv4 := h.awsKeyID != ""
	switch {
	case strings.HasPrefix(auth, "Bearer "):
		if key == "" && !sigv4 {
			return "", ""
		}
		if key == "" || auth[len("Bearer "):] != key {
			return "UnrecognizedClientException", "The security token included in the request is invalid."
		}
		return "", ""
	case strings.HasPrefix(auth, "AWS4-HMAC-SHA256 "):
		if !sigv4 {
			if key != "" {
				return "UnrecognizedClientException", "The security token included in the request is invalid."
			}
			return "", ""
		}
		return h.verifySigV4(r, body, auth)
	case key != "" || sigv4:
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	return "", ""
}

// verifySigV4 recomputes the signature with the SDK's signer for the configured credentials and
// compares it with the request's.
func (h *Handler) verifySigV4(r *http.Request, body []byte, auth string) (exception, msg string) {
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
			fields[k] = v
		}
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" || scope[4] != "aws4_request" {
		return "IncompleteSignatureException", "Authorization header requires Credential, SignedHeaders and Signature."
	}
	if scope[0] != h.awsKeyID {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if scope[3] != bedrockSigningName {
		return "InvalidSignatureException", "Credential should be scoped to correct service: '" + bedrockSigningName + "'."
	}
	at, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != scope[1] {
		return "IncompleteSignatureException", "X-Amz-Date is missing or does not match the credential scope."
	}
	if d := time.Since(at); d > maxSigningSkew || d < -maxSigningSkew {
		return "InvalidSignatureException", "Signature expired: the signing time is too far from now."
	}
	// The request as the client signed it: same method, path and query, only the signed headers.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	re, err := http.NewRequestWithContext(context.Background(), r.Method, u.String(), nil)
	if err != nil {
		return "InvalidSignatureException", "The request could not be rebuilt."
	}
	re.URL.RawPath, re.URL.Path = r.URL.RawPath, r.URL.Path
	re.Host = r.Host
	re.ContentLength = int64(len(body))
	for _, name := range strings.Split(fields["SignedHeaders"], ";") {
		switch name {
		case "host", "content-length":
			continue
		}
		if vs := r.Header.Values(name); len(vs) > 0 {
			re.Header[http.CanonicalHeaderKey(name)] = vs
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: h.awsKeyID, SecretAccessKey: h.awsSecret,
		SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), scope[3], scope[2], at); err != nil {
		return "InvalidSignatureException", "The signature could not be computed."
	}
	if !strings.Contains(re.Header.Get("Authorization"), "Signature="+fields["Signature"]) ||
		!strings.Contains(re.Header.Get("Authorization"), "SignedHeaders="+fields["SignedHeaders"]+",") {
		return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."
	}
	return "", ""
}

// frameWriter writes event-stream messages with the SDK's encoder, one flush each.
type frameWriter struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	enc          *eventstream.Encoder
	buf          bytes.Buffer
	payload      []byte
	exception    string
	corruptFrame bool
}

func newFrameWriter(w http.ResponseWriter, b *behaviour) *frameWriter {
	exc := b.exception
	if exc == "" {
		exc = defaultStreamException
	}
	return &frameWriter{w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder(), exception: exc, corruptFrame: b.corruptFrame}
}

// write encodes one message and flushes it.
func (f *frameWriter) write(headers eventstream.Headers, payload []byte) bool {
	f.buf.Reset()
	if err := f.enc.Encode(&f.buf, eventstream.Message{Headers: headers, Payload: payload}); err != nil {
		return false
	}
	if _, err := f.w.Write(f.buf.Bytes()); err != nil {
		return false
	}
	return f.rc.Flush() == nil
}

// event writes an event message of the given :event-type.
func (f *frameWriter) event(eventType string, payload []byte) bool {
	return f.write(eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(eventType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, payload)
}

// fail ends a stream as a fail_after asks: an exception message, or a message with a wrong CRC.
func (f *frameWriter) fail() bool {
	if f.corruptFrame {
		f.buf.Reset()
		if err := f.enc.Encode(&f.buf, eventstream.Message{Headers: eventstream.Headers{
			{Name: ":event-type", Value: eventstream.StringValue("chunk")},
			{Name: ":message-type", Value: eventstream.StringValue("event")},
		}, Payload: []byte(`{"bytes":""}`)}); err != nil {
			return false
		}
		b := f.buf.Bytes()
		binary.BigEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4])^0xdeadbeef)
		if _, err := f.w.Write(b); err != nil {
			return false
		}
		return f.rc.Flush() == nil
	}
	msg, _ := json.Marshal(map[string]string{"message": "mock: simulated " + f.exception + " mid-stream"})
	return f.write(eventstream.Headers{
		{Name: ":exception-type", Value: eventstream.StringValue(f.exception)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("exception")},
	}, msg)
}

// anthropicEvent writes one Anthropic event as InvokeModelWithResponseStream carries it. Bedrock
// sends no ping; an error event is the stream's fault.
func (f *frameWriter) anthropicEvent(name string, data []byte) bool {
	switch name {
	case "ping":
		return true
	case "error":
		return f.fail()
	}
	p := append(f.payload[:0], `{"bytes":"`...)
	p = base64.StdEncoding.AppendEncode(p, data)
	p = append(p, `","p":"abcdefghij"}`...)
	f.payload = p
	return f.event("chunk", p)
}
