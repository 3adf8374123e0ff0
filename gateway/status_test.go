package gateway_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/llmgate/llmgate/providers"
	"github.com/llmgate/llmgate/providers/mock"
)

// TestStatusMarksSimulatedModels: GET /v1/status marks the models a simulated provider (the
// built-in mock) serves and warns of them, naming only the models the caller's key may use; the
// other fields stay as they were.
func TestStatusMarksSimulatedModels(t *testing.T) {
	e := newEnv(t, withRouting([]namedProvider{{"sim", mock.New(mock.Options{}), nil}},
		providers.ModelConfig{Name: "simulated", Deployments: []providers.DeploymentConfig{{Provider: "sim", Model: "mock-gpt"}}}))
	type status struct {
		Status   string   `json:"status"`
		Warnings []string `json:"warnings"`
		Models   []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Mock   bool   `json:"mock"`
		} `json:"models"`
	}
	get := func(key string) (s status) {
		t.Helper()
		c := e.api()
		c.Key = key
		c.GetJSON("/status", &s)
		return s
	}
	s := get(e.key)
	var mocked []string
	for _, m := range s.Models {
		if m.Mock {
			mocked = append(mocked, m.ID)
		}
	}
	if !slices.Equal(mocked, []string{"simulated"}) || s.Status != "ok" {
		t.Errorf("status %q, mock models %q; want ok with only the model on the mock marked", s.Status, mocked)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "simulated") || !strings.Contains(s.Warnings[0], "mock provider") ||
		strings.Contains(s.Warnings[0], "gpt-test") {
		t.Errorf("warnings = %q, want one naming the mock and its model only", s.Warnings)
	}

	real := e.newKey(keySpec{Name: "real models only", Models: []string{"gpt-test"}})
	s = get(real.Key)
	if s.Warnings == nil || len(s.Warnings) != 0 || len(s.Models) != 1 || s.Models[0].Mock {
		t.Errorf("for a key without the mock's model: warnings %q (want an empty list), models %+v", s.Warnings, s.Models)
	}
}
