package main

import (
	"slices"

	"github.com/llmgate/llmgate/providers"
)

// warnOfMock turns on the warning about the models the mock provider serves and logs it for the
// running config. Outside demo, real model names answered with simulated text are a mistake
// until shown otherwise: `serve` without a config runs the built-in mock.
func (a *app) warnOfMock() {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	a.warnMock = true
	a.logMock(nil)
}

// logMock logs the warning when it is on and the running config's mock-served models differ
// from before (a reload that brings the mock back says so again). The caller holds reloadMu.
func (a *app) logMock(before []string) {
	models := mockModels(a.cfg)
	if !a.warnMock || len(models) == 0 || slices.Equal(models, before) {
		return
	}
	a.log.Warn("these models are served by the mock provider: simulated answers, no upstream is called",
		"models", models,
		"fix", "configure a real provider and point the models at it in a config file (llmgate serve --config FILE; "+
			"configs/production.yaml is one for an OpenAI-compatible provider)")
}

// mockModels lists, in config order, the public models with a deployment on a provider of type
// mock.
func mockModels(c Config) []string {
	mock := map[string]bool{}
	for _, p := range c.Providers {
		if p.Type == "mock" {
			mock[p.Name] = true
		}
	}
	var out []string
	for _, m := range c.Models {
		if slices.ContainsFunc(m.Deployments, func(d providers.DeploymentConfig) bool { return mock[d.Provider] }) {
			out = append(out, m.Name)
		}
	}
	return out
}
