package chatanswer

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestReaderEndings: how a chunk stream ends is told by Next's error, and a chunk's parts are
// found wherever upstreams put them.
func TestReaderEndings(t *testing.T) {
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	for _, tc := range []struct {
		name, in string
		want     func(error) bool
	}{
		{"done", "data: [DONE]\n\n", func(err error) bool { return err == io.EOF }},
		{"cut", "data: {\"choices\":[]}", func(err error) bool { return err == io.ErrUnexpectedEOF }},
		{"empty", "", func(err error) bool { return err == io.ErrUnexpectedEOF }},
		{"upstream error", "data: {\"error\":{\"code\":429}}\n\n", func(err error) bool {
			var ue *UpstreamError
			return errors.As(err, &ue) && ue.Code == "429" && ue.Message == "The upstream failed while streaming its answer."
		}},
		{"not an object", "data: []\n\n", isBroken},
		{"not JSON", "data: {\n\n", isBroken},
		{"nested too deep", "data: {\"x\":" + deep + "}\n\n", isBroken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tc.in)).Next()
			if !tc.want(err) {
				t.Errorf("Next: %v", err)
			}
		})
	}
	r := NewReader(strings.NewReader(`data: {"choices":[{"delta":{"reasoning":"r","content":"c","refusal":"n","tool_calls":[{"id":"a"},{"index":5}]},"finish_reason":"stop","usage":{"prompt_tokens":1}}]}` + "\n\n"))
	c, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var idx []int64
	c.ToolCalls(func(i int64, _ gjson.Result) bool { idx = append(idx, i); return true })
	if c.Reasoning() != "r" || c.Content() != "c" || c.Refusal() != "n" || c.FinishReason() != "stop" ||
		c.Usage.Get("prompt_tokens").Int() != 1 || len(idx) != 2 || idx[0] != 0 || idx[1] != 5 {
		t.Errorf("chunk read as %+v, tool call indexes %v", c, idx)
	}
}

func isBroken(err error) bool {
	var be *BrokenError
	return errors.As(err, &be) && be.Message != ""
}

// TestParse: a chat.completion is read when it is an object with a choice, and refused without
// growing the stack when nested deep.
func TestParse(t *testing.T) {
	if c, ok := Parse([]byte(`{"choices":[{"message":{}}],"usage":{"total_tokens":2}}`)); !ok || c.Usage.Get("total_tokens").Int() != 2 {
		t.Errorf("a completion: %v %+v", ok, c)
	}
	for _, in := range []string{`{}`, `[]`, `{"choices":[1]}`, `{"choices":[{"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}]}`} {
		if _, ok := Parse([]byte(in)); ok {
			t.Errorf("%.40s… parsed", in)
		}
	}
}
