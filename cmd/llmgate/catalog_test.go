package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/llmgate/llmgate/internal/testlog"
	"github.com/llmgate/llmgate/providers"
)

// TestBuildTableMergesCatalog: the file wins a name both define (provider and model), the
// catalog's other entries are added, and a catalog provider the checks refuse (the outbound
// policy) is left out with the models that use it, logged, without failing the file's table.
func TestBuildTableMergesCatalog(t *testing.T) {
	cfg := defaultConfig()
	cfg.Providers = []ProviderConfig{{Config: providers.Config{Name: "up", Type: "mock"}}}
	cfg.Models = []providers.ModelConfig{{Name: "m", Deployments: []providers.DeploymentConfig{{Provider: "up", Model: "file-model"}}}}
	cat := catalog{
		providers: []ProviderConfig{
			{Config: providers.Config{Name: "up", Type: "openai", BaseURL: "https://api.example.com/v1", APIKey: "k"}},
			{Config: providers.Config{Name: "apiok", Type: "mock"}},
			{Config: providers.Config{Name: "private", Type: "openai", BaseURL: "http://10.0.0.1/v1", APIKey: "k"}},
		},
		models: []providers.ModelConfig{
			{Name: "m", Deployments: []providers.DeploymentConfig{{Provider: "apiok", Model: "api-model"}}},
			{Name: "n", Deployments: []providers.DeploymentConfig{{Provider: "apiok"}}},
			{Name: "on-private", Deployments: []providers.DeploymentConfig{{Provider: "private"}}},
		},
	}
	var logs testlog.Buffer
	tbl, err := buildTable(cfg, cat, nil, table{}, false, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := tbl.configs["up"].Type; got != "mock" {
		t.Errorf("provider up is the catalog's (%s), want the file's", got)
	}
	if _, ok := tbl.provs["private"]; ok {
		t.Error("a provider the outbound policy refuses is in the table")
	}
	if d := tbl.router.Deployments("m"); len(d) != 1 || d[0].Model != "file-model" {
		t.Errorf("model m routes to %+v, want the file's deployment", d)
	}
	if !tbl.router.Has("n") || tbl.router.Has("on-private") {
		t.Errorf("models %v, want n and not on-private", tbl.router.Models())
	}
	for _, want := range []string{"catalog provider shadowed", "catalog model shadowed", "catalog provider left out", "catalog model left out"} {
		if len(logs.Lines(want)) != 1 {
			t.Errorf("log lines %q: %d, want 1\n%s", want, len(logs.Lines(want)), logs.String())
		}
	}
	// Rebuilt with nothing changed, every provider is kept (with its connections).
	again, err := buildTable(cfg, cat, nil, tbl, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.built) != 0 || again.provs["apiok"] != tbl.provs["apiok"] {
		t.Errorf("a rebuild without changes made providers anew: %v", again.built)
	}
}
