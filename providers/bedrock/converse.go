package bedrock

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/internal/oairender"
	"github.com/llmgate/llmgate/providers/internal/upstreamhttp"
)

// This file serves Converse and ConverseStream, and translates a whole Converse answer
// (output.message, stopReason, usage; PROVIDERS-2.md §4.4, §4.6) into a chat.completion.

// converse calls Converse or ConverseStream.
func (p *Provider) converse(ctx context.Context, req *providers.Request) (*http.Response, error) {
	body, includeUsage, err := converseBody(req.Body, req.Model, p.settings)
	if err != nil {
		if r := refusalResponse(err); r != nil {
			return r, nil
		}
		return nil, err
	}
	op := "converse"
	if req.Stream {
		op = "converse-stream"
	}
	resp, err := p.post(ctx, req, op, body, req.Stream)
	if err != nil {
		return nil, err
	}
	created := p.now().Unix()
	id := answerID(resp.Header.Get("X-Amzn-Requestid"))
	switch {
	case resp.StatusCode >= 300:
		return translateErrorResponse(resp), nil
	case req.Stream:
		return oairender.StreamResponse(resp, newConverseStream(resp.Body, id, req.Model, created, includeUsage)), nil
	}
	raw, tooLarge, err := upstreamhttp.ReadAnswer(resp)
	if err != nil {
		return nil, fmt.Errorf("bedrock: reading the answer: %w", err)
	}
	if tooLarge != nil {
		return tooLarge, nil
	}
	out, err := converseCompletion(raw, id, req.Model, created)
	if err != nil {
		return oairender.ErrorResponse(http.StatusBadGateway, api.NewError(api.TypeUpstream,
			"bad_upstream_response", "", "The upstream's answer could not be translated."), nil), nil
	}
	return oairender.JSONResponse(http.StatusOK, out, nil), nil
}

// answerID is the chat completion id of a Converse answer, which has none of its own: Bedrock's
// request id when it sent one, else a random one.
func answerID(requestID string) string {
	if requestID != "" && !strings.ContainsAny(requestID, "\"\\\r\n") {
		return "chatcmpl-bdrk-" + requestID
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "chatcmpl-bdrk-" + hex.EncodeToString(b[:])
}

// converseUsage maps a Converse TokenUsage to OpenAI's: inputTokens leaves out the cache reads and
// writes (PROVIDERS-2.md §4.6), so prompt_tokens adds them.
func converseUsage(u gjson.Result) oairender.Usage {
	in, read, write := u.Get("inputTokens").Int(), u.Get("cacheReadInputTokens").Int(), u.Get("cacheWriteInputTokens").Int()
	return oairender.Usage{
		PromptTokens:     max(in, 0) + max(read, 0) + max(write, 0),
		CompletionTokens: max(u.Get("outputTokens").Int(), 0),
		CachedTokens:     max(read, 0),
		CacheWriteTokens: max(write, 0),
		HasCacheWrites:   true,
	}
}

// converseCompletion renders the chat.completion of a Converse answer: text blocks joined into
// content, reasoningContent into reasoning_content, toolUse blocks as tool_calls.
func converseCompletion(raw []byte, id, model string, created int64) ([]byte, error) {
	if !jsoncheck.Valid(raw) {
		return nil, errNotConverse
	}
	r := gjson.ParseBytes(raw)
	content := r.Get("output.message.content")
	if !content.IsArray() {
		return nil, errNotConverse
	}
	var text, reasoning strings.Builder
	hasText := false
	var calls []byte
	var scratch bytes.Buffer
	n := 0
	content.ForEach(func(_, b gjson.Result) bool {
		switch {
		case b.Get("text").Type == gjson.String:
			hasText = true
			text.WriteString(b.Get("text").Str)
		case b.Get("reasoningContent").IsObject():
			reasoning.WriteString(b.Get("reasoningContent.reasoningText.text").Str)
		case b.Get("toolUse").IsObject():
			tu := b.Get("toolUse")
			if n > 0 {
				calls = append(calls, ',')
			}
			n++
			calls = append(calls, `{"id":`...)
			calls = jsonappend.String(calls, tu.Get("toolUseId").Str)
			calls = append(calls, `,"type":"function","function":{"name":`...)
			calls = jsonappend.String(calls, tu.Get("name").Str)
			calls = append(calls, `,"arguments":`...)
			calls = oairender.AppendArguments(calls, tu.Get("input"), &scratch)
			calls = append(calls, "}}"...)
		}
		return true
	})
	out := make([]byte, 0, 256+text.Len()+reasoning.Len()+len(calls))
	out = oairender.AppendCompletionHead(out, id, created, cmp.Or(model, "bedrock"))
	out = oairender.AppendMessageChoice(out, text.String(), !hasText && n > 0, reasoning.String(), calls, converseStopReason(r.Get("stopReason").Str))
	if u := r.Get("usage"); u.IsObject() {
		out = append(out, `,"usage":`...)
		out = converseUsage(u).AppendJSON(out)
	}
	return append(out, '}'), nil
}
