package mock

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const anthropicKey = "sk-ant-mock"

// postMessages sends a Messages request with the headers an Anthropic client sends.
func postMessages(t *testing.T, srv *httptest.Server, body string, header ...string) (*http.Response, string) {
	t.Helper()
	return post(t, srv, "/v1/messages", body, append([]string{"anthropic-version", "2023-06-01", "x-api-key", anthropicKey}, header...)...)
}

// anthropicEvent is one event of a Messages stream.
type anthropicEvent struct {
	name, data string
}

// anthropicEvents splits a Messages stream into its events, checking the framing: each event is
// an event: line and a data: line whose type is the event's name.
func anthropicEvents(t *testing.T, body string) []anthropicEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	var out []anthropicEvent
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		lines := strings.Split(ev, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("malformed event %q", ev)
		}
		e := anthropicEvent{name: strings.TrimPrefix(lines[0], "event: "), data: strings.TrimPrefix(lines[1], "data: ")}
		if typ := decode[struct{ Type string }](t, e.data).Type; typ != e.name {
			t.Fatalf("event %s carries type %q", e.name, typ)
		}
		out = append(out, e)
	}
	return out
}

type messageJSON struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Role    string `json:"role"`
	Model   string `json:"model"`
	Content []struct {
		Type  string         `json:"type"`
		Text  string         `json:"text"`
		ID    string         `json:"id"`
		Name  string         `json:"name"`
		Input map[string]any `json:"input"`
	} `json:"content"`
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        *struct {
		Input  int `json:"input_tokens"`
		Write  int `json:"cache_creation_input_tokens"`
		Read   int `json:"cache_read_input_tokens"`
		Output int `json:"output_tokens"`
	} `json:"usage"`
}

// messagesBody is a request of 3 + 2 words (system) + 3 + 4 words (user) = 12 input tokens.
const messagesBody = `{"model":"claude-test","max_tokens":1024,"system":"Be terse.","messages":[{"role":"user","content":[{"type":"text","text":"Say hello to mock"}]}]`

func TestMockAnthropicNonStream(t *testing.T) {
	tests := []struct {
		name       string
		extra      string
		wantText   string
		wantStop   string
		wantSeq    string
		wantOutput int
		noUsage    bool
	}{
		{name: "defaults", wantText: answerText(20), wantStop: "end_turn", wantOutput: 20},
		{name: "max_tokens cuts", extra: `,"max_tokens":7`, wantText: answerText(7), wantStop: "max_tokens", wantOutput: 7},
		{name: "stop sequence", extra: `,"stop_sequences":["nope","streams"]`, wantText: "the mock upstream", wantStop: "stop_sequence", wantSeq: "streams", wantOutput: 3},
		{name: "no usage", extra: `,"mock":{"no_usage":true,"chunks":2}`, wantText: answerText(2), wantStop: "end_turn", noUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := startServer(t, Options{RequireKey: anthropicKey})
			// a later max_tokens wins over the one in messagesBody, as gjson reads the last
			resp, body := postMessages(t, srv, strings.Replace(messagesBody, `"max_tokens":1024`, `"max_tokens":1024`+tt.extra, 1)+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			m := decode[messageJSON](t, body)
			if !strings.HasPrefix(m.ID, "msg_mock_") || m.Type != "message" || m.Role != "assistant" || m.Model != "claude-test" {
				t.Errorf("head %+v", m)
			}
			if len(m.Content) != 1 || m.Content[0].Type != "text" || m.Content[0].Text != tt.wantText {
				t.Errorf("content %+v, want text %q", m.Content, tt.wantText)
			}
			if m.StopReason != tt.wantStop || (m.StopSequence == nil) != (tt.wantSeq == "") || (m.StopSequence != nil && *m.StopSequence != tt.wantSeq) {
				t.Errorf("stop %q %v, want %q %q", m.StopReason, m.StopSequence, tt.wantStop, tt.wantSeq)
			}
			switch {
			case tt.noUsage && m.Usage != nil:
				t.Errorf("usage %+v with no_usage", m.Usage)
			case !tt.noUsage && (m.Usage == nil || m.Usage.Input != 12 || m.Usage.Output != tt.wantOutput || m.Usage.Read+m.Usage.Write != 0):
				t.Errorf("usage %+v, want 12 in, %d out", m.Usage, tt.wantOutput)
			}
		})
	}
}

