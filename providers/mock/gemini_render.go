package mock

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
)

// The Gemini answers: how an answer is split into events, and their rendering (see gemini.go for
// the rules they follow).

// geminiEvent is one event of an answer (the whole answer is them merged).
type geminiEvent struct {
	thought  bool
	from, to int  // the words of a thought or text event
	calls    bool // the event carries the function calls
	// cumulative counts after this event
	candidates, thoughts int
	finish               string // the reason the answer ends with, on the last event
}

// plan splits the answer into events: thoughts, then the function calls or the text chunks.
func (c *geminiCall) plan() []geminiEvent {
	tpc := c.b.tokensPerChunk
	var evs []geminiEvent
	for from := 0; from < c.thoughtTokens; from += tpc {
		to := min(from+tpc, c.thoughtTokens)
		evs = append(evs, geminiEvent{thought: true, from: from, to: to, thoughts: to})
	}
	if len(c.calls) > 0 {
		evs = append(evs, geminiEvent{calls: true, candidates: geminiCallTokens * len(c.calls), thoughts: c.thoughtTokens, finish: "STOP"})
		return evs
	}
	tokens, chunks, finish := c.call.plan()
	for i := range chunks {
		to := min((i+1)*tpc, tokens)
		evs = append(evs, geminiEvent{from: i * tpc, to: to, candidates: to, thoughts: c.thoughtTokens})
	}
	last := &evs[len(evs)-1]
	last.finish = "STOP"
	if finish == "length" {
		last.finish = "MAX_TOKENS"
	}
	return evs
}

// appendGeminiResponse renders events [first, last] merged as one GenerateContentResponse; the
// finishReason of the last event is written only when withFinish.
func appendGeminiResponse(dst []byte, c *geminiCall, evs []geminiEvent, first, last int, withFinish bool) []byte {
	if first == 0 && last == len(evs)-1 && len(evs) > 1 {
		// A whole answer: one thought part and one text part (or the calls), as generateContent
		// sends them.
		dst = append(dst, `{"candidates":[{"content":{"parts":[`...)
		n := 0
		if c.thoughtTokens > 0 {
			dst = append(dst, `{"text":"`...)
			dst = appendWords(dst, 0, c.thoughtTokens)
			dst = append(dst, `","thought":true}`...)
			n++
		}
		end := evs[last]
		switch {
		case end.calls:
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendGeminiCalls(dst, c)
		case end.to > 0:
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"text":"`...)
			dst = appendWords(dst, 0, end.to)
			dst = append(dst, `"}`...)
		}
		return appendGeminiTail(dst, c, end, withFinish)
	}
	ev := evs[first]
	dst = append(dst, `{"candidates":[{"content":{"parts":[`...)
	switch {
	case ev.calls:
		dst = appendGeminiCalls(dst, c)
	default:
		dst = append(dst, `{"text":"`...)
		dst = appendWords(dst, ev.from, ev.to)
		if ev.thought {
			dst = append(dst, `","thought":true}`...)
		} else {
			dst = append(dst, `"}`...)
		}
	}
	return appendGeminiTail(dst, c, ev, withFinish)
}

