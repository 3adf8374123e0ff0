package mock

import (
	"net/http"
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
