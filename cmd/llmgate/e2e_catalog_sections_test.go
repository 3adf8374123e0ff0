package main

import (
	"context"
	"encoding/base64"
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
	"github.com/llmgate/llmgate/providers/bedrock"
	"github.com/llmgate/llmgate/providers/mock"
)

// The AWS credentials of the catalog's Bedrock tests: the loopback mock verifies every signature
// against catalogAWSKeyID and catalogAWSSecret; the secrets must never be seen again.
const (
	catalogAWSKeyID  = "AKIACATALOGTEST00001"
	catalogAWSSecret = "catalog/Secret0123456789abcdefghijklmn"
	catalogAWSToken  = "catalog-session-token-0123456789abcdef"
	fileAWSSecret    = "file/Secret0123456789abcdefghijklmnopq"
)

// sectionedProvider is a provider as the admin API answers it, with the type sections.
type sectionedProvider struct {
	adminCatalogEntry
	Anthropic *struct {
		DefaultMaxTokens int      `json:"default_max_tokens"`
		Beta             []string `json:"beta"`
	} `json:"anthropic"`
	Bedrock *struct {
		Region           string `json:"region"`
		API              string `json:"api"`
		AccessKeyID      string `json:"access_key_id"`
		SecretAccessKey  string `json:"secret_access_key"`
		SessionToken     string `json:"session_token"`
		Profile          string `json:"profile"`
		DefaultMaxTokens int    `json:"default_max_tokens"`
	} `json:"bedrock"`
	SecretFingerprints map[string]string `json:"secret_fingerprints"`
}