// appendGeminiTail closes a response after its parts: role, finishReason, usage, model, id.
func appendGeminiTail(dst []byte, c *geminiCall, ev geminiEvent, withFinish bool) []byte {
	dst = append(dst, `],"role":"model"}`...)
	if withFinish && ev.finish != "" {
		dst = append(dst, `,"finishReason":"`...)
		dst = append(dst, ev.finish...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"index":0}]`...)
	if c.vertex && !c.b.noUsage && (!withFinish || ev.finish == "") {
		// Vertex AI counts nothing before the last event.
		dst = append(dst, `,"usageMetadata":{"trafficType":"ON_DEMAND"}`...)
	} else if !c.b.noUsage {
		dst = append(dst, `,"usageMetadata":{"promptTokenCount":`...)
		dst = strconv.AppendInt(dst, int64(c.promptTokens), 10)
		dst = append(dst, `,"candidatesTokenCount":`...)
		dst = strconv.AppendInt(dst, int64(ev.candidates), 10)
		dst = append(dst, `,"totalTokenCount":`...)
		dst = strconv.AppendInt(dst, int64(c.promptTokens+ev.candidates+ev.thoughts), 10)
		if ev.thoughts > 0 {
			dst = append(dst, `,"thoughtsTokenCount":`...)
			dst = strconv.AppendInt(dst, int64(ev.thoughts), 10)
		}
		dst = append(dst, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
		dst = strconv.AppendInt(dst, int64(c.promptTokens), 10)
		dst = append(dst, `}]}`...)
	}
	dst = append(dst, `,"modelVersion":`...)
	dst = append(dst, c.model...)
	dst = append(dst, `,"responseId":"mock-`...)
	dst = strconv.AppendUint(dst, c.seq, 10)
	return append(dst, `"}`...)
}

// appendGeminiCalls renders the functionCall parts of a tool turn.
func appendGeminiCalls(dst []byte, c *geminiCall) []byte {
	for i, f := range c.calls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"functionCall":{"name":`...)
		name, _ := json.Marshal(f.name)
		dst = append(dst, name...)
		dst = append(dst, `,"args":{`...)
		j := 0
		f.params.Get("properties").ForEach(func(k, p gjson.Result) bool {
			if j > 0 {
				dst = append(dst, ',')
			}
			j++
			key, _ := json.Marshal(k.Str)
			dst = append(append(dst, key...), ':')
			switch p.Get("type").Str {
			case "integer", "number", "INTEGER", "NUMBER":
				dst = append(dst, '1')
			case "boolean", "BOOLEAN":
				dst = append(dst, "true"...)
			case "array", "ARRAY":
				dst = append(dst, "[]"...)
			case "object", "OBJECT":
				dst = append(dst, "{}"...)
			default:
				v := "mock"
				if e := p.Get("enum.0"); e.Type == gjson.String {
					v = e.Str
				}
				s, _ := json.Marshal(v)
				dst = append(dst, s...)
			}
			return true
		})
		dst = append(dst, "}}"...)
		if i == 0 {
			dst = append(dst, `,"thoughtSignature":"`+geminiSignature+`"`...)
		}
		dst = append(dst, '}')
	}
	return dst
}

// writeGeminiStream answers as streamGenerateContent?alt=sse does, one flush per event.
func writeGeminiStream(w http.ResponseWriter, wt *waiter, c *geminiCall, evs []geminiEvent) outcome {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return outcomeCanceled
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if !wt.wait(c.b.ttft) {
		return outcomeCanceled
	}
	gap := c.b.gap()
	for i := range evs {
		if i == c.b.failAfter {
			return outcomeAborted
		}
		if i > 0 && !wt.wait(gap) {
			return outcomeCanceled
		}
		if c.expired != nil && c.expired() {
			ev := append((*buf)[:0], "data: "...)
			ev = append(ev, googleErrorBody(http.StatusUnauthorized, errUnauthenticated, "")...)
			ev = append(ev, "\r\n\r\n"...)
			*buf = ev
			if _, err := w.Write(ev); err != nil || rc.Flush() != nil {
				return outcomeCanceled
			}
			return outcomeError
		}
		cut := c.b.failAfter >= 0 && i == len(evs)-1 // fail_after at or past the end: no finishReason
		ev := append((*buf)[:0], "data: "...)
		ev = appendGeminiResponse(ev, c, evs, i, i, !cut)
		ev = append(ev, "\r\n\r\n"...)
		*buf = ev
		if _, err := w.Write(ev); err != nil || rc.Flush() != nil {
			return outcomeCanceled
		}
		if cut {
			return outcomeAborted
		}
	}
	return outcomeCompleted
}
