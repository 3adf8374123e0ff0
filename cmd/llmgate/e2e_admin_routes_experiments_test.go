package main

import (
	"testing"
)

// The rows of TestEveryAdminRouteOnBothStores for A/B experiments: one is made on gpt-test,
// read, changed, started, takes a request, reports it in its results, and is paused and stopped.
func experimentRouteSteps() []routeStep {
	return []routeStep{
		{adminRoute("POST /admin/experiments"), (*routeRun).createExperiment},
		{adminRoute("GET /admin/experiments"), (*routeRun).listExperiments},
		{adminRoute("GET /admin/experiments/:id"), (*routeRun).getExperiment},
		{adminRoute("PATCH /admin/experiments/:id"), (*routeRun).patchExperiment},
		{adminRoute("POST /admin/experiments/:id/start"), (*routeRun).startExperiment},
		{adminRoute("GET /admin/experiments/:id/results"), (*routeRun).experimentResults},
		{adminRoute("POST /admin/experiments/:id/pause"), (*routeRun).pauseExperiment},
		{adminRoute("POST /admin/experiments/:id/stop"), (*routeRun).stopExperiment},
	}
}

func (s *routeRun) experimentID() string { return "exp-" + s.tenant }

func (s *routeRun) createExperiment(t *testing.T) {
	r := s.admin(t).Must(201, "POST", "/admin/experiments", map[string]any{"id": s.experimentID(), "model": "gpt-test",
		"variants": []map[string]any{{"name": "control", "weight": 1}, {"name": "other", "model": "other", "weight": 1}}})
	if r.JSON("state").String() != "draft" || r.JSON("variants.1.model").String() != "other" {
		t.Errorf("created experiment: %s", r.Body)
	}
}

func (s *routeRun) listExperiments(t *testing.T) {
	r := s.admin(t).Must(200, "GET", "/admin/experiments", nil)
	if r.JSON(`data.#(id=="`+s.experimentID()+`").model`).String() != "gpt-test" {
		t.Errorf("experiments: %s", r.Body)
	}
}

func (s *routeRun) getExperiment(t *testing.T) {
	if r := s.admin(t).Must(200, "GET", "/admin/experiments/"+s.experimentID(), nil); r.JSON("salt").String() == "" {
		t.Errorf("experiment: %s", r.Body)
	}
}

func (s *routeRun) patchExperiment(t *testing.T) {
	r := s.admin(t).Must(200, "PATCH", "/admin/experiments/"+s.experimentID(), map[string]any{"description": "routes"})
	if r.JSON("description").String() != "routes" {
		t.Errorf("patched experiment: %s", r.Body)
	}
}

func (s *routeRun) startExperiment(t *testing.T) {
	if r := s.admin(t).Must(200, "POST", "/admin/experiments/"+s.experimentID()+"/start", nil); r.JSON("state").String() != "running" {
		t.Errorf("started experiment: %s", r.Body)
	}
}

func (s *routeRun) experimentResults(t *testing.T) {
	rec := s.e.usageFor(s.e.expChat(t, s.e.app, s.e.key, "gpt-test"))
	if rec.Experiment != s.experimentID() {
		t.Fatalf("the request's record: %+v", rec)
	}
	r := s.admin(t).Must(200, "GET", "/admin/experiments/"+s.experimentID()+"/results", nil)
	if r.JSON(`variants.#(variant=="`+rec.Variant+`").requests`).Int() != 1 {
		t.Errorf("results: %s", r.Body)
	}
}

func (s *routeRun) pauseExperiment(t *testing.T) {
	if r := s.admin(t).Must(200, "POST", "/admin/experiments/"+s.experimentID()+"/pause", nil); r.JSON("state").String() != "paused" {
		t.Errorf("paused experiment: %s", r.Body)
	}
}

func (s *routeRun) stopExperiment(t *testing.T) {
	if r := s.admin(t).Must(200, "POST", "/admin/experiments/"+s.experimentID()+"/stop", nil); r.JSON("state").String() != "stopped" {
		t.Errorf("stopped experiment: %s", r.Body)
	}
}