// TestCatalogBedrock: a bedrock provider made over the admin API carries its section (region,
// api, static AWS keys): it serves a go-openai chat, streamed and not, on another replica through
// the loopback mock that verifies the signature; PATCH merges the section and keeps the secrets
// not named; the secrets are sealed in the row, re-sealed by a key rotation, and seen in no
// answer, audit entry or log line; bad sections are refused naming the field. The anthropic
// section travels the same way, and a file provider's section is shown without its secret.
func TestCatalogBedrock(t *testing.T) {
	// One mock serves Bedrock (verifying signatures) and Anthropic's Messages API (recording).
	upstream := mock.NewHandler(mock.Options{AWSAccessKeyID: catalogAWSKeyID, AWSSecretAccessKey: catalogAWSSecret})
	aws := httptest.NewServer(upstream)
	t.Cleanup(aws.Close)
	fileBedrock := func(c *Config) {
		c.Providers = append(c.Providers, ProviderConfig{Config: providers.Config{Name: "filebedrock", Type: "bedrock", BaseURL: aws.URL},
			Bedrock: bedrock.Settings{Region: "eu-west-1", AccessKeyID: catalogAWSKeyID, SecretAccessKey: fileAWSSecret}})
	}
	secretsOf := []string{catalogAWSSecret, catalogAWSToken, fileAWSSecret}
	for name, opts := range map[string][]envOption{
		"embedded":         {withSecretKey(testSecretKey), fileBedrock},
		"postgres + redis": {withPostgres(t), withRedisURL("redis://" + rdb.Addr(t)), withSecretKey(testSecretKey), fileBedrock},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			var logs, otherLogs testlog.Buffer
			first := e.replica(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			other := e.replica(slog.New(slog.NewJSONHandler(&otherLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			answers := []string{}
			call := func(a *app, method, path, body string, want int, out any) {
				t.Helper()
				if sp, ok := out.(*sectionedProvider); ok {
					*sp = sectionedProvider{} // json.Unmarshal would merge into the maps of the last answer
				}
				answers = append(answers, string(e.catalogCall(a, method, path, body, want, out)))
			}

			var p sectionedProvider
			call(first, http.MethodPost, "/admin/providers", `{"name":"aws","type":"bedrock","base_url":"`+aws.URL+`","bedrock":{"region":"us-east-1","api":"converse",`+
				`"access_key_id":"`+catalogAWSKeyID+`","secret_access_key":"`+catalogAWSSecret+`","session_token":"`+catalogAWSToken+`","default_max_tokens":256}}`,
				http.StatusCreated, &p)
			if p.Type != "bedrock" || p.Bedrock == nil || p.Bedrock.Region != "us-east-1" || p.Bedrock.API != "converse" || p.Bedrock.AccessKeyID != catalogAWSKeyID ||
				p.Bedrock.DefaultMaxTokens != 256 || p.Bedrock.SecretAccessKey != "" || p.Bedrock.SessionToken != "" || p.APIKeyFingerprint != nil ||
				p.SecretFingerprints["bedrock.secret_access_key"] != secrets.Fingerprint(catalogAWSSecret) ||
				p.SecretFingerprints["bedrock.session_token"] != secrets.Fingerprint(catalogAWSToken) {
				t.Fatalf("POST /admin/providers answered %s", answers[len(answers)-1])
			}
			call(first, http.MethodPost, "/admin/models",
				`{"name":"claude-api","deployments":[{"provider":"aws","model":"us.anthropic.claude-sonnet-4-5-20250929-v1:0"}]}`, http.StatusCreated, nil)

			// The other replica serves it, through the signature the mock verifies.
			waitFor(t, 10*time.Second, "the other replica to serve the API's bedrock model", func() bool {
				return e.chatStatus(other, e.key, "claude-api") == http.StatusOK
			})
			client := gatewaytest.Client{T: t, BaseURL: other.publicURL + "/v1", HTTP: e.http, Key: e.key}.OpenAI(e.key)
			ctx := context.Background()
			req := openai.ChatCompletionRequest{Model: "claude-api", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hello"}}}
			resp, err := client.CreateChatCompletion(ctx, req)
			if err != nil || len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
				t.Fatalf("chat through the API's bedrock provider: %+v %v", resp, err)
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
					t.Fatalf("stream: %v", err)
				}
				if len(chunk.Choices) > 0 {
					text.WriteString(chunk.Choices[0].Delta.Content)
				}
			}
			stream.Close()
			if text.Len() == 0 {
				t.Error("the stream through the API's bedrock provider carried no text")
			}

			// PATCH merges the section: the secrets not named are kept.
			call(first, http.MethodPatch, "/admin/providers/aws", `{"bedrock":{"api":"invoke","session_token":null}}`, http.StatusOK, &p)
			if p.Bedrock == nil || p.Bedrock.API != "invoke" || p.Bedrock.Region != "us-east-1" || p.Bedrock.DefaultMaxTokens != 256 ||
				p.SecretFingerprints["bedrock.secret_access_key"] != secrets.Fingerprint(catalogAWSSecret) || p.SecretFingerprints["bedrock.session_token"] != "" {
				t.Fatalf("PATCH bedrock answered %s", answers[len(answers)-1])
			}
			if got := e.chatStatus(first, e.key, "claude-api"); got != http.StatusOK {
				t.Fatalf("chat after PATCH kept the secret: %d", got)
			}
			// A wrong secret: the mock refuses the signature.
			call(first, http.MethodPatch, "/admin/providers/aws", `{"bedrock":{"secret_access_key":"wrong/Secret0123456789abcdefghijklmn"}}`, http.StatusOK, &p)
			if got := e.chatStatus(first, e.key, "claude-api"); got == http.StatusOK {
				t.Fatalf("chat with the wrong AWS secret: %d", got)
			}
			call(first, http.MethodPatch, "/admin/providers/aws", `{"bedrock":{"secret_access_key":"`+catalogAWSSecret+`","session_token":"`+catalogAWSToken+`"}}`, http.StatusOK, &p)
			if got := e.chatStatus(first, e.key, "claude-api"); got != http.StatusOK {
				t.Fatalf("chat with the secret back: %d", got)
			}

			// The anthropic section, applied to the requests upstream.
			call(first, http.MethodPost, "/admin/providers", `{"name":"claude-direct","type":"anthropic","base_url":"`+aws.URL+`","api_key":"`+apiSecret+`",`+
				`"anthropic":{"default_max_tokens":1000,"beta":["b-1"]}}`, http.StatusCreated, &p)
			if p.Anthropic == nil || p.Anthropic.DefaultMaxTokens != 1000 || len(p.Anthropic.Beta) != 1 || p.Bedrock != nil {
				t.Fatalf("POST anthropic answered %s", answers[len(answers)-1])
			}
			call(first, http.MethodPost, "/admin/models", `{"name":"claude-direct","deployments":[{"provider":"claude-direct","model":"claude-x"}]}`, http.StatusCreated, nil)
			if got := e.chatStatus(first, e.key, "claude-direct"); got != http.StatusOK {
				t.Fatalf("chat through the API's anthropic provider: %d", got)
			}
			if reqs := upstream.Requests(1); len(reqs) != 1 || reqs[0].Path != "/v1/messages" || !strings.Contains(reqs[0].Body, `"max_tokens":1000`) ||
				reqs[0].Headers["Anthropic-Beta"] != "b-1" {
				t.Errorf("the anthropic section did not reach the upstream request: %+v", reqs)
			}
			waitFor(t, 10*time.Second, "the other replica to list the anthropic section", func() bool {
				var q sectionedProvider
				call(other, http.MethodGet, "/admin/providers/claude-direct", "", http.StatusOK, &q)
				return q.Anthropic != nil && q.Anthropic.DefaultMaxTokens == 1000
			})

			// The file's bedrock provider: its section shown, its secret only as a fingerprint.
			call(first, http.MethodGet, "/admin/providers/filebedrock", "", http.StatusOK, &p)
			if p.Origin != "file" || p.Bedrock == nil || p.Bedrock.Region != "eu-west-1" || p.Bedrock.SecretAccessKey != "" ||
				p.SecretFingerprints["bedrock.secret_access_key"] != secrets.Fingerprint(fileAWSSecret) {
				t.Errorf("GET the file's bedrock provider: %s", answers[len(answers)-1])
			}
			_, list := e.catalogList(first, "/admin/providers")
			answers = append(answers, string(list))

			// Bad sections, refused naming the field; nothing changes.
			for _, bad := range []struct{ what, method, path, body, code, param string }{
				{"bad api", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"region":"us-east-1","api":"fastest"}}`, "invalid_value", "bedrock.api"},
				{"secret without its key id", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"region":"us-east-1","secret_access_key":"s"}}`, "invalid_value", "bedrock.access_key_id"},
				{"session token alone", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"region":"us-east-1","session_token":"s"}}`, "invalid_value", "bedrock.session_token"},
				{"API key and access keys", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","api_key":"k","bedrock":{"region":"us-east-1","access_key_id":"A","secret_access_key":"s"}}`, "invalid_value", "api_key"},
				{"reserved pass field", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"region":"us-east-1","access_key_id":"A","secret_access_key":"s","pass_fields":["messages"]}}`, "invalid_value", "bedrock.pass_fields"},
				{"negative max tokens", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"region":"us-east-1","access_key_id":"A","secret_access_key":"s","default_max_tokens":-1}}`, "invalid_value", "bedrock.default_max_tokens"},
				{"unknown section field", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"regoin":"us-east-1"}}`, "invalid_body", "bedrock.regoin"},
				{"section field of the wrong kind", "POST", "/admin/providers", `{"name":"x2","type":"bedrock","bedrock":{"default_max_tokens":"many"}}`, "invalid_body", "bedrock.default_max_tokens"},
				{"another type's section", "POST", "/admin/providers", `{"name":"x2","type":"openai","base_url":"https://api.example.com/v1","api_key":"k","bedrock":{"region":"us-east-1"}}`, "invalid_value", "bedrock"},
				{"bad anthropic section", "POST", "/admin/providers", `{"name":"x2","type":"anthropic","api_key":"k","anthropic":{"default_max_tokens":-1}}`, "invalid_value", "anthropic.default_max_tokens"},
				{"bad api by PATCH", "PATCH", "/admin/providers/aws", `{"bedrock":{"api":"fastest"}}`, "invalid_value", "bedrock.api"},
				{"unknown field by PATCH", "PATCH", "/admin/providers/aws", `{"bedrock":{"secret_key":"x"}}`, "invalid_body", "bedrock.secret_key"},
				{"type changed, section left", "PATCH", "/admin/providers/aws", `{"type":"mock"}`, "invalid_value", "bedrock"},
			} {
				status, raw := e.adminCall(first, bad.method, bad.path, bad.body)
				adminErr(t, bad.what, status, raw, http.StatusBadRequest, bad.code, bad.param)
				answers = append(answers, string(raw))
			}
			if got := e.chatStatus(first, e.key, "claude-api"); got != http.StatusOK {
				t.Fatalf("chat after the refused changes: %d", got)
			}

			// The secrets are sealed in the row.
			sealed := 0
			for _, r := range e.storedSecrets() {
				for _, s := range secretsOf {
					if strings.Contains(r, s) {
						t.Errorf("a catalog row holds a secret in the clear: %s", r)
					}
				}
				sealed += strings.Count(r, `"v1:`)
			}
			if sealed < 2 {
				t.Errorf("the bedrock secrets are not sealed in the spec: %q", e.storedSecrets())
			}

			// A key rotation seals the section's secrets again: the new key alone serves.
			saved := e.cfg.Secrets
			withSecretKey(testSecretKey2, testSecretKey)(&e.cfg)
			mid := e.replica(nil)
			e.cfg.Secrets = saved
			var out struct {
				Resealed []string `json:"resealed"`
			}
			call(mid, http.MethodPost, "/admin/secrets/reencrypt", "", http.StatusOK, &out)
			if !strings.Contains(strings.Join(out.Resealed, ","), "aws") {
				t.Fatalf("reencrypt resealed %v", out.Resealed)
			}
			withSecretKey(testSecretKey2)(&e.cfg)
			last := e.replica(nil)
			e.cfg.Secrets = saved
			if got := e.chatStatus(last, e.key, "claude-api"); got != http.StatusOK {
				t.Fatalf("with the new key alone: %d", got)
			}
			// A replica whose key sealed none of it cannot PATCH without the secrets anew, and says which.
			e.cfg.Secrets = SecretsConfig{Key: base64.StdEncoding.EncodeToString([]byte("another-key-of-thirty-two-bytes!"))}
			stranger := e.replica(nil)
			e.cfg.Secrets = saved
			status, raw := e.adminCall(stranger, http.MethodPatch, "/admin/providers/aws", `{"bedrock":{"api":"converse"}}`)
			adminErr(t, "PATCH with secrets that do not open", status, raw, http.StatusConflict, "credential_unreadable", "bedrock.secret_access_key")
			answers = append(answers, string(raw))

			status, audit := e.adminCall(first, http.MethodGet, "/admin/audit-log?limit=100", "")
			if status != http.StatusOK || !strings.Contains(string(audit), `"action":"provider.update"`) {
				t.Errorf("audit log (%d): %s", status, audit)
			}
			answers = append(answers, string(audit))
			for _, s := range secretsOf {
				for i, a := range answers {
					if strings.Contains(a, s) {
						t.Errorf("answer %d holds a secret: %s", i, a)
					}
				}
				if strings.Contains(logs.String(), s) || strings.Contains(otherLogs.String(), s) {
					t.Errorf("a log holds a secret")
				}
			}
			if !strings.Contains(otherLogs.String(), "catalog applied") {
				t.Errorf("the other replica's log does not show the catalog applied: %s", otherLogs.String())
			}
		})
	}
}