func TestMockAnthropicStream(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 4, TokensPerChunk: 2, RequireKey: anthropicKey})
	resp, body := postMessages(t, srv, messagesBody+`,"stream":true}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	evs := anthropicEvents(t, body)
	var names []string
	var text strings.Builder
	for _, e := range evs {
		names = append(names, e.name)
		if e.name == "content_block_delta" {
			text.WriteString(decode[struct {
				Delta struct{ Text string }
			}](t, e.data).Delta.Text)
		}
	}
	want := "message_start content_block_start ping content_block_delta content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events %s\nwant   %s", got, want)
	}
	if text.String() != answerText(8) {
		t.Errorf("text %q", text.String())
	}
	start := decode[struct{ Message messageJSON }](t, evs[0].data).Message
	if start.Usage == nil || start.Usage.Input != 12 || start.Usage.Output != 1 || start.StopReason != "" || len(start.Content) != 0 {
		t.Errorf("message_start %s", evs[0].data)
	}
	delta := decode[struct {
		Delta struct {
			StopReason string `json:"stop_reason"`
		}
		Usage struct {
			Input  int `json:"input_tokens"`
			Output int `json:"output_tokens"`
		}
	}](t, evs[len(evs)-2].data)
	if delta.Delta.StopReason != "end_turn" || delta.Usage.Output != 8 || delta.Usage.Input != 12 {
		t.Errorf("message_delta %s", evs[len(evs)-2].data)
	}
	if s := h.Stats(); s.Requests != 1 || s.Completed != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestMessagesStreamIsPaced: events leave one by one, as the chunks are paced.
func TestMockAnthropicStreamIsPaced(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 3})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages",
		strings.NewReader(messagesBody+`,"stream":true,"mock":{"interval_ms":300}}`))
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	start := time.Now()
	for i := 0; i < 4; i++ { // message_start, content_block_start, ping, the first delta
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("the first delta took %v: events are held back", d)
	}
}

func TestMockAnthropicTools(t *testing.T) {
	tools := `"tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},"tags":{"type":"array"},"opts":{"type":"object"},"any":{}}}},` +
		`{"name":"get_time","input_schema":{"type":"object","properties":{"zone":{"type":"string"}}}}]`
	ask := func(text string) string {
		return `"messages":[{"role":"user","content":"` + text + `"}]`
	}
	weather := map[string]any{"city": "mock", "days": 1.0, "metric": true, "tags": []any{}, "opts": map[string]any{}, "any": nil}
	tests := []struct {
		name      string
		body      string
		wantTools []string
	}{
		{"auto, both named: parallel calls", tools + `,` + ask("get_weather and get_time please"), []string{"get_weather", "get_time"}},
		{"auto, none named: the first tool", tools + `,` + ask("hello"), []string{"get_weather"}},
		{"parallel use disabled", tools + `,"tool_choice":{"type":"auto","disable_parallel_tool_use":true},` + ask("get_time get_weather"), []string{"get_weather"}},
		{"any", tools + `,"tool_choice":{"type":"any"},` + ask("get_time"), []string{"get_time"}},
		{"a named tool", tools + `,"tool_choice":{"type":"tool","name":"get_time"},` + ask("get_weather"), []string{"get_time"}},
		{"none", tools + `,"tool_choice":{"type":"none"},` + ask("get_weather"), nil},
		{"after the tool results: text", tools + `,"messages":[{"role":"user","content":"get_time"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"get_time","input":{"zone":"mock"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"noon here"},{"type":"text","text":"thanks"}]}]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := startServer(t, Options{})
			resp, body := postMessages(t, srv, `{"model":"claude-test","max_tokens":100,`+tt.body+`}`)
			if resp.StatusCode != 200 {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			m := decode[messageJSON](t, body)
			var got []string
			output := 0
			for _, b := range m.Content {
				if b.Type == "tool_use" {
					got = append(got, b.Name)
					if !strings.HasPrefix(b.ID, "toolu_mock_") {
						t.Errorf("id %q", b.ID)
					}
					if b.Name == "get_weather" && len(b.Input) != len(weather) {
						t.Errorf("input %v, want %v", b.Input, weather)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.wantTools, ",") {
				t.Fatalf("tools called %v, want %v: %s", got, tt.wantTools, body)
			}
			if len(got) > 0 {
				if m.StopReason != "tool_use" {
					t.Errorf("stop_reason %q", m.StopReason)
				}
				for _, name := range got {
					in := toolInput(gjson.Get(`{`+tt.body+`}`, `tools.#(name=="`+name+`").input_schema`))
					output += (len(in) + 3) / 4
				}
				if m.Usage.Output != output {
					t.Errorf("output_tokens %d, want %d", m.Usage.Output, output)
				}
			} else if m.StopReason != "end_turn" || m.Content[0].Type != "text" {
				t.Errorf("want a text answer: %s", body)
			}
			if tt.name == "after the tool results: text" && m.Usage.Input != (3+1)+3+(3+2+1) {
				t.Errorf("input_tokens %d: tool results count their words", m.Usage.Input)
			}
		})
	}
}

