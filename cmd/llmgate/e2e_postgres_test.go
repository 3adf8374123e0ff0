package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmgate/llmgate/internal/adminclient"
	"github.com/llmgate/llmgate/providers/mock"
	"github.com/llmgate/llmgate/store"
)

// TestProductionModePostgres runs the gateway the way production does: a config file naming an
// OpenAI-compatible provider, the database chosen by LLMGATE_DATABASE_URL, and no code change.
func TestProductionModePostgres(t *testing.T) {
	dsn := pg.NewDatabase(t)
	up := mock.NewHandler(mock.Options{RequireKey: upstreamKey})
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	path := writeConfig(t, `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
data_dir: `+t.TempDir()+`
outbound:
  allow: [127.0.0.1]   # the simulated upstream is on loopback
providers:
  - name: upstream
    type: openai
    base_url: `+upSrv.URL+`/v1
    api_key: ${UPSTREAM_KEY}
models:
  - name: gpt-prod
    deployments: [{provider: upstream, model: real-model}]
quota:
  default_tier: enterprise
usage:
  flush_interval: 20ms
`)
	cfg, err := loadConfig(path, envOf(map[string]string{
		"UPSTREAM_KEY": upstreamKey, "LLMGATE_DATABASE_URL": dsn, "LLMGATE_ADMIN_TOKEN": testAdminToken}))
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	if got := storeKind(a.cfg); got != "postgres" {
		t.Fatalf("store = %s, want postgres", got)
	}
	k, err := adminclient.New(a.adminURL, testAdminToken).CreateKey(context.Background(), createKeyBody{Name: "prod", UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	oc := openai.DefaultConfig(k.Key)
	oc.BaseURL = a.publicURL + "/v1"
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	oc.HTTPClient = &http.Client{Transport: tr}
	c := openai.NewClientWithConfig(oc)
	resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "gpt-prod", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "one two"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "real-model" || resp.Usage.TotalTokens != 25 {
		t.Errorf("answer model %q usage %+v", resp.Model, resp.Usage)
	}
	s, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{Model: "gpt-prod", Stream: true,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "one two"}}})
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	for {
		ch, err := s.Recv()
		if err != nil {
			break
		}
		if len(ch.Choices) > 0 {
			words = append(words, strings.Fields(ch.Choices[0].Delta.Content)...)
		}
	}
	s.Close()
	if len(words) != 20 {
		t.Errorf("streamed %d words", len(words))
	}
	var recs []store.UsageRecord
	waitFor(t, 10*time.Second, "two usage rows in PostgreSQL", func() bool {
		recs, err = a.store.ListUsage(context.Background(), store.UsageFilter{UserID: "alice"})
		return err == nil && len(recs) == 2
	})
	for _, r := range recs {
		if r.PromptTokens != 5 || r.CompletionTokens != 20 || r.UsageSource != "provider" || r.Deployment != "upstream/real-model" {
			t.Errorf("record = %+v", r)
		}
	}
}
