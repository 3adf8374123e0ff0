package openai

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/outbound"
)

// loopback lets the provider dial the simulated upstreams on 127.0.0.1, which the default address
// policy refuses.
var loopback = outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

// seen is what an upstream received.
type seen struct {
	path, query, body string
	header            http.Header
}

func upstream(t *testing.T) (*httptest.Server, *seen) {
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*s = seen{path: r.URL.Path, query: r.URL.RawQuery, body: string(b), header: r.Header.Clone()}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func call(t *testing.T, p *Provider, body string) {
	t.Helper()
	resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.ChatCompletions, Model: "my deployment",
		Body: []byte(body), Header: http.Header{"Traceparent": {"00-abc-def-01"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// Presets reach their upstream the way it expects: Azure's deployment URL, api-version and
// api-key header (or its v1 API), extra headers, and GLM's max_tokens; the body is otherwise
// untouched and the caller's credentials are never what is sent.
func TestPresetRequests(t *testing.T) {
	srv, got := upstream(t)
	body := `{"model":"my deployment","messages":[],"max_completion_tokens":50}`

	azure, err := New(Options{BaseURL: srv.URL, APIKey: "azure-key", Azure: true, AzureAPIVersion: "2024-10-21", Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	call(t, azure, body)
	if got.path != "/openai/deployments/my deployment/chat/completions" || got.query != "api-version=2024-10-21" ||
		got.header.Get("Api-Key") != "azure-key" || got.header.Get("Authorization") != "" || got.body != body {
		t.Errorf("azure: %+v", got)
	}
	if _, err := New(Options{BaseURL: srv.URL, APIKey: "k", Azure: true}); err == nil {
		t.Error("azure deployment URLs without api_version were accepted")
	}

	v1, err := New(Options{BaseURL: srv.URL + "/openai/v1", APIKey: "azure-key", Azure: true, Outbound: loopback})
	if err != nil {
		t.Fatal(err)
	}
	call(t, v1, body)
	if got.path != "/openai/v1/chat/completions" || got.query != "" || got.header.Get("Api-Key") != "azure-key" {
		t.Errorf("azure v1: %+v", got)
	}

	glm, err := New(Options{BaseURL: srv.URL + "/api/paas/v4", APIKey: "zk", MaxTokensOnly: true, Outbound: loopback,
		Headers: map[string]string{"appid": "app-1"}})
	if err != nil {
		t.Fatal(err)
	}
	call(t, glm, body)
	if got.path != "/api/paas/v4/chat/completions" || got.body != `{"model":"my deployment","messages":[],"max_tokens":50}` ||
		got.header.Get("Authorization") != "Bearer zk" || got.header.Get("Appid") != "app-1" || got.header.Get("Traceparent") == "" {
		t.Errorf("glm: %+v", got)
	}

	local, err := New(Options{BaseURL: srv.URL + "/v1", Outbound: loopback}) // vLLM / Ollama without a key
	if err != nil {
		t.Fatal(err)
	}
	call(t, local, body)
	if got.header.Get("Authorization") != "" || got.body != body {
		t.Errorf("keyless: %+v", got)
	}
}

func TestPresetsHaveUsableDefaults(t *testing.T) {
	for name, p := range Presets {
		if p.BaseURL == "" && !p.Azure {
			t.Errorf("%s: no default base URL", name)
		}
		if p.BaseURL != "" {
			if _, err := New(Options{BaseURL: p.BaseURL}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}

// Responses requests reach OpenAI's /responses, Azure's deployment-free /openai/responses (with
// the api-version) or its v1 /openai/v1/responses; the operations by id carry their method and
// path and no body. A chat-only upstream says it does not speak the Responses API.
func TestResponsesRequests(t *testing.T) {
	srv, got := upstream(t)
	do := func(p *Provider, method, path string, body []byte) {
		t.Helper()
		resp, err := p.Do(context.Background(), &providers.Request{Endpoint: providers.Responses, Model: "dep", Method: method, Path: path, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	body := []byte(`{"model":"dep","input":"hi"}`)
	oai, _ := New(Options{BaseURL: srv.URL + "/v1", APIKey: "k", Outbound: loopback, Media: MediaEndpoints("openai")})
	azure, _ := New(Options{BaseURL: srv.URL, APIKey: "ak", Azure: true, AzureAPIVersion: "2025-04-01-preview", Outbound: loopback, Media: MediaEndpoints("azure")})
	v1, _ := New(Options{BaseURL: srv.URL + "/openai/v1", APIKey: "ak", Azure: true, Outbound: loopback, Media: MediaEndpoints("azure")})
	for _, tc := range []struct {
		name         string
		p            *Provider
		method, path string
		body         []byte
		wantPath     string
		wantQuery    string
	}{
		{"openai create", oai, "", "", body, "/v1/responses", ""},
		{"openai get", oai, http.MethodGet, "/resp_1", nil, "/v1/responses/resp_1", ""},
		{"openai cancel", oai, http.MethodPost, "/resp_1/cancel", nil, "/v1/responses/resp_1/cancel", ""},
		{"azure create", azure, "", "", body, "/openai/responses", "api-version=2025-04-01-preview"},
		{"azure delete", azure, http.MethodDelete, "/resp_1", nil, "/openai/responses/resp_1", "api-version=2025-04-01-preview"},
		{"azure v1 create", v1, "", "", body, "/openai/v1/responses", ""},
	} {
		do(tc.p, tc.method, tc.path, tc.body)
		if got.path != tc.wantPath || got.query != tc.wantQuery || got.body != string(tc.body) {
			t.Errorf("%s: %s?%s body %q, want %s?%s body %q", tc.name, got.path, got.query, got.body, tc.wantPath, tc.wantQuery, tc.body)
		}
		if (tc.body == nil) != (got.header.Get("Content-Type") == "") {
			t.Errorf("%s: Content-Type %q with body %q", tc.name, got.header.Get("Content-Type"), tc.body)
		}
	}
	chatOnly, _ := New(Options{BaseURL: srv.URL + "/v1", Media: MediaEndpoints("deepseek"), Outbound: loopback})
	if !providers.NativeResponses(oai) || !providers.NativeResponses(azure) || providers.NativeResponses(chatOnly) {
		t.Error("openai and azure speak the Responses API, a chat-only upstream does not")
	}
}

// Media endpoints: OpenAI serves the Responses API, images and moderations, Azure the Responses
// API and images (at its deployment path), the chat presets none; an images request to Azure
// takes the deployment URL.
func TestMediaEndpoints(t *testing.T) {
	for typ, want := range map[string][3]bool{"openai": {true, true, true}, "azure": {true, false, true}, "deepseek": {}, "vllm": {}} {
		p, err := New(Options{BaseURL: "https://example.invalid/v1", Media: MediaEndpoints(typ)})
		if err != nil {
			t.Fatal(err)
		}
		got := [3]bool{p.Serves(providers.ImageGenerations), p.Serves(providers.Moderations), p.Serves(providers.Responses)}
		if got != want || !p.Serves(providers.ChatCompletions) || !p.Serves(providers.Embeddings) {
			t.Errorf("%s: images/moderations/responses %v, want %v", typ, got, want)
		}
	}
	srv, got := upstream(t)
	azure, err := New(Options{BaseURL: srv.URL, APIKey: "azure-key", Azure: true, AzureAPIVersion: "2025-04-01-preview", Outbound: loopback,
		Media: MediaEndpoints("azure")})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"model":"img","prompt":"a cat"}`
	resp, err := azure.Do(context.Background(), &providers.Request{Endpoint: providers.ImageGenerations, Model: "img", Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.path != "/openai/deployments/img/images/generations" || got.query != "api-version=2025-04-01-preview" || got.body != body {
		t.Errorf("azure images: %+v", got)
	}
}

// The multipart and audio endpoints: OpenAI and Azure serve them, the chat presets do not; an
// upload goes out as it is given (its own Content-Type and length, the body from Open), to
// OpenAI's path or Azure's deployment path, on every attempt from its first byte.
func TestUploadRequests(t *testing.T) {
	for _, ep := range []providers.Endpoint{providers.ImageEdits, providers.AudioTranscriptions, providers.AudioTranslations, providers.AudioSpeech} {
		for typ, want := range map[string]bool{"openai": true, "azure": true, "deepseek": false, "vllm": false} {
			p, _ := New(Options{BaseURL: "https://example.invalid/v1", Media: MediaEndpoints(typ)})
			if p.Serves(ep) != want {
				t.Errorf("%s serves %s: %v, want %v", typ, ep, !want, want)
			}
		}
	}
	srv, got := upstream(t)
	oai, _ := New(Options{BaseURL: srv.URL + "/v1", APIKey: "k", Outbound: loopback, Media: MediaEndpoints("openai")})
	azure, _ := New(Options{BaseURL: srv.URL, APIKey: "ak", Azure: true, AzureAPIVersion: "2025-04-01-preview", Outbound: loopback, Media: MediaEndpoints("azure")})
	form := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ndep\r\n--b--\r\n"
	up := &providers.Upload{ContentType: "multipart/form-data; boundary=b", Size: int64(len(form)),
		Open: func() io.Reader { return io.MultiReader(strings.NewReader(form[:10]), strings.NewReader(form[10:])) }}
	for _, tc := range []struct {
		p        *Provider
		wantPath string
	}{
		{oai, "/v1/audio/transcriptions"},
		{azure, "/openai/deployments/dep/audio/transcriptions"},
		{oai, "/v1/audio/transcriptions"}, // a second attempt reads the body again
	} {
		resp, err := tc.p.Do(context.Background(), &providers.Request{Endpoint: providers.AudioTranscriptions, Model: "dep", Upload: up})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got.path != tc.wantPath || got.body != form || got.header.Get("Content-Type") != up.ContentType || got.header.Get("Accept") != "*/*" {
			t.Errorf("%s: body %q, Content-Type %q, Accept %q", got.path, got.body, got.header.Get("Content-Type"), got.header.Get("Accept"))
		}
	}
}

// Azure's v1 API (…/openai/v1) does not list images or audio (PROVIDERS-2.md §3.1): with an
// api_version beside a v1 base_url those go to the deployment paths at the resource root, the
// rest (chat, the Responses API) to v1; without one, everything goes to v1 as configured.
func TestAzureV1MediaPaths(t *testing.T) {
	srv, got := upstream(t)
	form := "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ndep\r\n--b--\r\n"
	up := &providers.Upload{ContentType: "multipart/form-data; boundary=b", Size: int64(len(form)), Open: func() io.Reader { return strings.NewReader(form) }}
	mixed, err := New(Options{BaseURL: srv.URL + "/openai/v1", APIKey: "ak", Azure: true, AzureAPIVersion: "2025-04-01-preview", Outbound: loopback, Media: MediaEndpoints("azure")})
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := New(Options{BaseURL: srv.URL + "/openai/v1", APIKey: "ak", Azure: true, Outbound: loopback, Media: MediaEndpoints("azure")})
	for _, tc := range []struct {
		p                   *Provider
		ep                  providers.Endpoint
		wantPath, wantQuery string
	}{
		{mixed, providers.ImageEdits, "/openai/deployments/dep/images/edits", "api-version=2025-04-01-preview"},
		{mixed, providers.AudioTranscriptions, "/openai/deployments/dep/audio/transcriptions", "api-version=2025-04-01-preview"},
		{mixed, providers.AudioSpeech, "/openai/deployments/dep/audio/speech", "api-version=2025-04-01-preview"},
		{mixed, providers.ImageGenerations, "/openai/deployments/dep/images/generations", "api-version=2025-04-01-preview"},
		{mixed, providers.ChatCompletions, "/openai/v1/chat/completions", ""},
		{mixed, providers.Responses, "/openai/v1/responses", ""},
		{v1, providers.ImageEdits, "/openai/v1/images/edits", ""},
	} {
		req := &providers.Request{Endpoint: tc.ep, Model: "dep"}
		if tc.ep == providers.ImageEdits || tc.ep == providers.AudioTranscriptions {
			req.Upload = up
		} else {
			req.Body = []byte(`{"model":"dep"}`)
		}
		resp, err := tc.p.Do(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got.path != tc.wantPath || got.query != tc.wantQuery || got.header.Get("Api-Key") != "ak" {
			t.Errorf("%s: %s?%s, want %s?%s", tc.ep, got.path, got.query, tc.wantPath, tc.wantQuery)
		}
	}
}
