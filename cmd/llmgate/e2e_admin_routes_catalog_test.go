package main

import (
	"testing"

	"github.com/llmgate/llmgate/internal/secrets"
)

// The rows of TestEveryAdminRouteOnBothStores for the catalog (providers and models over the
// admin API), the deployment test call and the secret key's re-encryption: a provider and a
// model are made, read, changed, tested through the public API and the test call, resealed, and
// removed again.
func catalogRouteSteps() []routeStep {
	return []routeStep{
		{adminRoute("POST /admin/providers"), (*routeRun).createProvider},
		{adminRoute("GET /admin/providers"), (*routeRun).listProviders},
		{adminRoute("GET /admin/providers/:name"), (*routeRun).getProvider},
		{adminRoute("PATCH /admin/providers/:name"), (*routeRun).patchProvider},
		{adminRoute("POST /admin/models"), (*routeRun).createModel},
		{adminRoute("GET /admin/models"), (*routeRun).listModels},
		{adminRoute("GET /admin/models/*model"), (*routeRun).getModel},
		{adminRoute("PATCH /admin/models/*model"), (*routeRun).patchModel},
		{adminRoute("POST /admin/deployments/*id"), (*routeRun).testDeployment},
		{adminRoute("POST /admin/secrets/reencrypt"), (*routeRun).reencrypt},
		{adminRoute("DELETE /admin/models/*model"), (*routeRun).deleteModel},
		{adminRoute("DELETE /admin/providers/:name"), (*routeRun).deleteProvider},
	}
}

func (s *routeRun) catalogProvider() string { return "prov-" + s.tenant }
func (s *routeRun) catalogModel() string    { return "org/model-" + s.tenant }

func (s *routeRun) createProvider(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/providers", map[string]any{"name": s.catalogProvider(), "type": "openai",
		"base_url": s.e.cfg.Providers[0].BaseURL, "api_key": upstreamKey})
	if r.JSON("origin").String() != "api" || r.JSON("api_key_fingerprint").String() != secrets.Fingerprint(upstreamKey) || r.JSON("api_key").Exists() {
		t.Errorf("created provider: %s", r.Body)
	}
}

func (s *routeRun) listProviders(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/providers", nil)
	if r.JSON(`data.#(name=="up").origin`).String() != "file" || r.JSON(`data.#(name=="`+s.catalogProvider()+`").origin`).String() != "api" {
		t.Errorf("providers: %s", r.Body)
	}
}

func (s *routeRun) getProvider(t *testing.T) {
	if r := s.admin(t).Must(200, "GET", "/admin/providers/"+s.catalogProvider(), nil); r.JSON("type").String() != "openai" {
		t.Errorf("provider: %s", r.Body)
	}
}

func (s *routeRun) patchProvider(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/providers/"+s.catalogProvider(), map[string]any{"headers": map[string]string{"X-Team": "routes"}})
	if r.JSON("headers.X-Team").String() != "routes" || r.JSON("api_key_fingerprint").String() != secrets.Fingerprint(upstreamKey) {
		t.Errorf("patched provider: %s", r.Body)
	}
}

func (s *routeRun) createModel(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/models", map[string]any{"name": s.catalogModel(),
		"deployments": []map[string]any{{"provider": s.catalogProvider(), "model": "up-model"}}})
	if r.JSON("origin").String() != "api" || r.JSON("deployments.0.id").String() != s.catalogProvider()+"/up-model" {
		t.Errorf("created model: %s", r.Body)
	}
}

func (s *routeRun) listModels(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/models", nil)
	if r.JSON(`data.#(name=="gpt-test").origin`).String() != "file" || r.JSON(`data.#(name=="`+s.catalogModel()+`").origin`).String() != "api" {
		t.Errorf("models: %s", r.Body)
	}
}

func (s *routeRun) getModel(t *testing.T) {
	if r := s.admin(t).Must(200, "GET", "/admin/models/"+s.catalogModel(), nil); r.JSON("deployments.0.provider").String() != s.catalogProvider() {
		t.Errorf("model: %s", r.Body)
	}
}

func (s *routeRun) patchModel(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/models/"+s.catalogModel(), map[string]any{"strategy": "latency"})
	if r.JSON("strategy").String() != "latency" || r.JSON("updated_by").String() != "bootstrap" {
		t.Errorf("patched model: %s", r.Body)
	}
}

func (s *routeRun) testDeployment(t *testing.T) {
	r := s.admin(t).Must(200, "POST", "/admin/deployments/"+s.catalogProvider()+"/up-model/test", nil)
	if !r.JSON("ok").Bool() || r.JSON("status").Int() != 200 || r.JSON("answer").String() == "" {
		t.Errorf("deployment test: %s", r.Body)
	}
}

func (s *routeRun) reencrypt(t *testing.T) {
	r := s.admin(t).Must(200, "POST", "/admin/secrets/reencrypt", nil)
	if r.JSON("key_id").String() != secrets.KeyID([]byte("0123456789abcdef0123456789abcdef")) || r.JSON("unchanged").Int() < 1 {
		t.Errorf("reencrypt: %s", r.Body)
	}
}

func (s *routeRun) deleteModel(t *testing.T) {
	s.admin(t).Must(204, "DELETE", "/admin/models/"+s.catalogModel(), nil)
}

func (s *routeRun) deleteProvider(t *testing.T) {
	s.admin(t).Must(204, "DELETE", "/admin/providers/"+s.catalogProvider(), nil)
}