// TestMessagesToolStream: tool inputs stream as input_json_delta fragments (the first empty)
// that join into the input.
func TestMockAnthropicToolStream(t *testing.T) {
	srv, _ := startServer(t, Options{})
	_, body := postMessages(t, srv, `{"model":"claude-test","max_tokens":100,"stream":true,`+
		`"tools":[{"name":"a","input_schema":{"type":"object","properties":{"long_property_name":{"type":"string"},"n":{"type":"number"}}}},{"name":"b","input_schema":{"type":"object"}}],`+
		`"messages":[{"role":"user","content":"call a and b"}]}`)
	evs := anthropicEvents(t, body)
	inputs := map[int]string{}
	starts := 0
	firstEmpty := map[int]bool{}
	for _, e := range evs {
		d := decode[struct {
			Index        int
			ContentBlock struct{ Type, ID, Name string } `json:"content_block"`
			Delta        struct {
				Type        string
				PartialJSON *string `json:"partial_json"`
			}
		}](t, e.data)
		switch {
		case e.name == "content_block_start":
			starts++
			if d.ContentBlock.Type != "tool_use" || d.ContentBlock.ID == "" {
				t.Errorf("start %s", e.data)
			}
		case e.name == "content_block_delta" && d.Delta.Type == "input_json_delta":
			if _, seen := inputs[d.Index]; !seen {
				firstEmpty[d.Index] = *d.Delta.PartialJSON == ""
			}
			inputs[d.Index] += *d.Delta.PartialJSON
		}
	}
	if starts != 2 || inputs[0] != `{"long_property_name":"mock","n":1}` || inputs[1] != `{}` || !firstEmpty[0] || !firstEmpty[1] {
		t.Errorf("%d tool blocks, inputs %v, first fragments empty %v", starts, inputs, firstEmpty)
	}
	if !strings.Contains(evs[len(evs)-2].data, `"stop_reason":"tool_use"`) {
		t.Errorf("message_delta %s", evs[len(evs)-2].data)
	}
}

