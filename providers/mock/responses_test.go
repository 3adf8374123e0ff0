package mock

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func responsesCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(testCtx(t), method, url, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A whole response: one message of the answer's words, the prompt counted by the chat rule, a cut
// answer incomplete; it is kept for GET, DELETE and follow-ups, and unknown ids are refused.
func TestResponsesWhole(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 6})
	url := srv.URL + "/v1/responses"
	for _, tc := range []struct {
		name, body         string
		tokens, prompt     int
		status, incomplete string
	}{
		{"string input", `{"model":"m","input":"hello there","instructions":"be brief"}`, 6, 5 + 5, "completed", ""},
		{"items", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a b c"}]},{"type":"function_call_output","call_id":"c","output":"x y"}]}`, 6, 6 + 2, "completed", ""},
		{"cut", `{"model":"m","input":"hi","max_output_tokens":4}`, 4, 4, "incomplete", "max_output_tokens"},
	} {
		status, body := responsesCall(t, http.MethodPost, url, tc.body)
		var r struct {
			ID, Object, Status, Model string
			IncompleteDetails         *struct{ Reason string } `json:"incomplete_details"`
			Output                    []struct {
				Type    string
				Content []struct{ Type, Text string }
			}
			Usage struct {
				InputTokens  int `json:"input_tokens"`
				OutputTokens int `json:"output_tokens"`
				TotalTokens  int `json:"total_tokens"`
			}
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || status != 200 {
			t.Fatalf("%s: %d %s (%v)", tc.name, status, body, err)
		}
		if r.Object != "response" || r.Model != "m" || r.Status != tc.status || len(r.Output) != 1 || r.Output[0].Type != "message" ||
			r.Output[0].Content[0].Text != answerText(tc.tokens) || r.Usage.InputTokens != tc.prompt || r.Usage.OutputTokens != tc.tokens ||
			r.Usage.TotalTokens != tc.prompt+tc.tokens || (tc.incomplete != "") != (r.IncompleteDetails != nil) {
			t.Errorf("%s: %s", tc.name, body)
		}
		if got, stored := responsesCall(t, http.MethodGet, url+"/"+r.ID, ""); got != 200 || stored != body {
			t.Errorf("%s: GET %d %s, want the response", tc.name, got, stored)
		}
		if got, _ := responsesCall(t, http.MethodPost, url, `{"model":"m","input":"more","previous_response_id":"`+r.ID+`"}`); got != 200 {
			t.Errorf("%s: follow-up %d", tc.name, got)
		}
		if got, del := responsesCall(t, http.MethodDelete, url+"/"+r.ID, ""); got != 200 || !strings.Contains(del, `"deleted":true`) {
			t.Errorf("%s: DELETE %d %s", tc.name, got, del)
		}
		if got, _ := responsesCall(t, http.MethodGet, url+"/"+r.ID, ""); got != 404 {
			t.Errorf("%s: GET after DELETE %d, want 404", tc.name, got)
		}
	}
	if status, body := responsesCall(t, http.MethodPost, url, `{"model":"m","input":"x","previous_response_id":"resp_nope"}`); status != 400 ||
		!strings.Contains(body, "previous_response_not_found") {
		t.Errorf("unknown previous response: %d %s", status, body)
	}
	if status, body := responsesCall(t, http.MethodPost, url, `{"model":"m","input":"x","mock":{"status":429}}`); status != 429 ||
		!strings.Contains(body, "rate_limit_exceeded") {
		t.Errorf("injected status: %d %s", status, body)
	}
}

// The stream: every event with its event line equal to its type, sequence numbers from 0, the
// deltas making the answer, usage on response.completed; fail_after drops it after the deltas.
func TestResponsesStream(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 5})
	events := func(body string) ([]map[string]any, []string, error) {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, srv.URL+"/v1/responses", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var datas []map[string]any
		var names []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "event: "); ok {
				names = append(names, n)
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Fatalf("%q: %v", d, err)
				}
				datas = append(datas, m)
			}
		}
		return datas, names, sc.Err()
	}
	datas, names, err := events(`{"model":"m","input":"hi","stream":true}`)
	if err != nil || len(datas) != 5+8 || len(names) != len(datas) {
		t.Fatalf("%d events, %d event lines, %v", len(datas), len(names), err)
	}
	var text strings.Builder
	for i, d := range datas {
		if d["type"] != names[i] || d["sequence_number"] != float64(i) {
			t.Errorf("event %d: %q %v %v", i, names[i], d["type"], d["sequence_number"])
		}
		if names[i] == "response.output_text.delta" {
			text.WriteString(d["delta"].(string))
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if strings.Join(names[:4], ",") != strings.Join(want, ",") || names[len(names)-1] != "response.completed" || text.String() != answerText(5) {
		t.Errorf("events %v, text %q", names, text.String())
	}
	usage := datas[len(datas)-1]["response"].(map[string]any)["usage"].(map[string]any)
	if usage["input_tokens"] != float64(4) || usage["output_tokens"] != float64(5) {
		t.Errorf("usage %v", usage)
	}
	datas, names, err = events(`{"model":"m","input":"hi","stream":true,"mock":{"fail_after":2}}`)
	if err == nil || len(datas) != 4+2 || names[len(names)-1] != "response.output_text.delta" {
		t.Errorf("fail_after 2: %v, events %v", err, names)
	}
}

// GET …?stream=true replays a stored response as its event stream, from starting_after on.
func TestResponsesRetrieveStream(t *testing.T) {
	srv, _ := startServer(t, Options{Chunks: 3})
	url := srv.URL + "/v1/responses"
	status, body := responsesCall(t, http.MethodPost, url, `{"model":"m","input":"hello"}`)
	if status != 200 {
		t.Fatalf("create: %d %s", status, body)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	id := created["id"].(string)
	read := func(query string) []map[string]any {
		status, raw := responsesCall(t, http.MethodGet, url+"/"+id+"?"+query, "")
		if status != 200 {
			t.Fatalf("GET ?%s: %d %s", query, status, raw)
		}
		var out []map[string]any
		for _, ev := range strings.Split(strings.TrimSpace(raw), "\n\n") {
			name, data, _ := strings.Cut(ev, "\ndata: ")
			var m map[string]any
			if err := json.Unmarshal([]byte(data), &m); err != nil || "event: "+m["type"].(string) != name {
				t.Fatalf("event %q: %v", ev, err)
			}
			out = append(out, m)
		}
		return out
	}
	all := read("stream=true")
	last := all[len(all)-1]
	if all[0]["type"] != "response.created" || last["type"] != "response.completed" {
		t.Fatalf("replay from %v to %v", all[0]["type"], last["type"])
	}
	if resp, _ := json.Marshal(last["response"]); string(resp) != mustCompact(t, body) {
		t.Errorf("terminal response %s, want the stored %s", resp, body)
	}
	tail := read("stream=true&starting_after=4")
	if len(tail) != len(all)-5 || tail[0]["sequence_number"] != float64(5) {
		t.Errorf("starting_after=4: %d events from %v, want %d from 5", len(tail), tail[0]["sequence_number"], len(all)-5)
	}
	if status, _ := responsesCall(t, http.MethodGet, url+"/resp_nope?stream=true", ""); status != 404 {
		t.Errorf("unknown id: %d, want 404", status)
	}
}

// mustCompact re-encodes a JSON document as encoding/json does (sorted keys, no spaces).
func mustCompact(t *testing.T, doc string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
