package gateway_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers"
)

// azureSend sends a request to a path of the gateway's root (not /v1) with the given
// authentication header, and returns the status, the body and the request id.
func (e *env) azureSend(method, path, authHeader, key, contentType string, body []byte) (int, string, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	switch authHeader {
	case "api-key":
		req.Header.Set("api-key", key)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Request-Id")
}

// The Azure OpenAI paths are a front on the /v1 endpoints: /openai/deployments/{deployment}/{op}
// with an api-version, where the deployment is the public model and wins over the body's model
// (for JSON and multipart bodies), and /openai/v1/{op} and /openai/responses with the model in
// the body. Each answered request has one usage record with the model and the endpoint the /v1
// path would give.
func TestAzurePaths(t *testing.T) {
	e := newEnv(t)
	const v = "?api-version=2024-10-21"
	form := func(fields ...string) ([]byte, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		fw, _ := w.CreateFormFile("file", "a.wav")
		_, _ = fw.Write(make([]byte, 16000))
		for i := 0; i+1 < len(fields); i += 2 {
			_ = w.WriteField(fields[i], fields[i+1])
		}
		_ = w.Close()
		return b.Bytes(), w.FormDataContentType()
	}
	audio, audioType := form("model", "other")
	bare, bareType := form()
	for _, tc := range []struct {
		name, path, auth, ctype, body string
		ep                            providers.Endpoint
		stream                        bool
		check                         string // a gjson path the answer must have
	}{
		{"chat, no model in the body", "/openai/deployments/gpt-test/chat/completions" + v, "api-key", "application/json",
			`{"messages":[{"role":"user","content":"hi"}]}`, providers.ChatCompletions, false, "choices.0.message.content"},
		{"chat, another model in the body", "/openai/deployments/gpt-test/chat/completions" + v, "bearer", "application/json",
			`{"model":"other","messages":[{"role":"user","content":"hi"}]}`, providers.ChatCompletions, false, "choices.0.message.content"},
		{"chat stream", "/openai/deployments/gpt-test/chat/completions?api-version=2025-04-01-preview", "api-key", "application/json",
			`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"stream":true}`, providers.ChatCompletions, true, ""},
		{"completions", "/openai/deployments/gpt-test/completions" + v, "api-key", "application/json",
			`{"prompt":"say","max_tokens":5}`, providers.Completions, false, "choices.0.text"},
		{"embeddings", "/openai/deployments/gpt-test/embeddings" + v, "api-key", "application/json",
			`{"input":["a","b"]}`, providers.Embeddings, false, "data.1.embedding"},
		{"transcription, another model in the form", "/openai/deployments/gpt-test/audio/transcriptions" + v, "api-key", audioType,
			string(audio), providers.AudioTranscriptions, false, "text"},
		{"transcription, no model in the form", "/openai/deployments/gpt-test/audio/transcriptions" + v, "api-key", bareType,
			string(bare), providers.AudioTranscriptions, false, "text"},
		{"speech", "/openai/deployments/gpt-test/audio/speech" + v, "api-key", "application/json",
			`{"input":"hello","voice":"alloy"}`, providers.AudioSpeech, false, ""},
		{"images", "/openai/deployments/gpt-test/images/generations" + v, "api-key", "application/json",
			`{"prompt":"a cat"}`, providers.ImageGenerations, false, "data.0"},
		{"v1 chat", "/openai/v1/chat/completions", "bearer", "application/json",
			`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`, providers.ChatCompletions, false, "choices.0.message.content"},
		{"v1 chat with api-version=preview", "/openai/v1/chat/completions?api-version=preview", "api-key", "application/json",
			`{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`, providers.ChatCompletions, false, "choices.0.message.content"},
		{"v1 responses", "/openai/v1/responses", "api-key", "application/json",
			`{"model":"gpt-test","input":"hi"}`, providers.Responses, false, "output.0"},
		{"classic responses", "/openai/responses?api-version=2025-04-01-preview", "api-key", "application/json",
			`{"model":"gpt-test","input":"hi"}`, providers.Responses, false, "output.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, id := e.azureSend(http.MethodPost, tc.path, tc.auth, e.key, tc.ctype, []byte(tc.body))
			if status != http.StatusOK {
				t.Fatalf("HTTP %d: %.500s", status, body)
			}
			if tc.check != "" && !gjson.Get(body, tc.check).Exists() {
				t.Errorf("answer without %s: %.500s", tc.check, body)
			}
			if tc.stream && (!strings.Contains(body, "data: [DONE]") || !strings.Contains(body, `"chat.completion.chunk"`)) {
				t.Errorf("stream: %.500s", body)
			}
			// The upstream was asked for the deployment's model of gpt-test, whatever the body said.
			sent := e.up.Requests(1)[0]
			if !strings.HasSuffix(sent.Path, "/v1/"+string(tc.ep)) {
				t.Errorf("upstream path %s, want /v1/%s", sent.Path, tc.ep)
			}
			if strings.HasPrefix(tc.ctype, "multipart/") {
				if !strings.Contains(sent.Body, "name=\"model\"\r\n\r\nup-model\r\n") || strings.Contains(sent.Body, "\r\n\r\nother\r\n") {
					t.Errorf("the upstream form does not name up-model alone:\n%.600s", sent.Body)
				}
			} else if m := gjson.Get(sent.Body, "model").Str; m != "up-model" {
				t.Errorf("upstream body model %q, want up-model: %.300s", m, sent.Body)
			}
			rec := e.usageFor(id)
			if rec.Model != "gpt-test" || rec.Endpoint != string(tc.ep) || rec.Status != http.StatusOK || rec.Stream != tc.stream {
				t.Errorf("record: model %q endpoint %q status %d stream %v; want gpt-test %s 200 %v", rec.Model, rec.Endpoint, rec.Status, rec.Stream, tc.ep, tc.stream)
			}
		})
	}

	t.Run("v1 responses by id and models", func(t *testing.T) {
		status, body, _ := e.azureSend(http.MethodPost, "/openai/v1/responses", "api-key", e.key, "application/json", []byte(`{"model":"gpt-test","input":"hi"}`))
		id := gjson.Get(body, "id").Str
		if status != http.StatusOK || id == "" {
			t.Fatalf("HTTP %d: %s", status, body)
		}
		for _, p := range []string{"/openai/v1/responses/" + id, "/openai/responses/" + id + "?api-version=2025-04-01-preview"} {
			if status, body, _ := e.azureSend(http.MethodGet, p, "api-key", e.key, "", nil); status != http.StatusOK || gjson.Get(body, "id").Str != id {
				t.Errorf("GET %s: HTTP %d %s", p, status, body)
			}
		}
		if status, body, _ := e.azureSend(http.MethodGet, "/openai/v1/models", "api-key", e.key, "", nil); status != http.StatusOK || !gjson.Get(body, `data.#(id=="gpt-test")`).Exists() {
			t.Errorf("models: HTTP %d %s", status, body)
		}
		if status, body, _ := e.azureSend(http.MethodGet, "/openai/v1/models/gpt-test", "api-key", e.key, "", nil); status != http.StatusOK || gjson.Get(body, "id").Str != "gpt-test" {
			t.Errorf("model: HTTP %d %s", status, body)
		}
	})
}