// TestMessagesCache: the prefix up to the last cache_control is written once, then read.
func TestMockAnthropicCache(t *testing.T) {
	srv, h := startServer(t, Options{Chunks: 1})
	body := `{"model":"claude-test","max_tokens":10,"system":[{"type":"text","text":"a long shared context of nine words here ok","cache_control":{"type":"ephemeral"}}],` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"question one"}]}]}`
	// system 3 + 9, user 3 + 2: prefix 12, rest 5
	for i, want := range []struct{ input, write, read int }{{5, 12, 0}, {5, 0, 12}} {
		_, out := postMessages(t, srv, body)
		u := decode[messageJSON](t, out).Usage
		if u == nil || u.Input != want.input || u.Write != want.write || u.Read != want.read {
			t.Errorf("request %d: usage %+v, want %+v", i, u, want)
		}
	}
	// a marker on the user turn moves the prefix to its end
	marked := strings.Replace(body, `"text":"question one"}`, `"text":"question one","cache_control":{"type":"ephemeral"}}`, 1)
	_, out := postMessages(t, srv, marked)
	if u := decode[messageJSON](t, out).Usage; u.Input != 0 || u.Write != 17 || u.Read != 0 {
		t.Errorf("marked user turn: usage %+v", u)
	}
	h.Reset()
	_, out = postMessages(t, srv, body)
	if u := decode[messageJSON](t, out).Usage; u.Write != 12 || u.Read != 0 {
		t.Errorf("after Reset: usage %+v, want a cache write again", u)
	}
}

func TestMockAnthropicFaults(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		body       string
		header     []string
		wantStatus int
		wantType   string
	}{
		{"overloaded", Options{}, messagesBody + `,"mock":{"status":529}}`, nil, 529, "overloaded_error"},
		{"rate limited", Options{}, messagesBody + `,"mock":{"status":429}}`, nil, 429, "rate_limit_error"},
		{"server error", Options{}, messagesBody + `,"mock":{"status":500}}`, nil, 500, "api_error"},
		{"billing", Options{}, messagesBody + `,"mock":{"status":402}}`, nil, 402, "billing_error"},
		{"error rate", Options{ErrorRate: 1}, messagesBody + `}`, nil, 500, "api_error"},
		{"wrong key", Options{RequireKey: "other"}, messagesBody + `}`, nil, 401, "authentication_error"},
		{"override key", Options{}, messagesBody + `,"mock":{"require_key":"k2"}}`, nil, 401, "authentication_error"},
		{"no version", Options{}, messagesBody + `}`, []string{"anthropic-version", ""}, 400, "invalid_request_error"},
		{"unknown field", Options{}, messagesBody + `,"stream_options":{"include_usage":true}}`, nil, 400, "invalid_request_error"},
		{"system role", Options{}, `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, nil, 400, "invalid_request_error"},
		{"no max_tokens", Options{}, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error"},
		{"temperature above 1", Options{}, messagesBody + `,"temperature":1.5}`, nil, 400, "invalid_request_error"},
		{"empty text block", Options{}, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}`, nil, 400, "invalid_request_error"},
		{"bad image", Options{}, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"x"}}]}]}`, nil, 400, "invalid_request_error"},
		{"unanswered tool_use", Options{}, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":"y"}]}`, nil, 400, "invalid_request_error"},
		{"stray tool_result", Options{}, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]}`, nil, 400, "invalid_request_error"},
		{"tool_choice without tools", Options{}, messagesBody + `,"tool_choice":{"type":"any"}}`, nil, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, h := startServer(t, tt.opts)
			resp, body := postMessages(t, srv, tt.body, tt.header...)
			e := decode[struct {
				Type  string
				Error struct{ Type, Message string }
			}](t, body)
			if resp.StatusCode != tt.wantStatus || e.Type != "error" || e.Error.Type != tt.wantType || e.Error.Message == "" {
				t.Errorf("HTTP %d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantType)
			}
			if s := h.Stats(); s.Requests != 1 || s.Errors != 1 {
				t.Errorf("stats %+v", s)
			}
		})
	}
	t.Run("raw error body", func(t *testing.T) {
		srv, _ := startServer(t, Options{})
		resp, body := postMessages(t, srv, messagesBody+`,"mock":{"status":503,"error_body":"<html>down</html>"}}`)
		if resp.StatusCode != 503 || body != "<html>down</html>" {
			t.Errorf("HTTP %d %q", resp.StatusCode, body)
		}
	})
	t.Run("bearer is not Anthropic's auth", func(t *testing.T) {
		srv, _ := startServer(t, Options{RequireKey: anthropicKey})
		resp, _ := post(t, srv, "/v1/messages", messagesBody+`}`, "anthropic-version", "2023-06-01", "Authorization", "Bearer "+anthropicKey)
		if resp.StatusCode != 401 {
			t.Errorf("HTTP %d", resp.StatusCode)
		}
	})
}

// TestMessagesFailAfter: the stream ends with an error event after that many deltas, and the
// stats count it as aborted.
func TestMockAnthropicFailAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		wantDeltas int
	}{
		{"text", messagesBody + `,"stream":true,"mock":{"fail_after":3}}`, 3},
		{"beyond the chunks", messagesBody + `,"stream":true,"mock":{"fail_after":99,"chunks":2}}`, 2},
		{"tools", `{"model":"m","max_tokens":5,"stream":true,"tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"x"}],"mock":{"fail_after":0}}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, h := startServer(t, Options{})
			resp, body := postMessages(t, srv, tc.body)
			evs := anthropicEvents(t, body)
			deltas := 0
			for _, e := range evs {
				if e.name == "content_block_delta" {
					deltas++
				}
				if e.name == "message_stop" || e.name == "message_delta" {
					t.Errorf("a failed stream has %s", e.name)
				}
			}
			last := evs[len(evs)-1]
			if resp.StatusCode != 200 || deltas != tc.wantDeltas || last.name != "error" || !strings.Contains(last.data, "overloaded_error") {
				t.Errorf("HTTP %d, %d deltas, last %+v", resp.StatusCode, deltas, last)
			}
			if s := h.Stats(); s.Aborted != 1 || s.Completed != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}
