package responses

import (
	"errors"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/internal/jsoncheck"
)

// errNotHistory is NextHistory's input that is not what RequestInfo.Input and a Response are.
var errNotHistory = errors.New("responses: the conversation or the response cannot be read")

// NextHistory is the conversation a follow-up of a response replays (previous_response_id):
// the items the response was made from (RequestInfo.Input) followed by its output items, as
// input items. Reasoning items are left out, since ToChat would drop them anyway; instructions
// are not part of it, as OpenAI does not carry them over. The gateway stores the result with the
// response's id and hands it to ToChat in Options.History.
func NextHistory(input, response []byte) ([]byte, error) {
	in := gjson.ParseBytes(input)
	output := gjson.GetBytes(response, "output")
	if !jsoncheck.Valid(input) || !in.IsArray() || !jsoncheck.Valid(response) || !output.IsArray() {
		return nil, errNotHistory
	}
	out := make([]byte, 0, len(input)+len(output.Raw)+1)
	out = append(out, '[')
	in.ForEach(func(_, item gjson.Result) bool {
		out = appendItem(out, item.Raw)
		return true
	})
	output.ForEach(func(_, item gjson.Result) bool {
		if item.Get("type").Str != "reasoning" {
			out = appendItem(out, item.Raw)
		}
		return true
	})
	return append(out, ']'), nil
}