// Bad Azure requests get an OpenAI-shaped error and reach no upstream: an operation the path form
// does not have (404), a missing or malformed api-version (400), a deployment that is no public
// model (the 404 /v1 gives for an unknown model), no key (401).
func TestAzurePathsRefuse(t *testing.T) {
	e := newEnv(t)
	chat := `{"messages":[{"role":"user","content":"hi"}]}`
	_, v1Unknown, _ := e.azureSend(http.MethodPost, "/v1/chat/completions", "bearer", e.key, "application/json", []byte(`{"model":"nope","messages":[{"role":"user","content":"hi"}]}`))
	for _, tc := range []struct {
		name, path, auth string
		status           int
		code, param      string
	}{
		{"unknown operation", "/openai/deployments/gpt-test/fine_tunes?api-version=2024-10-21", "api-key", 404, "unknown_url", ""},
		{"unknown nested operation", "/openai/deployments/gpt-test/chat/other?api-version=2024-10-21", "api-key", 404, "unknown_url", ""},
		{"moderations is no deployment operation", "/openai/deployments/gpt-test/moderations?api-version=2024-10-21", "api-key", 404, "unknown_url", ""},
		{"no api-version", "/openai/deployments/gpt-test/chat/completions", "api-key", 400, "missing_api_version", "api-version"},
		{"empty api-version", "/openai/deployments/gpt-test/chat/completions?api-version=", "api-key", 400, "missing_api_version", "api-version"},
		{"malformed api-version", "/openai/deployments/gpt-test/chat/completions?api-version=yesterday", "api-key", 400, "invalid_api_version", "api-version"},
		{"classic responses without api-version", "/openai/responses", "api-key", 400, "missing_api_version", "api-version"},
		{"unknown deployment", "/openai/deployments/nope/chat/completions?api-version=2024-10-21", "api-key", 404, gjson.Get(v1Unknown, "error.code").Str, "model"},
		{"no key", "/openai/deployments/gpt-test/chat/completions?api-version=2024-10-21", "", 401, "missing_api_key", ""},
		{"v1 malformed api-version", "/openai/v1/chat/completions?api-version=x", "api-key", 400, "invalid_api_version", "api-version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.up.Stats().Requests
			status, body, _ := e.azureSend(http.MethodPost, tc.path, tc.auth, e.key, "application/json", []byte(chat))
			if status != tc.status || gjson.Get(body, "error.code").Str != tc.code || gjson.Get(body, "error.param").Str != tc.param ||
				gjson.Get(body, "error.message").Str == "" || !gjson.Get(body, "error.type").Exists() {
				t.Errorf("HTTP %d %s; want %d with code %q, param %q", status, body, tc.status, tc.code, tc.param)
			}
			if n := e.up.Stats().Requests - before; n != 0 {
				t.Errorf("%d upstream calls", n)
			}
		})
	}
	if gjson.Get(v1Unknown, "error.code").Str != "model_not_found" {
		t.Errorf("/v1 answer for an unknown model: %s", v1Unknown)
	}
}
