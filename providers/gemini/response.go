package gemini

import (
	"bytes"
	"cmp"
	"net/http"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsonappend"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers/internal/oairender"
)

// answerMeta supplies what a translated answer needs beyond the upstream's body: its creation
// time and, when Gemini gave no responseId, a random id. Tests fix both for golden files.
type answerMeta struct {
	now   func() time.Time
	newID func() string
	// model names the answer when Gemini's modelVersion is missing.
	model string
}

// responseError is a 200 answer that is not a usable Gemini response: it becomes the status and
// OpenAI error the client sees.
type responseError struct {
	status int
	err    api.ErrorObject
}

func (e *responseError) Error() string { return e.err.Message }

var errMalformed = &responseError{status: http.StatusBadGateway, err: api.NewError(api.TypeUpstream,
	"upstream_malformed_response", "", "The upstream answered with a body that is not a Gemini response.")}

// translateResponse turns a generateContent answer into a chat.completion body. It also accepts
// the JSON array streamGenerateContent answers without alt=sse (the chunks are merged).
func translateResponse(raw []byte, meta answerMeta) ([]byte, error) {
	if !jsoncheck.Valid(raw) {
		return nil, errMalformed
	}
	root := gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
	var a answer
	switch {
	case root.IsObject():
		if err := a.add(root); err != nil {
			return nil, err
		}
	case root.IsArray():
		var err error
		root.ForEach(func(_, c gjson.Result) bool {
			if !c.IsObject() {
				err = errMalformed
			} else {
				err = a.add(c)
			}
			return err == nil
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, errMalformed
	}
	return a.render(meta), nil
}

// answer accumulates the chunks of a non-stream answer.
type answer struct {
	id, model   string
	text        []byte // unescaped
	reasoning   []byte // unescaped
	hasText     bool
	calls       []byte // rendered tool_calls entries, comma-separated
	ncalls      int
	finish      string // Gemini's reason; "" while none
	usage       usage
	hasUsage    bool
	scratch     bytes.Buffer
	blockReason string
}

func (a *answer) add(chunk gjson.Result) error {
	if e := chunk.Get("error"); e.Exists() {
		status, ae := openAIError(int(e.Get("code").Int()), []byte(chunk.Raw))
		if status < 400 || status > 599 {
			status = http.StatusBadGateway
		}
		return &responseError{status: status, err: ae}
	}
	if a.id == "" {
		if id := chunk.Get("responseId").Str; safeID(id) {
			a.id = id
		}
	}
	if a.model == "" {
		a.model = chunk.Get("modelVersion").Str
	}
	if u := chunk.Get("usageMetadata"); u.IsObject() {
		a.usage, a.hasUsage = parseUsage(u), true
	}
	if br := chunk.Get("promptFeedback.blockReason").Str; br != "" {
		a.blockReason = br
	}
	c := firstCandidate(chunk)
	c.Get("content.parts").ForEach(func(_, p gjson.Result) bool {
		switch {
		case p.Get("functionCall").IsObject():
			fc := p.Get("functionCall")
			if a.ncalls > 0 {
				a.calls = append(a.calls, ',')
			}
			a.calls = append(a.calls, `{"id":`...)
			a.calls = appendCallID(a.calls, p, a.id, a.ncalls)
			a.calls = append(a.calls, `,"type":"function","function":{"name":`...)
			a.calls = jsonappend.String(a.calls, fc.Get("name").String())
			a.calls = append(a.calls, `,"arguments":`...)
			a.calls = oairender.AppendArguments(a.calls, fc.Get("args"), &a.scratch)
			a.calls = append(a.calls, "}}"...)
			a.ncalls++
		case p.Get("thought").Bool():
			a.reasoning = append(a.reasoning, p.Get("text").Str...)
		case p.Get("text").Exists():
			a.text = append(a.text, p.Get("text").Str...)
			a.hasText = true
		}
		return true
	})
	if fr := c.Get("finishReason").Str; fr != "" {
		a.finish = fr
	}
	return nil
}

func (a *answer) render(meta answerMeta) []byte {
	out := make([]byte, 0, 256+len(a.text)+len(a.reasoning)+len(a.calls))
	out = oairender.AppendCompletionHead(out, "chatcmpl-"+idOr(a.id, meta), meta.now().Unix(), cmp.Or(a.model, meta.model))
	out = append(out, `"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if a.hasText {
		out = jsonappend.String(out, string(a.text))
	} else {
		out = append(out, "null"...) // as OpenAI answers a tool call, or a filtered answer
	}
	if len(a.reasoning) > 0 {
		out = append(out, `,"reasoning_content":`...)
		out = jsonappend.String(out, string(a.reasoning))
	}
	if a.ncalls > 0 {
		out = append(out, `,"tool_calls":[`...)
		out = append(out, a.calls...)
		out = append(out, ']')
	}
	out = append(out, `},"logprobs":null,"finish_reason":"`...)
	reason := a.finish
	if a.blockReason != "" && reason == "" {
		reason = "SAFETY" // the prompt was blocked: no candidate, nothing generated
	}
	out = append(out, finishReason(reason, a.ncalls > 0)...)
	out = append(out, `"}]`...)
	if a.hasUsage {
		out = append(out, `,"usage":`...)
		out = a.usage.openAI().AppendJSON(out)
	}
	return append(out, '}')
}

func idOr(id string, meta answerMeta) string {
	if id != "" {
		return id
	}
	return meta.newID()
}