// TestCLICatalogBedrock: llmgate providers create and update take the bedrock section as JSON;
// the provider serves through the mock's signature check, and the secret is never printed.
func TestCLICatalogBedrock(t *testing.T) {
	aws := httptest.NewServer(mock.NewHandler(mock.Options{AWSAccessKeyID: catalogAWSKeyID, AWSSecretAccessKey: catalogAWSSecret}))
	t.Cleanup(aws.Close)
	e := newEnv(t, withSecretKey(testSecretKey))
	cliAgainst(t, e)
	out := cliOK(t, "providers", "create", "cliaws", "--type", "bedrock", "--base-url", aws.URL,
		"--bedrock", `{"region":"us-east-1","api":"converse","access_key_id":"`+catalogAWSKeyID+`","secret_access_key":"`+catalogAWSSecret+`"}`)
	if !strings.Contains(out, "us-east-1") || !strings.Contains(out, secrets.Fingerprint(catalogAWSSecret)) || strings.Contains(out, catalogAWSSecret) {
		t.Errorf("providers create printed:\n%s", out)
	}
	cliOK(t, "models", "create", "cli-claude", "--deployments", `[{"provider":"cliaws","model":"anthropic.claude-sonnet-4-5-20250929-v1:0"}]`)
	if got := e.chatStatus(e.app, e.key, "cli-claude"); got != http.StatusOK {
		t.Fatalf("chat through the CLI's bedrock provider: %d", got)
	}
	out = cliOK(t, "providers", "update", "cliaws", "--bedrock", `{"api":"invoke"}`)
	if !strings.Contains(out, "invoke") || !strings.Contains(out, secrets.Fingerprint(catalogAWSSecret)) || strings.Contains(out, catalogAWSSecret) {
		t.Errorf("providers update printed:\n%s", out)
	}
	if got := e.chatStatus(e.app, e.key, "cli-claude"); got != http.StatusOK {
		t.Fatalf("chat after the update kept the secret: %d", got)
	}
	if msg := cliFails(t, "providers", "update", "cliaws", "--bedrock", `{"api":"sometimes"}`); !strings.Contains(msg, "bedrock.api") {
		t.Errorf("providers update with a bad api: %s", msg)
	}
	if out = cliOK(t, "providers", "get", "cliaws"); strings.Contains(out, catalogAWSSecret) {
		t.Errorf("providers get printed the secret:\n%s", out)
	}
}
