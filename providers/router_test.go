package providers

import (
	"context"
	"net/http"
	"testing"
)

type nopProvider struct{}

func (nopProvider) Do(context.Context, *Request) (*http.Response, error) {
	return nil, http.ErrNotSupported
}

func ptr[T any](v T) *T { return &v }

// TestRouterOverrides: a disabled deployment is listed but never a candidate; a weight override
// replaces the file's weight (and a non-positive one is ignored); overrides of ids the file does
// not have change nothing; a model whose every deployment is disabled still exists, without
// candidates.
func TestRouterOverrides(t *testing.T) {
	provs := map[string]Provider{"a": nopProvider{}, "b": nopProvider{}}
	models := []ModelConfig{
		{Name: "m", Deployments: []DeploymentConfig{{Provider: "a", Model: "x", Weight: 2}, {Provider: "b", Model: "x"}}},
		{Name: "solo", Deployments: []DeploymentConfig{{ID: "solo", Provider: "a", Model: "y"}}},
	}
	overrides := map[string]Override{
		"a/x":   {Weight: ptr(7), UpdatedBy: "admin"},
		"b/x":   {Enabled: ptr(false)},
		"solo":  {Enabled: ptr(false), Weight: ptr(0)},
		"gone/": {Enabled: ptr(false)},
	}
	r, err := NewRouter(models, RoutingConfig{}, provs, overrides)
	if err != nil {
		t.Fatal(err)
	}
	*overrides["a/x"].Weight = 99 // the router keeps its own copy

	deps := r.Deployments("m")
	if len(deps) != 2 {
		t.Fatalf("m lists %d deployments, want both (the disabled one too)", len(deps))
	}
	a, b := deps[0], deps[1]
	if a.ID != "a/x" || !a.Enabled || a.Weight != 7 || a.FileWeight != 2 || a.Override == nil || *a.Override.Weight != 7 || a.Override.UpdatedBy != "admin" {
		t.Errorf("a/x = %+v (override %+v), want enabled, weight 7 over the file's 2", a, a.Override)
	}
	if b.ID != "b/x" || b.Enabled || b.Weight != 1 || b.FileWeight != 1 {
		t.Errorf("b/x = %+v, want disabled with the file's weight", b)
	}
	for range 50 {
		if c := r.Candidates("m"); len(c) != 1 || c[0] != a {
			t.Fatalf("candidates of m = %v, want only a/x", c)
		}
	}
	if s := r.Deployments("solo"); len(s) != 1 || s[0].Enabled || s[0].Weight != 1 {
		t.Errorf("solo = %+v, want disabled, weight 1 (an override of 0 is ignored)", s[0])
	}
	if !r.Has("solo") || r.Candidates("solo") == nil || len(r.Candidates("solo")) != 0 {
		t.Errorf("solo: Has %v, candidates %v: want an existing model without candidates", r.Has("solo"), r.Candidates("solo"))
	}
	if r.Candidates("nope") != nil {
		t.Error("an unknown model has candidates")
	}

	plain, err := NewRouter(models, RoutingConfig{}, provs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plain.Deployments("m") {
		if !d.Enabled || d.Weight != d.FileWeight || d.Override != nil {
			t.Errorf("without overrides: %+v", d)
		}
	}
}

// TestWeightOverrideShiftsShare: the weighted draw follows the weight in force.
func TestWeightOverrideShiftsShare(t *testing.T) {
	provs := map[string]Provider{"a": nopProvider{}, "b": nopProvider{}}
	models := []ModelConfig{{Name: "m", Deployments: []DeploymentConfig{{Provider: "a", Model: "x"}, {Provider: "b", Model: "x"}}}}
	r, err := NewRouter(models, RoutingConfig{}, provs, map[string]Override{"b/x": {Weight: ptr(9)}})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]int{}
	const n = 4000
	for range n {
		first[r.Candidates("m")[0].ID]++
	}
	// b/x leads 90% of the time; 4000 draws put it within a few points of that.
	if share := float64(first["b/x"]) / n; share < 0.85 || share > 0.95 {
		t.Errorf("b/x first in %.1f%% of draws, want about 90%%", share*100)
	}
}
