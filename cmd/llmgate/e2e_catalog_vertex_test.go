package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/gateway/gatewaytest"
	"github.com/llmgate/llmgate/internal/secrets"
	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/providers/vertex"
)

// vertexSection is a vertex section as the admin API answers it.
type vertexSection struct {
	Project         string `json:"project"`
	Region          string `json:"region"`
	CredentialsFile string `json:"credentials_file"`
	CredentialsJSON string `json:"credentials_json"`
	TokenURL        string `json:"token_url"`
	Anthropic       *struct {
		DefaultMaxTokens int      `json:"default_max_tokens"`
		Beta             []string `json:"beta"`
	} `json:"anthropic"`
}

// vertexProvider is a provider as the admin API answers it, with the vertex section.
type vertexProvider struct {
	adminCatalogEntry
	Vertex             *vertexSection    `json:"vertex"`
	SecretFingerprints map[string]string `json:"secret_fingerprints"`
}

// jsonText is s as a JSON string, for a service account key inside a request body.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// keyLines are the base64 lines of a service account key's PEM private key: any of them found in
// a row, an answer or a log would be the key leaking, however it was escaped around them.
func keyLines(t *testing.T, saJSON []byte) []string {
	t.Helper()
	var k struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(saJSON, &k); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(k.PrivateKey, "\n") {
		if len(l) == 64 {
			out = append(out, l)
		}
	}
	if len(out) < 10 {
		t.Fatalf("the key has %d base64 lines", len(out))
	}
	return out
}

