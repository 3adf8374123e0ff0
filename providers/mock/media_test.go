package mock

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestImagesGenerations: dall-e models answer urls (b64_json on request) without usage; GPT
// image models answer b64_json with a usage object counted from the prompt and OpenAI's
// per-image output tokens; n images; faults as on chat.
func TestImagesGenerations(t *testing.T) {
	srv, h := startServer(t, Options{})
	for _, c := range []struct {
		body     string
		images   int
		field    string
		usageOut int64
		wantQual string
		wantSize string
		hasUsage bool
	}{
		{`{"model":"dall-e-3","prompt":"a red fox"}`, 1, "url", 0, "", "1024x1024", false},
		{`{"model":"dall-e-2","prompt":"a red fox","n":3,"size":"512x512","response_format":"b64_json"}`, 3, "b64_json", 0, "", "512x512", false},
		{`{"model":"gpt-image-1","prompt":"a red fox","n":2,"quality":"high"}`, 2, "b64_json", 2 * 4160, "high", "1024x1024", true},
		{`{"model":"gpt-image-1","prompt":"a red fox","size":"1536x1024"}`, 1, "b64_json", 1584, "medium", "1536x1024", true},
		{`{"model":"gpt-image-1","prompt":"a red fox","mock":{"no_usage":true}}`, 1, "b64_json", 0, "", "1024x1024", false},
	} {
		resp, body := post(t, srv, "/v1/images/generations", c.body)
		data := gjson.Get(body, "data").Array()
		if resp.StatusCode != http.StatusOK || len(data) != c.images || !data[0].Get(c.field).Exists() || gjson.Get(body, "created").Int() == 0 ||
			gjson.Get(body, "size").String() != c.wantSize || gjson.Get(body, "usage").Exists() != c.hasUsage {
			t.Errorf("%s: %d %s", c.body, resp.StatusCode, body)
			continue
		}
		if c.hasUsage && (gjson.Get(body, "usage.output_tokens").Int() != c.usageOut || gjson.Get(body, "usage.input_tokens").Int() != 3 ||
			gjson.Get(body, "quality").String() != c.wantQual) {
			t.Errorf("%s: usage %s", c.body, body)
		}
	}
	if resp, body := post(t, srv, "/v1/images/generations", `{"model":"dall-e-3"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no prompt: %d %s", resp.StatusCode, body)
	}
	before := h.Stats().Errors
	if resp, _ := post(t, srv, "/v1/images/generations", `{"model":"dall-e-3","prompt":"x","mock":{"status":429}}`); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("mock.status: %d", resp.StatusCode)
	}
	if resp, _ := post(t, srv, "/v1/images/generations", `{"model":"dall-e-3","prompt":"x","mock":{"error_rate":1}}`); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("mock.error_rate: %d", resp.StatusCode)
	}
	if n := h.Stats().Errors - before; n != 2 {
		t.Errorf("%d errors counted, want 2", n)
	}
}

// TestModerations: one result per input string, one for content parts; a category is flagged
// when the text holds its first word; every category has a score and applied input types.
func TestModerations(t *testing.T) {
	srv, _ := startServer(t, Options{})
	resp, body := post(t, srv, "/v1/moderations", `{"model":"omni-moderation-latest","input":["good morning","pure hate speech"]}`)
	res := gjson.Get(body, "results").Array()
	if resp.StatusCode != http.StatusOK || len(res) != 2 || gjson.Get(body, "model").String() != "omni-moderation-latest" || gjson.Get(body, "id").String() == "" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if res[0].Get("flagged").Bool() || !res[1].Get("flagged").Bool() || !res[1].Get("categories.hate").Bool() ||
		res[1].Get("categories.violence").Bool() || res[1].Get("category_scores.hate").Float() != 0.9 ||
		len(res[0].Get("categories").Map()) != 13 || res[0].Get("category_applied_input_types.sexual.0").String() != "text" {
		t.Errorf("results: %s", body)
	}
	_, body = post(t, srv, "/v1/moderations", `{"model":"omni-moderation-latest","input":[{"type":"text","text":"violence"},{"type":"image_url","image_url":{"url":"data:,"}}]}`)
	if res := gjson.Get(body, "results").Array(); len(res) != 1 || !res[0].Get("categories.violence").Bool() {
		t.Errorf("content parts: %s", body)
	}
	if resp, body := post(t, srv, "/v1/moderations", `{"model":"omni-moderation-latest"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no input: %d %s", resp.StatusCode, body)
	}
}

// TestImagesStream: stream:true answers partial_images partial images and then the completed
// image with its usage, each an event with its event line; fail_after drops the connection after
// that many events; no_usage drops the usage.
func TestImagesStream(t *testing.T) {
	srv, _ := startServer(t, Options{})
	read := func(body string) ([]string, []gjson.Result, error) {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, srv.URL+"/v1/images/generations", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("%s: content type %q", body, ct)
		}
		raw, err := io.ReadAll(resp.Body)
		var names []string
		var datas []gjson.Result
		for _, ev := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
			if name, data, ok := strings.Cut(ev, "\ndata: "); ok {
				names, datas = append(names, strings.TrimPrefix(name, "event: ")), append(datas, gjson.Parse(data))
			}
		}
		return names, datas, err
	}
	names, datas, err := read(`{"model":"gpt-image-1","prompt":"a red fox","stream":true,"partial_images":2}`)
	want := "image_generation.partial_image,image_generation.partial_image,image_generation.completed"
	if err != nil || strings.Join(names, ",") != want {
		t.Fatalf("events %v (%v), want %s", names, err, want)
	}
	for i, d := range datas {
		if d.Get("type").Str != names[i] || d.Get("b64_json").Str == "" {
			t.Errorf("event %d: %s", i, d.Raw)
		}
	}
	if datas[1].Get("partial_image_index").Int() != 1 || datas[2].Get("usage.output_tokens").Int() != 1056 || datas[2].Get("usage.input_tokens").Int() != 3 {
		t.Errorf("partial index %s, usage %s", datas[1].Get("partial_image_index").Raw, datas[2].Get("usage").Raw)
	}
	if names, _, err := read(`{"model":"gpt-image-1","prompt":"a red fox","stream":true,"partial_images":2,"mock":{"fail_after":1}}`); err == nil || len(names) != 1 {
		t.Errorf("fail_after 1: %v, events %v; want one event, then a dropped connection", err, names)
	}
	if _, datas, _ := read(`{"model":"gpt-image-1","prompt":"a red fox","stream":true,"mock":{"no_usage":true}}`); len(datas) != 1 || datas[0].Get("usage").Exists() {
		t.Errorf("no_usage: %v", datas)
	}
}
