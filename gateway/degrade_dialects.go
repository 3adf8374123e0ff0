package gateway

import (
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/providers/messages"
	"github.com/llmgate/llmgate/providers/responses"
)

// The degrade reply in the Responses and Messages dialects: the chat completion degradeBody
// builds, said as that API says an answer, and as its event stream when the client streams.

// degradeResponse is the degrade reply (a whole chat completion) as a completed Response: one
// assistant message with the first choice's text, zero usage, and metadata llmgate_degraded
// "true" (a Response has no finish_reason). Its id is new and stored nowhere: a follow-up naming
// it is answered as for any unknown response.
func (x *exchange) degradeResponse(chat []byte) []byte {
	text := gjson.GetBytes(chat, "choices.0.message.content").String()
	b := []byte(`{"object":"response","status":"completed","background":false,"error":null,"incomplete_details":null,` +
		`"output":[{"type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[]}]}],` +
		`"usage":{"input_tokens":0,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0},` +
		`"metadata":{"llmgate_degraded":"true"}}`)
	id := responses.NewResponseID()
	b, _ = sjson.SetBytes(b, "id", id)
	b, _ = sjson.SetBytes(b, "created_at", x.start.Unix())
	b, _ = sjson.SetBytes(b, "completed_at", x.start.Unix())
	b, _ = sjson.SetBytes(b, "model", x.rec.Model)
	b, _ = sjson.SetBytes(b, "output.0.id", "msg_"+id[len("resp_"):])
	b, _ = sjson.SetBytes(b, "output.0.content.0.text", text)
	return b
}

// degradeMessage is the degrade reply as an Anthropic Message: one text block with the first
// choice's text, stop_reason "degraded" (as the chat completion's finish_reason), zero usage.
func (x *exchange) degradeMessage(chat []byte) []byte {
	text := gjson.GetBytes(chat, "choices.0.message.content").String()
	b := []byte(`{"type":"message","role":"assistant","content":[{"type":"text"}],"stop_reason":"degraded","stop_sequence":null,` +
		`"usage":{"input_tokens":0,"output_tokens":0}}`)
	b, _ = sjson.SetBytes(b, "id", messages.NewMessageID())
	b, _ = sjson.SetBytes(b, "model", x.rec.Model)
	b, _ = sjson.SetBytes(b, "content.0.text", text)
	return b
}

// messageEvents is a whole Message (one text block, as degradeMessage makes) as the Messages
// API's event stream: message_start, the block's start, one delta and stop, message_delta with
// the stop reason and usage, message_stop.
func messageEvents(msg []byte) []byte {
	m := gjson.ParseBytes(msg)
	start, _ := sjson.SetRawBytes(msg, "content", []byte("[]"))
	start, _ = sjson.SetRawBytes(start, "stop_reason", []byte("null"))
	var out []byte
	event := func(typ string, data []byte) {
		data, _ = sjson.SetBytes(data, "type", typ)
		out = append(out, "event: "+typ+"\ndata: "...)
		out = append(out, data...)
		out = append(out, "\n\n"...)
	}
	obj := func(path string, v any) []byte {
		b, _ := sjson.SetBytes([]byte(`{}`), path, v)
		return b
	}
	raw := func(b []byte, path, v string) []byte {
		b, _ = sjson.SetRawBytes(b, path, []byte(v))
		return b
	}
	event("message_start", raw([]byte(`{}`), "message", string(start)))
	event("content_block_start", raw(obj("index", 0), "content_block", `{"type":"text","text":""}`))
	delta, _ := sjson.SetBytes(obj("index", 0), "delta", map[string]string{"type": "text_delta", "text": m.Get("content.0.text").String()})
	event("content_block_delta", delta)
	event("content_block_stop", obj("index", 0))
	md := raw([]byte(`{}`), "delta", `{"stop_sequence":null}`)
	md, _ = sjson.SetBytes(md, "delta.stop_reason", m.Get("stop_reason").String())
	event("message_delta", raw(md, "usage", m.Get("usage").Raw))
	event("message_stop", []byte(`{}`))
	return out
}