// TestCatalogVertex: a vertex provider made over the admin API (a project, a region, a service
// account key and the token endpoint, all on the loopback mock that checks the bearer token it
// minted for that key) serves a go-openai chat on another replica, both publishers, streamed and
// not; PATCH merges the section and keeps the sealed key; the key is sealed in the row, re-sealed
// by a key rotation, and seen in no answer, audit entry or log line; bad sections are refused
// naming the field, and a server path (credentials_file) is not taken over the API.
func TestCatalogVertex(t *testing.T) {
	sa, err := mock.NewServiceAccount("gw@proj-cat.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := mock.NewServiceAccount("nobody@proj-cat.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	fileSA, err := mock.NewServiceAccount("file@proj-cat.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	upstream := mock.NewHandler(mock.Options{ServiceAccounts: sa.Trust()})
	gcp := httptest.NewServer(upstream)
	t.Cleanup(gcp.Close)
	saJSON := sa.JSON("proj-cat", "https://oauth2.googleapis.com/token") // token_url points it at the mock
	strangerJSON := stranger.JSON("proj-cat", gcp.URL+"/token")
	fileJSON := fileSA.JSON("proj-file", gcp.URL+"/token")
	leaks := append(append(keyLines(t, saJSON), keyLines(t, strangerJSON)...), keyLines(t, fileJSON)...)
	fileVertex := func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "filevertex", Type: "vertex", BaseURL: gcp.URL + "/v1"},
			Vertex: vertex.Settings{Region: "europe-west1", CredentialsJSON: string(fileJSON)}})
	}
	for name, opts := range map[string][]envOption{
		"embedded":         {withSecretKey(testSecretKey), fileVertex},
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t)), withSecretKey(testSecretKey), fileVertex},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			var logs, otherLogs testlog.Buffer
			first := e.replica(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			other := e.replica(slog.New(slog.NewJSONHandler(&otherLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			answers := []string{}
			call := func(a *app, method, path, body string, want int, out any) {
				t.Helper()
				if vp, ok := out.(*vertexProvider); ok {
					*vp = vertexProvider{} // json.Unmarshal would merge into the maps of the last answer
				}
				answers = append(answers, string(e.catalogCall(a, method, path, body, want, out)))
			}

			var p vertexProvider
			call(first, http.MethodPost, "/admin/providers", `{"name":"gcp","type":"vertex","base_url":"`+gcp.URL+`/v1","vertex":{"project":"proj-cat",`+
				`"region":"us-east5","credentials_json":`+jsonText(string(saJSON))+`,"token_url":"`+gcp.URL+`/token","anthropic":{"default_max_tokens":1000,"beta":["b-1"]}}}`,
				http.StatusCreated, &p)
			if p.Type != "vertex" || p.Vertex == nil || p.Vertex.Project != "proj-cat" || p.Vertex.Region != "us-east5" || p.Vertex.TokenURL != gcp.URL+"/token" ||
				p.Vertex.CredentialsJSON != "" || p.Vertex.Anthropic == nil || p.Vertex.Anthropic.DefaultMaxTokens != 1000 || p.APIKeyFingerprint != nil ||
				p.SecretFingerprints["vertex.credentials_json"] != secrets.Fingerprint(string(saJSON)) {
				t.Fatalf("POST /admin/providers answered %s", answers[len(answers)-1])
			}
			call(first, http.MethodPost, "/admin/models", `{"name":"gcp-gemini","deployments":[{"provider":"gcp","model":"gemini-2.5-pro"}]}`, http.StatusCreated, nil)
			call(first, http.MethodPost, "/admin/models", `{"name":"gcp-claude","deployments":[{"provider":"gcp","model":"claude-sonnet-4-5@20250929"}]}`, http.StatusCreated, nil)

			// The other replica serves both publishers, with a token the mock minted for the key.
			waitFor(t, 10*time.Second, "the other replica to serve the API's vertex models", func() bool {
				return e.chatStatus(other, e.key, "gcp-gemini") == http.StatusOK && e.chatStatus(other, e.key, "gcp-claude") == http.StatusOK
			})
			client := gatewaytest.Client{T: t, BaseURL: other.publicURL + "/v1", HTTP: e.http, Key: e.key}.OpenAI(e.key)
			ctx := context.Background()
			for _, model := range []string{"gcp-gemini", "gcp-claude"} {
				req := openai.ChatCompletionRequest{Model: model, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hello"}}}
				resp, err := client.CreateChatCompletion(ctx, req)
				if err != nil || len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
					t.Fatalf("%s through the API's vertex provider: %+v %v", model, resp, err)
				}
				stream, err := client.CreateChatCompletionStream(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				var text strings.Builder
				for {
					chunk, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatalf("%s stream: %v", model, err)
					}
					if len(chunk.Choices) > 0 {
						text.WriteString(chunk.Choices[0].Delta.Content)
					}
				}
				stream.Close()
				if text.Len() == 0 {
					t.Errorf("the %s stream through the API's vertex provider carried no text", model)
				}
			}
			// The section reached the upstream: the project and region in the path, the nested
			// anthropic settings in Claude's body and headers.
			if reqs := upstream.Requests(1); len(reqs) != 1 || !strings.Contains(reqs[0].Path, "/projects/proj-cat/locations/us-east5/publishers/anthropic/models/") ||
				!strings.Contains(reqs[0].Body, `"max_tokens":1000`) || reqs[0].Headers["Anthropic-Beta"] != "b-1" {
				t.Errorf("the vertex section did not reach the upstream request: %+v", reqs)
			}

			// PATCH merges the section: the sealed key not named is kept.
			call(first, http.MethodPatch, "/admin/providers/gcp", `{"vertex":{"region":"europe-west4","anthropic":{"beta":null}}}`, http.StatusOK, &p)
			if p.Vertex == nil || p.Vertex.Region != "europe-west4" || p.Vertex.Project != "proj-cat" || p.Vertex.TokenURL != gcp.URL+"/token" ||
				p.Vertex.Anthropic == nil || p.Vertex.Anthropic.DefaultMaxTokens != 1000 || len(p.Vertex.Anthropic.Beta) != 0 ||
				p.SecretFingerprints["vertex.credentials_json"] != secrets.Fingerprint(string(saJSON)) {
				t.Fatalf("PATCH vertex answered %s", answers[len(answers)-1])
			}
			if got := e.chatStatus(first, e.key, "gcp-claude"); got != http.StatusOK {
				t.Fatalf("chat after PATCH kept the key: %d", got)
			}
			if reqs := upstream.Requests(1); len(reqs) != 1 || !strings.Contains(reqs[0].Path, "/locations/europe-west4/") {
				t.Errorf("the patched region did not reach the upstream request: %+v", reqs)
			}
			// A key the token endpoint does not trust: no token, no answer.
			call(first, http.MethodPatch, "/admin/providers/gcp", `{"vertex":{"credentials_json":`+jsonText(string(strangerJSON))+`}}`, http.StatusOK, &p)
			if got := e.chatStatus(first, e.key, "gcp-gemini"); got == http.StatusOK {
				t.Fatalf("chat with an untrusted service account: %d", got)
			}
			call(first, http.MethodPatch, "/admin/providers/gcp", `{"vertex":{"credentials_json":`+jsonText(string(saJSON))+`}}`, http.StatusOK, &p)
			if got := e.chatStatus(first, e.key, "gcp-gemini"); got != http.StatusOK {
				t.Fatalf("chat with the key back: %d", got)
			}

			// The file's vertex provider: its section shown, its key only as a fingerprint.
			call(first, http.MethodGet, "/admin/providers/filevertex", "", http.StatusOK, &p)
			if p.Origin != "file" || p.Vertex == nil || p.Vertex.Region != "europe-west1" || p.Vertex.CredentialsJSON != "" ||
				p.SecretFingerprints["vertex.credentials_json"] != secrets.Fingerprint(string(fileJSON)) {
				t.Errorf("GET the file's vertex provider: %s", answers[len(answers)-1])
			}
			_, list := e.catalogList(first, "/admin/providers")
			answers = append(answers, string(list))

			// Bad sections, refused naming the field; nothing changes.
			key := jsonText(string(saJSON))
			for _, bad := range []struct{ what, method, path, body, code, param string }{
				{"not a service account key", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"region":"us-east5","credentials_json":"{\"type\":\"authorized_user\"}"}}`, "invalid_value", "vertex.credentials_json"},
				{"a broken key", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"region":"us-east5","credentials_json":` + jsonText(string(saJSON[:len(saJSON)/2])) + `}}`, "invalid_value", "vertex.credentials_json"},
				{"no region", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"project":"p","credentials_json":` + key + `}}`, "invalid_value", "vertex.region"},
				{"a server path", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"region":"us-east5","credentials_file":"/etc/hostname"}}`, "invalid_value", "vertex.credentials_file"},
				{"API key and a service account", "POST", "/admin/providers", `{"name":"x2","type":"vertex","api_key":"k","vertex":{"region":"us-east5","credentials_json":` + key + `}}`, "invalid_value", "api_key"},
				{"a bad token url", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"region":"us-east5","credentials_json":` + key + `,"token_url":"ftp://x"}}`, "invalid_value", "vertex.token_url"},
				{"a bad nested anthropic", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"region":"us-east5","credentials_json":` + key + `,"anthropic":{"default_max_tokens":-1}}}`, "invalid_value", "vertex.anthropic.default_max_tokens"},
				{"unknown section field", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"location":"us-east5"}}`, "invalid_body", "vertex.location"},
				{"section field of the wrong kind", "POST", "/admin/providers", `{"name":"x2","type":"vertex","vertex":{"region":5}}`, "invalid_body", "vertex.region"},
				{"another type's section", "POST", "/admin/providers", `{"name":"x2","type":"openai","base_url":"https://api.example.com/v1","api_key":"k","vertex":{"region":"us-east5"}}`, "invalid_value", "vertex"},
				{"region removed by PATCH", "PATCH", "/admin/providers/gcp", `{"vertex":{"region":null}}`, "invalid_value", "vertex.region"},
				{"a server path by PATCH", "PATCH", "/admin/providers/gcp", `{"vertex":{"credentials_json":null,"credentials_file":"/etc/hostname"}}`, "invalid_value", "vertex.credentials_file"},
				{"not a key by PATCH", "PATCH", "/admin/providers/gcp", `{"vertex":{"credentials_json":"{}"}}`, "invalid_value", "vertex.credentials_json"},
				{"type changed, section left", "PATCH", "/admin/providers/gcp", `{"type":"mock"}`, "invalid_value", "vertex"},
			} {
				status, raw := e.adminCall(first, bad.method, bad.path, bad.body)
				adminErr(t, bad.what, status, raw, http.StatusBadRequest, bad.code, bad.param)
				answers = append(answers, string(raw))
			}
			if got := e.chatStatus(first, e.key, "gcp-claude"); got != http.StatusOK {
				t.Fatalf("chat after the refused changes: %d", got)
			}

			// The key is sealed in the row.
			sealed := 0
			for _, r := range e.storedSecrets() {
				for _, s := range leaks {
					if strings.Contains(r, s) {
						t.Fatalf("a catalog row holds a private key in the clear: %s", r)
					}
				}
				sealed += strings.Count(r, `"v1:`)
			}
			if sealed < 1 {
				t.Errorf("the vertex key is not sealed in the spec: %q", e.storedSecrets())
			}

			// A key rotation seals the section's key again: the new secret key alone serves.
			saved := e.cfg.Secrets
			withSecretKey(testSecretKey2, testSecretKey)(&e.cfg)
			mid := e.replica(nil)
			e.cfg.Secrets = saved
			var out struct {
				Resealed []string `json:"resealed"`
			}
			call(mid, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
			if !strings.Contains(strings.Join(out.Resealed, ","), "gcp") {
				t.Fatalf("reencrypt resealed %v", out.Resealed)
			}
			withSecretKey(testSecretKey2)(&e.cfg)
			last := e.replica(nil)
			e.cfg.Secrets = saved
			if got := e.chatStatus(last, e.key, "gcp-claude"); got != http.StatusOK {
				t.Fatalf("with the new secret key alone: %d", got)
			}
			// A replica whose secret key sealed none of it cannot PATCH without the key anew, and says which.
			e.cfg.Secrets = SecretsConfig{Key: base64.StdEncoding.EncodeToString([]byte("another-key-of-thirty-two-bytes!"))}
			outsider := e.replica(nil)
			e.cfg.Secrets = saved
			status, raw := e.adminCall(outsider, http.MethodPatch, "/admin/providers/gcp", `{"vertex":{"region":"us-east5"}}`)
			adminErr(t, "PATCH with a key that does not open", status, raw, http.StatusConflict, "credential_unreadable", "vertex.credentials_json")
			answers = append(answers, string(raw))

			status, audit := e.adminCall(first, http.MethodGet, "/admin/audit-log?limit=100", "")
			if status != http.StatusOK || !strings.Contains(string(audit), `"action":"provider.update"`) {
				t.Errorf("audit log (%d): %s", status, audit)
			}
			answers = append(answers, string(audit))
			for _, s := range leaks {
				for i, a := range answers {
					if strings.Contains(a, s) {
						t.Fatalf("answer %d holds a private key: %s", i, a)
					}
				}
				if strings.Contains(logs.String(), s) || strings.Contains(otherLogs.String(), s) {
					t.Fatalf("a log holds a private key")
				}
			}
			if !strings.Contains(otherLogs.String(), "catalog applied") {
				t.Errorf("the other replica's log does not show the catalog applied: %s", otherLogs.String())
			}
		})
	}
}

