package responses

import (
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Replay renders a whole Response object (doc) as the event stream that a create request with
// stream:true would have brought: response.created and response.in_progress with the response in
// progress, for each output item its added event, the deltas and done events of its content, its
// done event, then the terminal event named by the response's status (response.completed,
// response.incomplete or response.failed) with the whole response. Each text or argument comes
// as one delta. Events are numbered from 0, and only those numbered above after are rendered
// (after < 0: all), which is how a client resumes a stream (GET …?stream=true&starting_after=N).
// It serves a response kept whole, where the original events are gone.
func Replay(doc []byte, after int64) []byte {
	r := replay{after: after}
	doc = []byte(gjson.GetBytes(doc, "@ugly").Raw) // one line: each event's data is one line
	progress, _ := sjson.SetBytes(doc, "status", "in_progress")
	progress, _ = sjson.SetRawBytes(progress, "output", []byte("[]"))
	progress, _ = sjson.SetRawBytes(progress, "usage", []byte("null"))
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		r.event(typ, `{"response":`+string(progress)+`}`)
	}
	gjson.GetBytes(doc, "output").ForEach(func(k, item gjson.Result) bool {
		index := k.Int()
		loc := `"output_index":` + strconv.FormatInt(index, 10)
		itemID := `"item_id":` + strconv.Quote(item.Get("id").Str)
		started := item.Raw
		switch item.Get("type").Str {
		case "message":
			started = setRaw(started, "content", "[]")
		case "function_call":
			started = setRaw(started, "arguments", `""`)
		}
		if item.Get("status").Exists() {
			started = setRaw(started, "status", `"in_progress"`)
		}
		r.event("response.output_item.added", `{`+loc+`,"item":`+started+`}`)
		switch item.Get("type").Str {
		case "message":
			item.Get("content").ForEach(func(ck, part gjson.Result) bool {
				at := itemID + "," + loc + `,"content_index":` + strconv.FormatInt(ck.Int(), 10)
				field, delta, done := "text", "response.output_text.delta", "response.output_text.done"
				if part.Get("type").Str == "refusal" {
					field, delta, done = "refusal", "response.refusal.delta", "response.refusal.done"
				}
				value := part.Get(field)
				r.event("response.content_part.added", `{`+at+`,"part":`+setRaw(part.Raw, field, `""`)+`}`)
				extra := ""
				if field == "text" {
					extra = `,"logprobs":[]`
				}
				r.event(delta, `{`+at+`,"delta":`+quoted(value)+extra+`}`)
				r.event(done, `{`+at+`,"`+field+`":`+quoted(value)+extra+`}`)
				r.event("response.content_part.done", `{`+at+`,"part":`+part.Raw+`}`)
				return true
			})
		case "function_call":
			args := item.Get("arguments")
			r.event("response.function_call_arguments.delta", `{`+itemID+","+loc+`,"delta":`+quoted(args)+`}`)
			r.event("response.function_call_arguments.done", `{`+itemID+","+loc+`,"arguments":`+quoted(args)+`}`)
		}
		r.event("response.output_item.done", `{`+loc+`,"item":`+item.Raw+`}`)
		return true
	})
	terminal := "response.completed"
	switch gjson.GetBytes(doc, "status").Str {
	case "incomplete":
		terminal = "response.incomplete"
	case "failed":
		terminal = "response.failed"
	}
	r.event(terminal, `{"response":`+string(doc)+`}`)
	return r.out
}

// replay accumulates the rendered events of Replay.
type replay struct {
	out   []byte
	seq   int64
	after int64
}

// event renders one event of type typ whose data is fields (a JSON object) with type and
// sequence_number first, unless it is numbered at or below after.
func (r *replay) event(typ, fields string) {
	n := r.seq
	r.seq++
	if n <= r.after {
		return
	}
	r.out = append(r.out, "event: "+typ+"\ndata: {\"type\":\""+typ+"\",\"sequence_number\":"...)
	r.out = strconv.AppendInt(r.out, n, 10)
	if rest := fields[1:]; rest != "}" {
		r.out = append(r.out, ',')
		r.out = append(r.out, rest...)
	} else {
		r.out = append(r.out, '}')
	}
	r.out = append(r.out, "\n\n"...)
}

// setRaw sets path in a JSON object to raw, keeping the object as it is when it cannot.
func setRaw(obj, path, raw string) string {
	if out, err := sjson.SetRaw(obj, path, raw); err == nil {
		return out
	}
	return obj
}

// quoted is a string value as JSON: its raw form when it is a string, else "".
func quoted(v gjson.Result) string {
	if v.Type == gjson.String {
		return v.Raw
	}
	return `""`
}