// TestCLICatalogVertex: llmgate providers create and update take the vertex section as JSON; the
// provider serves through the mock's token check, and the key is never printed.
func TestCLICatalogVertex(t *testing.T) {
	sa, err := mock.NewServiceAccount("cli@proj-cli.iam.gserviceaccount.com")
	if err != nil {
		t.Fatal(err)
	}
	gcp := httptest.NewServer(mock.NewHandler(mock.Options{ServiceAccounts: sa.Trust()}))
	t.Cleanup(gcp.Close)
	saJSON := sa.JSON("proj-cli", gcp.URL+"/token")
	leaks := keyLines(t, saJSON)
	e := newEnv(t, withSecretKey(testSecretKey))
	cliAgainst(t, e)
	noKey := func(what, out string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(out, l) {
				t.Fatalf("%s printed the private key", what)
			}
		}
	}
	out := cliOK(t, "providers", "create", "cligcp", "--type", "vertex", "--base-url", gcp.URL+"/v1",
		"--vertex", `{"region":"us-east5","credentials_json":`+jsonText(string(saJSON))+`}`)
	if !strings.Contains(out, "us-east5") || !strings.Contains(out, secrets.Fingerprint(string(saJSON))) {
		t.Errorf("providers create printed:\n%s", out)
	}
	noKey("providers create", out)
	cliOK(t, "models", "create", "cli-gemini", "--deployments", `[{"provider":"cligcp","model":"gemini-2.5-flash"}]`)
	if got := e.chatStatus(e.app, e.key, "cli-gemini"); got != http.StatusOK {
		t.Fatalf("chat through the CLI's vertex provider: %d", got)
	}
	out = cliOK(t, "providers", "update", "cligcp", "--vertex", `{"region":"europe-west4"}`)
	if !strings.Contains(out, "europe-west4") || !strings.Contains(out, secrets.Fingerprint(string(saJSON))) {
		t.Errorf("providers update printed:\n%s", out)
	}
	noKey("providers update", out)
	if got := e.chatStatus(e.app, e.key, "cli-gemini"); got != http.StatusOK {
		t.Fatalf("chat after the update kept the key: %d", got)
	}
	if msg := cliFails(t, "providers", "update", "cligcp", "--vertex", `{"credentials_file":"/etc/hostname"}`); !strings.Contains(msg, "vertex.credentials_file") {
		t.Errorf("providers update with a server path: %s", msg)
	}
	out = cliOK(t, "providers", "get", "cligcp")
	noKey("providers get", out)
}
